/*
 * view.c: the membership view as a pure function of (observations, admin
 * states, the previous view, now): no clock, no I/O, no globals, so that
 * several hamons fed the same inputs compute the same view.  After a restart
 * the previous view is the one restore.c read back (prev->restored).
 */
#include <stdlib.h>
#include <string.h>

#include "hamon.h"

static const char *const state_names[BACKEND_NSTATES + 1] = {
	"up", "down", "unsynced", "draining", "maint", NULL
};
static const char *const admin_names[ADMIN_NSTATES + 1] = {
	"ready", "drain", "maint", NULL
};

const char *
backend_state_name(enum backend_state s)
{
	return (unsigned)s < BACKEND_NSTATES ? state_names[s] : "?";
}

int
backend_state_parse(const char *s)
{
	int	i;

	for (i = 0; i < BACKEND_NSTATES; i++)
		if (strcmp(s, state_names[i]) == 0)
			return i;
	return -1;
}

const char *
admin_state_name(enum admin_state a)
{
	return (unsigned)a < ADMIN_NSTATES ? admin_names[a] : "?";
}

int
admin_state_parse(const char *s)
{
	int	i;

	for (i = 0; i < ADMIN_NSTATES; i++)
		if (strcmp(s, admin_names[i]) == 0)
			return i;
	return -1;
}

/*
 * maint wins over everything.  A drained backend that dies is shown down:
 * draining means "let its sessions finish", which a dead server cannot do,
 * and proxyd must move those sessions.  A backend without a verdict yet is
 * down (never eligible on a guess), unless view_compute finds it in the
 * previous view; an unproven spool is unsynced.
 */
enum backend_state
view_state(const struct observation *o, enum admin_state admin)
{
	if (admin == ADMIN_MAINT)
		return BACKEND_MAINT;
	if (!o->checked || !o->alive)
		return BACKEND_DOWN;
	if (admin == ADMIN_DRAIN)
		return BACKEND_DRAINING;
	if (o->has_sync && !o->synced)
		return BACKEND_UNSYNCED;
	return BACKEND_UP;
}

const struct view_backend *
view_find(const struct view *v, const char *name)
{
	size_t	i;

	for (i = 0; v != NULL && i < v->n; i++)
		if (strcmp(v->backends[i].name, name) == 0)
			return &v->backends[i];
	return NULL;
}

/*
 * A spool whose peers are gone: those peer links are down, but this spool
 * had caught up with each before its link dropped.  If every such peer's own
 * backend is down, in maint, or unsynced by its own checks (its spoolsync
 * itself is broken: no domain may be placed there), this spool holds all
 * that anyone may use, and the backend stays up: a whole host dying must not
 * take its survivor down with it.  A peer that is up or draining (serving
 * sessions whose writes this spool cannot see) or unknown to hamon keeps it
 * unsynced.  FIRST holds the states before this rule: order-free.
 */
static void
view_peers_gone(const struct observation *obs, size_t n, size_t i,
    const enum backend_state *first, struct view *out)
{
	struct view_backend	*b = &out->backends[i];
	const char		*g = obs[i].peers_gone, *node;
	char			 name[HAMON_NAME_MAX + 1], why[160] = "";
	size_t			 len, j;
	int			 gone;

	while (g != NULL && *(g += strspn(g, " ")) != '\0') {
		len = strcspn(g, " ");
		snprintf(name, sizeof(name), "%.*s", (int)len, g);
		g += len;
		gone = 0;
		for (j = 0; j < n; j++) {
			node = obs[j].spool_node != NULL ? obs[j].spool_node :
			    obs[j].name;
			if (j != i && strcmp(node, name) == 0)
				gone = first[j] == BACKEND_DOWN ||
				    first[j] == BACKEND_MAINT ||
				    first[j] == BACKEND_UNSYNCED;
		}
		if (!gone) {
			b->state = BACKEND_UNSYNCED;
			snprintf(why, sizeof(why), "spoolsync: peer %s not connected "
			    "and its backend is serving or unknown", name);
			break;
		}
		snprintf(why, sizeof(why), "spoolsync: peer %s gone (its backend "
		    "is not serving); this spool had caught up with it", name);
	}
	if (b->last_error[0] == '\0' && why[0] != '\0') {
		free(b->last_error);
		b->last_error = xstrdup(why);
	}
}

/* The same index first: the order rarely changes, so this stays linear. */
static const struct view_backend *
view_find_hint(const struct view *v, const char *name, size_t hint)
{
	if (v != NULL && hint < v->n && strcmp(v->backends[hint].name, name) == 0)
		return &v->backends[hint];
	return view_find(v, name);
}

static int
view_str_eq(const char *a, const char *b)
{
	return strcmp(a != NULL ? a : "", b != NULL ? b : "") == 0;
}

/* Something a subscriber acts on differs: the set, the order, a state, the node. */
static int
view_differs(const struct view *prev, const struct view *out)
{
	size_t	i;

	if (prev == NULL)
		return out->n > 0;
	if (prev->n != out->n || !view_str_eq(prev->node, out->node))
		return 1;
	for (i = 0; i < out->n; i++)
		if (strcmp(prev->backends[i].name, out->backends[i].name) != 0 ||
		    !view_str_eq(prev->backends[i].address,
		    out->backends[i].address) ||
		    prev->backends[i].state != out->backends[i].state ||
		    prev->backends[i].admin != out->backends[i].admin ||
		    prev->backends[i].holds != out->backends[i].holds)
			return 1;
	return 0;
}

