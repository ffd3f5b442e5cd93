/* test_hview.c: proxyd's copy of hamon's view: a strict parser that refuses
 * every malformed or hostile view, and a subscription to a real control socket
 * that follows hamon through updates, restarts and outages keeping the last view. */
#include <sys/stat.h>

#include <fcntl.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "proxyd.h"
#include "hamon.h"
#include "util.h"

/* Parsing. */

struct field {
	const char	*key;
	const char	*val;	/* JSON text */
};

static const struct field good[] = {
	{ "name", "\"a\"" },
	{ "address", "\"127.0.0.1:5222\"" },
	{ "state", "\"up\"" },
	{ "admin", "\"ready\"" },
	{ "since_ms", "1700000000000" },
	{ "latency_ms", "1.5" },
	{ "failures", "0" },
	{ "last_error", "null" },
	{ "lag_ms", "12" },
	{ "eligible", "true" },
	{ "holds", "false" },
};
#define NGOOD	(sizeof(good) / sizeof(good[0]))

/* Backend 0 with KEY set to VAL (VAL NULL: KEY left out), then a good "b". */
static char *
view_text(const char *key, const char *val)
{
	struct buf	b;
	size_t		i;

	buf_init(&b);
	buf_adds(&b, "{\"generation\":7,\"node\":\"n1\",\"backends\":[{");
	for (i = 0; i < NGOOD; i++) {
		if (key != NULL && strcmp(good[i].key, key) == 0 && val == NULL)
			continue;
		buf_printf(&b, "%s\"%s\":%s", b.data[b.len - 1] == '{' ? "" : ",",
		    good[i].key, key != NULL && strcmp(good[i].key, key) == 0 ?
		    val : good[i].val);
	}
	buf_adds(&b, "},{\"name\":\"b\",\"address\":\"127.0.0.2:5222\",\"state\":"
	    "\"down\",\"admin\":\"ready\",\"eligible\":false}]}");
	return buf_release(&b);
}

/* 0 when TEXT parses as JSON and as a view. */
static int
parse_text(const char *text, struct pview *v, char *err, size_t errlen)
{
	struct jval	*j;
	int		 rc;

	memset(v, 0, sizeof(*v));
	if ((j = json_parse(text, strlen(text), err, errlen)) == NULL)
		return -1;
	rc = pview_parse(j, v, err, errlen);
	jval_free(j);
	return rc;
}

static void
assert_refused(const char *text, const char *why)
{
	struct pview	v;
	char		err[300] = "";

	if (parse_text(text, &v, err, sizeof(err)) == 0)
		fail_msg("accepted (%s): %s", why, text);
	assert_true(err[0] != '\0');
	/* Refused means nothing half-built is left for the caller. */
	assert_int_equal(v.n, 0);
	assert_null(v.b);
	assert_null(v.node);
}

static void
test_a_valid_view_parses_with_every_field(void **unused)
{
	struct pview		 v;
	char			 err[300], *t = view_text(NULL, NULL);
	const struct pbackend	*a, *b;

	assert_int_equal(parse_text(t, &v, err, sizeof(err)), 0);
	assert_int_equal(v.generation, 7);
	assert_string_equal(v.node, "n1");
	assert_int_equal(v.n, 2);
	assert_non_null(a = pview_find(&v, "a"));
	assert_non_null(b = pview_find(&v, "b"));
	assert_null(pview_find(&v, "c"));
	assert_string_equal(a->address.text, "127.0.0.1:5222");
	assert_int_equal(a->address.port, 5222);
	assert_string_equal(a->state, "up");
	assert_true(a->eligible);
	assert_string_equal(b->state, "down");
	assert_false(b->eligible);
	assert_int_equal(pview_eligible(&v), 1);
	pview_free(&v);
	free(t);
}

