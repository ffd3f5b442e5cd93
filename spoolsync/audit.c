/*
 * audit.c: `spoolsync --audit`: proves that this host's tree and every
 * peer's hold the same bytes.  It connects to each peer's daemon as an
 * audit client (authenticated like a peer, HELLO with the audit flag), asks
 * for a fully hashed manifest, hashes its own tree fully, and compares path,
 * type, size, mode and SHA-256 (owners too when both sides run as root).
 * What differs is looked at again after a pause, on both sides, and only
 * what still differs is reported, so a file written during the audit is not
 * a false difference; it never says identical when the bytes differ.
 * Read-only; --repair asks the local daemon for a full anti-entropy pass.
 * Exit 0 identical, 1 differences, 2 could not audit.
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "spoolsync.h"

#define AUDIT_CONNECT_MS	5000
#define AUDIT_AUTH_MS		5000
#define AUDIT_IO_MS		(10 * 60 * 1000)	/* a peer hashing 100k files */
#define AUDIT_PASSES		3
#define AUDIT_PAUSE_MS		300
#define AUDIT_REPAIR_MS		(10 * 60 * 1000)

struct apeer {
	const struct spoolsync_peer_conf *pc;
	int		 fd;
	struct wire_ctx	 wc;
	int		 wc_ok;
	int		 root;		/* the peer runs as root */
	struct buf	 in;
	struct manifest	*mf;
	struct mf_diffs	 ds;
	char		 err[512];
	int		 failed;
	uint64_t	 next_id;
};

struct audit {
	struct spoolsync_conf	*conf;
	int			 rootfd;
	struct manifest		*local;
	struct apeer		*peers;
	size_t			 npeers;
	int			 json;
};

static int64_t
audit_now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void PRINTFLIKE(2, 3)
apeer_fail(struct apeer *ap, const char *fmt, ...)
{
	va_list	ap_;

	if (ap->failed)
		return;
	ap->failed = 1;
	va_start(ap_, fmt);
	vsnprintf(ap->err, sizeof(ap->err), fmt, ap_);
	va_end(ap_);
	if (ap->fd != -1)
		close(ap->fd);
	ap->fd = -1;
}

static int
audit_poll(int fd, short ev, int64_t deadline)
{
	struct pollfd	pfd = { fd, ev, 0 };
	int64_t		left;
	int		n;

	for (;;) {
		left = deadline - audit_now_ms();
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		n = poll(&pfd, 1, (int)left);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			errno = n == 0 ? ETIMEDOUT : errno;
			return -1;
		}
		return 0;
	}
}

static int
audit_connect(struct apeer *ap)
{
	char		err[512];
	int		fd, e = 0;
	socklen_t	len = sizeof(e);

	if ((fd = net_connect_nb(&ap->pc->address, err, sizeof(err))) == -1) {
		apeer_fail(ap, "%s", err);
		return -1;
	}
	ap->fd = fd;
	if (audit_poll(fd, POLLOUT, audit_now_ms() + AUDIT_CONNECT_MS) == -1 ||
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == -1 || e != 0) {
		apeer_fail(ap, "connect %s: %s", ap->pc->address.text,
		    strerror(e ? e : errno));
		return -1;
	}
	return 0;
}

static int
audit_write(struct apeer *ap, const void *p, size_t n)
{
	const char	*c = p;
	ssize_t		 w;
	int64_t		 deadline = audit_now_ms() + AUDIT_IO_MS;

	while (n > 0) {
		w = write(ap->fd, c, n);
		if (w == -1 && (errno == EAGAIN || errno == EINTR)) {
			if (audit_poll(ap->fd, POLLOUT, deadline) == -1)
				goto fail;
			continue;
		}
		if (w <= 0)
			goto fail;
		c += w;
		n -= (size_t)w;
	}
	return 0;
fail:
	apeer_fail(ap, "writing to %s: %s", ap->pc->address.text, strerror(errno));
	return -1;
}

static int
audit_send(struct apeer *ap, const struct wire_msg *m)
{
	struct buf	b;
	char		err[512];
	int		rv;

	buf_init(&b);
	if (wire_encode(&ap->wc, m, &b, err, sizeof(err)) == -1) {
		buf_free(&b);
		apeer_fail(ap, "%s", err);
		return -1;
	}
	rv = audit_write(ap, b.data, b.len);
	buf_free(&b);
	return rv;
}

