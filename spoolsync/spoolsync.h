/*
 * spoolsync.h: spoolsync mirrors the Jabber spool between backend hosts.
 * The table of contents of spoolsync/: prototypes grouped by the file defining them.
 */
#ifndef SPOOLSYNC_H
#define SPOOLSYNC_H

#include <sys/queue.h>
#include <sys/types.h>
#include <sys/stat.h>

#include <stddef.h>
#include <stdint.h>

#include "common.h"

struct rs_signature;		/* librsync's rs_signature_t */

enum spoolsync_mode {
	MODE_SEND = 1,		/* this root is the truth; peers follow it */
	MODE_RECEIVE,		/* this root follows a sending peer */
	MODE_BIDIR,		/* both write; tombstones and version vectors */
};

struct spoolsync_peer_conf {
	const char	*name;
	struct net_addr	 address;
};

struct spoolsync_conf {
	struct cfg_doc		*doc;		/* strings below point into it */
	struct common_conf	 common;
	const char		*node;		/* this host's name among its peers */
	const char		*root;		/* the spool, absolute */
	struct net_addr		 listen;
	int			 has_listen;
	struct spoolsync_peer_conf *peers;
	size_t			 npeers;
	const char		*cluster_key_path;
	struct auth_key		*key;
	int			 mode;		/* enum spoolsync_mode */
	struct exclude		*exclude;
	const char		*conflict_dir;	/* outside the root */
	const char		*state_dir;
	int64_t			 coalesce_ms;
	int64_t			 coalesce_max_ms;
	int64_t			 anti_entropy_ms;
	int64_t			 reconnect_max_ms;
	uint64_t		 whole_below;	/* files smaller than this go whole */
};

/* conf.c */
void		*spoolsync_conf_load(const char *path, struct cfg_errs *);
void		 spoolsync_conf_free(void *);
const struct common_conf *spoolsync_conf_common(const void *);
const char	*spoolsync_mode_name(int);

/* path.c: relative spool paths received from peers, opened confined to root */
#define PATH_REL_MAX	4095	/* bytes in a relative path, without the NUL */
#define PATH_NAME_MAX	255	/* bytes in one component */
/* 0 when PATH is a clean relative path (see path.c), -1 and why otherwise. */
int		 path_valid(const char *path, char *err, size_t errlen);
int		 path_validn(const char *path, size_t len, char *err, size_t errlen);
/* Printable, bounded rendering of untrusted bytes for error messages. */
void		 path_quote(const char *path, size_t len, char *out, size_t outlen);
/*
 * The directory holding PATH's last component, opened beneath ROOTFD without
 * following any symlink; *LEAF points at that component inside PATH.  With
 * CREATE_DIRS, missing directories are made with DIRMODE.  A new fd or -1.
 */
int		 path_open_parent(int rootfd, const char *path, int create_dirs,
		    mode_t dirmode, const char **leaf, char *err, size_t errlen);
/* openat(2) of PATH beneath ROOTFD; O_NOFOLLOW|O_CLOEXEC are always added. */
int		 path_open(int rootfd, const char *path, int flags, mode_t mode,
		    char *err, size_t errlen);
/* A directory beneath ROOTFD ("" is the root itself). */
int		 path_open_dir(int rootfd, const char *path, char *err, size_t errlen);
/* For tests: 0 forces the component-by-component walk instead of openat2. */
void		 path_use_openat2(int on);

/* exclude.c: which paths are never watched, listed or replicated */
#define SPOOLSYNC_TMP_PREFIX	".spoolsync."	/* apply.c's temp files */
#define EXCLUDE_PATTERN_MAX	1024
struct exclude;
struct exclude	*exclude_new(void);
void		 exclude_free(struct exclude *);
/* fnmatch(3) patterns: without '/' on any component's name ("*~"), with '/'
 * on the path from the root ("tmp/x*"); a match excludes the whole subtree. */
int		 exclude_add(struct exclude *, const char *pattern, char *err,
		    size_t errlen);
size_t		 exclude_count(const struct exclude *);
/* 1 when RELPATH or one of its ancestors is excluded; EX may be NULL. */
int		 exclude_match(const struct exclude *, const char *relpath);
int		 exclude_is_temp(const char *name);	/* spoolsync's own temp file */

/* delta.c: librsync signature, delta and patch jobs, stepped incrementally */
#define DELTA_CHUNK		(256 * 1024)	/* file bytes read per step */
#define DELTA_STEP_OUT		(1024 * 1024)	/* default output bound per step */
#define DELTA_SIG_MAX		(64 * 1024 * 1024)	/* default signature bound */
#define DELTA_BLOCK_MAX		(1024 * 1024)	/* largest block accepted in a signature */
#define DELTA_DIGEST_LEN	32		/* SHA-256 */
enum delta_status {
	DELTA_MORE,		/* call again (with more input, if it takes input) */
	DELTA_DONE,
	DELTA_ERROR,
};
struct delta_stats {
	uint64_t	in_bytes;	/* bytes fed to the job */
	uint64_t	out_bytes;	/* bytes it produced */
	uint64_t	lit_bytes;	/* delta/patch: bytes sent literally */
	uint64_t	copy_bytes;	/* delta/patch: bytes matched in the basis */
	uint64_t	lit_cmds, copy_cmds;
	uint64_t	sig_blocks;	/* signature blocks made or loaded */
	uint32_t	block_len;
};
struct delta_job;
/* Reads the basis from BASIS_FD (pread, from offset 0); outputs the signature.
 * BLOCK_LEN 0 takes librsync's choice for SIZE (about its square root). */
