/* test_queue.c: per-path coalescing on a fake clock, due times, and moves
 * that are never reordered with the changes around them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <event2/event.h>

#include "spoolsync.h"

#define MS	1000000ULL

static uint64_t	fake_ns;

static uint64_t
fake_clock(void *arg)
{
	return *(uint64_t *)arg;
}

static struct queue *
fake_queue(uint64_t delay_ms, uint64_t max_ms)
{
	struct queue_opts	 o = { delay_ms * MS, max_ms * MS, fake_clock,
				    &fake_ns };
	struct queue		*q;
	char			 err[256];

	fake_ns = 1000 * MS;	/* not zero: zero is not special */
	q = queue_new(&o, err, sizeof(err));
	assert_non_null(q);
	return q;
}

static void
at(uint64_t ms)
{
	fake_ns = 1000 * MS + ms * MS;
}

/* Pops the next entry, which must be KIND on PATH (and FROM for a move). */
static void
expect_pop(struct queue *q, enum queue_kind kind, const char *path,
    const char *from)
{
	struct queue_entry	*e = queue_pop(q);

	if (e == NULL)
		fail_msg("nothing due; expected %s %s", queue_kind_name(kind),
		    path);
	assert_string_equal(queue_kind_name(e->kind), queue_kind_name(kind));
	assert_string_equal(e->path, path);
	if (from != NULL)
		assert_string_equal(e->from, from);
	else
		assert_null(e->from);
	queue_entry_free(e);
}

static void
test_many_events_on_one_path_make_one_entry(void **state)
{
	struct queue		*q = fake_queue(5, 50);
	struct queue_entry	*e;

	for (int i = 0; i < 100; i++)
		queue_add(q, QUEUE_CHANGE, "data/a.list", 0);
	assert_int_equal(queue_pending(q), 1);
	queue_add(q, QUEUE_CHANGE, "data/b.list", 0);
	assert_int_equal(queue_pending(q), 2);
	at(10);
	e = queue_pop(q);
	assert_non_null(e);
	assert_string_equal(e->path, "data/a.list");
	assert_int_equal(e->events, 100);
	queue_entry_free(e);
	expect_pop(q, QUEUE_CHANGE, "data/b.list", NULL);
	assert_null(queue_pop(q));
	assert_int_equal(queue_pending(q), 0);
	queue_free(q);
}

static void
test_entry_is_due_delay_after_its_last_event(void **state)
{
	struct queue	*q = fake_queue(5, 50);

	at(0);
	queue_add(q, QUEUE_CHANGE, "a", 0);
	assert_true(queue_next_due_ns(q) == fake_ns + 5 * MS);
	fake_ns += 5 * MS - 1;
	assert_null(queue_pop(q));
	fake_ns += 1;
	expect_pop(q, QUEUE_CHANGE, "a", NULL);

	at(100);
	queue_add(q, QUEUE_CHANGE, "a", 0);
	at(103);
	queue_add(q, QUEUE_CHANGE, "a", 0);	/* quiet time restarts */
	at(107);
	assert_null(queue_pop(q));
	at(108);
	expect_pop(q, QUEUE_CHANGE, "a", NULL);
	assert_true(queue_next_due_ns(q) == UINT64_MAX);
	queue_free(q);
}

static void
test_file_written_without_pause_ships_by_the_max_delay(void **state)
{
	struct queue		*q = fake_queue(5, 50);
	struct queue_entry	*e;

	for (int t = 0; t < 50; t++) {
		at(t);
		queue_add(q, QUEUE_CHANGE, "a.list", 0);
		assert_null(queue_pop(q));
	}
	at(50);
	queue_add(q, QUEUE_CHANGE, "a.list", 0);
	e = queue_pop(q);		/* writes go on, it ships anyway */
	assert_non_null(e);
	assert_int_equal(e->events, 51);
	assert_true(e->first_ns == 1000 * MS && e->last_ns == 1050 * MS);
	queue_entry_free(e);
	at(51);
	queue_add(q, QUEUE_CHANGE, "a.list", 0);	/* a new entry */
	assert_int_equal(queue_pending(q), 1);
	at(55);
	assert_null(queue_pop(q));
	at(56);
	expect_pop(q, QUEUE_CHANGE, "a.list", NULL);
	queue_free(q);
}

