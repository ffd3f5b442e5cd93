/*
 * conf.c: hamon's configuration: the YAML file, validated whole (timing, every
 * backend and its checks, the probe password's file mode), into a plain
 * struct hamon_conf that reload swaps in only when it is valid.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hamon.h"

#define CONF_PASSWORD_MAX	1024

static const char *const hamon_keys[] = {
	"node", "interval", "timeout", "rise", "fall", "state_file",
	"holds_max_age", "on_change", "on_change_timeout", "backends", NULL
};
static const char *const backend_keys[] = {
	"name", "address", "domain", "checks", "login", "spoolsync", "max_lag",
	"spool_node", "exec", NULL
};
static const char *const login_keys[] = { "user", "password_file", NULL };
static const char *const kind_names[CHECK_NKINDS + 1] = {
	"xmpp", "login", "spoolsync", "exec", NULL
};

const char *
check_kind_name(enum check_kind k)
{
	return (unsigned)k < CHECK_NKINDS ? kind_names[k] : "?";
}

int
check_kind_parse(const char *s)
{
	int	i;

	for (i = 0; i < CHECK_NKINDS; i++)
		if (strcmp(s, kind_names[i]) == 0)
			return i;
	return -1;
}

int
hamon_name_valid(const char *s)
{
	size_t	n = strlen(s);

	if (n == 0 || n > HAMON_NAME_MAX)
		return 0;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789._-") == n;
}

static int
conf_str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

int
backend_conf_equal(const struct backend_conf *a, const struct backend_conf *b)
{
	return conf_str_eq(a->name, b->name) &&
	    strcmp(a->address.text, b->address.text) == 0 &&
	    conf_str_eq(a->domain, b->domain) && a->checks == b->checks &&
	    conf_str_eq(a->login_user, b->login_user) &&
	    conf_str_eq(a->login_password, b->login_password) &&
	    conf_str_eq(a->spoolsync_url, b->spoolsync_url) &&
	    a->max_lag_ms == b->max_lag_ms &&
	    conf_str_eq(a->spool_node, b->spool_node) &&
	    conf_str_eq(a->exec_command, b->exec_command);
}

/* The probe's password: the first line of a file nobody else may read. */
static int
conf_read_password(const char *path, char **out, char *err, size_t errlen)
{
	char		 buf[CONF_PASSWORD_MAX + 2];
	struct stat	 st;
	ssize_t		 n;
	size_t		 len;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) == -1) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s is not a regular file", path);
		goto fail;
	}
	if (st.st_mode & S_IRWXO) {
		snprintf(err, errlen, "%s is open to other users (mode %04o): "
		    "chmod o-rwx it", path, (unsigned)(st.st_mode & 07777));
		goto fail;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		goto fail;
	}
	buf[n] = '\0';
	len = strcspn(buf, "\r\n");
	if (len > CONF_PASSWORD_MAX) {
		snprintf(err, errlen, "%s: the password is longer than %d bytes",
		    path, CONF_PASSWORD_MAX);
		goto fail;
	}
	if (len == 0) {
		snprintf(err, errlen, "%s: the first line (the password) is empty",
		    path);
		goto fail;
	}
	*out = xstrndup(buf, len);
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return 0;
fail:
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return -1;
}

static void
conf_checks(struct cfg_errs *errs, const struct cfg_node *bn,
    struct backend_conf *b)
{
	const struct cfg_node	*list;
	size_t			 i;
	int			 k;

	b->checks = CHECK_BIT(CHECK_XMPP);
	if ((list = cfg_get_list(errs, bn, "checks", 0)) == NULL)
		return;
	b->checks = 0;
	if (list->n == 0)
		cfg_err(errs, list, "checks", "needs at least one of: xmpp, login, "
		    "spoolsync, exec");
	for (i = 0; i < list->n; i++) {
		if (cfg_node_enum(errs, list->vals[i], "checks", kind_names, &k) == -1)
			continue;
		if (b->checks & CHECK_BIT(k))
			cfg_err(errs, list->vals[i], "checks", "'%s' is listed twice",
			    kind_names[k]);
		b->checks |= CHECK_BIT(k);
	}
	if (b->checks != 0 && (b->checks & CHECKS_LIVENESS) == 0)
		cfg_err(errs, list, "checks", "needs one of xmpp, login or exec: "
		    "spoolsync alone says nothing about the Jabber server");
}

static void
conf_login(struct cfg_errs *errs, const struct cfg_node *bn,
    struct backend_conf *b)
{
	const struct cfg_node	*ln = cfg_map_get(bn, "login");
	char			 err[512];

