/*
 * cli.c: the client half of every daemon binary: flags shared by all
 * subcommands, finding the control socket, asking the daemon, check-config.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

#define CLI_TIMEOUT_MS	5000

int
cli_parse(struct cli *cli, const char *daemon, int argc, char **argv, char *err,
    size_t errlen)
{
	static char	 defpath[128];
	int		 i, n = 0;

	memset(cli, 0, sizeof(*cli));
	cli->daemon = daemon;
	snprintf(defpath, sizeof(defpath), "/etc/jabber-ha/%s.yaml", daemon);
	cli->conf_path = defpath;
	cli->argv = xcalloc((size_t)argc + 1, sizeof(char *));
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0 ||
		    strcmp(argv[i], "-s") == 0 || strcmp(argv[i], "--socket") == 0) {
			if (i + 1 == argc) {
				snprintf(err, errlen, "%s needs an argument", argv[i]);
				return -1;
			}
			if (argv[i][1] == 'c' || argv[i][2] == 'c')
				cli->conf_path = argv[++i];
			else
				cli->sock_path = argv[++i];
		} else if (strcmp(argv[i], "--json") == 0)
			cli->json = 1;
		else if (strcmp(argv[i], "--") == 0) {
			while (++i < argc)
				cli->argv[n++] = argv[i];
		} else if (argv[i][0] == '-' && argv[i][1] != '\0' && n == 0) {
			snprintf(err, errlen, "unknown option '%s'", argv[i]);
			return -1;
		} else
			cli->argv[n++] = argv[i];
	}
	cli->argc = n;
	return 0;
}

void
cli_control_path(const struct cli *cli, char *out, size_t outlen)
{
	struct common_conf	 c;
	struct cfg_errs		 errs = { NULL, 0 };
	struct cfg_doc		*doc;

	if (cli->sock_path != NULL) {
		snprintf(out, outlen, "%s", cli->sock_path);
		return;
	}
	common_conf_defaults(&c, cli->daemon);
	/* Only the control key matters here: the daemon validates the rest. */
	if (access(cli->conf_path, R_OK) == 0 &&
	    (doc = common_conf_load(cli->conf_path, &errs)) != NULL) {
		cfg_get_str(&errs, doc->root, "control", 0, &c.control);
		snprintf(out, outlen, "%s", c.control);
		cfg_free(doc);
	} else
		snprintf(out, outlen, "%s", c.control);
	cfg_errs_free(&errs);
}

static void
cli_print_str(FILE *fp, const char *s, size_t n)
{
	struct json	j;

	json_init(&j);
	json_strn(&j, s, n);
	fputs(json_text(&j), fp);
	json_free(&j);
}

static void
cli_print_value(FILE *fp, const struct jval *v)
{
	size_t	i;

	switch (v->type) {
	case J_NULL:
		fputs("null", fp);
		break;
	case J_BOOL:
		fputs(v->b ? "true" : "false", fp);
		break;
	case J_NUM:
		if (v->num == floor(v->num) && fabs(v->num) < 9e15)
			fprintf(fp, "%.0f", v->num);
		else
			fprintf(fp, "%.17g", v->num);
		break;
	case J_STR:
		cli_print_str(fp, v->str, v->slen);
		break;
	case J_ARR:
	case J_OBJ:
		fputc(v->type == J_ARR ? '[' : '{', fp);
		for (i = 0; i < v->n; i++) {
			if (i > 0)
				fputc(',', fp);
			if (v->type == J_OBJ) {
				cli_print_str(fp, v->keys[i], strlen(v->keys[i]));
				fputc(':', fp);
			}
			cli_print_value(fp, v->items[i]);
		}
		fputc(v->type == J_ARR ? ']' : '}', fp);
		break;
	}
}

void
cli_print_json(FILE *fp, const struct jval *v)
{
	cli_print_value(fp, v);
	fputc('\n', fp);
}

int
cli_request(const struct cli *cli, const char *line,
    void (*print)(const struct jval *, void *), void *arg)
{
	struct jval	*data = NULL;
	char		 path[512], err[512];
	int		 rc;

	cli_control_path(cli, path, sizeof(path));
	rc = control_request(path, line, CLI_TIMEOUT_MS, &data, err, sizeof(err));
	if (rc == -2) {
		fprintf(stderr, "%s: %s\n", cli->daemon, err);
		return 3;
	}
	if (rc == -1) {
		fprintf(stderr, "%s: %s\n", cli->daemon, err);
		return 1;
	}
	if (cli->json || print == NULL)
		cli_print_json(stdout, data);
	else
		print(data, arg);
	jval_free(data);
	return 0;
}

int
cli_check_config(const struct cli *cli,
    int (*parse)(const char *path, struct cfg_errs *))
{
	struct cfg_errs	errs = { NULL, 0 };
	int		rc;

	rc = parse(cli->conf_path, &errs);
	if (rc == 0 && errs.n == 0) {
		printf("%s: configuration OK\n", cli->conf_path);
		return 0;
	}
	cfg_errs_print(&errs, stderr);
	fprintf(stderr, "%s: %zu error%s, configuration refused\n",
	    cli->conf_path, errs.n, errs.n == 1 ? "" : "s");
	cfg_errs_free(&errs);
	return 1;
}