struct transition {
	enum queue_kind	seq[4];
	int		n;
	enum queue_kind	want;
	unsigned	flags;
};

static void
test_kinds_follow_what_happened(void **state)
{
	static const struct transition t[] = {
		{ { QUEUE_CHANGE, QUEUE_DELETE }, 2, QUEUE_DELETE, 0 },
		{ { QUEUE_DELETE, QUEUE_CHANGE }, 2, QUEUE_CHANGE,
		    QUEUE_F_RECREATED },
		{ { QUEUE_CHANGE, QUEUE_DELETE, QUEUE_CHANGE }, 3, QUEUE_CHANGE,
		    QUEUE_F_RECREATED },
		{ { QUEUE_DELETE, QUEUE_CHANGE, QUEUE_DELETE }, 3, QUEUE_DELETE,
		    0 },
		{ { QUEUE_ATTRIB, QUEUE_CHANGE }, 2, QUEUE_CHANGE, 0 },
		{ { QUEUE_CHANGE, QUEUE_ATTRIB }, 2, QUEUE_CHANGE, 0 },
		{ { QUEUE_ATTRIB, QUEUE_ATTRIB }, 2, QUEUE_ATTRIB, 0 },
		{ { QUEUE_MKDIR, QUEUE_ATTRIB }, 2, QUEUE_MKDIR, 0 },
		{ { QUEUE_DELETE, QUEUE_MKDIR }, 2, QUEUE_MKDIR,
		    QUEUE_F_RECREATED },
		{ { QUEUE_DELETE, QUEUE_ATTRIB }, 2, QUEUE_CHANGE,
		    QUEUE_F_RECREATED },
		{ { QUEUE_MKDIR, QUEUE_DELETE }, 2, QUEUE_DELETE, 0 },
	};
	struct queue		*q;
	struct queue_entry	*e;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		q = fake_queue(5, 50);
		for (int j = 0; j < t[i].n; j++)
			queue_add(q, t[i].seq[j], "p", t[i].seq[j] == QUEUE_MKDIR);
		assert_int_equal(queue_pending(q), 1);
		at(100);
		e = queue_pop(q);
		assert_non_null(e);
		if (e->kind != t[i].want || e->flags != t[i].flags)
			fail_msg("case %zu: got %s/%u, want %s/%u", i,
			    queue_kind_name(e->kind), e->flags,
			    queue_kind_name(t[i].want), t[i].flags);
		queue_entry_free(e);
		queue_free(q);
	}
}

static void
test_due_entries_pop_earliest_due_then_oldest_first(void **state)
{
	struct queue	*q = fake_queue(5, 50);

	at(0);
	queue_add(q, QUEUE_CHANGE, "c", 0);
	queue_add(q, QUEUE_CHANGE, "a", 0);
	queue_add(q, QUEUE_CHANGE, "b", 0);
	at(1);
	queue_add(q, QUEUE_CHANGE, "late-first", 0);	/* due 6 */
	at(0);
	queue_add(q, QUEUE_CHANGE, "c", 0);		/* same time: due 5 */
	at(3);
	queue_add(q, QUEUE_CHANGE, "a", 0);		/* due 8 */
	at(100);
	expect_pop(q, QUEUE_CHANGE, "c", NULL);
	expect_pop(q, QUEUE_CHANGE, "b", NULL);
	expect_pop(q, QUEUE_CHANGE, "late-first", NULL);
	expect_pop(q, QUEUE_CHANGE, "a", NULL);
	assert_null(queue_pop(q));
	queue_free(q);
}

static void
test_change_before_a_move_is_carried_after_it(void **state)
{
	struct queue	*q = fake_queue(5, 50);

	at(0);
	queue_add(q, QUEUE_CHANGE, "a", 0);
	at(1);
	queue_add_move(q, "a", "b", 0);
	assert_int_equal(queue_pending(q), 2);
	at(100);
	expect_pop(q, QUEUE_MOVE, "b", "a");
	expect_pop(q, QUEUE_CHANGE, "b", NULL);
	assert_null(queue_pop(q));
	queue_free(q);
}

