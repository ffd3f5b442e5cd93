/* test_antientropy.c: a sender's rescan (antientropy.c) on a real tree and
 * state: its records follow the walk while the walk goes on, gone records are
 * found only from the whole listing, and a newer rescan or a stop ends one;
 * a pass that takes the rescan's listing counts what the peer acked since. */
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
#include <openssl/evp.h>

#include "engine.h"
#include "util.h"
#include "engine_fix.h"

struct fix {
	char			 root[EFIX_PATH], sdir[EFIX_PATH];
	struct spoolsync	 sp;
	struct peer		 peer;	/* linked only by fix_link: what is
					   queued stays */
	struct link		 l;
	int			 other;	/* the link's far end: never read */
};

/* The peer's link, up; nothing is ever read from its far end. */
static void
fix_link(struct fix *f)
{
	efix_link_up(&f->l, &f->sp, &f->peer, f->sp.base, &f->other);
	ae_init(&f->peer);
}

static void
fix_unlink(struct fix *f)
{
	if (f->peer.link == NULL)
		return;
	ae_free(&f->peer);
	efix_link_down(&f->l, &f->peer, f->other);
}

static int
setup(void **state)
{
	struct fix	*f = calloc(1, sizeof(*f));
	char		 err[256];

	assert_non_null(f);
	efix_open(f->root, f->sdir, &f->sp, &f->peer, "test_ae");
	assert_non_null(f->sp.base = event_base_new());
	TAILQ_INIT(&f->sp.mf_wait);
	TAILQ_INIT(&f->sp.mf_run);
	assert_non_null(f->sp.bg = bg_new(f->sp.base, 2, err, sizeof(err)));
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fix	*f = *state;

	bg_free(f->sp.bg);	/* as sp_free: the workers, then the rescan */
	ae_shutdown(&f->sp);
	fix_unlink(f);
	efix_close(f->root, f->sdir, &f->sp, &f->peer);
	event_base_free(f->sp.base);
	free(f);
	return 0;
}

