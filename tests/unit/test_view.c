/* test_view.c: the membership view as a pure function: every combination of
 * verdicts and admin states, generations that grow only on a change, since
 * kept while a state holds, and the JSON subscribers read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hamon.h"

#define T0	1700000000000ull

static struct observation
obs(const char *name, int checked, int alive, int has_sync, int synced)
{
	struct observation	o;

	memset(&o, 0, sizeof(o));
	o.name = name;
	o.checked = checked;
	o.alive = alive;
	o.has_sync = has_sync;
	o.synced = synced;
	o.latency_us = -1;
	o.lag_ms = -1;
	o.last_error = "";
	return o;
}

/* The whole table: (checked, alive, has_sync, synced) x admin -> state. */
static void
test_every_state_combination_maps_to_the_documented_state(void **unused)
{
	int	checked, alive, has_sync, synced, admin;
	enum backend_state want, got;

	for (checked = 0; checked < 2; checked++)
	for (alive = 0; alive < 2; alive++)
	for (has_sync = 0; has_sync < 2; has_sync++)
	for (synced = 0; synced < 2; synced++)
	for (admin = 0; admin < ADMIN_NSTATES; admin++) {
		struct observation o = obs("a", checked, alive, has_sync, synced);

		if (admin == ADMIN_MAINT)
			want = BACKEND_MAINT;
		else if (!checked || !alive)
			want = BACKEND_DOWN;
		else if (admin == ADMIN_DRAIN)
			want = BACKEND_DRAINING;
		else if (has_sync && !synced)
			want = BACKEND_UNSYNCED;
		else
			want = BACKEND_UP;
		got = view_state(&o, admin);
		if (got != want)
			fail_msg("checked=%d alive=%d has_sync=%d synced=%d admin=%s: "
			    "%s, expected %s", checked, alive, has_sync, synced,
			    admin_state_name(admin), backend_state_name(got),
			    backend_state_name(want));
	}
}

static void
test_only_up_is_eligible(void **unused)
{
	struct observation	o[5] = {
		obs("up", 1, 1, 0, 0), obs("down", 1, 0, 0, 0),
		obs("unsynced", 1, 1, 1, 0), obs("draining", 1, 1, 0, 0),
		obs("maint", 1, 1, 0, 0)
	};
	enum admin_state	a[5] = { ADMIN_READY, ADMIN_READY, ADMIN_READY,
				    ADMIN_DRAIN, ADMIN_MAINT };
	struct view		v;
	size_t			i;

	view_compute(o, a, 5, NULL, "p1", T0, &v);
	for (i = 0; i < 5; i++) {
		assert_string_equal(backend_state_name(v.backends[i].state),
		    v.backends[i].name);
		assert_int_equal(v.backends[i].eligible, i == 0);
	}
	assert_int_equal(view_eligible(&v), 1);
	view_free(&v);
}

static void
test_maint_overrides_even_a_dead_backend_and_drain_does_not(void **unused)
{
	struct observation	o = obs("a", 1, 0, 0, 0);

	assert_int_equal(view_state(&o, ADMIN_MAINT), BACKEND_MAINT);
	/* A drained backend that dies must be failed over: down. */
	assert_int_equal(view_state(&o, ADMIN_DRAIN), BACKEND_DOWN);
	o.alive = 1;
	o.has_sync = 1;
	assert_int_equal(view_state(&o, ADMIN_DRAIN), BACKEND_DRAINING);
	assert_int_equal(view_state(&o, ADMIN_READY), BACKEND_UNSYNCED);
}

static void
test_a_backend_without_verdicts_is_down_never_guessed_up(void **unused)
{
	struct observation	o = obs("a", 0, 1, 0, 0);

	assert_int_equal(view_state(&o, ADMIN_READY), BACKEND_DOWN);
}

static void
test_a_backend_whose_checks_restarted_keeps_its_state_until_a_verdict(void **unused)
{
	struct observation	o = obs("a", 1, 1, 0, 0);
	enum admin_state	a = ADMIN_READY;
	struct view		v1, v2, v3, v4;

	view_compute(&o, &a, 1, NULL, "p1", T0, &v1);
	o.checked = o.alive = 0;	/* a reload changed its checks */
	view_compute(&o, &a, 1, &v1, "p1", T0 + 10, &v2);
	assert_int_equal(v2.backends[0].state, BACKEND_UP);
	assert_true(v2.backends[0].eligible);
	assert_int_equal(v2.generation, v1.generation);
	assert_int_equal(v2.backends[0].since_ms, T0);
	a = ADMIN_MAINT;		/* an admin state still applies at once */
	view_compute(&o, &a, 1, &v2, "p1", T0 + 20, &v3);
	assert_int_equal(v3.backends[0].state, BACKEND_MAINT);
	o.checked = 1;			/* the first verdict decides */
	a = ADMIN_READY;
	view_compute(&o, &a, 1, &v2, "p1", T0 + 30, &v4);
	assert_int_equal(v4.backends[0].state, BACKEND_DOWN);
	view_free(&v1);
	view_free(&v2);
	view_free(&v3);
	view_free(&v4);
}

