/* test_placement.c: rendezvous placement: every proxy agrees, load spreads
 * evenly, a lost backend moves only its own domains and gets exactly them back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxyd.h"

#define NDOMAINS	10000

static char	*domains[NDOMAINS];

/* A view of N backends named by NAMES; ELIG[i] (NULL: all eligible). */
static void
view_make(struct pview *v, const char *const *names, const int *elig, size_t n)
{
	char	err[128], addr[64];
	size_t	i;

	memset(v, 0, sizeof(*v));
	v->generation = 1;
	v->node = xstrdup("n1");
	v->b = xcalloc(n + 1, sizeof(*v->b));
	v->n = n;
	for (i = 0; i < n; i++) {
		v->b[i].name = xstrdup(names[i]);
		v->b[i].eligible = elig != NULL ? elig[i] : 1;
		v->b[i].state = xstrdup(v->b[i].eligible ? "up" : "down");
		/* The address follows the name, as it does in hamon's config. */
		snprintf(addr, sizeof(addr), "10.0.0.%u:5222",
		    (unsigned char)names[i][0]);
		assert_int_equal(net_addr_parse(addr, &v->b[i].address, err,
		    sizeof(err)), 0);
	}
}

static const char *const five[] = { "a", "b", "c", "d", "e" };

static int
setup_domains(void **unused)
{
	size_t	i;

	for (i = 0; i < NDOMAINS; i++)
		xasprintf(&domains[i], "d%zu.example.org", i);
	return 0;
}

static int
teardown_domains(void **unused)
{
	size_t	i;

	for (i = 0; i < NDOMAINS; i++)
		free(domains[i]);
	return 0;
}

/*
 * Two proxies of different versions must agree: the hash and its key are
 * part of the protocol.  These values come from SipHash-2-4 as written (it
 * gives the reference vectors under the reference key); a change here means
 * every domain moves on upgrade.
 */
static void
test_weights_are_pinned_across_builds(void **unused)
{
	assert_true(placement_weight("example.com", "a") == 0x8384036b1b7a00b3ull);
	assert_true(placement_weight("example.com", "b") == 0x562da9610c5431e0ull);
	assert_true(placement_weight("", "") == 0x7b302919e45b0fe7ull);
}

/* The separator: ("ab", "c") and ("a", "bc") are different pairs. */
static void
test_domain_and_name_are_separated_in_the_hash(void **unused)
{
	assert_true(placement_weight("ab", "c") != placement_weight("a", "bc"));
	assert_true(placement_weight("example.com", "a") !=
	    placement_weight("example.com", "b"));
}

static void
test_pick_is_deterministic_and_ignores_backend_order(void **unused)
{
	static const char *const rev[] = { "e", "d", "c", "b", "a" };
	struct pview		 v1, v2;
	const struct pbackend	*p1, *p2;
	size_t			 i;

	view_make(&v1, five, NULL, 5);
	view_make(&v2, rev, NULL, 5);
	for (i = 0; i < NDOMAINS; i++) {
		p1 = placement_pick(&v1, domains[i], NULL);
		p2 = placement_pick(&v2, domains[i], NULL);
		assert_non_null(p1);
		assert_non_null(p2);
		assert_string_equal(p1->name, p2->name);
		assert_ptr_equal(placement_pick(&v1, domains[i], NULL), p1);
	}
	pview_free(&v1);
	pview_free(&v2);
}

static void
test_prefer_wins_only_when_eligible(void **unused)
{
	static const int	 c_down[] = { 1, 1, 0, 1, 1 };
	struct pview		 v;
	const struct pbackend	*p;
	size_t			 i;

	view_make(&v, five, NULL, 5);
	for (i = 0; i < 200; i++)
		assert_string_equal(placement_pick(&v, domains[i], "c")->name, "c");
	/* An unknown preference is no preference. */
	for (i = 0; i < 200; i++)
		assert_ptr_equal(placement_pick(&v, domains[i], "zz"),
		    placement_pick(&v, domains[i], NULL));
	pview_free(&v);
	view_make(&v, five, c_down, 5);
	for (i = 0; i < 200; i++) {
		p = placement_pick(&v, domains[i], "c");
		assert_non_null(p);
		assert_string_not_equal(p->name, "c");
		assert_ptr_equal(p, placement_pick(&v, domains[i], NULL));
	}
	pview_free(&v);
}

