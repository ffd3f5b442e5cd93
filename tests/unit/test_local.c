/* test_local.c: local changes become records and outbox items in an order a
 * peer can apply: a new directory goes out before what it holds. */
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

#include "engine.h"
#include "util.h"
#include "engine_fix.h"

#define MS	1000000ULL

struct fix {
	char			 root[EFIX_PATH], sdir[EFIX_PATH];
	struct spoolsync	 sp;
	struct peer		 peer;
	struct queue		*q;
	uint64_t		 now;
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
	struct queue_opts	 qo = { 5 * MS, 50 * MS, fix_clock, NULL };
	char			 err[256];

	assert_non_null(f);
	efix_open(f->root, f->sdir, &f->sp, &f->peer, "test_local");
	qo.clock_arg = f;
	f->q = queue_new(&qo, err, sizeof(err));
	assert_non_null(f->q);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix	*f = *state;

	queue_free(f->q);
	efix_close(f->root, f->sdir, &f->sp, &f->peer);
	free(f);
	return 0;
}

static void
mk_dir(struct fix *f, const char *rel, mode_t mode)
{
	char	p[1024];

	snprintf(p, sizeof(p), "%s/%s", f->root, rel);
	assert_int_equal(mkdir(p, 0755), 0);
	assert_int_equal(chmod(p, mode), 0);
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

/* Everything due is handled, as the loop would. */
static void
run_due(struct fix *f)
{
	f->now += 100 * MS;
	sync_queue_cb(f->q, &f->sp);
	assert_int_equal(queue_pending(f->q), 0);
}

/* The outbox, paths joined by spaces. */
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

static void
test_a_new_directory_chmoded_at_once_goes_out_before_its_files(void **state)
{
	struct fix		*f = *state;
	const struct st_rec	*r;

	/* mkdir d; write d/f1 d/f2; chmod 0750 d: the chmod makes the
	 * directory's entry due after its files'. */
	mk_dir(f, "d", 0750);
	mk_file(f, "d/f1");
	mk_file(f, "d/f2");
	queue_add(f->q, QUEUE_MKDIR, "d", 1);
	queue_add(f->q, QUEUE_CHANGE, "d/f1", 0);
	queue_add(f->q, QUEUE_CHANGE, "d/f2", 0);
	f->now += 2 * MS;
	queue_add(f->q, QUEUE_ATTRIB, "d", 1);
	run_due(f);
	assert_string_equal(outbox(f), "d d/f1 d/f2");
	assert_non_null(r = state_get(f->sp.st, "d"));
	assert_int_equal(r->type, MF_DIR);
	assert_int_equal(r->mode, 0750);
}

static void
test_missing_ancestors_go_out_first_from_the_top(void **state)
{
	struct fix	*f = *state;

	mk_dir(f, "a", 0755);
	mk_dir(f, "a/b", 0700);
	mk_dir(f, "a/b/c", 0750);
	mk_file(f, "a/b/c/f");
	queue_add(f->q, QUEUE_CHANGE, "a/b/c/f", 0);
	run_due(f);
	assert_string_equal(outbox(f), "a a/b a/b/c a/b/c/f");
	assert_int_equal(state_get(f->sp.st, "a/b")->mode, 0700);
}

static void
test_a_directory_on_record_is_not_looked_at_again(void **state)
{
	struct fix	*f = *state;

	mk_dir(f, "d", 0755);
	queue_add(f->q, QUEUE_MKDIR, "d", 1);
	run_due(f);
	assert_string_equal(outbox(f), "d");
	mk_file(f, "d/f");
	queue_add(f->q, QUEUE_CHANGE, "d/f", 0);
	run_due(f);
	assert_string_equal(outbox(f), "d d/f");	/* d still queued once */
	assert_int_equal(f->peer.nqueued, 2);
}

static void
test_a_directory_made_again_goes_out_before_its_new_files(void **state)
{
	struct fix	*f = *state;
	char		 p[1024];
	struct item	*it;

	mk_dir(f, "d", 0755);
	queue_add(f->q, QUEUE_MKDIR, "d", 1);
	run_due(f);
	while ((it = TAILQ_FIRST(&f->peer.outbox)) != NULL) {	/* shipped */
		TAILQ_REMOVE(&f->peer.outbox, it, entry);
		pmap_del_if(f->peer.queued, it->path, it);
		f->peer.nqueued--;
		item_free(it);
	}
	snprintf(p, sizeof(p), "%s/d", f->root);
	assert_int_equal(rmdir(p), 0);
	queue_add(f->q, QUEUE_DELETE, "d", 1);
	run_due(f);
	assert_true(state_get(f->sp.st, "d")->deleted);
	assert_string_equal(outbox(f), "d");
	mk_dir(f, "d", 0700);
	mk_file(f, "d/f");
	queue_add(f->q, QUEUE_CHANGE, "d/f", 0);
	run_due(f);
	assert_false(state_get(f->sp.st, "d")->deleted);
	assert_int_equal(state_get(f->sp.st, "d")->mode, 0700);
	/* The delete's item is still queued: the directory's return merges
	 * into it, and it stays ahead of the file. */
	assert_string_equal(outbox(f), "d d/f");
}

static void
test_a_file_in_a_vanished_directory_queues_nothing(void **state)
{
	struct fix	*f = *state;

	queue_add(f->q, QUEUE_CHANGE, "gone/f", 0);
	queue_add(f->q, QUEUE_DELETE, "gone/g", 0);
	run_due(f);
	assert_string_equal(outbox(f), "");
	assert_null(state_get(f->sp.st, "gone"));
}

/* A small file's read is what send_small ships and proves: SHA-256 of
 * exactly that file's bytes, the same on every call. */
static void
test_a_small_file_read_gives_the_sha256_of_its_bytes(void **state)
{
	static const unsigned char abc[MF_HASH_LEN] = {
		0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
		0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
		0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad };
	static const unsigned char empty[MF_HASH_LEN] = {
		0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4,
		0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b,
		0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55 };
	struct fix	*f = *state;
	unsigned char	 h[MF_HASH_LEN];
	struct buf	 b;
	struct stat	 st;
	char		 p[1024];
	FILE		*fp;

	buf_init(&b);
	snprintf(p, sizeof(p), "%s/abc", f->root);
	assert_non_null(fp = fopen(p, "w"));
	fputs("abc", fp);
	fclose(fp);
	snprintf(p, sizeof(p), "%s/empty", f->root);
	assert_non_null(fp = fopen(p, "w"));
	fclose(fp);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(sync_read_small(&f->sp, "abc", &b, h, &st), 0);
		assert_memory_equal(h, abc, MF_HASH_LEN);
		assert_int_equal(b.len, 3);
		assert_memory_equal(b.data, "abc", 3);
		assert_int_equal(sync_read_small(&f->sp, "empty", NULL, h, &st), 0);
		assert_memory_equal(h, empty, MF_HASH_LEN);
	}
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_a_new_directory_chmoded_at_once_goes_out_before_its_files,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_missing_ancestors_go_out_first_from_the_top,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_a_directory_on_record_is_not_looked_at_again,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_a_directory_made_again_goes_out_before_its_new_files,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_a_file_in_a_vanished_directory_queues_nothing,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_a_small_file_read_gives_the_sha256_of_its_bytes,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