static void
audit_msg_init(struct wire_msg *m, enum wire_type t)
{
	memset(m, 0, offsetof(struct wire_msg, vv_store));
	m->type = t;
}

/* The next frame (PINGs answered on the way); -1 with the peer failed. */
static int
audit_recv(struct apeer *ap, struct wire_msg *m)
{
	struct wire_msg	 pong;
	char		 tmp[65536], err[512];
	size_t		 need;
	ssize_t		 n;
	int64_t		 deadline = audit_now_ms() + AUDIT_IO_MS;

	for (;;) {
		switch (wire_peek(ap->in.data, ap->in.len, &need, err, sizeof(err))) {
		case WIRE_BAD:
			apeer_fail(ap, "bad frame: %s", err);
			return -1;
		case WIRE_READY:
			if (wire_decode(&ap->wc, ap->in.data, need, m, err,
			    sizeof(err)) == -1) {
				apeer_fail(ap, "malformed frame: %s", err);
				return -1;
			}
			/* M's byte fields point into ap->in: the caller drains. */
			if (m->type == WIRE_PING) {
				audit_msg_init(&pong, WIRE_PONG);
				pong.ping.ts = m->ping.ts;
				memmove(ap->in.data, ap->in.data + need, ap->in.len - need);
				ap->in.len -= need;
				if (audit_send(ap, &pong) == -1)
					return -1;
				continue;
			}
			return (int)need;
		case WIRE_NEED:
			break;
		}
		if (audit_poll(ap->fd, POLLIN, deadline) == -1) {
			apeer_fail(ap, "waiting for %s: %s", ap->pc->address.text,
			    strerror(errno));
			return -1;
		}
		n = read(ap->fd, tmp, sizeof(tmp));
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			apeer_fail(ap, "%s closed the connection%s%s", ap->pc->address.text,
			    n == -1 ? ": " : "", n == -1 ? strerror(errno) : "");
			return -1;
		}
		buf_add(&ap->in, tmp, (size_t)n);
	}
}

static void
audit_drain(struct apeer *ap, size_t n)
{
	memmove(ap->in.data, ap->in.data + n, ap->in.len - n);
	ap->in.len -= n;
}

static int
audit_hello(struct apeer *ap, const struct spoolsync_conf *c)
{
	struct wire_msg	*m = xmalloc(sizeof(*m));
	unsigned char	 skey[AUTH_SESSION_KEY_LEN];
	char		 err[512];
	int		 n;

	if (auth_handshake_fd(ap->fd, c->key, AUTH_CLIENT, AUDIT_AUTH_MS, skey, err,
	    sizeof(err)) == -1) {
		apeer_fail(ap, "authentication with %s failed: %s",
		    ap->pc->address.text, err);
		goto fail;
	}
	if (wire_ctx_init(&ap->wc, skey, AUTH_CLIENT, err, sizeof(err)) == -1) {
		apeer_fail(ap, "%s", err);
		goto fail;
	}
	explicit_bzero(skey, sizeof(skey));
	ap->wc_ok = 1;
	audit_msg_init(m, WIRE_HELLO);
	m->hello.version = WIRE_VERSION;
	m->hello.node = c->node;
	m->hello.mode = (uint8_t)c->mode;
	m->hello.flags = SPOOLSYNC_HELLO_AUDIT | (geteuid() == 0 ?
	    SPOOLSYNC_HELLO_ROOT : 0);
	if (audit_send(ap, m) == -1 || (n = audit_recv(ap, m)) == -1)
		goto fail;
	if (m->type == WIRE_BYE) {
		apeer_fail(ap, "%s refused the audit: %s", ap->pc->name, m->bye.reason);
		goto fail;
	}
	if (m->type != WIRE_HELLO || strcmp(m->hello.node, ap->pc->name) != 0) {
		apeer_fail(ap, "%s answered %s%s%s instead of peer %s's HELLO",
		    ap->pc->address.text, wire_type_name(m->type),
		    m->type == WIRE_HELLO ? " from " : "",
		    m->type == WIRE_HELLO ? m->hello.node : "", ap->pc->name);
		goto fail;
	}
	ap->root = (m->hello.flags & SPOOLSYNC_HELLO_ROOT) != 0;
	audit_drain(ap, (size_t)n);
	free(m);
	return 0;
fail:
	free(m);
	return -1;
}

