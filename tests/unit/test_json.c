/*
 * test_json.c: the JSON writer always emits valid JSON, the parser accepts
 * exactly RFC 8259 and rejects everything else with a message, never crashing.
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

/* Serialise a parsed value back with the writer, for round trips. */
static void
write_jval(struct json *j, const struct jval *v)
{
	size_t	i;

	switch (v->type) {
	case J_NULL:
		json_null(j);
		break;
	case J_BOOL:
		json_bool(j, v->b);
		break;
	case J_NUM:
		json_double(j, v->num);
		break;
	case J_STR:
		json_strn(j, v->str, v->slen);
		break;
	case J_ARR:
		json_arr_begin(j);
		for (i = 0; i < v->n; i++)
			write_jval(j, v->items[i]);
		json_arr_end(j);
		break;
	case J_OBJ:
		json_obj_begin(j);
		for (i = 0; i < v->n; i++) {
			json_key(j, v->keys[i]);
			write_jval(j, v->items[i]);
		}
		json_obj_end(j);
		break;
	}
}

#define PARSE_LIT(s)	parse_ok((s), sizeof(s) - 1)

static struct jval *
parse_ok(const char *text, size_t len)
{
	char		 err[256];
	struct jval	*v = json_parse(text, len, err, sizeof(err));

	if (v == NULL)
		fail_msg("json_parse(\"%.*s\") failed: %s", (int)len, text, err);
	return v;
}

/* Parse TEXT and write it again: canonical text must come back unchanged. */
static void
assert_roundtrip(const char *text)
{
	struct jval	*v = parse_ok(text, strlen(text));
	struct json	 j;

	json_init(&j);
	write_jval(&j, v);
	assert_string_equal(json_text(&j), text);
	json_free(&j);
	jval_free(v);
}

static void
test_writer_nests_with_commas_in_the_right_places(void **state)
{
	struct json	 j;
	char		*s;

	json_init(&j);
	json_obj_begin(&j);
	json_kv_int(&j, "a", 1);
	json_key(&j, "b");
	json_arr_begin(&j);
	json_int(&j, -2);
	json_str(&j, "x");
	json_obj_begin(&j);
	json_kv_str(&j, "c", NULL);
	json_kv_bool(&j, "t", 1);
	json_obj_end(&j);
	json_arr_begin(&j);
	json_arr_end(&j);
	json_obj_begin(&j);
	json_obj_end(&j);
	json_arr_end(&j);
	json_kv_uint(&j, "u", UINT64_MAX);
	json_kv_int(&j, "i", INT64_MIN);
	json_key(&j, "raw");
	json_raw(&j, "[1,{\"z\":2}]");
	json_kv_double(&j, "d", 0.5);
	json_key(&j, "n");
	json_null(&j);
	json_kv_bool(&j, "f", 0);
	json_obj_end(&j);
	assert_string_equal(json_text(&j),
	    "{\"a\":1,\"b\":[-2,\"x\",{\"c\":null,\"t\":true},[],{}],"
	    "\"u\":18446744073709551615,\"i\":-9223372036854775808,"
	    "\"raw\":[1,{\"z\":2}],\"d\":0.5,\"n\":null,\"f\":false}");
	s = json_release(&j);
	assert_string_equal(s, "{\"a\":1,\"b\":[-2,\"x\",{\"c\":null,\"t\":true},[],{}],"
	    "\"u\":18446744073709551615,\"i\":-9223372036854775808,"
	    "\"raw\":[1,{\"z\":2}],\"d\":0.5,\"n\":null,\"f\":false}");
	free(s);
	assert_string_equal(json_text(&j), "");
	json_free(&j);
}

static void
test_writer_escapes_quotes_backslashes_and_control_chars(void **state)
{
	struct json	j;
	char		in[] = "q\"b\\s/\b\f\n\r\t\x01\x1f\x7f<>&";

	json_init(&j);
	json_str(&j, in);
	assert_string_equal(json_text(&j),
	    "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f<>&\"");
	json_free(&j);

	json_init(&j);
	json_obj_begin(&j);
	json_kv_str(&j, "k\"ey\n", "v");
	json_obj_end(&j);
	assert_string_equal(json_text(&j), "{\"k\\\"ey\\n\":\"v\"}");
	json_free(&j);
}

