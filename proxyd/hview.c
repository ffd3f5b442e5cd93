/*
 * hview.c: hamon's membership view as proxyd holds it: the strict parser of
 * the view JSON, and the subscription to hamon's `watch` that keeps the last
 * good view in force whenever hamon is away or says something malformed.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd.h"

#define PVIEW_MAX_ERROR		4096	/* bytes of a backend's last_error */
#define PVIEW_MAX_INT		9007199254740992.0	/* 2^53: exact in a double */

static const char *const pview_states[] = {
	"up", "down", "unsynced", "draining", "maint", NULL
};
static const char *const pview_admins[] = { "ready", "drain", "maint", NULL };

/* Parsing, pure. */

static int
pview_in(const char *s, const char *const *set)
{
	for (; *set != NULL; set++)
		if (strcmp(s, *set) == 0)
			return 1;
	return 0;
}

/* A name that is safe in logs, metrics labels and status: no NUL, no controls. */
static int
pview_name_ok(const struct jval *v, size_t max, int empty_ok)
{
	size_t	i;

	if (v == NULL || v->type != J_STR || v->slen > max ||
	    (v->slen == 0 && !empty_ok))
		return 0;
	for (i = 0; i < v->slen; i++)
		if ((unsigned char)v->str[i] < 0x20 || v->str[i] == 0x7f)
			return 0;
	return 1;
}

static int
pview_uint_ok(const struct jval *v)
{
	return v->type == J_NUM && v->num >= 0 && v->num <= PVIEW_MAX_INT &&
	    (double)(uint64_t)v->num == v->num;
}

/* An optional member: absent is fine; present, it must have the right type. */
static int
pview_opt_ok(const struct jval *obj, const char *key, int kind)
{
	const struct jval	*v = jval_get(obj, key);

	if (v == NULL)
		return 1;
	switch (kind) {
	case 'u':	/* unsigned integer */
		return pview_uint_ok(v);
	case 'U':	/* unsigned integer or null */
		return v->type == J_NULL || pview_uint_ok(v);
	case 'n':	/* non-negative number or null */
		return v->type == J_NULL || (v->type == J_NUM && v->num >= 0 &&
		    v->num <= PVIEW_MAX_INT);
	case 's':	/* string or null */
		return v->type == J_NULL || (v->type == J_STR &&
		    v->slen <= PVIEW_MAX_ERROR && strlen(v->str) == v->slen);
	}
	return 0;
}

/*
 * net_addr_parse resolves names, and a resolver call would stall the whole
 * proxy: only an IPv4 literal or a bracketed IPv6 literal gets that far.
 */
static int
pview_addr_numeric(const char *s, char *err, size_t errlen)
{
	const char	*end;
	char		 host[INET6_ADDRSTRLEN + 1];
	unsigned char	 bin[sizeof(struct in6_addr)];
	size_t		 n;
	int		 v6 = *s == '[';

	if (v6) {
		s++;
		end = strchr(s, ']');
	} else
		end = strrchr(s, ':');
	n = end != NULL ? (size_t)(end - s) : 0;
	if (n > 0 && n < sizeof(host)) {
		memcpy(host, s, n);
		host[n] = '\0';
		if (inet_pton(v6 ? AF_INET6 : AF_INET, host, bin) == 1)
			return 0;
	}
	snprintf(err, errlen, "is not a numeric address (IPv4 a.b.c.d:port or "
	    "[IPv6]:port; hamon's backends must be configured by address)");
	return -1;
}

static int
pview_parse_addr(const struct jval *v, struct net_addr *a, char *err,
    size_t errlen)
{
	char	e[200];

	if (v == NULL || v->type != J_STR) {
		snprintf(err, errlen, "address: missing or not a string");
		return -1;
	}
	if (v->slen != strlen(v->str) || v->slen >= sizeof(a->text)) {
		snprintf(err, errlen, "address: too long or holds a NUL");
		return -1;
	}
	if (pview_addr_numeric(v->str, e, sizeof(e)) == -1 ||
	    net_addr_parse(v->str, a, e, sizeof(e)) == -1) {
		snprintf(err, errlen, "address '%.64s' %s", v->str, e);
		return -1;
	}
	return 0;
}