static void
test_generation_grows_only_when_a_state_changes(void **unused)
{
	struct observation	o[2] = { obs("a", 1, 1, 0, 0), obs("b", 1, 1, 0, 0) };
	enum admin_state	a[2] = { ADMIN_READY, ADMIN_READY };
	struct view		v1, v2, v3, v4;

	view_compute(o, a, 2, NULL, "p1", T0, &v1);
	assert_int_equal(v1.generation, 1);
	/* New latency, failures, error, lag, a later now: the same generation. */
	o[0].latency_us = 1234;
	o[0].failures = 1;
	o[0].last_error = "xmpp: timed out";
	o[0].lag_ms = 40;
	view_compute(o, a, 2, &v1, "p1", T0 + 5000, &v2);
	assert_int_equal(v2.generation, 1);
	assert_int_equal(v2.backends[0].latency_us, 1234);
	assert_string_equal(v2.backends[0].last_error, "xmpp: timed out");
	o[1].alive = 0;
	view_compute(o, a, 2, &v2, "p1", T0 + 6000, &v3);
	assert_int_equal(v3.generation, 2);
	view_compute(o, a, 2, &v3, "p1", T0 + 7000, &v4);
	assert_int_equal(v4.generation, 2);
	view_free(&v1);
	view_free(&v2);
	view_free(&v3);
	view_free(&v4);
}

static void
test_since_is_kept_while_the_state_holds_and_reset_on_change(void **unused)
{
	struct observation	o[2] = { obs("a", 1, 1, 0, 0), obs("b", 1, 1, 0, 0) };
	struct view		v1, v2, v3;

	view_compute(o, NULL, 2, NULL, "p1", T0, &v1);
	assert_int_equal(v1.backends[0].since_ms, T0);
	o[1].alive = 0;
	view_compute(o, NULL, 2, &v1, "p1", T0 + 1000, &v2);
	assert_int_equal(v2.backends[0].since_ms, T0);
	assert_int_equal(v2.backends[1].since_ms, T0 + 1000);
	view_compute(o, NULL, 2, &v2, "p1", T0 + 9000, &v3);
	assert_int_equal(v3.backends[1].since_ms, T0 + 1000);
	view_free(&v1);
	view_free(&v2);
	view_free(&v3);
}

static void
test_admin_changes_bump_the_generation_even_without_a_state_change(void **unused)
{
	struct observation	o = obs("a", 1, 0, 0, 0);
	enum admin_state	a = ADMIN_READY;
	struct view		v1, v2;

	view_compute(&o, &a, 1, NULL, "p1", T0, &v1);
	a = ADMIN_DRAIN;	/* down either way, but subscribers see admin */
	view_compute(&o, &a, 1, &v1, "p1", T0 + 10, &v2);
	assert_int_equal(v2.backends[0].state, BACKEND_DOWN);
	assert_int_equal(v2.backends[0].admin, ADMIN_DRAIN);
	assert_int_equal(v2.generation, v1.generation + 1);
	assert_int_equal(v2.backends[0].since_ms, T0);
	view_free(&v1);
	view_free(&v2);
}

static void
test_added_removed_and_reordered_backends_change_the_generation(void **unused)
{
	struct observation	o[3] = { obs("a", 1, 1, 0, 0), obs("b", 1, 1, 0, 0),
				    obs("c", 1, 1, 0, 0) };
	struct observation	r[2] = { obs("b", 1, 1, 0, 0), obs("a", 1, 1, 0, 0) };
	struct view		v1, v2, v3, v4;

	view_compute(o, NULL, 2, NULL, "p1", T0, &v1);
	view_compute(o, NULL, 3, &v1, "p1", T0 + 1, &v2);
	assert_int_equal(v2.generation, 2);
	assert_int_equal(v2.backends[2].since_ms, T0 + 1);
	view_compute(o, NULL, 2, &v2, "p1", T0 + 2, &v3);
	assert_int_equal(v3.generation, 3);
	/* Reordered: found by name, since kept. */
	view_compute(r, NULL, 2, &v3, "p1", T0 + 3, &v4);
	assert_int_equal(v4.generation, 4);
	assert_string_equal(v4.backends[0].name, "b");
	assert_int_equal(v4.backends[0].since_ms, T0);
	assert_int_equal(v4.backends[1].since_ms, T0);
	view_free(&v1);
	view_free(&v2);
	view_free(&v3);
	view_free(&v4);
}