/* What hamon's own view_json writes is what proxyd reads: the contract. */
static void
test_what_hamon_publishes_parses(void **unused)
{
	struct observation	o[3];
	struct view		hv;
	struct pview		v;
	struct json		j;
	char			err[300];
	size_t			i;

	memset(o, 0, sizeof(o));
	for (i = 0; i < 3; i++) {
		o[i].checked = 1;
		o[i].alive = i != 1;
		o[i].latency_us = i == 0 ? 1500 : -1;
		o[i].lag_ms = -1;
		o[i].last_error = i == 1 ? "connection refused" : "";
	}
	o[0].name = "a";
	o[0].address = "127.0.0.1:5222";
	o[1].name = "b";
	o[1].address = "[::1]:5223";
	o[2].name = "c";
	o[2].address = "10.1.2.3:5222";
	o[2].has_sync = 1;
	view_compute(o, NULL, 3, NULL, "proxy-1", 1700000000000ull, &hv);
	json_init(&j);
	view_json(&hv, &j);
	assert_int_equal(parse_text(json_text(&j), &v, err, sizeof(err)), 0);
	assert_int_equal(v.generation, hv.generation);
	assert_string_equal(v.node, "proxy-1");
	assert_int_equal(v.n, 3);
	assert_true(v.b[0].eligible);
	assert_string_equal(v.b[1].state, "down");
	assert_string_equal(v.b[1].address.text, "[::1]:5223");
	assert_string_equal(v.b[2].state, "unsynced");
	assert_false(v.b[2].eligible);
	assert_false(v.b[2].holds);		/* never up: holds nothing */
	pview_free(&v);
	json_free(&j);

	/* c up, then unsynced: it holds, and the proxy reads so. */
	{
		struct view	up, again;

		o[2].synced = 1;
		view_compute(o, NULL, 3, &hv, "proxy-1", 1700000000001ull, &up);
		o[2].synced = 0;
		view_compute(o, NULL, 3, &up, "proxy-1", 1700000000002ull, &again);
		json_init(&j);
		view_json(&again, &j);
		assert_int_equal(parse_text(json_text(&j), &v, err, sizeof(err)), 0);
		assert_string_equal(v.b[2].state, "unsynced");
		assert_true(v.b[2].holds);
		assert_false(v.b[0].holds);
		pview_free(&v);
		json_free(&j);
		view_free(&up);
		view_free(&again);
	}
	view_free(&hv);
}

static void
test_optional_fields_may_be_absent_and_unknown_ones_are_ignored(void **unused)
{
	struct pview	v;
	char		err[300];

	assert_int_equal(parse_text("{\"generation\":0,\"backends\":[]}", &v, err,
	    sizeof(err)), 0);
	assert_int_equal(v.n, 0);
	assert_string_equal(v.node, "");
	pview_free(&v);
	assert_int_equal(parse_text("{\"generation\":1,\"future\":[1,{}],"
	    "\"backends\":[{\"name\":\"x\",\"address\":\"[::1]:1\",\"state\":"
	    "\"maint\",\"admin\":\"maint\",\"eligible\":false,\"new\":null}]}",
	    &v, err, sizeof(err)), 0);
	assert_int_equal(v.n, 1);
	assert_int_equal(v.b[0].address.port, 1);
	pview_free(&v);
}

struct bad {
	const char	*key;
	const char	*val;	/* NULL: left out */
};