/* Which member of a backend is wrong, or NULL; the address is checked apart. */
static const char *
pview_backend_bad(const struct jval *o)
{
	const struct jval	*v;

	if (!pview_name_ok(jval_get(o, "name"), PVIEW_MAX_NAME, 0))
		return "name: missing, empty, too long, or holds control characters";
	v = jval_get(o, "state");
	if (v == NULL || v->type != J_STR || !pview_in(v->str, pview_states))
		return "state: not one of up, down, unsynced, draining, maint";
	v = jval_get(o, "admin");
	if (v == NULL || v->type != J_STR || !pview_in(v->str, pview_admins))
		return "admin: not one of ready, drain, maint";
	v = jval_get(o, "eligible");
	if (v == NULL || v->type != J_BOOL)
		return "eligible: missing or not a boolean";
	if (v->b && strcmp(jval_str(o, "state"), "up") != 0)
		return "eligible: true while the state is not up";
	/* Optional: a hamon that predates it holds nothing. */
	v = jval_get(o, "holds");
	if (v != NULL && v->type != J_BOOL)
		return "holds: not a boolean";
	if (v != NULL && v->b && strcmp(jval_str(o, "state"), "unsynced") != 0)
		return "holds: true while the state is not unsynced";
	if (!pview_opt_ok(o, "since_ms", 'u'))
		return "since_ms: not a non-negative integer";
	if (!pview_opt_ok(o, "latency_ms", 'n'))
		return "latency_ms: not a non-negative number or null";
	if (!pview_opt_ok(o, "failures", 'u'))
		return "failures: not a non-negative integer";
	if (!pview_opt_ok(o, "last_error", 's'))
		return "last_error: not a string or null";
	if (!pview_opt_ok(o, "lag_ms", 'U'))
		return "lag_ms: not a non-negative integer or null";
	return NULL;
}

static int
pview_parse_backend(const struct jval *o, struct pbackend *b, char *err,
    size_t errlen)
{
	const char	*bad;

	if (o->type != J_OBJ) {
		snprintf(err, errlen, "not an object");
		return -1;
	}
	if ((bad = pview_backend_bad(o)) != NULL) {
		snprintf(err, errlen, "%s", bad);
		return -1;
	}
	if (pview_parse_addr(jval_get(o, "address"), &b->address, err, errlen) == -1)
		return -1;
	b->name = xstrdup(jval_str(o, "name"));
	b->state = xstrdup(jval_str(o, "state"));
	b->eligible = jval_bool(o, "eligible", 0);
	b->holds = jval_bool(o, "holds", 0);
	return 0;
}

static int
pview_parse_top(const struct jval *j, struct pview *out, char *err,
    size_t errlen)
{
	const struct jval	*v;

	if (j == NULL || j->type != J_OBJ) {
		snprintf(err, errlen, "the view is not a JSON object");
		return -1;
	}
	v = jval_get(j, "generation");
	if (v == NULL || !pview_uint_ok(v)) {
		snprintf(err, errlen, "generation: missing or not an integer in "
		    "0..2^53");
		return -1;
	}
	out->generation = (uint64_t)v->num;
	v = jval_get(j, "node");
	if (v != NULL && !pview_name_ok(v, PVIEW_MAX_NAME, 1)) {
		snprintf(err, errlen, "node: not a short printable string");
		return -1;
	}
	out->node = xstrdup(v != NULL ? v->str : "");
	v = jval_get(j, "backends");
	if (v == NULL || v->type != J_ARR) {
		snprintf(err, errlen, "backends: missing or not an array");
		return -1;
	}
	if (v->n > PVIEW_MAX_BACKENDS) {
		snprintf(err, errlen, "backends: %zu of them, at most %d", v->n,
		    PVIEW_MAX_BACKENDS);
		return -1;
	}
	return 0;
}

int
pview_parse(const struct jval *j, struct pview *out, char *err, size_t errlen)
{
	const struct jval	*arr;
	char			 e[400];
	size_t			 i, k;

	memset(out, 0, sizeof(*out));
	if (pview_parse_top(j, out, err, errlen) == -1)
		goto fail;
	arr = jval_get(j, "backends");
	out->b = xcalloc(arr->n + 1, sizeof(*out->b));
	for (i = 0; i < arr->n; i++) {
		if (pview_parse_backend(arr->items[i], &out->b[i], e, sizeof(e)) == -1) {
			snprintf(err, errlen, "backends[%zu]: %s", i, e);
			goto fail;
		}
		out->n = i + 1;
		for (k = 0; k < i; k++) {
			if (strcmp(out->b[k].name, out->b[i].name) == 0) {
				snprintf(err, errlen, "backends[%zu]: name '%s' is "
				    "already backends[%zu]'s", i, out->b[i].name, k);
				goto fail;
			}
		}
	}
	return 0;
fail:
	pview_free(out);
	return -1;
}

