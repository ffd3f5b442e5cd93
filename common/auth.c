/*
 * auth.c: the cluster key and the mutual HMAC-SHA256 challenge-response that
 * spoolsync, hamon and proxyd peers run first on every stream connection.
 *
 * Wire format, version 1 (all sizes fixed, nothing is length-prefixed):
 *
 *   hello, 42 bytes, sent by both sides at once, without waiting:
 *     0   8  magic    "JHA-AUTH"
 *     8   1  version  1
 *     9   1  role     'C' (client) or 'S' (server): the sender's role
 *    10  32  nonce    RAND_bytes
 *
 *   proof, 32 bytes, sent by each side once it holds the peer's hello:
 *     HMAC-SHA256(key, "JHA-AUTH proof" || role || client_nonce || server_nonce)
 *     where role is the SENDER's role byte.
 *
 *   session key (never sent), once the peer's proof verified:
 *     HMAC-SHA256(key, "JHA-AUTH session" || client_nonce || server_nonce)
 *
 * Why it is safe: a proof binds both nonces, so nobody reveals a proof that
 * could be replayed in another session, and the server's proof needs the
 * client's nonce first.  The role byte inside the MAC means a proof reflected
 * back to its sender never verifies; a hello whose nonce equals ours is
 * refused outright.  Proofs are compared with CRYPTO_memcmp.  The handshake
 * proves that the peer holds the key; a caller that needs the stream itself
 * protected authenticates its frames with the session key.
 *
 * The magic and version are checked byte by byte as they arrive, so a
 * stranger (an XMPP client, an HTTP probe) is refused at its first byte
 * rather than after a timeout.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "common.h"

#define AUTH_MAGIC		"JHA-AUTH"
#define AUTH_MAGIC_LEN		8
#define AUTH_VERSION		1
#define AUTH_NONCE_LEN		32
#define AUTH_HELLO_LEN		(AUTH_MAGIC_LEN + 2 + AUTH_NONCE_LEN)
#define AUTH_PROOF_LEN		32
#define AUTH_ROLE_CLIENT	'C'
#define AUTH_ROLE_SERVER	'S'
#define AUTH_LABEL_PROOF	"JHA-AUTH proof"
#define AUTH_LABEL_SESSION	"JHA-AUTH session"

#define AUTH_ERR_STRANGER	"peer is not a jabber-ha node or a different version"
#define AUTH_ERR_CLOSED		"peer closed the connection during authentication"

enum hs_state { HS_HELLO, HS_PROOF, HS_DONE, HS_FAIL };

struct auth_hs {
	unsigned char	 key[AUTH_KEY_MAX];
	size_t		 keylen;
	enum auth_role	 role;
	enum hs_state	 state;
	unsigned char	 nonce[AUTH_NONCE_LEN];
	unsigned char	 peer_nonce[AUTH_NONCE_LEN];
	unsigned char	 in[AUTH_HELLO_LEN];	/* the peer's hello, then its proof */
	size_t		 inlen;
	/* Appended to, never rewritten: pointers handed out stay valid. */
	unsigned char	 out[AUTH_HELLO_LEN + AUTH_PROOF_LEN];
	size_t		 outlen, outsent;
	unsigned char	 session[AUTH_SESSION_KEY_LEN];
	char		 err[200];
};

/* ---- the cluster key ---- */

static int
key_read(int fd, const char *path, unsigned char *dst, size_t *len,
    char *err, size_t errlen)
{
	unsigned char	 extra;
	ssize_t		 n;

	*len = 0;
	while (*len < AUTH_KEY_MAX) {
		n = read(fd, dst + *len, AUTH_KEY_MAX - *len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			return -1;
		}
		if (n == 0)
			return 0;
		*len += (size_t)n;
	}
	/* The file grew past the limit since fstat. */
	if (read(fd, &extra, 1) > 0) {
		snprintf(err, errlen, "%s: key is longer than %d bytes", path,
		    AUTH_KEY_MAX);
		return -1;
	}
	return 0;
}