/* Every member of a backend, wrong in every way that matters, in turn. */
static const struct bad bad_backend[] = {
	{ "name", NULL }, { "name", "5" }, { "name", "null" }, { "name", "\"\"" },
	{ "name", "\"a\\u0001b\"" }, { "name", "\"a\\u0000b\"" },
	{ "name", "\"a\\nb\"" }, { "name", "[]" }, { "name", "\"b\"" },
	{ "address", NULL }, { "address", "5" }, { "address", "null" },
	{ "address", "\"\"" }, { "address", "\"localhost:5222\"" },
	{ "address", "\"example.com:5222\"" }, { "address", "\"127.0.0.1\"" },
	{ "address", "\"127.0.0.1:0\"" }, { "address", "\"127.0.0.1:70000\"" },
	{ "address", "\"127.0.0.1:52x\"" }, { "address", "\"127.0.0.1:-1\"" },
	{ "address", "\"::1:5222\"" }, { "address", "\"[::1]\"" },
	{ "address", "\"[localhost]:5222\"" }, { "address", "\"1.2.3.4.5:5222\"" },
	{ "address", "\" 127.0.0.1:5222\"" }, { "address", "\"127.0.0.1:5222\\u0000x\"" },
	{ "address", "\"256.0.0.1:5222\"" }, { "address", "\"[::1]x:5222\"" },
	{ "state", NULL }, { "state", "\"UP\"" }, { "state", "\"alive\"" },
	{ "state", "\"\"" }, { "state", "1" }, { "state", "null" },
	{ "state", "\"down\"" },	/* eligible stays true: inconsistent */
	{ "admin", NULL }, { "admin", "\"READY\"" }, { "admin", "\"x\"" },
	{ "admin", "true" },
	{ "eligible", NULL }, { "eligible", "\"true\"" }, { "eligible", "1" },
	{ "eligible", "null" },
	{ "since_ms", "-1" }, { "since_ms", "1.5" }, { "since_ms", "\"1\"" },
	{ "since_ms", "null" }, { "since_ms", "1e300" },
	{ "latency_ms", "-1" }, { "latency_ms", "\"x\"" }, { "latency_ms", "true" },
	{ "failures", "-1" }, { "failures", "0.5" }, { "failures", "\"0\"" },
	{ "failures", "null" },
	{ "last_error", "5" }, { "last_error", "{}" }, { "last_error", "\"a\\u0000b\"" },
	{ "lag_ms", "-5" }, { "lag_ms", "\"x\"" }, { "lag_ms", "1.5" },
	{ "holds", "\"yes\"" }, { "holds", "1" }, { "holds", "null" },
	{ "holds", "true" },		/* the state is up: inconsistent */
};

static void
test_every_backend_field_wrong_in_turn_is_refused(void **unused)
{
	char	*t, why[128];
	size_t	 i;

	for (i = 0; i < sizeof(bad_backend) / sizeof(bad_backend[0]); i++) {
		t = view_text(bad_backend[i].key, bad_backend[i].val);
		snprintf(why, sizeof(why), "%s = %s", bad_backend[i].key,
		    bad_backend[i].val != NULL ? bad_backend[i].val : "(absent)");
		assert_refused(t, why);
		free(t);
	}
}

static void
test_a_malformed_top_level_is_refused(void **unused)
{
	static const char *const bad[] = {
		"[]", "\"view\"", "null", "5", "{}",
		"{\"backends\":[]}",
		"{\"generation\":-1,\"backends\":[]}",
		"{\"generation\":1.5,\"backends\":[]}",
		"{\"generation\":\"1\",\"backends\":[]}",
		"{\"generation\":1e300,\"backends\":[]}",
		"{\"generation\":9007199254740994,\"backends\":[]}",
		"{\"generation\":1,\"node\":5,\"backends\":[]}",
		"{\"generation\":1,\"node\":\"a\\u0001\",\"backends\":[]}",
		"{\"generation\":1}",
		"{\"generation\":1,\"backends\":{}}",
		"{\"generation\":1,\"backends\":\"a\"}",
		"{\"generation\":1,\"backends\":[5]}",
		"{\"generation\":1,\"backends\":[null]}",
		"{\"generation\":1,\"backends\":[[]]}",
	};
	size_t	i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_refused(bad[i], bad[i]);
}

/* A NULL value (the data of a watch that had nothing yet) is no view. */
static void
test_no_value_is_refused(void **unused)
{
	struct pview	v;
	char		err[100];

	assert_int_equal(pview_parse(NULL, &v, err, sizeof(err)), -1);
	assert_int_equal(v.n, 0);
}

static void
test_every_truncation_is_refused(void **unused)
{
	char	*t = view_text(NULL, NULL), *cut;
	size_t	 len = strlen(t), i;

	for (i = 0; i < len; i++) {
		cut = xstrndup(t, i);
		assert_refused(cut, "truncated");
		free(cut);
	}
	free(t);
}