void
pview_free(struct pview *v)
{
	size_t	i;

	if (v == NULL)
		return;
	for (i = 0; i < v->n; i++) {
		free(v->b[i].name);
		free(v->b[i].state);
	}
	free(v->b);
	free(v->node);
	memset(v, 0, sizeof(*v));
}

void
pview_copy(struct pview *dst, const struct pview *src)
{
	size_t	i;

	memset(dst, 0, sizeof(*dst));
	dst->generation = src->generation;
	dst->node = src->node != NULL ? xstrdup(src->node) : NULL;
	dst->n = src->n;
	if (src->n == 0)
		return;
	dst->b = xcalloc(src->n, sizeof(*dst->b));
	for (i = 0; i < src->n; i++) {
		dst->b[i] = src->b[i];
		dst->b[i].name = xstrdup(src->b[i].name);
		dst->b[i].state = xstrdup(src->b[i].state);
	}
}

const struct pbackend *
pview_find(const struct pview *v, const char *name)
{
	size_t	i;

	for (i = 0; v != NULL && i < v->n; i++)
		if (strcmp(v->b[i].name, name) == 0)
			return &v->b[i];
	return NULL;
}

static int
pbackend_equal(const struct pbackend *a, const struct pbackend *b)
{
	return strcmp(a->name, b->name) == 0 &&
	    strcmp(a->address.text, b->address.text) == 0 &&
	    strcmp(a->state, b->state) == 0 && !a->eligible == !b->eligible &&
	    !a->holds == !b->holds;
}

int
pview_equal(const struct pview *a, const struct pview *b)
{
	size_t	i;

	if (a->generation != b->generation || a->n != b->n ||
	    strcmp(a->node != NULL ? a->node : "", b->node != NULL ? b->node : "")
	    != 0)
		return 0;
	for (i = 0; i < a->n; i++)
		if (!pbackend_equal(&a->b[i], &b->b[i]))
			return 0;
	return 1;
}

size_t
pview_eligible(const struct pview *v)
{
	size_t	i, n = 0;

	for (i = 0; v != NULL && i < v->n; i++)
		n += v->b[i].eligible != 0;
	return n;
}

/* The subscription. */

struct hview {
	char			*socket;
	struct control_sub	*sub;
	void			(*changed)(const struct pview *, const struct pview *,
				    void *);
	void			*arg;
	struct pview		 cur;
	int			 received;	/* cur came from hamon */
	int			 connected;
	int			 warned;	/* this outage is logged already */
	char			 last_error[512];	/* "" when fine */
	uint64_t		 views, rejected;
	uint64_t		 changed_ms;	/* wall clock of the last swap */
	int			 busy;		/* inside changed() */
	int			 dead;		/* freed from inside changed() */
};

static void
hview_destroy(struct hview *hv)
{
	pview_free(&hv->cur);
	free(hv->socket);
	free(hv);
}

/*
 * control_sub reports every failed attempt; an outage is one warning, and
 * the view in force is said to stay.
 */
static void
hview_state_cb(int connected, const char *err, void *arg)
{
	struct hview	*hv = arg;

	hv->connected = connected;
	/* The error stays until a view proves hamon answers: a connect is no proof. */
	if (connected)
		return;
	snprintf(hv->last_error, sizeof(hv->last_error), "%s",
	    err != NULL ? err : "hamon went away");
	if (hv->warned)
		return;
	hv->warned = 1;
	if (hv->received)
		log_warnx("hamon unreachable (%s): keeping its last view, generation "
		    "%llu, %zu of %zu backends eligible", hv->last_error,
		    (unsigned long long)hv->cur.generation, pview_eligible(&hv->cur),
		    hv->cur.n);
	else
		log_warnx("hamon unreachable (%s): no view yet, so no backend to "
		    "send clients to", hv->last_error);
}

