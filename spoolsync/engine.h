/*
 * engine.h: the replication engine inside the spoolsync daemon: the runtime
 * shared by server.c, peer.c, local.c, sync.c, send.c, recv.c, recvfile.c,
 * commit.c and antientropy.c.
 */
#ifndef SPOOLSYNC_ENGINE_H
#define SPOOLSYNC_ENGINE_H

#include <sys/queue.h>

#include <sys/stat.h>

#include "spoolsync.h"

struct evconnlistener;
struct evp_md_ctx_st;

#define LINK_AUTH_TIMEOUT_MS	5000
#define LINK_HELLO_TIMEOUT_MS	5000
#define LINK_PING_MS		2000	/* a PING this often on an idle link */
#define LINK_DEAD_MS		10000	/* nothing heard this long: the link is dead */
#define LINK_AUDIT_DEAD_MS	(15 * 60 * 1000)	/* an audit client hashes meanwhile */
#define LINK_BACKOFF_MIN_MS	100
#define LINK_OUT_HIGH		(4 * 1024 * 1024)	/* stop producing above this */
#define LINK_OUT_LOW		(1 * 1024 * 1024)	/* resume below this */
#define LINK_OUT_MAX		(64 * 1024 * 1024)	/* a peer that never reads */
#define LINK_FRAMES_PER_READ	256
#define LINK_IO_MAX		(256 * 1024)	/* bytes a read or write syscall */
#define SYNC_WINDOW		16384	/* changes in flight per link */
#define SYNC_OPEN_MAX		64	/* of those, not yet wholly sent (< SYNC_RX_MAX) */
#define SYNC_COMMIT_MAX		16384	/* received files being committed per link */
#define SYNC_COMMIT_FDS_MAX	4096	/* of those, holding descriptors (not small) */
#define SYNC_COMMIT_MEM_MAX	(64 * 1024 * 1024)	/* small ones' bytes held */
#define SYNC_PUMP_BUDGET	(2 * 1024 * 1024)	/* bytes per pump turn */
#define SYNC_SMALL_MAX		(1024 * 1024)	/* read and hashed on the loop */
#define SYNC_RX_MAX		256	/* files arriving at once on a link */
#define SYNC_SIGS_MAX		16	/* signatures computed at once */
#define AE_SERVE_MAX		4	/* manifests asked for and not yet sent */
#define SYNC_RETRY_MIN_MS	500
#define SYNC_RETRY_MAX_MS	10000
#define SYNC_GIVE_UP		8	/* attempts before a hopeless path waits for AE */
#define AE_MANIFEST_MAX		(512 * 1024 * 1024)
#define AE_RETRY_MIN_MS		500
#define AE_RECIPROCAL_MS	1000	/* a peer's AE starts ours unless this recent */
#define AE_DEFER_RECHECK_MS	250	/* a pass due while files flow: look again */
#define AE_DEFER_MAX_MS		30000	/* and run it anyway after this long */
#define AE_QUIET_MS		1000	/* no file this long: the traffic settled */
#define STATE_TOMB_TTL_NS	(30LL * 24 * 3600 * 1000000000LL)
#define SYNC_CLOCK_SKEW_NS	0

struct spoolsync;
struct peer;
struct link;

/* A manifest shared by whoever needs it (refcounted). */
struct mfref {
	struct manifest	*mf;
	int		 refs;
	uint64_t	 built_ms;
};

/* What a peer is known to hold at a path. */
struct pk {
	uint8_t		 type;
	uint32_t	 mode, uid, gid;
	uint64_t	 size;
	int64_t		 mtime_ns;
	unsigned char	 hash[MF_HASH_LEN];
	uint64_t	 ino;		/* our inode when it got it (0: unknown) */
	uint64_t	 ts_ms;		/* when we learnt it */
};