struct delta_job *delta_sig_begin(int basis_fd, off_t size, size_t block_len,
		    char *err, size_t errlen);
/* The block length that minimises signature + delta bytes for a small edit. */
size_t		 delta_block_len_for_wire(off_t size);
/* Takes signature bytes as input; no output.  MAX_BYTES 0: DELTA_SIG_MAX. */
struct delta_job *delta_loadsig_begin(size_t max_bytes);
/* After DONE: the loaded signature, hash table built, now the caller's. */
struct rs_signature *delta_loadsig_take(struct delta_job *);
void		 delta_sig_free(struct rs_signature *);
/* Reads the new file from NEW_FD; outputs the delta.  SIG must outlive it. */
struct delta_job *delta_delta_begin(struct rs_signature *sig, int new_fd);
/* Takes delta bytes as input; writes the new file to OUT_FD, copying from
 * BASIS_FD (-1: none).  The output may not exceed MAX_SIZE bytes. */
struct delta_job *delta_patch_begin(int basis_fd, int out_fd, uint64_t max_size);
/*
 * One bounded step.  Jobs that take input (loadsig, patch) consume all of
 * IN; EOF says no input follows.  Jobs that produce output (sig, delta)
 * append at most MAX_OUT bytes to OUT; patch writes at most MAX_OUT bytes
 * to its fd (0: DELTA_STEP_OUT).  Returns DELTA_MORE, DELTA_DONE, or
 * DELTA_ERROR with err filled; after an error the job only fails.
 */
enum delta_status delta_job_step(struct delta_job *, const void *in, size_t inlen,
		    int eof, struct buf *out, size_t max_out, char *err, size_t errlen);
/* 1 when the job can progress without new input: step it again soon. */
int		 delta_job_busy(const struct delta_job *);
void		 delta_job_stats(const struct delta_job *, struct delta_stats *);
/* SHA-256 of the file bytes read (delta) or written (patch); -1 before DONE,
 * for a signature, or after delta_job_no_digest. */
int		 delta_job_digest(const struct delta_job *,
		    unsigned char out[DELTA_DIGEST_LEN]);
/* A delta job whose caller hashes the file elsewhere: one pass less.
 * Before the first step only. */
void		 delta_job_no_digest(struct delta_job *);
void		 delta_job_free(struct delta_job *);

/* sigcache.c: signatures of a receiver's big files, made before a peer asks */
#define SIGCACHE_MAX_BYTES	(64 * 1024 * 1024)
struct sig_key {			/* the stat a signature was made from */
	uint64_t	dev, ino, size;
	int64_t		mtime_ns, ctime_ns;
};
struct sigcache;
struct sigcache	*sigcache_new(size_t max_bytes);
void		 sigcache_free(struct sigcache *);
void		 sigcache_key_of(const struct stat *, struct sig_key *);
int		 sigcache_same(const struct sig_key *, const struct stat *);
/* 0 when a file of stat ST, looked at at NOW_REAL_NS, changed long enough ago
 * that a later write must move its timestamps; else how long until then. */
int64_t		 sigcache_settled_in_ns(const struct stat *, int64_t now_real_ns);
/* PATH's signature if it was made from a file of exactly this stat, or NULL
 * (a changed file's entry is dropped). */
const struct buf *sigcache_get(struct sigcache *, const char *path,
		    const struct stat *);
/* Replaces PATH's entry (others go when over the bound); -1: too big. */
int		 sigcache_put(struct sigcache *, const char *path,
		    const struct sig_key *, const void *sig, size_t len);
void		 sigcache_del(struct sigcache *, const char *path);
size_t		 sigcache_count(const struct sigcache *);
/* FD's whole signature, blocking (for a worker), once the file has settled
 * (waiting at most MAX_WAIT_NS); KEY its stat.  0 done, 1 nothing to cache
 * (too fresh, or changed while read), -1 error. */
int		 sigcache_compute(int fd, int64_t max_wait_ns, struct buf *out,
		    struct sig_key *key, char *err, size_t errlen);