static int
audit_ask(struct apeer *ap, int full)
{
	struct wire_msg	m;

	audit_msg_init(&m, WIRE_MANIFEST_REQ);
	m.manifest_req.id = ++ap->next_id | (full ? SPOOLSYNC_MF_FULL : 0);
	m.manifest_req.dir = "";
	return audit_send(ap, &m);
}

/* The manifest asked for last: chunks until the last one. */
static struct manifest *
audit_fetch(struct apeer *ap)
{
	struct wire_msg	*m = xmalloc(sizeof(*m));
	struct manifest	*mf = NULL;
	struct buf	 data;
	char		 err[512];
	int		 n, last = 0;

	buf_init(&data);
	while (!last) {
		if ((n = audit_recv(ap, m)) == -1)
			goto out;
		if (m->type == WIRE_BYE) {
			apeer_fail(ap, "%s ended the audit: %s", ap->pc->name,
			    m->bye.reason);
			goto out;
		}
		if (m->type != WIRE_MANIFEST || (m->manifest.id &
		    ~SPOOLSYNC_MF_FULL) != ap->next_id) {
			apeer_fail(ap, "%s sent %s while a manifest was expected",
			    ap->pc->name, wire_type_name(m->type));
			goto out;
		}
		buf_add(&data, m->manifest.data, m->manifest.len);
		last = m->manifest.last;
		audit_drain(ap, (size_t)n);
	}
	if ((mf = manifest_decode(data.data, data.len, err, sizeof(err))) == NULL)
		apeer_fail(ap, "%s's manifest: %s", ap->pc->name, err);
out:
	buf_free(&data);
	free(m);
	return mf;
}

static void
audit_bye(struct apeer *ap)
{
	struct wire_msg	m;

	if (ap->fd == -1 || !ap->wc_ok)
		return;
	audit_msg_init(&m, WIRE_BYE);
	m.bye.reason = "audit done";
	audit_send(ap, &m);
}

static unsigned
audit_flags(const struct apeer *ap)
{
	return MF_CMP_NO_MTIME | (geteuid() == 0 && ap->root ? 0 : MF_CMP_NO_OWNER);
}

static const char *
audit_diff_path(const struct mf_diff *d)
{
	return d->here != NULL ? d->here->path : d->there->path;
}

static int
audit_diff_cmp(const void *a, const void *b)
{
	return manifest_path_cmp(audit_diff_path(a), audit_diff_path(b));
}

/* Keeps in NEW only the paths OLD also lists: what differs every time. */
static void
audit_intersect(struct mf_diffs *new, const struct mf_diffs *old)
{
	size_t	i, o = 0;

	for (i = 0; i < new->n; i++) {
		if (bsearch(&new->d[i], old->d, old->n, sizeof(*old->d),
		    audit_diff_cmp) != NULL)
			new->d[o++] = new->d[i];
	}
	new->n = o;
}

/* Everything that still differs is looked at again, on both sides. */
static int
audit_recheck(struct audit *a, char *err, size_t errlen)
{
	struct manifest	*again, *old;
	struct mf_diffs	 nds;
	struct apeer	*ap;
	size_t		 i, pending;

	for (int pass = 1; pass < AUDIT_PASSES; pass++) {
		pending = 0;
		for (i = 0; i < a->npeers; i++)
			pending += a->peers[i].failed ? 0 : a->peers[i].ds.n;
		if (pending == 0)
			return 0;
		usleep(AUDIT_PAUSE_MS * 1000);
		for (i = 0; i < a->npeers; i++)
			if (!a->peers[i].failed && a->peers[i].ds.n > 0)
				audit_ask(&a->peers[i], 0);
		/* The first pass hashed everything; unchanged files keep it. */
		if (manifest_build(a->rootfd, a->conf->exclude, a->local, 0, &again,
		    err, errlen) == -1)
			return -1;
		for (i = 0; i < a->npeers; i++) {
			ap = &a->peers[i];
			if (ap->failed || ap->ds.n == 0)
				continue;
			old = ap->mf;
			if ((ap->mf = audit_fetch(ap)) == NULL) {
				ap->mf = old;
				continue;
			}
			qsort(ap->ds.d, ap->ds.n, sizeof(*ap->ds.d), audit_diff_cmp);
			manifest_diff(again, ap->mf, audit_flags(ap), &nds);
			audit_intersect(&nds, &ap->ds);	/* OLD is still alive here */
			manifest_diffs_free(&ap->ds);
			manifest_free(old);
			ap->ds = nds;
		}
		/* The diffs point into the manifests: keep the new local one. */
		manifest_free(a->local);
		a->local = again;
	}
	return 0;
}