/*
 * Chi-square with N-1 degrees of freedom against the 0.1% critical value:
 * a fair hash fails this 1 time in 1,000, and the values are fixed, so it
 * either always passes or the hash is biased.
 */
static void
check_spread(size_t n, double crit)
{
	static const char *const names[] = { "a", "b", "c", "d", "e", "f", "g", "h" };
	struct pview		 v;
	const struct pbackend	*p;
	size_t			 count[8] = { 0 }, i, min = NDOMAINS, max = 0;
	double			 e = (double)NDOMAINS / (double)n, chi = 0;

	view_make(&v, names, NULL, n);
	for (i = 0; i < NDOMAINS; i++) {
		p = placement_pick(&v, domains[i], NULL);
		count[p - v.b]++;
	}
	for (i = 0; i < n; i++) {
		chi += ((double)count[i] - e) * ((double)count[i] - e) / e;
		min = count[i] < min ? count[i] : min;
		max = count[i] > max ? count[i] : max;
	}
	print_message("placement: %zu backends, %d domains: expected %.0f each, "
	    "min %zu max %zu, chi2 %.2f (0.1%% critical %.2f)\n", n, NDOMAINS, e,
	    min, max, chi, crit);
	assert_true(chi < crit);
	pview_free(&v);
}

static void
test_each_of_n_backends_gets_about_one_nth_of_the_domains(void **unused)
{
	check_spread(2, 10.83);
	check_spread(3, 13.82);
	check_spread(5, 18.47);
	check_spread(8, 24.32);
}

/* Losing c, by leaving the view or by turning ineligible, moves exactly c's. */
static void
check_loss_moves_exactly_its_domains(const struct pview *all,
    const struct pview *lost)
{
	const struct pbackend	*before, *after;
	size_t			*moved = xcalloc(NDOMAINS, sizeof(*moved));
	size_t			 nmoved, i, k = 0, onc = 0;

	nmoved = placement_moves(all, lost, (const char *const *)domains, NULL,
	    NDOMAINS, moved);
	for (i = 0; i < NDOMAINS; i++) {
		before = placement_pick(all, domains[i], NULL);
		after = placement_pick(lost, domains[i], NULL);
		assert_non_null(after);
		assert_string_not_equal(after->name, "c");
		if (strcmp(before->name, "c") != 0) {
			assert_string_equal(before->name, after->name);
			continue;
		}
		onc++;
		assert_true(k < nmoved);
		assert_int_equal(moved[k++], i);
	}
	assert_int_equal(k, nmoved);
	assert_int_equal(onc, nmoved);
	assert_true(onc > NDOMAINS / 5 - 400 && onc < NDOMAINS / 5 + 400);
	free(moved);
}

static void
test_removing_a_backend_moves_only_its_domains(void **unused)
{
	static const char *const	without_c[] = { "a", "b", "d", "e" };
	static const int		c_down[] = { 1, 1, 0, 1, 1 };
	struct pview			all, gone, down;

	view_make(&all, five, NULL, 5);
	view_make(&gone, without_c, NULL, 4);
	view_make(&down, five, c_down, 5);
	check_loss_moves_exactly_its_domains(&all, &gone);
	check_loss_moves_exactly_its_domains(&all, &down);
	pview_free(&all);
	pview_free(&gone);
	pview_free(&down);
}

/* Failback: the same set goes back to c, nothing else moves. */
static void
test_adding_it_back_returns_exactly_those_domains(void **unused)
{
	static const char *const without_c[] = { "a", "b", "d", "e" };
	struct pview	 all, gone;
	size_t		*out = xcalloc(NDOMAINS, sizeof(*out));
	size_t		*back = xcalloc(NDOMAINS, sizeof(*back));
	size_t		 nout, nback, i;

	view_make(&all, five, NULL, 5);
	view_make(&gone, without_c, NULL, 4);
	nout = placement_moves(&all, &gone, (const char *const *)domains, NULL,
	    NDOMAINS, out);
	nback = placement_moves(&gone, &all, (const char *const *)domains, NULL,
	    NDOMAINS, back);
	assert_true(nout > 0);
	assert_int_equal(nout, nback);
	assert_memory_equal(out, back, nout * sizeof(*out));
	for (i = 0; i < nback; i++)
		assert_string_equal(placement_pick(&all, domains[back[i]],
		    NULL)->name, "c");
	/* Counting only. */
	assert_int_equal(placement_moves(&gone, &all,
	    (const char *const *)domains, NULL, NDOMAINS, NULL), nback);
	free(out);
	free(back);
	pview_free(&all);
	pview_free(&gone);
}

