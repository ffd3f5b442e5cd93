/*
 * conf.c: proxyd's configuration: the YAML file, validated whole (listeners,
 * certificates, limits, domains), into a plain struct proxyd_conf that
 * reload swaps in only when it is valid.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "proxyd.h"

#define CONF_MAX_LISTEN		64
#define CONF_MAX_DOMAINS	100000
#define CONF_MAX_SIZE		(1024ULL * 1024 * 1024)
#define CONF_MAX_TIMEOUT_MS	(24LL * 3600 * 1000)
#define CONF_MAX_SPREAD_MS	(3600LL * 1000)
#define CONF_MAX_WORKERS	64
#define CONF_AUTO_WORKERS	16

static int64_t	conf_default_workers(void);
#define CONF_MOVE_SPREAD_MS	5000

static const char *const proxyd_keys[] = {
	"listen", "hamon", "tls", "require_tls", "limits", "domains",
	"move_spread", "backend_tls", "backends", "workers", NULL
};
static const char *const listen_keys[] = { "address", "tls", NULL };
static const char *const tls_keys[] = { "cert", "key", NULL };
static const char *const listen_tls_names[] = { "none", "starttls", "direct", NULL };
static const char *const backend_tls_keys[] = {
	"mode", "ca", "verify", "name", "port", NULL
};
static const char *const backend_keys[] = { "name", "tls", NULL };
static const char *const backend_tls_modes[] = { "none", "starttls", "direct", NULL };
static const char *const limits_keys[] = {
	"stanza_bytes", "stanza_bytes_preauth", "depth", "attributes",
	"attribute_bytes", "text_bytes", "namespaces", "buffer_bytes",
	"buffer_bytes_preauth", "stanzas_per_second", "stanza_timeout",
	"auth_timeout", NULL
};
static const char *const domain_keys[] = {
	"name", "max_connections", "prefer", "limits", "tls", "move_spread", NULL
};

static int	conf_name_valid(const char *);

static void
conf_limits_default(struct limits_conf *l)
{
	xmlfilter_limits_default(&l->xml);
	l->stanzas_per_second = 50;
	l->stanza_timeout_ms = 30000;
	l->auth_timeout_ms = 60000;
}

static void
conf_size(struct cfg_errs *errs, const struct cfg_node *m, const char *key,
    uint64_t min, size_t *out)
{
	uint64_t	v = *out;

	if (cfg_get_size(errs, m, key, 0, min, CONF_MAX_SIZE, &v) == 0)
		*out = (size_t)v;
}

static void
conf_count(struct cfg_errs *errs, const struct cfg_node *m, const char *key,
    int64_t min, int64_t max, size_t *out)
{
	int64_t	v = (int64_t)*out;

	if (cfg_get_int(errs, m, key, 0, min, max, &v) == 0)
		*out = (size_t)v;
}

/* Keys absent from N keep what L holds already (the defaults, or the
 * global limits for a domain). */
static void
conf_limits(struct cfg_errs *errs, const struct cfg_node *parent,
    struct limits_conf *l)
{
	const struct cfg_node	*m;
	char			 err[256];

	if ((m = cfg_get_map(errs, parent, "limits", 0)) == NULL)
		return;
	cfg_check_keys(errs, m, limits_keys);
	conf_size(errs, m, "stanza_bytes", 256, &l->xml.stanza_bytes);
	conf_size(errs, m, "stanza_bytes_preauth", 256, &l->xml.stanza_bytes_preauth);
	conf_count(errs, m, "depth", 2, XML_LIMIT_MAX_DEPTH, &l->xml.depth);
	conf_count(errs, m, "attributes", 1, 100000, &l->xml.attrs);
	conf_size(errs, m, "attribute_bytes", 16, &l->xml.attr_bytes);
	conf_size(errs, m, "text_bytes", 16, &l->xml.text_bytes);
	conf_count(errs, m, "namespaces", 1, 1000, &l->xml.ns_decls);
	conf_size(errs, m, "buffer_bytes", 4096, &l->xml.buffer_bytes);
	conf_size(errs, m, "buffer_bytes_preauth", 4096, &l->xml.buffer_bytes_preauth);
	cfg_get_int(errs, m, "stanzas_per_second", 0, 0, 1000000,
	    &l->stanzas_per_second);
	cfg_get_duration_ms(errs, m, "stanza_timeout", 0, 100, CONF_MAX_TIMEOUT_MS,
	    &l->stanza_timeout_ms);
	cfg_get_duration_ms(errs, m, "auth_timeout", 0, 100, CONF_MAX_TIMEOUT_MS,
	    &l->auth_timeout_ms);
	if (xmlfilter_limits_check(&l->xml, err, sizeof(err)) == -1)
		cfg_err(errs, m, "limits", "%s", err);
}