static void
audit_print_text(const struct audit *a)
{
	const struct apeer	*ap;
	const struct mf_diff	*d;
	char			 what[128];
	size_t			 total = 0;
	int			 failed = 0;

	printf("audit: node %s, root %s: %zu entries, fully hashed\n",
	    a->conf->node, a->conf->root, a->local != NULL ? a->local->n : 0);
	for (size_t i = 0; i < a->npeers; i++) {
		ap = &a->peers[i];
		if (ap->failed) {
			printf("audit: peer %s (%s): cannot audit: %s\n", ap->pc->name,
			    ap->pc->address.text, ap->err);
			failed++;
			continue;
		}
		if (ap->ds.n == 0) {
			printf("audit: peer %s (%s): %zu entries: identical\n",
			    ap->pc->name, ap->pc->address.text, ap->mf->n);
			continue;
		}
		printf("audit: peer %s (%s): %zu entries: %zu difference%s\n",
		    ap->pc->name, ap->pc->address.text, ap->mf->n, ap->ds.n,
		    ap->ds.n == 1 ? "" : "s");
		for (size_t k = 0; k < ap->ds.n; k++) {
			d = &ap->ds.d[k];
			printf("  %-16s  %s", manifest_diff_kind_name(d->kind),
			    audit_diff_path(d));
			if (d->what != 0)
				printf(" (%s)", manifest_diff_what(d->what, what,
				    sizeof(what)));
			printf("\n");
		}
		total += ap->ds.n;
	}
	if (failed)
		printf("audit: INCOMPLETE: %d peer%s could not be audited\n", failed,
		    failed == 1 ? "" : "s");
	else if (total)
		printf("audit: DIFFERENT: %zu difference%s\n", total,
		    total == 1 ? "" : "s");
	else
		printf("audit: identical with every peer\n");
}

static void
audit_print_json(const struct audit *a, int rc)
{
	const struct apeer	*ap;
	const struct mf_diff	*d;
	struct json		 j;
	char			 what[128];

	json_init(&j);
	json_obj_begin(&j);
	json_kv_str(&j, "node", a->conf->node);
	json_kv_str(&j, "root", a->conf->root);
	json_kv_uint(&j, "entries", a->local != NULL ? a->local->n : 0);
	json_kv_bool(&j, "identical", rc == 0);
	json_kv_int(&j, "exit", rc);
	json_key(&j, "peers");
	json_arr_begin(&j);
	for (size_t i = 0; i < a->npeers; i++) {
		ap = &a->peers[i];
		json_obj_begin(&j);
		json_kv_str(&j, "name", ap->pc->name);
		json_kv_str(&j, "address", ap->pc->address.text);
		json_kv_bool(&j, "reachable", !ap->failed);
		json_kv_str(&j, "error", ap->failed ? ap->err : NULL);
		if (!ap->failed) {
			json_kv_uint(&j, "entries", ap->mf->n);
			json_kv_bool(&j, "identical", ap->ds.n == 0);
			json_key(&j, "differences");
			json_arr_begin(&j);
			for (size_t k = 0; k < ap->ds.n; k++) {
				d = &ap->ds.d[k];
				json_obj_begin(&j);
				json_kv_str(&j, "path", audit_diff_path(d));
				json_kv_str(&j, "kind", manifest_diff_kind_name(d->kind));
				json_kv_str(&j, "what", manifest_diff_what(d->what, what,
				    sizeof(what)));
				json_obj_end(&j);
			}
			json_arr_end(&j);
		}
		json_obj_end(&j);
	}
	json_arr_end(&j);
	json_obj_end(&j);
	printf("%s\n", json_text(&j));
	json_free(&j);
}

static void
audit_free(struct audit *a)
{
	for (size_t i = 0; i < a->npeers; i++) {
		struct apeer	*ap = &a->peers[i];

		if (ap->fd != -1)
			close(ap->fd);
		if (ap->wc_ok)
			wire_ctx_clear(&ap->wc);
		manifest_diffs_free(&ap->ds);
		manifest_free(ap->mf);
		buf_free(&ap->in);
	}
	free(a->peers);
	manifest_free(a->local);
	if (a->rootfd != -1)
		close(a->rootfd);
	spoolsync_conf_free(a->conf);
}

