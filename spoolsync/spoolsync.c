/*
 * spoolsync.c: main() and the subcommand table of spoolsync, which mirrors the Jabber spool between backend hosts.
 */
#include "spoolsync.h"

static const struct daemon_def spoolsync_def = {
	.name = "spoolsync",
	.summary = "spoolsync mirrors the Jabber spool between backend hosts",
	.load = spoolsync_conf_load,
	.free = spoolsync_conf_free,
	.common = spoolsync_conf_common,
};

int
main(int argc, char **argv)
{
	return daemon_main(&spoolsync_def, argc, argv);
}
