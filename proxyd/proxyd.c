/*
 * proxyd.c: main() and the subcommand table of proxyd, the filtering,
 * domain-aware XMPP proxy.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/thread.h>

#include "proxyd.h"

static int	proxyd_cmd_sessions(struct cli *);
static int	proxyd_cmd_kick(struct cli *);
static void	proxyd_print_status(const struct jval *, void *);

static const struct daemon_cmd proxyd_cmds[] = {
	{ "sessions", "sessions [--domain D]", "the client sessions: JID, domain, "
	    "backend, client, since, bytes and stanzas (--json)", proxyd_cmd_sessions },
	{ "kick", "kick JID", "end the session of JID (a bare JID: all of its "
	    "resources)", proxyd_cmd_kick },
	{ NULL, NULL, NULL, NULL }
};

static const struct daemon_def proxyd_def = {
	.name = "proxyd",
	.summary = "proxyd the filtering, domain-aware XMPP proxy",
	.load = proxyd_conf_load,
	.free = proxyd_conf_free,
	.common = proxyd_conf_common,
	.start = proxyd_start,
	.swap = proxyd_swap,
	.stop = proxyd_stop,
	.status = proxyd_status,
	.command = proxyd_command,
	.print_status = proxyd_print_status,
	.cmds = proxyd_cmds,
};

static const char *
proxyd_str(const struct jval *o, const char *key)
{
	const char	*s = jval_str(o, key);

	return s != NULL ? s : "-";
}

static void
proxyd_print_sessions(const struct jval *d, void *arg)
{
	const struct jval	*s;
	char			 when[32];
	time_t			 t;
	struct tm		 tm;
	size_t			 i;

	if (d->type != J_ARR)
		return;
	printf("%-40s %-20s %-10s %-22s %-19s %10s %10s %8s %8s\n", "JID", "DOMAIN",
	    "BACKEND", "CLIENT", "SINCE", "BYTES_IN", "BYTES_OUT", "ST_IN",
	    "ST_OUT");
	for (i = 0; i < d->n; i++) {
		s = d->items[i];
		t = (time_t)(jval_num(s, "since_ms", 0) / 1000);
		localtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
		printf("%-40s %-20s %-10s %-22s %-19s %10.0f %10.0f %8.0f %8.0f\n",
		    jval_str(s, "jid") ? jval_str(s, "jid") : proxyd_str(s, "state"),
		    proxyd_str(s, "domain"), proxyd_str(s, "backend"),
		    proxyd_str(s, "client"), when, jval_num(s, "bytes_in", 0),
		    jval_num(s, "bytes_out", 0), jval_num(s, "stanzas_in", 0),
		    jval_num(s, "stanzas_out", 0));
	}
	printf("%zu session%s\n", d->n, d->n == 1 ? "" : "s");
}

static int
proxyd_cmd_sessions(struct cli *cli)
{
	char	line[1200];

	if (cli->argc == 1)
		return cli_request(cli, "sessions", proxyd_print_sessions, NULL);
	if (cli->argc == 3 && strcmp(cli->argv[1], "--domain") == 0 &&
	    strlen(cli->argv[2]) < 1024 && strpbrk(cli->argv[2], " \t\r\n") == NULL) {
		snprintf(line, sizeof(line), "sessions %s", cli->argv[2]);
		return cli_request(cli, line, proxyd_print_sessions, NULL);
	}
	fprintf(stderr, "usage: proxyd sessions [-c FILE] [-s SOCKET] [--json] "
	    "[--domain DOMAIN]\n");
	return 2;
}

static void
proxyd_print_kick(const struct jval *d, void *arg)
{
	printf("%s: %.0f session(s) ended\n", proxyd_str(d, "jid"),
	    jval_num(d, "kicked", 0));
}

static int
proxyd_cmd_kick(struct cli *cli)
{
	char	line[CONTROL_MAX_REQUEST];

	if (cli->argc != 2 || strlen(cli->argv[1]) > 3071 ||
	    strpbrk(cli->argv[1], " \t\r\n") != NULL) {
		fprintf(stderr, "usage: proxyd kick [-c FILE] [-s SOCKET] JID\n");
		return 2;
	}
	snprintf(line, sizeof(line), "kick %s", cli->argv[1]);
	return cli_request(cli, line, proxyd_print_kick, NULL);
}

static void
proxyd_print_status(const struct jval *d, void *arg)
{
	const struct jval	*h = jval_get(d, "hamon"), *doms, *x;
	size_t			 i;

	printf("proxyd %s, pid %.0f, up %.0fs, %.0f worker(s)\n",
	    proxyd_str(d, "version"), jval_num(d, "pid", 0),
	    jval_num(d, "uptime_ms", 0) / 1000, jval_num(d, "workers", 0));
	printf("sessions %.0f (accepted %.0f, refused %.0f, no backend %.0f, "
	    "TLS failures %.0f)\n", jval_num(d, "sessions", 0),
	    jval_num(d, "accepted", 0), jval_num(d, "refused", 0),
	    jval_num(d, "no_backend", 0), jval_num(d, "tls_failures", 0));
	if (h != NULL)
		printf("hamon %s: %s, view generation %.0f, %.0f eligible\n",
		    proxyd_str(h, "socket"), jval_bool(h, "connected", 0) ?
		    "connected" : "NOT CONNECTED", jval_num(h, "generation", 0),
		    jval_num(h, "eligible", 0));
	if (jval_str(d, "warning") != NULL)
		printf("warning: %s\n", jval_str(d, "warning"));
	if ((x = jval_get(d, "backend_tls")) != NULL &&
	    jval_str(x, "last_error") != NULL)
		printf("backend TLS: %.0f failure(s), last: %s\n",
		    jval_num(x, "failures", 0), jval_str(x, "last_error"));
	if ((x = jval_get(d, "moves")) != NULL && jval_num(x, "pending", 0) > 0)
		printf("moving: %.0f session(s) to end within move_spread (%.0f ms)\n",
		    jval_num(x, "pending", 0), jval_num(x, "spread_ms", 0));
	if ((doms = jval_get(d, "domains")) != NULL && doms->type == J_ARR)
		for (i = 0; i < doms->n; i++) {
			x = doms->items[i];
			printf("  %-30s -> %-12s %.0f session(s)",
			    proxyd_str(x, "name"), proxyd_str(x, "backend"),
			    jval_num(x, "sessions", 0));
			if (jval_num(x, "moves_pending", 0) > 0)
				printf(", %.0f moving", jval_num(x, "moves_pending", 0));
			printf("\n");
		}
}

int
main(int argc, char **argv)
{
	/* Before any event base: the workers' mailboxes are woken from the
	 * main thread (worker.c). */
	if (evthread_use_pthreads() == -1) {
		fprintf(stderr, "proxyd: libevent has no thread support\n");
		return 1;
	}
	return daemon_main(&proxyd_def, argc, argv);
}