/* manifest.c: what a tree holds, its per-directory digests, and differences */
#define MF_HASH_LEN	32		/* SHA-256 */
#define MF_MAX_ENTRIES	(16 * 1024 * 1024)
#define MF_RACY_NS	(100 * 1000000LL)	/* see manifest.c: the cache's risk */
enum mf_type {
	MF_FILE = 1,
	MF_DIR = 2,
	MF_LINK = 3,
};
#define MF_F_UNSTABLE	0x01	/* kept changing while hashed: re-check it */
#define MF_F_RACY	0x02	/* too recent for timestamps to prove a change (local) */
#define MF_F_NOHASH	0x04	/* a quick build's file not in PREV: not hashed (local) */
struct mf_entry {
	char		*path;		/* relative, valid for path_valid() */
	char		*link;		/* MF_LINK: the target */
	uint8_t		 type;
	uint8_t		 flags;
	uint32_t	 mode;		/* permission bits, 07777 */
	uint32_t	 uid, gid;
	uint64_t	 size;		/* files; links: target length; dirs: 0 */
	int64_t		 mtime_ns;
	int64_t		 ctime_ns;	/* local only: not encoded */
	uint64_t	 ino, dev;	/* local only: not encoded */
	size_t		 end;		/* MF_DIR: index just past its subtree */
	unsigned char	 hash[MF_HASH_LEN];	/* file: content; link: target;
						   dir: digest of its subtree */
};
struct manifest {
	struct mf_entry	*e;		/* sorted by manifest_path_cmp */
	size_t		 n, cap;
	unsigned char	 digest[MF_HASH_LEN];	/* the whole tree */
	uint64_t	 hashed_bytes;	/* build: bytes read to hash */
	uint64_t	 reused;	/* build: hashes taken from the previous manifest */
	uint64_t	 skipped;	/* build: sockets, fifos, devices, too-long paths */
};
/*
 * Walks the tree beneath ROOTFD (symlinks are recorded, never followed;
 * excluded paths skipped).  A file's hash is reused from PREV when its size,
 * mtime_ns, ctime_ns, inode and device are unchanged, unless FULL.
 */
int		 manifest_build(int rootfd, const struct exclude *,
		    const struct manifest *prev, int full, struct manifest **out,
		    char *err, size_t errlen);
/* The same, but a file PREV does not hash is only stat'ed (MF_F_NOHASH):
 * a local rescan's list of what is new, never to be sent or reused. */
int		 manifest_build_quick(int rootfd, const struct exclude *,
		    const struct manifest *prev, struct manifest **out, char *err,
		    size_t errlen);
/* The same, handing the entries over as the walk goes: SLICE(PART, ARG), on
 * the walking thread, gets each next run of entries in path order as a
 * manifest of its own (unlinked, to free); OUT is still the whole tree. */
int		 manifest_build_quick_stream(int rootfd, const struct exclude *,
		    const struct manifest *prev,
		    void (*slice)(struct manifest *part, void *), void *arg,
		    struct manifest **out, char *err, size_t errlen);
/* One path, freshly stat'ed and hashed (an audit's re-check).  -1 + ENOENT
 * in errno when it does not exist. */
int		 manifest_stat(int rootfd, const char *path, struct mf_entry *out,
		    char *err, size_t errlen);
void		 manifest_entry_clear(struct mf_entry *);
void		 manifest_free(struct manifest *);
/* Directories first, their subtrees right after them: '/' sorts lowest. */
int		 manifest_path_cmp(const char *, const char *);
const struct mf_entry *manifest_find(const struct manifest *, const char *path);
/* The wire form: length-prefixed, big-endian; decode validates everything. */
void		 manifest_encode(const struct manifest *, struct buf *);
struct manifest	*manifest_decode(const void *, size_t, char *err, size_t errlen);

enum mf_diff_kind {
	MF_MISSING_HERE,	/* only THERE has it */
	MF_MISSING_THERE,	/* only HERE has it */
	MF_CONTENT_DIFFERS,	/* type, size, hash or link target */
	MF_METADATA_DIFFERS,	/* mode, uid, gid or mtime_ns only */
};
#define MF_D_TYPE	0x01
#define MF_D_SIZE	0x02
#define MF_D_HASH	0x04
#define MF_D_MODE	0x08
#define MF_D_UID	0x10
#define MF_D_GID	0x20
#define MF_D_MTIME	0x40
#define MF_CMP_NO_OWNER	0x01	/* ignore uid/gid (an unprivileged replica) */
#define MF_CMP_NO_MTIME	0x02
struct mf_diff {
	enum mf_diff_kind	 kind;
	unsigned		 what;		/* MF_D_* */
	const struct mf_entry	*here;		/* NULL when missing here */
	const struct mf_entry	*there;		/* NULL when missing there */
};
struct mf_diffs {
	struct mf_diff	*d;
	size_t		 n, cap;
	uint64_t	 compared;	/* entries compared */
	uint64_t	 skipped;	/* equal subtrees passed by one digest compare */
};
/* The diffs point into HERE and THERE: keep them while diffs are used. */
void		 manifest_diff(const struct manifest *here,
		    const struct manifest *there, unsigned cmpflags, struct mf_diffs *);
void		 manifest_diffs_free(struct mf_diffs *);
const char	*manifest_diff_kind_name(enum mf_diff_kind);
const char	*manifest_diff_what(unsigned what, char *buf, size_t len);

/* apply.c: crash-safe changes beneath the root */
#define APPLY_OWNER	0x01
#define APPLY_MODE	0x02
#define APPLY_MTIME	0x04
struct apply_meta {
	unsigned	set;		/* APPLY_* */
	uint32_t	mode;		/* 07777 */
	uint32_t	uid, gid;
	int64_t		mtime_ns;
};
struct apply_tmp {
	int		 dirfd;		/* the target's directory */
	int		 fd;		/* the temp file, open for writing */
	char		 name[32];	/* its name in dirfd */
	char		*path;		/* the target, relative to the root */
	const char	*leaf;		/* the target's name in dirfd (in path) */
	uint64_t	 written;
	int		 placed_ok;	/* placed: the file's stat once renamed */
	struct stat	 placed;
	int		 dirfd_borrowed;	/* the caller's: never closed here */
	int		 anon;		/* O_TMPFILE: no name until it is placed */
};
/* A temp file beside PATH; missing parents are made (like their own parent)
 * if CREATE_DIRS. */