static void
put(struct fix *f, const char *rel)
{
	int	fd;

	fd = openat(f->sp.rootfd, rel, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
}

/* NDIRS directories d0.. of NFILES files each. */
static void
tree(struct fix *f, int ndirs, int nfiles)
{
	char	p[64];

	for (int d = 0; d < ndirs; d++) {
		snprintf(p, sizeof(p), "d%d", d);
		assert_int_equal(mkdirat(f->sp.rootfd, p, 0755), 0);
		for (int i = 0; i < nfiles; i++) {
			snprintf(p, sizeof(p), "d%d/f%04d", d, i);
			put(f, p);
		}
	}
}

static int
rescan_over(const struct spoolsync *sp)
{
	return sp->rescan_run == NULL && sp->rescan_listing == 0;
}

/* Runs the loop until the rescans are over; 0 if they never were. */
static int
run_rescan(struct fix *f)
{
	for (int i = 0; i < 200000 && !rescan_over(&f->sp); i++)
		event_base_loop(f->sp.base, EVLOOP_ONCE);
	return rescan_over(&f->sp);
}

static int
live(struct fix *f, const char *path)
{
	const struct st_rec	*r = state_get(f->sp.st, path);

	return r != NULL && !r->deleted;
}

/*
 * The first files are queued while the walk still goes on (its end not yet
 * reported), and a file made then, where the walk has not been yet, is found.
 */
static void
test_records_follow_the_walk_before_it_ends(void **state)
{
	struct fix	*f = *state;
	size_t		 early = 0;

	tree(f, 20, 1000);	/* d9 comes last: d0 d1 d10 ... d19 d2 ... */
	ae_rescan(&f->sp);
	assert_int_equal(f->sp.rescan_done, 0);
	for (int i = 0; i < 200000 && !rescan_over(&f->sp); i++) {
		event_base_loop(f->sp.base, EVLOOP_ONCE);
		if (early == 0 && f->peer.nqueued > 0 && f->sp.rescan_listing > 0) {
			early = f->peer.nqueued;
			put(f, "d9/late");
		}
	}
	assert_true(rescan_over(&f->sp));
	assert_true(early > 0);
	assert_true(early < 20000);
	assert_int_equal(f->sp.rescan_done, 1);
	assert_true(live(f, "d9/late"));
	assert_true(live(f, "d0/f0000"));
	assert_true(live(f, "d19/f0999"));
	assert_int_equal(f->peer.nqueued, 20 + 20 * 1000 + 1);
	assert_int_equal(state_live_count(f->sp.st), 20 + 20 * 1000 + 1);
}

/* Files removed behind the daemon's back: tombstoned by the listing's end. */
static void
test_gone_records_are_found_from_the_whole_listing(void **state)
{
	struct fix	*f = *state;
	int		 early_gone = 0;

	tree(f, 5, 500);
	ae_rescan(&f->sp);
	assert_true(run_rescan(f));
	assert_int_equal(state_live_count(f->sp.st), 5 + 5 * 500);
	assert_int_equal(unlinkat(f->sp.rootfd, "d0/f0000", 0), 0);
	assert_int_equal(unlinkat(f->sp.rootfd, "d4/f0499", 0), 0);
	ae_rescan(&f->sp);
	for (int i = 0; i < 200000 && !rescan_over(&f->sp); i++) {
		event_base_loop(f->sp.base, EVLOOP_ONCE);
		if (f->sp.rescan_listing > 0 && !live(f, "d0/f0000"))
			early_gone = 1;
	}
	assert_true(rescan_over(&f->sp));
	assert_int_equal(early_gone, 0);
	assert_false(live(f, "d0/f0000"));
	assert_false(live(f, "d4/f0499"));
	assert_true(live(f, "d0/f0001"));
	assert_int_equal(state_live_count(f->sp.st), 5 + 5 * 500 - 2);
}

/* A rescan asked for while one runs takes its place; nothing is lost. */
static void
test_a_newer_rescan_supersedes_one_under_way(void **state)
{
	struct fix	*f = *state;

	tree(f, 10, 500);
	ae_rescan(&f->sp);
	for (int i = 0; i < 3; i++)
		event_base_loop(f->sp.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	put(f, "d5/new");
	ae_rescan(&f->sp);
	ae_rescan(&f->sp);
	assert_int_equal(f->sp.rescan_listing, 3);
	assert_true(run_rescan(f));
	assert_int_equal(f->sp.rescan_done, 1);
	assert_true(live(f, "d5/new"));
	assert_int_equal(state_live_count(f->sp.st), 10 + 10 * 500 + 1);
	assert_int_equal(f->peer.nqueued, 10 + 10 * 500 + 1);
}

/* Stopping mid-rescan frees its walk, its slices and itself (ASan says). */
static void
test_stopping_mid_rescan_frees_everything(void **state)
{
	struct fix	*f = *state;

	tree(f, 10, 500);
	ae_rescan(&f->sp);
	for (int i = 0; i < 5; i++)
		event_base_loop(f->sp.base, EVLOOP_ONCE);
	assert_non_null(f->sp.rescan_run);
	/* teardown stops it as sp_free does */
}

/* The other order: the rescan is dropped first, its walk comes back later. */
static void
test_a_rescan_dropped_before_its_walk_ends_is_freed_by_it(void **state)
{
	struct fix	*f = *state;

	tree(f, 10, 500);
	ae_rescan(&f->sp);
	ae_shutdown(&f->sp);
	assert_null(f->sp.rescan_run);
	for (int i = 0; i < 200000 && f->sp.rescan_listing > 0; i++)
		event_base_loop(f->sp.base, EVLOOP_ONCE);
	assert_int_equal(f->sp.rescan_listing, 0);
	assert_int_equal(f->peer.nqueued, 0);
	assert_int_equal(f->sp.rescan_done, 0);
}

/* A walk that fails leaves the records and the flag as they were. */
static void
test_a_failed_walk_changes_nothing(void **state)
{
	struct fix	*f = *state;
	int		 fd;

	tree(f, 2, 10);
	/* Its root is no directory any more. */
	fd = openat(f->sp.rootfd, "d0/f0000", O_RDONLY | O_CLOEXEC);
	assert_true(fd != -1);
	close(f->sp.rootfd);
	f->sp.rootfd = fd;
	ae_rescan(&f->sp);
	assert_true(run_rescan(f));
	assert_int_equal(f->sp.rescan_done, 0);
	assert_int_equal(state_live_count(f->sp.st), 0);
	assert_int_equal(f->peer.nqueued, 0);
}

/* A receive-mode node records nothing of its own tree. */
static void
test_a_receiver_rescan_records_nothing(void **state)
{
	struct fix	*f = *state;

	tree(f, 3, 100);
	f->sp.mode = MODE_RECEIVE;
	ae_rescan(&f->sp);
	assert_true(run_rescan(f));
	assert_int_equal(f->sp.rescan_done, 1);
	assert_int_equal(state_live_count(f->sp.st), 0);
	assert_int_equal(f->peer.nqueued, 0);
}

/* What the sender does with a file it ships: hashes it, and the peer's ack. */
static void
ship(struct fix *f, const char *path, const char *content)
{
	struct st_rec	*r = state_get(f->sp.st, path);
	struct item	*it = pmap_get(f->peer.queued, path);
	unsigned int	 len;

	assert_non_null(r);
	assert_non_null(it);
	TAILQ_REMOVE(&f->peer.outbox, it, entry);
	pmap_del(f->peer.queued, path);
	f->peer.nqueued--;
	item_free(it);
	EVP_Digest(content, strlen(content), r->hash, &len, EVP_sha256(), NULL);
	r->hash_ok = 1;
}

static void
ack(struct fix *f, const char *path)
{
	pk_set_from_rec(&f->peer, state_get(f->sp.st, path));
}

static void
sleep_ms(int ms)
{
	usleep((useconds_t)ms * 1000);
}

/*
 * The link came up after the rescan had made its first records (it lists
 * as it walks): a file from one of them, shipped and acked since the pass
 * began, is a difference settled, not one left; the pass is clean and
 * nothing goes out again.
 */
static void
test_a_pass_counts_files_acked_since_it_began_as_settled(void **state)
{
	struct fix		*f = *state;
	struct manifest		 empty;
	struct buf		 enc;
	struct wire_chunk	 c;
	unsigned int		 len;

	put(f, "f");		/* holds "x" */
	assert_int_equal(mkdirat(f->sp.rootfd, "d", 0755), 0);
	ae_rescan(&f->sp);
	assert_true(run_rescan(f));
	assert_int_equal(f->peer.nqueued, 2);
	ship(f, "f", "x");
	ship(f, "d", "");
	sleep_ms(3);
	fix_link(f);
	ae_rescan(&f->sp);	/* as at a start: the pass takes its listing */
	ae_start(&f->peer, 0, "link up");
	assert_int_equal(f->peer.ae.wait_rescan, 1);
	sleep_ms(3);
	ack(f, "f");
	ack(f, "d");
	memset(&empty, 0, sizeof(empty));
	EVP_Digest("", 0, empty.digest, &len, EVP_sha256(), NULL);
	buf_init(&enc);
	manifest_encode(&empty, &enc);	/* the peer had nothing then */
	c.id = f->peer.ae.id;
	c.data = (const unsigned char *)enc.data;
	c.len = enc.len;
	c.last = 1;
	ae_on_manifest(&f->l, &c);
	buf_free(&enc);
	assert_true(run_rescan(f));
	assert_int_equal(f->peer.ae.runs, 1);
	assert_int_equal(f->peer.ae.diffs, 2);
	assert_int_equal(f->peer.ae.stable_diffs, 0);
	assert_int_equal(f->peer.ae.clean, 1);
	assert_int_equal(f->peer.nqueued, 0);
}

/* Not acked since: the same difference is left, and the file goes again. */
static void
test_a_pass_queues_what_the_peer_did_not_ack_since(void **state)
{
	struct fix		*f = *state;
	struct manifest		 empty;
	struct buf		 enc;
	struct wire_chunk	 c;
	unsigned int		 len;

	put(f, "f");
	ae_rescan(&f->sp);
	assert_true(run_rescan(f));
	ship(f, "f", "x");
	ack(f, "f");		/* before the pass: the peer may have lost it */
	sleep_ms(3);
	fix_link(f);
	ae_rescan(&f->sp);
	ae_start(&f->peer, 0, "link up");
	memset(&empty, 0, sizeof(empty));
	EVP_Digest("", 0, empty.digest, &len, EVP_sha256(), NULL);
	buf_init(&enc);
	manifest_encode(&empty, &enc);
	c.id = f->peer.ae.id;
	c.data = (const unsigned char *)enc.data;
	c.len = enc.len;
	c.last = 1;
	ae_on_manifest(&f->l, &c);
	buf_free(&enc);
	assert_true(run_rescan(f));
	assert_int_equal(f->peer.ae.runs, 1);
	assert_int_equal(f->peer.ae.stable_diffs, 1);
	assert_int_equal(f->peer.ae.clean, 0);
	assert_int_equal(f->peer.nqueued, 1);
}

int
main(void)
{
#define T(f)	cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_records_follow_the_walk_before_it_ends),
		T(test_gone_records_are_found_from_the_whole_listing),
		T(test_a_newer_rescan_supersedes_one_under_way),
		T(test_stopping_mid_rescan_frees_everything),
		T(test_a_rescan_dropped_before_its_walk_ends_is_freed_by_it),
		T(test_a_failed_walk_changes_nothing),
		T(test_a_receiver_rescan_records_nothing),
		T(test_a_pass_counts_files_acked_since_it_began_as_settled),
		T(test_a_pass_queues_what_the_peer_did_not_ack_since),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
