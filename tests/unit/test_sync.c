/* test_sync.c: the pump (sync.c, send.c, local.c's moves) on a real link:
 * what goes out, and in what order, while earlier changes are in flight. */
#include <sys/socket.h>
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
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "engine.h"
#include "util.h"
#include "engine_fix.h"

struct fix {
	char			 root[EFIX_PATH], sdir[EFIX_PATH];
	struct spoolsync	 sp;
	struct peer		 peer;
	struct link		 l;
	struct event_base	*base;
	int			 other;		/* the peer's end: never read */
	uint64_t		 now;		/* the queue's clock */
};

static uint64_t
fix_clock(void *arg)
{
	return ((struct fix *)arg)->now;
}

static int
setup(void **state)
{
	struct fix		*f = calloc(1, sizeof(*f));
	struct queue_opts	 qo = { 1000000, 10000000, fix_clock, NULL };
	char			 err[256];

	assert_non_null(f);
	efix_open(f->root, f->sdir, &f->sp, &f->peer, "test_sync");
	assert_non_null(f->base = event_base_new());
	efix_link_up(&f->l, &f->sp, &f->peer, f->base, &f->other);
	f->l.next_xfer = 1;
	f->sp.base = f->base;
	qo.clock_arg = f;
	assert_non_null(f->sp.q = queue_new(&qo, err, sizeof(err)));
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix	*f = *state;

	sync_link_down(&f->l);		/* the ops back to the outbox */
	queue_free(f->sp.q);
	if (f->sp.ev_qkick != NULL)
		event_free(f->sp.ev_qkick);
	efix_link_down(&f->l, &f->peer, f->other);
	event_base_free(f->base);
	efix_close(f->root, f->sdir, &f->sp, &f->peer);
	free(f);
	return 0;
}

static void
mk_dir(struct fix *f, const char *rel)
{
	char	p[1024];

	snprintf(p, sizeof(p), "%s/%s", f->root, rel);
	assert_int_equal(mkdir(p, 0755), 0);
}

static void
mk_file(struct fix *f, const char *rel)
{
	char	p[1024];
	FILE	*fp;

	snprintf(p, sizeof(p), "%s/%s", f->root, rel);
	assert_non_null(fp = fopen(p, "w"));
	fputs(rel, fp);
	fclose(fp);
}

static void
mv(struct fix *f, const char *from, const char *to)
{
	char	a[1024], b[1024];

	snprintf(a, sizeof(a), "%s/%s", f->root, from);
	snprintf(b, sizeof(b), "%s/%s", f->root, to);
	assert_int_equal(rename(a, b), 0);
}

/* The watch saw "mv FROM TO" (a directory): the loop handles it. */
static void
moved_dir(struct fix *f, const char *from, const char *to)
{
	queue_add_move(f->sp.q, from, to, 1);
	f->now += 100000000;
	sync_queue_cb(f->sp.q, &f->sp);
}

static void
pump(struct fix *f)
{
	size_t	budget = SIZE_MAX;

	sync_pump(&f->l, &budget);
	assert_true(link_alive(&f->l));
}

/* The ops in flight, "TYPE:path" joined by spaces. */
static const char *
in_flight(struct fix *f)
{
	static char	 s[1024];
	char		 one[256];
	struct op	*op;

	s[0] = '\0';
	TAILQ_FOREACH(op, &f->l.ops, entry) {
		snprintf(one, sizeof(one), "%s%s:%s", s[0] ? " " : "",
		    op->type == WIRE_FILE_BEGIN ? "FILE" : wire_type_name(op->type),
		    op->it->path);
		strncat(s, one, sizeof(s) - strlen(s) - 1);
	}
	return s;
}

static const char *
outbox(struct fix *f)
{
	static char	 s[1024];
	struct item	*it;

	s[0] = '\0';
	TAILQ_FOREACH(it, &f->peer.outbox, entry) {
		if (s[0] != '\0')
			strncat(s, " ", sizeof(s) - strlen(s) - 1);
		strncat(s, it->path, sizeof(s) - strlen(s) - 1);
	}
	return s;
}

/* The peer acks the op in flight for PATH. */
static void
ack(struct fix *f, const char *path)
{
	struct op	*op;

	TAILQ_FOREACH(op, &f->l.ops, entry)
		if (strcmp(op->it->path, path) == 0)
			break;
	assert_non_null(op);
	sync_op_done(&f->l, op, WIRE_ST_OK, NULL);
}