/* A change for one peer: ship what PATH holds now, or a move. */
enum item_kind { ITEM_PATH = 1, ITEM_MOVE };
struct item {
	TAILQ_ENTRY(item) entry;
	enum item_kind	 kind;
	char		*path;		/* MOVE: the destination */
	char		*from;		/* MOVE: the source */
	int		 is_dir;
	struct vv	 vv;		/* MOVE: the version that moved */
	uint64_t	 since_ms;	/* monotonic: when the change was queued */
	uint64_t	 not_before_ms;	/* a retry waits until then */
	int		 attempts;
	int		 force_whole;
	int		 ae;		/* queued by anti-entropy */
	uint64_t	 moves;		/* the peer's moves queued before it */
};
TAILQ_HEAD(itemq, item);

/* One change in flight on a link (the sender's side). */
enum op_stage { OP_HASH, OP_SIGWAIT, OP_STREAM, OP_SENT };
struct hashjob;
struct op {
	TAILQ_ENTRY(op)	 entry;
	struct link	*l;
	struct item	*it;
	uint64_t	 since_ms;	/* it->since_ms: the lag is read without it */
	int		 type;		/* WIRE_* sent: FILE_BEGIN, DELETE, ... */
	enum op_stage	 stage;
	uint64_t	 seq;		/* frame acked by seq (not FILE_BEGIN) */
	uint64_t	 xfer;
	int		 kind;		/* WIRE_KIND_* */
	uint8_t		 ftype;
	int		 fd;
	struct buf	 data;		/* a small file or a link target */
	uint64_t	 off, size, append_off;
	unsigned char	 sha[MF_HASH_LEN];
	struct wire_attr attr;
	struct vv	 vv;
	uint64_t	 ino;
	int		 hash_done, sig_done, begun, delta_done;
	int		 sig_asked;	/* SIG_REQ sent (maybe before it was needed) */
	struct delta_job *job;		/* loadsig, then delta */
	struct rs_signature *sig;
	struct hashjob	*hj;
	uint64_t	 lit, matched;
	int		 deleted;	/* DELETE: of a tombstone */
};
TAILQ_HEAD(opq, op);

/* A file arriving on a link (the receiver's side). */
struct rx {
	uint64_t	 xfer;
	char		*path;
	int		 kind;
	uint8_t		 ftype;
	uint64_t	 size, append_off, got;
	struct wire_attr attr;
	unsigned char	 sha[MF_HASH_LEN];
	struct vv	 vv;		/* what the record gets */
	int		 skip;		/* decided already: discard the data */
	int		 status;	/* WIRE_ST_* of a skip */
	char		 text[256];
	int		 conflict;	/* we won: keep ours, tell the sender */
	struct apply_tmp tmp;
	int		 tmp_open;
	int		 mem;		/* small: held in body, written by the committer */
	struct buf	 body;
	int		 basis_fd;
	struct delta_job *patch;
	struct evp_md_ctx_st *md;
	unsigned char	 data_sha[MF_HASH_LEN];	/* came in one chunk: its digest */
	int		 data_sha_ok;
	struct buf	 target;	/* a symlink's */
	int		 ended;		/* FILE_END seen; the patch may still run */
	uint64_t	 started_ms;
};

/* A path whose received version is being committed. */
struct applying {
	int		 n;
	int		 recheck;	/* an event came meanwhile */
};

/* A received file being made durable and renamed into place (a worker). */
struct commit {
	TAILQ_ENTRY(commit) entry;	/* its link's */
	TAILQ_ENTRY(commit) wentry;	/* waiting for the committer */
	struct spoolsync *sp;
	struct link	*l;		/* NULL once the link is gone */
	struct rx	*rx;
	struct apply_meta m;
	int		 ran, rc, e;
	int		 stale;		/* the content check failed */
	int		 blocked;	/* a directory is where the file goes */
	int		 fds;		/* counted in l->ncommits_fds */
	uint64_t	 mem;		/* counted in l->commit_mem */
	char		 err[512];
};
TAILQ_HEAD(commitq, commit);