/* Takes NV.  The callback may free HV: nothing touches it after. */
static void
hview_swap(struct hview *hv, struct pview *nv)
{
	struct pview	old = hv->cur;

	hv->cur = *nv;
	hv->received = 1;
	hv->changed_ms = now_real_ms();
	log_info("hamon view generation %llu: %zu of %zu backends eligible",
	    (unsigned long long)hv->cur.generation, pview_eligible(&hv->cur),
	    hv->cur.n);
	hv->busy++;
	if (hv->changed != NULL)
		hv->changed(&old, &hv->cur, hv->arg);
	hv->busy--;
	pview_free(&old);
	if (hv->dead)
		hview_destroy(hv);
}

static void
hview_data_cb(const struct jval *data, void *arg)
{
	struct hview	*hv = arg;
	struct pview	 nv;
	char		 err[400];

	if (pview_parse(data, &nv, err, sizeof(err)) == -1) {
		hv->rejected++;
		snprintf(hv->last_error, sizeof(hv->last_error), "hamon sent a "
		    "malformed view (kept generation %llu): %s",
		    (unsigned long long)hv->cur.generation, err);
		log_warnx("%s", hv->last_error);
		return;
	}
	hv->views++;
	hv->last_error[0] = '\0';
	if (hv->warned) {
		hv->warned = 0;
		log_info("hamon is back: view generation %llu",
		    (unsigned long long)nv.generation);
	}
	/* A restarted hamon may start lower: what the live one says is in force. */
	if (hv->received && pview_equal(&hv->cur, &nv)) {
		pview_free(&nv);
		return;
	}
	hview_swap(hv, &nv);
}

struct hview *
hview_new(struct event_base *base, const char *hamon_socket,
    void (*changed)(const struct pview *, const struct pview *, void *),
    void *arg)
{
	struct hview	*hv = xcalloc(1, sizeof(*hv));

	hv->socket = xstrdup(hamon_socket);
	hv->changed = changed;
	hv->arg = arg;
	hv->sub = control_sub_new(base, hamon_socket, "watch", hview_data_cb,
	    hview_state_cb, hv);
	return hv;
}

void
hview_free(struct hview *hv)
{
	if (hv == NULL)
		return;
	/* control_sub defers its own free when we are inside its callback. */
	control_sub_free(hv->sub);
	hv->sub = NULL;
	if (hv->busy > 0) {
		hv->dead = 1;
		return;
	}
	hview_destroy(hv);
}

const struct pview *
hview_current(const struct hview *hv)
{
	return &hv->cur;
}

int
hview_connected(const struct hview *hv)
{
	return hv->connected;
}

const char *
hview_last_error(const struct hview *hv)
{
	return hv->last_error[0] != '\0' ? hv->last_error : NULL;
}

int
hview_received(const struct hview *hv)
{
	return hv->received;
}

static void
hview_status_backends(const struct pview *v, struct json *j)
{
	size_t	i;

	json_key(j, "backends");
	json_arr_begin(j);
	for (i = 0; i < v->n; i++) {
		json_obj_begin(j);
		json_kv_str(j, "name", v->b[i].name);
		json_kv_str(j, "address", v->b[i].address.text);
		json_kv_str(j, "state", v->b[i].state);
		json_kv_bool(j, "eligible", v->b[i].eligible);
		json_kv_bool(j, "holds", v->b[i].holds);
		json_obj_end(j);
	}
	json_arr_end(j);
}

void
hview_status(const struct hview *hv, struct json *j)
{
	json_key(j, "hamon");
	json_obj_begin(j);
	json_kv_str(j, "socket", hv->socket);
	json_kv_bool(j, "connected", hv->connected);
	json_kv_str(j, "last_error", hview_last_error(hv));
	json_kv_bool(j, "view_received", hv->received);
	json_kv_uint(j, "generation", hv->cur.generation);
	json_kv_str(j, "node", hv->cur.node != NULL ? hv->cur.node : "");
	json_kv_uint(j, "changed_ms", hv->changed_ms);
	json_kv_uint(j, "views", hv->views);
	json_kv_uint(j, "rejected", hv->rejected);
	json_kv_uint(j, "eligible", pview_eligible(&hv->cur));
	hview_status_backends(&hv->cur, j);
	json_obj_end(j);
}