/* A domain preferring c leaves it when c fails and goes back when it returns. */
static void
test_preferring_domains_follow_their_backend(void **unused)
{
	static const int	 c_down[] = { 1, 1, 0, 1, 1 };
	const char		*prefers[NDOMAINS];
	struct pview		 all, down;
	size_t			 moved[NDOMAINS], n, i;

	for (i = 0; i < NDOMAINS; i++)
		prefers[i] = i % 2 == 0 ? "c" : NULL;
	view_make(&all, five, NULL, 5);
	view_make(&down, five, c_down, 5);
	n = placement_moves(&all, &down, (const char *const *)domains, prefers,
	    NDOMAINS, moved);
	/* Every even domain was on c, plus the odd ones c won by hashing. */
	assert_true(n > NDOMAINS / 2);
	for (i = 0; i < NDOMAINS; i += 2)
		assert_string_equal(placement_pick(&all, domains[i], "c")->name, "c");
	for (i = 0; i < n; i++)
		assert_string_equal(placement_pick(&all, domains[moved[i]],
		    prefers[moved[i]])->name, "c");
	assert_int_equal(placement_moves(&down, &all,
	    (const char *const *)domains, prefers, NDOMAINS, NULL), n);
	pview_free(&all);
	pview_free(&down);
}

static void
test_no_eligible_backend_gives_null(void **unused)
{
	static const int	 none[] = { 0, 0, 0, 0, 0 };
	struct pview		 v, empty;
	size_t			 moved[2];
	const char		*d[] = { "example.com", "example.net" };

	memset(&empty, 0, sizeof(empty));
	assert_null(placement_pick(&empty, "example.com", NULL));
	assert_null(placement_pick(NULL, "example.com", "a"));
	view_make(&v, five, none, 5);
	assert_null(placement_pick(&v, "example.com", NULL));
	assert_null(placement_pick(&v, "example.com", "a"));
	/* Both nowhere: no move; from somewhere to nowhere: a move. */
	assert_int_equal(placement_moves(&empty, &v, d, NULL, 2, moved), 0);
	pview_free(&v);
	view_make(&v, five, NULL, 5);
	assert_int_equal(placement_moves(&v, &empty, d, NULL, 2, moved), 2);
	assert_int_equal(moved[0], 0);
	assert_int_equal(moved[1], 1);
	assert_int_equal(placement_moves(&empty, &v, d, NULL, 2, NULL), 2);
	pview_free(&v);
}

static void
test_domains_are_placed_case_insensitively(void **unused)
{
	struct pview	v;
	char		up[64];
	size_t		i, k;

	view_make(&v, five, NULL, 5);
	for (i = 0; i < 1000; i++) {
		snprintf(up, sizeof(up), "%s", domains[i]);
		for (k = 0; up[k] != '\0'; k++)
			if (k % 2 == 0 && up[k] >= 'a' && up[k] <= 'z')
				up[k] = (char)(up[k] - 'a' + 'A');
		assert_ptr_equal(placement_pick(&v, up, NULL),
		    placement_pick(&v, domains[i], NULL));
	}
	assert_true(placement_weight("EXAMPLE.COM", "a") ==
	    placement_weight("example.com", "a"));
	/* Backend names are not folded: they are identifiers. */
	assert_true(placement_weight("example.com", "A") !=
	    placement_weight("example.com", "a"));
	pview_free(&v);
}

