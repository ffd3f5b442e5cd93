/* test_state.c: version vectors order versions as replication needs (their
 * node names shared, or private past the shared table's bound), and the
 * state database keeps records, tombstones and the counter across restarts. */
#include <sys/stat.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "spoolsync.h"

static struct vv
vv_of(const char *text)
{
	struct vv	v = { NULL, 0 };

	assert_int_equal(vv_parse(&v, text), 0);
	return v;
}

static void
expect_order(const char *a, const char *b, enum vv_order want)
{
	struct vv	x = vv_of(a), y = vv_of(b);

	assert_int_equal(vv_compare(&x, &y), want);
	vv_free(&x);
	vv_free(&y);
}

static void
test_vv_orders_newer_older_equal_and_concurrent(void **state)
{
	(void)state;
	expect_order("a:1", "a:1", VV_EQUAL);
	expect_order("", "", VV_EQUAL);
	expect_order("a:2", "a:1", VV_AFTER);
	expect_order("a:1", "a:2", VV_BEFORE);
	expect_order("a:1,b:1", "a:1", VV_AFTER);
	expect_order("", "b:1", VV_BEFORE);
	expect_order("a:2,b:1", "a:1,b:2", VV_CONCURRENT);
	expect_order("a:1", "b:1", VV_CONCURRENT);
	/* a zero counter is the same as no entry */
	expect_order("a:0,b:1", "b:1", VV_EQUAL);
}

static void
test_vv_merge_dominates_both_and_author_names_the_newer_side(void **state)
{
	struct vv	a = vv_of("a:5,b:1"), b = vv_of("a:3,b:4,c:1"), m = { NULL, 0 };

	(void)state;
	vv_copy(&m, &a);
	vv_merge(&m, &b);
	assert_int_equal(vv_get(&m, "a"), 5);
	assert_int_equal(vv_get(&m, "b"), 4);
	assert_int_equal(vv_get(&m, "c"), 1);
	assert_int_equal(vv_compare(&m, &a), VV_AFTER);
	assert_int_equal(vv_compare(&m, &b), VV_AFTER);
	/* both sides of a conflict name the same two authors */
	assert_string_equal(vv_author(&a, &b), "a");
	assert_string_equal(vv_author(&b, &a), "c");
	assert_string_equal(vv_author(&a, &a), "");
	vv_free(&a);
	vv_free(&b);
	vv_free(&m);
}

static void
test_vv_text_round_trips_and_refuses_garbage(void **state)
{
	struct vv	 v = { NULL, 0 };
	char		*s;

	(void)state;
	vv_set(&v, "zed", 7);
	vv_set(&v, "alpha", 3);
	vv_set(&v, "alpha", 4);
	s = vv_format(&v);
	assert_string_equal(s, "alpha:4,zed:7");	/* sorted: one text per vector */
	free(s);
	vv_free(&v);
	assert_int_equal(vv_parse(&v, "a:1,a:2"), -1);
	assert_int_equal(vv_parse(&v, "a"), -1);
	assert_int_equal(vv_parse(&v, "a:x"), -1);
	assert_int_equal(vv_parse(&v, "bad name:1"), -1);
	assert_int_equal(vv_parse(&v, "a:99999999999999999999999"), -1);
	assert_int_equal(v.n, 0);
}

static void
test_vv_to_wire_and_back_is_the_same_vector(void **state)
{
	struct vv		 v = vv_of("a:1,b:18446744073709551615"), back = { NULL, 0 };
	struct wire_vv		 w;
	struct wire_vv_ent	 store[WIRE_VV_MAX];

	(void)state;
	vv_to_wire(&v, &w, store);
	assert_int_equal(w.n, 2);
	assert_int_equal(vv_from_wire(&back, &w), 0);
	assert_int_equal(vv_compare(&v, &back), VV_EQUAL);
	assert_int_equal(vv_get(&back, "b"), UINT64_MAX);
	vv_free(&v);
	vv_free(&back);
}