static void
conf_file(struct cfg_errs *errs, const struct cfg_node *m, const char *key,
    const char **out)
{
	if (cfg_get_str(errs, m, key, 1, out) != 0 || *out == NULL)
		return;
	if (access(*out, R_OK) == -1) {
		cfg_err(errs, cfg_map_get(m, key), key, "cannot read %s: %s", *out,
		    strerror(errno));
		*out = NULL;
	}
}

static void
conf_tls(struct cfg_errs *errs, const struct cfg_node *parent,
    struct tls_conf *t)
{
	const struct cfg_node	*m;

	if ((m = cfg_get_map(errs, parent, "tls", 0)) == NULL)
		return;
	cfg_check_keys(errs, m, tls_keys);
	conf_file(errs, m, "cert", &t->cert);
	conf_file(errs, m, "key", &t->key);
}

/* Keys absent keep what T holds (the defaults, or the global setting). */
static void
conf_backend_tls(struct cfg_errs *errs, const struct cfg_node *parent,
    const char *key, struct backend_tls_conf *t)
{
	const struct cfg_node	*m;

	if ((m = cfg_get_map(errs, parent, key, 0)) == NULL)
		return;
	cfg_check_keys(errs, m, backend_tls_keys);
	cfg_get_enum(errs, m, "mode", 0, backend_tls_modes, &t->mode);
	if (cfg_map_get(m, "ca") != NULL)
		conf_file(errs, m, "ca", &t->ca);
	cfg_get_bool(errs, m, "verify", 0, &t->verify);
	if (cfg_get_str(errs, m, "name", 0, &t->name) == 0 && t->name != NULL &&
	    !conf_name_valid(t->name)) {
		cfg_err(errs, cfg_map_get(m, "name"), "name", "'%s' is not a host "
		    "name (letters, digits, . - _)", t->name);
		t->name = NULL;
	}
	cfg_get_int(errs, m, "port", 0, 0, 65535, &t->port);
}

/* Per-backend settings, by the names hamon's view uses. */
static void
conf_backends(struct cfg_errs *errs, const struct cfg_node *root,
    struct proxyd_conf *c)
{
	const struct cfg_node	*list, *bn;
	struct upstream_conf	*b;
	size_t			 i, j;

	if ((list = cfg_get_list(errs, root, "backends", 0)) == NULL)
		return;
	if (list->n > PVIEW_MAX_BACKENDS) {
		cfg_err(errs, list, "backends", "%zu entries, at most %d", list->n,
		    PVIEW_MAX_BACKENDS);
		return;
	}
	c->backends = xcalloc(list->n + 1, sizeof(*c->backends));
	for (i = 0; i < list->n; i++) {
		bn = list->vals[i];
		if (cfg_expect(errs, bn, "backends", CFG_MAP) == -1)
			continue;
		b = &c->backends[c->nbackends++];
		cfg_check_keys(errs, bn, backend_keys);
		b->tls = c->backend_tls;
		if (cfg_get_str(errs, bn, "name", 1, &b->name) == 0 &&
		    b->name != NULL && !conf_name_valid(b->name)) {
			cfg_err(errs, cfg_map_get(bn, "name"), "name", "'%s' is not a "
			    "backend name (letters, digits, . - _)", b->name);
			b->name = NULL;
		}
		conf_backend_tls(errs, bn, "tls", &b->tls);
		for (j = 0; b->name != NULL && j + 1 < c->nbackends; j++)
			if (c->backends[j].name != NULL &&
			    strcmp(c->backends[j].name, b->name) == 0)
				cfg_err(errs, cfg_map_get(bn, "name"), "name",
				    "backend '%s' is listed twice", b->name);
	}
}

static void
conf_listen(struct cfg_errs *errs, const struct cfg_node *root,
    struct proxyd_conf *c)
{
	const struct cfg_node	*list, *ln;
	struct listen_conf	*l;
	size_t			 i, j;