	if (!(b->checks & CHECK_BIT(CHECK_LOGIN))) {
		if (ln != NULL)
			cfg_err(errs, ln, "login", "given, but 'login' is not in "
			    "checks: add it there or remove this");
		return;
	}
	if ((ln = cfg_get_map(errs, bn, "login", 1)) == NULL)
		return;
	cfg_check_keys(errs, ln, login_keys);
	cfg_get_str(errs, ln, "user", 1, &b->login_user);
	if (cfg_get_str(errs, ln, "password_file", 1, &b->password_file) != 0 ||
	    b->password_file == NULL)
		return;
	if (conf_read_password(b->password_file, &b->login_password, err,
	    sizeof(err)) == -1)
		cfg_err(errs, cfg_map_get(ln, "password_file"), "password_file",
		    "%s", err);
}

static void
conf_spoolsync(struct cfg_errs *errs, const struct cfg_node *bn,
    struct backend_conf *b)
{
	const struct cfg_node	*sn = cfg_map_get(bn, "spoolsync");
	const char		*u;

	cfg_get_duration_ms(errs, bn, "max_lag", 0, 0, 3600000, &b->max_lag_ms);
	if (cfg_get_str(errs, bn, "spool_node", 0, &b->spool_node) == 0 &&
	    b->spool_node != NULL && !hamon_name_valid(b->spool_node)) {
		cfg_err(errs, cfg_map_get(bn, "spool_node"), "spool_node", "'%s' "
		    "is not a spoolsync node name", b->spool_node);
		b->spool_node = NULL;
	}
	if (!(b->checks & CHECK_BIT(CHECK_SPOOLSYNC))) {
		if (sn != NULL)
			cfg_err(errs, sn, "spoolsync", "given, but 'spoolsync' is "
			    "not in checks: add it there or remove this");
		return;
	}
	if (cfg_get_str(errs, bn, "spoolsync", 1, &b->spoolsync_url) != 0 ||
	    (u = b->spoolsync_url) == NULL)
		return;
	if (strncmp(u, "http://", 7) != 0 || u[7] == '\0' || u[7] == '/' ||
	    strpbrk(u, " \t\r\n") != NULL) {
		cfg_err(errs, sn, "spoolsync", "must be an http:// URL of "
		    "spoolsync's /status, like http://192.0.2.1:9291/status");
		b->spoolsync_url = NULL;
	}
}

static void
conf_exec(struct cfg_errs *errs, const struct cfg_node *bn,
    struct backend_conf *b)
{
	const struct cfg_node	*en = cfg_map_get(bn, "exec");

	if (!(b->checks & CHECK_BIT(CHECK_EXEC))) {
		if (en != NULL)
			cfg_err(errs, en, "exec", "given, but 'exec' is not in "
			    "checks: add it there or remove this");
		return;
	}
	if (cfg_get_str(errs, bn, "exec", 1, &b->exec_command) == 0 &&
	    b->exec_command != NULL && b->exec_command[strspn(b->exec_command,
	    " \t")] == '\0') {
		cfg_err(errs, en, "exec", "the command is empty");
		b->exec_command = NULL;
	}
}

static void
conf_backend(struct cfg_errs *errs, const struct cfg_node *bn,
    struct backend_conf *b)
{
	const struct cfg_node	*nn;

	b->max_lag_ms = 2000;
	cfg_check_keys(errs, bn, backend_keys);
	if (cfg_get_str(errs, bn, "name", 1, &b->name) == 0 && b->name != NULL &&
	    !hamon_name_valid(b->name)) {
		nn = cfg_map_get(bn, "name");
		cfg_err(errs, nn, "name", "'%s' is not a backend name (1-%d of "
		    "A-Z a-z 0-9 . _ -)", b->name, HAMON_NAME_MAX);
		b->name = NULL;
	}
	if (cfg_get_addr(errs, bn, "address", 1, &b->address) == 0 &&
	    b->address.len > 0)
		/* proxyd resolves nothing: the view names numeric addresses only. */
		net_sockaddr_str((struct sockaddr *)&b->address.ss, b->address.len,
		    b->address_numeric, sizeof(b->address_numeric));
	conf_checks(errs, bn, b);
	cfg_get_str(errs, bn, "domain",
	    (b->checks & (CHECK_BIT(CHECK_XMPP) | CHECK_BIT(CHECK_LOGIN))) != 0,
	    &b->domain);
	conf_login(errs, bn, b);
	conf_spoolsync(errs, bn, b);
	conf_exec(errs, bn, b);
}

static void
conf_backends(struct cfg_errs *errs, const struct cfg_node *root,
    struct hamon_conf *c)
{
	const struct cfg_node	*list, *bn;
	struct backend_conf	*b;
	size_t			 i, j;

