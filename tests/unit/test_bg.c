/* test_bg.c: worker jobs run off the loop and report back on it, partial
 * results while they run; stopping reports every job and partial result not
 * yet reported as cancelled. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "spoolsync.h"

struct job {
	pthread_t	ran_on;
	int		done, cancelled;
	int		sleep_ms;
	int		*counter;
};

static void
job_run(void *arg)
{
	struct job	*j = arg;

	j->ran_on = pthread_self();
	if (j->sleep_ms)
		usleep((useconds_t)j->sleep_ms * 1000);
}

static void
job_done(void *arg, int cancelled)
{
	struct job	*j = arg;

	j->done++;
	j->cancelled = cancelled;
	if (j->counter != NULL)
		(*j->counter)++;
}

static void
test_jobs_run_on_workers_and_report_on_the_loop(void **state)
{
	struct event_base	*base = event_base_new();
	struct bg		*bg;
	struct job		 jobs[20];
	struct timeval		 tv = { 0, 10000 };
	char			 err[256];
	int			 reported = 0, spins = 0;

	(void)state;
	bg = bg_new(base, 2, err, sizeof(err));
	assert_non_null(bg);
	memset(jobs, 0, sizeof(jobs));
	for (int i = 0; i < 20; i++) {
		jobs[i].counter = &reported;
		bg_submit(bg, job_run, job_done, &jobs[i]);
	}
	assert_int_equal(bg_pending(bg), 20);
	while (reported < 20 && spins++ < 500) {
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	assert_int_equal(reported, 20);
	assert_int_equal(bg_pending(bg), 0);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(jobs[i].done, 1);
		assert_int_equal(jobs[i].cancelled, 0);
		assert_false(pthread_equal(jobs[i].ran_on, pthread_self()));
	}
	bg_free(bg);
	event_base_free(base);
}

static void
test_stopping_reports_unfinished_jobs_cancelled(void **state)
{
	struct event_base	*base = event_base_new();
	struct bg		*bg;
	struct job		 jobs[4];
	char			 err[256];

	(void)state;
	bg = bg_new(base, 1, err, sizeof(err));
	memset(jobs, 0, sizeof(jobs));
	for (int i = 0; i < 4; i++) {
		jobs[i].sleep_ms = 50;
		bg_submit(bg, job_run, job_done, &jobs[i]);
	}
	bg_free(bg);	/* no loop ran: none was reported */
	for (int i = 0; i < 4; i++) {
		assert_int_equal(jobs[i].done, 1);
		assert_int_equal(jobs[i].cancelled, 1);
	}
	event_base_free(base);
}

/* A job that posts partial results, each seen by the loop before it goes on. */
struct pjob {
	struct bg	*bg;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	int		 seen;		/* posts the loop has had */
	int		 waited_ok;	/* every post reached the loop while it ran */
	int		 wait;		/* 0: post and return at once */
	int		 finished;	/* its RUN returned */
	char		 log[16];	/* what the loop got, in order */
	int		 nlog;
	int		 cancelled[16];
};

struct post {
	struct pjob	*pj;
	char		 tag;
};

static void
pjob_log(struct pjob *pj, char tag, int cancelled)
{
	pj->cancelled[pj->nlog] = cancelled;
	pj->log[pj->nlog++] = tag;
}

static void
post_cb(void *arg, int cancelled)
{
	struct post	*po = arg;
	struct pjob	*pj = po->pj;

	pjob_log(pj, po->tag, cancelled);
	pthread_mutex_lock(&pj->mu);
	pj->seen++;
	pthread_cond_signal(&pj->cv);
	pthread_mutex_unlock(&pj->mu);
	free(po);
}

static void
pjob_run(void *arg)
{
	struct pjob	*pj = arg;
	struct timespec	 until;

	pj->waited_ok = 1;
	for (int i = 0; i < 3; i++) {
		struct post	*po = calloc(1, sizeof(*po));

		po->pj = pj;
		po->tag = (char)('1' + i);
		bg_post(pj->bg, post_cb, po);
		if (!pj->wait)
			continue;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 5;
		pthread_mutex_lock(&pj->mu);
		while (pj->seen < i + 1)
			if (pthread_cond_timedwait(&pj->cv, &pj->mu, &until) != 0)
				break;
		if (pj->seen < i + 1)
			pj->waited_ok = 0;
		pthread_mutex_unlock(&pj->mu);
	}
	pthread_mutex_lock(&pj->mu);
	pj->finished = 1;
	pthread_cond_signal(&pj->cv);
	pthread_mutex_unlock(&pj->mu);
}

static void
pjob_done(void *arg, int cancelled)
{
	pjob_log(arg, 'D', cancelled);
}

static void
pjob_init(struct pjob *pj, struct bg *bg, int wait)
{
	memset(pj, 0, sizeof(*pj));
	pj->bg = bg;
	pj->wait = wait;
	pthread_mutex_init(&pj->mu, NULL);
	pthread_cond_init(&pj->cv, NULL);
}

static void
test_partial_results_reach_the_loop_while_the_job_runs(void **state)
{
	struct event_base	*base = event_base_new();
	struct bg		*bg;
	struct pjob		 pj;
	struct timeval		 tv = { 0, 10000 };
	char			 err[256];
	int			 spins = 0;

	(void)state;
	assert_non_null(bg = bg_new(base, 1, err, sizeof(err)));
	pjob_init(&pj, bg, 1);
	bg_submit(bg, pjob_run, pjob_done, &pj);
	while (pj.nlog < 4 && spins++ < 1000) {
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	/* The job waited for each post to be seen: they came before its end. */
	assert_int_equal(pj.waited_ok, 1);
	assert_int_equal(pj.nlog, 4);
	assert_memory_equal(pj.log, "123D", 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pj.cancelled[i], 0);
	assert_int_equal(bg_pending(bg), 0);	/* posts are not jobs */
	bg_free(bg);
	event_base_free(base);
}

static void
test_stopping_reports_partial_results_cancelled_before_their_job(void **state)
{
	struct event_base	*base = event_base_new();
	struct bg		*bg;
	struct pjob		 pj;
	char			 err[256];

	(void)state;
	assert_non_null(bg = bg_new(base, 1, err, sizeof(err)));
	pjob_init(&pj, bg, 0);
	bg_submit(bg, pjob_run, pjob_done, &pj);
	pthread_mutex_lock(&pj.mu);
	while (!pj.finished)
		pthread_cond_wait(&pj.cv, &pj.mu);
	pthread_mutex_unlock(&pj.mu);
	bg_free(bg);	/* the loop never ran: nothing was delivered */
	assert_int_equal(pj.nlog, 4);
	assert_memory_equal(pj.log, "123D", 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pj.cancelled[i], 1);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jobs_run_on_workers_and_report_on_the_loop),
		cmocka_unit_test(test_stopping_reports_unfinished_jobs_cancelled),
		cmocka_unit_test(test_partial_results_reach_the_loop_while_the_job_runs),
		cmocka_unit_test(
		    test_stopping_reports_partial_results_cancelled_before_their_job),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