int		 apply_tmp_open(int rootfd, const char *path, int create_dirs,
		    struct apply_tmp *, char *err, size_t errlen);
/*
 * The same in DIRFD, PATH's parent as apply_parent_open opened it: many
 * files share one directory walk.  DIRFD stays the caller's, open until
 * the temp file is renamed or aborted.
 */
int		 apply_tmp_open_in(int dirfd, const char *path, struct apply_tmp *,
		    char *err, size_t errlen);
/*
 * The same with no name at all (O_TMPFILE, made with M's permission bits
 * when safe): placing it adds one directory entry, and a crash leaves
 * nothing behind.  It holds its descriptor until placed or aborted.  Where
 * the file system refuses, a named temp file as apply_tmp_open_in.
 */
int		 apply_tmp_open_anon(int dirfd, const char *path,
		    const struct apply_meta *m, struct apply_tmp *, char *err,
		    size_t errlen);
/* PATH's parent beneath ROOTFD, missing directories made like their parent. */
int		 apply_parent_open(int rootfd, const char *path, char *err,
		    size_t errlen);
int		 apply_tmp_write(struct apply_tmp *, const void *, size_t,
		    char *err, size_t errlen);
/* Appends the first LEN bytes of SRCFD (an append: old bytes, then the tail). */
int		 apply_tmp_copy(struct apply_tmp *, int srcfd, uint64_t len,
		    char *err, size_t errlen);
/* Owner, mode, mtime, fsync, rename over the target, fsync the directory.
 * Without APPLY_MODE a replaced file keeps its mode (a new one is 0600).
 * On failure the temp file is gone and the target untouched (unless the
 * final directory fsync failed: then the new file is in place). */
int		 apply_tmp_commit(struct apply_tmp *, const struct apply_meta *,
		    char *err, size_t errlen);
void		 apply_tmp_abort(struct apply_tmp *);	/* removes the temp file */
/* A group commit (spoolsync's receiver): seal (owner, mode, mtime, close; no
 * fsync), then the caller's syncfs, then rename (no directory fsync), then
 * the caller's syncfs again.  On failure the temp file is gone. */
int		 apply_tmp_seal(struct apply_tmp *, const struct apply_meta *,
		    char *err, size_t errlen);
int		 apply_tmp_rename(struct apply_tmp *, char *err, size_t errlen);
int		 apply_file(int rootfd, const char *path, const void *, size_t,
		    const struct apply_meta *, char *err, size_t errlen);
/* The current file at PATH, read-only, a regular file (a patch's basis). */
int		 apply_open_basis(int rootfd, const char *path, char *err, size_t errlen);
int		 apply_mkdir(int rootfd, const char *path, const struct apply_meta *,
		    char *err, size_t errlen);
int		 apply_symlink(int rootfd, const char *path, const char *target,
		    const struct apply_meta *, char *err, size_t errlen);
/* Gone already is success.  A directory needs RECURSIVE unless empty. */
int		 apply_delete(int rootfd, const char *path, int recursive,
		    char *err, size_t errlen);
int		 apply_rename(int rootfd, const char *from, const char *to,
		    char *err, size_t errlen);
int		 apply_set_meta(int rootfd, const char *path, const struct apply_meta *,
		    char *err, size_t errlen);
/* For tests: the next commit fails at STEP as if with ERRNUM. */
enum apply_step {
	APPLY_STEP_NONE,
	APPLY_STEP_OWNER,
	APPLY_STEP_MODE,
	APPLY_STEP_MTIME,
	APPLY_STEP_FSYNC,
	APPLY_STEP_RENAME,
	APPLY_STEP_TMPFILE,	/* O_TMPFILE refused: the named fallback */
};
void		 apply_fail_at(enum apply_step, int errnum);

