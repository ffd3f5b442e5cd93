/*
 * conf.c: spoolsync's configuration: the YAML file, validated whole (paths,
 * peers, the cluster key's permissions), into a plain struct spoolsync_conf
 * that reload swaps in only when it is valid.
 */
#include <stdlib.h>
#include <string.h>

#include "spoolsync.h"

static const char *const spoolsync_keys[] = {
	"node", "root", "listen", "peers", "cluster_key", "mode", "exclude",
	"conflict_dir", "state_dir", "coalesce", "coalesce_max", "anti_entropy",
	"reconnect_max", "whole_file_below", NULL
};
static const char *const peer_keys[] = { "name", "address", NULL };
static const char *const mode_names[] = { "send", "receive", "bidirectional", NULL };
/* Prosody rewrites <file>~ then renames it: the scratch copy never ships. */
static const char *const default_excludes[] = { "*~", NULL };

const char *
spoolsync_mode_name(int mode)
{
	return mode >= MODE_SEND && mode <= MODE_BIDIR ? mode_names[mode - 1] : "?";
}

static void
conf_abs_path(struct cfg_errs *errs, const struct cfg_node *root, const char *key,
    int required, const char **out)
{
	const char	*p = NULL;

	if (cfg_get_str(errs, root, key, required, &p) == 0 && p != NULL) {
		if (p[0] != '/' || strstr(p, "/../") != NULL ||
		    strcmp(p + strlen(p) - (strlen(p) >= 3 ? 3 : 0), "/..") == 0)
			cfg_err(errs, cfg_map_get(root, key), key,
			    "must be an absolute path without '..'");
		else
			*out = p;
	}
}

/* 1 when path B is A or lies beneath A (both absolute, no '..'). */
static int
conf_path_within(const char *a, const char *b)
{
	size_t	n = strlen(a);

	while (n > 1 && a[n - 1] == '/')
		n--;
	return strncmp(a, b, n) == 0 && (b[n] == '\0' || b[n] == '/' || n == 1);
}

static void
conf_peers(struct cfg_errs *errs, const struct cfg_node *root,
    struct spoolsync_conf *c)
{
	const struct cfg_node	*list, *p;
	struct spoolsync_peer_conf *pc;
	size_t			 i, j;

	if ((list = cfg_get_list(errs, root, "peers", 1)) == NULL)
		return;
	if (list->n == 0)
		cfg_err(errs, list, "peers", "needs at least one peer");
	c->peers = xcalloc(list->n, sizeof(*c->peers));
	for (i = 0; i < list->n; i++) {
		p = list->vals[i];
		if (cfg_expect(errs, p, "peers", CFG_MAP) == -1)
			continue;
		cfg_check_keys(errs, p, peer_keys);
		pc = &c->peers[c->npeers];
		if (cfg_get_str(errs, p, "name", 1, &pc->name) == -1 ||
		    cfg_get_addr(errs, p, "address", 1, &pc->address) == -1 ||
		    pc->name == NULL)
			continue;
		if (!wire_name_valid(pc->name)) {
			cfg_err(errs, cfg_map_get(p, "name"), "name", "'%s' is not a "
			    "node name (1-64 of A-Z a-z 0-9 . _ -)", pc->name);
			continue;
		}
		if (c->node != NULL && strcmp(pc->name, c->node) == 0)
			cfg_err(errs, cfg_map_get(p, "name"), "name",
			    "'%s' is this node itself", pc->name);
		for (j = 0; j < c->npeers; j++)
			if (strcmp(c->peers[j].name, pc->name) == 0)
				cfg_err(errs, cfg_map_get(p, "name"), "name",
				    "peer '%s' is listed twice", pc->name);
		c->npeers++;
	}
}

static void
conf_excludes(struct cfg_errs *errs, const struct cfg_node *root,
    struct spoolsync_conf *c)
{
	const struct cfg_node	*list;
	const char		*pat;
	char			 err[256];
	size_t			 i;

	c->exclude = exclude_new();
	if ((list = cfg_get_list(errs, root, "exclude", 0)) == NULL) {
		if (cfg_map_get(root, "exclude") != NULL)
			return;
		for (i = 0; default_excludes[i] != NULL; i++)
			if (exclude_add(c->exclude, default_excludes[i], err,
			    sizeof(err)) == -1)
				fatalx("default exclude: %s", err);
		return;
	}
	for (i = 0; i < list->n; i++) {
		if (cfg_node_str(errs, list->vals[i], "exclude", &pat) == -1)
			continue;
		if (exclude_add(c->exclude, pat, err, sizeof(err)) == -1)
			cfg_err(errs, list->vals[i], "exclude", "%s", err);
	}
}

