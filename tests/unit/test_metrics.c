/*
 * test_metrics.c: the registry renders exactly the Prometheus text format
 * 0.0.4 that a scraper parses: families, labels, histograms, escaping.
 */
#include <sys/wait.h>

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "util.h"

#include "common.h"

static void
assert_render(struct metrics *m, const char *want)
{
	struct buf	b;

	buf_init(&b);
	metrics_render(m, &b);
	assert_string_equal(b.data != NULL ? b.data : "", want);
	buf_free(&b);
}

static void
test_empty_registry_renders_nothing(void **state)
{
	struct metrics	*m = metrics_new();

	assert_render(m, "");
	metrics_free(m);
	metrics_free(NULL);
}

static void
test_counter_renders_help_type_and_value(void **state)
{
	struct metrics	*m = metrics_new();
	struct metric	*c;

	c = metrics_counter(m, "jha_accepts_total", NULL, "Connections accepted.");
	metric_add(c, 1);
	metric_add(c, 2);
	assert_true(metric_value(c) == 3);
	assert_render(m,
	    "# HELP jha_accepts_total Connections accepted.\n"
	    "# TYPE jha_accepts_total counter\n"
	    "jha_accepts_total 3\n");
	metrics_free(m);
}

static void
test_counter_ignores_negative_and_nan_steps(void **state)
{
	struct metrics	*m = metrics_new();
	struct metric	*c = metrics_counter(m, "c_total", "", "h");

	metric_add(c, 5);
	metric_add(c, -1);
	metric_add(c, NAN);
	assert_true(metric_value(c) == 5);
	metric_set(c, 100);		/* a total kept elsewhere */
	assert_true(metric_value(c) == 100);
	metrics_free(m);
}

static void
test_same_name_and_labels_is_the_same_series_under_one_family(void **state)
{
	struct metrics	*m = metrics_new();
	struct metric	*a, *b, *a2, *g;

	a = metrics_counter(m, "jha_bytes_total", "dir=\"in\"", "Bytes moved.");
	b = metrics_counter(m, "jha_bytes_total", "dir=\"out\"", "ignored help");
	g = metrics_gauge(m, "jha_sessions", "", "Open sessions.");
	a2 = metrics_counter(m, "jha_bytes_total", "dir=\"in\"", NULL);
	assert_ptr_equal(a, a2);
	assert_ptr_not_equal(a, b);
	metric_add(a, 10);
	metric_add(a2, 5);
	metric_add(b, 7);
	metric_set(g, 4);
	metric_add(g, -1);
	assert_render(m,
	    "# HELP jha_bytes_total Bytes moved.\n"
	    "# TYPE jha_bytes_total counter\n"
	    "jha_bytes_total{dir=\"in\"} 15\n"
	    "jha_bytes_total{dir=\"out\"} 7\n"
	    "# HELP jha_sessions Open sessions.\n"
	    "# TYPE jha_sessions gauge\n"
	    "jha_sessions 3\n");
	metrics_free(m);
}

static void
test_gauge_without_help_has_only_a_type_line(void **state)
{
	struct metrics	*m = metrics_new();

	metric_set(metrics_gauge(m, "g", "a=\"1\",b=\"2\"", NULL), -2.5);
	assert_render(m, "# TYPE g gauge\ng{a=\"1\",b=\"2\"} -2.5\n");
	metrics_free(m);
}

static void
test_numbers_are_integers_without_exponent_and_special_values(void **state)
{
	static const struct {
		double		 v;
		const char	*out;
	} cases[] = {
		{ 0, "0" }, { -3, "-3" }, { 1e15, "1000000000000000" },
		{ 12345678901234567890.0, "12345678901234567168" },
		{ 0.1, "0.1" }, { 1.5e-7, "1.5e-07" }, { 1.0 / 3, "0.3333333333333333" },
		{ 1e300, "1e+300" }, { 0x1p64, "1.8446744073709552e+19" }, { NAN, "NaN" },
		{ INFINITY, "+Inf" }, { -INFINITY, "-Inf" },
	};
	struct metrics	*m;
	char		 want[128];
	size_t		 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		m = metrics_new();
		metric_set(metrics_gauge(m, "g", NULL, NULL), cases[i].v);
		snprintf(want, sizeof(want), "# TYPE g gauge\ng %s\n", cases[i].out);
		assert_render(m, want);
		metrics_free(m);
	}
}

