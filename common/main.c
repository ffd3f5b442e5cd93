/*
 * main.c: the main() that every daemon binary shares.  One binary is both
 * the daemon (`hamon run`) and its client (`hamon status`): this file holds
 * the subcommands all three have and runs the daemon from its definition.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common.h"

/* One daemon per process: what main_reload needs to find. */
static const struct daemon_def	*main_def;
static void			*main_conf;

void *
daemon_conf(const struct daemon *d)
{
	return main_conf;
}

static int
main_has_cmd(const struct daemon_def *def, const char *name)
{
	const struct daemon_cmd	*c;

	for (c = def->cmds; c != NULL && c->name != NULL; c++)
		if (strcmp(c->name, name) == 0)
			return 1;
	return 0;
}

static void
main_usage(const struct daemon_def *def, FILE *fp)
{
	const struct daemon_cmd	*c;

	fprintf(fp, "usage: %s COMMAND [-c FILE] [-s SOCKET] [--json] [ARGS]\n"
	    "%s\n\ncommands:\n", def->name, def->summary);
	fprintf(fp, "  %-22s %s\n", "run", "run the daemon in the foreground");
	if (!main_has_cmd(def, "status"))
		fprintf(fp, "  %-22s %s\n", "status", "ask the running daemon how it is");
	fprintf(fp, "  %-22s %s\n", "check-config",
	    "validate the configuration (exit 0 valid, 1 invalid)");
	fprintf(fp, "  %-22s %s\n", "reload", "reload the configuration (as SIGHUP)");
	for (c = def->cmds; c != NULL && c->name != NULL; c++)
		fprintf(fp, "  %-22s %s\n", c->usage, c->help);
	fprintf(fp, "  %-22s %s\n", "version", "print the version");
	fprintf(fp, "\n-c FILE defaults to /etc/jabber-ha/%s.yaml\n", def->name);
}

static int
main_reload(struct daemon *d, char *err, size_t errlen)
{
	struct cfg_errs		 errs = { NULL, 0 };
	struct common_conf	 old = d->common;
	void			*conf;

	if ((conf = main_def->load(d->conf_path, &errs)) == NULL) {
		cfg_errs_log(&errs);
		snprintf(err, errlen, "%s: %zu error%s in the new configuration",
		    d->conf_path, errs.n, errs.n == 1 ? "" : "s");
		cfg_errs_free(&errs);
		return -1;
	}
	cfg_errs_free(&errs);
	if (daemon_apply_common(d, main_def->common(conf), err, errlen) == -1)
		goto fail;
	if (main_def->swap != NULL && main_def->swap(d, conf, err, errlen) == -1) {
		char	 err2[256];

		if (daemon_apply_common(d, &old, err2, sizeof(err2)) == -1)
			log_warnx("reload: restoring the old settings: %s", err2);
		goto fail;
	}
	main_def->free(main_conf);
	main_conf = conf;
	return 0;
fail:
	main_def->free(conf);
	return -1;
}

static void
main_shutdown(struct daemon *d)
{
	if (main_def->stop != NULL)
		main_def->stop(d);
}

static int
main_run(const struct daemon_def *def, struct cli *cli)
{
	const struct common_conf *common;
	struct cfg_errs		 errs = { NULL, 0 };
	struct event_base	*base;
	struct daemon		 d;
	char			 err[512];

	char			*abs;

	/* Reloads must find the file whatever the working directory becomes. */
	if ((abs = realpath(cli->conf_path, NULL)) != NULL)
		cli->conf_path = abs;
	if ((main_conf = def->load(cli->conf_path, &errs)) == NULL) {
		cfg_errs_log(&errs);
		log_errorx("%s: configuration refused (%zu error%s)",
		    cli->conf_path, errs.n, errs.n == 1 ? "" : "s");
		cfg_errs_free(&errs);
		free(abs);
		return 1;
	}
	cfg_errs_free(&errs);
	common = def->common(main_conf);
	log_set_level(common->log_level);
	if ((base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	daemon_init(&d, def->name, cli->conf_path, base);
	d.reload = main_reload;
	d.shutdown = main_shutdown;
	d.status = def->status;
	d.command = def->command;
	if (daemon_start(&d, common, err, sizeof(err)) == -1 ||
	    (def->start != NULL && def->start(&d, main_conf, err, sizeof(err)) == -1) ||
	    daemon_drop_privs(common->user, common->group, err, sizeof(err)) == -1) {
		log_errorx("%s", err);
		daemon_cleanup(&d);
		def->free(main_conf);
		event_base_free(base);
		free(abs);
		return 1;
	}
	daemon_ready(&d, "%s %s, control %s%s%s", def->name, JHA_VERSION,
	    common->control, common->has_http ? ", http " : "",
	    common->has_http ? common->http.text : "");
	event_base_dispatch(base);
	daemon_cleanup(&d);
	def->free(main_conf);
	event_base_free(base);
	free(abs);
	log_info("stopped");
	return 0;
}

static int
main_check(const char *path, struct cfg_errs *errs)
{
	void	*conf;

	if ((conf = main_def->load(path, errs)) == NULL)
		return -1;
	main_def->free(conf);
	return 0;
}

/* A daemon's own command wins over a common one of the same name. */
static int
main_dispatch(const struct daemon_def *def, struct cli *cli)
{
	const struct daemon_cmd	*c;
	const char		*cmd = cli->argc > 0 ? cli->argv[0] : "help";

	for (c = def->cmds; c != NULL && c->name != NULL; c++)
		if (strcmp(cmd, c->name) == 0)
			return c->fn(cli);
	if (strcmp(cmd, "run") == 0)
		return main_run(def, cli);
	if (strcmp(cmd, "check-config") == 0)
		return cli_check_config(cli, main_check);
	if (strcmp(cmd, "status") == 0)
		return cli_request(cli, "status", def->print_status, NULL);
	if (strcmp(cmd, "reload") == 0)
		return cli_request(cli, "reload", NULL, NULL);
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("%s %s\n", def->name, JHA_VERSION);
		return 0;
	}
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "-h") == 0 ||
	    strcmp(cmd, "--help") == 0) {
		main_usage(def, stdout);
		return 0;
	}
	fprintf(stderr, "%s: unknown command '%s'\n", def->name, cmd);
	main_usage(def, stderr);
	return 2;
}

int
daemon_main(const struct daemon_def *def, int argc, char **argv)
{
	struct cli		 cli;
	char			 err[256];
	int			 rc;

	main_def = def;
	log_init(def->name, LOG_LVL_INFO);
	if (cli_parse(&cli, def->name, argc, argv, err, sizeof(err)) == -1) {
		fprintf(stderr, "%s: %s\n", def->name, err);
		main_usage(def, stderr);
		free(cli.argv);
		return 2;
	}
	rc = main_dispatch(def, &cli);
	free(cli.argv);
	return rc;
}
