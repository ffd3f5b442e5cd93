/* test_peer.c: a link's lag bookkeeping gives the oldest since_ms of its ops
 * exactly, through out-of-order adds and removals, and declines (so the
 * caller walks the ops) whenever it does not count every op. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine.h"

static void
lag_add(struct link *l, uint64_t ms)
{
	link_lag_add(l, ms);
	l->nops++;
}

static void
lag_del(struct link *l, uint64_t ms)
{
	link_lag_del(l, ms);
	l->nops--;
}

static void
test_lag_is_the_oldest_op_in_any_order(void **state)
{
	struct link	l;

	(void)state;
	memset(&l, 0, sizeof(l));
	assert_int_equal(link_lag_oldest(&l), 0);
	lag_add(&l, 100);
	lag_add(&l, 100);
	lag_add(&l, 105);
	lag_add(&l, 90);	/* a requeued old change, started late */
	assert_int_equal(link_lag_oldest(&l), 90);
	lag_del(&l, 100);
	assert_int_equal(link_lag_oldest(&l), 90);
	lag_del(&l, 90);
	assert_int_equal(link_lag_oldest(&l), 100);
	lag_del(&l, 100);
	assert_int_equal(link_lag_oldest(&l), 105);
	lag_del(&l, 105);
	assert_int_equal(link_lag_oldest(&l), 0);
	lag_add(&l, 7);
	assert_int_equal(link_lag_oldest(&l), 7);
	free(l.lag.v);
}

static void
test_lag_matches_a_walk_through_random_traffic(void **state)
{
	struct link	l;
	uint64_t	live[4096], now = 1000, min;
	size_t		n = 0;
	unsigned	seed = 11;

	(void)state;
	memset(&l, 0, sizeof(l));
	for (int step = 0; step < 200000; step++) {
		seed = seed * 1103515245u + 12345u;
		if (n < 4096 && (n == 0 || (seed >> 9) % 3 != 0)) {
			now += (seed >> 4) % 3;
			/* Mostly new; sometimes an old one comes back. */
			live[n] = (seed >> 12) % 17 == 0 && now > 500 ?
			    now - 1 - (seed >> 16) % 500 : now;
			lag_add(&l, live[n++]);
		} else {
			/* Acks mostly in order, sometimes from anywhere. */
			size_t i = (seed >> 12) % 4 == 0 ? (seed >> 14) % n : 0;

			lag_del(&l, live[i]);
			live[i] = live[--n];
		}
		min = 0;
		for (size_t i = 0; i < n; i++)
			if (min == 0 || live[i] < min)
				min = live[i];
		assert_true(link_lag_oldest(&l) == min);
		/* Holes never pile up past the live values. */
		if (!(l.lag.n - l.lag.head <= 2 * l.lag.live + 64))
			fail_msg("step %d: %zu entries for %zu values", step,
			    l.lag.n - l.lag.head, l.lag.live);
	}
	free(l.lag.v);
}

static void
test_lag_declines_when_an_op_is_not_counted(void **state)
{
	struct link	l;

	(void)state;
	memset(&l, 0, sizeof(l));
	lag_add(&l, 50);
	l.nops++;		/* an op that nobody counted */
	assert_int_equal(link_lag_oldest(&l), 0);
	l.nops--;
	assert_int_equal(link_lag_oldest(&l), 50);
	link_lag_del(&l, 49);	/* never added: the count is not trusted again */
	assert_int_equal(link_lag_oldest(&l), 0);
	free(l.lag.v);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lag_is_the_oldest_op_in_any_order),
		cmocka_unit_test(test_lag_matches_a_walk_through_random_traffic),
		cmocka_unit_test(test_lag_declines_when_an_op_is_not_counted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