static void
test_the_generation_continues_from_a_previous_view(void **unused)
{
	struct observation	o = obs("a", 1, 1, 0, 0);
	struct view		seed, v;

	/* After a restart the last generation comes back from state_file. */
	memset(&seed, 0, sizeof(seed));
	seed.generation = 41;
	view_compute(&o, NULL, 1, &seed, "p1", T0, &v);
	assert_int_equal(v.generation, 42);
	view_free(&v);
	/* No backends and nothing before: nothing to announce. */
	view_compute(NULL, NULL, 0, NULL, "p1", T0, &v);
	assert_int_equal(v.generation, 0);
	view_free(&v);
}

static void
test_the_same_inputs_give_the_same_view_and_prev_is_untouched(void **unused)
{
	struct observation	o[2] = { obs("a", 1, 1, 1, 0), obs("b", 0, 0, 0, 0) };
	enum admin_state	a[2] = { ADMIN_READY, ADMIN_DRAIN };
	struct view		prev, copy, x, y;
	struct json		jx, jy, jp, jc;

	view_compute(o, a, 2, NULL, "p1", T0, &prev);
	view_copy(&copy, &prev);
	o[1].checked = o[1].alive = 1;
	view_compute(o, a, 2, &prev, "p1", T0 + 50, &x);
	view_compute(o, a, 2, &prev, "p1", T0 + 50, &y);
	json_init(&jx);
	json_init(&jy);
	json_init(&jp);
	json_init(&jc);
	view_json(&x, &jx);
	view_json(&y, &jy);
	view_json(&prev, &jp);
	view_json(&copy, &jc);
	assert_string_equal(json_text(&jx), json_text(&jy));
	assert_string_equal(json_text(&jp), json_text(&jc));
	json_free(&jx);
	json_free(&jy);
	json_free(&jp);
	json_free(&jc);
	view_free(&prev);
	view_free(&copy);
	view_free(&x);
	view_free(&y);
}

static void
test_json_has_every_field_subscribers_read(void **unused)
{
	struct observation	o[2] = { obs("a", 1, 1, 1, 1), obs("b", 1, 0, 0, 0) };
	struct view		v;
	struct json		j;
	struct jval		*root;
	const struct jval	*bs, *a, *b;
	char			 err[128];

	o[0].latency_us = 1500;
	o[0].lag_ms = 12;
	o[1].failures = 3;
	o[1].last_error = "xmpp: connection refused";
	view_compute(o, NULL, 2, NULL, "p1", T0, &v);
	json_init(&j);
	view_json(&v, &j);
	root = json_parse(json_text(&j), strlen(json_text(&j)), err, sizeof(err));
	assert_non_null(root);
	assert_int_equal((int)jval_num(root, "generation", 0), 1);
	assert_string_equal(jval_str(root, "node"), "p1");
	bs = jval_get(root, "backends");
	assert_non_null(bs);
	assert_int_equal(bs->n, 2);
	a = bs->items[0];
	b = bs->items[1];
	assert_string_equal(jval_str(a, "name"), "a");
	assert_string_equal(jval_str(a, "state"), "up");
	assert_true(jval_num(a, "since_ms", 0) == (double)T0);
	assert_true(jval_num(a, "latency_ms", 0) == 1.5);
	assert_true(jval_num(a, "lag_ms", 0) == 12);
	assert_int_equal(jval_get(a, "last_error")->type, J_NULL);
	assert_true(jval_bool(a, "eligible", 0));
	assert_string_equal(jval_str(b, "state"), "down");
	assert_int_equal(jval_get(b, "latency_ms")->type, J_NULL);
	assert_int_equal(jval_get(b, "lag_ms")->type, J_NULL);
	assert_true(jval_num(b, "failures", 0) == 3);
	assert_string_equal(jval_str(b, "last_error"), "xmpp: connection refused");
	assert_false(jval_bool(b, "eligible", 1));
	jval_free(root);
	json_free(&j);
	view_free(&v);
}

