/*
 * hamon.c: main() and the subcommand table of hamon, which health-checks the
 * Jabber backends and publishes the membership view.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hamon.h"

#define HAMON_CLI_TIMEOUT_MS	5000
#define HAMON_WATCH_RETRY_MS	250

static int	hamon_cmd_status(struct cli *);
static int	hamon_cmd_watch(struct cli *);
static int	hamon_cmd_view(struct cli *);
static int	hamon_cmd_admin(struct cli *);

static const struct daemon_cmd hamon_cmds[] = {
	{ "status", "status", "the backends' states (--json, --nagios); exit 0 "
	    "all eligible, 1 degraded, 2 none, 3 unreachable", hamon_cmd_status },
	{ "watch", "watch", "print the view, then one line per change (--json: "
	    "the JSON)", hamon_cmd_watch },
	{ "view", "view", "print the view as JSON", hamon_cmd_view },
	{ "drain", "drain NAME", "no new sessions on backend NAME, existing "
	    "ones stay (kept across restarts)", hamon_cmd_admin },
	{ "maint", "maint NAME", "take backend NAME out (kept across restarts)",
	    hamon_cmd_admin },
	{ "ready", "ready NAME", "hand backend NAME back to its health checks",
	    hamon_cmd_admin },
	{ NULL, NULL, NULL, NULL }
};

static const struct daemon_def hamon_def = {
	.name = "hamon",
	.summary = "hamon health-checks the Jabber backends and publishes the "
	    "membership view",
	.load = hamon_conf_load,
	.free = hamon_conf_free,
	.common = hamon_conf_common,
	.start = hamon_start,
	.swap = hamon_swap,
	.stop = hamon_stop,
	.status = hamon_status,
	.command = hamon_command,
	.cmds = hamon_cmds,
};

/* status [--json|--nagios]: the exit code says how the backends are. */
static int
hamon_cmd_status(struct cli *cli)
{
	struct jval	*data = NULL;
	char		 path[512], err[512];
	int		 nagios = 0, i, rc;

	for (i = 1; i < cli->argc; i++) {
		if (strcmp(cli->argv[i], "--nagios") != 0) {
			fprintf(stderr, "usage: hamon status [-c FILE] [-s SOCKET] "
			    "[--json | --nagios]\n");
			return STATUS_UNREACHABLE;
		}
		nagios = 1;
	}
	cli_control_path(cli, path, sizeof(path));
	rc = control_request(path, "status", HAMON_CLI_TIMEOUT_MS, &data, err,
	    sizeof(err));
	if (rc != 0) {
		if (nagios)
			printf("HAMON UNKNOWN - %s\n", err);
		else
			fprintf(stderr, "hamon: %s\n", err);
		return STATUS_UNREACHABLE;
	}
	rc = status_exit_code(data);
	if (nagios)
		status_print_nagios(stdout, data);
	else if (cli->json)
		cli_print_json(stdout, data);
	else
		status_print_table(stdout, data, isatty(STDOUT_FILENO) &&
		    getenv("NO_COLOR") == NULL, now_real_ms());
	jval_free(data);
	return rc;
}

struct watch_ctx {
	int		json;
	unsigned long	seen;
};

static int
hamon_watch_cb(const struct jval *data, void *arg)
{
	struct watch_ctx	*w = arg;

	if (w->json) {
		cli_print_json(stdout, data);
		fflush(stdout);
	} else
		status_print_watch(stdout, data);
	w->seen++;
	return 0;
}

static void
hamon_sleep_ms(long ms)
{
	struct timespec	ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1)
		;
}

/* Reconnects when hamon restarts: the new one sends its full view first. */
static int
hamon_cmd_watch(struct cli *cli)
{
	struct watch_ctx	 w = { cli->json, 0 };
	unsigned long		 before;
	char			 path[512], err[512];
	int			 rc;

	if (cli->argc != 1) {
		fprintf(stderr, "usage: hamon watch [-c FILE] [-s SOCKET] [--json]\n");
		return 2;
	}
	cli_control_path(cli, path, sizeof(path));
	for (;;) {
		before = w.seen;
		err[0] = '\0';
		rc = control_stream(path, "watch", hamon_watch_cb, &w, err,
		    sizeof(err));
		if (w.seen == 0) {
			fprintf(stderr, "hamon: %s\n", err[0] ? err :
			    "hamon closed the connection");
			return rc == -2 ? STATUS_UNREACHABLE : 1;
		}
		/* Said once per lost connection, not at every retry. */
		if (w.seen > before)
			fprintf(stderr, "hamon: %s; reconnecting\n", err[0] ? err :
			    "hamon closed the connection");
		hamon_sleep_ms(HAMON_WATCH_RETRY_MS);
	}
}

static int
hamon_cmd_view(struct cli *cli)
{
	return cli_request(cli, "view", NULL, NULL);
}

static void
hamon_print_admin(const struct jval *d, void *arg)
{
	const char	*state = jval_str(d, "state");

	printf("%s: %s (was %s); now %s, generation %.0f\n",
	    jval_str(d, "backend") ? jval_str(d, "backend") : "?",
	    jval_str(d, "admin") ? jval_str(d, "admin") : "?",
	    jval_str(d, "was") ? jval_str(d, "was") : "?",
	    state != NULL ? state : "?", jval_num(d, "generation", 0));
	if (!jval_bool(d, "kept", 0))
		printf("warning: hamon has no state_file: this is lost when it "
		    "restarts\n");
}

static int
hamon_cmd_admin(struct cli *cli)
{
	char	line[128];

	if (cli->argc != 2 || !hamon_name_valid(cli->argv[1])) {
		fprintf(stderr, "usage: hamon %s NAME (a backend's name)\n",
		    cli->argv[0]);
		return 2;
	}
	snprintf(line, sizeof(line), "%s %s", cli->argv[0], cli->argv[1]);
	return cli_request(cli, line, hamon_print_admin, NULL);
}

int
main(int argc, char **argv)
{
	return daemon_main(&hamon_def, argc, argv);
}
