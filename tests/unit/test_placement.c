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
	};

	return cmocka_run_group_tests(tests, setup_domains, teardown_domains);
}