static char *
many_backends(size_t n, int dup)
{
	struct buf	b;
	size_t		i;

	buf_init(&b);
	buf_adds(&b, "{\"generation\":3,\"backends\":[");
	for (i = 0; i < n; i++)
		buf_printf(&b, "%s{\"name\":\"b%zu\",\"address\":\"10.%zu.%zu.1:5222\","
		    "\"state\":\"up\",\"admin\":\"ready\",\"eligible\":true}",
		    i > 0 ? "," : "", dup && i == n - 1 ? (size_t)0 : i,
		    i / 256, i % 256);
	buf_adds(&b, "]}");
	return buf_release(&b);
}

static void
test_counts_are_bounded(void **unused)
{
	struct pview	v;
	char		err[300], *t, *u, name[PVIEW_MAX_NAME + 1];

	t = many_backends(PVIEW_MAX_BACKENDS, 0);
	assert_int_equal(parse_text(t, &v, err, sizeof(err)), 0);
	assert_int_equal(v.n, PVIEW_MAX_BACKENDS);
	pview_free(&v);
	free(t);
	t = many_backends(PVIEW_MAX_BACKENDS + 1, 0);
	assert_refused(t, "too many backends");
	free(t);
	/* A name of the longest length passes; one byte more does not. */
	memset(name, 'n', PVIEW_MAX_NAME);
	name[PVIEW_MAX_NAME] = '\0';
	xasprintf(&t, "\"%s\"", name);
	u = view_text("name", t);
	assert_int_equal(parse_text(u, &v, err, sizeof(err)), 0);
	pview_free(&v);
	free(u);
	free(t);
	xasprintf(&t, "\"%sn\"", name);
	u = view_text("name", t);
	assert_refused(u, "name too long");
	free(u);
	free(t);
}

static void
test_duplicate_names_are_refused(void **unused)
{
	char	*t = many_backends(5, 1);

	assert_refused(t, "duplicate b0");
	free(t);
}

static void
test_equal_views_compare_equal_and_any_change_differs(void **unused)
{
	static const struct bad change[] = {
		{ "address", "\"127.0.0.9:5222\"" }, { "state", "\"draining\"" },
		{ "name", "\"z\"" },
	};
	struct pview	a, b;
	char		err[300], *t = view_text(NULL, NULL), *u;
	size_t		i;

	assert_int_equal(parse_text(t, &a, err, sizeof(err)), 0);
	assert_int_equal(parse_text(t, &b, err, sizeof(err)), 0);
	assert_true(pview_equal(&a, &b));
	b.generation++;
	assert_false(pview_equal(&a, &b));
	pview_free(&b);
	for (i = 0; i < sizeof(change) / sizeof(change[0]); i++) {
		u = view_text(change[i].key, change[i].val);
		if (strcmp(change[i].key, "state") == 0) {
			free(u);
			u = view_text("eligible", "false");
		}
		assert_int_equal(parse_text(u, &b, err, sizeof(err)), 0);
		assert_false(pview_equal(&a, &b));
		pview_free(&b);
		free(u);
	}
	pview_free(&a);
	free(t);
}

/* The subscription, against a real control socket. */

struct srv {
	struct event_base	*base;
	struct control		*ctl;
	char			 dir[64], path[128];
	const char		*initial;
	int			 watches;
};

struct rec {
	uint64_t	gen[64], oldgen[64];
	size_t		n_new[64], n_old[64];
	int		n;
	int		free_in_cb;
	struct hview	*hv;
};

static void
srv_handler(struct control_conn *c, int argc, char **argv, void *arg)
{
	struct srv	*s = arg;

	if (argc == 1 && strcmp(argv[0], "watch") == 0) {
		s->watches++;
		control_watch(c, s->initial);
	} else
		control_reply_error(c, "unknown command");
}

static void
srv_open(struct srv *s, const char *initial)
{
	char	err[256];

	s->initial = initial;
	s->watches = 0;
	s->ctl = control_listen(s->base, s->path, srv_handler, s, err, sizeof(err));
	if (s->ctl == NULL)
		fail_msg("control_listen: %s", err);
}