	/* None is allowed: an idle proxyd that a reload can fill. */
	if ((list = cfg_get_list(errs, root, "listen", 0)) == NULL)
		return;
	if (list->n > CONF_MAX_LISTEN) {
		cfg_err(errs, list, "listen", "%zu entries, at most %d", list->n,
		    CONF_MAX_LISTEN);
		return;
	}
	c->listen = xcalloc(list->n + 1, sizeof(*c->listen));
	for (i = 0; i < list->n; i++) {
		ln = list->vals[i];
		if (cfg_expect(errs, ln, "listen", CFG_MAP) == -1)
			continue;
		l = &c->listen[c->nlisten++];
		cfg_check_keys(errs, ln, listen_keys);
		cfg_get_addr(errs, ln, "address", 1, &l->addr);
		l->tls = LISTEN_TLS_STARTTLS;
		cfg_get_enum(errs, ln, "tls", 0, listen_tls_names, &l->tls);
		for (j = 0; j + 1 < c->nlisten && l->addr.len > 0; j++)
			if (strcmp(c->listen[j].addr.text, l->addr.text) == 0)
				cfg_err(errs, cfg_map_get(ln, "address"), "address",
				    "%s is listed twice", l->addr.text);
	}
}

static int
conf_name_valid(const char *s)
{
	size_t	n = strlen(s);

	return n > 0 && n <= 1023 && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789.-_") == n && s[0] != '.' &&
	    s[n - 1] != '.';
}

static void
conf_domain(struct cfg_errs *errs, const struct cfg_node *dn,
    const struct proxyd_conf *c, struct domain_conf *d)
{
	cfg_check_keys(errs, dn, domain_keys);
	d->limits = c->limits;
	if (cfg_get_str(errs, dn, "name", 1, &d->name) == 0 && d->name != NULL &&
	    !conf_name_valid(d->name)) {
		cfg_err(errs, cfg_map_get(dn, "name"), "name", "'%s' is not a domain "
		    "name (letters, digits, . - _)", d->name);
		d->name = NULL;
	}
	cfg_get_int(errs, dn, "max_connections", 0, 0, 100000000,
	    &d->max_connections);
	cfg_get_str(errs, dn, "prefer", 0, &d->prefer);
	d->move_spread_ms = c->move_spread_ms;
	cfg_get_duration_ms(errs, dn, "move_spread", 0, 0, CONF_MAX_SPREAD_MS,
	    &d->move_spread_ms);
	conf_limits(errs, dn, &d->limits);
	conf_tls(errs, dn, &d->tls);
}

static void
conf_domains(struct cfg_errs *errs, const struct cfg_node *root,
    struct proxyd_conf *c)
{
	const struct cfg_node	*list, *dn;
	struct domain_conf	*d;
	size_t			 i, j;

	/* None is allowed: every stream then gets host-unknown. */
	if ((list = cfg_get_list(errs, root, "domains", 0)) == NULL)
		return;
	if (list->n > CONF_MAX_DOMAINS) {
		cfg_err(errs, list, "domains", "%zu domains, at most %d", list->n,
		    CONF_MAX_DOMAINS);
		return;
	}
	c->domains = xcalloc(list->n + 1, sizeof(*c->domains));
	for (i = 0; i < list->n; i++) {
		dn = list->vals[i];
		if (cfg_expect(errs, dn, "domains", CFG_MAP) == -1)
			continue;
		d = &c->domains[c->ndomains++];
		conf_domain(errs, dn, c, d);
		for (j = 0; d->name != NULL && j + 1 < c->ndomains; j++)
			if (c->domains[j].name != NULL &&
			    strcasecmp(c->domains[j].name, d->name) == 0)
				cfg_err(errs, cfg_map_get(dn, "name"), "name",
				    "domain '%s' is listed twice", d->name);
	}
}

static int
conf_domain_cmp(const void *a, const void *b)
{
	return strcasecmp((*(struct domain_conf *const *)a)->name,
	    (*(struct domain_conf *const *)b)->name);
}

/* Every connection and every view change looks domains up: by bsearch. */
static void
conf_index(struct proxyd_conf *c)
{
	size_t	i;

	c->by_name = xcalloc(c->ndomains + 1, sizeof(*c->by_name));
	for (i = 0; i < c->ndomains; i++)
		c->by_name[i] = &c->domains[i];
	qsort(c->by_name, c->ndomains, sizeof(*c->by_name), conf_domain_cmp);
}