static int
key_check_size(const char *path, long long size, char *err, size_t errlen)
{
	if (size < AUTH_KEY_MIN) {
		snprintf(err, errlen, "%s: key is %lld bytes; at least %d random "
		    "bytes are needed (head -c %d /dev/urandom > %s)", path, size,
		    AUTH_KEY_MIN, AUTH_KEY_MIN, path);
		return -1;
	}
	if (size > AUTH_KEY_MAX) {
		snprintf(err, errlen, "%s: key is %lld bytes; at most %d are "
		    "allowed (head -c %d /dev/urandom > %s)", path, size,
		    AUTH_KEY_MAX, AUTH_KEY_MIN, path);
		return -1;
	}
	return 0;
}

static int
key_check_file(int fd, const char *path, char *err, size_t errlen)
{
	struct stat	 st;

	if (fstat(fd, &st) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		return -1;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(err, errlen, "%s: mode %04o is too open; chmod 600 %s",
		    path, (unsigned)(st.st_mode & 07777), path);
		return -1;
	}
	return key_check_size(path, (long long)st.st_size, err, errlen);
}

/* KEY is left as it was unless the whole file was acceptable. */
int
auth_key_load(const char *path, struct auth_key *key, char *err, size_t errlen)
{
	struct auth_key	 tmp;
	int		 fd;

	if (path == NULL || *path == '\0') {
		snprintf(err, errlen, "no cluster key file given");
		return -1;
	}
	/* O_NONBLOCK: a FIFO planted at PATH must not hang start-up. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd == -1) {
		if (errno == ELOOP)
			snprintf(err, errlen, "%s: is a symbolic link; name the "
			    "key file itself", path);
		else
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (key_check_file(fd, path, err, errlen) == -1 ||
	    key_read(fd, path, tmp.bytes, &tmp.len, err, errlen) == -1 ||
	    key_check_size(path, (long long)tmp.len, err, errlen) == -1)
		goto fail;
	close(fd);
	memcpy(key->bytes, tmp.bytes, tmp.len);
	key->len = tmp.len;
	OPENSSL_cleanse(&tmp, sizeof(tmp));
	return 0;
fail:
	close(fd);
	OPENSSL_cleanse(&tmp, sizeof(tmp));
	return -1;
}

/* ---- the handshake state machine ---- */

static enum auth_status
hs_fail(struct auth_hs *hs, const char *fmt, ...) PRINTFLIKE(2, 3);

static enum auth_status
hs_fail(struct auth_hs *hs, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(hs->err, sizeof(hs->err), fmt, ap);
	va_end(ap);
	hs->state = HS_FAIL;
	return AUTH_FAIL;
}

static unsigned char
hs_role_byte(enum auth_role role)
{
	return role == AUTH_CLIENT ? AUTH_ROLE_CLIENT : AUTH_ROLE_SERVER;
}

/* HMAC-SHA256(key, label || [role] || client_nonce || server_nonce); role 0: none. */
static int
hs_mac(const struct auth_hs *hs, const char *label, unsigned char role,
    unsigned char out[AUTH_PROOF_LEN])
{
	unsigned char	 msg[32 + 1 + 2 * AUTH_NONCE_LEN];
	const unsigned char *cn, *sn;
	size_t		 n;
	unsigned int	 outlen = 0;

	cn = hs->role == AUTH_CLIENT ? hs->nonce : hs->peer_nonce;
	sn = hs->role == AUTH_CLIENT ? hs->peer_nonce : hs->nonce;
	n = strlen(label);
	memcpy(msg, label, n);
	if (role != 0)
		msg[n++] = role;
	memcpy(msg + n, cn, AUTH_NONCE_LEN);
	memcpy(msg + n + AUTH_NONCE_LEN, sn, AUTH_NONCE_LEN);
	n += 2 * AUTH_NONCE_LEN;
	if (HMAC(EVP_sha256(), hs->key, (int)hs->keylen, msg, n, out,
	    &outlen) == NULL || outlen != AUTH_PROOF_LEN)
		return -1;
	return 0;
}

struct auth_hs *
auth_hs_new(const struct auth_key *key, enum auth_role role)
{
	struct auth_hs	*hs;

	hs = xcalloc(1, sizeof(*hs));
	hs->role = role;
	hs->state = HS_HELLO;
	if (role != AUTH_CLIENT && role != AUTH_SERVER) {
		hs_fail(hs, "internal error: unknown authentication role %d",
		    (int)role);
		return hs;
	}
	if (key == NULL || key->len < AUTH_KEY_MIN || key->len > AUTH_KEY_MAX) {
		hs_fail(hs, "no usable cluster key loaded");
		return hs;
	}
	memcpy(hs->key, key->bytes, key->len);
	hs->keylen = key->len;
	if (RAND_bytes(hs->nonce, AUTH_NONCE_LEN) != 1) {
		hs_fail(hs, "cannot get random bytes for the authentication nonce");
		return hs;
	}
	memcpy(hs->out, AUTH_MAGIC, AUTH_MAGIC_LEN);
	hs->out[AUTH_MAGIC_LEN] = AUTH_VERSION;
	hs->out[AUTH_MAGIC_LEN + 1] = hs_role_byte(role);
	memcpy(hs->out + AUTH_MAGIC_LEN + 2, hs->nonce, AUTH_NONCE_LEN);
	hs->outlen = AUTH_HELLO_LEN;
	return hs;
}

void
auth_hs_free(struct auth_hs *hs)
{
	if (hs == NULL)
		return;
	OPENSSL_cleanse(hs, sizeof(*hs));
	free(hs);
}

/*
 * The bytes stay valid until auth_hs_free.  What was produced before a
 * failure is still handed out: sending our hello or proof then reveals
 * nothing (a proof binds both nonces) and lets the peer see the same error
 * instead of a timeout.
 */
size_t
auth_hs_output(struct auth_hs *hs, const unsigned char **p)
{
	size_t	 n;

	*p = hs->out + hs->outsent;
	n = hs->outlen - hs->outsent;
	hs->outsent = hs->outlen;
	return n;
}

/* How many more bytes the current message needs; 0 when none are wanted. */
static size_t
hs_need(const struct auth_hs *hs)
{
	if (hs->state == HS_HELLO)
		return AUTH_HELLO_LEN - hs->inlen;
	if (hs->state == HS_PROOF)
		return AUTH_PROOF_LEN - hs->inlen;
	return 0;
}

/* Magic and version, checked from byte FROM on as they arrive. */
static enum auth_status
hs_check_prefix(struct auth_hs *hs, size_t from)
{
	size_t	 i;

	for (i = from; i < hs->inlen && i < AUTH_MAGIC_LEN; i++)
		if (hs->in[i] != (unsigned char)AUTH_MAGIC[i])
			return hs_fail(hs, AUTH_ERR_STRANGER);
	if (hs->inlen > AUTH_MAGIC_LEN && from <= AUTH_MAGIC_LEN &&
	    hs->in[AUTH_MAGIC_LEN] != AUTH_VERSION)
		return hs_fail(hs, AUTH_ERR_STRANGER " (it speaks authentication "
		    "version %u, this node %u)", hs->in[AUTH_MAGIC_LEN],
		    AUTH_VERSION);
	return AUTH_MORE;
}

static enum auth_status
hs_hello_done(struct auth_hs *hs)
{
	unsigned char	 peer_role = hs->in[AUTH_MAGIC_LEN + 1];
	unsigned char	*proof;

	memcpy(hs->peer_nonce, hs->in + AUTH_MAGIC_LEN + 2, AUTH_NONCE_LEN);
	if (CRYPTO_memcmp(hs->peer_nonce, hs->nonce, AUTH_NONCE_LEN) == 0)
		return hs_fail(hs, "peer sent our own nonce back: a reflected "
		    "handshake, refused");
	if (peer_role != AUTH_ROLE_CLIENT && peer_role != AUTH_ROLE_SERVER)
		return hs_fail(hs, AUTH_ERR_STRANGER " (unknown role 0x%02x)",
		    peer_role);
	if (peer_role == hs_role_byte(hs->role))
		return hs_fail(hs, "both sides claim the %s role",
		    hs->role == AUTH_CLIENT ? "client" : "server");
	proof = hs->out + hs->outlen;
	if (hs_mac(hs, AUTH_LABEL_PROOF, hs_role_byte(hs->role), proof) == -1)
		return hs_fail(hs, "HMAC-SHA256 failed");
	hs->outlen += AUTH_PROOF_LEN;
	hs->state = HS_PROOF;
	hs->inlen = 0;
	return AUTH_MORE;
}

static enum auth_status
hs_proof_done(struct auth_hs *hs)
{
	unsigned char	 want[AUTH_PROOF_LEN];
	unsigned char	 peer_role;
	int		 bad;

	peer_role = hs->role == AUTH_CLIENT ? AUTH_ROLE_SERVER : AUTH_ROLE_CLIENT;
	if (hs_mac(hs, AUTH_LABEL_PROOF, peer_role, want) == -1)
		return hs_fail(hs, "HMAC-SHA256 failed");
	bad = CRYPTO_memcmp(want, hs->in, AUTH_PROOF_LEN);
	OPENSSL_cleanse(want, sizeof(want));
	if (bad)
		return hs_fail(hs, "authentication failed: cluster keys differ");
	if (hs_mac(hs, AUTH_LABEL_SESSION, 0, hs->session) == -1)
		return hs_fail(hs, "HMAC-SHA256 failed");
	hs->state = HS_DONE;
	return AUTH_DONE;
}

/* Takes only what the handshake needs: bytes after the peer's proof stay unread. */
enum auth_status
auth_hs_input(struct auth_hs *hs, const unsigned char *p, size_t len,
    size_t *consumed)
{
	enum auth_status st = AUTH_MORE;
	size_t		 n, from, used = 0;

	while (used < len && (hs->state == HS_HELLO || hs->state == HS_PROOF)) {
		n = hs_need(hs);
		if (n > len - used)
			n = len - used;
		from = hs->inlen;
		memcpy(hs->in + hs->inlen, p + used, n);
		hs->inlen += n;
		used += n;
		if (hs->state == HS_HELLO) {
			if ((st = hs_check_prefix(hs, from)) == AUTH_FAIL)
				break;
			if (hs->inlen == AUTH_HELLO_LEN)
				st = hs_hello_done(hs);
		} else if (hs->inlen == AUTH_PROOF_LEN)
			st = hs_proof_done(hs);
	}
	if (consumed != NULL)
		*consumed = used;
	if (hs->state == HS_DONE)
		return AUTH_DONE;
	if (hs->state == HS_FAIL)
		return AUTH_FAIL;
	return st;
}

const char *
auth_hs_error(const struct auth_hs *hs)
{
	if (hs->state == HS_FAIL)
		return hs->err;
	if (hs->state == HS_DONE)
		return "";
	return "authentication not finished";
}

int
auth_hs_session_key(const struct auth_hs *hs,
    unsigned char out[AUTH_SESSION_KEY_LEN])
{
	if (hs->state != HS_DONE)
		return -1;
	memcpy(out, hs->session, AUTH_SESSION_KEY_LEN);
	return 0;
}

/* ---- blocking, on a file descriptor ---- */

static int64_t
auth_now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads no further than the handshake, so the caller's protocol bytes stay queued. */
static enum auth_status
fd_read(int fd, struct auth_hs *hs, char *err, size_t errlen)
{
	unsigned char	 buf[AUTH_HELLO_LEN];
	size_t		 used;
	ssize_t		 n;

	n = recv(fd, buf, hs_need(hs), MSG_DONTWAIT);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return AUTH_MORE;
	if (n == -1 || n == 0) {
		if (n == 0 || errno == ECONNRESET)
			snprintf(err, errlen, AUTH_ERR_CLOSED);
		else
			snprintf(err, errlen, "authentication: recv: %s",
			    strerror(errno));
		return AUTH_FAIL;
	}
	if (auth_hs_input(hs, buf, (size_t)n, &used) == AUTH_FAIL) {
		snprintf(err, errlen, "%s", auth_hs_error(hs));
		return AUTH_FAIL;
	}
	return hs->state == HS_DONE ? AUTH_DONE : AUTH_MORE;
}

static ssize_t
fd_write(int fd, const unsigned char *p, size_t len, char *err, size_t errlen)
{
	ssize_t	 n;

	n = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	if (errno == EPIPE || errno == ECONNRESET)
		snprintf(err, errlen, AUTH_ERR_CLOSED);
	else
		snprintf(err, errlen, "authentication: send: %s", strerror(errno));
	return -1;
}

/* A peer's last bytes (garbage, then close) explain more than EPIPE does. */
static void
fd_read_rest(int fd, struct auth_hs *hs, char *err, size_t errlen)
{
	unsigned char	 buf[AUTH_HELLO_LEN];
	size_t		 need, used;
	ssize_t		 n;

	while ((need = hs_need(hs)) > 0 &&
	    (n = recv(fd, buf, need, MSG_DONTWAIT)) > 0)
		auth_hs_input(hs, buf, (size_t)n, &used);
	if (hs->state == HS_FAIL)
		snprintf(err, errlen, "%s", hs->err);
}

/* After a failure: what is pending, if the socket takes it now, and no more. */
static void
fd_flush_once(int fd, struct auth_hs *hs, const unsigned char *out,
    size_t outlen)
{
	unsigned char	 buf[AUTH_HELLO_LEN + AUTH_PROOF_LEN];
	const unsigned char *p;
	size_t		 n;

	if (outlen > 0)
		memcpy(buf, out, outlen);
	n = auth_hs_output(hs, &p);
	memcpy(buf + outlen, p, n);
	(void)send(fd, buf, outlen + n, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* The poll revents, 0 on EINTR, or -1 and ERR when time is up or FD is bad. */
static int
fd_wait(int fd, short events, int64_t deadline, int timeout_ms, char *err,
    size_t errlen)
{
	struct pollfd	 pfd = { .fd = fd, .events = events };
	int64_t		 left;

	if ((left = deadline - auth_now_ms()) <= 0) {
		snprintf(err, errlen, "authentication timed out after %d ms",
		    timeout_ms);
		return -1;
	}
	if (fd < 0 || (poll(&pfd, 1, (int)left) == -1 && errno != EINTR)) {
		snprintf(err, errlen, "authentication: poll: %s",
		    strerror(fd < 0 ? EBADF : errno));
		return -1;
	}
	if (pfd.revents & POLLNVAL) {
		snprintf(err, errlen, "authentication: poll: %s", strerror(EBADF));
		return -1;
	}
	return pfd.revents;
}

int
auth_handshake_fd(int fd, const struct auth_key *key, enum auth_role role,
    int timeout_ms, unsigned char session_key[AUTH_SESSION_KEY_LEN],
    char *err, size_t errlen)
{
	struct auth_hs	*hs;
	const unsigned char *out = NULL;
	enum auth_status st = AUTH_MORE;
	size_t		 outlen = 0;
	ssize_t		 n;
	int64_t		 deadline = auth_now_ms() + timeout_ms;
	int		 rv = -1, revents;

	hs = auth_hs_new(key, role);
	if (hs->state == HS_FAIL) {
		snprintf(err, errlen, "%s", auth_hs_error(hs));
		goto fail;
	}
	for (;;) {
		if (outlen == 0)
			outlen = auth_hs_output(hs, &out);
		if (st == AUTH_DONE && outlen == 0)
			break;
		revents = fd_wait(fd, (outlen > 0 ? POLLOUT : 0) |
		    (st == AUTH_MORE ? POLLIN : 0), deadline, timeout_ms, err,
		    errlen);
		if (revents == -1)
			goto fail;
		/* Write first, so the peer learns its failure from us too. */
		if (outlen > 0 && (revents & (POLLOUT | POLLHUP | POLLERR))) {
			if ((n = fd_write(fd, out, outlen, err, errlen)) == -1) {
				fd_read_rest(fd, hs, err, errlen);
				goto fail;
			}
			out += n;
			outlen -= (size_t)n;
		}
		if (st == AUTH_MORE && (revents & (POLLIN | POLLHUP | POLLERR)) &&
		    (st = fd_read(fd, hs, err, errlen)) == AUTH_FAIL) {
			fd_flush_once(fd, hs, out, outlen);
			goto fail;
		}
	}
	auth_hs_session_key(hs, session_key);
	rv = 0;
fail:
	auth_hs_free(hs);
	return rv;
}

/* ---- on a libevent bufferevent ---- */

struct auth_bev {
	struct bufferevent	*bev;
	struct auth_hs		*hs;
	struct event		*timer;
	auth_done_cb		 cb;
	void			*arg;
	int			 timeout_ms;
	int			 draining;	/* failed; our last bytes leaving */
};

/* How long a failed handshake waits for its last bytes to leave. */
#define AUTH_DRAIN_MS	250

static void	auth_bev_read_cb(struct bufferevent *, void *);
static void	auth_bev_drained_cb(struct bufferevent *, void *);
static void	auth_bev_event_cb(struct bufferevent *, short, void *);
static void	auth_bev_timeout_cb(evutil_socket_t, short, void *);

static void
auth_bev_free(struct auth_bev *ab)
{
	if (ab->timer != NULL)
		event_free(ab->timer);
	auth_hs_free(ab->hs);
	free(ab);
}

static int	auth_bev_flush(struct auth_bev *);

/*
 * A protocol failure (keys differ, both clients) may leave our hello or proof
 * queued: let it leave before the caller, who may free the bufferevent, is
 * told, so that the peer reports the same cause rather than a timeout.
 */
static int
auth_bev_drain(struct auth_bev *ab)
{
	struct timeval	 tv = { 0, AUTH_DRAIN_MS * 1000 };

	if (auth_bev_flush(ab) == -1 ||
	    evbuffer_get_length(bufferevent_get_output(ab->bev)) == 0)
		return -1;
	ab->draining = 1;
	bufferevent_setcb(ab->bev, NULL, auth_bev_drained_cb, auth_bev_event_cb,
	    ab);
	evtimer_add(ab->timer, &tv);
	return 0;
}

/*
 * Hands the bufferevent back with no callbacks of ours left, then calls the
 * caller's callback last, so it may free the bufferevent.  Bytes the peer
 * sent after its proof are still in the input buffer; the read callback the
 * caller installs is called once for them (deferred), as libevent would not
 * call it again until more bytes arrive.
 */
static void
auth_bev_finish(struct auth_bev *ab, const char *reason)
{
	struct bufferevent	*bev = ab->bev;
	auth_done_cb		 cb = ab->cb;
	void			*arg = ab->arg;
	unsigned char		 key[AUTH_SESSION_KEY_LEN];
	char			 err[256];
	int			 ok;

	if (reason == NULL && ab->hs->state == HS_FAIL && !ab->draining &&
	    auth_bev_drain(ab) == 0)
		return;
	ok = reason == NULL && auth_hs_session_key(ab->hs, key) == 0;
	if (!ok)
		snprintf(err, sizeof(err), "%s",
		    reason != NULL ? reason : auth_hs_error(ab->hs));
	if (ok && evbuffer_get_length(bufferevent_get_input(bev)) > 0)
		bufferevent_trigger(bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	auth_bev_free(ab);
	cb(bev, ok, ok ? NULL : err, ok ? key : NULL, arg);
	OPENSSL_cleanse(key, sizeof(key));
}

static int
auth_bev_flush(struct auth_bev *ab)
{
	const unsigned char	*p;
	size_t			 n;

	if ((n = auth_hs_output(ab->hs, &p)) == 0)
		return 0;
	return bufferevent_write(ab->bev, p, n);
}

/* Consumes only the handshake's bytes from the input buffer. */
static enum auth_status
auth_bev_process(struct auth_bev *ab)
{
	struct evbuffer	*in = bufferevent_get_input(ab->bev);
	unsigned char	 buf[AUTH_HELLO_LEN];
	enum auth_status st = AUTH_MORE;
	size_t		 n, used;

	if (ab->hs->state == HS_DONE)
		return AUTH_DONE;
	if (ab->hs->state == HS_FAIL)
		return AUTH_FAIL;
	while (st == AUTH_MORE) {
		n = hs_need(ab->hs);
		if (n > evbuffer_get_length(in))
			n = evbuffer_get_length(in);
		if (n == 0)
			break;
		if (evbuffer_copyout(in, buf, n) != (ev_ssize_t)n)
			return AUTH_FAIL;
		st = auth_hs_input(ab->hs, buf, n, &used);
		evbuffer_drain(in, used);
		if (st != AUTH_FAIL && auth_bev_flush(ab) == -1)
			return AUTH_FAIL;
	}
	return st;
}

/* 1 when the handshake ended: AB is gone and the caller was told. */
static int
auth_bev_step(struct auth_bev *ab)
{
	enum auth_status st;

	if ((st = auth_bev_process(ab)) == AUTH_MORE)
		return 0;
	if (st == AUTH_DONE)
		auth_bev_finish(ab, NULL);
	else
		auth_bev_finish(ab, ab->hs->state == HS_FAIL ? NULL :
		    "authentication: out of buffer space");
	return 1;
}

static void
auth_bev_read_cb(struct bufferevent *bev, void *arg)
{
	auth_bev_step(arg);
}

static void
auth_bev_drained_cb(struct bufferevent *bev, void *arg)
{
	auth_bev_finish(arg, NULL);
}

static void
auth_bev_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct auth_bev	*ab = arg;
	char		 reason[200];
	int		 error = EVUTIL_SOCKET_ERROR();

	if (what & BEV_EVENT_CONNECTED)
		return;		/* the hello is queued and leaves now */
	/* Whatever arrived with the close may still finish or explain it. */
	if (auth_bev_step(ab))
		return;
	if (what & BEV_EVENT_EOF)
		snprintf(reason, sizeof(reason), AUTH_ERR_CLOSED);
	else if (what & BEV_EVENT_ERROR)
		snprintf(reason, sizeof(reason), "connection error during "
		    "authentication: %s", evutil_socket_error_to_string(error));
	else if (what & BEV_EVENT_TIMEOUT)
		snprintf(reason, sizeof(reason), "authentication timed out "
		    "(connection %s timeout)", (what & BEV_EVENT_READING) ?
		    "read" : "write");
	else
		snprintf(reason, sizeof(reason), "authentication: unexpected "
		    "connection event 0x%x", (unsigned)what);
	auth_bev_finish(ab, reason);
}

static void
auth_bev_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auth_bev	*ab = arg;
	char		 reason[100];

	if (ab->draining || ab->hs->state == HS_FAIL) {
		auth_bev_finish(ab, NULL);
		return;
	}
	snprintf(reason, sizeof(reason), "authentication timed out after %d ms",
	    ab->timeout_ms);
	auth_bev_finish(ab, reason);
}

/* CB is always called later from the loop, never from inside this call. */
void
auth_bev_start(struct bufferevent *bev, const struct auth_key *key,
    enum auth_role role, int timeout_ms, auth_done_cb cb, void *arg)
{
	struct auth_bev	*ab;
	struct timeval	 tv = { 0, 0 };

	ab = xcalloc(1, sizeof(*ab));
	ab->bev = bev;
	ab->cb = cb;
	ab->arg = arg;
	ab->timeout_ms = timeout_ms;
	ab->hs = auth_hs_new(key, role);
	ab->timer = evtimer_new(bufferevent_get_base(bev), auth_bev_timeout_cb, ab);
	if (ab->timer == NULL)
		fatalx("auth: out of memory creating a timer");
	bufferevent_setcb(bev, auth_bev_read_cb, NULL, auth_bev_event_cb, ab);
	if (ab->hs->state != HS_FAIL && auth_bev_flush(ab) == -1)
		hs_fail(ab->hs, "authentication: cannot queue the hello");
	/* A hopeless start (no key) reports through the timer, at once. */
	if (ab->hs->state != HS_FAIL && timeout_ms > 0) {
		tv.tv_sec = timeout_ms / 1000;
		tv.tv_usec = (timeout_ms % 1000) * 1000;
	}
	evtimer_add(ab->timer, &tv);
	if (ab->hs->state == HS_FAIL)
		return;
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	/* Bytes already buffered would otherwise wait for the next read. */
	if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
		bufferevent_trigger(bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
}

void
auth_bev_cancel(struct bufferevent *bev)
{
	bufferevent_event_cb	 eventcb;
	void			*arg;

	bufferevent_getcb(bev, NULL, NULL, &eventcb, &arg);
	if (eventcb != auth_bev_event_cb)
		return;
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	auth_bev_free(arg);
}
