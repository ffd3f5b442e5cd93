/*
 * engine_fix.h: the spoolsync engine fixture its unit tests share: a spool
 * and a state directory under TMPDIR, node "a" sending to one peer "b", and
 * that peer's link up on a socket pair whose far end is never read.
 * Header-only (each test is built from its one .c file); include it after
 * cmocka.h, engine.h and util.h.
 */
#ifndef ENGINE_FIX_H
#define ENGINE_FIX_H

#include <sys/socket.h>

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#define EFIX_PATH	512

/* ROOT and SDIR (EFIX_PATH bytes each) made under TMPDIR, named for TAG;
 * SP and PEER set up as a sender's engine with one peer and no loop. */
static inline void
efix_open(char *root, char *sdir, struct spoolsync *sp, struct peer *peer,
    const char *tag)
{
	const char	*tmp = getenv("TMPDIR");
	char		 err[256];

	if (tmp == NULL || tmp[0] == '\0')
		tmp = "/tmp";
	snprintf(root, EFIX_PATH, "%s/%s.XXXXXX", tmp, tag);
	snprintf(sdir, EFIX_PATH, "%s/%s_st.XXXXXX", tmp, tag);
	assert_non_null(mkdtemp(root));
	assert_non_null(mkdtemp(sdir));
	sp->node = "a";
	sp->root = root;
	sp->mode = MODE_SEND;
	sp->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(sp->rootfd != -1);
	assert_non_null(sp->st = state_open(sdir, root, err, sizeof(err)));
	sp->ex = exclude_new();
	sp->applying = pmap_new();
	peer->sp = sp;
	peer->name = "b";
	TAILQ_INIT(&peer->outbox);
	peer->queued = pmap_new();
	peer->pk = pmap_new();
	sp->peers = peer;
	sp->npeers = 1;
}

/* What efix_open made, and what is still queued for the peer. */
static inline void
efix_close(char *root, char *sdir, struct spoolsync *sp, struct peer *peer)
{
	struct item	*it;

	while ((it = TAILQ_FIRST(&peer->outbox)) != NULL) {
		TAILQ_REMOVE(&peer->outbox, it, entry);
		item_free(it);
	}
	pmap_free(peer->queued, NULL);
	pmap_free(peer->pk, free);
	pmap_free(sp->applying, NULL);
	exclude_free(sp->ex);
	state_close(sp->st);
	if (sp->rootfd != -1)
		close(sp->rootfd);
	tu_rmtree(root);
	tu_rmtree(sdir);
}

static inline void
efix_pump_cb(evutil_socket_t fd, short what, void *arg)
{
}

/* L, PEER's link, up on BASE; *OTHER: the socket pair's far end. */
static inline void
efix_link_up(struct link *l, struct spoolsync *sp, struct peer *peer,
    struct event_base *base, int *other)
{
	unsigned char	 key[AUTH_SESSION_KEY_LEN];
	char		 err[256];
	int		 sv[2];

	memset(key, 7, sizeof(key));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	*other = sv[1];
	l->sp = sp;
	l->peer = peer;
	l->state = LINK_UP;
	l->bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	assert_non_null(l->bev);
	assert_int_equal(wire_ctx_init(&l->wc, key, AUTH_CLIENT, err,
	    sizeof(err)), 0);
	l->wc_ok = 1;
	buf_init(&l->obuf);
	assert_non_null(l->ev_pump = evtimer_new(base, efix_pump_cb, l));
	TAILQ_INIT(&l->ops);
	TAILQ_INIT(&l->mfs);
	l->busy = pmap_new();
	peer->link = l;
}

/* What efix_link_up made (the caller empties the link's ops first). */
static inline void
efix_link_down(struct link *l, struct peer *peer, int other)
{
	pmap_free(l->busy, NULL);
	free(l->lag.v);		/* link_free's part: the link is a fixture */
	event_free(l->ev_pump);
	bufferevent_free(l->bev);
	wire_ctx_clear(&l->wc);
	buf_free(&l->obuf);
	close(other);
	peer->link = NULL;
}

#endif