void
view_compute(const struct observation *obs, const enum admin_state *admin,
    size_t n, const struct view *prev, const char *node, uint64_t now_ms,
    struct view *out)
{
	const struct view_backend	*pb;
	struct view_backend		*b;
	enum backend_state		*first;
	size_t				 i;

	memset(out, 0, sizeof(*out));
	out->node = xstrdup(node != NULL ? node : "");
	out->backends = xcalloc(n + 1, sizeof(*out->backends));
	out->n = n;
	for (i = 0; i < n; i++) {
		b = &out->backends[i];
		b->name = xstrdup(obs[i].name);
		b->address = xstrdup(obs[i].address != NULL ? obs[i].address : "");
		b->admin = admin != NULL ? admin[i] : ADMIN_READY;
		b->state = view_state(&obs[i], b->admin);
		b->eligible = b->state == BACKEND_UP;
		b->latency_us = obs[i].latency_us;
		b->failures = obs[i].failures;
		b->last_error = xstrdup(obs[i].last_error != NULL ?
		    obs[i].last_error : "");
		b->lag_ms = obs[i].lag_ms;
	}
	first = xcalloc(n + 1, sizeof(*first));
	for (i = 0; i < n; i++)
		first[i] = out->backends[i].state;
	for (i = 0; i < n; i++)
		if (first[i] == BACKEND_UP)
			view_peers_gone(obs, n, i, first, out);
	free(first);
	for (i = 0; i < n; i++) {
		b = &out->backends[i];
		b->eligible = b->state == BACKEND_UP;
		pb = view_find_hint(prev, b->name, i);
		/*
		 * Checks restarted by a reload: no blip until their first
		 * verdict.  Never from a restored view: after a restart nothing
		 * is taken on trust but what was held.
		 */
		if (!obs[i].checked && pb != NULL && pb->admin == b->admin &&
		    !prev->restored) {
			b->state = pb->state;
			b->eligible = pb->eligible;
		}
		b->holds = b->state == BACKEND_UNSYNCED && pb != NULL &&
		    (pb->state == BACKEND_UP || pb->holds);
		b->since_ms = pb != NULL && pb->state == b->state &&
		    !prev->restored ? pb->since_ms : now_ms;
	}
	out->generation = prev != NULL ? prev->generation : 0;
	if (view_differs(prev, out))
		out->generation++;
}

void
view_copy(struct view *dst, const struct view *src)
{
	size_t	i;

	memset(dst, 0, sizeof(*dst));
	dst->generation = src->generation;
	dst->restored = src->restored;
	dst->node = xstrdup(src->node != NULL ? src->node : "");
	dst->n = src->n;
	dst->backends = xcalloc(src->n + 1, sizeof(*dst->backends));
	for (i = 0; i < src->n; i++) {
		dst->backends[i] = src->backends[i];
		dst->backends[i].name = xstrdup(src->backends[i].name);
		dst->backends[i].address = xstrdup(src->backends[i].address);
		dst->backends[i].last_error = xstrdup(src->backends[i].last_error);
	}
}

void
view_free(struct view *v)
{
	size_t	i;

	for (i = 0; i < v->n; i++) {
		free(v->backends[i].name);
		free(v->backends[i].address);
		free(v->backends[i].last_error);
	}
	free(v->backends);
	free(v->node);
	memset(v, 0, sizeof(*v));
}

size_t
view_eligible(const struct view *v)
{
	size_t	i, n = 0;

	for (i = 0; i < v->n; i++)
		n += v->backends[i].eligible != 0;
	return n;
}

static void
view_json_backend(const struct view_backend *b, struct json *j)
{
	json_obj_begin(j);
	json_kv_str(j, "name", b->name);
	json_kv_str(j, "address", b->address);
	json_kv_str(j, "state", backend_state_name(b->state));
	json_kv_str(j, "admin", admin_state_name(b->admin));
	json_kv_uint(j, "since_ms", b->since_ms);
	json_key(j, "latency_ms");
	if (b->latency_us >= 0)
		json_double(j, (double)b->latency_us / 1000.0);
	else
		json_null(j);
	json_kv_uint(j, "failures", b->failures);
	json_kv_str(j, "last_error", b->last_error[0] != '\0' ? b->last_error :
	    NULL);
	json_key(j, "lag_ms");
	if (b->lag_ms >= 0)
		json_int(j, b->lag_ms);
	else
		json_null(j);
	json_kv_bool(j, "eligible", b->eligible);
	json_kv_bool(j, "holds", b->holds);
	json_obj_end(j);
}

void
view_json_members(const struct view *v, struct json *j)
{
	size_t	i;

	json_kv_uint(j, "generation", v->generation);
	json_kv_str(j, "node", v->node != NULL ? v->node : "");
	json_key(j, "backends");
	json_arr_begin(j);
	for (i = 0; i < v->n; i++)
		view_json_backend(&v->backends[i], j);
	json_arr_end(j);
}

void
view_json(const struct view *v, struct json *j)
{
	json_obj_begin(j);
	view_json_members(v, j);
	json_obj_end(j);
}