static void
srv_close(struct srv *s)
{
	control_close(s->ctl);
	s->ctl = NULL;
}

static int
setup_srv(void **state)
{
	struct srv	*s = xcalloc(1, sizeof(*s));

	snprintf(s->dir, sizeof(s->dir), "/tmp/test_hview.XXXXXX");
	if (mkdtemp(s->dir) == NULL)
		return -1;
	snprintf(s->path, sizeof(s->path), "%s/hamon.sock", s->dir);
	s->base = event_base_new();
	*state = s;
	return 0;
}

static int
teardown_srv(void **state)
{
	struct srv	*s = *state;

	if (s->ctl != NULL)
		control_close(s->ctl);
	event_base_free(s->base);
	tu_rmtree(s->dir);
	free(s);
	return 0;
}

static void
rec_cb(const struct pview *old, const struct pview *cur, void *arg)
{
	struct rec	*r = arg;

	if (r->n < 64) {
		r->gen[r->n] = cur->generation;
		r->oldgen[r->n] = old->generation;
		r->n_new[r->n] = cur->n;
		r->n_old[r->n] = old->n;
	}
	r->n++;
	if (r->free_in_cb)
		hview_free(r->hv);
}

/* Runs the loop until PRED holds or MS pass; returns PRED's last value. */
static int
run_until(struct event_base *base, int (*pred)(void *), void *arg, int ms)
{
	uint64_t	end = now_mono_ms() + (uint64_t)ms;
	struct timeval	tv = { 0, 10000 };

	while (!pred(arg) && now_mono_ms() < end) {
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	return pred(arg);
}

static void
run_for(struct event_base *base, int ms)
{
	struct timeval	tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

struct want {
	struct rec	*r;
	int		 n;
	struct hview	*hv;
	int		 connected;
};

static int
got_n(void *arg)
{
	struct want	*w = arg;

	return w->r->n >= w->n;
}

static int
is_connected(void *arg)
{
	struct want	*w = arg;

	return hview_connected(w->hv) == w->connected;
}

static char *
view_gen(uint64_t gen, const char *bstate)
{
	char	*t = NULL;

	xasprintf(&t, "{\"generation\":%llu,\"node\":\"n1\",\"backends\":["
	    "{\"name\":\"a\",\"address\":\"127.0.0.1:5222\",\"state\":\"up\","
	    "\"admin\":\"ready\",\"eligible\":true},"
	    "{\"name\":\"b\",\"address\":\"127.0.0.2:5222\",\"state\":\"%s\","
	    "\"admin\":\"ready\",\"eligible\":%s}]}", (unsigned long long)gen,
	    bstate, strcmp(bstate, "up") == 0 ? "true" : "false");
	return t;
}

static void
test_the_initial_view_is_delivered(void **state)
{
	struct srv	*s = *state;
	struct rec	 r = { 0 };
	struct hview	*hv;
	struct want	 w = { &r, 1, NULL, 1 };
	char		*v3 = view_gen(3, "up");

	srv_open(s, v3);
	hv = hview_new(s->base, s->path, rec_cb, &r);
	assert_int_equal(hview_current(hv)->n, 0);
	assert_false(hview_received(hv));
	assert_true(run_until(s->base, got_n, &w, 3000));
	assert_int_equal(r.n, 1);
	assert_int_equal(r.gen[0], 3);
	assert_int_equal(r.n_new[0], 2);
	/* The first time, OLD is empty. */
	assert_int_equal(r.oldgen[0], 0);
	assert_int_equal(r.n_old[0], 0);
	assert_true(hview_connected(hv));
	assert_null(hview_last_error(hv));
	assert_true(hview_received(hv));
	assert_int_equal(hview_current(hv)->generation, 3);
	assert_int_equal(pview_eligible(hview_current(hv)), 2);
	hview_free(hv);
	free(v3);
}

static void
test_updates_arrive_in_order_and_repeats_are_not_changes(void **state)
{
	struct srv	*s = *state;
	struct rec	 r = { 0 };
	struct hview	*hv;
	struct want	 w = { &r, 1, NULL, 1 };
	char		*v[5];
	int		 i;

	for (i = 0; i < 5; i++)
		v[i] = view_gen((uint64_t)i + 1, i % 2 ? "down" : "up");
	srv_open(s, v[0]);
	hv = hview_new(s->base, s->path, rec_cb, &r);
	assert_true(run_until(s->base, got_n, &w, 3000));
	control_broadcast(s->ctl, v[1]);
	control_broadcast(s->ctl, v[1]);	/* the same view again: no change */
	control_broadcast(s->ctl, v[2]);
	control_broadcast(s->ctl, v[3]);
	control_broadcast(s->ctl, v[4]);
	w.n = 5;
	assert_true(run_until(s->base, got_n, &w, 3000));
	run_for(s->base, 100);
	assert_int_equal(r.n, 5);
	for (i = 0; i < 5; i++) {
		assert_int_equal(r.gen[i], i + 1);
		assert_int_equal(r.oldgen[i], i);
	}
	assert_int_equal(pview_eligible(hview_current(hv)), 2);
	hview_free(hv);
	for (i = 0; i < 5; i++)
		free(v[i]);
}

/*
 * hamon restarts: the subscription reconnects, asks again, and takes the full
 * view it gets, even with a lower generation.
 */
static void
test_a_hamon_restart_reconnects_and_delivers_the_full_view(void **state)
{
	struct srv	*s = *state;
	struct rec	 r = { 0 };
	struct hview	*hv;
	struct want	 w = { &r, 1, NULL, 0 };
	char		*v9 = view_gen(9, "up"), *v2 = view_gen(2, "down");

	srv_open(s, v9);
	hv = hview_new(s->base, s->path, rec_cb, &r);
	w.hv = hv;
	assert_true(run_until(s->base, got_n, &w, 3000));
	srv_close(s);
	assert_true(run_until(s->base, is_connected, &w, 3000));
	srv_open(s, v2);
	w.n = 2;
	assert_true(run_until(s->base, got_n, &w, 5000));
	assert_int_equal(s->watches, 1);	/* the new server's count */
	assert_int_equal(r.gen[1], 2);
	assert_int_equal(r.oldgen[1], 9);
	assert_true(hview_connected(hv));
	assert_null(hview_last_error(hv));
	assert_int_equal(hview_current(hv)->generation, 2);
	assert_int_equal(pview_eligible(hview_current(hv)), 1);
	/* The same again after another restart: connected, and no change. */
	srv_close(s);
	assert_true(run_until(s->base, is_connected, &w, 3000));
	srv_open(s, v2);
	w.connected = 1;
	assert_true(run_until(s->base, is_connected, &w, 5000));
	run_for(s->base, 200);
	assert_int_equal(s->watches, 1);
	assert_int_equal(r.n, 2);
	hview_free(hv);
	free(v9);
	free(v2);
}

/* Counts lines holding NEEDLE in what FN's run wrote to stderr. */
struct capture {
	char	path[128];
	int	saved;
};

static void
capture_begin(struct capture *c, const struct srv *s)
{
	int	fd;

	snprintf(c->path, sizeof(c->path), "%s/stderr", s->dir);
	fflush(stderr);
	c->saved = dup(STDERR_FILENO);
	fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd != -1);
	dup2(fd, STDERR_FILENO);
	close(fd);
}

static size_t
capture_end(struct capture *c, const char *needle)
{
	FILE	*fp;
	char	 line[2048];
	size_t	 n = 0;

	fflush(stderr);
	dup2(c->saved, STDERR_FILENO);
	close(c->saved);
	assert_non_null(fp = fopen(c->path, "r"));
	while (fgets(line, sizeof(line), fp) != NULL)
		n += strstr(line, needle) != NULL;
	fclose(fp);
	return n;
}

static void
test_when_hamon_is_gone_the_last_view_stays_and_one_warning_is_logged(void **state)
{
	struct srv	*s = *state;
	struct rec	 r = { 0 };
	struct hview	*hv;
	struct want	 w = { &r, 1, NULL, 0 };
	struct capture	 cap;
	struct json	 j;
	struct jval	*st;
	const struct jval *h;
	char		*v4 = view_gen(4, "up");
	const char	*e;

	srv_open(s, v4);
	hv = hview_new(s->base, s->path, rec_cb, &r);
	w.hv = hv;
	assert_true(run_until(s->base, got_n, &w, 3000));
	capture_begin(&cap, s);
	srv_close(s);
	assert_true(run_until(s->base, is_connected, &w, 3000));
	/* Retries at 100, 200, 400, 800 ms: several failed attempts. */
	run_for(s->base, 1700);
	assert_int_equal(capture_end(&cap, "hamon unreachable"), 1);
	assert_false(hview_connected(hv));
	assert_non_null(e = hview_last_error(hv));
	assert_non_null(strstr(e, s->path));
	assert_int_equal(hview_current(hv)->generation, 4);
	assert_int_equal(hview_current(hv)->n, 2);
	assert_int_equal(pview_eligible(hview_current(hv)), 2);
	assert_int_equal(r.n, 1);
	/* And status says so. */
	json_init(&j);
	json_obj_begin(&j);
	hview_status(hv, &j);
	json_obj_end(&j);
	assert_non_null(st = json_parse(json_text(&j), strlen(json_text(&j)), NULL, 0));
	assert_non_null(h = jval_get(st, "hamon"));
	assert_false(jval_bool(h, "connected", 1));
	assert_non_null(jval_str(h, "last_error"));
	assert_true(jval_num(h, "generation", 0) == 4);
	assert_true(jval_bool(h, "view_received", 0));
	assert_int_equal(jval_get(h, "backends")->n, 2);
	jval_free(st);
	json_free(&j);
	/* Back: one line saying so, and the error is gone. */
	capture_begin(&cap, s);
	srv_open(s, v4);
	w.connected = 1;
	assert_true(run_until(s->base, is_connected, &w, 5000));
	run_for(s->base, 200);
	assert_int_equal(capture_end(&cap, "hamon is back"), 1);
	assert_null(hview_last_error(hv));
	assert_int_equal(r.n, 1);	/* the same view: nothing changed */
	hview_free(hv);
	free(v4);
}

static void
test_a_malformed_view_is_ignored_and_the_previous_kept(void **state)
{
	struct srv	*s = *state;
	struct rec	 r = { 0 };
	struct hview	*hv;
	struct want	 w = { &r, 1, NULL, 1 };
	char		*v5 = view_gen(5, "up"), *v6 = view_gen(6, "down");
	char		*bad = view_text("state", "\"sideways\"");
	const char	*e;

	srv_open(s, v5);
	hv = hview_new(s->base, s->path, rec_cb, &r);
	assert_true(run_until(s->base, got_n, &w, 3000));
	control_broadcast(s->ctl, bad);
	control_broadcast(s->ctl, "{\"generation\":99}");
	control_broadcast(s->ctl, "null");
	run_for(s->base, 200);
	assert_int_equal(r.n, 1);
	assert_int_equal(hview_current(hv)->generation, 5);
	assert_int_equal(pview_eligible(hview_current(hv)), 2);
	assert_true(hview_connected(hv));
	assert_non_null(e = hview_last_error(hv));
	assert_non_null(strstr(e, "malformed"));
	/* The next good one is taken, and the error cleared. */
	control_broadcast(s->ctl, v6);
	w.n = 2;
	assert_true(run_until(s->base, got_n, &w, 3000));
	assert_int_equal(r.gen[1], 6);
	assert_int_equal(r.oldgen[1], 5);
	assert_null(hview_last_error(hv));
	hview_free(hv);
	free(v5);
	free(v6);
	free(bad);
}

/* proxyd may start before hamon: no view, an error, then the view. */
static void
test_hamon_absent_at_start_then_arriving(void **state)
{
	struct srv	*s = *state;
	struct rec	 r = { 0 };
	struct hview	*hv;
	struct want	 w = { &r, 1, NULL, 0 };
	char		*v1 = view_gen(1, "up");

	hv = hview_new(s->base, s->path, rec_cb, &r);
	w.hv = hv;
	run_for(s->base, 150);
	assert_false(hview_connected(hv));
	assert_non_null(hview_last_error(hv));
	assert_false(hview_received(hv));
	assert_int_equal(hview_current(hv)->n, 0);
	srv_open(s, v1);
	assert_true(run_until(s->base, got_n, &w, 5000));
	assert_int_equal(hview_current(hv)->generation, 1);
	hview_free(hv);
	free(v1);
}

/* Something else on the socket (an error reply) is an outage, not a view. */
static void
refuse_handler(struct control_conn *c, int argc, char **argv, void *arg)
{
	control_reply_error(c, "no such command: %s", argv[0]);
}

static void
test_an_error_reply_is_reported_not_taken(void **state)
{
	struct srv	*s = *state;
	struct rec	 r = { 0 };
	struct hview	*hv;
	char		 err[256];
	const char	*e;

	s->ctl = control_listen(s->base, s->path, refuse_handler, s, err,
	    sizeof(err));
	assert_non_null(s->ctl);
	hv = hview_new(s->base, s->path, rec_cb, &r);
	run_for(s->base, 300);
	assert_int_equal(r.n, 0);
	assert_false(hview_received(hv));
	assert_non_null(e = hview_last_error(hv));
	assert_non_null(strstr(e, "no such command"));
	hview_free(hv);
}

/* The callback may free the subscription (proxyd shutting down in it). */
static void
test_freeing_from_inside_the_callback_is_safe(void **state)
{
	struct srv	*s = *state;
	struct rec	 r = { 0 };
	struct want	 w = { &r, 1, NULL, 1 };
	char		*v1 = view_gen(1, "up");

	srv_open(s, v1);
	r.free_in_cb = 1;
	r.hv = hview_new(s->base, s->path, rec_cb, &r);
	assert_true(run_until(s->base, got_n, &w, 3000));
	run_for(s->base, 100);
	assert_int_equal(r.n, 1);
	free(v1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_valid_view_parses_with_every_field),
		cmocka_unit_test(test_what_hamon_publishes_parses),
		cmocka_unit_test(test_optional_fields_may_be_absent_and_unknown_ones_are_ignored),
		cmocka_unit_test(test_every_backend_field_wrong_in_turn_is_refused),
		cmocka_unit_test(test_a_malformed_top_level_is_refused),
		cmocka_unit_test(test_no_value_is_refused),
		cmocka_unit_test(test_every_truncation_is_refused),
		cmocka_unit_test(test_counts_are_bounded),
		cmocka_unit_test(test_duplicate_names_are_refused),
		cmocka_unit_test(test_equal_views_compare_equal_and_any_change_differs),
		cmocka_unit_test_setup_teardown(test_the_initial_view_is_delivered,
		    setup_srv, teardown_srv),
		cmocka_unit_test_setup_teardown(
		    test_updates_arrive_in_order_and_repeats_are_not_changes,
		    setup_srv, teardown_srv),
		cmocka_unit_test_setup_teardown(
		    test_a_hamon_restart_reconnects_and_delivers_the_full_view,
		    setup_srv, teardown_srv),
		cmocka_unit_test_setup_teardown(
		    test_when_hamon_is_gone_the_last_view_stays_and_one_warning_is_logged,
		    setup_srv, teardown_srv),
		cmocka_unit_test_setup_teardown(
		    test_a_malformed_view_is_ignored_and_the_previous_kept,
		    setup_srv, teardown_srv),
		cmocka_unit_test_setup_teardown(test_hamon_absent_at_start_then_arriving,
		    setup_srv, teardown_srv),
		cmocka_unit_test_setup_teardown(test_an_error_reply_is_reported_not_taken,
		    setup_srv, teardown_srv),
		cmocka_unit_test_setup_teardown(test_freeing_from_inside_the_callback_is_safe,
		    setup_srv, teardown_srv),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