/* wire.c: the peer protocol's frames: encoders, a stream framer, strict decoders */
#define WIRE_VERSION		2	/* 2: FILE_DATA's MAC covers its data's SHA-256 */
#define WIRE_HDR_LEN		5	/* u32 payload length, u8 type */
#define WIRE_MAC_LEN		16	/* HMAC-SHA256 truncated to 128 bits */
#define WIRE_CHUNK_MAX		(1024 * 1024)	/* data bytes in one MANIFEST, SIG, FILE_DATA */
#define WIRE_SMALL_MAX		(16 * 1024)	/* the payload of any other frame */
#define WIRE_MAX_PAYLOAD	(WIRE_CHUNK_MAX + 64)
#define WIRE_MAX_FRAME		(WIRE_HDR_LEN + WIRE_MAX_PAYLOAD + WIRE_MAC_LEN)
#define WIRE_NAME_MAX		64	/* a node name: 1-64 of [A-Za-z0-9._-] */
#define WIRE_TEXT_MAX		1024	/* an error text or a reason */
#define WIRE_VV_MAX		64	/* entries in a version vector */
#define WIRE_HASH_LEN		32	/* SHA-256 */
#define WIRE_STR_SPACE		(2 * (PATH_REL_MAX + 1) + WIRE_VV_MAX * (WIRE_NAME_MAX + 1))
enum wire_type {
	WIRE_HELLO = 1,
	WIRE_MANIFEST_REQ,
	WIRE_MANIFEST,
	WIRE_SIG_REQ,
	WIRE_SIG,
	WIRE_FILE_BEGIN,
	WIRE_FILE_DATA,
	WIRE_FILE_END,
	WIRE_DELETE,
	WIRE_RENAME,
	WIRE_MKDIR,
	WIRE_META,
	WIRE_ACK,
	WIRE_PING,
	WIRE_PONG,
	WIRE_BYE,
};
#define WIRE_TYPE_LAST		WIRE_BYE
enum wire_mode { WIRE_MODE_SEND = 1, WIRE_MODE_RECEIVE, WIRE_MODE_BIDIR };
enum wire_kind { WIRE_KIND_WHOLE = 1, WIRE_KIND_DELTA, WIRE_KIND_APPEND };
enum wire_ref { WIRE_REF_SEQ = 1, WIRE_REF_XFER };	/* what an ACK answers */
enum wire_status {
	WIRE_ST_OK = 0,
	WIRE_ST_IO,		/* a local I/O error at the receiver */
	WIRE_ST_NOSPACE,
	WIRE_ST_PATH,		/* the path cannot be used there (symlink, type) */
	WIRE_ST_CONFLICT,	/* the receiver's version won or was kept */
	WIRE_ST_STALE,		/* basis or content hash mismatch: send it whole */
	WIRE_ST_REFUSED,	/* the receiver's mode does not take this */
	WIRE_ST_PROTO,
};
#define WIRE_ST_LAST		WIRE_ST_PROTO
/*
 * Decoded messages: byte fields (data, sha256) point into the frame, so use
 * the message before the frame's bytes are drained; strings and version
 * vectors point into the message's own storage, so never copy a decoded
 * struct wire_msg by value.  To encode, point the fields anywhere.
 */
struct wire_vv_ent {
	const char	*node;
	uint64_t	 counter;
};
struct wire_vv {
	const struct wire_vv_ent *e;
	size_t		 n;		/* <= WIRE_VV_MAX, nodes distinct */
};
struct wire_attr {
	uint32_t	mode;		/* 07777 */
	uint32_t	uid, gid;
	int64_t		mtime_ns;
};
struct wire_hello {
	uint16_t	 version;	/* >= 1 */
	const char	*node;
	uint8_t		 mode;		/* enum wire_mode */
	uint32_t	 flags;		/* none defined yet; unknown bits are ignored */
};
struct wire_manifest_req {
	uint64_t	 id;		/* echoed by the MANIFEST chunks */
	const char	*dir;		/* "" for the root */
};
struct wire_chunk {			/* MANIFEST (id), SIG (xfer), FILE_DATA (xfer) */
	uint64_t	 id;
	const unsigned char *data;
	size_t		 len;		/* <= WIRE_CHUNK_MAX */
	int		 last;		/* not on FILE_DATA: FILE_END ends it */
	/* FILE_DATA on a digest link (wire_ctx.digest_data): the SHA-256 of
	 * DATA.  Encode: the caller's, when it has it (else computed);
	 * decode: the one the MAC was checked with. */
	const unsigned char *digest;
};
struct wire_sig_req {
	uint64_t	 xfer;
	const char	*path;
};
struct wire_file_begin {
	uint64_t	 xfer;
	const char	*path;
	uint8_t		 kind;		/* enum wire_kind; a symlink goes whole */
	uint8_t		 ftype;		/* MF_FILE or MF_LINK (data: the target) */
	uint64_t	 size;		/* of the final content, <= INT64_MAX */
	struct wire_attr attr;
	unsigned char	 sha256[WIRE_HASH_LEN];	/* of the final content */
	uint64_t	 append_off;	/* APPEND: where the data starts (<= size); else 0 */
	struct wire_vv	 vv;
};
struct wire_file_end {
	uint64_t	 xfer;
};
struct wire_delete {
	const char	*path;
	int		 is_dir;
	struct wire_vv	 vv;
};
struct wire_rename {
	const char	*from, *to;
	int		 is_dir;
	struct wire_vv	 vv;
};
struct wire_path_attr {			/* MKDIR, META */
	const char	*path;
	struct wire_attr attr;
};
struct wire_ack {
	uint8_t		 ref_kind;	/* enum wire_ref */
	uint64_t	 ref;		/* the acked frame's seq, or an xfer id */
	uint16_t	 status;	/* enum wire_status */
	const char	*text;		/* NULL: ""; see wire_encode */
};
struct wire_ping {			/* PING, PONG */
	uint64_t	 ts;
};
struct wire_bye {
	const char	*reason;	/* NULL: "" */
};
struct wire_msg {
	enum wire_type	 type;
	uint64_t	 seq;		/* decode: the frame's sequence number */
	union {
		struct wire_hello	 hello;
		struct wire_manifest_req manifest_req;
		struct wire_chunk	 manifest;
		struct wire_sig_req	 sig_req;
		struct wire_chunk	 sig;
		struct wire_file_begin	 file_begin;
		struct wire_chunk	 file_data;
		struct wire_file_end	 file_end;
		struct wire_delete	 delete;
		struct wire_rename	 rename;
		struct wire_path_attr	 mkdir;
		struct wire_path_attr	 meta;
		struct wire_ack		 ack;
		struct wire_ping	 ping;	/* PING and PONG */
		struct wire_bye		 bye;
	};
	/* decode storage */
	struct wire_vv_ent vv_store[WIRE_VV_MAX];
	unsigned char	 data_digest[WIRE_HASH_LEN];
	char		 strs[WIRE_STR_SPACE];
	size_t		 strs_used;
};
/* One direction-keyed HMAC per side and the sequence numbers: one per link. */
struct evp_mac_ctx_st;
struct wire_ctx {
	struct evp_mac_ctx_st	*tx, *rx;
	uint64_t		 send_seq;	/* of the next frame sent */
	uint64_t		 recv_seq;	/* of the next frame expected */
	int			 failed;	/* a bad frame came: refuse the rest */
	int			 digest_data;	/* both sides speak version 2 */
};
/* KEY is auth_hs_session_key's; ROLE this side's role in that handshake. */
int		 wire_ctx_init(struct wire_ctx *, const unsigned char *key,
		    enum auth_role, char *err, size_t errlen);