static void
conf_key(struct cfg_errs *errs, const struct cfg_node *root,
    struct spoolsync_conf *c)
{
	char	err[512];

	conf_abs_path(errs, root, "cluster_key", 1, &c->cluster_key_path);
	if (c->cluster_key_path == NULL)
		return;
	c->key = xcalloc(1, sizeof(*c->key));
	if (auth_key_load(c->cluster_key_path, c->key, err, sizeof(err)) == -1)
		cfg_err(errs, cfg_map_get(root, "cluster_key"), "cluster_key", "%s", err);
}

static void
conf_tuning(struct cfg_errs *errs, const struct cfg_node *root,
    struct spoolsync_conf *c)
{
	cfg_get_duration_ms(errs, root, "coalesce", 0, 0, 1000, &c->coalesce_ms);
	cfg_get_duration_ms(errs, root, "coalesce_max", 0, 1, 10000,
	    &c->coalesce_max_ms);
	if (c->coalesce_max_ms < c->coalesce_ms)
		cfg_err(errs, cfg_map_get(root, "coalesce_max"), "coalesce_max",
		    "must not be shorter than coalesce");
	cfg_get_duration_ms(errs, root, "anti_entropy", 0, 1000, 86400000,
	    &c->anti_entropy_ms);
	cfg_get_duration_ms(errs, root, "reconnect_max", 0, 100, 600000,
	    &c->reconnect_max_ms);
	cfg_get_size(errs, root, "whole_file_below", 0, 0, 64 * 1024 * 1024,
	    &c->whole_below);
}

static void
conf_defaults(struct spoolsync_conf *c)
{
	common_conf_defaults(&c->common, "spoolsync");
	c->mode = MODE_BIDIR;
	c->conflict_dir = "/var/lib/jabber-ha/conflicts";
	c->state_dir = "/var/lib/jabber-ha/spoolsync";
	c->coalesce_ms = 5;
	c->coalesce_max_ms = 50;
	c->anti_entropy_ms = 60000;
	c->reconnect_max_ms = 5000;
	c->whole_below = 16 * 1024;
}

void *
spoolsync_conf_load(const char *path, struct cfg_errs *errs)
{
	struct spoolsync_conf	*c = xcalloc(1, sizeof(*c));
	const struct cfg_node	*root;
	size_t			 before = errs->n;
	int			 mode = -1;

	conf_defaults(c);
	if ((c->doc = common_conf_load(path, errs)) == NULL)
		goto fail;
	root = c->doc->root;
	cfg_check_keys(errs, root, common_conf_keys_with(spoolsync_keys));
	common_conf_parse(errs, root, &c->common);
	if (cfg_get_str(errs, root, "node", 1, &c->node) == 0 && c->node != NULL &&
	    !wire_name_valid(c->node)) {
		cfg_err(errs, cfg_map_get(root, "node"), "node", "'%s' is not a "
		    "node name (1-64 of A-Z a-z 0-9 . _ -)", c->node);
		c->node = NULL;
	}
	conf_abs_path(errs, root, "root", 1, &c->root);
	if (cfg_get_addr(errs, root, "listen", 0, &c->listen) == 0 &&
	    cfg_map_get(root, "listen") != NULL)
		c->has_listen = 1;
	conf_peers(errs, root, c);
	conf_key(errs, root, c);
	if (cfg_get_enum(errs, root, "mode", 0, mode_names, &mode) == 0 && mode >= 0)
		c->mode = MODE_SEND + mode;	/* choices are in enum order */
	conf_excludes(errs, root, c);
	conf_abs_path(errs, root, "conflict_dir", 0, &c->conflict_dir);
	conf_abs_path(errs, root, "state_dir", 0, &c->state_dir);
	if (c->root != NULL && conf_path_within(c->root, c->conflict_dir))
		cfg_err(errs, cfg_map_get(root, "conflict_dir"), "conflict_dir",
		    "must be outside the root %s (it would replicate)", c->root);
	if (c->root != NULL && conf_path_within(c->root, c->state_dir))
		cfg_err(errs, cfg_map_get(root, "state_dir"), "state_dir",
		    "must be outside the root %s", c->root);
	conf_tuning(errs, root, c);
	if (errs->n > before)
		goto fail;
	return c;
fail:
	spoolsync_conf_free(c);
	return NULL;
}

void
spoolsync_conf_free(void *p)
{
	struct spoolsync_conf	*c = p;

	if (c == NULL)
		return;
	if (c->key != NULL)
		explicit_bzero(c->key, sizeof(*c->key));
	free(c->key);
	free(c->peers);
	exclude_free(c->exclude);
	cfg_free(c->doc);
	free(c);
}

const struct common_conf *
spoolsync_conf_common(const void *p)
{
	const struct spoolsync_conf	*c = p;

	return &c->common;
}
