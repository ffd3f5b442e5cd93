/*
 * spoolsync.c: main() and the subcommand table of spoolsync, which mirrors the Jabber spool between backend hosts.
 */
#include <sys/resource.h>

#include <string.h>

#include "spoolsync.h"

/*
 * A receiver holds two descriptors per file being committed (thousands in
 * an initial sync): the soft limit goes up to the hard one, as systemd's
 * LimitNOFILE would set it.
 */
static void
spoolsync_raise_nofile(void)
{
	struct rlimit	rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int
spoolsync_cmd_audit(struct cli *cli)
{
	int	repair = 0;

	for (int i = 1; i < cli->argc; i++) {
		if (strcmp(cli->argv[i], "--repair") == 0 ||
		    strcmp(cli->argv[i], "repair") == 0)
			repair = 1;
		else {
			fprintf(stderr, "spoolsync: audit: unknown argument '%s' "
			    "(usage: spoolsync --audit -c FILE [--json] [--repair])\n",
			    cli->argv[i]);
			return 2;
		}
	}
	return audit_main(cli, repair);
}

static const struct daemon_cmd spoolsync_cmds[] = {
	{ "audit", "audit [--repair]",
	    "compare this tree with every peer's (also --audit; exit 0 identical, "
	    "1 differences, 2 could not audit)", spoolsync_cmd_audit },
	{ NULL, NULL, NULL, NULL },
};

static const struct daemon_def spoolsync_def = {
	.name = "spoolsync",
	.summary = "spoolsync mirrors the Jabber spool between backend hosts",
	.load = spoolsync_conf_load,
	.free = spoolsync_conf_free,
	.common = spoolsync_conf_common,
	.start = spoolsync_start,
	.swap = spoolsync_swap,
	.stop = spoolsync_stop,
	.status = spoolsync_status,
	.command = spoolsync_command,
	.print_status = spoolsync_print_status,
	.cmds = spoolsync_cmds,
};

int
main(int argc, char **argv)
{
	/* `spoolsync --audit ...` is the audit subcommand. */
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--audit") == 0) {
			for (int k = i; k > 1; k--)
				argv[k] = argv[k - 1];
			argv[1] = (char *)"audit";
			break;
		}
	spoolsync_raise_nofile();
	return daemon_main(&spoolsync_def, argc, argv);
}