struct fx {
	char	dir[64];
	char	root[64];
};

static int
setup(void **state)
{
	struct fx	*f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/test_state.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->root, sizeof(f->root), "/srv/spool");
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx	*f = *state;
	char		 cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static struct state *
open_state(struct fx *f, const char *root)
{
	struct state	*st;
	char		 err[512];

	st = state_open(f->dir, root, err, sizeof(err));
	if (st == NULL)
		fail_msg("state_open: %s", err);
	return st;
}

static void
test_vv_node_names_are_shared_between_vectors(void **state)
{
	struct vv	a = { NULL, 0 }, b = { NULL, 0 }, c = { NULL, 0 };
	char		name[] = "node-shared";

	(void)state;
	vv_set(&a, name, 1);
	name[0] = 'N';		/* the vector kept no pointer to the caller's */
	vv_set(&b, "node-shared", 2);
	assert_ptr_equal(a.e[0].node, b.e[0].node);
	assert_string_equal(a.e[0].node, "node-shared");
	vv_copy(&c, &a);
	assert_ptr_equal(c.e[0].node, a.e[0].node);
	assert_int_equal(vv_parse(&c, "node-shared:7,other:1"), 0);
	assert_int_equal(vv_get(&c, "node-shared"), 7);
	assert_ptr_equal(c.e[0].node, a.e[0].node);
	vv_free(&a);		/* freeing one leaves the others' names intact */
	assert_int_equal(vv_get(&b, "node-shared"), 2);
	assert_int_equal(vv_compare(&b, &c), VV_BEFORE);
	vv_free(&b);
	vv_free(&c);
}

static void
test_vv_with_more_names_than_the_table_holds_still_works(void **state)
{
	struct vv	v[600];
	char		name[32];

	(void)state;
	/* A peer inventing names: past the shared table they are private
	 * copies, freed with their vector (ASan sees any leak or bad free). */
	for (int i = 0; i < 600; i++) {
		v[i].e = NULL;
		v[i].n = 0;
		snprintf(name, sizeof(name), "invented-%d", i);
		vv_set(&v[i], name, (uint64_t)i + 1);
		vv_set(&v[i], "a", 5);
	}
	for (int i = 0; i < 600; i++) {
		snprintf(name, sizeof(name), "invented-%d", i);
		assert_int_equal(vv_get(&v[i], name), (uint64_t)i + 1);
		assert_int_equal(vv_get(&v[i], "a"), 5);
		assert_string_equal(vv_author(&v[i], &v[(i + 1) % 600]), name);
	}
	for (int i = 0; i < 600; i++)
		vv_free(&v[i]);
}

static void
test_records_survive_a_restart_with_every_field(void **state)
{
	struct fx	*f = *state;
	struct state	*st = open_state(f, f->root);
	struct st_rec	*r;

	r = state_lookup_or_new(st, "host/accounts/alice.dat");
	r->type = MF_FILE;
	r->mode = 0640;
	r->uid = 115;
	r->gid = 120;
	r->size = 1234;
	r->mtime_ns = 1700000000123456789LL;
	r->ctime_ns = 1700000000987654321LL;
	r->ino = 42;
	r->dev = 2049;
	r->hash_ok = 1;
	memset(r->hash, 0xab, sizeof(r->hash));
	vv_set(&r->vv, "a", 3);
	vv_set(&r->vv, "b", 9);
	assert_int_equal(state_save(st, r), 0);
	r = state_lookup_or_new(st, "host/offline/bob.list");
	r->type = MF_FILE;
	r->deleted = 1;
	r->deleted_ns = 5;
	r->acked = strdup(",b,");
	assert_int_equal(state_save(st, r), 0);
	state_close(st);

	st = open_state(f, f->root);
	assert_int_equal(state_count(st), 2);
	r = state_get(st, "host/accounts/alice.dat");
	assert_non_null(r);
	assert_int_equal(r->mode, 0640);
	assert_int_equal(r->uid, 115);
	assert_int_equal(r->size, 1234);
	assert_true(r->mtime_ns == 1700000000123456789LL);
	assert_true(r->ctime_ns == 1700000000987654321LL);
	assert_int_equal(r->ino, 42);
	assert_true(r->hash_ok);
	assert_int_equal(r->hash[31], 0xab);
	assert_int_equal(vv_get(&r->vv, "b"), 9);
	r = state_get(st, "host/offline/bob.list");
	assert_non_null(r);
	assert_true(r->deleted);
	assert_string_equal(r->acked, ",b,");
	state_del(st, "host/offline/bob.list");
	state_close(st);

	st = open_state(f, f->root);
	assert_null(state_get(st, "host/offline/bob.list"));
	state_close(st);
}

