/*
 * hamon.c: main() and the subcommand table of hamon, which health-checks the Jabber backends and publishes the membership view.
 */
#include "hamon.h"

static const struct daemon_def hamon_def = {
	.name = "hamon",
	.summary = "hamon health-checks the Jabber backends and publishes the membership view",
	.load = hamon_conf_load,
	.free = hamon_conf_free,
	.common = hamon_conf_common,
};

int
main(int argc, char **argv)
{
	return daemon_main(&hamon_def, argc, argv);
}
