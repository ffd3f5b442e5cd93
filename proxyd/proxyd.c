/*
 * proxyd.c: main() and the subcommand table of proxyd, which the filtering, domain-aware XMPP proxy.
 */
#include "proxyd.h"

static const struct daemon_def proxyd_def = {
	.name = "proxyd",
	.summary = "proxyd the filtering, domain-aware XMPP proxy",
	.load = proxyd_conf_load,
	.free = proxyd_conf_free,
	.common = proxyd_conf_common,
};

int
main(int argc, char **argv)
{
	return daemon_main(&proxyd_def, argc, argv);
}