/* The same backend name at a new address is a move: sessions must follow. */
static void
test_a_new_address_for_the_same_backend_is_a_move(void **unused)
{
	struct pview	v1, v2;
	char		err[128];
	const char	*d[] = { "example.com" };
	size_t		moved[1], i;

	view_make(&v1, five, NULL, 5);
	view_make(&v2, five, NULL, 5);
	assert_int_equal(placement_moves(&v1, &v2, d, NULL, 1, moved), 0);
	for (i = 0; i < 5; i++)
		assert_int_equal(net_addr_parse("192.0.2.1:5222", &v2.b[i].address,
		    err, sizeof(err)), 0);
	assert_int_equal(placement_moves(&v1, &v2, d, NULL, 1, moved), 1);
	pview_free(&v1);
	pview_free(&v2);
}

/* Backend I of V gets STATE; only "up" stays eligible. */
static void
view_state(struct pview *v, size_t i, const char *state)
{
	free(v->b[i].state);
	v->b[i].state = xstrdup(state);
	v->b[i].eligible = strcmp(state, "up") == 0;
}

/* Failback, drain, maint: the old backend still serves, so no hurry. */
static void
test_sessions_leave_a_live_backend_spread(void **unused)
{
	static const char *const live[] = { "unsynced", "draining", "maint" };
	struct pview		 v;
	const struct pbackend	*a;
	size_t			 i;

	view_make(&v, five, NULL, 2);
	a = pview_find(&v, "a");
	/* Back on a by preference while b is up. */
	assert_int_equal(placement_move_kind(&v, "b", a), MOVE_SPREAD);
	assert_int_equal(placement_move_kind(&v, "a", a), MOVE_STAY);
	for (i = 0; i < 3; i++) {
		view_state(&v, 1, live[i]);
		assert_int_equal(placement_move_kind(&v, "b", a), MOVE_SPREAD);
	}
	pview_free(&v);
}

static void
test_sessions_leave_a_dead_or_gone_backend_at_once(void **unused)
{
	static const int	 b_down[] = { 1, 0 };
	struct pview		 v;
	const struct pbackend	*a;

	view_make(&v, five, b_down, 2);
	a = pview_find(&v, "a");
	assert_int_equal(placement_move_kind(&v, "b", a), MOVE_NOW);
	/* Not in the view at all. */
	assert_int_equal(placement_move_kind(&v, "zz", a), MOVE_NOW);
	pview_free(&v);
	/* Alive, but nowhere to go: waiting would only delay the error. */
	view_make(&v, five, NULL, 2);
	view_state(&v, 0, "maint");
	view_state(&v, 1, "draining");
	assert_int_equal(placement_move_kind(&v, "b", NULL), MOVE_NOW);
	pview_free(&v);
}

static void
test_spread_delays_are_even_and_inside_the_window(void **unused)
{
	size_t		i, early = 0;
	uint64_t	d, prev = 0;

	assert_true(placement_spread_delay(5000, 0, 1) == 0);
	assert_true(placement_spread_delay(5000, 0, 10) == 0);
	assert_true(placement_spread_delay(5000, 1, 10) == 500);
	assert_true(placement_spread_delay(5000, 9, 10) == 4500);
	assert_true(placement_spread_delay(0, 3, 10) == 0);
	for (i = 0; i < 1000; i++) {
		d = placement_spread_delay(3600000, i, 1000);
		assert_true(d >= prev && d < 3600000);
		if (d < 360000)
			early++;
		prev = d;
	}
	/* A tenth of the window holds a tenth of the sessions, not all. */
	assert_int_equal(early, 100);
	/* No overflow at the largest window and a huge count. */
	d = placement_spread_delay(3600000, (size_t)1 << 40, ((size_t)1 << 40) + 1);
	assert_true(d < 3600000 && d > 3500000);
}

/* Views for the sticky rule: two backends, states by name. */
static void
view2(struct pview *v, const char *sa, const char *sb)
{
	view_make(v, five, NULL, 2);
	view_state(v, 0, sa);
	view_state(v, 1, sb);
}

/* Backend I holds (hamon: unsynced after being up). */
static void
hold(struct pview *v, size_t i)
{
	assert_string_equal(v->b[i].state, "unsynced");
	v->b[i].holds = 1;
}