void		 wire_ctx_clear(struct wire_ctx *);
/* Appends one sealed frame to OUT, or -1 + err with OUT unchanged. */
int		 wire_encode(struct wire_ctx *, const struct wire_msg *, struct buf *out,
		    char *err, size_t errlen);
/*
 * The stream framer.  AVAIL is how many bytes are buffered; DATA must hold
 * the first min(AVAIL, WIRE_HDR_LEN) of them contiguously (evbuffer_pullup).
 * WIRE_NEED: *N is the total the next step needs (a low watermark);
 * WIRE_READY: a frame of *N bytes is buffered; WIRE_BAD: close, err says why.
 */
enum wire_peek { WIRE_NEED, WIRE_READY, WIRE_BAD };
enum wire_peek	 wire_peek(const void *data, size_t avail, size_t *n, char *err,
		    size_t errlen);
/* One whole frame (wire_peek's *N bytes): MAC, sequence, then every field.
 * -1 + err: close the link; the context then refuses every later frame. */
int		 wire_decode(struct wire_ctx *, const void *frame, size_t len,
		    struct wire_msg *, char *err, size_t errlen);
/* The payload alone, without framing or MAC (tests, fuzzing, the manifest). */
int		 wire_encode_payload(const struct wire_msg *, struct buf *out, char *err,
		    size_t errlen);
int		 wire_decode_payload(int type, const void *payload, size_t len,
		    struct wire_msg *, char *err, size_t errlen);
int		 wire_name_valid(const char *name);	/* 1: a usable node name */
const char	*wire_type_name(int type);		/* "?" when unknown */
const char	*wire_status_name(int status);

/* watch.c: the spool's changes, from inotify to the libevent loop */
#define WATCH_QUEUE_MAX_DEFAULT	65536	/* events waiting for the loop */
enum watch_type {
	WATCH_CHANGED = 1,	/* file content: written, created, moved in */
	WATCH_ATTRIB,		/* metadata only: mode, owner, times */
	WATCH_DELETED,
	WATCH_MOVED,		/* from -> relpath, both inside the root */
	WATCH_MKDIR,
	WATCH_OVERFLOW,		/* events were lost: run a full rescan */
	WATCH_ERROR,		/* msg says what; watching goes on where it can */
};
#define WATCH_F_SCAN		0x01	/* found by scanning a new directory */
#define WATCH_F_FROM_TEMP	0x02	/* renamed from a spoolsync temp file */
struct watch_event {
	enum watch_type	 type;
	int		 is_dir;
	unsigned	 flags;		/* WATCH_F_* */
	const char	*relpath;	/* from the root ("" is the root); MOVED: new */
	const char	*from;		/* MOVED: the old path; NULL otherwise */
	const char	*msg;		/* OVERFLOW, ERROR: why; NULL otherwise */
	uint64_t	 mono_ns;	/* CLOCK_MONOTONIC when the watcher saw it */
};
struct watch_opts {
	/* Called on the watcher thread: must not change while it runs. */
	int		(*excluded)(const char *relpath, int is_dir, void *arg);
	void		*excluded_arg;
	size_t		 queue_max;	/* 0: WATCH_QUEUE_MAX_DEFAULT */
};
struct watch_stats {
	uint64_t	events;		/* inotify events read */
	uint64_t	delivered;	/* watch_events handed to the callback */
	uint64_t	dropped;	/* lost to our own full queue */
	uint64_t	overflows;	/* times a WATCH_OVERFLOW was owed */
	uint64_t	limit_failures;	/* directories refused by max_user_watches */
	uint64_t	dirs;		/* directories watched now */
};
struct watch;
/*
 * Watches ROOT recursively and calls CB on BASE's loop for every change, in
 * order; the event lives until CB returns.  Returns once ROOT is watched.
 * One watch per process (libinotifytools' state is global).
 */
struct watch	*watch_start(struct event_base *, const char *root,
		    const struct watch_opts *,
		    void (*cb)(const struct watch_event *, void *), void *arg,
		    char *err, size_t errlen);
