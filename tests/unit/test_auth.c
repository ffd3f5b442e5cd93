/*
 * test_auth.c: the cluster key loader and the peer handshake, over real files,
 * real socketpairs, threads and a real libevent loop.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common.h"

#define HELLO_LEN	42
#define PROOF_LEN	32
#define EXTRA		"FIRST-FRAME-AFTER-AUTH\n"

static char	 tmpdir[64];

/* ---- helpers ---- */

static int64_t
now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
key_fill(struct auth_key *key, unsigned char seed)
{
	for (size_t i = 0; i < 64; i++)
		key->bytes[i] = (unsigned char)(seed * 31 + i * 7 + 1);
	key->len = 64;
}

static void
write_file(const char *path, const void *p, size_t len, mode_t mode)
{
	int	 fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static int
write_all(int fd, const void *p, size_t len)
{
	const unsigned char *c = p;
	ssize_t	 n;

	while (len > 0) {
		if ((n = send(fd, c, len, MSG_NOSIGNAL)) <= 0)
			return -1;
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
read_all(int fd, void *p, size_t len)
{
	unsigned char *c = p;
	ssize_t	 n;

	while (len > 0) {
		if ((n = read(fd, c, len)) <= 0)
			return -1;
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
setup_tmpdir(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_auth.XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown_tmpdir(void **state)
{
	char	 cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- auth_key_load ---- */

static void
key_load_accepts_private_key_of_raw_bytes(void **state)
{
	unsigned char	 raw[40];
	struct auth_key	 key;
	char		 path[128], err[256];

	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (unsigned char)(i == 5 ? '\n' : i == 6 ? 0 : 200 + i);
	snprintf(path, sizeof(path), "%s/good.key", tmpdir);
	write_file(path, raw, sizeof(raw), 0600);
	assert_int_equal(auth_key_load(path, &key, err, sizeof(err)), 0);
	assert_int_equal(key.len, sizeof(raw));
	assert_memory_equal(key.bytes, raw, sizeof(raw));

	write_file(path, raw, sizeof(raw), 0400);
	assert_int_equal(auth_key_load(path, &key, err, sizeof(err)), 0);
}

static void
key_load_refuses_group_readable_key_and_says_chmod(void **state)
{
	unsigned char	 raw[32] = { 1 };
	struct auth_key	 key;
	char		 path[128], err[256], want[400];

	key_fill(&key, 9);
	snprintf(path, sizeof(path), "%s/open.key", tmpdir);
	write_file(path, raw, sizeof(raw), 0644);
	assert_int_equal(auth_key_load(path, &key, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: mode 0644 is too open; chmod 600 %s",
	    path, path);
	assert_string_equal(err, want);
	/* A refused key leaves the loaded one alone (reload keeps the old key). */
	assert_int_equal(key.len, 64);
	assert_int_equal(key.bytes[0], (unsigned char)(9 * 31 + 1));

	write_file(path, raw, sizeof(raw), 0604);
	assert_int_equal(auth_key_load(path, &key, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "mode 0604 is too open"));
}

static void
key_load_refuses_short_key_and_says_how_to_make_one(void **state)
{
	unsigned char	 raw[31] = { 0 };
	struct auth_key	 key;
	char		 path[128], err[256], want[400];

	snprintf(path, sizeof(path), "%s/short.key", tmpdir);
	write_file(path, raw, sizeof(raw), 0600);
	assert_int_equal(auth_key_load(path, &key, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: key is 31 bytes; at least 32 random "
	    "bytes are needed (head -c 32 /dev/urandom > %s)", path, path);
	assert_string_equal(err, want);

	write_file(path, raw, 0, 0600);
	assert_int_equal(auth_key_load(path, &key, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "key is 0 bytes"));
}

static void
key_load_refuses_oversized_key(void **state)
{
	static unsigned char raw[AUTH_KEY_MAX + 1];
	struct auth_key	 key;
	char		 path[128], err[256];

	snprintf(path, sizeof(path), "%s/big.key", tmpdir);
	write_file(path, raw, sizeof(raw), 0600);
	assert_int_equal(auth_key_load(path, &key, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "key is 4097 bytes; at most 4096"));
	write_file(path, raw, AUTH_KEY_MAX, 0600);
	assert_int_equal(auth_key_load(path, &key, err, sizeof(err)), 0);
	assert_int_equal(key.len, AUTH_KEY_MAX);
}

static void
key_load_refuses_symlink(void **state)
{
	unsigned char	 raw[32] = { 7 };
	struct auth_key	 key;
	char		 path[128], link[128], err[256];

	snprintf(path, sizeof(path), "%s/real.key", tmpdir);
	snprintf(link, sizeof(link), "%s/link.key", tmpdir);
	write_file(path, raw, sizeof(raw), 0600);
	unlink(link);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(auth_key_load(link, &key, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "symbolic link"));
	assert_non_null(strstr(err, link));
}

static void
key_load_refuses_missing_file_and_directory(void **state)
{
	struct auth_key	 key;
	char		 path[128], err[256];

	snprintf(path, sizeof(path), "%s/nope.key", tmpdir);
	assert_int_equal(auth_key_load(path, &key, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "No such file or directory"));

	snprintf(path, sizeof(path), "%s/dir.key", tmpdir);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(auth_key_load(path, &key, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a regular file"));

	assert_int_equal(auth_key_load("", &key, err, sizeof(err)), -1);
}

/* ---- auth_handshake_fd, two threads ---- */

struct peer {
	int		 fd;
	struct auth_key	 key;
	enum auth_role	 role;
	int		 timeout_ms;
	int		 rv;
	unsigned char	 sk[AUTH_SESSION_KEY_LEN];
	char		 err[256];
	int64_t		 elapsed_ms;
};

static void *
peer_thread(void *arg)
{
	struct peer	*p = arg;
	int64_t		 t0 = now_ms();

	p->rv = auth_handshake_fd(p->fd, &p->key, p->role, p->timeout_ms, p->sk,
	    p->err, sizeof(p->err));
	p->elapsed_ms = now_ms() - t0;
	return NULL;
}

static void
peer_init(struct peer *p, int fd, unsigned char seed, enum auth_role role)
{
	memset(p, 0, sizeof(*p));
	p->fd = fd;
	key_fill(&p->key, seed);
	p->role = role;
	p->timeout_ms = 2000;
	p->rv = 99;
}

/* Runs A and B on the two ends of a socketpair; returns with both done. */
static void
run_pair(struct peer *a, struct peer *b, unsigned char seed_a,
    unsigned char seed_b, enum auth_role ra, enum auth_role rb)
{
	pthread_t	 ta, tb;
	int		 sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	peer_init(a, sv[0], seed_a, ra);
	peer_init(b, sv[1], seed_b, rb);
	assert_int_equal(pthread_create(&ta, NULL, peer_thread, a), 0);
	assert_int_equal(pthread_create(&tb, NULL, peer_thread, b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	close(sv[0]);
	close(sv[1]);
}

static void
handshake_same_key_agrees_on_session_key(void **state)
{
	struct peer	 a, b, c, d;

	run_pair(&a, &b, 1, 1, AUTH_CLIENT, AUTH_SERVER);
	assert_int_equal(a.rv, 0);
	assert_int_equal(b.rv, 0);
	assert_memory_equal(a.sk, b.sk, AUTH_SESSION_KEY_LEN);

	/* Fresh nonces every time: no two sessions share a key. */
	run_pair(&c, &d, 1, 1, AUTH_CLIENT, AUTH_SERVER);
	assert_int_equal(c.rv, 0);
	assert_int_equal(d.rv, 0);
	assert_memory_equal(c.sk, d.sk, AUTH_SESSION_KEY_LEN);
	assert_memory_not_equal(a.sk, c.sk, AUTH_SESSION_KEY_LEN);
}

static void
handshake_different_keys_fail_on_both_sides(void **state)
{
	struct peer	 a, b;

	run_pair(&a, &b, 1, 2, AUTH_CLIENT, AUTH_SERVER);
	assert_int_equal(a.rv, -1);
	assert_int_equal(b.rv, -1);
	assert_string_equal(a.err, "authentication failed: cluster keys differ");
	assert_string_equal(b.err, "authentication failed: cluster keys differ");
	assert_true(a.elapsed_ms < 1000);
	assert_true(b.elapsed_ms < 1000);
}

static void
handshake_refuses_two_clients(void **state)
{
	struct peer	 a, b;

	run_pair(&a, &b, 1, 1, AUTH_CLIENT, AUTH_CLIENT);
	assert_int_equal(a.rv, -1);
	assert_int_equal(b.rv, -1);
	assert_string_equal(a.err, "both sides claim the client role");
	assert_string_equal(b.err, "both sides claim the client role");

	run_pair(&a, &b, 1, 1, AUTH_SERVER, AUTH_SERVER);
	assert_int_equal(a.rv, -1);
	assert_string_equal(b.err, "both sides claim the server role");
}

/* A hostile or foreign peer scripted by the test, on the other end of fd. */
enum script { S_GARBAGE, S_SILENT, S_REFLECT, S_REFLECT_PROOF, S_TRUNCATED,
	S_OLD_VERSION };

struct scripted {
	int		 fd;
	enum script	 what;
	unsigned char	 seen_after[64];	/* what our side sent after its hello */
	ssize_t		 seen_after_len;
};

static void *
scripted_thread(void *arg)
{
	struct scripted	*s = arg;
	unsigned char	 hello[HELLO_LEN], proof[PROOF_LEN];
	const char	*xml = "<?xml version='1.0'?><stream:stream to='example.test' "
	    "xmlns='jabber:client' version='1.0'>";

	switch (s->what) {
	case S_GARBAGE:
		write_all(s->fd, xml, strlen(xml));
		break;
	case S_SILENT:
		sleep(1);
		break;
	case S_REFLECT:
		/* Our hello back to us verbatim; then whatever else we send. */
		if (read_all(s->fd, hello, HELLO_LEN) == 0)
			write_all(s->fd, hello, HELLO_LEN);
		s->seen_after_len = read(s->fd, s->seen_after,
		    sizeof(s->seen_after));
		break;
	case S_REFLECT_PROOF:
		/* A server hello with a nonce of its own, then our proof back. */
		if (read_all(s->fd, hello, HELLO_LEN) == -1)
			break;
		hello[9] = 'S';
		hello[10] ^= 0x55;
		write_all(s->fd, hello, HELLO_LEN);
		if (read_all(s->fd, proof, PROOF_LEN) == 0)
			write_all(s->fd, proof, PROOF_LEN);
		break;
	case S_TRUNCATED:
		write_all(s->fd, "JHA-AUTH\001S0123456789", 20);
		break;
	case S_OLD_VERSION:
		write_all(s->fd, "JHA-AUTH\002S", 10);
		sleep(1);
		break;
	}
	shutdown(s->fd, SHUT_RDWR);
	return NULL;
}

static void
run_scripted(struct peer *a, struct scripted *s, enum script what,
    int timeout_ms)
{
	pthread_t	 ta, ts;
	int		 sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	peer_init(a, sv[0], 1, AUTH_CLIENT);
	a->timeout_ms = timeout_ms;
	memset(s, 0, sizeof(*s));
	s->fd = sv[1];
	s->what = what;
	assert_int_equal(pthread_create(&ta, NULL, peer_thread, a), 0);
	assert_int_equal(pthread_create(&ts, NULL, scripted_thread, s), 0);
	pthread_join(ta, NULL);
	/* Unblock a scripted peer still waiting for us. */
	shutdown(sv[0], SHUT_RDWR);
	pthread_join(ts, NULL);
	close(sv[0]);
	close(sv[1]);
}

static void
handshake_refuses_xml_client_at_once(void **state)
{
	struct peer	 a;
	struct scripted	 s;

	run_scripted(&a, &s, S_GARBAGE, 2000);
	assert_int_equal(a.rv, -1);
	assert_string_equal(a.err,
	    "peer is not a jabber-ha node or a different version");
	assert_true(a.elapsed_ms < 1000);
}

static void
handshake_refuses_other_version(void **state)
{
	struct peer	 a;
	struct scripted	 s;

	run_scripted(&a, &s, S_OLD_VERSION, 2000);
	assert_int_equal(a.rv, -1);
	assert_non_null(strstr(a.err,
	    "peer is not a jabber-ha node or a different version"));
	assert_non_null(strstr(a.err, "version 2"));
	assert_true(a.elapsed_ms < 900);
}

static void
handshake_times_out_on_silent_peer(void **state)
{
	struct peer	 a;
	struct scripted	 s;

	run_scripted(&a, &s, S_SILENT, 300);
	assert_int_equal(a.rv, -1);
	assert_string_equal(a.err, "authentication timed out after 300 ms");
	assert_true(a.elapsed_ms >= 290);
	assert_true(a.elapsed_ms < 800);
}

static void
handshake_refuses_reflected_hello_and_sends_no_proof(void **state)
{
	struct peer	 a;
	struct scripted	 s;

	run_scripted(&a, &s, S_REFLECT, 2000);
	assert_int_equal(a.rv, -1);
	assert_non_null(strstr(a.err, "reflected"));
	/* Nothing after the hello: a reflector learns no proof. */
	assert_true(s.seen_after_len <= 0);
}

static void
handshake_refuses_reflected_proof(void **state)
{
	struct peer	 a;
	struct scripted	 s;

	run_scripted(&a, &s, S_REFLECT_PROOF, 2000);
	assert_int_equal(a.rv, -1);
	assert_string_equal(a.err, "authentication failed: cluster keys differ");
}

static void
handshake_reports_truncated_hello_then_close(void **state)
{
	struct peer	 a;
	struct scripted	 s;

	run_scripted(&a, &s, S_TRUNCATED, 2000);
	assert_int_equal(a.rv, -1);
	assert_string_equal(a.err,
	    "peer closed the connection during authentication");
	assert_true(a.elapsed_ms < 1000);
}

static void
handshake_leaves_bytes_after_proof_in_socket(void **state)
{
	struct auth_hs	*hs;
	struct peer	 a;
	const unsigned char *p;
	unsigned char	 buf[HELLO_LEN + PROOF_LEN + sizeof(EXTRA)];
	size_t		 n, used;
	struct timeval	 rcv = { 2, 0 };
	pthread_t	 ta;
	int		 sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	peer_init(&a, sv[0], 1, AUTH_CLIENT);
	assert_int_equal(pthread_create(&ta, NULL, peer_thread, &a), 0);
	/* This side sends its hello, proof and first frame in one write. */
	hs = auth_hs_new(&a.key, AUTH_SERVER);
	assert_int_equal(read_all(sv[1], buf, HELLO_LEN), 0);
	assert_int_equal(auth_hs_input(hs, buf, HELLO_LEN, &used), AUTH_MORE);
	n = auth_hs_output(hs, &p);
	assert_int_equal(n, HELLO_LEN + PROOF_LEN);
	memcpy(buf, p, n);
	memcpy(buf + n, EXTRA, strlen(EXTRA));
	assert_int_equal(write_all(sv[1], buf, n + strlen(EXTRA)), 0);
	pthread_join(ta, NULL);
	assert_int_equal(a.rv, 0);
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &rcv,
	    sizeof(rcv)), 0);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(read_all(sv[0], buf, strlen(EXTRA)), 0);
	assert_string_equal((char *)buf, EXTRA);
	auth_hs_free(hs);
	close(sv[0]);
	close(sv[1]);
}

static void
handshake_on_closed_fd_fails_at_once(void **state)
{
	struct auth_key	 key;
	unsigned char	 sk[AUTH_SESSION_KEY_LEN];
	char		 err[256];
	int64_t		 t0 = now_ms();
	int		 sv[2];

	key_fill(&key, 1);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(auth_handshake_fd(sv[0], &key, AUTH_CLIENT, 2000, sk, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "Bad file descriptor"));
	assert_int_equal(auth_handshake_fd(-1, &key, AUTH_CLIENT, 2000, sk, err,
	    sizeof(err)), -1);
	assert_true(now_ms() - t0 < 500);
}

/* ---- the state machine ---- */

static enum auth_status
feed_bytewise(struct auth_hs *to, const unsigned char *p, size_t n)
{
	enum auth_status st = AUTH_MORE;
	size_t		 used;

	for (size_t i = 0; i < n; i++) {
		st = auth_hs_input(to, p + i, 1, &used);
		assert_int_equal(used, 1);
		if (i + 1 < n)
			assert_int_equal(st, AUTH_MORE);
	}
	return st;
}

static void
state_machine_completes_fed_one_byte_at_a_time(void **state)
{
	struct auth_key	 key;
	struct auth_hs	*c, *s;
	const unsigned char *p;
	unsigned char	 kc[AUTH_SESSION_KEY_LEN], ks[AUTH_SESSION_KEY_LEN];
	size_t		 n;

	key_fill(&key, 3);
	c = auth_hs_new(&key, AUTH_CLIENT);
	s = auth_hs_new(&key, AUTH_SERVER);
	assert_int_equal(auth_hs_session_key(c, kc), -1);

	n = auth_hs_output(c, &p);
	assert_int_equal(n, HELLO_LEN);
	assert_memory_equal(p, "JHA-AUTH\001C", 10);
	assert_int_equal(feed_bytewise(s, p, n), AUTH_MORE);
	assert_int_equal(auth_hs_output(c, &p), 0);	/* consumed */

	/* The server has the client's nonce: hello and proof both leave now. */
	n = auth_hs_output(s, &p);
	assert_int_equal(n, HELLO_LEN + PROOF_LEN);
	assert_int_equal(feed_bytewise(c, p, n), AUTH_DONE);

	n = auth_hs_output(c, &p);
	assert_int_equal(n, PROOF_LEN);
	assert_int_equal(feed_bytewise(s, p, n), AUTH_DONE);

	assert_int_equal(auth_hs_session_key(c, kc), 0);
	assert_int_equal(auth_hs_session_key(s, ks), 0);
	assert_memory_equal(kc, ks, sizeof(kc));
	assert_string_equal(auth_hs_error(c), "");
	auth_hs_free(c);
	auth_hs_free(s);
}

static void
state_machine_server_reveals_no_proof_before_client_hello(void **state)
{
	struct auth_key	 key;
	struct auth_hs	*s;
	const unsigned char *p;
	size_t		 used;

	key_fill(&key, 3);
	s = auth_hs_new(&key, AUTH_SERVER);
	assert_int_equal(auth_hs_output(s, &p), HELLO_LEN);
	assert_int_equal(auth_hs_input(s, (const unsigned char *)"JHA-AUTH\001C",
	    10, &used), AUTH_MORE);
	assert_int_equal(used, 10);
	assert_int_equal(auth_hs_output(s, &p), 0);
	auth_hs_free(s);
}

static void
state_machine_refuses_stranger_at_first_byte(void **state)
{
	struct auth_key	 key;
	struct auth_hs	*s;
	const unsigned char *p;
	size_t		 used = 99;

	key_fill(&key, 3);
	s = auth_hs_new(&key, AUTH_SERVER);
	assert_int_equal(auth_hs_output(s, &p), HELLO_LEN);
	assert_int_equal(auth_hs_input(s, (const unsigned char *)"J", 1, &used),
	    AUTH_MORE);
	assert_int_equal(auth_hs_input(s, (const unsigned char *)"X", 1, &used),
	    AUTH_FAIL);
	assert_string_equal(auth_hs_error(s),
	    "peer is not a jabber-ha node or a different version");
	/* A failed handshake stays failed and sends nothing more. */
	assert_int_equal(auth_hs_input(s, (const unsigned char *)"HA", 2, &used),
	    AUTH_FAIL);
	assert_int_equal(auth_hs_output(s, &p), 0);
	auth_hs_free(s);
}

static void
state_machine_consumes_nothing_past_the_proof(void **state)
{
	struct auth_key	 key;
	struct auth_hs	*c, *s;
	const unsigned char *p;
	unsigned char	 buf[HELLO_LEN + PROOF_LEN + 16];
	size_t		 n, used;

	key_fill(&key, 4);
	c = auth_hs_new(&key, AUTH_CLIENT);
	s = auth_hs_new(&key, AUTH_SERVER);
	n = auth_hs_output(c, &p);
	assert_int_equal(auth_hs_input(s, p, n, &used), AUTH_MORE);
	n = auth_hs_output(s, &p);
	memcpy(buf, p, n);
	memset(buf + n, 'x', 16);
	assert_int_equal(auth_hs_input(c, buf, n + 16, &used), AUTH_DONE);
	assert_int_equal(used, HELLO_LEN + PROOF_LEN);
	/* Once done, more input is left alone. */
	assert_int_equal(auth_hs_input(c, buf, 16, &used), AUTH_DONE);
	assert_int_equal(used, 0);
	auth_hs_free(c);
	auth_hs_free(s);
}

static void
state_machine_without_key_fails_cleanly(void **state)
{
	struct auth_key	 key;
	struct auth_hs	*c;
	const unsigned char *p;
	size_t		 used;
	unsigned char	 sk[AUTH_SESSION_KEY_LEN];
	char		 err[256];

	memset(&key, 0, sizeof(key));
	key.len = 3;
	c = auth_hs_new(&key, AUTH_CLIENT);
	assert_int_equal(auth_hs_output(c, &p), 0);	/* not even a hello */
	assert_int_equal(auth_hs_input(c, (const unsigned char *)"J", 1, &used),
	    AUTH_FAIL);
	assert_non_null(strstr(auth_hs_error(c), "cluster key"));
	auth_hs_free(c);
	assert_int_equal(auth_handshake_fd(-1, &key, AUTH_CLIENT, 100, sk, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "cluster key"));
}

/* ---- auth_bev_start on a libevent loop ---- */

struct raw_peer {
	int		 fd;
	struct auth_key	 key;
	enum auth_role	 role;
	int		 close_after_hello;
	int		 rv;
	unsigned char	 sk[AUTH_SESSION_KEY_LEN];
	char		 err[256];
};

/*
 * Blocking server that waits for our hello, then sends its hello, its proof
 * and the first frame in one write: the bufferevent gets all in one read.
 */
static void *
raw_peer_thread(void *arg)
{
	struct raw_peer	*rp = arg;
	struct auth_hs	*hs = auth_hs_new(&rp->key, rp->role);
	const unsigned char *p;
	unsigned char	 buf[HELLO_LEN + PROOF_LEN + sizeof(EXTRA)];
	size_t		 n, used;

	rp->rv = -1;
	if (read_all(rp->fd, buf, HELLO_LEN) == -1 || rp->close_after_hello)
		goto out;
	if (auth_hs_input(hs, buf, HELLO_LEN, &used) != AUTH_MORE)
		goto out;
	n = auth_hs_output(hs, &p);
	memcpy(buf, p, n);
	memcpy(buf + n, EXTRA, strlen(EXTRA));
	if (write_all(rp->fd, buf, n + strlen(EXTRA)) == -1 ||
	    read_all(rp->fd, buf, PROOF_LEN) == -1)
		goto out;
	if (auth_hs_input(hs, buf, PROOF_LEN, &used) == AUTH_DONE &&
	    auth_hs_session_key(hs, rp->sk) == 0)
		rp->rv = 0;
out:
	snprintf(rp->err, sizeof(rp->err), "%s", auth_hs_error(hs));
	auth_hs_free(hs);
	shutdown(rp->fd, SHUT_WR);
	return NULL;
}

struct bev_result {
	struct event_base *base;
	int		 calls;
	int		 ok;
	char		 err[256];
	unsigned char	 sk[AUTH_SESSION_KEY_LEN];
	char		 after[64];	/* what the caller's read callback saw */
	int		 reads;
};

static void
caller_read_cb(struct bufferevent *bev, void *arg)
{
	struct bev_result *r = arg;
	struct evbuffer	*in = bufferevent_get_input(bev);
	size_t		 n = evbuffer_get_length(in), have = strlen(r->after);

	r->reads++;
	if (n > sizeof(r->after) - 1 - have)
		n = sizeof(r->after) - 1 - have;
	evbuffer_remove(in, r->after + have, n);
}

/* The peer shuts down once it has verified our proof: the test is over. */
static void
caller_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct bev_result *r = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		event_base_loopbreak(r->base);
}

static void
caller_done_cb(struct bufferevent *bev, int ok, const char *err,
    const unsigned char *sk, void *arg)
{
	struct bev_result *r = arg;

	r->calls++;
	r->ok = ok;
	if (ok) {
		memcpy(r->sk, sk, AUTH_SESSION_KEY_LEN);
		bufferevent_setcb(bev, caller_read_cb, NULL, caller_event_cb, r);
	} else {
		snprintf(r->err, sizeof(r->err), "%s", err);
		event_base_loopbreak(r->base);
	}
}

static void
loop_guard_cb(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

/* Runs auth_bev_start against PEER (NULL: a silent peer) for at most 3 s. */
static void
run_bev(struct raw_peer *peer, unsigned char seed, int timeout_ms,
    struct bev_result *r, int64_t *elapsed)
{
	struct bufferevent *bev;
	struct event	*guard;
	struct timeval	 tv = { 3, 0 };
	struct auth_key	 key;
	pthread_t	 t;
	int		 sv[2];
	int64_t		 t0;

	memset(r, 0, sizeof(*r));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(evutil_make_socket_nonblocking(sv[0]), 0);
	r->base = event_base_new();
	bev = bufferevent_socket_new(r->base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	guard = evtimer_new(r->base, loop_guard_cb, r->base);
	evtimer_add(guard, &tv);
	key_fill(&key, seed);
	if (peer != NULL) {
		struct timeval	 rcv = { 5, 0 };

		assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &rcv,
		    sizeof(rcv)), 0);
		peer->fd = sv[1];
		assert_int_equal(pthread_create(&t, NULL, raw_peer_thread, peer), 0);
	}
	t0 = now_ms();
	auth_bev_start(bev, &key, AUTH_CLIENT, timeout_ms, caller_done_cb, r);
	assert_int_equal(r->calls, 0);		/* never from inside the call */
	event_base_dispatch(r->base);
	*elapsed = now_ms() - t0;
	/* auth never frees the bufferevent: it is still ours to free.  Freeing
	 * it closes our end, so a peer still waiting for us ends too. */
	bufferevent_free(bev);
	if (peer != NULL)
		pthread_join(t, NULL);
	event_free(guard);
	event_base_free(r->base);
	close(sv[1]);
}

static void
bev_handshake_succeeds_and_keeps_first_frame_for_caller(void **state)
{
	struct raw_peer	 peer;
	struct bev_result r;
	int64_t		 elapsed;

	memset(&peer, 0, sizeof(peer));
	key_fill(&peer.key, 5);
	peer.role = AUTH_SERVER;
	run_bev(&peer, 5, 2000, &r, &elapsed);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.ok, 1);
	assert_int_equal(peer.rv, 0);
	assert_memory_equal(r.sk, peer.sk, AUTH_SESSION_KEY_LEN);
	/* The frame arrived in the same segment as the proof, yet reached us. */
	assert_string_equal(r.after, EXTRA);
	assert_true(elapsed < 2000);
}

static void
bev_handshake_reports_different_keys(void **state)
{
	struct raw_peer	 peer;
	struct bev_result r;
	int64_t		 elapsed;

	memset(&peer, 0, sizeof(peer));
	key_fill(&peer.key, 6);
	peer.role = AUTH_SERVER;
	run_bev(&peer, 5, 2000, &r, &elapsed);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.ok, 0);
	assert_string_equal(r.err, "authentication failed: cluster keys differ");
	/* Our proof still left, so the peer knows why too. */
	assert_int_equal(peer.rv, -1);
	assert_string_equal(peer.err, "authentication failed: cluster keys differ");
	assert_true(elapsed < 2000);
}

static void
bev_handshake_times_out_on_silent_peer(void **state)
{
	struct bev_result r;
	int64_t		 elapsed;

	run_bev(NULL, 5, 200, &r, &elapsed);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.ok, 0);
	assert_string_equal(r.err, "authentication timed out after 200 ms");
	assert_true(elapsed >= 190);
	assert_true(elapsed < 1000);
}

static void
bev_handshake_reports_peer_closing(void **state)
{
	struct raw_peer	 peer;
	struct bev_result r;
	int64_t		 elapsed;

	memset(&peer, 0, sizeof(peer));
	key_fill(&peer.key, 5);
	peer.role = AUTH_SERVER;
	peer.close_after_hello = 1;
	run_bev(&peer, 5, 2000, &r, &elapsed);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.ok, 0);
	assert_string_equal(r.err,
	    "peer closed the connection during authentication");
}

static void
bev_handshake_cancelled_never_calls_back(void **state)
{
	struct event_base *base = event_base_new();
	struct bufferevent *bev;
	struct bev_result r;
	struct auth_key	 key;
	struct timeval	 tv = { 0, 300 * 1000 };
	int		 sv[2];

	memset(&r, 0, sizeof(r));
	r.base = base;
	key_fill(&key, 5);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(evutil_make_socket_nonblocking(sv[0]), 0);
	bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	auth_bev_start(bev, &key, AUTH_SERVER, 100, caller_done_cb, &r);
	auth_bev_cancel(bev);
	bufferevent_free(bev);
	/* Past the handshake's timeout: a leftover timer would fire here. */
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	assert_int_equal(r.calls, 0);
	event_base_free(base);
	close(sv[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(key_load_accepts_private_key_of_raw_bytes),
		cmocka_unit_test(key_load_refuses_group_readable_key_and_says_chmod),
		cmocka_unit_test(key_load_refuses_short_key_and_says_how_to_make_one),
		cmocka_unit_test(key_load_refuses_oversized_key),
		cmocka_unit_test(key_load_refuses_symlink),
		cmocka_unit_test(key_load_refuses_missing_file_and_directory),
		cmocka_unit_test(handshake_same_key_agrees_on_session_key),
		cmocka_unit_test(handshake_different_keys_fail_on_both_sides),
		cmocka_unit_test(handshake_refuses_two_clients),
		cmocka_unit_test(handshake_refuses_xml_client_at_once),
		cmocka_unit_test(handshake_refuses_other_version),
		cmocka_unit_test(handshake_times_out_on_silent_peer),
		cmocka_unit_test(handshake_refuses_reflected_hello_and_sends_no_proof),
		cmocka_unit_test(handshake_refuses_reflected_proof),
		cmocka_unit_test(handshake_reports_truncated_hello_then_close),
		cmocka_unit_test(handshake_leaves_bytes_after_proof_in_socket),
		cmocka_unit_test(handshake_on_closed_fd_fails_at_once),
		cmocka_unit_test(state_machine_completes_fed_one_byte_at_a_time),
		cmocka_unit_test(state_machine_server_reveals_no_proof_before_client_hello),
		cmocka_unit_test(state_machine_refuses_stranger_at_first_byte),
		cmocka_unit_test(state_machine_consumes_nothing_past_the_proof),
		cmocka_unit_test(state_machine_without_key_fails_cleanly),
		cmocka_unit_test(bev_handshake_succeeds_and_keeps_first_frame_for_caller),
		cmocka_unit_test(bev_handshake_reports_different_keys),
		cmocka_unit_test(bev_handshake_times_out_on_silent_peer),
		cmocka_unit_test(bev_handshake_reports_peer_closing),
		cmocka_unit_test(bev_handshake_cancelled_never_calls_back),
	};

	return cmocka_run_group_tests(tests, setup_tmpdir, teardown_tmpdir);
}