static void
test_a_move_is_a_barrier_both_ways(void **state)
{
	struct queue	*q = fake_queue(5, 50);

	for (int t = 0; t <= 44; t++) {		/* x due at 49 */
		at(t);
		queue_add(q, QUEUE_CHANGE, "x", 0);
	}
	at(41);
	queue_add_move(q, "p", "q", 0);
	queue_add(q, QUEUE_CHANGE, "y", 0);	/* due 46, behind the move */
	at(46);
	assert_null(queue_pop(q));	/* y may not overtake x and the move */
	at(49);
	expect_pop(q, QUEUE_CHANGE, "x", NULL);
	expect_pop(q, QUEUE_MOVE, "q", "p");
	expect_pop(q, QUEUE_CHANGE, "y", NULL);
	queue_free(q);
}

static void
test_events_after_a_move_never_merge_into_entries_before_it(void **state)
{
	struct queue	*q = fake_queue(5, 50);

	at(0);
	queue_add(q, QUEUE_ATTRIB, "d", 1);
	at(1);
	queue_add_move(q, "a", "d/a", 0);
	at(2);
	queue_add(q, QUEUE_DELETE, "d/a", 0);
	at(3);
	queue_add(q, QUEUE_DELETE, "d", 1);	/* must not pop before the move */
	assert_int_equal(queue_pending(q), 4);
	at(100);
	expect_pop(q, QUEUE_ATTRIB, "d", NULL);
	expect_pop(q, QUEUE_MOVE, "d/a", "a");
	expect_pop(q, QUEUE_DELETE, "d/a", NULL);
	expect_pop(q, QUEUE_DELETE, "d", NULL);
	queue_free(q);
}

static void
test_directory_move_carries_what_is_beneath_and_keeps_deletes(void **state)
{
	struct queue	*q = fake_queue(5, 50);

	at(0);
	queue_add(q, QUEUE_CHANGE, "a/x", 0);
	at(1);
	queue_add(q, QUEUE_DELETE, "a/y", 0);
	at(2);
	queue_add(q, QUEUE_MKDIR, "a/s", 1);
	at(3);
	queue_add(q, QUEUE_CHANGE, "a/s/f", 0);
	at(4);
	queue_add(q, QUEUE_CHANGE, "ab/z", 0);	/* a prefix, not beneath */
	at(5);
	queue_add(q, QUEUE_ATTRIB, "a", 1);
	at(6);
	queue_add_move(q, "a", "b", 1);
	at(100);
	expect_pop(q, QUEUE_DELETE, "a/y", NULL);
	expect_pop(q, QUEUE_CHANGE, "ab/z", NULL);
	expect_pop(q, QUEUE_MOVE, "b", "a");
	expect_pop(q, QUEUE_CHANGE, "b/x", NULL);
	expect_pop(q, QUEUE_MKDIR, "b/s", NULL);
	expect_pop(q, QUEUE_CHANGE, "b/s/f", NULL);
	expect_pop(q, QUEUE_ATTRIB, "b", NULL);
	assert_null(queue_pop(q));
	queue_free(q);
}

static void
test_a_change_carried_by_two_moves_lands_at_the_end(void **state)
{
	struct queue	*q = fake_queue(5, 50);

	at(0);
	queue_add(q, QUEUE_CHANGE, "a", 0);
	queue_add_move(q, "a", "b", 0);
	queue_add_move(q, "b", "c", 0);
	queue_add(q, QUEUE_CHANGE, "c", 0);	/* merges with the carried one */
	assert_int_equal(queue_pending(q), 3);
	at(100);
	expect_pop(q, QUEUE_MOVE, "b", "a");
	expect_pop(q, QUEUE_MOVE, "c", "b");
	expect_pop(q, QUEUE_CHANGE, "c", NULL);
	queue_free(q);
}

static void
test_entries_carried_onto_one_path_become_one(void **state)
{
	struct queue		*q = fake_queue(5, 50);
	struct queue_entry	*e;

	at(0);
	queue_add(q, QUEUE_CHANGE, "a", 0);
	at(1);
	queue_add_move(q, "x", "y", 0);
	at(2);
	queue_add(q, QUEUE_CHANGE, "a", 0);	/* a second entry for "a" */
	assert_int_equal(queue_pending(q), 3);
	at(3);
	queue_add_move(q, "a", "b", 0);
	assert_int_equal(queue_pending(q), 3);
	at(100);
	expect_pop(q, QUEUE_MOVE, "y", "x");
	expect_pop(q, QUEUE_MOVE, "b", "a");
	e = queue_pop(q);
	assert_non_null(e);
	assert_string_equal(e->path, "b");
	assert_int_equal(e->events, 2);
	assert_true(e->first_ns == 1000 * MS && e->last_ns == 1002 * MS);
	queue_entry_free(e);
	assert_int_equal(queue_pending(q), 0);
	queue_free(q);
}