static void
test_a_record_deleted_and_made_again_is_found_by_its_path(void **state)
{
	struct fx	*f = *state;
	struct state	*st = open_state(f, f->root);
	struct st_rec	*r, *r2;
	char		 path[64];

	/* The table's keys are the records' own paths: a lookup with another
	 * buffer, a delete, and a new record at the same path all hold. */
	for (int i = 0; i < 2000; i++) {
		snprintf(path, sizeof(path), "host/offline/u%d.list", i);
		r = state_lookup_or_new(st, path);
		assert_string_equal(r->path, path);
		assert_ptr_not_equal(r->path, path);
		r->type = MF_FILE;
		assert_int_equal(state_save(st, r), 0);
	}
	snprintf(path, sizeof(path), "host/offline/u%d.list", 1234);
	r = state_get(st, path);
	assert_non_null(r);
	state_del(st, path);
	assert_null(state_get(st, path));
	r2 = state_lookup_or_new(st, path);
	assert_non_null(r2);
	assert_ptr_equal(state_get(st, "host/offline/u1234.list"), r2);
	assert_int_equal(state_count(st), 2000);
	r2->type = MF_FILE;
	assert_int_equal(state_save(st, r2), 0);
	state_close(st);

	st = open_state(f, f->root);
	assert_int_equal(state_count(st), 2000);
	r = state_get(st, "host/offline/u1999.list");
	assert_non_null(r);
	assert_string_equal(r->path, "host/offline/u1999.list");
	state_close(st);
}

static void
test_counter_never_goes_back_after_a_restart(void **state)
{
	struct fx	*f = *state;
	struct state	*st = open_state(f, f->root);
	uint64_t	 a, b;

	a = state_next_counter(st);
	b = state_next_counter(st);
	assert_true(b > a);
	state_close(st);
	st = open_state(f, f->root);
	assert_true(state_next_counter(st) > b);
	state_close(st);
}

static void
test_another_root_starts_with_no_records(void **state)
{
	struct fx	*f = *state;
	struct state	*st = open_state(f, f->root);
	struct st_rec	*r = state_lookup_or_new(st, "x");

	r->type = MF_FILE;
	state_save(st, r);
	state_close(st);
	st = open_state(f, "/srv/other");
	assert_int_equal(state_count(st), 0);
	state_close(st);
}

static void
test_a_second_daemon_on_the_same_state_dir_is_refused(void **state)
{
	struct fx	*f = *state;
	struct state	*st = open_state(f, f->root), *st2;
	char		 err[512];

	st2 = state_open(f->dir, f->root, err, sizeof(err));
	assert_null(st2);
	assert_non_null(strstr(err, "in use"));
	state_close(st);
}

