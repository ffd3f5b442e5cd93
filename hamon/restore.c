/*
 * restore.c: the view state_file kept, read back strictly at start as the
 * previous view, so that a restarted hamon does not forget what was held.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hamon.h"

#define RESTORE_FILE_MAX	(8 * 1024 * 1024)
/* Clocks of one host step a little (NTP); more is a file not to trust. */
#define RESTORE_FUTURE_SLACK_MS	60000

/* 1 when there is no file; a FIFO or a device is refused, never waited on. */
static int
restore_read(const char *path, struct buf *b, uint64_t *mtime_ms, char *err,
    size_t errlen)
{
	struct stat	st;
	char		chunk[8192];
	ssize_t		n;
	int		fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) == -1) {
		if (errno == ENOENT)
			return 1;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s is not a regular file", path);
		goto fail;
	}
	*mtime_ms = st.st_mtim.tv_sec < 0 ? 0 : (uint64_t)st.st_mtim.tv_sec *
	    1000 + (uint64_t)st.st_mtim.tv_nsec / 1000000;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
		buf_add(b, chunk, (size_t)n);
		if (b->len > RESTORE_FILE_MAX) {
			snprintf(err, errlen, "%s is larger than %d bytes", path,
			    RESTORE_FILE_MAX);
			goto fail;
		}
	}
	if (n < 0) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		goto fail;
	}
	close(fd);
	return 0;
fail:
	close(fd);
	return -1;
}

/* Recent enough to trust: the hamon before stood by it not long ago. */
static int
restore_check_age(const char *path, uint64_t mtime_ms, uint64_t now_ms,
    int64_t max_age_ms, char *err, size_t errlen)
{
	if (mtime_ms > now_ms + RESTORE_FUTURE_SLACK_MS) {
		snprintf(err, errlen, "%s: modified %llu s in the future (the clock "
		    "went back?)", path,
		    (unsigned long long)((mtime_ms - now_ms) / 1000));
		return -1;
	}
	if (mtime_ms + (uint64_t)max_age_ms < now_ms) {
		snprintf(err, errlen, "%s: last written or confirmed %llu s ago, "
		    "more than holds_max_age (%lld s)", path,
		    (unsigned long long)((now_ms - mtime_ms) / 1000),
		    (long long)(max_age_ms / 1000));
		return -1;
	}
	return 0;
}

/* The top: a view (as view_json writes it) of this node. */
static int
restore_check_top(const struct jval *root, const char *path, const char *node,
    char *err, size_t errlen)
{
	const struct jval	*g, *set;
	const char		*n;

	if (root->type != J_OBJ || (set = jval_get(root, "backends")) == NULL ||
	    set->type != J_ARR || (g = jval_get(root, "generation")) == NULL ||
	    g->type != J_NUM || g->num < 0 || g->num > 9e15 ||
	    g->num != floor(g->num)) {
		snprintf(err, errlen, "%s: not a hamon view (no generation and "
		    "backends)", path);
		return -1;
	}
	if ((n = jval_str(root, "node")) == NULL || strcmp(n, node) != 0) {
		snprintf(err, errlen, "%s: the view of node '%.64s', this is '%s'",
		    path, n != NULL ? n : "?", node);
		return -1;
	}
	return 0;
}

/* Which member of a backend is wrong, or NULL. */
static const char *
restore_backend_bad(const struct jval *o)
{
	const struct jval	*v;
	const char		*s;

	if (o->type != J_OBJ)
		return "not an object";
	if ((s = jval_str(o, "name")) == NULL || !hamon_name_valid(s))
		return "name: missing or not a backend name";
	if ((s = jval_str(o, "state")) == NULL || backend_state_parse(s) < 0)
		return "state: not one of up, down, unsynced, draining, maint";
	/* Optional: a hamon that predates it held nothing. */
	v = jval_get(o, "holds");
	if (v != NULL && v->type != J_BOOL)
		return "holds: not a boolean";
	if (v != NULL && v->b && strcmp(s, "unsynced") != 0)
		return "holds: true while the state is not unsynced";
	return NULL;
}

static int
restore_configured(const struct hamon_conf *c, const char *name)
{
	size_t	i;

	for (i = 0; i < c->nbackends; i++)
		if (c->backends[i].name != NULL &&
		    strcmp(c->backends[i].name, name) == 0)
			return 1;
	return 0;
}

static void
restore_add(struct view *out, const struct jval *o)
{
	struct view_backend	*b = &out->backends[out->n++];

	memset(b, 0, sizeof(*b));
	b->name = xstrdup(jval_str(o, "name"));
	b->address = xstrdup("");
	b->last_error = xstrdup("");
	b->state = backend_state_parse(jval_str(o, "state"));
	b->holds = jval_bool(o, "holds", 0);
	b->eligible = b->state == BACKEND_UP;
	b->latency_us = -1;
	b->lag_ms = -1;
}

/* Every backend valid, or nothing taken. */
static int
restore_backends(const struct jval *root, const char *path,
    const struct hamon_conf *c, struct view *out, size_t *unknown, char *err,
    size_t errlen)
{
	const struct jval	*set = jval_get(root, "backends");
	const char		*bad, *name;
	size_t			 i, k;

	out->backends = xcalloc(set->n + 1, sizeof(*out->backends));
	for (i = 0; i < set->n; i++) {
		if ((bad = restore_backend_bad(set->items[i])) != NULL) {
			snprintf(err, errlen, "%s: backend %zu: %s", path, i + 1, bad);
			return -1;
		}
		name = jval_str(set->items[i], "name");
		for (k = 0; k < i; k++)
			if (strcmp(jval_str(set->items[k], "name"), name) == 0) {
				snprintf(err, errlen, "%s: backend '%s' is listed "
				    "twice", path, name);
				return -1;
			}
		if (!restore_configured(c, name))
			(*unknown)++;
		else
			restore_add(out, set->items[i]);
	}
	return 0;
}

static void
restore_empty(struct view *out, const char *node)
{
	memset(out, 0, sizeof(*out));
	out->node = xstrdup(node);
	out->restored = 1;
}

int
restore_view(const char *state_file, const struct hamon_conf *c,
    uint64_t now_ms, struct view *out, size_t *unknown, char *err,
    size_t errlen)
{
	struct jval	*root = NULL;
	struct buf	 b;
	uint64_t	 mtime_ms = 0;
	char		 perr[256];
	int		 r, rc = -1;

	restore_empty(out, c->node);
	*unknown = 0;
	buf_init(&b);
	if ((r = restore_read(state_file, &b, &mtime_ms, err, errlen)) != 0) {
		rc = r;
		goto done;
	}
	if (restore_check_age(state_file, mtime_ms, now_ms, c->holds_max_age_ms,
	    err, errlen) == -1)
		goto done;
	if ((root = json_parse(b.data != NULL ? b.data : "", b.len, perr,
	    sizeof(perr))) == NULL) {
		snprintf(err, errlen, "%s: not valid JSON: %s", state_file, perr);
		goto done;
	}
	if (restore_check_top(root, state_file, c->node, err, errlen) == -1 ||
	    restore_backends(root, state_file, c, out, unknown, err, errlen) == -1)
		goto done;
	rc = 0;
done:
	if (rc != 0) {
		view_free(out);
		restore_empty(out, c->node);
		*unknown = 0;
	}
	jval_free(root);
	buf_free(&b);
	return rc;
}