/* Stops and joins the watcher thread; may be called from CB. */
void		 watch_stop(struct watch *);
void		 watch_get_stats(struct watch *, struct watch_stats *);
const char	*watch_type_name(enum watch_type);
/* For tests: hold the watcher thread (no reads) until called with 0. */
void		 watch_test_pause(struct watch *, int paused);

/* queue.c: changes coalesced per path for a few milliseconds, then shipped */
#define QUEUE_DELAY_MS_DEFAULT		5
#define QUEUE_MAX_DELAY_MS_DEFAULT	50
#define QUEUE_DELAY_LIMIT_MS		500	/* never seconds */
enum queue_kind {
	QUEUE_CHANGE = 1,	/* content and metadata */
	QUEUE_ATTRIB,		/* metadata only */
	QUEUE_MKDIR,
	QUEUE_DELETE,
	QUEUE_MOVE,		/* from -> path: an ordered operation */
};
#define QUEUE_F_RECREATED	0x01	/* deleted, then created again, in the window */
struct queue_entry {
	enum queue_kind	 kind;
	int		 is_dir;
	unsigned	 flags;		/* QUEUE_F_* */
	char		*path;		/* MOVE: the destination */
	char		*from;		/* MOVE: the source; NULL otherwise */
	uint64_t	 first_ns;	/* the queue's clock at the first event */
	uint64_t	 last_ns;	/* and at the last */
	uint32_t	 events;	/* events coalesced into this entry */
};
struct queue_opts {
	uint64_t	 delay_ns;	/* quiet time after the last event; 0 allowed */
	uint64_t	 max_delay_ns;	/* cap after the first event */
	uint64_t	(*clock)(void *);	/* NULL: CLOCK_MONOTONIC in ns */
	void		*clock_arg;
};
struct queue;
/* OPTS NULL: 5 ms and 50 ms on the monotonic clock. */
struct queue	*queue_new(const struct queue_opts *, char *err, size_t errlen);
void		 queue_free(struct queue *);
void		 queue_add(struct queue *, enum queue_kind, const char *path,
		    int is_dir);
void		 queue_add_move(struct queue *, const char *from, const char *to,
		    int is_dir);
/* 0 when EV was queued; 1 when it is not a change (OVERFLOW, ERROR). */
int		 queue_add_event(struct queue *, const struct watch_event *);
/* The next due entry in order, or NULL; free it with queue_entry_free. */
struct queue_entry *queue_pop(struct queue *);
void		 queue_entry_free(struct queue_entry *);
size_t		 queue_pending(const struct queue *);
/* When the next entry is due (the queue's clock); UINT64_MAX when empty. */
uint64_t	 queue_next_due_ns(const struct queue *);
/* Age of the oldest pending change; 0 when empty. */
uint64_t	 queue_oldest_age_ns(const struct queue *);
const char	*queue_kind_name(enum queue_kind);
/*
 * Calls CB on BASE's loop when entries fall due; CB pops what it can take.
 * If it leaves due entries, CB is not called again until queue_kick().
 */
int		 queue_attach(struct queue *, struct event_base *,
		    void (*cb)(struct queue *, void *), void *arg,
		    char *err, size_t errlen);
void		 queue_kick(struct queue *);

/* pmap.c: a hash map from strings (paths, xfer ids) to pointers */
struct pmap;
struct pmap_iter {
	size_t		 bucket;
	void		*ent;
};
struct pmap	*pmap_new(void);
/* A map whose values hold their keys: a char * at KEY_OFF in each value,
 * unchanged while it is in the map; pmap_put copies nothing. */
struct pmap	*pmap_new_keyed(size_t key_off);
uint64_t	 pmap_hash_str(const char *);	/* the map's own string hash */
/* FREEFN (may be NULL) is called on every value left. */
void		 pmap_free(struct pmap *, void (*freefn)(void *));
void		*pmap_get(const struct pmap *, const char *key);
/* Sets KEY (copied) to VAL; returns the value it replaced, or NULL. */
void		*pmap_put(struct pmap *, const char *key, void *val);
void		*pmap_del(struct pmap *, const char *key);	/* the value, or NULL */
/* Deletes KEY only while it maps to VAL: 1 if it did. */
int		 pmap_del_if(struct pmap *, const char *key, const void *val);
size_t		 pmap_count(const struct pmap *);
/* Iteration: zero the iterator first; do not add or delete meanwhile. */
int		 pmap_next(const struct pmap *, struct pmap_iter *, const char **key,
		    void **val);

/* bg.c: blocking work (manifest builds, big hashes) on worker threads */
struct bg;
struct bg	*bg_new(struct event_base *, int nthreads, char *err, size_t errlen);
/* Waits for running jobs; every job not yet reported gets DONE with cancelled. */
void		 bg_free(struct bg *);
/* RUN(ARG) on a worker thread, then DONE(ARG, 0) on the loop. */
void		 bg_submit(struct bg *, void (*run)(void *), void (*done)(void *, int),
		    void *arg);
/* From a job's RUN: CB(ARG, 0) on the loop, in posting order and before the
 * job's DONE; CB(ARG, 1) instead if the bg is freed first. */
void		 bg_post(struct bg *, void (*cb)(void *, int), void *arg);
size_t		 bg_pending(const struct bg *);