	/* No backends is allowed: an idle hamon that reload can fill. */
	if ((list = cfg_get_list(errs, root, "backends", 0)) == NULL)
		return;
	if (list->n > HAMON_MAX_BACKENDS) {
		cfg_err(errs, list, "backends", "%zu backends, at most %d",
		    list->n, HAMON_MAX_BACKENDS);
		return;
	}
	c->backends = xcalloc(list->n + 1, sizeof(*c->backends));
	for (i = 0; i < list->n; i++) {
		bn = list->vals[i];
		if (cfg_expect(errs, bn, "backends", CFG_MAP) == -1)
			continue;
		b = &c->backends[c->nbackends++];
		conf_backend(errs, bn, b);
		for (j = 0; b->name != NULL && j + 1 < c->nbackends; j++)
			if (conf_str_eq(c->backends[j].name, b->name))
				cfg_err(errs, cfg_map_get(bn, "name"), "name",
				    "backend '%s' is listed twice", b->name);
	}
}

static void
conf_node(struct cfg_errs *errs, const struct cfg_node *root,
    struct hamon_conf *c)
{
	const char	*node = NULL;
	char		 host[256];

	if (gethostname(host, sizeof(host)) == -1)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	host[strcspn(host, ".")] = '\0';
	snprintf(c->node, sizeof(c->node), "%.*s", HAMON_NAME_MAX,
	    hamon_name_valid(host) ? host : "hamon");
	if (cfg_get_str(errs, root, "node", 0, &node) != 0 || node == NULL)
		return;
	if (!hamon_name_valid(node))
		cfg_err(errs, cfg_map_get(root, "node"), "node", "'%s' is not a node "
		    "name (1-%d of A-Z a-z 0-9 . _ -)", node, HAMON_NAME_MAX);
	else
		snprintf(c->node, sizeof(c->node), "%s", node);
}

static void
conf_timing(struct cfg_errs *errs, const struct cfg_node *root,
    struct hamon_conf *c)
{
	cfg_get_duration_ms(errs, root, "interval", 0, 10, 3600000, &c->interval_ms);
	cfg_get_duration_ms(errs, root, "timeout", 0, 10, 3600000, &c->timeout_ms);
	cfg_get_int(errs, root, "rise", 0, 1, 1000, &c->rise);
	cfg_get_int(errs, root, "fall", 0, 1, 1000, &c->fall);
	cfg_get_duration_ms(errs, root, "on_change_timeout", 0, 10, 3600000,
	    &c->on_change_timeout_ms);
	cfg_get_duration_ms(errs, root, "holds_max_age", 0, 0, 86400000,
	    &c->holds_max_age_ms);
}

static void
conf_paths(struct cfg_errs *errs, const struct cfg_node *root,
    struct hamon_conf *c)
{
	const char	*p = NULL;

	if (cfg_get_str(errs, root, "state_file", 0, &p) == 0 && p != NULL) {
		if (p[0] != '/' || p[strlen(p) - 1] == '/')
			cfg_err(errs, cfg_map_get(root, "state_file"), "state_file",
			    "must be the absolute path of a file");
		else
			c->state_file = p;
	}
	p = NULL;
	if (cfg_get_str(errs, root, "on_change", 0, &p) == 0 && p != NULL) {
		if (p[strspn(p, " \t")] == '\0')
			cfg_err(errs, cfg_map_get(root, "on_change"), "on_change",
			    "the command is empty");
		else
			c->on_change = p;
	}
}

void *
hamon_conf_load(const char *path, struct cfg_errs *errs)
{
	struct hamon_conf	*c = xcalloc(1, sizeof(*c));
	const struct cfg_node	*root;
	size_t			 before = errs->n;

	common_conf_defaults(&c->common, "hamon");
	c->interval_ms = 1000;
	c->timeout_ms = 1000;
	c->rise = 2;
	c->fall = 2;
	c->on_change_timeout_ms = 10000;
	c->holds_max_age_ms = 600000;
	if ((c->doc = common_conf_load(path, errs)) == NULL)
		goto fail;
	root = c->doc->root;
	cfg_check_keys(errs, root, common_conf_keys_with(hamon_keys));
	common_conf_parse(errs, root, &c->common);
	conf_node(errs, root, c);
	conf_timing(errs, root, c);
	conf_paths(errs, root, c);
	conf_backends(errs, root, c);
	if (errs->n > before)
		goto fail;
	return c;
fail:
	hamon_conf_free(c);
	return NULL;
}

void
hamon_conf_free(void *p)
{
	struct hamon_conf	*c = p;
	size_t			 i;

	if (c == NULL)
		return;
	for (i = 0; i < c->nbackends; i++)
		if (c->backends[i].login_password != NULL) {
			explicit_bzero(c->backends[i].login_password,
			    strlen(c->backends[i].login_password));
			free(c->backends[i].login_password);
		}
	free(c->backends);
	cfg_free(c->doc);
	free(c);
}

const struct common_conf *
hamon_conf_common(const void *p)
{
	const struct hamon_conf	*c = p;

	return &c->common;
}