static void
test_a_domain_stays_on_its_backend_while_it_merely_holds(void **unused)
{
	struct pview		 v;
	const struct pbackend	*b;
	size_t			 i, stayed = 0;

	for (i = 0; i < 200; i++) {
		const char	*home, *other;
		size_t		 hi;

		view2(&v, "up", "up");
		home = strcmp(placement_pick(&v, domains[i], NULL)->name, "a") == 0 ?
		    "a" : "b";
		other = strcmp(home, "a") == 0 ? "b" : "a";
		hi = home[0] == 'a' ? 0 : 1;
		pview_free(&v);
		/* Its backend falls behind its peer: unsynced alone would move
		 * it; holding, it stays. */
		if (hi == 0)
			view2(&v, "unsynced", "up");
		else
			view2(&v, "up", "unsynced");
		assert_string_equal(placement_pick(&v, domains[i], NULL)->name, other);
		hold(&v, hi);
		b = placement_pick(&v, domains[i], NULL);
		assert_non_null(b);
		assert_string_equal(b->name, home);
		/* The other backend's domains stay where they were too. */
		assert_string_equal(placement_pick(&v, domains[i], home)->name, home);
		stayed++;
		pview_free(&v);
	}
	assert_int_equal(stayed, 200);
}

static void
test_it_moves_when_its_backend_is_down_drained_or_in_maint(void **unused)
{
	static const char *const gone[] = { "down", "draining", "maint" };
	struct pview		 v;
	size_t			 i;

	for (i = 0; i < 3; i++) {
		view2(&v, gone[i], "up");
		assert_string_equal(placement_pick(&v, "example.com", "a")->name, "b");
		pview_free(&v);
	}
	/* Up again: the hash (and the preference) decide again. */
	view2(&v, "up", "up");
	assert_string_equal(placement_pick(&v, "example.com", "b")->name, "b");
	pview_free(&v);
}

static void
test_a_returning_backend_holds_nothing_and_gets_nothing(void **unused)
{
	struct pview	v;
	size_t		i;

	/* A returning backend is unsynced first, holding nothing. */
	view2(&v, "unsynced", "up");
	for (i = 0; i < 200; i++) {
		assert_string_equal(placement_pick(&v, domains[i], NULL)->name, "b");
		assert_string_equal(placement_pick(&v, domains[i], "a")->name, "b");
	}
	pview_free(&v);
	view2(&v, "unsynced", "unsynced");
	assert_null(placement_pick(&v, "example.com", NULL));
	hold(&v, 0);
	assert_string_equal(placement_pick(&v, "example.com", NULL)->name, "a");
	pview_free(&v);
}

/* The domains of a config, for the table. */
static struct domain_conf *
confs_make(size_t n)
{
	struct domain_conf	*d = xcalloc(n, sizeof(*d));
	size_t			 i;

	for (i = 0; i < n; i++)
		d[i].name = domains[i];
	return d;
}

/*
 * up/up, then a unsynced (holding), b unsynced (holding), a down, a back
 * unsynced (holding nothing), both up: hamon's holds as it computes them.
 */
static void
sequence_view(struct pview *v, size_t step)
{
	static const char *const st[][2] = {
		{ "up", "up" }, { "unsynced", "up" }, { "unsynced", "unsynced" },
		{ "down", "unsynced" }, { "unsynced", "up" }, { "up", "up" }
	};
	static const int holds[][2] = {
		{ 0, 0 }, { 1, 0 }, { 1, 1 }, { 0, 1 }, { 0, 0 }, { 0, 0 }
	};

	view2(v, st[step][0], st[step][1]);
	v->b[0].holds = holds[step][0];
	v->b[1].holds = holds[step][1];
	v->generation = step + 1;
}

static void
test_every_proxy_given_the_same_views_agrees(void **unused)
{
	struct placement_table	*t1 = placement_table_new();
	struct placement_table	*t2 = placement_table_new();
	struct domain_conf	*d = confs_make(2000);
	struct pview		 v;
	const char		*n1, *n2;
	char			*first = xcalloc(2000, 1);
	size_t			 step, i, on_a = 0;

	for (step = 0; step < 6; step++) {
		sequence_view(&v, step);
		placement_table_update(t1, &v, d, 2000);
		placement_table_update(t2, &v, d, 2000);
		for (i = 0; i < 2000; i++) {
			assert_int_equal(placement_table_get(t1, domains[i], &n1), 0);
			assert_int_equal(placement_table_get(t2, domains[i], &n2), 0);
			assert_true((n1 == NULL) == (n2 == NULL));
			if (step == 0) {
				first[i] = n1[0];
				on_a += first[i] == 'a';
			}
			/* Through both unsynced, every domain stays put; with
			 * a down, b (holding) is the only candidate; a back
			 * but catching up gets nothing. */
			if (step <= 2)
				assert_int_equal(n1[0], first[i]);
			else if (step == 3 || step == 4)
				assert_string_equal(n1, "b");
			if (n1 != NULL)
				assert_string_equal(n1, n2);
		}
		pview_free(&v);
	}
	free(first);
	assert_true(on_a > 800 && on_a < 1200);
	placement_table_free(t1);
	placement_table_free(t2);
	free(d);
}