static void
test_oldest_age_is_the_replication_lag(void **state)
{
	struct queue	*q = fake_queue(5, 50);

	assert_true(queue_oldest_age_ns(q) == 0);
	at(0);
	queue_add(q, QUEUE_CHANGE, "a", 0);
	at(10);
	queue_add(q, QUEUE_CHANGE, "b", 0);
	queue_add(q, QUEUE_CHANGE, "a", 0);	/* a stays the oldest */
	at(20);
	assert_true(queue_oldest_age_ns(q) == 20 * MS);
	expect_pop(q, QUEUE_CHANGE, "a", NULL);	/* both due at 15: oldest first */
	queue_free(q);
}

static void
test_oldest_age_follows_pops(void **state)
{
	struct queue	*q = fake_queue(5, 50);

	at(0);
	queue_add(q, QUEUE_CHANGE, "a", 0);
	at(10);
	queue_add(q, QUEUE_CHANGE, "b", 0);
	at(20);
	expect_pop(q, QUEUE_CHANGE, "a", NULL);
	assert_true(queue_oldest_age_ns(q) == 10 * MS);
	expect_pop(q, QUEUE_CHANGE, "b", NULL);
	assert_true(queue_oldest_age_ns(q) == 0);
	queue_free(q);
}

static void
test_delays_of_seconds_are_refused(void **state)
{
	struct queue_opts	o = { 2000 * MS, 3000 * MS, NULL, NULL };
	char			err[256], want[32];

	snprintf(want, sizeof(want), "%d ms", QUEUE_DELAY_LIMIT_MS);
	assert_null(queue_new(&o, err, sizeof(err)));
	assert_non_null(strstr(err, want));
	o.delay_ns = 5 * MS;
	o.max_delay_ns = (QUEUE_DELAY_LIMIT_MS + 1) * MS;
	assert_null(queue_new(&o, err, sizeof(err)));
	o.delay_ns = 10 * MS;
	o.max_delay_ns = 5 * MS;
	assert_null(queue_new(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "shorter"));
}

static double
real_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void
test_100000_entries_are_fast(void **state)
{
	struct queue		*q = fake_queue(5, 50);
	struct queue_entry	*e;
	char			 path[64];
	double			 t0, t;
	size_t			 n = 0;

	t0 = real_ms();
	at(0);
	for (int i = 0; i < 100000; i++) {
		snprintf(path, sizeof(path), "example%%2etest/offline/u%d.list",
		    i);
		queue_add(q, QUEUE_CHANGE, path, 0);
	}
	at(1);
	for (int i = 0; i < 100000; i += 2) {
		snprintf(path, sizeof(path), "example%%2etest/offline/u%d.list",
		    i);
		queue_add(q, QUEUE_DELETE, path, 0);
	}
	assert_int_equal(queue_pending(q), 100000);
	at(100);
	while ((e = queue_pop(q)) != NULL) {
		n++;
		queue_entry_free(e);
	}
	t = real_ms() - t0;
	assert_int_equal(n, 100000);
	print_message("150,000 events, 100,000 entries popped: %.1f ms\n", t);
	assert_true(t < 3000);
	queue_free(q);
}

struct timer_ctx {
	struct event_base	*base;
	int			 calls;
	int			 take;	/* pop in the callback */
	size_t			 popped;
	double			 t_first;
};

static void
timer_due_cb(struct queue *q, void *arg)
{
	struct timer_ctx	*c = arg;
	struct queue_entry	*e;

	c->calls++;
	if (c->t_first == 0)
		c->t_first = real_ms();
	if (!c->take)
		return;
	while ((e = queue_pop(q)) != NULL) {
		c->popped++;
		queue_entry_free(e);
	}
}