static void
test_state_and_admin_names_round_trip(void **unused)
{
	int	i;

	for (i = 0; i < BACKEND_NSTATES; i++)
		assert_int_equal(backend_state_parse(backend_state_name(i)), i);
	for (i = 0; i < ADMIN_NSTATES; i++)
		assert_int_equal(admin_state_parse(admin_state_name(i)), i);
	assert_int_equal(backend_state_parse("sideways"), -1);
	assert_int_equal(admin_state_parse("UP"), -1);
}

/* proxyd connects to the address in the view: moving it is a change. */
static void
test_address_change_bumps_generation_and_is_published(void **state)
{
	struct observation	o = obs("a", 1, 1, 0, 0);
	struct view		v1, v2;
	struct json		j;

	o.address = "127.0.0.1:5222";
	view_compute(&o, NULL, 1, NULL, "p1", T0, &v1);
	o.address = "127.0.0.1:5223";
	view_compute(&o, NULL, 1, &v1, "p1", T0 + 1000, &v2);
	assert_int_equal(v2.generation, v1.generation + 1);
	assert_string_equal(v2.backends[0].address, "127.0.0.1:5223");
	/* The state did not change, so neither did its since. */
	assert_int_equal(v2.backends[0].since_ms, T0);
	json_init(&j);
	view_json(&v2, &j);
	assert_non_null(strstr(json_text(&j), "\"address\":\"127.0.0.1:5223\""));
	json_free(&j);
	view_free(&v1);
	view_free(&v2);
}

/* Whole-host death: the survivor's spool lost its peer link, but had caught up. */
static void
test_a_spool_whose_peer_died_with_its_backend_stays_eligible(void **unused)
{
	struct observation	o[3];
	struct view		v;

	o[0] = obs("a", 1, 0, 1, 0);		/* the dead host */
	o[1] = obs("b", 1, 1, 1, 1);
	o[1].peers_gone = "a";
	view_compute(o, NULL, 2, NULL, "h", T0, &v);
	assert_int_equal(v.backends[0].state, BACKEND_DOWN);
	assert_int_equal(v.backends[1].state, BACKEND_UP);
	assert_true(v.backends[1].eligible);
	assert_non_null(strstr(v.backends[1].last_error, "peer a gone"));
	view_free(&v);

	/* The peer's backend serving: it may hold writes b lacks. */
	o[0] = obs("a", 1, 1, 1, 1);
	view_compute(o, NULL, 2, NULL, "h", T0, &v);
	assert_int_equal(v.backends[1].state, BACKEND_UNSYNCED);
	assert_false(v.backends[1].eligible);
	assert_non_null(strstr(v.backends[1].last_error, "peer a not connected"));
	view_free(&v);
	view_compute(o, (enum admin_state[]){ ADMIN_DRAIN, ADMIN_READY }, 2,
	    NULL, "h", T0, &v);
	assert_int_equal(v.backends[1].state, BACKEND_UNSYNCED);
	view_free(&v);

	/* Alive but unsynced by its own spoolsync check: not serving, so gone. */
	o[0] = obs("a", 1, 1, 1, 0);
	view_compute(o, NULL, 2, NULL, "h", T0, &v);
	assert_int_equal(v.backends[0].state, BACKEND_UNSYNCED);
	assert_int_equal(v.backends[1].state, BACKEND_UP);
	view_free(&v);

	/* A partition: each lost the other, both serving: neither may take over. */
	o[0] = obs("a", 1, 1, 1, 1);
	o[0].peers_gone = "b";
	view_compute(o, NULL, 2, NULL, "h", T0, &v);
	assert_int_equal(v.backends[0].state, BACKEND_UNSYNCED);
	assert_int_equal(v.backends[1].state, BACKEND_UNSYNCED);
	view_free(&v);
	o[0].peers_gone = NULL;

	/* maint counts as gone; an unknown peer name never does. */
	view_compute(o, (enum admin_state[]){ ADMIN_MAINT, ADMIN_READY }, 2,
	    NULL, "h", T0, &v);
	assert_int_equal(v.backends[1].state, BACKEND_UP);
	view_free(&v);
	o[1].peers_gone = "a zz";
	o[0] = obs("a", 1, 0, 1, 0);
	view_compute(o, NULL, 2, NULL, "h", T0, &v);
	assert_int_equal(v.backends[1].state, BACKEND_UNSYNCED);
	assert_non_null(strstr(v.backends[1].last_error, "peer zz"));
	view_free(&v);

	/* spool_node maps spoolsync's node names onto backends. */
	o[0].name = "prosody-a";
	o[0].spool_node = "a";
	o[1].peers_gone = "a";
	view_compute(o, NULL, 2, NULL, "h", T0, &v);
	assert_int_equal(v.backends[1].state, BACKEND_UP);
	view_free(&v);

	/* Two survivors of a third: each sees only its own gone peers. */
	o[0] = obs("a", 1, 0, 1, 0);
	o[1] = obs("b", 1, 1, 1, 1);
	o[2] = obs("c", 1, 1, 1, 1);
	o[1].peers_gone = "a";
	o[2].peers_gone = "a b";
	view_compute(o, NULL, 3, NULL, "h", T0, &v);
	assert_int_equal(v.backends[1].state, BACKEND_UP);
	assert_int_equal(v.backends[2].state, BACKEND_UNSYNCED);
	view_free(&v);
}