/* A signature the receiver computes for a SIG_REQ. */
struct sigjob {
	TAILQ_ENTRY(sigjob) entry;
	uint64_t	 xfer;
	int		 fd;
	struct delta_job *job;
	struct buf	 out;
	int		 done;
	char		*path;
	int		 cache;		/* settled when begun: cached if unchanged */
	struct sig_key	 key;
	struct buf	 all;		/* what went out, for the cache */
};
TAILQ_HEAD(sigq, sigjob);

/* A manifest being sent (MANIFEST_REQ answered). */
struct mfreq;
struct ajob;
struct mfsend {
	TAILQ_ENTRY(mfsend) entry;
	uint64_t	 id;
	struct buf	 data;
	size_t		 off;
	int		 ready;
	struct link	*l;
	struct mfreq	*req;		/* the local build it waits for */
	struct event	*ev_wait;	/* deferred while we ship: the cap */
	int		 waiting;	/* deferred: no build asked for yet */
};
TAILQ_HEAD(mfsendq, mfsend);

/* The since_ms of a link's ops, counted per value, oldest first. */
struct lagset {
	struct lagent	*v;		/* v[head..n): values ascending */
	size_t		 head, n, cap;
	size_t		 live;		/* entries counting an op */
	size_t		 total;		/* ops counted */
	int		 broken;	/* a value removed was not there */
};

enum link_state {
	LINK_CONNECTING = 1,
	LINK_AUTH,
	LINK_HELLO,
	LINK_UP,
	LINK_DEAD,		/* closed, waiting to be freed */
};

struct link {
	TAILQ_ENTRY(link) entry;
	struct spoolsync *sp;
	struct peer	*peer;		/* NULL until HELLO names it */
	struct bufferevent *bev;
	enum auth_role	 role;
	enum link_state	 state;
	int		 audit;		/* an audit client's session */
	int		 peer_root;	/* the peer runs as root */
	char		 addr[128];
	struct wire_ctx	 wc;
	int		 wc_ok;
	struct wire_msg	*msg;
	struct buf	 obuf;
	uint64_t	 last_rx_ms, up_ms;
	struct event	*ev_ping, *ev_pump, *ev_free;
	int		 read_paused;
	/* sender */
	struct opq	 ops;
	size_t		 nops;
	size_t		 nunsent;	/* of those, not OP_SENT (op_stage) */
	struct pmap	*busy;		/* path -> its op in flight */
	struct lagset	 lag;		/* their since_ms (link_lag_add) */
	uint64_t	 next_xfer;
	/* receiver */
	struct pmap	*rx;
	struct sigq	 sigs;
	size_t		 nsigs;
	struct commitq	 commits;	/* files being committed by workers */
	size_t		 ncommits;
	size_t		 ncommits_fds;	/* of those, holding descriptors */
	uint64_t	 commit_mem;	/* small files' bytes they hold */
	uint64_t	 last_file_ms;	/* monotonic: the last FILE_BEGIN */
	/* manifests */
	struct mfsendq	 mfs;
	struct mfref	*audit_mf;	/* an audit session's hash cache */
	struct ajob	*audit_job;	/* an audit session's build running */
};
TAILQ_HEAD(linkq, link);

