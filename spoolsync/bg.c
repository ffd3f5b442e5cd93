/*
 * bg.c: worker threads for what must never run on the event loop (a full
 * manifest build, hashing a big file).  Results come back on the loop, in
 * the order the jobs finish (a job's partial results before its end),
 * through an eventfd.
 */
#include <sys/eventfd.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "spoolsync.h"

#define BG_MAX_THREADS	8

struct bg_job {
	struct bg_job	*next;
	void		(*run)(void *);	/* NULL: a partial result (bg_post) */
	void		(*done)(void *, int);
	void		*arg;
};

struct bg {
	pthread_t	 th[BG_MAX_THREADS];
	int		 nth;
	int		 efd;
	struct event	*ev;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	struct bg_job	*todo, *todo_tail;	/* waiting for a thread */
	struct bg_job	*done, *done_tail;	/* finished, for the loop */
	size_t		 pending;		/* submitted, not yet reported */
	int		 stop;
};

static void
bg_append(struct bg_job **head, struct bg_job **tail, struct bg_job *j)
{
	j->next = NULL;
	if (*tail != NULL)
		(*tail)->next = j;
	else
		*head = j;
	*tail = j;
}

static void *
bg_thread(void *arg)
{
	struct bg	*bg = arg;
	struct bg_job	*j;
	uint64_t	 one = 1;

	pthread_mutex_lock(&bg->mu);
	for (;;) {
		while (bg->todo == NULL && !bg->stop)
			pthread_cond_wait(&bg->cv, &bg->mu);
		if (bg->stop)
			break;
		j = bg->todo;
		if ((bg->todo = j->next) == NULL)
			bg->todo_tail = NULL;
		pthread_mutex_unlock(&bg->mu);
		j->run(j->arg);
		pthread_mutex_lock(&bg->mu);
		bg_append(&bg->done, &bg->done_tail, j);
		/* An eventfd write never blocks: its counter just grows. */
		if (write(bg->efd, &one, sizeof(one)) == -1)
			one = 1;
	}
	pthread_mutex_unlock(&bg->mu);
	return NULL;
}

static void
bg_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bg	*bg = arg;
	struct bg_job	*list, *j;
	uint64_t	 n;

	if (read(bg->efd, &n, sizeof(n)) == -1)
		n = 0;	/* spurious: the lists say what is done */
	pthread_mutex_lock(&bg->mu);
	list = bg->done;
	bg->done = bg->done_tail = NULL;
	pthread_mutex_unlock(&bg->mu);
	while ((j = list) != NULL) {
		list = j->next;
		if (j->run != NULL)
			bg->pending--;
		j->done(j->arg, 0);
		free(j);
	}
}

struct bg *
bg_new(struct event_base *base, int nthreads, char *err, size_t errlen)
{
	struct bg	*bg = xcalloc(1, sizeof(*bg));

	bg->efd = -1;
	if (nthreads < 1)
		nthreads = 1;
	if (nthreads > BG_MAX_THREADS)
		nthreads = BG_MAX_THREADS;
	pthread_mutex_init(&bg->mu, NULL);
	pthread_cond_init(&bg->cv, NULL);
	if ((bg->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	bg->ev = event_new(base, bg->efd, EV_READ | EV_PERSIST, bg_event_cb, bg);
	if (bg->ev == NULL || event_add(bg->ev, NULL) == -1) {
		snprintf(err, errlen, "cannot watch the worker eventfd");
		goto fail;
	}
	for (bg->nth = 0; bg->nth < nthreads; bg->nth++) {
		if ((errno = pthread_create(&bg->th[bg->nth], NULL, bg_thread,
		    bg)) != 0) {
			snprintf(err, errlen, "pthread_create: %s", strerror(errno));
			goto fail;
		}
	}
	return bg;
fail:
	bg_free(bg);
	return NULL;
}

static void
bg_cancel_list(struct bg *bg, struct bg_job *list)
{
	struct bg_job	*j;

	while ((j = list) != NULL) {
		list = j->next;
		if (j->run != NULL)
			bg->pending--;
		j->done(j->arg, 1);
		free(j);
	}
}

void
bg_free(struct bg *bg)
{
	if (bg == NULL)
		return;
	pthread_mutex_lock(&bg->mu);
	bg->stop = 1;
	pthread_cond_broadcast(&bg->cv);
	pthread_mutex_unlock(&bg->mu);
	for (int i = 0; i < bg->nth; i++)
		pthread_join(bg->th[i], NULL);
	/* Finished or not, the loop will not see them: report them cancelled. */
	bg_cancel_list(bg, bg->done);
	bg_cancel_list(bg, bg->todo);
	if (bg->ev != NULL)
		event_free(bg->ev);
	if (bg->efd != -1)
		close(bg->efd);
	pthread_mutex_destroy(&bg->mu);
	pthread_cond_destroy(&bg->cv);
	free(bg);
}

void
bg_submit(struct bg *bg, void (*run)(void *), void (*done)(void *, int), void *arg)
{
	struct bg_job	*j = xcalloc(1, sizeof(*j));

	j->run = run;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&bg->mu);
	bg_append(&bg->todo, &bg->todo_tail, j);
	bg->pending++;
	pthread_cond_signal(&bg->cv);
	pthread_mutex_unlock(&bg->mu);
}

/*
 * From a running job: a partial result goes to the loop now, not with the
 * job's end.  Queued behind whatever finished before it, so that a job's
 * posts reach the loop in order and before its DONE.
 */
void
bg_post(struct bg *bg, void (*cb)(void *, int), void *arg)
{
	struct bg_job	*j = xcalloc(1, sizeof(*j));
	uint64_t	 one = 1;

	j->done = cb;
	j->arg = arg;
	pthread_mutex_lock(&bg->mu);
	bg_append(&bg->done, &bg->done_tail, j);
	if (write(bg->efd, &one, sizeof(one)) == -1)
		one = 1;
	pthread_mutex_unlock(&bg->mu);
}

size_t
bg_pending(const struct bg *bg)
{
	return bg->pending;
}
