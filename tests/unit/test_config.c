/*
 * test_config.c: config.c turns YAML into positioned nodes, refuses hostile
 * files with clear file:line:col errors, and its typed getters say what is wrong.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

#include "util.h"

#include "common.h"

static char	tmpdir[PATH_MAX];

static int
setup_dir(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_config.XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown_dir(void **state)
{
	return tu_rmtree(tmpdir);
}

static void
write_file(const char *path, const void *data, size_t len)
{
	FILE	*fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static struct cfg_doc *
load(const char *text, struct cfg_errs *errs)
{
	return cfg_load_string("t.yaml", text, strlen(text), errs);
}

static void
dump_errs(const struct cfg_errs *errs)
{
	size_t	i;

	for (i = 0; i < errs->n; i++)
		print_message("  got [%zu]: %s\n", i, errs->msg[i]);
}

/* The errors, exactly and in order; NULL ends the list. */
static void
expect_errs(const struct cfg_errs *errs, ...)
{
	va_list		 ap;
	const char	*want;
	size_t		 i = 0;
	int		 bad = 0;

	va_start(ap, errs);
	while ((want = va_arg(ap, const char *)) != NULL) {
		if (i >= errs->n || strcmp(errs->msg[i], want) != 0) {
			print_message("want [%zu]: %s\n", i, want);
			bad = 1;
		}
		i++;
	}
	va_end(ap);
	if (i != errs->n)
		bad = 1;
	if (bad) {
		dump_errs(errs);
		fail_msg("errors differ (want %zu, got %zu)", i, errs->n);
	}
}

/* A document that must load cleanly. */
static struct cfg_doc *
load_ok(const char *text)
{
	struct cfg_errs	 errs = { NULL, 0 };
	struct cfg_doc	*doc = load(text, &errs);

	if (doc == NULL || errs.n != 0) {
		dump_errs(&errs);
		fail_msg("document did not load");
	}
	return doc;
}

/* A document that must be refused; its first error must be FIRST. */
static void
expect_refused(const char *name, const char *text, size_t len, const char *first)
{
	struct cfg_errs	 errs = { NULL, 0 };
	struct cfg_doc	*doc = cfg_load_string(name, text, len, &errs);

	assert_null(doc);
	assert_true(errs.n >= 1);
	if (first != NULL && strcmp(errs.msg[0], first) != 0) {
		dump_errs(&errs);
		fail_msg("want first: %s", first);
	}
	cfg_errs_free(&errs);
}

/* ---- loading files ---- */

static void
test_missing_file_names_path_and_strerror(void **state)
{
	struct cfg_errs	 errs = { NULL, 0 };
	char		 path[PATH_MAX + 32], want[PATH_MAX + 128];

	snprintf(path, sizeof(path), "%s/nope.yaml", tmpdir);
	assert_null(cfg_load(path, &errs));
	snprintf(want, sizeof(want), "%s: cannot open: %s", path, strerror(ENOENT));
	expect_errs(&errs, want, NULL);
	cfg_errs_free(&errs);
}

static void
test_directory_is_not_a_config_file(void **state)
{
	struct cfg_errs	 errs = { NULL, 0 };
	char		 want[PATH_MAX + 64];

	assert_null(cfg_load(tmpdir, &errs));
	snprintf(want, sizeof(want), "%s: not a regular file", tmpdir);
	expect_errs(&errs, want, NULL);
	cfg_errs_free(&errs);
}