/* An anti-entropy pass with one peer. */
struct ae {
	int		 running;
	int		 full;
	uint64_t	 id;
	uint64_t	 started_ms;
	struct mfref	*local;
	struct buf	 remote_buf;
	int		 have_remote;
	struct mfreq	*req;		/* our local manifest request */
	int		 wait_rescan;	/* the local side: the rescan's listing */
	int		 local_rescan;	/* ae->local is that listing (reconciled) */
	/* results */
	uint64_t	 runs;
	uint64_t	 done_ms;	/* monotonic: the last one that completed */
	size_t		 diffs;		/* its differences */
	size_t		 stable_diffs;	/* those not explained by traffic */
	int		 clean;		/* the last one found nothing to do */
	int		 ok_since_up;	/* one completed on this link */
	int64_t		 backoff_ms;
	struct event	*ev_timer;
	int		 again, again_full;	/* asked while running */
	uint64_t	 abandoned_id;	/* a pass given up: its manifest is dropped */
	int		 repair_done;	/* a full pass since the repair began */
	uint64_t	 deferred_ms;	/* a pass waits for the traffic since then */
	/*
	 * This node had caught up with the peer: a clean pass on the current
	 * link, or on the last one if it is down now.  Kept when the link
	 * drops, so that hamon can tell "the peer is gone, this spool holds all
	 * it ever shipped" from "this spool never caught up since start".
	 */
	int		 caught_up;
	uint64_t	 down_ms;	/* monotonic: when the last up link dropped */
};

struct peer {
	struct spoolsync *sp;
	char		*name;
	struct net_addr	 addr;
	int		 dialer;	/* this node dials it (the smaller name) */
	struct link	*link;		/* dialing or up */
	struct event	*ev_retry;
	int64_t		 backoff_ms;
	/* work for it */
	struct itemq	 outbox;
	struct pmap	*queued;	/* path -> its ITEM_PATH in the outbox */
	size_t		 nqueued;
	uint64_t	 moves;		/* move hints queued so far */
	struct pmap	*pk;		/* path -> struct pk */
	struct ae	 ae;
	/* figures */
	uint64_t	 bytes_literal, bytes_matched, bytes_out, bytes_in;
	uint64_t	 files_sent, files_received, conflicts, errors;
	uint64_t	 connects;
	char		 last_error[1200];
	uint64_t	 last_error_ms;
	int		 error_pending;	/* an item waits for a retry after an error */
	struct metric	*m_lag;
};

TAILQ_HEAD(mfreqq, mfreq);

struct repair;
struct rescan;

struct spoolsync {
	struct daemon	*d;
	struct event_base *base;
	char		*node, *root, *conflict_dir, *state_dir;
	int		 mode;
	struct auth_key	 key;
	struct exclude	*ex;
	char		*exclude_text;	/* as configured: reload refuses a change */
	int64_t		 anti_entropy_ms, reconnect_max_ms;
	uint64_t	 whole_below;
	int		 rootfd;
	int		 is_root;
	struct state	*st;
	struct bg	*bg;
	struct bg	*bg_commit;	/* the committer: writes a batch's temp files */
	struct bg	*bg_place;	/* then this one: syncfs, rename (in order) */
	struct commitq	 commit_wait;	/* received, checked, not yet committed */
	int		 commit_running;	/* a batch being written */
	int		 commit_placing;	/* written batches not yet placed */
	struct pmap	*applying;	/* path -> commits running: not local changes */
	struct sigcache	*sigs;		/* made when big files land (commit.c) */
	struct bg	*sig_bg;
	size_t		 sig_pending;
	struct queue	*q;
	struct watch	*w;
	struct evconnlistener *lev;
	struct peer	*peers;
	size_t		 npeers;
	struct linkq	 links;
	/* local manifests */
	struct mfref	*last_mf;	/* the hash cache for the next build */
	struct mfreqq	 mf_wait;	/* waiting for the next build */
	struct mfreqq	 mf_run;	/* served by the build running */
	int		 mf_building;
	int		 rescan_done;
	struct rescan	*rescan_run;	/* the rescan under way: walk, records */
	int		 rescan_listing;	/* walks out (superseded ones too) */
	struct event	*ev_gc, *ev_qkick;
	struct repair	*repair;
	/* figures */
	uint64_t	 local_changes, overflows, applied, apply_errors;
	uint64_t	 conflicts;
	uint64_t	 ae_runs;
	char		 last_error[1200];
	struct metric	*m_apply;
};

/* server.c */
struct spoolsync *spoolsync_of(struct daemon *);
void		 sp_error(struct spoolsync *, struct peer *, const char *, ...)
		    PRINTFLIKE(3, 4);