static void
test_histogram_buckets_are_cumulative_with_inf_sum_and_count(void **state)
{
	static const double	 bounds[] = { 0.005, 0.1, 1, 10 };
	struct metrics		*m = metrics_new();
	struct metric		*h, *h2;

	h = metrics_histogram(m, "jha_check_seconds", "backend=\"a\"",
	    "Check latency.", bounds, 4);
	h2 = metrics_histogram(m, "jha_check_seconds", "backend=\"b\"", NULL,
	    bounds, 4);
	metric_observe(h, 0.005);	/* le is inclusive */
	metric_observe(h, 0.05);
	metric_observe(h, 0.5);
	metric_observe(h, 0.5);
	metric_observe(h, 100);
	metric_observe(h, NAN);		/* ignored */
	assert_true(metric_value(h) == 5);
	assert_render(m,
	    "# HELP jha_check_seconds Check latency.\n"
	    "# TYPE jha_check_seconds histogram\n"
	    "jha_check_seconds_bucket{backend=\"a\",le=\"0.005\"} 1\n"
	    "jha_check_seconds_bucket{backend=\"a\",le=\"0.1\"} 2\n"
	    "jha_check_seconds_bucket{backend=\"a\",le=\"1\"} 4\n"
	    "jha_check_seconds_bucket{backend=\"a\",le=\"10\"} 4\n"
	    "jha_check_seconds_bucket{backend=\"a\",le=\"+Inf\"} 5\n"
	    "jha_check_seconds_sum{backend=\"a\"} 101.055\n"
	    "jha_check_seconds_count{backend=\"a\"} 5\n"
	    "jha_check_seconds_bucket{backend=\"b\",le=\"0.005\"} 0\n"
	    "jha_check_seconds_bucket{backend=\"b\",le=\"0.1\"} 0\n"
	    "jha_check_seconds_bucket{backend=\"b\",le=\"1\"} 0\n"
	    "jha_check_seconds_bucket{backend=\"b\",le=\"10\"} 0\n"
	    "jha_check_seconds_bucket{backend=\"b\",le=\"+Inf\"} 0\n"
	    "jha_check_seconds_sum{backend=\"b\"} 0\n"
	    "jha_check_seconds_count{backend=\"b\"} 0\n");
	(void)h2;
	metrics_free(m);
}

static void
test_histogram_without_labels_has_only_le(void **state)
{
	static const double	 bounds[] = { 1, 2 };
	struct metrics		*m = metrics_new();
	struct metric		*h = metrics_histogram(m, "h", "", "", bounds, 2);

	metric_observe(h, 2);
	metric_observe(h, 3);
	assert_render(m,
	    "# TYPE h histogram\n"
	    "h_bucket{le=\"1\"} 0\n"
	    "h_bucket{le=\"2\"} 1\n"
	    "h_bucket{le=\"+Inf\"} 2\n"
	    "h_sum 5\n"
	    "h_count 2\n");
	metrics_free(m);
}

static void
test_label_values_are_escaped_and_joined_with_commas(void **state)
{
	struct metrics	*m = metrics_new();
	struct buf	 b;

	buf_init(&b);
	metrics_label(&b, "domain", "a\\b\"c\nd");
	assert_string_equal(b.data, "domain=\"a\\\\b\\\"c\\nd\"");
	metrics_label(&b, "backend", "x");
	assert_string_equal(b.data, "domain=\"a\\\\b\\\"c\\nd\",backend=\"x\"");
	metric_add(metrics_counter(m, "c_total", b.data, "Line one\nback\\slash \"q\""), 1);
	assert_render(m,
	    "# HELP c_total Line one\\nback\\\\slash \"q\"\n"
	    "# TYPE c_total counter\n"
	    "c_total{domain=\"a\\\\b\\\"c\\nd\",backend=\"x\"} 1\n");
	buf_free(&b);
	metrics_free(m);
}

struct collect_state {
	int		 calls;
	struct metric	*g;
};