static void
test_collect_finds_a_subtree_and_nothing_beside_it(void **state)
{
	struct fx	*f = *state;
	struct state	*st = open_state(f, f->root);
	const char	*paths[] = { "d", "d/x", "d/e/y", "dd/z", "d.txt", NULL };
	struct st_rec	**v;
	size_t		  n;

	for (int i = 0; paths[i] != NULL; i++)
		state_lookup_or_new(st, paths[i])->type = MF_FILE;
	n = state_collect(st, "d", &v);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++)
		assert_true(strcmp(v[i]->path, "d") == 0 ||
		    strncmp(v[i]->path, "d/", 2) == 0);
	free(v);
	n = state_collect(st, "", &v);
	assert_int_equal(n, 5);
	free(v);
	state_close(st);
}

static void
test_manifest_of_records_feeds_the_hash_cache_sorted(void **state)
{
	struct fx	*f = *state;
	struct state	*st = open_state(f, f->root);
	struct manifest	*mf;
	struct st_rec	*r;
	const char	*paths[] = { "b/x", "a", "b", "a/y", NULL };

	for (int i = 0; paths[i] != NULL; i++) {
		r = state_lookup_or_new(st, paths[i]);
		r->type = MF_FILE;
		r->hash_ok = 1;
	}
	state_lookup_or_new(st, "gone")->deleted = 1;
	mf = state_manifest(st);
	assert_int_equal(mf->n, 4);
	for (size_t i = 1; i < mf->n; i++)
		assert_true(manifest_path_cmp(mf->e[i - 1].path, mf->e[i].path) < 0);
	assert_non_null(manifest_find(mf, "a/y"));
	assert_null(manifest_find(mf, "gone"));
	manifest_free(mf);
	state_close(st);
}

static void
test_gc_forgets_only_old_tombstones(void **state)
{
	struct fx	*f = *state;
	struct state	*st = open_state(f, f->root);
	struct st_rec	*r;

	r = state_lookup_or_new(st, "old");
	r->type = MF_FILE;
	r->deleted = 1;
	r->deleted_ns = 1;	/* 1970 */
	state_save(st, r);
	r = state_lookup_or_new(st, "live");
	r->type = MF_FILE;
	state_save(st, r);
	assert_int_equal(state_gc(st, 3600LL * 1000000000LL), 1);
	assert_null(state_get(st, "old"));
	assert_non_null(state_get(st, "live"));
	state_close(st);
}

/* A burst saved in one (nested) transaction is all there after a restart. */
static void
test_records_saved_in_a_transaction_survive_a_restart(void **state)
{
	struct fx	*f = *state;
	struct state	*st = open_state(f, f->root);
	struct st_rec	*r;
	char		 path[64];
	uint64_t	 c;

	assert_int_equal(state_begin(st), 0);
	assert_int_equal(state_begin(st), 0);		/* nested: one commit */
	for (int i = 0; i < 500; i++) {
		snprintf(path, sizeof(path), "host/accounts/u%d.dat", i);
		r = state_lookup_or_new(st, path);
		r->type = MF_FILE;
		r->size = (uint64_t)i;
		vv_set(&r->vv, "a", state_next_counter(st));
		assert_int_equal(state_save(st, r), 0);
	}
	c = state_next_counter(st);
	assert_int_equal(state_commit(st), 0);
	assert_int_equal(state_commit(st), 0);
	assert_int_equal(state_commit(st), 0);		/* unbalanced: harmless */
	assert_int_equal(state_live_count(st), 500);
	state_close(st);

	st = open_state(f, f->root);
	assert_int_equal(state_count(st), 500);
	assert_int_equal(state_live_count(st), 500);
	r = state_get(st, "host/accounts/u499.dat");
	assert_non_null(r);
	assert_int_equal(r->size, 499);
	assert_true(state_next_counter(st) > c);
	state_close(st);
}

/* Version vectors come back exactly, whether their text is short, empty,
 * or too long for the stack buffer state_save formats short ones in. */