int		 sp_peer_in_sync(struct spoolsync *, struct peer *);
size_t		 sp_peer_queued(const struct peer *);
uint64_t	 sp_peer_lag_ms(struct spoolsync *, struct peer *);
void		 sp_repair_check(struct spoolsync *);
int64_t		 sp_now_real_ns(void);

/* peer.c: links to peers: dial, accept, authenticate, HELLO, PING, frames */
int		 peer_listen(struct spoolsync *, const struct net_addr *, char *err,
		    size_t errlen);
void		 peer_start(struct peer *);
void		 peer_shutdown(struct spoolsync *);
void		 peer_free_all(struct spoolsync *);	/* at the very end */
/* Encode and queue one frame; -1 closes the link (err logged). */
int		 link_send(struct link *, const struct wire_msg *);
uint64_t	 link_next_seq(const struct link *);
void		 link_close(struct link *, const char *fmt, ...) PRINTFLIKE(2, 3);
int		 link_alive(const struct link *);
int		 link_out_high(const struct link *);
size_t		 link_out_len(const struct link *);
void		 link_pump_soon(struct link *);
void		 link_pause_read(struct link *, int paused);
struct link	*peer_up_link(const struct peer *);
/* An op's since_ms as it joins, and leaves, l->ops: the lag in O(1). */
void		 link_lag_add(struct link *, uint64_t since_ms);
void		 link_lag_del(struct link *, uint64_t since_ms);
/* The oldest since_ms of L's ops; 0 when none or not every op is counted. */
uint64_t	 link_lag_oldest(struct link *);

/* local.c: local changes: watch events, coalesced, become new versions */
void		 sync_watch_cb(const struct watch_event *, void *);
void		 sync_queue_cb(struct queue *, void *);
/* Looks at PATH now; 1 when it is a local change (the record was bumped). */
int		 sync_local_check(struct spoolsync *, const char *path);
void		 sync_check_and_enqueue(struct spoolsync *, const char *path);
int		 sync_adopt(struct spoolsync *, const struct mf_entry *);
int		 sync_adopt_new(struct spoolsync *, const struct mf_entry *);
void		 sync_hash_record(struct spoolsync *, struct st_rec *);
/* R's stat (inode, device, size, mtime, ctime, mode, owner) is ST's. */
int		 sync_same_stat(const struct st_rec *, const struct stat *);
void		 sync_save(struct spoolsync *, struct st_rec *);

/* sync.c: the per-peer outboxes, the pump and its acks */
void		 sync_enqueue(struct peer *, const char *path, int ae);
void		 sync_enqueue_all(struct spoolsync *, const char *path);
void		 sync_enqueue_move(struct peer *, const char *from, const char *to,
		    int is_dir, const struct vv *);
void		 sync_link_up(struct link *);
void		 sync_link_down(struct link *);
void		 sync_pump(struct link *, size_t *budget);
void		 sync_on_ack(struct link *, const struct wire_ack *);
void		 item_free(struct item *);
void		 pk_set_from_rec(struct peer *, const struct st_rec *);
void		 pk_forget(struct peer *, const char *path, int subtree);
void		 sync_bump(struct spoolsync *, struct st_rec *);
void		 sync_touch(struct st_rec *);
int		 sync_lstat(struct spoolsync *, const char *path, struct stat *);
void		 sync_rec_fill(struct st_rec *, const struct stat *);
int		 sync_read_small(struct spoolsync *, const char *path, struct buf *data,
		    unsigned char hash[MF_HASH_LEN], struct stat *);
void		 sync_op_done(struct link *, struct op *, int status, const char *text);