static void
loop_for_ms(struct event_base *base, int ms)
{
	struct timeval	tv = { 0, ms * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static void
test_timer_calls_back_when_entries_fall_due(void **state)
{
	struct timer_ctx	 c = { .take = 1 };
	struct queue		*q;
	char			 err[256];
	double			 t0;

	c.base = event_base_new();
	assert_non_null(q = queue_new(NULL, err, sizeof(err)));
	assert_int_equal(queue_attach(q, c.base, timer_due_cb, &c, err,
	    sizeof(err)), 0);
	t0 = real_ms();
	queue_add(q, QUEUE_CHANGE, "a", 0);
	loop_for_ms(c.base, 100);
	assert_int_equal(c.popped, 1);
	assert_int_equal(c.calls, 1);
	assert_true(c.t_first - t0 >= QUEUE_DELAY_MS_DEFAULT - 0.01);
	assert_true(c.t_first - t0 < 60);
	queue_free(q);
	event_base_free(c.base);
}

static void
test_busy_consumer_is_called_again_only_after_a_kick(void **state)
{
	struct timer_ctx	 c = { .take = 0 };
	struct queue		*q;
	char			 err[256];

	c.base = event_base_new();
	assert_non_null(q = queue_new(NULL, err, sizeof(err)));
	assert_int_equal(queue_attach(q, c.base, timer_due_cb, &c, err,
	    sizeof(err)), 0);
	queue_add(q, QUEUE_CHANGE, "a", 0);
	loop_for_ms(c.base, 50);
	assert_int_equal(c.calls, 1);		/* no busy loop */
	queue_add(q, QUEUE_CHANGE, "b", 0);
	loop_for_ms(c.base, 50);
	assert_int_equal(c.calls, 1);
	c.take = 1;
	queue_kick(q);
	loop_for_ms(c.base, 50);
	assert_int_equal(c.calls, 2);
	assert_int_equal(c.popped, 2);
	queue_free(q);
	event_base_free(c.base);
}

static void
test_watch_events_map_to_queue_kinds(void **state)
{
	struct queue		*q = fake_queue(5, 50);
	struct watch_event	 ev = { .type = WATCH_MOVED, .relpath = "n",
				    .from = "o" };

	assert_int_equal(queue_add_event(q, &ev), 0);
	ev = (struct watch_event){ .type = WATCH_MKDIR, .relpath = "d",
	    .is_dir = 1 };
	assert_int_equal(queue_add_event(q, &ev), 0);
	ev = (struct watch_event){ .type = WATCH_OVERFLOW, .relpath = "" };
	assert_int_equal(queue_add_event(q, &ev), 1);
	ev = (struct watch_event){ .type = WATCH_ERROR, .relpath = "" };
	assert_int_equal(queue_add_event(q, &ev), 1);
	assert_int_equal(queue_pending(q), 2);
	at(100);
	expect_pop(q, QUEUE_MOVE, "n", "o");
	expect_pop(q, QUEUE_MKDIR, "d", NULL);
	queue_free(q);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_many_events_on_one_path_make_one_entry),
		cmocka_unit_test(test_entry_is_due_delay_after_its_last_event),
		cmocka_unit_test(test_file_written_without_pause_ships_by_the_max_delay),
		cmocka_unit_test(test_kinds_follow_what_happened),
		cmocka_unit_test(test_due_entries_pop_earliest_due_then_oldest_first),
		cmocka_unit_test(test_change_before_a_move_is_carried_after_it),
		cmocka_unit_test(test_a_move_is_a_barrier_both_ways),
		cmocka_unit_test(test_events_after_a_move_never_merge_into_entries_before_it),
		cmocka_unit_test(test_directory_move_carries_what_is_beneath_and_keeps_deletes),
		cmocka_unit_test(test_a_change_carried_by_two_moves_lands_at_the_end),
		cmocka_unit_test(test_entries_carried_onto_one_path_become_one),
		cmocka_unit_test(test_oldest_age_is_the_replication_lag),
		cmocka_unit_test(test_oldest_age_follows_pops),
		cmocka_unit_test(test_delays_of_seconds_are_refused),
		cmocka_unit_test(test_100000_entries_are_fast),
		cmocka_unit_test(test_timer_calls_back_when_entries_fall_due),
		cmocka_unit_test(test_busy_consumer_is_called_again_only_after_a_kick),
		cmocka_unit_test(test_watch_events_map_to_queue_kinds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