static void
test_version_vectors_of_any_length_survive_a_restart(void **state)
{
	struct fx	*f = *state;
	struct state	*st = open_state(f, f->root);
	struct st_rec	*r;
	char		 node[128];		/* 62 bytes used: a name's 64 at most */
	struct vv	 big = { NULL, 0 };

	r = state_lookup_or_new(st, "h/short.dat");
	r->type = MF_FILE;
	vv_set(&r->vv, "a", 0);
	vv_set(&r->vv, "b", 18446744073709551615ULL);
	vv_set(&r->vv, "c", 10);
	assert_int_equal(state_save(st, r), 0);
	r = state_lookup_or_new(st, "h/empty.dat");
	r->type = MF_FILE;
	assert_int_equal(state_save(st, r), 0);
	r = state_lookup_or_new(st, "h/long.dat");
	r->type = MF_FILE;
	for (int i = 0; i < WIRE_VV_MAX; i++) {
		snprintf(node, sizeof(node), "node-%02d-%054d", i, i);
		vv_set(&r->vv, node, 1000000007ULL * (uint64_t)(i + 1));
	}
	vv_copy(&big, &r->vv);
	assert_int_equal(state_save(st, r), 0);
	state_close(st);

	st = open_state(f, f->root);
	r = state_get(st, "h/short.dat");
	assert_non_null(r);
	assert_int_equal(r->vv.n, 3);
	assert_true(vv_get(&r->vv, "a") == 0);
	assert_true(vv_get(&r->vv, "b") == 18446744073709551615ULL);
	assert_true(vv_get(&r->vv, "c") == 10);
	r = state_get(st, "h/empty.dat");
	assert_non_null(r);
	assert_int_equal(r->vv.n, 0);
	r = state_get(st, "h/long.dat");
	assert_non_null(r);
	assert_int_equal(r->vv.n, WIRE_VV_MAX);
	assert_int_equal(vv_compare(&r->vv, &big), VV_EQUAL);
	vv_free(&big);
	state_close(st);
}

/* A bracket that writes no record still keeps the counter it moved, and a
 * bracket that does write leaves no transaction open behind it. */
static void
test_a_bracket_without_records_keeps_its_counter(void **state)
{
	struct fx	*f = *state;
	struct state	*st = open_state(f, f->root);
	struct st_rec	*r;
	uint64_t	 c;

	assert_int_equal(state_begin(st), 0);
	c = state_next_counter(st);
	assert_int_equal(state_commit(st), 0);
	assert_int_equal(state_begin(st), 0);
	assert_int_equal(state_commit(st), 0);		/* nothing at all */
	assert_int_equal(state_begin(st), 0);
	r = state_lookup_or_new(st, "h/a.dat");
	r->type = MF_FILE;
	assert_int_equal(state_save(st, r), 0);
	assert_int_equal(state_commit(st), 0);
	r->size = 7;
	assert_int_equal(state_save(st, r), 0);	/* outside: on its own */
	state_close(st);

	st = open_state(f, f->root);
	assert_true(state_next_counter(st) > c);
	r = state_get(st, "h/a.dat");
	assert_non_null(r);
	assert_int_equal(r->size, 7);
	state_close(st);
}

/* What another reader of the database sees now: is PATH's row there, and
 * its size (-1: no row). */
static long long
db_size_of(struct fx *f, const char *path)
{
	sqlite3		*db;
	sqlite3_stmt	*s;
	char		 file[128];
	long long	 size = -1;

	snprintf(file, sizeof(file), "%s/state.db", f->dir);
	assert_int_equal(sqlite3_open_v2(file, &db, SQLITE_OPEN_READONLY, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT size FROM files WHERE "
	    "path = ?", -1, &s, NULL), SQLITE_OK);
	sqlite3_bind_text(s, 1, path, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW)
		size = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return size;
}

/* A record saved later is not written by its own bracket, is written once
 * by its next save (with what it holds then), and by the close otherwise. */
