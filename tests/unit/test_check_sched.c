/* test_check_sched.c: the scheduler on a real event loop with fake probes:
 * rise/fall, start times spread over the interval, overlapping and stuck
 * probes, late verdicts, reload keeping unchanged backends, and the rule
 * that makes a backend alive (xmpp, login, exec) or in sync (spoolsync). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include "hamon.h"

enum fake_mode {
	FAKE_OK = 0,	/* reports ok after fake_delay_ms */
	FAKE_FAIL,	/* reports a failure after fake_delay_ms */
	FAKE_UNSYNCED,	/* spoolsync answers, but lags */
	FAKE_HANG,	/* never reports: only a cancel ends it */
	FAKE_INLINE,	/* reports from inside start() */
	FAKE_NULL,	/* start() fails */
	FAKE_SCRIPT,	/* takes (ok, delay) from the script, in start order */
};

struct probe {
	struct event		*ev;
	probe_done_cb		 cb;
	void			*arg;
	struct check_result	 r;
	struct probe		*next;
};

#define MAXB	8
static enum fake_mode	 fake_mode[MAXB][CHECK_NKINDS];
static int		 fake_delay_ms = 1;
static struct probe	*fake_live;		/* started, not yet done */
static int		 fake_cancels;
static int		 fake_starts[MAXB];
static uint64_t		 fake_first_ns[MAXB];
static struct { int ok, delay_ms; } fake_script[64];
static int		 fake_script_n, fake_script_i;
static struct event_base *base;

/* What the scheduler told us. */
static int		 results_ok, results_fail;
static int		 changed_calls;
static char		 last_error[256];
struct seen {
	int	ok;
	int	alive_before;
};
static struct seen	 seen[4096];
static int		 nseen;
static struct check_sched *cur;

static int
bidx(const char *name)
{
	return name[0] - 'a';
}

static void
fake_unlink(struct probe *p)
{
	struct probe	**pp;

	for (pp = &fake_live; *pp != NULL; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			return;
		}
	fail_msg("probe %p is not live", (void *)p);
}

static void
fake_report_cb(evutil_socket_t fd, short what, void *arg)
{
	struct probe	*p = arg;

	fake_unlink(p);
	p->cb(&p->r, p->arg);
	event_free(p->ev);
	free(p);
}

static struct probe *
fake_start(struct event_base *b, const struct check_target *t, int timeout_ms,
    probe_done_cb cb, void *arg, enum check_kind kind)
{
	int		 i = bidx(t->backend), ok, delay = fake_delay_ms;
	enum fake_mode	 m = fake_mode[i][kind];
	struct probe	*p;
	struct check_result r;
	struct timeval	 tv;

	if (fake_starts[i]++ == 0)
		fake_first_ns[i] = now_mono_ns();
	memset(&r, 0, sizeof(r));
	r.kind = kind;
	r.lag_ms = -1;
	r.latency_us = 100 * (kind + 1);
	if (m == FAKE_NULL)
		return NULL;
	if (m == FAKE_INLINE) {
		r.ok = 1;
		cb(&r, arg);
		return NULL;
	}
	ok = m == FAKE_OK || m == FAKE_UNSYNCED;
	if (m == FAKE_SCRIPT) {
		assert_true(fake_script_i < fake_script_n);
		ok = fake_script[fake_script_i].ok;
		delay = fake_script[fake_script_i++].delay_ms;
	}
	r.ok = ok;
	if (kind == CHECK_SPOOLSYNC) {
		r.synced = m != FAKE_UNSYNCED;
		r.lag_ms = m == FAKE_UNSYNCED ? 5000 : 3;
	}
	if (!ok)
		snprintf(r.error, sizeof(r.error), "fake failure of %s", t->backend);
	else if (m == FAKE_UNSYNCED)
		snprintf(r.error, sizeof(r.error), "lag 5000 ms");
	p = xcalloc(1, sizeof(*p));
	p->cb = cb;
	p->arg = arg;
	p->r = r;
	p->ev = evtimer_new(b, fake_report_cb, p);
	p->next = fake_live;
	fake_live = p;
	if (m != FAKE_HANG) {
		tv.tv_sec = 0;
		tv.tv_usec = delay * 1000;
		evtimer_add(p->ev, &tv);
	}
	return p;
}

static struct probe *
fake_xmpp(struct event_base *b, const struct check_target *t, int ms,
    probe_done_cb cb, void *arg)
{
	return fake_start(b, t, ms, cb, arg, CHECK_XMPP);
}