/* send.c: one change shipped: its frames, hashes and deltas */
/* R is the item's record as state_get gives it now (NULL: none). */
void		 send_start(struct link *, struct item *, struct st_rec *r);
void		 send_stream(struct link *, struct op *, size_t *budget);
void		 send_on_sig(struct link *, const struct wire_chunk *);
void		 send_on_ack(struct link *, struct op *, const struct wire_ack *);
void		 op_free(struct op *);
void		 op_stage(struct op *, enum op_stage);
struct op	*send_find_xfer(struct link *, uint64_t xfer);

/* recv.c: changes arriving: decided, applied, acked */
enum recv_decision { DEC_APPLY, DEC_NOOP, DEC_REJECT };
void		 recv_msg(struct link *, struct wire_msg *);
void		 recv_ack(struct link *, int kind, uint64_t ref, int status,
		    const char *text);
int		 recv_status_of(int errnum);		/* WIRE_ST_* */
int		 recv_refused(struct link *, const char *path, char *why, size_t);
void		 recv_meta(struct spoolsync *, const struct wire_attr *,
		    struct apply_meta *);
/* May the incoming version replace ours?  See recv.c. */
enum recv_decision recv_decide(struct link *, const char *path, const struct vv *in,
		    int in_deleted, uint8_t in_type, uint64_t in_size,
		    const unsigned char *in_hash, int64_t in_mtime, struct vv *out,
		    char *loser, size_t loserlen, int *loser_local);
void		 recv_save_loser_fd(struct spoolsync *, int fd, const char *node,
		    const char *path);
void		 recv_save_loser_local(struct spoolsync *, const char *node,
		    const char *path);
struct st_rec	*recv_record(struct spoolsync *, const char *path, const struct vv *,
		    const unsigned char *hash);
struct st_rec	*recv_record_stat(struct spoolsync *, const char *path,
		    const struct vv *, const unsigned char *hash, const struct stat *);
void		 recv_forget_tree(struct spoolsync *, const char *path);

/* recvfile.c: files arriving, checked; signatures for peers */
void		 recv_file_begin(struct link *, const struct wire_file_begin *);
void		 recv_file_data(struct link *, const struct wire_chunk *);
void		 recv_file_end(struct link *, uint64_t xfer);
void		 recv_sig_req(struct link *, const struct wire_sig_req *);
void		 recv_pump(struct link *, size_t *budget);
void		 recv_link_down(struct link *);
int		 recv_busy(const struct link *);
void		 rx_free(struct rx *);
char		*rx_key(uint64_t xfer, char *, size_t);
/* A directory where RX's file goes is removed (if this node may). */
int		 rx_clear_way(struct link *, struct rx *, char *err, size_t errlen);

/* commit.c: received files made durable and renamed, off the loop */
void		 recv_commit(struct link *, struct rx *, const struct apply_meta *);
size_t		 recv_commit_max(void);	/* such commits holding descriptors */
/* 1 when L's commits are as many (or hold as much) as reading may let in. */
int		 recv_commit_full(const struct link *);
struct sigcache	*recv_sigcache(struct spoolsync *);
void		 recv_shutdown(struct spoolsync *);

/* antientropy.c: manifests compared, differences shipped; audits served */
struct mfreq	*mf_request(struct spoolsync *, int full,
		    void (*cb)(struct mfref *, const char *err, void *), void *arg);
void		 mf_cancel(struct spoolsync *, struct mfreq *);
void		 mfref_put(struct mfref *);
struct mfref	*mfref_new(struct manifest *);
struct mfref	*mfref_get(struct mfref *);
void		 ae_start(struct peer *, int full, const char *why);
void		 ae_link_up(struct link *);
void		 ae_link_down(struct link *, int was_up);
void		 ae_on_manifest_req(struct link *, const struct wire_manifest_req *);
void		 ae_on_manifest(struct link *, const struct wire_chunk *);
void		 ae_pump(struct link *, size_t *budget);
void		 ae_init(struct peer *);
void		 ae_free(struct peer *);
void		 ae_outbox_drained(struct peer *);
void		 ae_rescan(struct spoolsync *);
void		 ae_shutdown(struct spoolsync *);

#endif