static void
test_a_directory_found_gone_waits_for_the_files_in_flight_beneath_it(
    void **state)
{
	struct fix	*f = *state;
	char		 p[1024];

	mk_dir(f, "d");
	mk_file(f, "d/f");
	sync_check_and_enqueue(&f->sp, "d");
	sync_check_and_enqueue(&f->sp, "d/f");
	pump(f);
	assert_string_equal(in_flight(f), "MKDIR:d FILE:d/f");
	ack(f, "d");
	/* A change of d queued (say, a chmod); then d goes, before the watch
	 * says so: the pump finds it gone only when it starts d's item. */
	snprintf(p, sizeof(p), "%s/d", f->root);
	assert_int_equal(chmod(p, 0700), 0);
	sync_check_and_enqueue(&f->sp, "d");
	assert_string_equal(outbox(f), "d");
	snprintf(p, sizeof(p), "%s/d/f", f->root);
	assert_int_equal(unlink(p), 0);
	snprintf(p, sizeof(p), "%s/d", f->root);
	assert_int_equal(rmdir(p), 0);
	pump(f);
	/* d's delete must not overtake d/f, still landing on the peer: the
	 * peer would empty d meanwhile and d/f would make it again. */
	assert_string_equal(in_flight(f), "FILE:d/f");
	assert_string_equal(outbox(f), "d/f d");
	ack(f, "d/f");
	pump(f);
	assert_string_equal(in_flight(f), "DELETE:d/f DELETE:d");
	assert_string_equal(outbox(f), "");
}

static void
test_a_directory_deleted_while_queued_waits_for_the_files_in_flight(
    void **state)
{
	struct fix	*f = *state;
	char		 p[1024];

	mk_dir(f, "d");
	mk_file(f, "d/f");
	sync_check_and_enqueue(&f->sp, "d");
	sync_check_and_enqueue(&f->sp, "d/f");
	pump(f);
	ack(f, "d");
	snprintf(p, sizeof(p), "%s/d", f->root);
	assert_int_equal(chmod(p, 0700), 0);
	sync_check_and_enqueue(&f->sp, "d");
	snprintf(p, sizeof(p), "%s/d/f", f->root);
	assert_int_equal(unlink(p), 0);
	snprintf(p, sizeof(p), "%s/d", f->root);
	assert_int_equal(rmdir(p), 0);
	/* This time the watch tells first: d's queued item becomes its
	 * delete, and must go behind the delete of d/f queued with it. */
	sync_check_and_enqueue(&f->sp, "d");
	assert_string_equal(outbox(f), "d/f d");
	pump(f);
	assert_string_equal(in_flight(f), "FILE:d/f");
	ack(f, "d/f");
	pump(f);
	assert_string_equal(in_flight(f), "DELETE:d/f DELETE:d");
}

static void
test_a_directory_rename_waits_for_the_files_landing_beneath_it(void **state)
{
	struct fix	*f = *state;

	mk_dir(f, "d");
	mk_file(f, "d/f");
	sync_check_and_enqueue(&f->sp, "d");
	sync_check_and_enqueue(&f->sp, "d/f");
	pump(f);
	ack(f, "d");
	mv(f, "d", "t");
	moved_dir(f, "d", "t");
	pump(f);
	/* Sent now, the rename could move d before d/f lands in it: the peer
	 * would make d again for it, and keep it. */
	assert_string_equal(in_flight(f), "FILE:d/f");
	ack(f, "d/f");
	pump(f);
	assert_non_null(strstr(in_flight(f), "RENAME:t"));
}

static void
test_what_a_rename_takes_where_it_is_gone_since_is_deleted(void **state)
{
	struct fix	*f = *state;

	mk_dir(f, "d");
	mk_dir(f, "d/sub");
	sync_check_and_enqueue(&f->sp, "d");
	sync_check_and_enqueue(&f->sp, "d/sub");
	pump(f);
	ack(f, "d");
	mv(f, "d", "t");
	mv(f, "t/sub", "sub-out");
	moved_dir(f, "d", "t");		/* the second move is not seen yet */
	ack(f, "d/sub");		/* acked for a path gone meanwhile */
	pump(f);
	/* The rename takes d/sub to t/sub on the peer: it must go. */
	assert_non_null(strstr(in_flight(f), "RENAME:t"));
	assert_non_null(strstr(in_flight(f), "DELETE:t/sub"));
}

static void
test_a_directory_found_gone_with_nothing_in_flight_goes_at_once(void **state)
{
	struct fix	*f = *state;
	char		 p[1024];

	mk_dir(f, "d");
	sync_check_and_enqueue(&f->sp, "d");
	pump(f);
	ack(f, "d");
	snprintf(p, sizeof(p), "%s/d", f->root);
	assert_int_equal(chmod(p, 0700), 0);
	sync_check_and_enqueue(&f->sp, "d");
	assert_int_equal(rmdir(p), 0);
	pump(f);
	assert_string_equal(in_flight(f), "DELETE:d");
	assert_string_equal(outbox(f), "");
	assert_true(state_get(f->sp.st, "d")->deleted);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_a_directory_found_gone_waits_for_the_files_in_flight_beneath_it,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_a_directory_deleted_while_queued_waits_for_the_files_in_flight,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_a_directory_rename_waits_for_the_files_landing_beneath_it,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_what_a_rename_takes_where_it_is_gone_since_is_deleted,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_a_directory_found_gone_with_nothing_in_flight_goes_at_once,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