static struct probe *
fake_login(struct event_base *b, const struct check_target *t, int ms,
    probe_done_cb cb, void *arg)
{
	return fake_start(b, t, ms, cb, arg, CHECK_LOGIN);
}

static struct probe *
fake_spoolsync(struct event_base *b, const struct check_target *t, int ms,
    probe_done_cb cb, void *arg)
{
	return fake_start(b, t, ms, cb, arg, CHECK_SPOOLSYNC);
}

static struct probe *
fake_exec(struct event_base *b, const struct check_target *t, int ms,
    probe_done_cb cb, void *arg)
{
	return fake_start(b, t, ms, cb, arg, CHECK_EXEC);
}

static void
fake_cancel(struct probe *p)
{
	fake_unlink(p);
	fake_cancels++;
	event_free(p->ev);
	free(p);
}

static const struct probe_ops fake_ops = {
	{ fake_xmpp, fake_login, fake_spoolsync, fake_exec },
	fake_cancel,
};

/* The scheduler's callbacks. */

static struct observation *
observe_one(const char *name, struct observation *out)
{
	struct observation	all[MAXB];
	size_t			i;

	check_sched_observe(cur, all);
	for (i = 0; i < check_sched_count(cur); i++)
		if (strcmp(all[i].name, name) == 0) {
			*out = all[i];
			snprintf(last_error, sizeof(last_error), "%s",
			    all[i].last_error);
			out->last_error = last_error;
			return out;
		}
	fail_msg("no backend %s", name);
	return NULL;
}

static void
on_changed(void *arg)
{
	changed_calls++;
}

static void
on_result(const char *backend, const struct check_result *r, void *arg)
{
	struct observation	o;

	if (r->ok)
		results_ok++;
	else
		results_fail++;
	if (nseen < (int)(sizeof(seen) / sizeof(seen[0])) && strcmp(backend, "a") == 0) {
		seen[nseen].ok = r->ok;
		seen[nseen].alive_before = observe_one("a", &o)->alive;
		nseen++;
	}
}

static const struct check_sched_cbs cbs = { on_changed, on_result, NULL };

/* Config. */

static struct hamon_conf	conf;
static struct backend_conf	bconf[MAXB];
static char			names[MAXB][2];

static void
conf_make(size_t n, unsigned checks, int64_t interval, int64_t timeout,
    int rise, int fall)
{
	char	err[128], addr[32];
	size_t	i;

	memset(&conf, 0, sizeof(conf));
	memset(bconf, 0, sizeof(bconf));
	conf.interval_ms = interval;
	conf.timeout_ms = timeout;
	conf.rise = rise;
	conf.fall = fall;
	conf.backends = bconf;
	conf.nbackends = n;
	for (i = 0; i < n; i++) {
		names[i][0] = (char)('a' + i);
		names[i][1] = '\0';
		bconf[i].name = names[i];
		snprintf(addr, sizeof(addr), "127.0.0.1:%zu", 5000 + i);
		assert_int_equal(net_addr_parse(addr, &bconf[i].address, err,
		    sizeof(err)), 0);
		bconf[i].domain = "example.test";
		bconf[i].checks = checks;
		bconf[i].spoolsync_url = "http://127.0.0.1:1/status";
		bconf[i].max_lag_ms = 1000;
		bconf[i].exec_command = "true";
		bconf[i].login_user = "probe";
		bconf[i].login_password = "pw";
	}
}

static int
setup(void **unused)
{
	memset(fake_mode, 0, sizeof(fake_mode));
	memset(fake_starts, 0, sizeof(fake_starts));
	fake_delay_ms = 1;
	fake_cancels = 0;
	fake_script_n = fake_script_i = 0;
	results_ok = results_fail = changed_calls = nseen = 0;
	base = event_base_new();
	cur = check_sched_new(base, &fake_ops, &cbs);
	return base == NULL;
}

static int
teardown(void **unused)
{
	check_sched_free(cur);
	cur = NULL;
	assert_null(fake_live);		/* every probe ended or was cancelled */
	event_base_free(base);
	return 0;
}