/* state.c: version vectors and the persistent per-path state (SQLite) */
struct vv_ent {
	char		*node;
	uint64_t	 counter;
};
struct vv {
	struct vv_ent	*e;
	size_t		 n;
};
enum vv_order {
	VV_EQUAL,
	VV_BEFORE,		/* a is older: b dominates */
	VV_AFTER,		/* a dominates b */
	VV_CONCURRENT,
};
void		 vv_free(struct vv *);
void		 vv_copy(struct vv *dst, const struct vv *src);
uint64_t	 vv_get(const struct vv *, const char *node);
void		 vv_set(struct vv *, const char *node, uint64_t counter);
void		 vv_merge(struct vv *into, const struct vv *other);
enum vv_order	 vv_compare(const struct vv *a, const struct vv *b);
/* The greatest node name whose counter in A exceeds B's ("" if none). */
const char	*vv_author(const struct vv *a, const struct vv *b);
/* "a:3,b:1" and back (-1 on a malformed text). */
char		*vv_format(const struct vv *);
int		 vv_parse(struct vv *, const char *);
int		 vv_from_wire(struct vv *, const struct wire_vv *);
/* STORE must hold WIRE_VV_MAX entries; strings point into V. */
void		 vv_to_wire(const struct vv *, struct wire_vv *, struct wire_vv_ent *store);

struct st_rec {
	char		*path;
	uint8_t		 type;		/* MF_FILE, MF_DIR, MF_LINK */
	uint8_t		 deleted;	/* a tombstone */
	uint8_t		 hash_ok;	/* hash is the content's (else: not known yet) */
	uint32_t	 mode, uid, gid;
	uint64_t	 size;
	int64_t		 mtime_ns;
	unsigned char	 hash[MF_HASH_LEN];
	uint64_t	 ino, dev;	/* the local file's, when last looked at */
	int64_t		 ctime_ns;
	int64_t		 deleted_ns;	/* CLOCK_REALTIME of the delete */
	struct vv	 vv;
	char		*acked;		/* tombstones: ",peer,peer," that have it */
	uint64_t	 touched_ms;	/* memory only: monotonic, last change */
	/* memory only: waiting to be written (state_save_later) since when */
	TAILQ_ENTRY(st_rec) later;
	uint64_t	 later_ms;	/* 0: not waiting */
};
struct state;
/* Opens (creating) DIR/state.db; the records of another root are dropped. */
struct state	*state_open(const char *dir, const char *root, char *err, size_t errlen);
void		 state_close(struct state *);
struct st_rec	*state_get(struct state *, const char *path);
/* A record for PATH (new ones are empty); change it, then state_save it. */
struct st_rec	*state_lookup_or_new(struct state *, const char *path);
int		 state_save(struct state *, struct st_rec *);
/*
 * R is written by its next state_save, which is due soon (a rescan's new
 * file is saved again once the sender hashes it), or else by the first
 * commit after STATE_LATER_MS, or by state_close: one write instead of two.
 * A crash before then loses the record, as a power cut may lose the last
 * ones, and the start's rescan finds the file again.
 */
void		 state_save_later(struct state *, struct st_rec *);
void		 state_del(struct state *, const char *path);
size_t		 state_count(const struct state *);
size_t		 state_live_count(const struct state *);	/* not tombstones */
/* Every record at or beneath DIR ("" for all), in no order; caller frees V. */
size_t		 state_collect(struct state *, const char *dir, struct st_rec ***v);
/* This node's counter for a new version: persistent, never reused. */
uint64_t	 state_next_counter(struct state *);
/* The live records as a manifest to reuse hashes from (manifest_build PREV). */
struct manifest	*state_manifest(struct state *);
const char	*state_error(const struct state *);	/* the last write error */
/* Tombstones older than TTL_NS (realtime) are forgotten; returns how many. */
size_t		 state_gc(struct state *, int64_t ttl_ns);
void		 st_rec_clear(struct st_rec *);
/* One transaction for the writes in between (nested: the outermost counts). */
int		 state_begin(struct state *);
int		 state_commit(struct state *);
/* Small facts beside the records ("root", "counter", "synced:PEER"). */
char		*state_get_meta(struct state *, const char *key);	/* caller frees */
int		 state_set_meta(struct state *, const char *key, const char *value);

/* audit.c: `spoolsync audit` (--audit): compare this tree with every peer's */
#define SPOOLSYNC_HELLO_AUDIT	0x01	/* HELLO flag: an audit session */
#define SPOOLSYNC_HELLO_ROOT	0x02	/* HELLO flag: runs as root (owners comparable) */
#define SPOOLSYNC_MF_FULL	(1ULL << 63)	/* MANIFEST_REQ id bit: hash everything */
int		 audit_main(struct cli *, int repair);

/* server.c: the daemon's hooks (struct daemon_def) */
int		 spoolsync_start(struct daemon *, void *conf, char *err, size_t errlen);
int		 spoolsync_swap(struct daemon *, void *conf, char *err, size_t errlen);
void		 spoolsync_stop(struct daemon *);
void		 spoolsync_status(struct daemon *, struct json *);
void		 spoolsync_command(struct daemon *, struct control_conn *, int, char **);
void		 spoolsync_print_status(const struct jval *, void *);

#endif