static void
test_fifo_is_refused_without_blocking(void **state)
{
	struct cfg_errs	 errs = { NULL, 0 };
	char		 path[PATH_MAX + 32], want[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/fifo.yaml", tmpdir);
	assert_int_equal(mkfifo(path, 0600), 0);
	alarm(10);	/* a blocking open would hang here: die instead */
	assert_null(cfg_load(path, &errs));
	alarm(0);
	snprintf(want, sizeof(want), "%s: not a regular file", path);
	expect_errs(&errs, want, NULL);
	cfg_errs_free(&errs);
}

static void
test_2mb_file_is_refused(void **state)
{
	struct cfg_errs	 errs = { NULL, 0 };
	char		 path[PATH_MAX + 32], want[PATH_MAX + 128];
	size_t		 len = 2 * 1024 * 1024, i;
	char		*big = malloc(len);

	assert_non_null(big);
	for (i = 0; i < len; i += 16)
		memcpy(big + i, "k0000000000: 1\n#", 16);
	snprintf(path, sizeof(path), "%s/big.yaml", tmpdir);
	write_file(path, big, len);
	assert_null(cfg_load(path, &errs));
	snprintf(want, sizeof(want), "%s: file is too large (2097152 bytes, the "
	    "limit is 1048576)", path);
	expect_errs(&errs, want, NULL);
	cfg_errs_free(&errs);
	/* The same bytes handed over as a string are refused the same way. */
	expect_refused("s.yaml", big, len,
	    "s.yaml: file is too large (2097152 bytes, the limit is 1048576)");
	free(big);
}

static void
test_file_errors_carry_path_line_col(void **state)
{
	struct cfg_errs	 errs = { NULL, 0 };
	struct cfg_doc	*doc;
	char		 path[PATH_MAX + 32], want[PATH_MAX + 128];
	int64_t		 port = 5222;
	const char	*text = "# proxy\nlisten:\n  port: 70000\n";

	snprintf(path, sizeof(path), "%s/proxyd.yaml", tmpdir);
	write_file(path, text, strlen(text));
	assert_non_null(doc = cfg_load(path, &errs));
	assert_string_equal(doc->file, path);
	assert_int_equal(cfg_get_int(&errs, cfg_map_get(doc->root, "listen"),
	    "port", 1, 1, 65535, &port), -1);
	assert_int_equal(port, 5222);
	snprintf(want, sizeof(want), "%s:3:9: port: 70000 is out of range "
	    "(1-65535)", path);
	expect_errs(&errs, want, NULL);
	cfg_errs_free(&errs);
	cfg_free(doc);
}

static void
test_empty_file_is_an_error(void **state)
{
	static const char *const empties[] = { "", "# only a comment\n", "~\n",
	    "---\n", "--- \n...\n", "null\n", NULL };
	size_t	i;

	for (i = 0; empties[i] != NULL; i++)
		expect_refused("t.yaml", empties[i], strlen(empties[i]),
		    "t.yaml: empty configuration");
}

static void
test_bom_and_crlf_files_load(void **state)
{
	struct cfg_errs	 errs = { NULL, 0 };
	struct cfg_doc	*doc = load_ok("\xef\xbb\xbf" "a: 1\r\nb: x\r\nc: 3\r\n");
	int64_t		 v;

	assert_string_equal(cfg_map_get(doc->root, "a")->scalar, "1");
	assert_string_equal(cfg_map_get(doc->root, "b")->scalar, "x");
	assert_int_equal(cfg_get_int(&errs, doc->root, "b", 1, 0, 9, &v), -1);
	expect_errs(&errs, "t.yaml:2:4: b: 'x' is not an integer", NULL);
	cfg_errs_free(&errs);
	cfg_free(doc);
	assert_null(load("a: 1\r\nb: h\xffllo\r\n", &errs));
	expect_errs(&errs, "t.yaml:2:5: invalid leading UTF-8 octet (0xFF): the "
	    "file must be UTF-8 text", NULL);
	cfg_errs_free(&errs);
}

/* ---- positions ---- */

static void
assert_pos(const struct cfg_node *n, enum cfg_kind kind, int line, int col)
{
	assert_non_null(n);
	assert_int_equal(n->kind, kind);
	assert_int_equal(n->line, line);
	assert_int_equal(n->col, col);
}

static void
test_nested_maps_and_lists_keep_positions(void **state)
{
	struct cfg_errs		 errs = { NULL, 0 };
	struct cfg_doc		*doc = load_ok(
	    "top:\n"
	    "  list:\n"
	    "    - a\n"
	    "    - {k: v, k2: [x, y]}\n"
	    "  \"q\": 'z'\n"
	    "other: |\n"
	    "  text\n");
	const struct cfg_node	*top, *list, *fm, *k2;
	int64_t			 v;

	assert_pos(doc->root, CFG_MAP, 1, 1);
	assert_int_equal(doc->root->n, 2);
	assert_pos(doc->root->keys[0], CFG_SCALAR, 1, 1);
	assert_non_null(top = cfg_map_get(doc->root, "top"));
	assert_pos(top, CFG_MAP, 2, 3);
	assert_non_null(list = cfg_map_get(top, "list"));
	assert_pos(list, CFG_LIST, 3, 5);
	assert_int_equal(list->n, 2);
	assert_pos(list->vals[0], CFG_SCALAR, 3, 7);
	assert_string_equal(list->vals[0]->scalar, "a");
	assert_int_equal(list->vals[0]->quoted, 0);
	fm = list->vals[1];
	assert_pos(fm, CFG_MAP, 4, 7);
	assert_pos(fm->keys[0], CFG_SCALAR, 4, 8);
	assert_pos(cfg_map_get(fm, "k"), CFG_SCALAR, 4, 11);
	assert_pos(fm->keys[1], CFG_SCALAR, 4, 14);
	assert_non_null(k2 = cfg_map_get(fm, "k2"));
	assert_pos(k2, CFG_LIST, 4, 18);
	assert_pos(k2->vals[0], CFG_SCALAR, 4, 19);
	assert_pos(k2->vals[1], CFG_SCALAR, 4, 22);
	assert_pos(top->keys[1], CFG_SCALAR, 5, 3);
	assert_int_equal(top->keys[1]->quoted, 1);
	assert_pos(cfg_map_get(top, "q"), CFG_SCALAR, 5, 8);
	assert_int_equal(cfg_map_get(top, "q")->quoted, 1);
	assert_string_equal(cfg_map_get(doc->root, "other")->scalar, "text\n");
	assert_int_equal(cfg_map_get(doc->root, "other")->quoted, 1);
	/* A getter deep inside reports that node's own position. */
	assert_int_equal(cfg_get_int(&errs, fm, "k", 0, 0, 10, &v), -1);
	assert_int_equal(cfg_node_int(&errs, k2->vals[1], "k2[1]", 0, 10, &v), -1);
	expect_errs(&errs, "t.yaml:4:11: k: 'v' is not an integer",
	    "t.yaml:4:22: k2[1]: 'y' is not an integer", NULL);
	cfg_errs_free(&errs);
	cfg_free(doc);
}

static void
test_map_keys_match_exactly(void **state)
{
	struct cfg_doc	*doc = load_ok("Port: 1\nport: 2\n\"a b\": 3\n");

	assert_string_equal(cfg_map_get(doc->root, "port")->scalar, "2");
	assert_string_equal(cfg_map_get(doc->root, "Port")->scalar, "1");
	assert_string_equal(cfg_map_get(doc->root, "a b")->scalar, "3");
	assert_null(cfg_map_get(doc->root, "PORT"));
	assert_null(cfg_map_get(doc->root, "a"));
	assert_null(cfg_map_get(NULL, "port"));
	assert_null(cfg_map_get(cfg_map_get(doc->root, "port"), "port"));
	cfg_free(doc);
}

/* ---- typed getters ---- */

static void
test_get_str_takes_scalars_and_refuses_collections(void **state)
{
	struct cfg_errs	 errs = { NULL, 0 };
	struct cfg_doc	*doc = load_ok(
	    "name: jabber\n"
	    "num: 80\n"
	    "empty: \"\"\n"
	    "tilde: \"~\"\n"
	    "m: {a: 1}\n"
	    "l: [1]\n"
	    "s: !!str 80\n");
	const char	*s = "default";

	assert_int_equal(cfg_get_str(&errs, doc->root, "name", 1, &s), 0);
	assert_string_equal(s, "jabber");
	assert_int_equal(cfg_get_str(&errs, doc->root, "num", 1, &s), 0);
	assert_string_equal(s, "80");
	assert_int_equal(cfg_get_str(&errs, doc->root, "empty", 1, &s), 0);
	assert_string_equal(s, "");
	assert_int_equal(cfg_get_str(&errs, doc->root, "tilde", 1, &s), 0);
	assert_string_equal(s, "~");
	assert_int_equal(cfg_get_str(&errs, doc->root, "s", 1, &s), 0);
	assert_string_equal(s, "80");
	assert_int_equal(cfg_map_get(doc->root, "s")->quoted, 1);
	assert_int_equal(errs.n, 0);
	s = "kept";
	assert_int_equal(cfg_get_str(&errs, doc->root, "m", 0, &s), -1);
	assert_int_equal(cfg_get_str(&errs, doc->root, "l", 0, &s), -1);
	assert_string_equal(s, "kept");
	expect_errs(&errs, "t.yaml:5:4: m: expected a string, found a map",
	    "t.yaml:6:4: l: expected a string, found a list", NULL);
	cfg_errs_free(&errs);
	cfg_free(doc);
}

static void
test_get_int_range_and_garbage(void **state)
{
	struct cfg_errs	 errs = { NULL, 0 };
	struct cfg_doc	*doc = load_ok(
	    "port: 5222\n"
	    "big: 70000\n"
	    "junk: 12abc\n"
	    "huge: 99999999999999999999\n"
	    "neg: -5\n"
	    "plus: +7\n"
	    "quoted: \"80\"\n"
	    "frac: 1.5\n"
	    "map: {}\n"
	    "min: -9223372036854775808\n"
	    "low: -20\n");
	int64_t		 v = 42;

	assert_int_equal(cfg_get_int(&errs, doc->root, "port", 1, 1, 65535, &v), 0);
	assert_int_equal(v, 5222);
	assert_int_equal(cfg_get_int(&errs, doc->root, "plus", 1, 0, 10, &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(cfg_get_int(&errs, doc->root, "quoted", 1, 0, 100, &v), 0);
	assert_int_equal(v, 80);
	assert_int_equal(cfg_get_int(&errs, doc->root, "min", 1, INT64_MIN,
	    INT64_MAX, &v), 0);
	assert_true(v == INT64_MIN);
	assert_int_equal(errs.n, 0);
	v = 42;
	assert_int_equal(cfg_get_int(&errs, doc->root, "big", 1, 1, 65535, &v), -1);
	assert_int_equal(cfg_get_int(&errs, doc->root, "junk", 1, 1, 65535, &v), -1);
	assert_int_equal(cfg_get_int(&errs, doc->root, "huge", 1, 1, 65535, &v), -1);
	assert_int_equal(cfg_get_int(&errs, doc->root, "neg", 1, 0, INT64_MAX,
	    &v), -1);
	assert_int_equal(cfg_get_int(&errs, doc->root, "frac", 1, 0, 9, &v), -1);
	assert_int_equal(cfg_get_int(&errs, doc->root, "map", 1, 0, 9, &v), -1);
	assert_int_equal(cfg_get_int(&errs, doc->root, "low", 1, -10, 10, &v), -1);
	assert_int_equal(cfg_get_int(&errs, doc->root, "huge", 1, INT64_MIN,
	    INT64_MAX, &v), -1);
	assert_int_equal(v, 42);
	expect_errs(&errs,
	    "t.yaml:2:6: big: 70000 is out of range (1-65535)",
	    "t.yaml:3:7: junk: '12abc' is not an integer",
	    "t.yaml:4:7: huge: 99999999999999999999 is out of range (1-65535)",
	    "t.yaml:5:6: neg: -5 is out of range (at least 0)",
	    "t.yaml:8:7: frac: '1.5' is not an integer",
	    "t.yaml:9:6: map: expected an integer, found a map",
	    "t.yaml:11:6: low: -20 is out of range (-10 to 10)",
	    "t.yaml:4:7: huge: 99999999999999999999 is out of range "
	    "(-9223372036854775808 to 9223372036854775807)", NULL);
	cfg_errs_free(&errs);
	cfg_free(doc);
}

static void
test_get_bool_words_and_quoted_yes(void **state)
{
	struct cfg_errs	 errs = { NULL, 0 };
	struct cfg_doc	*doc = load_ok(
	    "a: yes\nb: No\nc: ON\nd: off\ne: TRUE\nf: false\n"
	    "g: \"yes\"\nh: maybe\ni: [true]\nj: 1\n");
	static const struct { const char *key; int want; } ok[] = {
		{ "a", 1 }, { "b", 0 }, { "c", 1 }, { "d", 0 }, { "e", 1 },
		{ "f", 0 }, { "g", 1 },
	};
	size_t		 i;
	int		 v;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		v = -1;
		assert_int_equal(cfg_get_bool(&errs, doc->root, ok[i].key, 1, &v), 0);
		assert_int_equal(v, ok[i].want);
	}
	v = 7;
	assert_int_equal(cfg_get_bool(&errs, doc->root, "h", 1, &v), -1);
	assert_int_equal(cfg_get_bool(&errs, doc->root, "i", 1, &v), -1);
	assert_int_equal(cfg_get_bool(&errs, doc->root, "j", 1, &v), -1);
	assert_int_equal(v, 7);
	expect_errs(&errs,
	    "t.yaml:8:4: h: 'maybe' is not a boolean (use true or false)",
	    "t.yaml:9:4: i: expected true or false, found a list",
	    "t.yaml:10:4: j: '1' is not a boolean (use true or false)", NULL);
	assert_int_equal(cfg_parse_bool("Off", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(cfg_parse_bool("yess", &v), -1);
	assert_int_equal(cfg_parse_bool("", &v), -1);
	assert_int_equal(cfg_parse_bool(NULL, &v), -1);
	cfg_errs_free(&errs);
	cfg_free(doc);
}

static void
test_parse_duration_units_and_mistakes(void **state)
{
	static const struct { const char *in; int64_t ms; } ok[] = {
		{ "250ms", 250 }, { "2s", 2000 }, { "1.5s", 1500 },
		{ "1m", 60000 }, { "1h", 3600000 }, { "0ms", 0 },
		{ "10 s", 10000 }, { "1.5000000s", 1500 }, { "0.001s", 1 },
		{ "2562047h", 2562047LL * 3600000 },
	};
	static const struct { const char *in, *err; } bad[] = {
		{ "250", "'250' needs a unit (ms, s, m, h)" },
		{ "0", "'0' needs a unit (ms, s, m, h)" },
		{ "-5s", "'-5s': a duration cannot be negative" },
		{ "5x", "'5x' has an unknown unit (use ms, s, m, h)" },
		{ "5S", "'5S' has an unknown unit (use ms, s, m, h)" },
		{ "abc", "'abc' is not a duration (a number and a unit: ms, s, m, h)" },
		{ "", "'' is not a duration (a number and a unit: ms, s, m, h)" },
		{ ".5s", "'.5s' is not a duration (a number and a unit: ms, s, m, h)" },
		{ "1.s", "'1.s' is not a duration (a number and a unit: ms, s, m, h)" },
		{ "0.5ms", "'0.5ms' is not a whole number of milliseconds" },
		{ "1.2345678s", "'1.2345678s' has too many decimals" },
		{ "3000000000000h", "'3000000000000h' is too large" },
		{ "99999999999999999999ms", "'99999999999999999999ms' is too large" },
		{ "1s5", "'1s5' has an unknown unit (use ms, s, m, h)" },
	};
	char	err[256];
	int64_t	v;
	size_t	i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		v = -1;
		if (cfg_parse_duration_ms(ok[i].in, &v, err, sizeof(err)) != 0)
			fail_msg("%s: %s", ok[i].in, err);
		assert_int_equal(v, ok[i].ms);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = -1;
		err[0] = '\0';
		assert_int_equal(cfg_parse_duration_ms(bad[i].in, &v, err,
		    sizeof(err)), -1);
		assert_string_equal(err, bad[i].err);
		assert_int_equal(v, -1);
	}
}

static void
test_get_duration_reports_position_and_range(void **state)
{
	struct cfg_errs	 errs = { NULL, 0 };
	struct cfg_doc	*doc = load_ok(
	    "interval: 250ms\n"
	    "timeout: 250\n"
	    "long: 2m\n"
	    "short: 10ms\n"
	    "neg: -1s\n"
	    "list: [1s]\n");
	int64_t		 v = 7;

	assert_int_equal(cfg_get_duration_ms(&errs, doc->root, "interval", 1, 1,
	    60000, &v), 0);
	assert_int_equal(v, 250);
	v = 7;
	assert_int_equal(cfg_get_duration_ms(&errs, doc->root, "timeout", 1, 1,
	    60000, &v), -1);
	assert_int_equal(cfg_get_duration_ms(&errs, doc->root, "long", 1, 1000,
	    60000, &v), -1);
	assert_int_equal(cfg_get_duration_ms(&errs, doc->root, "short", 1, 1000,
	    INT64_MAX, &v), -1);
	assert_int_equal(cfg_get_duration_ms(&errs, doc->root, "neg", 1, 0,
	    60000, &v), -1);
	assert_int_equal(cfg_get_duration_ms(&errs, doc->root, "list", 1, 0,
	    60000, &v), -1);
	assert_int_equal(v, 7);
	expect_errs(&errs,
	    "t.yaml:2:10: timeout: '250' needs a unit (ms, s, m, h)",
	    "t.yaml:3:7: long: 2m is out of range (1s-1m)",
	    "t.yaml:4:8: short: 10ms is out of range (at least 1s)",
	    "t.yaml:5:6: neg: '-1s': a duration cannot be negative",
	    "t.yaml:6:7: list: expected a duration, found a list", NULL);
	cfg_errs_free(&errs);
	cfg_free(doc);
}

static void
test_parse_size_units_and_mistakes(void **state)
{
	static const struct { const char *in; uint64_t v; } ok[] = {
		{ "64KiB", 65536 }, { "1MiB", 1048576 }, { "1GiB", 1073741824 },
		{ "10KB", 10000 }, { "512B", 512 }, { "512", 512 }, { "0", 0 },
		{ "1.5KiB", 1536 }, { "1 MiB", 1048576 }, { "2kib", 2048 },
		{ "1TiB", 1099511627776ULL }, { "3MB", 3000000 },
		{ "18446744073709551615", UINT64_MAX },
	};
	static const struct { const char *in, *err; } bad[] = {
		{ "64k", "'64k' has an unknown unit (use B, KB, MB, GB, TB, KiB, "
		    "MiB, GiB, TiB)" },
		{ "-1", "'-1': a size cannot be negative" },
		{ "-1KiB", "'-1KiB': a size cannot be negative" },
		{ "0.5B", "'0.5B' is not a whole number of bytes" },
		{ "1.1", "'1.1' is not a whole number of bytes" },
		{ "18446744073709551616", "'18446744073709551616' is too large" },
		{ "20000000TiB", "'20000000TiB' is too large" },
		{ "KiB", "'KiB' is not a size (a number and a unit: B, KB, MB, GB, "
		    "TB, KiB, MiB, GiB, TiB)" },
	};
	char		err[256];
	uint64_t	v;
	size_t		i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		v = 1234;
		if (cfg_parse_size(ok[i].in, &v, err, sizeof(err)) != 0)
			fail_msg("%s: %s", ok[i].in, err);
		assert_true(v == ok[i].v);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 1234;
		err[0] = '\0';
		assert_int_equal(cfg_parse_size(bad[i].in, &v, err, sizeof(err)), -1);
		assert_string_equal(err, bad[i].err);
		assert_true(v == 1234);
	}
}

static void
test_get_size_range_message(void **state)
{
	struct cfg_errs	 errs = { NULL, 0 };
	struct cfg_doc	*doc = load_ok("buf: 64KiB\nmax: 2GiB\nodd: 10000\n"
	    "tiny: 1\n");
	uint64_t	 v = 1;

	assert_int_equal(cfg_get_size(&errs, doc->root, "buf", 1, 1024,
	    1ULL << 30, &v), 0);
	assert_true(v == 65536);
	assert_int_equal(cfg_get_size(&errs, doc->root, "max", 1, 1024,
	    1ULL << 30, &v), -1);
	assert_int_equal(cfg_get_size(&errs, doc->root, "odd", 1, 1, 9999, &v), -1);
	assert_int_equal(cfg_get_size(&errs, doc->root, "tiny", 1, 512,
	    UINT64_MAX, &v), -1);
	assert_true(v == 65536);
	expect_errs(&errs, "t.yaml:2:6: max: 2GiB is out of range (1KiB-1GiB)",
	    "t.yaml:3:6: odd: 10000 is out of range (1B-9999B)",
	    "t.yaml:4:7: tiny: 1 is out of range (at least 512B)", NULL);
	cfg_errs_free(&errs);
	cfg_free(doc);
}

static void
test_get_addr_wraps_net_errors(void **state)
{
	struct cfg_errs	 errs = { NULL, 0 };
	struct cfg_doc	*doc = load_ok(
	    "v4: 127.0.0.1:5222\n"
	    "v6: \"[::1]:80\"\n"
	    "port: 127.0.0.1:70000\n"
	    "noport: nohost\n"
	    "list: [127.0.0.1:1]\n");
	struct net_addr	 a;

	memset(&a, 0, sizeof(a));
	assert_int_equal(cfg_get_addr(&errs, doc->root, "v4", 1, &a), 0);
	assert_int_equal(a.port, 5222);
	assert_string_equal(a.text, "127.0.0.1:5222");
	assert_int_equal(cfg_get_addr(&errs, doc->root, "v6", 1, &a), 0);
	assert_int_equal(a.port, 80);
	assert_string_equal(a.host, "::1");
	assert_int_equal(errs.n, 0);
	assert_int_equal(cfg_get_addr(&errs, doc->root, "port", 1, &a), -1);
	assert_int_equal(cfg_get_addr(&errs, doc->root, "noport", 1, &a), -1);
	assert_int_equal(cfg_get_addr(&errs, doc->root, "list", 1, &a), -1);
	/* A refused address leaves the previous value whole. */
	assert_int_equal(a.port, 80);
	assert_string_equal(a.host, "::1");
	assert_int_equal(errs.n, 3);
	assert_string_equal(errs.msg[0],
	    "t.yaml:3:7: port: port 70000 is out of range (1-65535)");
	assert_true(strncmp(errs.msg[1], "t.yaml:4:9: noport: ", 20) == 0);
	assert_non_null(strstr(errs.msg[1], "nohost"));
	assert_string_equal(errs.msg[2],
	    "t.yaml:5:7: list: expected an address (host:port), found a list");
	cfg_errs_free(&errs);
	cfg_free(doc);
}

static void
test_get_enum_lists_choices(void **state)
{
	static const char *const dirs[] = { "send", "receive", "bidirectional",
	    NULL };
	struct cfg_errs	 errs = { NULL, 0 };
	struct cfg_doc	*doc = load_ok("a: receive\nb: sned\nc: [send]\n"
	    "d: Send\n");
	int		 v = -1;

	assert_int_equal(cfg_get_enum(&errs, doc->root, "a", 1, dirs, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(cfg_get_enum(&errs, doc->root, "b", 1, dirs, &v), -1);
	assert_int_equal(cfg_get_enum(&errs, doc->root, "c", 1, dirs, &v), -1);
	assert_int_equal(cfg_get_enum(&errs, doc->root, "d", 1, dirs, &v), -1);
	assert_int_equal(v, 1);
	expect_errs(&errs,
	    "t.yaml:2:4: b: must be one of: send, receive, bidirectional "
	    "(found 'sned')",
	    "t.yaml:3:4: c: expected one of: send, receive, bidirectional, "
	    "found a list",
	    "t.yaml:4:4: d: must be one of: send, receive, bidirectional "
	    "(found 'Send')", NULL);
	cfg_errs_free(&errs);
	cfg_free(doc);
}

static void
test_get_list_and_map_check_kind(void **state)
{
	struct cfg_errs		 errs = { NULL, 0 };
	struct cfg_doc		*doc = load_ok(
	    "backends:\n  - a\n  - b\nopts: {x: 1}\nnotlist: 5\nnotmap: [1]\n"
	    "emptylist: []\n");
	const struct cfg_node	*n;

	assert_non_null(n = cfg_get_list(&errs, doc->root, "backends", 1));
	assert_int_equal(n->n, 2);
	assert_non_null(n = cfg_get_map(&errs, doc->root, "opts", 1));
	assert_int_equal(n->n, 1);
	assert_non_null(n = cfg_get_list(&errs, doc->root, "emptylist", 1));
	assert_int_equal(n->n, 0);
	assert_null(cfg_get_list(&errs, doc->root, "absent", 0));
	assert_int_equal(errs.n, 0);
	assert_null(cfg_get_list(&errs, doc->root, "notlist", 0));
	assert_null(cfg_get_map(&errs, doc->root, "notmap", 0));
	assert_null(cfg_get_map(&errs, doc->root, "absent", 1));
	assert_int_equal(cfg_expect(&errs, doc->root, NULL, CFG_MAP), 0);
	assert_int_equal(cfg_expect(&errs, doc->root, "root", CFG_LIST), -1);
	assert_int_equal(cfg_expect(&errs, NULL, "gone", CFG_MAP), -1);
	expect_errs(&errs,
	    "t.yaml:5:10: notlist: expected a list, found '5'",
	    "t.yaml:6:9: notmap: expected a map, found a list",
	    "t.yaml:1:1: absent: required key is missing",
	    "t.yaml:1:1: root: expected a list, found a map",
	    "gone: expected a map, found nothing", NULL);
	cfg_errs_free(&errs);
	cfg_free(doc);
}

static void
test_null_or_empty_value_counts_as_absent(void **state)
{
	struct cfg_errs	 errs = { NULL, 0 };
	struct cfg_doc	*doc = load_ok("a: ~\nb:\nc: null\nd: \"\"\ne: 'null'\n");
	const char	*s = "default";
	int64_t		 v = 9;

	assert_int_equal(cfg_get_str(&errs, doc->root, "a", 0, &s), 0);
	assert_int_equal(cfg_get_str(&errs, doc->root, "b", 0, &s), 0);
	assert_int_equal(cfg_get_str(&errs, doc->root, "c", 0, &s), 0);
	assert_int_equal(cfg_get_int(&errs, doc->root, "b", 0, 0, 10, &v), 0);
	assert_null(cfg_get_list(&errs, doc->root, "a", 0));
	assert_string_equal(s, "default");
	assert_int_equal(v, 9);
	assert_int_equal(errs.n, 0);
	assert_int_equal(cfg_get_str(&errs, doc->root, "d", 0, &s), 0);
	assert_string_equal(s, "");
	assert_int_equal(cfg_get_str(&errs, doc->root, "e", 0, &s), 0);
	assert_string_equal(s, "null");
	assert_int_equal(cfg_get_str(&errs, doc->root, "b", 1, &s), -1);
	assert_int_equal(cfg_get_int(&errs, doc->root, "zz", 1, 0, 1, &v), -1);
	assert_int_equal(cfg_get_int(&errs, NULL, "zz", 0, 0, 1, &v), 0);
	assert_int_equal(cfg_get_int(&errs, NULL, "yy", 1, 0, 1, &v), -1);
	assert_int_equal(cfg_node_str(&errs, cfg_map_get(doc->root, "a"), "a[0]",
	    &s), -1);
	assert_int_equal(v, 9);
	expect_errs(&errs, "t.yaml:2:3: b: needs a value",
	    "t.yaml:1:1: zz: required key is missing",
	    "yy: required key is missing",
	    "t.yaml:1:4: a[0]: expected a string, found an empty value", NULL);
	cfg_errs_free(&errs);
	cfg_free(doc);
}

static void
test_getter_on_a_non_map_says_so_once(void **state)
{
	struct cfg_errs	 errs = { NULL, 0 };
	struct cfg_doc	*doc = load_ok("listen: 5222\n");
	const char	*s = "x";
	int64_t		 v = 0;

	assert_int_equal(cfg_get_str(&errs, cfg_map_get(doc->root, "listen"),
	    "host", 0, &s), -1);
	assert_int_equal(cfg_get_int(&errs, cfg_map_get(doc->root, "listen"),
	    "port", 0, 0, 9, &v), -1);
	expect_errs(&errs, "t.yaml:1:9: expected a map, found '5222'", NULL);
	cfg_errs_free(&errs);
	cfg_free(doc);
}

/* ---- keys ---- */

static void
test_unknown_key_suggests_nearest(void **state)
{
	static const char *const known[] = { "listen", "backends", "timeout",
	    "id", NULL };
	struct cfg_errs	 errs = { NULL, 0 };
	struct cfg_doc	*doc = load_ok(
	    "listn: 1\n"
	    "backends: []\n"
	    "zzzzzz: 2\n"
	    "Timeout: 3\n"
	    "backend: 4\n"
	    "x: 5\n"
	    "listen: 6\n");

	assert_int_equal(cfg_check_keys(&errs, doc->root, known), -1);
	expect_errs(&errs,
	    "t.yaml:1:1: listn: unknown key (did you mean 'listen'?)",
	    "t.yaml:3:1: zzzzzz: unknown key",
	    "t.yaml:4:1: Timeout: unknown key (did you mean 'timeout'?)",
	    "t.yaml:5:1: backend: unknown key (did you mean 'backends'?)",
	    "t.yaml:6:1: x: unknown key", NULL);
	cfg_errs_free(&errs);
	cfg_free(doc);
	doc = load_ok("listen: 1\nid: 2\n");
	assert_int_equal(cfg_check_keys(&errs, doc->root, known), 0);
	assert_int_equal(cfg_check_keys(&errs, NULL, known), 0);
	assert_int_equal(errs.n, 0);
	cfg_free(doc);
}

static void
test_edit_distance(void **state)
{
	char	a[200], b[200];

	assert_int_equal(cfg_edit_distance("", ""), 0);
	assert_int_equal(cfg_edit_distance("abc", ""), 3);
	assert_int_equal(cfg_edit_distance("", "abc"), 3);
	assert_int_equal(cfg_edit_distance("kitten", "sitting"), 3);
	assert_int_equal(cfg_edit_distance("listn", "listen"), 1);
	assert_int_equal(cfg_edit_distance("flaw", "lawn"), 2);
	assert_int_equal(cfg_edit_distance("same", "same"), 0);
	memset(a, 'a', sizeof(a) - 1);
	a[sizeof(a) - 1] = '\0';
	memcpy(b, a, sizeof(b));
	assert_int_equal(cfg_edit_distance(a, b), 0);
	b[0] = 'b';
	assert_int_equal(cfg_edit_distance(a, b), sizeof(a) - 1);
	assert_int_equal(cfg_edit_distance(a, "a"), sizeof(a) - 1);
	a[64] = '\0';
	b[64] = '\0';
	assert_int_equal(cfg_edit_distance(a, b), 1);
}

static void
test_duplicate_key_names_first_line(void **state)
{
	struct cfg_errs	 errs = { NULL, 0 };

	assert_null(load("a: 1\nb: 2\nx: 3\nc:\n  x: 4\n  x: 5\nx: 6\n"
	    "f: {k: 1, k: 2}\n", &errs));
	expect_errs(&errs,
	    "t.yaml:6:3: duplicate key 'x' (first at line 5)",
	    "t.yaml:7:1: duplicate key 'x' (first at line 3)",
	    "t.yaml:8:11: duplicate key 'k' (first at line 8)", NULL);
	cfg_errs_free(&errs);
}

static void
test_duplicate_key_found_in_a_big_map(void **state)
{
	struct cfg_errs	 errs = { NULL, 0 };
	struct buf	 b;
	int		 i;

	buf_init(&b);
	for (i = 0; i < 20000; i++)
		buf_printf(&b, "k%d: %d\n", i, i);
	buf_printf(&b, "k17: again\nk19999: again\n");
	assert_null(cfg_load_string("t.yaml", b.data, b.len, &errs));
	expect_errs(&errs,
	    "t.yaml:20001:1: duplicate key 'k17' (first at line 18)",
	    "t.yaml:20002:1: duplicate key 'k19999' (first at line 20000)", NULL);
	cfg_errs_free(&errs);
	buf_free(&b);
}

static void
test_keys_must_be_scalars(void **state)
{
	struct cfg_errs	 errs = { NULL, 0 };

	assert_null(load("? [a, b]\n: 1\n? {c: d}\n: 2\nok: 3\n\"\": 4\n", &errs));
	expect_errs(&errs,
	    "t.yaml:1:3: a key must be a string, not a list",
	    "t.yaml:3:3: a key must be a string, not a map",
	    "t.yaml:6:1: a key cannot be empty", NULL);
	cfg_errs_free(&errs);
}

/* ---- all the errors at once ---- */

static void
test_three_mistakes_give_three_messages(void **state)
{
	static const char *const known[] = { "listen", "port", "timeout", NULL };
	struct cfg_errs	 errs = { NULL, 0 };
	struct cfg_doc	*doc = load_ok(
	    "listn: 127.0.0.1:5222\n"
	    "port: 70000\n"
	    "timeout: 250\n");
	int64_t		 port = 1, timeout = 1;

	cfg_check_keys(&errs, doc->root, known);
	cfg_get_int(&errs, doc->root, "port", 0, 1, 65535, &port);
	cfg_get_duration_ms(&errs, doc->root, "timeout", 0, 1, 60000, &timeout);
	expect_errs(&errs,
	    "t.yaml:1:1: listn: unknown key (did you mean 'listen'?)",
	    "t.yaml:2:7: port: 70000 is out of range (1-65535)",
	    "t.yaml:3:10: timeout: '250' needs a unit (ms, s, m, h)", NULL);
	cfg_errs_free(&errs);
	cfg_free(doc);
}

static void
test_three_load_mistakes_give_three_messages(void **state)
{
	struct cfg_errs	 errs = { NULL, 0 };

	assert_null(load("a: 1\nb: !custom 2\na: 3\nc: *x\n", &errs));
	expect_errs(&errs,
	    "t.yaml:2:4: tag '!custom' is not supported (only standard tags "
	    "such as !!str)",
	    "t.yaml:3:1: duplicate key 'a' (first at line 1)",
	    "t.yaml:4:4: aliases are not supported (*x): write the value out "
	    "in full", NULL);
	cfg_errs_free(&errs);
}

static void
test_errors_stop_at_the_cap_with_a_last_line(void **state)
{
	static const char *const known[] = { "a", NULL };
	struct cfg_errs	 errs = { NULL, 0 };
	struct cfg_doc	*doc;
	struct buf	 b;
	int		 i;

	buf_init(&b);
	for (i = 0; i < 150; i++)
		buf_printf(&b, "unknown%d: 1\n", i);
	assert_non_null(doc = cfg_load_string("t.yaml", b.data, b.len, &errs));
	assert_int_equal(cfg_check_keys(&errs, doc->root, known), -1);
	assert_int_equal(errs.n, CFG_MAX_ERRS + 1);
	assert_string_equal(errs.msg[0], "t.yaml:1:1: unknown0: unknown key");
	assert_string_equal(errs.msg[CFG_MAX_ERRS - 1],
	    "t.yaml:100:1: unknown99: unknown key");
	assert_string_equal(errs.msg[CFG_MAX_ERRS],
	    "t.yaml: too many errors, only the first 100 are shown");
	cfg_err(&errs, doc->root, NULL, "more");
	assert_int_equal(errs.n, CFG_MAX_ERRS + 1);
	cfg_errs_free(&errs);
	cfg_free(doc);
	buf_free(&b);
}

static void
test_cfg_err_formats_and_says_a_thing_once(void **state)
{
	struct cfg_errs	 errs = { NULL, 0 };
	struct cfg_doc	*doc = load_ok("a:\n  b: 1\n");
	const struct cfg_node *b = cfg_map_get(cfg_map_get(doc->root, "a"), "b");

	cfg_err(&errs, b, "b", "must be %s", "even");
	cfg_err(&errs, b, NULL, "odd value %d", 1);
	cfg_err(&errs, NULL, "control", "must be an absolute path");
	cfg_err(&errs, NULL, NULL, "%s: empty configuration", "x.yaml");
	cfg_err(&errs, b, "b", "must be %s", "even");
	cfg_err(NULL, b, "b", "ignored without a list");
	expect_errs(&errs, "t.yaml:2:6: b: must be even",
	    "t.yaml:2:6: odd value 1", "control: must be an absolute path",
	    "x.yaml: empty configuration", NULL);
	cfg_errs_free(&errs);
	assert_int_equal(errs.n, 0);
	assert_null(errs.msg);
	cfg_errs_free(&errs);
	cfg_free(doc);
}

static void
test_messages_escape_control_characters(void **state)
{
	static const char *const known[] = { "red", "v", NULL };
	struct cfg_errs	 errs = { NULL, 0 };
	struct cfg_doc	*doc = load_ok(
	    "\"\\e[31mred\": 1\n"
	    "\"\\u202Eevil\": 2\n"
	    "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk:"
	    " 3\n"
	    "v: \"a\\nb\\x85\"\n");
	int64_t		 v;

	cfg_check_keys(&errs, doc->root, known);
	cfg_get_int(&errs, doc->root, "v", 0, 0, 1, &v);
	expect_errs(&errs,
	    "t.yaml:1:1: \\x1b[31mred: unknown key",
	    "t.yaml:2:1: \\u202eevil: unknown key",
	    "t.yaml:3:1: kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...:"
	    " unknown key",
	    "t.yaml:4:4: v: 'a\\x0ab\\u0085' is not an integer", NULL);
	cfg_errs_free(&errs);
	cfg_free(doc);
}

static void
test_errs_print_and_log_write_every_line(void **state)
{
	struct cfg_errs	 errs = { NULL, 0 };
	char		 path[PATH_MAX + 32], text[4096];
	FILE		*fp;
	size_t		 n;
	int		 saved, fd;

	cfg_err(&errs, NULL, "a", "first");
	cfg_err(&errs, NULL, "b", "second");
	assert_non_null(fp = tmpfile());
	cfg_errs_print(&errs, fp);
	rewind(fp);
	n = fread(text, 1, sizeof(text) - 1, fp);
	text[n] = '\0';
	assert_string_equal(text, "a: first\nb: second\n");
	fclose(fp);

	snprintf(path, sizeof(path), "%s/log.txt", tmpdir);
	assert_true((fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600)) >= 0);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	cfg_errs_log(&errs);
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = (size_t)pread(fd, text, sizeof(text) - 1, 0);
	close(fd);
	text[n] = '\0';
	assert_non_null(strstr(text, "a: first\n"));
	assert_non_null(strstr(text, "b: second\n"));
	assert_non_null(strstr(text, "error"));
	cfg_errs_free(&errs);
}

/* ---- hostile YAML ---- */

static void
test_alias_bomb_is_refused(void **state)
{
	static const char *bomb =
	    "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
	    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
	    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
	    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
	    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
	    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
	    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
	    "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
	    "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
	struct cfg_errs	 errs = { NULL, 0 };

	assert_null(load(bomb, &errs));
	/* 9 anchors and 72 aliases, each named where it is. */
	assert_int_equal(errs.n, 81);
	assert_string_equal(errs.msg[0], "t.yaml:1:4: anchors are not supported "
	    "(&a): write the value out in full");
	assert_string_equal(errs.msg[1], "t.yaml:2:4: anchors are not supported "
	    "(&b): write the value out in full");
	assert_string_equal(errs.msg[2], "t.yaml:2:8: aliases are not supported "
	    "(*a): write the value out in full");
	assert_string_equal(errs.msg[80], "t.yaml:9:32: aliases are not "
	    "supported (*h): write the value out in full");
	cfg_errs_free(&errs);
}

static void
test_anchor_and_merge_key_are_refused(void **state)
{
	struct cfg_errs	 errs = { NULL, 0 };

	assert_null(load("base: &base\n  port: 1\nother:\n  <<: *base\n", &errs));
	expect_errs(&errs,
	    "t.yaml:1:7: anchors are not supported (&base): write the value "
	    "out in full",
	    "t.yaml:4:7: aliases are not supported (*base): write the value out "
	    "in full", NULL);
	cfg_errs_free(&errs);
}

static void
test_100kb_scalar_is_refused(void **state)
{
	struct cfg_errs	 errs = { NULL, 0 };
	size_t		 len = 3 + 100 * 1024 + 1;
	char		*text = malloc(len + 1);

	assert_non_null(text);
	memcpy(text, "a: ", 3);
	memset(text + 3, 'x', 100 * 1024);
	text[len - 1] = '\n';
	text[len] = '\0';
	assert_null(cfg_load_string("t.yaml", text, len, &errs));
	expect_errs(&errs, "t.yaml:1:4: value is too long (102400 bytes, the "
	    "limit is 65536)", NULL);
	cfg_errs_free(&errs);
	/* Exactly at the limit is fine. */
	text[3 + CFG_MAX_SCALAR] = '\n';
	text[3 + CFG_MAX_SCALAR + 1] = '\0';
	cfg_free(load_ok(text));
	free(text);
}

static void
test_deep_flow_nesting_is_refused(void **state)
{
	static const char *open[] = { "[", "{a: " }, *close[] = { "]", "}" };
	struct buf	 b;
	size_t		 k;
	int		 i;

	for (k = 0; k < 2; k++) {
		buf_init(&b);
		for (i = 0; i < 10000; i++)
			buf_adds(&b, open[k]);
		buf_adds(&b, "1");
		for (i = 0; i < 10000; i++)
			buf_adds(&b, close[k]);
		buf_adds(&b, "\n");
		expect_refused("t.yaml", b.data, b.len, k == 0 ?
		    "t.yaml:1:33: nested too deeply: the limit is 32 levels" :
		    "t.yaml:1:129: nested too deeply: the limit is 32 levels");
		buf_free(&b);
	}
	/* 32 levels are allowed. */
	buf_init(&b);
	for (i = 0; i < CFG_MAX_DEPTH; i++)
		buf_adds(&b, "[");
	for (i = 0; i < CFG_MAX_DEPTH; i++)
		buf_adds(&b, "]");
	cfg_free(load_ok(b.data));
	buf_free(&b);
	/* Unclosed: both the depth and the syntax error are said. */
	buf_init(&b);
	for (i = 0; i < 10000; i++)
		buf_adds(&b, "[");
	{
		struct cfg_errs	errs = { NULL, 0 };

		assert_null(cfg_load_string("t.yaml", b.data, b.len, &errs));
		assert_int_equal(errs.n, 2);
		assert_string_equal(errs.msg[0],
		    "t.yaml:1:33: nested too deeply: the limit is 32 levels");
		assert_true(strncmp(errs.msg[1], "t.yaml:2:1: ", 12) == 0 ||
		    strncmp(errs.msg[1], "t.yaml:1:10001: ", 16) == 0);
		cfg_errs_free(&errs);
	}
	buf_free(&b);
}

static void
test_deep_block_nesting_is_refused(void **state)
{
	struct buf	 b;
	int		 i, j;

	/* 10,000 block maps need 50 MB of indentation: too large a file. */
	buf_init(&b);
	for (i = 0; i < 10000; i++) {
		for (j = 0; j < i; j++)
			buf_addc(&b, ' ');
		buf_adds(&b, "a:\n");
	}
	expect_refused("t.yaml", b.data, b.len, NULL);
	{
		struct cfg_errs	errs = { NULL, 0 };

		assert_null(cfg_load_string("t.yaml", b.data, b.len, &errs));
		assert_int_equal(errs.n, 1);
		assert_non_null(strstr(errs.msg[0], "t.yaml: file is too large"));
		cfg_errs_free(&errs);
	}
	buf_free(&b);
	/* As deep as fits under the size limit: the depth limit speaks. */
	buf_init(&b);
	for (i = 0; i < 1400; i++) {
		for (j = 0; j < i; j++)
			buf_addc(&b, ' ');
		buf_adds(&b, "a:\n");
	}
	assert_true(b.len <= CFG_MAX_FILE);
	expect_refused("t.yaml", b.data, b.len,
	    "t.yaml:33:33: nested too deeply: the limit is 32 levels");
	buf_free(&b);
	/* Block lists nest on one line: 10,000 of them in 20 KB. */
	buf_init(&b);
	for (i = 0; i < 10000; i++)
		buf_adds(&b, "- ");
	buf_adds(&b, "x\n");
	expect_refused("t.yaml", b.data, b.len,
	    "t.yaml:1:65: nested too deeply: the limit is 32 levels");
	buf_free(&b);
}

static void
test_wrong_types_everywhere(void **state)
{
	static const char *const dirs[] = { "send", "receive", NULL };
	struct cfg_errs		 errs = { NULL, 0 };
	struct cfg_doc		*doc = load_ok(
	    "name: [a]\n"
	    "port: {x: 1}\n"
	    "flag: [true]\n"
	    "timeout: {}\n"
	    "size: []\n"
	    "addr: {h: p}\n"
	    "mode: [send]\n"
	    "list: scalar\n"
	    "map: [1]\n"
	    "items: [1, {a: b}, [c]]\n");
	const struct cfg_node	*items;
	const char		*s = NULL;
	struct net_addr		 a;
	int64_t			 i64 = 0;
	uint64_t		 u64 = 0;
	int			 i = 0;

	assert_int_equal(cfg_get_str(&errs, doc->root, "name", 1, &s), -1);
	assert_int_equal(cfg_get_int(&errs, doc->root, "port", 1, 0, 1, &i64), -1);
	assert_int_equal(cfg_get_bool(&errs, doc->root, "flag", 1, &i), -1);
	assert_int_equal(cfg_get_duration_ms(&errs, doc->root, "timeout", 1, 0,
	    1, &i64), -1);
	assert_int_equal(cfg_get_size(&errs, doc->root, "size", 1, 0, 1, &u64), -1);
	assert_int_equal(cfg_get_addr(&errs, doc->root, "addr", 1, &a), -1);
	assert_int_equal(cfg_get_enum(&errs, doc->root, "mode", 1, dirs, &i), -1);
	assert_null(cfg_get_list(&errs, doc->root, "list", 1));
	assert_null(cfg_get_map(&errs, doc->root, "map", 1));
	assert_non_null(items = cfg_get_list(&errs, doc->root, "items", 1));
	assert_int_equal(cfg_node_str(&errs, items->vals[0], "items[0]", &s), 0);
	assert_int_equal(cfg_node_str(&errs, items->vals[1], "items[1]", &s), -1);
	assert_int_equal(cfg_node_bool(&errs, items->vals[2], "items[2]", &i), -1);
	assert_int_equal(cfg_check_keys(&errs, items->vals[2], dirs), -1);
	expect_errs(&errs,
	    "t.yaml:1:7: name: expected a string, found a list",
	    "t.yaml:2:7: port: expected an integer, found a map",
	    "t.yaml:3:7: flag: expected true or false, found a list",
	    "t.yaml:4:10: timeout: expected a duration, found a map",
	    "t.yaml:5:7: size: expected a size, found a list",
	    "t.yaml:6:7: addr: expected an address (host:port), found a map",
	    "t.yaml:7:7: mode: expected one of: send, receive, found a list",
	    "t.yaml:8:7: list: expected a list, found 'scalar'",
	    "t.yaml:9:6: map: expected a map, found a list",
	    "t.yaml:10:12: items[1]: expected a string, found a map",
	    "t.yaml:10:20: items[2]: expected true or false, found a list",
	    "t.yaml:10:20: expected a map, found a list", NULL);
	cfg_errs_free(&errs);
	cfg_free(doc);
}

static void
test_invalid_utf8_is_located(void **state)
{
	static const char text[] = "a: 1\nb: h\xffllo\n";
	static const char text2[] = "a: 1\nb: \xc3\xa9t\xc3\n";	/* cut short */
	static const char bom16[] = "\xff\xfe" "a\0:\0 \0" "1\0";

	expect_refused("t.yaml", text, sizeof(text) - 1,
	    "t.yaml:2:5: invalid leading UTF-8 octet (0xFF): the file must be "
	    "UTF-8 text");
	expect_refused("t.yaml", text2, sizeof(text2) - 1,
	    "t.yaml:2:7: invalid trailing UTF-8 octet (0x0A): the file must be "
	    "UTF-8 text");
	/* No UTF-16 guessing from a byte order mark. */
	expect_refused("t.yaml", bom16, sizeof(bom16) - 1,
	    "t.yaml:1:1: invalid leading UTF-8 octet (0xFF): the file must be "
	    "UTF-8 text");
}

static void
test_nul_bytes_are_refused(void **state)
{
	static const char raw[] = "a: 1\nb: x\0y\n";
	struct cfg_errs	 errs = { NULL, 0 };

	expect_refused("t.yaml", raw, sizeof(raw) - 1,
	    "t.yaml:2:5: control characters are not allowed (0x00)");
	/* An escaped NUL inside quotes would cut the C string short. */
	assert_null(load("a: \"x\\0y\"\n\"k\\0\": 1\n", &errs));
	expect_errs(&errs, "t.yaml:1:4: a value cannot contain a NUL character",
	    "t.yaml:2:1: a value cannot contain a NUL character", NULL);
	cfg_errs_free(&errs);
}

static void
test_tab_indentation_is_explained(void **state)
{
	expect_refused("t.yaml", "a:\n\tb: 1\n", 8,
	    "t.yaml:2:1: found character that cannot start any token (a tab: "
	    "YAML indents with spaces only), while scanning for the next token "
	    "at 2:1");
	expect_refused("t.yaml", "a:\n  b: 1\n\tc: 2\n", 15,
	    "t.yaml:3:1: found a tab character that violates indentation, "
	    "while scanning a plain scalar at 2:6");
}

static void
test_syntax_error_is_located(void **state)
{
	expect_refused("t.yaml", "a: [1, 2\nb: 3\n", 14,
	    "t.yaml:2:2: did not find expected ',' or ']', while parsing a flow "
	    "sequence at 1:4");
	expect_refused("t.yaml", "a: \"open\nb: 3\n", 14,
	    "t.yaml:3:1: found unexpected end of stream, while scanning a "
	    "quoted scalar at 1:4");
	expect_refused("t.yaml", "a: b: c\n", 8,
	    "t.yaml:1:5: mapping values are not allowed in this context");
}

static void
test_multiple_documents_are_refused(void **state)
{
	struct cfg_errs	 errs = { NULL, 0 };

	assert_null(load("a: 1\n---\nb: 2\n", &errs));
	expect_errs(&errs, "t.yaml:2:1: multiple documents are not supported: "
	    "a second one starts here", NULL);
	cfg_errs_free(&errs);
	/* One document with explicit markers is fine. */
	cfg_free(load_ok("%YAML 1.1\n---\na: 1\n...\n"));
}

static void
test_tags_other_than_standard_are_refused(void **state)
{
	struct cfg_errs	 errs = { NULL, 0 };
	struct cfg_doc	*doc;

	/* A %TAG directive cannot smuggle a custom tag in. */
	assert_null(load("%TAG !e! tag:example.com,2000:\n---\na: !e!foo x\n",
	    &errs));
	expect_errs(&errs, "t.yaml:3:4: tag 'tag:example.com,2000:foo' is not "
	    "supported (only standard tags such as !!str)", NULL);
	cfg_errs_free(&errs);
	assert_null(load("a: !!binary aGVsbG8=\nb: !foo x\nc: !!python/object:os y\n"
	    "d: !foo {x: 1}\n", &errs));
	expect_errs(&errs, "t.yaml:1:4: tag !!binary is not supported",
	    "t.yaml:2:4: tag '!foo' is not supported (only standard tags such "
	    "as !!str)",
	    "t.yaml:3:4: tag !!python/object:os is not supported",
	    "t.yaml:4:4: tag '!foo' is not supported (only standard tags such "
	    "as !!str)", NULL);
	cfg_errs_free(&errs);
	doc = load_ok("a: !!int 5\nb: !!str ~\nc: ! x\nd: !!map {}\ne: !!seq []\n");
	assert_int_equal(cfg_map_get(doc->root, "b")->quoted, 1);
	assert_int_equal(cfg_map_get(doc->root, "c")->quoted, 1);
	assert_int_equal(cfg_map_get(doc->root, "a")->quoted, 0);
	cfg_free(doc);
}

static void
test_node_limit_is_enforced(void **state)
{
	struct cfg_errs	 errs = { NULL, 0 };
	struct buf	 b;
	int		 i;

	buf_init(&b);
	buf_adds(&b, "[");
	for (i = 0; i < CFG_MAX_NODES; i++)
		buf_adds(&b, "1,");
	buf_adds(&b, "1]\n");
	assert_null(cfg_load_string("t.yaml", b.data, b.len, &errs));
	expect_errs(&errs, "t.yaml:1:200000: too many values: the limit is 100000",
	    NULL);
	cfg_errs_free(&errs);
	buf_free(&b);
	/* One under the limit loads. */
	buf_init(&b);
	buf_adds(&b, "[");
	for (i = 0; i < CFG_MAX_NODES - 2; i++)
		buf_adds(&b, "1,");
	buf_adds(&b, "1]\n");
	cfg_free(load_ok(b.data));
	buf_free(&b);
}

/* xorshift64*: the same bytes on every machine and libc. */
static uint64_t
rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static void
test_binary_blobs_are_refused(void **state)
{
	struct cfg_errs	 errs = { NULL, 0 };
	char		 path[PATH_MAX + 32];
	uint64_t	 seed = 0x6a6162626572ULL;
	size_t		 len, i, k;
	char		*blob;

	for (k = 0; k < 200; k++) {
		len = k == 0 ? CFG_MAX_FILE : 1 + (size_t)(rng_next(&seed) % 8192);
		assert_non_null(blob = malloc(len));
		for (i = 0; i < len; i++)
			blob[i] = (char)(rng_next(&seed) >> 56);
		assert_null(cfg_load_string("blob", blob, len, &errs));
		assert_true(errs.n >= 1);
		assert_true(strncmp(errs.msg[0], "blob:", 5) == 0);
		cfg_errs_free(&errs);
		if (k == 0) {
			snprintf(path, sizeof(path), "%s/blob.yaml", tmpdir);
			write_file(path, blob, len);
			assert_null(cfg_load(path, &errs));
			assert_true(errs.n >= 1);
			assert_true(strncmp(errs.msg[0], path, strlen(path)) == 0);
			cfg_errs_free(&errs);
		}
		free(blob);
	}
	/* Printable noise exercises the scanner rather than the reader. */
	for (k = 0; k < 300; k++) {
		static const char alphabet[] = "ab: -[]{},?:&*!|>'\"%@`#\n\n  \t~";

		len = 1 + (size_t)(rng_next(&seed) % 512);
		assert_non_null(blob = malloc(len));
		for (i = 0; i < len; i++)
			blob[i] = alphabet[rng_next(&seed) % (sizeof(alphabet) - 1)];
		cfg_free(cfg_load_string("noise", blob, len, &errs));
		for (i = 0; i < errs.n; i++)
			assert_true(strncmp(errs.msg[i], "noise", 5) == 0);
		cfg_errs_free(&errs);
		free(blob);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_missing_file_names_path_and_strerror),
		cmocka_unit_test(test_directory_is_not_a_config_file),
		cmocka_unit_test(test_fifo_is_refused_without_blocking),
		cmocka_unit_test(test_2mb_file_is_refused),
		cmocka_unit_test(test_file_errors_carry_path_line_col),
		cmocka_unit_test(test_empty_file_is_an_error),
		cmocka_unit_test(test_bom_and_crlf_files_load),
		cmocka_unit_test(test_nested_maps_and_lists_keep_positions),
		cmocka_unit_test(test_map_keys_match_exactly),
		cmocka_unit_test(test_get_str_takes_scalars_and_refuses_collections),
		cmocka_unit_test(test_get_int_range_and_garbage),
		cmocka_unit_test(test_get_bool_words_and_quoted_yes),
		cmocka_unit_test(test_parse_duration_units_and_mistakes),
		cmocka_unit_test(test_get_duration_reports_position_and_range),
		cmocka_unit_test(test_parse_size_units_and_mistakes),
		cmocka_unit_test(test_get_size_range_message),
		cmocka_unit_test(test_get_addr_wraps_net_errors),
		cmocka_unit_test(test_get_enum_lists_choices),
		cmocka_unit_test(test_get_list_and_map_check_kind),
		cmocka_unit_test(test_null_or_empty_value_counts_as_absent),
		cmocka_unit_test(test_getter_on_a_non_map_says_so_once),
		cmocka_unit_test(test_unknown_key_suggests_nearest),
		cmocka_unit_test(test_edit_distance),
		cmocka_unit_test(test_duplicate_key_names_first_line),
		cmocka_unit_test(test_duplicate_key_found_in_a_big_map),
		cmocka_unit_test(test_keys_must_be_scalars),
		cmocka_unit_test(test_three_mistakes_give_three_messages),
		cmocka_unit_test(test_three_load_mistakes_give_three_messages),
		cmocka_unit_test(test_errors_stop_at_the_cap_with_a_last_line),
		cmocka_unit_test(test_cfg_err_formats_and_says_a_thing_once),
		cmocka_unit_test(test_messages_escape_control_characters),
		cmocka_unit_test(test_errs_print_and_log_write_every_line),
		cmocka_unit_test(test_alias_bomb_is_refused),
		cmocka_unit_test(test_anchor_and_merge_key_are_refused),
		cmocka_unit_test(test_100kb_scalar_is_refused),
		cmocka_unit_test(test_deep_flow_nesting_is_refused),
		cmocka_unit_test(test_deep_block_nesting_is_refused),
		cmocka_unit_test(test_wrong_types_everywhere),
		cmocka_unit_test(test_invalid_utf8_is_located),
		cmocka_unit_test(test_nul_bytes_are_refused),
		cmocka_unit_test(test_tab_indentation_is_explained),
		cmocka_unit_test(test_syntax_error_is_located),
		cmocka_unit_test(test_multiple_documents_are_refused),
		cmocka_unit_test(test_tags_other_than_standard_are_refused),
		cmocka_unit_test(test_node_limit_is_enforced),
		cmocka_unit_test(test_binary_blobs_are_refused),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