static void
run_ms(int ms)
{
	struct timeval	tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

/* Runs the loop until PRED holds; fails after MAX_MS. */
static void
run_until(int (*pred)(void), int max_ms, const char *what)
{
	uint64_t	end = now_mono_ms() + (uint64_t)max_ms;

	while (!pred()) {
		if (now_mono_ms() > end)
			fail_msg("after %d ms still not: %s", max_ms, what);
		run_ms(2);
	}
}

static int
a_alive(void)
{
	struct observation	o;

	return observe_one("a", &o)->checked && o.alive;
}

static int
a_down(void)
{
	struct observation	o;

	return observe_one("a", &o)->checked && !o.alive;
}

static int
settled(void)
{
	return check_sched_settled(cur);
}

/* Tests. */

static void
test_hysteresis_first_verdict_decides_then_rise_and_fall(void **unused)
{
	struct check_hyst	h;

	check_hyst_init(&h);
	assert_int_equal(h.state, -1);
	assert_true(check_hyst_apply(&h, 1, 3, 2));	/* at once: up */
	assert_int_equal(h.state, 1);
	assert_false(check_hyst_apply(&h, 0, 3, 2));
	assert_false(check_hyst_apply(&h, 1, 3, 2));	/* an ok resets the run */
	assert_false(check_hyst_apply(&h, 0, 3, 2));
	assert_true(check_hyst_apply(&h, 0, 3, 2));	/* 2 in a row: down */
	assert_int_equal(h.state, 0);
	assert_int_equal(h.fail_run, 2);
	assert_false(check_hyst_apply(&h, 1, 3, 2));
	assert_false(check_hyst_apply(&h, 1, 3, 2));
	assert_false(check_hyst_apply(&h, 0, 3, 2));	/* a failure resets the rise */
	assert_false(check_hyst_apply(&h, 1, 3, 2));
	assert_false(check_hyst_apply(&h, 1, 3, 2));
	assert_true(check_hyst_apply(&h, 1, 3, 2));	/* 3 in a row: up */
	assert_int_equal(h.state, 1);
	check_hyst_init(&h);
	assert_true(check_hyst_apply(&h, 0, 3, 2));	/* first failure: down */
	assert_int_equal(h.state, 0);
	check_hyst_init(&h);				/* rise = fall = 1 */
	assert_true(check_hyst_apply(&h, 1, 1, 1));
	assert_true(check_hyst_apply(&h, 0, 1, 1));
	assert_true(check_hyst_apply(&h, 1, 1, 1));
}

/* The first result after FROM with OK (a probe started before a switch may
 * still report the old verdict). */
static int
first_result(int from, int ok)
{
	int	i;

	for (i = from; i < nseen; i++)
		if (seen[i].ok == ok)
			return i;
	return -1;
}

static int
first_down_after(int from)
{
	int	i;

	for (i = from; i < nseen; i++)
		if (!seen[i].alive_before)
			return i;
	return -1;
}

static int
first_up_after(int from)
{
	int	i;

	for (i = from; i < nseen; i++)
		if (seen[i].alive_before)
			return i;
	return -1;
}

static void
test_down_after_exactly_fall_failures_and_up_after_rise(void **unused)
{
	int	switch_at, k, calls;

	conf_make(1, CHECK_BIT(CHECK_XMPP), 10, 100, 3, 2);
	check_sched_configure(cur, &conf);
	run_until(a_alive, 1000, "a up");
	switch_at = nseen;
	calls = changed_calls;
	fake_mode[0][CHECK_XMPP] = FAKE_FAIL;
	run_until(a_down, 1000, "a down");
	run_ms(30);	/* more results, so the one that flipped it is seen */
	switch_at = first_result(switch_at, 0);
	k = first_down_after(switch_at);
	assert_true(switch_at >= 0 && k >= 0);
	/* Failures switch_at .. k-1: the fall-th made it down. */
	assert_int_equal(k - switch_at, 2);
	assert_true(changed_calls > calls);
	calls = changed_calls;
	switch_at = nseen;
	fake_mode[0][CHECK_XMPP] = FAKE_OK;
	run_until(a_alive, 1000, "a up again");
	run_ms(30);
	switch_at = first_result(switch_at, 1);
	assert_int_equal(first_up_after(switch_at) - switch_at, 3);
	/* Changes are reported, once per loop turn, not once per result. */
	assert_true(changed_calls > calls);
	assert_true(changed_calls - calls < 5);
}

static void
test_probes_are_spread_over_the_interval(void **unused)
{
	uint64_t	t[5], gap;
	int		i, j;

	conf_make(5, CHECK_BIT(CHECK_XMPP), 500, 100, 2, 2);
	check_sched_configure(cur, &conf);
	run_ms(480);
	for (i = 0; i < 5; i++) {
		assert_int_equal(fake_starts[i], 1);
		t[i] = fake_first_ns[i];
	}
	/* Config order gets phases 0, 1/5, 2/5 ...: 100 ms apart here. */
	for (i = 1; i < 5; i++) {
		gap = (t[i] - t[i - 1]) / 1000000;
		if (gap < 70 || gap > 130)
			fail_msg("starts %d and %d are %llu ms apart, not ~100", i - 1,
			    i, (unsigned long long)gap);
	}
	for (i = 0; i < 5; i++)
		for (j = i + 1; j < 5; j++)
			assert_true(t[j] - t[i] > 50 * 1000000ull);
	/* ... and each keeps its own phase afterwards. */
	run_ms(470);
	for (i = 0; i < 5; i++)
		assert_int_equal(fake_starts[i], 2);
}

static void
test_a_stuck_probe_is_cancelled_and_counts_as_a_failure(void **unused)
{
	struct observation	o;
	size_t			max_inflight = 0;
	uint64_t		end;

	fake_mode[0][CHECK_XMPP] = FAKE_HANG;
	conf_make(1, CHECK_BIT(CHECK_XMPP), 20, 50, 2, 1);
	check_sched_configure(cur, &conf);
	end = now_mono_ms() + 400;
	while (now_mono_ms() < end && !a_down()) {
		run_ms(5);
		if (check_sched_inflight(cur) > max_inflight)
			max_inflight = check_sched_inflight(cur);
	}
	assert_true(a_down());
	/* A probe is given up timeout + 250 ms after it started, not before. */
	assert_true(fake_cancels >= 1);
	/* Probes overlap while the earlier ones still hang, up to a cap. */
	assert_true(max_inflight > 1);
	assert_true(max_inflight <= 8);
	observe_one("a", &o);
	assert_non_null(strstr(o.last_error, "xmpp: no verdict"));
}

static void
test_a_verdict_from_inside_start_is_taken(void **unused)
{
	fake_mode[0][CHECK_XMPP] = FAKE_INLINE;
	conf_make(1, CHECK_BIT(CHECK_XMPP), 10, 100, 2, 2);
	check_sched_configure(cur, &conf);
	run_until(a_alive, 500, "a up");
	run_ms(50);
	assert_true(results_ok >= 3);
	assert_int_equal(check_sched_inflight(cur), 0);
}

static void
test_a_probe_that_cannot_start_is_a_failure(void **unused)
{
	struct observation	o;

	fake_mode[0][CHECK_XMPP] = FAKE_NULL;
	conf_make(1, CHECK_BIT(CHECK_XMPP), 10, 100, 2, 2);
	check_sched_configure(cur, &conf);
	run_until(a_down, 500, "a down");
	observe_one("a", &o);
	assert_non_null(strstr(o.last_error, "could not start"));
	assert_int_equal(check_sched_inflight(cur), 0);
}

static void
test_a_late_verdict_never_overrides_a_newer_one(void **unused)
{
	struct observation	o;
	int			i;

	/* Probe 1 fails late (80 ms), probes 2.. succeed quickly. */
	fake_mode[0][CHECK_XMPP] = FAKE_SCRIPT;
	fake_script[0].ok = 0;
	fake_script[0].delay_ms = 80;
	for (i = 1; i < 64; i++) {
		fake_script[i].ok = 1;
		fake_script[i].delay_ms = 1;
	}
	fake_script_n = 64;
	conf_make(1, CHECK_BIT(CHECK_XMPP), 20, 200, 2, 1);
	check_sched_configure(cur, &conf);
	run_ms(150);
	assert_int_equal(results_fail, 1);	/* it did report ... */
	observe_one("a", &o);
	assert_true(o.alive);			/* ... but was older than the rest */
	assert_int_equal(o.failures, 0);
	for (i = 0; i < nseen; i++)
		assert_true(seen[i].alive_before || i == 0);
}

static void
test_overlapping_successes_after_a_hang_count_once_towards_rise(void **unused)
{
	static const int script[][2] = {
		{ 0, 2 },	/* t=0: fails: down */
		{ 1, 90 },	/* t=40: ok at 130 */
		{ 1, 60 },	/* t=80: ok at 140, but it overlapped the one above */
		{ 1, 60 },	/* t=120: ok at 180, overlapped too */
		{ 1, 2 },	/* t=160: ok at 162: the second real one: up */
	};
	struct observation	o;
	int			i;

	fake_mode[0][CHECK_XMPP] = FAKE_SCRIPT;
	for (i = 0; i < 64; i++) {
		fake_script[i].ok = i < 5 ? script[i][0] : 1;
		fake_script[i].delay_ms = i < 5 ? script[i][1] : 2;
	}
	fake_script_n = 64;
	conf_make(1, CHECK_BIT(CHECK_XMPP), 40, 500, 2, 1);
	check_sched_configure(cur, &conf);
	run_ms(150);
	observe_one("a", &o);
	assert_true(o.checked);
	assert_false(o.alive);		/* two successes in, but one observation */
	assert_int_equal(o.failures, 0);
	run_ms(60);
	assert_true(a_alive());
}

static void
test_reload_keeps_unchanged_backends_and_resets_changed_ones(void **unused)
{
	struct observation	o[MAXB];
	char			err[128];
	int			cancels;

	conf_make(3, CHECK_BIT(CHECK_XMPP), 10, 1000, 2, 2);
	fake_mode[2][CHECK_XMPP] = FAKE_OK;
	check_sched_configure(cur, &conf);
	run_until(settled, 500, "all checked");
	/* c hangs from now on: its probes are in flight at the reload. */
	fake_mode[2][CHECK_XMPP] = FAKE_HANG;
	run_ms(30);
	assert_true(check_sched_inflight(cur) > 0);
	cancels = fake_cancels;
	/* b moves to another port, c goes, d comes. */
	conf_make(4, CHECK_BIT(CHECK_XMPP), 10, 1000, 2, 2);
	assert_int_equal(net_addr_parse("127.0.0.1:6001", &bconf[1].address, err,
	    sizeof(err)), 0);
	bconf[2] = bconf[3];
	conf.nbackends = 3;
	check_sched_configure(cur, &conf);
	assert_true(fake_cancels > cancels);	/* c's probes were stopped */
	assert_int_equal(check_sched_count(cur), 3);
	check_sched_observe(cur, o);
	assert_string_equal(o[0].name, "a");
	assert_true(o[0].checked && o[0].alive);	/* kept */
	assert_string_equal(o[1].name, "b");
	assert_false(o[1].checked);			/* changed: from scratch */
	assert_string_equal(o[1].last_error, "not checked yet");
	assert_string_equal(o[2].name, "d");
	assert_false(o[2].checked);
	run_until(settled, 500, "all checked again");
}

static void
test_alive_needs_every_liveness_check_and_spoolsync_only_syncs(void **unused)
{
	struct observation	o[MAXB];

	conf_make(3, CHECK_BIT(CHECK_XMPP) | CHECK_BIT(CHECK_LOGIN) |
	    CHECK_BIT(CHECK_SPOOLSYNC), 10, 100, 1, 1);
	fake_mode[1][CHECK_LOGIN] = FAKE_FAIL;		/* b: login fails */
	fake_mode[2][CHECK_SPOOLSYNC] = FAKE_UNSYNCED;	/* c: lags */
	check_sched_configure(cur, &conf);
	run_until(settled, 500, "all checked");
	run_ms(30);
	check_sched_observe(cur, o);
	assert_true(o[0].alive && o[0].has_sync && o[0].synced);
	assert_int_equal(o[0].lag_ms, 3);
	assert_int_equal(o[0].latency_us, 200);	/* login's, before xmpp's */
	assert_string_equal(o[0].last_error, "");
	assert_false(o[1].alive);
	assert_true(o[1].failures >= 1);
	assert_non_null(strstr(o[1].last_error, "login: fake failure of b"));
	assert_true(o[2].alive);
	assert_false(o[2].synced);
	assert_int_equal(o[2].lag_ms, 5000);
	assert_non_null(strstr(o[2].last_error, "spoolsync: lag 5000 ms"));
}

static void
test_freeing_the_scheduler_cancels_every_probe_in_flight(void **unused)
{
	fake_mode[0][CHECK_XMPP] = FAKE_HANG;
	fake_mode[1][CHECK_XMPP] = FAKE_HANG;
	conf_make(2, CHECK_BIT(CHECK_XMPP), 10, 1000, 2, 2);
	check_sched_configure(cur, &conf);
	run_ms(50);
	assert_true(check_sched_inflight(cur) >= 4);
	check_sched_free(cur);
	cur = check_sched_new(base, &fake_ops, &cbs);
	assert_null(fake_live);
	assert_true(fake_cancels >= 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hysteresis_first_verdict_decides_then_rise_and_fall),
		cmocka_unit_test_setup_teardown(test_down_after_exactly_fall_failures_and_up_after_rise,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_probes_are_spread_over_the_interval,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_stuck_probe_is_cancelled_and_counts_as_a_failure,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_verdict_from_inside_start_is_taken,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_probe_that_cannot_start_is_a_failure,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_late_verdict_never_overrides_a_newer_one,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_overlapping_successes_after_a_hang_count_once_towards_rise,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_keeps_unchanged_backends_and_resets_changed_ones,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_alive_needs_every_liveness_check_and_spoolsync_only_syncs,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_freeing_the_scheduler_cancels_every_probe_in_flight,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