/* A failing check's own error is what on-call needs first: never overwritten. */
static void
test_peers_gone_never_hides_a_check_error_or_revives_a_down_backend(void **unused)
{
	struct observation	o[2];
	struct view		v;

	o[0] = obs("a", 1, 0, 1, 0);
	o[1] = obs("b", 1, 1, 1, 0);		/* unsynced for its own reason */
	o[1].peers_gone = "a";
	o[1].last_error = "spoolsync: peer c: lag 9000 ms > 2000 ms";
	view_compute(o, NULL, 2, NULL, "h", T0, &v);
	assert_int_equal(v.backends[1].state, BACKEND_UNSYNCED);
	assert_string_equal(v.backends[1].last_error, o[1].last_error);
	view_free(&v);
	o[1] = obs("b", 1, 0, 1, 1);
	o[1].peers_gone = "a";
	view_compute(o, NULL, 2, NULL, "h", T0, &v);
	assert_int_equal(v.backends[1].state, BACKEND_DOWN);
	view_free(&v);
}

/* holds: unsynced after up (or after holding); never for a returning backend. */
static void
test_an_unsynced_backend_holds_only_what_it_served(void **unused)
{
	static const struct { int alive, synced, holds; } seq[] = {
		{ 1, 1, 0 },		/* up */
		{ 1, 0, 1 },		/* falls behind: keeps its domains */
		{ 1, 0, 1 },		/* still */
		{ 0, 0, 0 },		/* down */
		{ 1, 0, 0 },		/* back, catching up: holds nothing */
		{ 1, 1, 0 },		/* up */
	};
	struct observation	o;
	struct view		prev, cur;
	uint64_t		gen = 0;
	size_t			i;

	memset(&prev, 0, sizeof(prev));
	for (i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
		o = obs("a", 1, seq[i].alive, 1, seq[i].synced);
		view_compute(&o, NULL, 1, i > 0 ? &prev : NULL, "h", T0 + i, &cur);
		assert_int_equal(cur.backends[0].holds, seq[i].holds);
		assert_false(cur.backends[0].eligible && cur.backends[0].holds);
		if (i == 2)
			assert_int_equal(cur.generation, gen);	/* no change */
		gen = cur.generation;
		if (i > 0)
			view_free(&prev);
		prev = cur;
	}
	view_free(&prev);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_state_combination_maps_to_the_documented_state),
		cmocka_unit_test(test_only_up_is_eligible),
		cmocka_unit_test(test_maint_overrides_even_a_dead_backend_and_drain_does_not),
		cmocka_unit_test(test_a_backend_without_verdicts_is_down_never_guessed_up),
		cmocka_unit_test(test_a_backend_whose_checks_restarted_keeps_its_state_until_a_verdict),
		cmocka_unit_test(test_generation_grows_only_when_a_state_changes),
		cmocka_unit_test(test_since_is_kept_while_the_state_holds_and_reset_on_change),
		cmocka_unit_test(test_admin_changes_bump_the_generation_even_without_a_state_change),
		cmocka_unit_test(test_added_removed_and_reordered_backends_change_the_generation),
		cmocka_unit_test(test_the_generation_continues_from_a_previous_view),
		cmocka_unit_test(test_the_same_inputs_give_the_same_view_and_prev_is_untouched),
		cmocka_unit_test(test_json_has_every_field_subscribers_read),
		cmocka_unit_test(test_state_and_admin_names_round_trip),
		cmocka_unit_test(test_address_change_bumps_generation_and_is_published),
		cmocka_unit_test(test_a_spool_whose_peer_died_with_its_backend_stays_eligible),
		cmocka_unit_test(test_peers_gone_never_hides_a_check_error_or_revives_a_down_backend),
		cmocka_unit_test(test_an_unsynced_backend_holds_only_what_it_served),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
