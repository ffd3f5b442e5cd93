/* test_bg.c: worker jobs run off the loop and report back on it; stopping
 * reports every job not yet reported as cancelled. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jobs_run_on_workers_and_report_on_the_loop),
		cmocka_unit_test(test_stopping_reports_unfinished_jobs_cancelled),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