static void
test_the_table_follows_the_sequence_and_the_config(void **unused)
{
	struct placement_table	*t = placement_table_new();
	struct domain_conf	*d = confs_make(3);
	struct pview		 v;
	const char		*n;
	char			 up[64];

	d[0].prefer = "a";
	d[1].prefer = "a";
	d[2].prefer = "b";
	view2(&v, "up", "up");
	assert_int_equal(placement_table_update(t, &v, d, 3), 3);
	assert_int_equal(placement_table_update(t, &v, d, 3), 0);
	pview_free(&v);
	/* a merely unsynced, holding: its domains stay. */
	view2(&v, "unsynced", "up");
	hold(&v, 0);
	assert_int_equal(placement_table_update(t, &v, d, 3), 0);
	snprintf(up, sizeof(up), "%s", domains[1]);
	up[0] = 'D';
	assert_int_equal(placement_table_get(t, up, &n), 0);
	assert_string_equal(n, "a");
	pview_free(&v);
	/* a down: they move; a back unsynced: they do not return. */
	view2(&v, "down", "up");
	assert_int_equal(placement_table_update(t, &v, d, 3), 2);
	pview_free(&v);
	view2(&v, "unsynced", "up");
	assert_int_equal(placement_table_update(t, &v, d, 3), 0);
	assert_int_equal(placement_table_get(t, domains[0], &n), 0);
	assert_string_equal(n, "b");
	/* A reload that drops a domain drops it from the table. */
	assert_int_equal(placement_table_update(t, &v, d + 1, 2), 0);
	assert_int_equal(placement_table_get(t, domains[0], &n), -1);
	pview_free(&v);
	/* No candidate: none. */
	view2(&v, "down", "down");
	assert_int_equal(placement_table_update(t, &v, d + 1, 2), 2);
	assert_int_equal(placement_table_get(t, domains[2], &n), 0);
	assert_null(n);
	pview_free(&v);
	placement_table_free(t);
	free(d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_weights_are_pinned_across_builds),
		cmocka_unit_test(test_domain_and_name_are_separated_in_the_hash),
		cmocka_unit_test(test_pick_is_deterministic_and_ignores_backend_order),
		cmocka_unit_test(test_prefer_wins_only_when_eligible),
		cmocka_unit_test(test_each_of_n_backends_gets_about_one_nth_of_the_domains),
		cmocka_unit_test(test_removing_a_backend_moves_only_its_domains),
		cmocka_unit_test(test_adding_it_back_returns_exactly_those_domains),
		cmocka_unit_test(test_preferring_domains_follow_their_backend),
		cmocka_unit_test(test_no_eligible_backend_gives_null),
		cmocka_unit_test(test_domains_are_placed_case_insensitively),
		cmocka_unit_test(test_a_new_address_for_the_same_backend_is_a_move),
		cmocka_unit_test(test_sessions_leave_a_live_backend_spread),
		cmocka_unit_test(test_sessions_leave_a_dead_or_gone_backend_at_once),
		cmocka_unit_test(test_spread_delays_are_even_and_inside_the_window),
		cmocka_unit_test(test_a_domain_stays_on_its_backend_while_it_merely_holds),
		cmocka_unit_test(test_it_moves_when_its_backend_is_down_drained_or_in_maint),
		cmocka_unit_test(test_a_returning_backend_holds_nothing_and_gets_nothing),
		cmocka_unit_test(test_every_proxy_given_the_same_views_agrees),
		cmocka_unit_test(test_the_table_follows_the_sequence_and_the_config),
	};

	return cmocka_run_group_tests(tests, setup_domains, teardown_domains);
}