/* Rules between keys: TLS listeners need a certificate somewhere. */
static void
conf_cross(struct cfg_errs *errs, const struct cfg_node *root,
    struct proxyd_conf *c)
{
	size_t	i, j;
	int	all_certs = 1;

	for (j = 0; j < c->ndomains; j++)
		if (c->domains[j].tls.cert == NULL)
			all_certs = 0;
	for (i = 0; i < c->nlisten; i++) {
		/* An unreadable tls: file was reported already. */
		if (c->listen[i].tls != LISTEN_TLS_NONE && c->tls.cert == NULL &&
		    cfg_map_get(root, "tls") == NULL && !all_certs)
			cfg_err(errs, cfg_map_get(root, "listen"), "listen",
			    "%s uses TLS: give tls: {cert, key} (or one for every "
			    "domain)", c->listen[i].addr.text);
		if (c->listen[i].tls == LISTEN_TLS_NONE && c->require_tls)
			cfg_err(errs, cfg_map_get(root, "require_tls"), "require_tls",
			    "%s has tls: none: with require_tls use starttls or "
			    "direct", c->listen[i].addr.text);
	}
}

void *
proxyd_conf_load(const char *path, struct cfg_errs *errs)
{
	struct proxyd_conf	*c = xcalloc(1, sizeof(*c));
	const struct cfg_node	*root;
	size_t			 before = errs->n;

	common_conf_defaults(&c->common, "proxyd");
	conf_limits_default(&c->limits);
	c->hamon = "/run/jabber-ha/hamon.sock";
	c->move_spread_ms = CONF_MOVE_SPREAD_MS;
	c->backend_tls.verify = 1;
	if ((c->doc = common_conf_load(path, errs)) == NULL)
		goto fail;
	root = c->doc->root;
	cfg_check_keys(errs, root, common_conf_keys_with(proxyd_keys));
	common_conf_parse(errs, root, &c->common);
	cfg_get_str(errs, root, "hamon", 0, &c->hamon);
	cfg_get_bool(errs, root, "require_tls", 0, &c->require_tls);
	cfg_get_int(errs, root, "workers", 0, 0, CONF_MAX_WORKERS, &c->workers);
	if (c->workers == 0)
		c->workers = conf_default_workers();
	conf_tls(errs, root, &c->tls);
	conf_limits(errs, root, &c->limits);
	cfg_get_duration_ms(errs, root, "move_spread", 0, 0, CONF_MAX_SPREAD_MS,
	    &c->move_spread_ms);
	conf_backend_tls(errs, root, "backend_tls", &c->backend_tls);
	conf_backends(errs, root, c);
	conf_listen(errs, root, c);
	conf_domains(errs, root, c);
	conf_cross(errs, root, c);
	if (errs->n > before)
		goto fail;
	conf_index(c);
	return c;
fail:
	proxyd_conf_free(c);
	return NULL;
}

/*
 * workers: 0 (the default): one per CPU proxyd may run on (its affinity:
 * taskset, systemd's CPUAffinity=, a cpuset), at most CONF_AUTO_WORKERS.
 * Two workers on one CPU only take turns.  HAProxy sizes nbthread the same.
 */
static int64_t
conf_default_workers(void)
{
	cpu_set_t	set;
	long		n;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = CPU_COUNT(&set);
	else
		n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > CONF_AUTO_WORKERS ? CONF_AUTO_WORKERS : n;
}

void
proxyd_conf_free(void *p)
{
	struct proxyd_conf	*c = p;

	if (c == NULL)
		return;
	free(c->listen);
	free(c->backends);
	free(c->by_name);
	free(c->domains);
	cfg_free(c->doc);
	free(c);
}

const struct common_conf *
proxyd_conf_common(const void *p)
{
	const struct proxyd_conf	*c = p;

	return &c->common;
}

int
proxyd_conf_check(const char *path, struct cfg_errs *errs)
{
	void	*c;

	if ((c = proxyd_conf_load(path, errs)) == NULL)
		return -1;
	proxyd_conf_free(c);
	return 0;
}

const struct domain_conf *
proxyd_conf_domain(const struct proxyd_conf *c, const char *name)
{
	struct domain_conf	 key, *kp = &key, **found;

	if (c->by_name == NULL || name == NULL)
		return NULL;
	key.name = name;
	found = bsearch(&kp, c->by_name, c->ndomains, sizeof(*c->by_name),
	    conf_domain_cmp);
	return found != NULL ? *found : NULL;
}