static void
test_writer_strn_writes_nul_bytes_as_u0000(void **state)
{
	struct json	j;

	json_init(&j);
	json_strn(&j, "a\0b", 3);
	assert_string_equal(json_text(&j), "\"a\\u0000b\"");
	json_free(&j);
}

static void
test_writer_keeps_valid_utf8_and_replaces_invalid_with_fffd(void **state)
{
	static const struct {
		const char	*in, *out;
	} cases[] = {
		{ "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"" },
		{ "a\xff" "b", "\"a\xef\xbf\xbd" "b\"" },
		{ "\xc3", "\"\xef\xbf\xbd\"" },				/* truncated */
		{ "\xc0\xaf", "\"\xef\xbf\xbd\xef\xbf\xbd\"" },		/* overlong */
		{ "\xe0\x80\xaf", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"" },
		{ "\xed\xa0\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"" },	/* surrogate */
		{ "\xf4\x90\x80\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"" },
		{ "\xe2\x82" "x", "\"\xef\xbf\xbd" "x\"" },		/* maximal subpart */
		{ "\x80\xbf", "\"\xef\xbf\xbd\xef\xbf\xbd\"" },
	};
	struct json	 j;
	struct jval	*v;
	size_t		 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_init(&j);
		json_str(&j, cases[i].in);
		assert_string_equal(json_text(&j), cases[i].out);
		v = parse_ok(json_text(&j), strlen(json_text(&j)));
		assert_int_equal(v->type, J_STR);
		jval_free(v);
		json_free(&j);
	}
}

static void
test_writer_doubles_are_shortest_exact_and_nonfinite_is_null(void **state)
{
	struct json	 j;
	struct jval	*v;
	const double	 vals[] = { 0.1, 1.0 / 3, 2.0 / 3, 1e300, 5e-324, -0.0,
	    123456789.125, 1.7976931348623157e308, 0.30000000000000004 };
	size_t		 i;

	json_init(&j);
	json_arr_begin(&j);
	json_double(&j, 0.1);
	json_double(&j, 1.0);
	json_double(&j, -2.5);
	json_double(&j, NAN);
	json_double(&j, INFINITY);
	json_double(&j, -INFINITY);
	json_double(&j, 1e21);
	json_arr_end(&j);
	assert_string_equal(json_text(&j), "[0.1,1,-2.5,null,null,null,1e+21]");
	json_free(&j);

	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		json_init(&j);
		json_double(&j, vals[i]);
		v = parse_ok(json_text(&j), strlen(json_text(&j)));
		assert_int_equal(v->type, J_NUM);
		assert_true(v->num == vals[i]);
		assert_true(signbit(v->num) == signbit(vals[i]));
		jval_free(v);
		json_free(&j);
	}
}

static void
open_64(void)
{
	struct json	j;
	int		i;

	json_init(&j);
	for (i = 0; i < JSON_MAX_DEPTH; i++)
		json_arr_begin(&j);
	for (i = 0; i < JSON_MAX_DEPTH; i++)
		json_arr_end(&j);
	json_free(&j);
}

static void
open_65(void)
{
	struct json	j;
	int		i;

	json_init(&j);
	for (i = 0; i < JSON_MAX_DEPTH + 1; i++)
		json_arr_begin(&j);
}

static void
close_unopened(void)
{
	struct json	j;

	json_init(&j);
	json_arr_end(&j);
}

static void
test_writer_nesting_beyond_max_depth_is_fatal(void **state)
{
	struct json	 j;
	struct jval	*v;
	int		 i;

	assert_false(tu_dies(open_64));
	assert_true(tu_dies(open_65));
	assert_true(tu_dies(close_unopened));

	/* every level of the deepest document keeps its commas */
	json_init(&j);
	for (i = 0; i < JSON_MAX_DEPTH; i++) {
		json_arr_begin(&j);
		json_int(&j, i);
	}
	for (i = 0; i < JSON_MAX_DEPTH; i++) {
		json_int(&j, i);
		json_arr_end(&j);
	}
	v = parse_ok(json_text(&j), strlen(json_text(&j)));
	assert_int_equal(v->n, 3);
	assert_true(v->items[0]->num == 0 && v->items[2]->num == JSON_MAX_DEPTH - 1);
	assert_int_equal(v->items[1]->n, 3);
	jval_free(v);
	json_free(&j);
}

static void
test_writer_output_parses_back_to_the_same_values(void **state)
{
	struct json		 j;
	struct jval		*v;
	const struct jval	*a;

	json_init(&j);
	json_obj_begin(&j);
	json_kv_str(&j, "name", "b\xc3\xa4" "ckend \"A\"\n");
	json_kv_int(&j, "gen", 42);
	json_kv_double(&j, "ratio", 0.1);
	json_kv_bool(&j, "up", 1);
	json_key(&j, "list");
	json_arr_begin(&j);
	json_str(&j, "x");
	json_null(&j);
	json_arr_end(&j);
	json_key(&j, "bin");
	json_strn(&j, "\0\x01", 2);
	json_obj_end(&j);

	v = parse_ok(json_text(&j), j.b.len);
	assert_int_equal(v->type, J_OBJ);
	assert_string_equal(jval_str(v, "name"), "b\xc3\xa4" "ckend \"A\"\n");
	assert_true(jval_num(v, "gen", -1) == 42);
	assert_true(jval_num(v, "ratio", -1) == 0.1);
	assert_int_equal(jval_bool(v, "up", 0), 1);
	a = jval_get(v, "list");
	assert_non_null(a);
	assert_int_equal(a->type, J_ARR);
	assert_int_equal(a->n, 2);
	assert_string_equal(a->items[0]->str, "x");
	assert_int_equal(a->items[1]->type, J_NULL);
	a = jval_get(v, "bin");
	assert_int_equal(a->slen, 2);
	assert_memory_equal(a->str, "\0\x01", 3);
	jval_free(v);
	json_free(&j);

	assert_roundtrip("{\"a\":[1,2.5,-3e-07,true,false,null,\"s\"],\"b\":{}}");
	assert_roundtrip("[[],[[]],{\"\":\"\"}]");
	assert_roundtrip("\"\\u0000\\u001f\xf0\x9f\x98\x80\"");
}

static void
test_parser_accepts_valid_rfc8259(void **state)
{
	struct jval	*v;

	v = PARSE_LIT(" \t\r\n{ \"a\" : [ 1 , -0 , 0.5e+2 , 1E-400 , 10 ] } \n");
	assert_int_equal(v->type, J_OBJ);
	assert_true(jval_get(v, "a")->items[2]->num == 50);
	assert_true(jval_get(v, "a")->items[3]->num == 0);
	assert_true(signbit(jval_get(v, "a")->items[1]->num));
	jval_free(v);

	v = PARSE_LIT("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u20AC\\ud83d\\ude00\"");
	assert_string_equal(v->str,
	    "\"\\/\b\f\n\r\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	assert_int_equal(v->slen, strlen(v->str));
	jval_free(v);

	v = PARSE_LIT("\"a\\u0000b\"");
	assert_int_equal(v->slen, 3);
	assert_memory_equal(v->str, "a\0b", 4);
	jval_free(v);

	v = PARSE_LIT("true");
	assert_int_equal(v->type, J_BOOL);
	assert_int_equal(v->b, 1);
	jval_free(v);
	v = PARSE_LIT("null");
	assert_int_equal(v->type, J_NULL);
	jval_free(v);
	v = PARSE_LIT("-1234567890123456789");
	assert_true(v->num == -1234567890123456789.0);
	jval_free(v);

	/* the length bounds the input: bytes after it are never read */
	v = parse_ok("[1]garbage", 3);
	assert_int_equal(v->n, 1);
	jval_free(v);
}

static void
test_parser_rejects_malformed_input_with_a_message(void **state)
{
	static const struct {
		const char	*in;
		size_t		 len;	/* 0: strlen */
		const char	*msg;
	} bad[] = {
		{ "", 0, "offset 0: expected a value, got end of input" },
		{ "   ", 0, "offset 3: expected a value" },
		{ "[1,]", 0, "offset 3: expected a value, got ']'" },
		{ "{\"a\":1,}", 0, "offset 7: expected a string key" },
		{ "[1 2]", 0, "offset 3: expected ',' or ']'" },
		{ "{\"a\" 1}", 0, "offset 5: expected ':'" },
		{ "{\"a\":1 \"b\":2}", 0, "offset 7: expected ',' or '}'" },
		{ "{a:1}", 0, "offset 1: expected a string key, got 'a'" },
		{ "[1", 0, "offset 2: expected ',' or ']', got end of input" },
		{ "{\"a\":", 0, "offset 5: expected a value, got end of input" },
		{ "01", 0, "offset 1: leading zero" },
		{ "-01", 0, "offset 2: leading zero" },
		{ "-", 0, "offset 1: expected a digit" },
		{ "1.", 0, "offset 2: expected a digit after '.'" },
		{ "1.e5", 0, "offset 2: expected a digit after '.'" },
		{ "1e", 0, "offset 2: expected a digit in the exponent" },
		{ "1e+", 0, "offset 3: expected a digit in the exponent" },
		{ "+1", 0, "offset 0: expected a value, got '+'" },
		{ ".5", 0, "offset 0: expected a value" },
		{ "NaN", 0, "offset 0: expected a value" },
		{ "Infinity", 0, "offset 0: expected a value" },
		{ "-Infinity", 0, "offset 1: expected a digit" },
		{ "0x10", 0, "offset 1: expected end of input" },
		{ "tru", 0, "offset 0: invalid literal (expected true)" },
		{ "nul", 0, "offset 0: invalid literal (expected null)" },
		{ "True", 0, "offset 0: expected a value" },
		{ "truex", 0, "offset 4: expected end of input after the value" },
		{ "\"abc", 0, "offset 0: unterminated string" },
		{ "\"abc\\", 0, "offset 5: unterminated string" },
		{ "[\"abc", 0, "offset 1: unterminated string" },
		{ "\"\\x\"", 0, "offset 2: expected a valid escape after '\\', got 'x'" },
		{ "\"\\'\"", 0, "offset 2: expected a valid escape" },
		{ "\"\\u12\"", 0, "offset 5: expected 4 hex digits after \\u" },
		{ "\"\\u12", 0, "offset 5: expected 4 hex digits after \\u, got end" },
		{ "\"\\uzzzz\"", 0, "offset 3: expected 4 hex digits" },
		{ "\"\\ud800\"", 0, "offset 1: lone high surrogate \\ud800" },
		{ "\"\\ud800x\"", 0, "offset 1: lone high surrogate" },
		{ "\"\\ud800\\u0041\"", 0, "offset 1: lone high surrogate" },
		{ "\"\\ud800\\ud800\"", 0, "offset 1: lone high surrogate" },
		{ "\"\\udc00\"", 0, "offset 1: lone low surrogate \\udc00" },
		{ "\"\\ude00\\ud83d\"", 0, "offset 1: lone low surrogate" },
		{ "\"\xff\"", 0, "offset 1: invalid UTF-8" },
		{ "\"\xc0\xaf\"", 0, "offset 1: invalid UTF-8" },
		{ "\"\xed\xa0\x80\"", 0, "offset 1: invalid UTF-8" },
		{ "\"\xf4\x90\x80\x80\"", 0, "offset 1: invalid UTF-8" },
		{ "\"\xe2\x82\"", 0, "offset 1: invalid UTF-8" },
		{ "\"ab\xc3", 0, "offset 3: invalid UTF-8" },
		{ "\"a\x01\"", 0, "offset 2: control character 0x01" },
		{ "\"a\tb\"", 0, "offset 2: control character 0x09" },
		{ "\"a\nb\"", 0, "offset 2: control character 0x0a" },
		{ "\"a\0b\"", 5, "offset 2: control character 0x00" },
		{ "[1]\0", 4, "offset 3: expected end of input after the value, got byte 0x00" },
		{ "\0", 1, "offset 0: expected a value, got byte 0x00" },
		{ "1e400", 0, "offset 0: number out of range" },
		{ "-1e400", 0, "offset 0: number out of range" },
		{ "[0,1e99999999999999999999]", 0, "offset 3: number out of range" },
		{ "/* c */ 1", 0, "offset 0: expected a value, got '/'" },
		{ "// c\n1", 0, "offset 0: expected a value" },
		{ "[1] x", 0, "offset 4: expected end of input after the value, got 'x'" },
		{ "1 2", 0, "offset 2: expected end of input" },
		{ "'a'", 0, "offset 0: expected a value, got '''" },
		{ "\xef\xbb\xbf{}", 0, "offset 0: expected a value, got byte 0xef" },
		{ "{\"a\":1}}", 0, "offset 7: expected end of input" },
		{ "[}", 0, "offset 1: expected a value, got '}'" },
		{ "{]", 0, "offset 1: expected a string key, got ']'" },
		{ "[\x0b]", 0, "offset 1: expected a value, got byte 0x0b" },
	};
	char		 err[256];
	struct jval	*v;
	size_t		 i, len;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		len = bad[i].len ? bad[i].len : strlen(bad[i].in);
		memset(err, 'X', sizeof(err));
		v = json_parse(bad[i].in, len, err, sizeof(err));
		if (v != NULL)
			fail_msg("case %zu accepted: %s", i, bad[i].in);
		if (strncmp(err, bad[i].msg, strlen(bad[i].msg)) != 0)
			fail_msg("case %zu (%s): got \"%s\", want \"%s...\"", i,
			    bad[i].in, err, bad[i].msg);
	}
}

static void
test_parser_refuses_nesting_deeper_than_max_depth(void **state)
{
	char		 err[128];
	char		*s;
	struct jval	*v;
	size_t		 n = 100000, i;

	s = malloc(2 * n);
	assert_non_null(s);
	memset(s, '[', n);
	v = json_parse(s, n, err, sizeof(err));
	assert_null(v);
	assert_string_equal(err, "offset 64: nesting deeper than 64");

	memset(s, '{', n);
	for (i = 1; i < n; i += 5)	/* {"a":{"a":{... */
		memcpy(s + i, "\"a\":{", 5 < n - i ? 5 : n - i);
	v = json_parse(s, n, err, sizeof(err));
	assert_null(v);
	assert_non_null(strstr(err, "nesting deeper than 64"));

	/* exactly JSON_MAX_DEPTH levels are fine, one more is not */
	/* (a loop, not two memsets: gcc -O2 with sanitizers misjudges the
	 * second memset's bounds and -Werror stops the ASan build) */
	for (i = 0; i < 2 * JSON_MAX_DEPTH; i++)
		s[i] = i < JSON_MAX_DEPTH ? '[' : ']';
	v = parse_ok(s, 2 * JSON_MAX_DEPTH);
	jval_free(v);
	for (i = 0; i < 2 * (JSON_MAX_DEPTH + 1); i++)
		s[i] = i < JSON_MAX_DEPTH + 1 ? '[' : ']';
	assert_null(json_parse(s, 2 * (JSON_MAX_DEPTH + 1), err, sizeof(err)));
	free(s);
}

static void
test_parser_survives_every_truncation_and_byte_mutation(void **state)
{
	static const char	 doc[] = "{\"k\":[1,-2.5e3,\"s\\u00e9\\ud83d\\ude00\xc3\xa9\","
	    "true,false,null,{\"x\":{}}],\"z\":\"\\n\"}";
	static const char	 subst[] = { '\0', '"', '\\', '[', '{', ']', '}', ',',
	    ':', '0', '-', 'e', '.', 'u', '\x80', '\xff', ' ' };
	char			 buf[sizeof(doc)], err[128];
	struct jval		*v;
	size_t			 len = sizeof(doc) - 1, i, k;

	jval_free(parse_ok(doc, len));
	for (i = 0; i < len; i++) {
		memcpy(buf, doc, len);
		err[0] = '\0';
		v = json_parse(buf, i, err, sizeof(err));
		assert_null(v);		/* every proper prefix of an object fails */
		assert_true(strncmp(err, "offset ", 7) == 0);
		for (k = 0; k < sizeof(subst); k++) {
			buf[i] = subst[k];
			v = json_parse(buf, len, err, sizeof(err));
			if (v == NULL)
				assert_true(strncmp(err, "offset ", 7) == 0);
			jval_free(v);
		}
	}
	/* a zero-sized error buffer is never written */
	assert_null(json_parse("[", 1, NULL, 0));
}

static void
test_parser_duplicate_keys_keep_the_last(void **state)
{
	struct jval	*v;
	struct json	 j;
	size_t		 i, n = 200000;

	v = PARSE_LIT("{\"a\":1,\"b\":2,\"a\":{\"x\":[]},\"c\":3,\"b\":4}");
	assert_int_equal(v->n, 3);
	assert_int_equal(jval_get(v, "a")->type, J_OBJ);
	assert_true(jval_num(v, "b", 0) == 4);
	assert_true(jval_num(v, "c", 0) == 3);
	jval_free(v);

	/* keys differing only after an embedded NUL are distinct */
	v = PARSE_LIT("{\"a\\u0000x\":1,\"a\\u0000y\":2,\"a\":3}");
	assert_int_equal(v->n, 3);
	jval_free(v);

	/* a hostile document repeating one key many times stays cheap */
	json_init(&j);
	json_obj_begin(&j);
	for (i = 0; i < n; i++)
		json_kv_uint(&j, i % 2 ? "k" : "l", i);
	json_obj_end(&j);
	v = parse_ok(json_text(&j), j.b.len);
	assert_int_equal(v->n, 2);
	assert_true(jval_num(v, "k", 0) == n - 1);
	assert_true(jval_num(v, "l", 0) == n - 2);
	jval_free(v);
	json_free(&j);
}

static void
test_jval_helpers_return_defaults_on_missing_or_wrong_type(void **state)
{
	struct jval	*v;

	v = PARSE_LIT("{\"s\":\"x\",\"n\":2,\"b\":false,\"z\":null}");
	assert_string_equal(jval_str(v, "s"), "x");
	assert_null(jval_str(v, "n"));
	assert_null(jval_str(v, "missing"));
	assert_true(jval_num(v, "n", 7) == 2);
	assert_true(jval_num(v, "s", 7) == 7);
	assert_true(jval_num(v, "missing", 7) == 7);
	assert_int_equal(jval_bool(v, "b", 1), 0);
	assert_int_equal(jval_bool(v, "n", 1), 1);
	assert_non_null(jval_get(v, "z"));
	assert_int_equal(jval_get(v, "z")->type, J_NULL);
	assert_null(jval_get(v->items[0], "s"));	/* not an object */
	assert_null(jval_get(NULL, "s"));
	assert_null(jval_str(NULL, "s"));
	assert_true(jval_num(NULL, "n", 5) == 5);
	jval_free(v);
	jval_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_writer_nests_with_commas_in_the_right_places),
		cmocka_unit_test(test_writer_escapes_quotes_backslashes_and_control_chars),
		cmocka_unit_test(test_writer_strn_writes_nul_bytes_as_u0000),
		cmocka_unit_test(test_writer_keeps_valid_utf8_and_replaces_invalid_with_fffd),
		cmocka_unit_test(test_writer_doubles_are_shortest_exact_and_nonfinite_is_null),
		cmocka_unit_test(test_writer_nesting_beyond_max_depth_is_fatal),
		cmocka_unit_test(test_writer_output_parses_back_to_the_same_values),
		cmocka_unit_test(test_parser_accepts_valid_rfc8259),
		cmocka_unit_test(test_parser_rejects_malformed_input_with_a_message),
		cmocka_unit_test(test_parser_refuses_nesting_deeper_than_max_depth),
		cmocka_unit_test(test_parser_survives_every_truncation_and_byte_mutation),
		cmocka_unit_test(test_parser_duplicate_keys_keep_the_last),
		cmocka_unit_test(test_jval_helpers_return_defaults_on_missing_or_wrong_type),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