/* One whole audit: 0 identical, 1 differences, 2 could not audit. */
static int
audit_run(struct audit *a)
{
	char	err[512];
	int	rc = 0;

	for (size_t i = 0; i < a->npeers; i++) {
		struct apeer	*ap = &a->peers[i];

		/* Both sides hash at once: ask first, then hash here. */
		if (audit_connect(ap) == 0 && audit_hello(ap, a->conf) == 0)
			audit_ask(ap, 1);
	}
	if (manifest_build(a->rootfd, a->conf->exclude, NULL, 1, &a->local, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "spoolsync: audit: %s: %s\n", a->conf->root, err);
		return 2;
	}
	for (size_t i = 0; i < a->npeers; i++) {
		struct apeer	*ap = &a->peers[i];

		if (ap->failed || (ap->mf = audit_fetch(ap)) == NULL)
			continue;
		manifest_diff(a->local, ap->mf, audit_flags(ap), &ap->ds);
	}
	if (audit_recheck(a, err, sizeof(err)) == -1) {
		fprintf(stderr, "spoolsync: audit: %s: %s\n", a->conf->root, err);
		return 2;
	}
	for (size_t i = 0; i < a->npeers; i++) {
		audit_bye(&a->peers[i]);
		if (a->peers[i].failed)
			rc = 2;
		else if (a->peers[i].ds.n > 0 && rc == 0)
			rc = 1;
	}
	return rc;
}

static void
audit_print(const struct audit *a, int rc)
{
	if (a->local == NULL)
		return;
	if (a->json)
		audit_print_json(a, rc);
	else
		audit_print_text(a);
	fflush(stdout);
}

static int
audit_setup(struct audit *a, struct cli *cli)
{
	struct cfg_errs	errs = { NULL, 0 };

	memset(a, 0, sizeof(*a));
	a->rootfd = -1;
	a->json = cli->json;
	if ((a->conf = spoolsync_conf_load(cli->conf_path, &errs)) == NULL) {
		cfg_errs_print(&errs, stderr);
		fprintf(stderr, "spoolsync: audit: %s: configuration refused\n",
		    cli->conf_path);
		cfg_errs_free(&errs);
		return -1;
	}
	cfg_errs_free(&errs);
	if ((a->rootfd = open(a->conf->root, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1) {
		fprintf(stderr, "spoolsync: audit: root %s: %s\n", a->conf->root,
		    strerror(errno));
		return -1;
	}
	a->npeers = a->conf->npeers;
	a->peers = xcalloc(a->npeers, sizeof(*a->peers));
	for (size_t i = 0; i < a->npeers; i++) {
		a->peers[i].pc = &a->conf->peers[i];
		a->peers[i].fd = -1;
		buf_init(&a->peers[i].in);
	}
	return 0;
}

static int
audit_repair(struct cli *cli)
{
	struct jval	*data = NULL;
	char		 path[512], err[512];
	int		 rc;

	cli_control_path(cli, path, sizeof(path));
	fprintf(stderr, "spoolsync: audit: asking the local daemon to repair...\n");
	rc = control_request(path, "repair", AUDIT_REPAIR_MS, &data, err,
	    sizeof(err));
	jval_free(data);
	if (rc != 0) {
		fprintf(stderr, "spoolsync: repair: %s\n", err);
		return -1;
	}
	fprintf(stderr, "spoolsync: audit: repaired; auditing again\n");
	return 0;
}

int
audit_main(struct cli *cli, int repair)
{
	struct audit	a;
	int		rc;

	if (audit_setup(&a, cli) == -1) {
		audit_free(&a);
		return 2;
	}
	rc = audit_run(&a);
	/* With --json and a repair to do, only the final result prints. */
	if (!(repair && rc == 1 && a.json))
		audit_print(&a, rc);
	audit_free(&a);
	if (!repair || rc != 1)
		return rc;
	if (audit_repair(cli) == -1)
		return 1;
	if (audit_setup(&a, cli) == -1) {
		audit_free(&a);
		return 2;
	}
	rc = audit_run(&a);
	audit_print(&a, rc);
	audit_free(&a);
	return rc;
}