static void
test_a_record_saved_later_waits_for_its_next_save_or_the_close(void **state)
{
	struct fx	*f = *state;
	struct state	*st = open_state(f, f->root);
	struct st_rec	*a, *b;

	state_begin(st);
	a = state_lookup_or_new(st, "h/a.dat");
	a->type = MF_FILE;
	a->size = 1;
	state_save_later(st, a);
	b = state_lookup_or_new(st, "h/b.dat");
	b->type = MF_FILE;
	b->size = 2;
	state_save_later(st, b);
	state_commit(st);
	assert_true(db_size_of(f, "h/a.dat") == -1);
	assert_true(db_size_of(f, "h/b.dat") == -1);

	a->size = 10;
	a->hash_ok = 1;
	assert_int_equal(state_save(st, a), 0);
	assert_true(db_size_of(f, "h/a.dat") == 10);
	a->size = 11;		/* not saved: the close must not write it */
	assert_true(db_size_of(f, "h/b.dat") == -1);
	state_close(st);

	st = open_state(f, f->root);
	assert_int_equal(state_count(st), 2);
	assert_int_equal(state_get(st, "h/a.dat")->size, 10);
	assert_int_equal(state_get(st, "h/b.dat")->size, 2);
	state_close(st);
}

/* One waiting too long is written by the next bracket's commit; a deleted
 * one is never written (and its memory is not touched after the delete). */
static void
test_a_record_waiting_too_long_is_written_and_a_deleted_one_never(void **state)
{
	struct fx	*f = *state;
	struct state	*st = open_state(f, f->root);
	struct st_rec	*r;

	r = state_lookup_or_new(st, "h/old.dat");
	r->type = MF_FILE;
	r->size = 3;
	state_save_later(st, r);
	r->later_ms = 1;	/* as if it had waited since the boot */
	r = state_lookup_or_new(st, "h/gone.dat");
	r->type = MF_FILE;
	state_save_later(st, r);
	state_del(st, "h/gone.dat");
	r = state_lookup_or_new(st, "h/new.dat");
	r->type = MF_FILE;
	state_save_later(st, r);
	state_save_later(st, r);	/* twice: still one wait */
	state_del(st, "h/new.dat");
	assert_true(db_size_of(f, "h/old.dat") == -1);
	state_begin(st);
	state_commit(st);
	assert_true(db_size_of(f, "h/old.dat") == 3);
	state_close(st);

	st = open_state(f, f->root);
	assert_int_equal(state_count(st), 1);
	assert_null(state_get(st, "h/gone.dat"));
	assert_null(state_get(st, "h/new.dat"));
	state_close(st);
}

int
main(void)
{
#define T(f)	cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vv_orders_newer_older_equal_and_concurrent),
		cmocka_unit_test(test_vv_merge_dominates_both_and_author_names_the_newer_side),
		cmocka_unit_test(test_vv_text_round_trips_and_refuses_garbage),
		cmocka_unit_test(test_vv_to_wire_and_back_is_the_same_vector),
		cmocka_unit_test(test_vv_node_names_are_shared_between_vectors),
		cmocka_unit_test(test_vv_with_more_names_than_the_table_holds_still_works),
		T(test_records_survive_a_restart_with_every_field),
		T(test_a_record_deleted_and_made_again_is_found_by_its_path),
		T(test_counter_never_goes_back_after_a_restart),
		T(test_another_root_starts_with_no_records),
		T(test_a_second_daemon_on_the_same_state_dir_is_refused),
		T(test_collect_finds_a_subtree_and_nothing_beside_it),
		T(test_manifest_of_records_feeds_the_hash_cache_sorted),
		T(test_gc_forgets_only_old_tombstones),
		T(test_records_saved_in_a_transaction_survive_a_restart),
		T(test_version_vectors_of_any_length_survive_a_restart),
		T(test_a_bracket_without_records_keeps_its_counter),
		T(test_a_record_saved_later_waits_for_its_next_save_or_the_close),
		T(test_a_record_waiting_too_long_is_written_and_a_deleted_one_never),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