static void
collect_cb(struct metrics *m, void *arg)
{
	struct collect_state	*cs = arg;

	cs->calls++;
	metric_set(cs->g, cs->calls * 10);
	/* a collector may also create series on the fly */
	metric_set(metrics_gauge(m, "late", NULL, NULL), cs->calls);
}

static void
test_collect_callback_runs_before_every_render(void **state)
{
	struct metrics		*m = metrics_new();
	struct collect_state	 cs = { 0, NULL };

	cs.g = metrics_gauge(m, "fresh", NULL, "Refreshed on collect.");
	metrics_on_collect(m, collect_cb, &cs);
	assert_render(m,
	    "# HELP fresh Refreshed on collect.\n# TYPE fresh gauge\nfresh 10\n"
	    "# TYPE late gauge\nlate 1\n");
	assert_render(m,
	    "# HELP fresh Refreshed on collect.\n# TYPE fresh gauge\nfresh 20\n"
	    "# TYPE late gauge\nlate 2\n");
	assert_int_equal(cs.calls, 2);
	metrics_free(m);
}

static void
test_many_series_are_found_again(void **state)
{
	struct metrics	 *m = metrics_new();
	struct metric	**s;
	char		  labels[64];
	size_t		  i, n = 20000;

	s = calloc(n, sizeof(*s));
	assert_non_null(s);
	for (i = 0; i < n; i++) {
		snprintf(labels, sizeof(labels), "id=\"%zu\"", i);
		s[i] = metrics_counter(m, i % 2 ? "odd_total" : "even_total", labels, "x");
		metric_add(s[i], (double)i);
	}
	for (i = 0; i < n; i++) {
		snprintf(labels, sizeof(labels), "id=\"%zu\"", i);
		assert_ptr_equal(metrics_counter(m, i % 2 ? "odd_total" : "even_total",
		    labels, NULL), s[i]);
		assert_true(metric_value(s[i]) == (double)i);
	}
	free(s);
	metrics_free(m);
}

static void
reregister_as_gauge(void)
{
	struct metrics	*m = metrics_new();

	metrics_counter(m, "x_total", "a=\"1\"", NULL);
	metrics_gauge(m, "x_total", "a=\"2\"", NULL);
}

static void
bad_name(void)
{
	metrics_counter(metrics_new(), "1bad-name", NULL, NULL);
}

static void
bad_bounds(void)
{
	static const double	bounds[] = { 1, 1 };

	metrics_histogram(metrics_new(), "h", NULL, NULL, bounds, 2);
}

static void
observe_counter(void)
{
	metric_observe(metrics_counter(metrics_new(), "c", NULL, NULL), 1);
}

static void
good_registration(void)
{
	struct metrics	*m = metrics_new();

	metrics_counter(m, "ns:x_total", "a=\"1\"", NULL);
	metrics_gauge(m, "_y", NULL, NULL);
	metrics_free(m);
}

static void
test_registration_mistakes_are_fatal_programming_errors(void **state)
{
	assert_false(tu_dies(good_registration));
	assert_true(tu_dies(reregister_as_gauge));
	assert_true(tu_dies(bad_name));
	assert_true(tu_dies(bad_bounds));
	assert_true(tu_dies(observe_counter));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_registry_renders_nothing),
		cmocka_unit_test(test_counter_renders_help_type_and_value),
		cmocka_unit_test(test_counter_ignores_negative_and_nan_steps),
		cmocka_unit_test(test_same_name_and_labels_is_the_same_series_under_one_family),
		cmocka_unit_test(test_gauge_without_help_has_only_a_type_line),
		cmocka_unit_test(test_numbers_are_integers_without_exponent_and_special_values),
		cmocka_unit_test(test_histogram_buckets_are_cumulative_with_inf_sum_and_count),
		cmocka_unit_test(test_histogram_without_labels_has_only_le),
		cmocka_unit_test(test_label_values_are_escaped_and_joined_with_commas),
		cmocka_unit_test(test_collect_callback_runs_before_every_render),
		cmocka_unit_test(test_many_series_are_found_again),
		cmocka_unit_test(test_registration_mistakes_are_fatal_programming_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
