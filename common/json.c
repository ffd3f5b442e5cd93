/*
 * json.c: a JSON writer that always produces valid RFC 8259 text, and a strict,
 * bounded parser for JSON read from peers, files and the control socket.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define UTF8_REPLACEMENT	"\xef\xbf\xbd"	/* U+FFFD */

/*
 * Length of the valid UTF-8 sequence at S (at most N bytes), or 0 when it is
 * invalid; then *BAD is how many bytes to replace by one U+FFFD (the maximal
 * subpart, as Unicode recommends).  Overlongs and surrogates are invalid.
 */
static size_t
utf8_valid(const unsigned char *s, size_t n, size_t *bad)
{
	unsigned char	 c = s[0], lo = 0x80, hi = 0xbf;
	size_t		 need, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		need = 1;
	else if (c >= 0xe0 && c <= 0xef) {
		need = 2;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 3;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		*bad = 1;
		return 0;
	}
	for (i = 1; i <= need; i++) {
		if (i >= n || s[i] < lo || s[i] > hi) {
			*bad = i;
			return 0;
		}
		lo = 0x80;
		hi = 0xbf;
	}
	return need + 1;
}

/* Writer. */

void
json_init(struct json *j)
{
	buf_init(&j->b);
	j->depth = 0;
	j->first = 0;
	j->after_key = 0;
}

void
json_free(struct json *j)
{
	buf_free(&j->b);
	json_init(j);
}

const char *
json_text(const struct json *j)
{
	return j->b.data != NULL ? j->b.data : "";
}

char *
json_release(struct json *j)
{
	char	*s = buf_release(&j->b);

	json_init(j);
	return s != NULL ? s : xstrdup("");
}

/* Bit depth-1 of first: nothing written yet in the container at depth. */
static uint64_t
json_bit(int depth)
{
	return (uint64_t)1 << (depth - 1);
}

/* Everything a value needs before it: a comma unless first, nothing after a key. */
static void
json_sep(struct json *j)
{
	if (j->after_key) {
		j->after_key = 0;
		return;
	}
	if (j->depth == 0) {
		if (j->b.len > 0)
			fatalx("json: a second top-level value");
		return;
	}
	if (j->first & json_bit(j->depth))
		j->first &= ~json_bit(j->depth);
	else
		buf_addc(&j->b, ',');
}

static void
json_open(struct json *j, char c)
{
	json_sep(j);
	if (j->depth >= JSON_MAX_DEPTH)
		fatalx("json: nesting deeper than %d", JSON_MAX_DEPTH);
	buf_addc(&j->b, c);
	j->depth++;
	j->first |= json_bit(j->depth);
}

static void
json_close(struct json *j, char c)
{
	if (j->depth <= 0 || j->after_key)
		fatalx("json: '%c' without its opening or after a key", c);
	j->first &= ~json_bit(j->depth);
	j->depth--;
	buf_addc(&j->b, c);
}

void
json_obj_begin(struct json *j)
{
	json_open(j, '{');
}

void
json_obj_end(struct json *j)
{
	json_close(j, '}');
}

void
json_arr_begin(struct json *j)
{
	json_open(j, '[');
}

void
json_arr_end(struct json *j)
{
	json_close(j, ']');
}

/* The quoted, escaped string; invalid UTF-8 becomes U+FFFD so the output stays valid. */
static void
json_quote(struct buf *b, const char *str, size_t len)
{
	const unsigned char	*s = (const unsigned char *)str;
	size_t			 i = 0, n, bad, run;

	buf_addc(b, '"');
	while (i < len) {
		for (run = i; run < len && s[run] >= 0x20 && s[run] < 0x80 &&
		    s[run] != '"' && s[run] != '\\'; run++)
			;
		buf_add(b, s + i, run - i);
		if ((i = run) >= len)
			break;
		switch (s[i]) {
		case '"':  buf_adds(b, "\\\""); i++; continue;
		case '\\': buf_adds(b, "\\\\"); i++; continue;
		case '\n': buf_adds(b, "\\n"); i++; continue;
		case '\r': buf_adds(b, "\\r"); i++; continue;
		case '\t': buf_adds(b, "\\t"); i++; continue;
		case '\b': buf_adds(b, "\\b"); i++; continue;
		case '\f': buf_adds(b, "\\f"); i++; continue;
		}
		if (s[i] < 0x20) {
			buf_printf(b, "\\u%04x", s[i]);
			i++;
		} else if ((n = utf8_valid(s + i, len - i, &bad)) > 0) {
			buf_add(b, s + i, n);
			i += n;
		} else {
			buf_adds(b, UTF8_REPLACEMENT);
			i += bad;
		}
	}
	buf_addc(b, '"');
}

void
json_key(struct json *j, const char *key)
{
	if (j->after_key || j->depth == 0)
		fatalx("json: key \"%s\" outside an object or after a key", key);
	json_sep(j);
	json_quote(&j->b, key, strlen(key));
	buf_addc(&j->b, ':');
	j->after_key = 1;
}

void
json_str(struct json *j, const char *s)
{
	if (s == NULL)
		json_null(j);
	else
		json_strn(j, s, strlen(s));
}

void
json_strn(struct json *j, const char *s, size_t len)
{
	json_sep(j);
	json_quote(&j->b, s, len);
}

void
json_int(struct json *j, int64_t v)
{
	json_sep(j);
	buf_printf(&j->b, "%" PRId64, v);
}

void
json_uint(struct json *j, uint64_t v)
{
	json_sep(j);
	buf_printf(&j->b, "%" PRIu64, v);
}

/* The shortest of %.15g, %.16g, %.17g that reads back as the same double. */
static void
json_fmt_double(char *out, size_t len, double v)
{
	int	prec;

	for (prec = 15; prec < 17; prec++) {
		snprintf(out, len, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
	snprintf(out, len, "%.17g", v);
}

void
json_double(struct json *j, double v)
{
	char	num[64];

	if (!isfinite(v)) {
		json_null(j);
		return;
	}
	json_fmt_double(num, sizeof(num), v);
	json_sep(j);
	buf_adds(&j->b, num);
}

void
json_bool(struct json *j, int v)
{
	json_sep(j);
	buf_adds(&j->b, v ? "true" : "false");
}

void
json_null(struct json *j)
{
	json_sep(j);
	buf_adds(&j->b, "null");
}

void
json_raw(struct json *j, const char *raw)
{
	json_sep(j);
	buf_adds(&j->b, raw);
}

void
json_kv_str(struct json *j, const char *k, const char *v)
{
	json_key(j, k);
	json_str(j, v);
}

void
json_kv_int(struct json *j, const char *k, int64_t v)
{
	json_key(j, k);
	json_int(j, v);
}

void
json_kv_uint(struct json *j, const char *k, uint64_t v)
{
	json_key(j, k);
	json_uint(j, v);
}

void
json_kv_double(struct json *j, const char *k, double v)
{
	json_key(j, k);
	json_double(j, v);
}

void
json_kv_bool(struct json *j, const char *k, int v)
{
	json_key(j, k);
	json_bool(j, v);
}

/* Parser. */

struct jparse {
	const unsigned char	*s;
	size_t			 len, pos;
	int			 depth;
	char			*err;
	size_t			 errlen;
	int			 failed;
};

static struct jval *jparse_value(struct jparse *);

static void PRINTFLIKE(2, 3)
jparse_fail(struct jparse *p, const char *fmt, ...)
{
	char	msg[200];
	va_list	ap;

	if (p->failed)
		return;
	p->failed = 1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->errlen > 0)
		snprintf(p->err, p->errlen, "offset %zu: %s", p->pos, msg);
}

/* "unexpected 'x'" or "unexpected end of input", for the byte at pos. */
static void
jparse_unexpected(struct jparse *p, const char *wanted)
{
	unsigned char	c;

	if (p->pos >= p->len) {
		jparse_fail(p, "expected %s, got end of input", wanted);
		return;
	}
	c = p->s[p->pos];
	if (c > 0x20 && c < 0x7f)
		jparse_fail(p, "expected %s, got '%c'", wanted, c);
	else
		jparse_fail(p, "expected %s, got byte 0x%02x", wanted, c);
}

static void
jparse_ws(struct jparse *p)
{
	while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
	    p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
		p->pos++;
}

static int
jparse_peek(struct jparse *p)
{
	return p->pos < p->len ? p->s[p->pos] : -1;
}

static struct jval *
jval_new(enum jtype type)
{
	struct jval	*v = xcalloc(1, sizeof(*v));

	v->type = type;
	return v;
}

static struct jval *
jparse_literal(struct jparse *p, const char *word, enum jtype type, int b)
{
	size_t		 n = strlen(word);
	struct jval	*v;

	if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0) {
		jparse_fail(p, "invalid literal (expected %s)", word);
		return NULL;
	}
	p->pos += n;
	v = jval_new(type);
	v->b = b;
	return v;
}

static size_t
jparse_digits(struct jparse *p)
{
	size_t	start = p->pos;

	while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
		p->pos++;
	return p->pos - start;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, and finite as a double. */
static struct jval *
jparse_number(struct jparse *p)
{
	size_t		 start = p->pos;
	char		 small[64], *text;
	double		 d;
	struct jval	*v;

	if (jparse_peek(p) == '-')
		p->pos++;
	if (jparse_peek(p) == '0') {
		p->pos++;
		if (jparse_peek(p) >= '0' && jparse_peek(p) <= '9') {
			jparse_fail(p, "leading zero in a number");
			return NULL;
		}
	} else if (jparse_digits(p) == 0) {
		jparse_unexpected(p, "a digit");
		return NULL;
	}
	if (jparse_peek(p) == '.') {
		p->pos++;
		if (jparse_digits(p) == 0) {
			jparse_unexpected(p, "a digit after '.'");
			return NULL;
		}
	}
	if (jparse_peek(p) == 'e' || jparse_peek(p) == 'E') {
		p->pos++;
		if (jparse_peek(p) == '+' || jparse_peek(p) == '-')
			p->pos++;
		if (jparse_digits(p) == 0) {
			jparse_unexpected(p, "a digit in the exponent");
			return NULL;
		}
	}
	if (p->pos - start < sizeof(small)) {
		memcpy(small, p->s + start, p->pos - start);
		small[p->pos - start] = '\0';
		text = small;
	} else
		text = xstrndup((const char *)p->s + start, p->pos - start);
	d = strtod(text, NULL);
	if (text != small)
		free(text);
	if (!isfinite(d)) {
		p->pos = start;
		jparse_fail(p, "number out of range");
		return NULL;
	}
	v = jval_new(J_NUM);
	v->num = d;
	return v;
}

static int
jparse_hex4(struct jparse *p, unsigned *out)
{
	unsigned	v = 0, i;
	int		c;

	for (i = 0; i < 4; i++) {
		c = jparse_peek(p);
		if (c >= '0' && c <= '9')
			v = v * 16 + (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v * 16 + (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v = v * 16 + (unsigned)(c - 'A' + 10);
		else {
			jparse_unexpected(p, "4 hex digits after \\u");
			return -1;
		}
		p->pos++;
	}
	*out = v;
	return 0;
}

static void
utf8_put(struct buf *b, unsigned cp)
{
	char	o[4];

	buf_add(b, o, utf8_encode(cp, o));
}

/* After "\u": one code point, a surrogate pair joined, a lone surrogate refused. */
static int
jparse_uescape(struct jparse *p, struct buf *b)
{
	size_t		at = p->pos - 2;
	unsigned	hi, lo;

	if (jparse_hex4(p, &hi) == -1)
		return -1;
	if (hi >= 0xdc00 && hi <= 0xdfff) {
		p->pos = at;
		jparse_fail(p, "lone low surrogate \\u%04x", hi);
		return -1;
	}
	if (hi >= 0xd800 && hi <= 0xdbff) {
		if (p->len - p->pos < 2 || p->s[p->pos] != '\\' ||
		    p->s[p->pos + 1] != 'u') {
			p->pos = at;
			jparse_fail(p, "lone high surrogate \\u%04x", hi);
			return -1;
		}
		p->pos += 2;
		if (jparse_hex4(p, &lo) == -1)
			return -1;
		if (lo < 0xdc00 || lo > 0xdfff) {
			p->pos = at;
			jparse_fail(p, "lone high surrogate \\u%04x", hi);
			return -1;
		}
		hi = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
	}
	utf8_put(b, hi);
	return 0;
}

static int
jparse_escape(struct jparse *p, struct buf *b)
{
	int	c;

	p->pos++;	/* the backslash */
	c = jparse_peek(p);
	p->pos++;
	switch (c) {
	case '"':  buf_addc(b, '"'); return 0;
	case '\\': buf_addc(b, '\\'); return 0;
	case '/':  buf_addc(b, '/'); return 0;
	case 'b':  buf_addc(b, '\b'); return 0;
	case 'f':  buf_addc(b, '\f'); return 0;
	case 'n':  buf_addc(b, '\n'); return 0;
	case 'r':  buf_addc(b, '\r'); return 0;
	case 't':  buf_addc(b, '\t'); return 0;
	case 'u':  return jparse_uescape(p, b);
	}
	p->pos--;
	if (c == -1)
		jparse_fail(p, "unterminated string");
	else
		jparse_unexpected(p, "a valid escape after '\\'");
	return -1;
}

/* A string at pos (which is '"') into B, unescaped and checked UTF-8. */
static int
jparse_string_into(struct jparse *p, struct buf *b)
{
	size_t	start = p->pos, n, bad;
	int	c;

	p->pos++;
	for (;;) {
		if ((c = jparse_peek(p)) == -1) {
			p->pos = start;
			jparse_fail(p, "unterminated string");
			return -1;
		}
		if (c == '"') {
			p->pos++;
			break;
		}
		if (c == '\\') {
			if (jparse_escape(p, b) == -1)
				return -1;
		} else if (c < 0x20) {
			jparse_fail(p, "control character 0x%02x in a string", c);
			return -1;
		} else if ((n = utf8_valid(p->s + p->pos, p->len - p->pos, &bad)) == 0) {
			jparse_fail(p, "invalid UTF-8 in a string");
			return -1;
		} else {
			buf_add(b, p->s + p->pos, n);
			p->pos += n;
		}
	}
	return 0;
}

static struct jval *
jparse_string(struct jparse *p)
{
	struct buf	 b;
	struct jval	*v;

	buf_init(&b);
	if (jparse_string_into(p, &b) == -1) {
		buf_free(&b);
		return NULL;
	}
	v = jval_new(J_STR);
	v->slen = b.len;
	v->str = buf_release(&b);
	if (v->str == NULL)
		v->str = xstrdup("");
	return v;
}

/* A container being built; klen keeps key lengths, as keys may hold \u0000. */
struct jbuild {
	struct jval	*v;
	size_t		 cap;
	size_t		*klen;
};

static void
jbuild_push(struct jbuild *c, char *key, size_t klen, struct jval *item)
{
	struct jval	*v = c->v;

	if (v->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 4;
		v->items = xreallocarray(v->items, c->cap, sizeof(*v->items));
		if (v->type == J_OBJ) {
			v->keys = xreallocarray(v->keys, c->cap, sizeof(*v->keys));
			c->klen = xreallocarray(c->klen, c->cap, sizeof(*c->klen));
		}
	}
	if (v->type == J_OBJ) {
		v->keys[v->n] = key;
		c->klen[v->n] = klen;
	}
	v->items[v->n++] = item;
}

struct jkey {
	const char	*k;
	size_t		 len;
	size_t		 idx;
};

static int
jkey_cmp(const void *a, const void *b)
{
	const struct jkey	*x = a, *y = b;
	size_t			 n = x->len < y->len ? x->len : y->len;
	int			 r;

	if ((r = memcmp(x->k, y->k, n)) != 0)
		return r;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/*
 * Duplicate keys: the last one wins, as most parsers do.  Sorting keeps this
 * O(n log n) however many keys a hostile document repeats.
 */
static void
jparse_dedup(struct jval *o, const size_t *klen)
{
	struct jkey	*ks;
	size_t		 i, w;

	if (o->n < 2)
		return;
	ks = xreallocarray(NULL, o->n, sizeof(*ks));
	for (i = 0; i < o->n; i++)
		ks[i] = (struct jkey){ o->keys[i], klen[i], i };
	qsort(ks, o->n, sizeof(*ks), jkey_cmp);
	for (i = 0; i + 1 < o->n; i++) {
		if (ks[i].len == ks[i + 1].len &&
		    memcmp(ks[i].k, ks[i + 1].k, ks[i].len) == 0) {
			free(o->keys[ks[i].idx]);
			jval_free(o->items[ks[i].idx]);
			o->keys[ks[i].idx] = NULL;
		}
	}
	free(ks);
	for (i = w = 0; i < o->n; i++) {
		if (o->keys[i] == NULL)
			continue;
		o->keys[w] = o->keys[i];
		o->items[w++] = o->items[i];
	}
	o->n = w;
}

static char *
jparse_key(struct jparse *p, size_t *len)
{
	struct buf	b;
	char		*k;

	if (jparse_peek(p) != '"') {
		jparse_unexpected(p, "a string key");
		return NULL;
	}
	buf_init(&b);
	if (jparse_string_into(p, &b) == -1) {
		buf_free(&b);
		return NULL;
	}
	*len = b.len;
	k = buf_release(&b);
	return k != NULL ? k : xstrdup("");
}

/* One member after '{' or ','; 0 on success. */
static int
jparse_member(struct jparse *p, struct jbuild *c)
{
	char		*key;
	size_t		 len;
	struct jval	*item;

	jparse_ws(p);
	if ((key = jparse_key(p, &len)) == NULL)
		return -1;
	jparse_ws(p);
	if (jparse_peek(p) != ':') {
		free(key);
		jparse_unexpected(p, "':'");
		return -1;
	}
	p->pos++;
	if ((item = jparse_value(p)) == NULL) {
		free(key);
		return -1;
	}
	jbuild_push(c, key, len, item);
	return 0;
}

/* Objects and arrays: items separated by ',' up to CLOSE, no trailing comma. */
static struct jval *
jparse_container(struct jparse *p, enum jtype type, int close)
{
	struct jbuild	 c = { jval_new(type), 0, NULL };
	struct jval	*item;

	if (++p->depth > JSON_MAX_DEPTH) {
		jparse_fail(p, "nesting deeper than %d", JSON_MAX_DEPTH);
		goto fail;
	}
	p->pos++;
	jparse_ws(p);
	if (jparse_peek(p) == close) {
		p->pos++;
		goto done;
	}
	for (;;) {
		if (type == J_OBJ) {
			if (jparse_member(p, &c) == -1)
				goto fail;
		} else {
			if ((item = jparse_value(p)) == NULL)
				goto fail;
			jbuild_push(&c, NULL, 0, item);
		}
		jparse_ws(p);
		if (jparse_peek(p) == close) {
			p->pos++;
			break;
		}
		if (jparse_peek(p) != ',') {
			jparse_unexpected(p, type == J_OBJ ? "',' or '}'" : "',' or ']'");
			goto fail;
		}
		p->pos++;
	}
 done:
	if (type == J_OBJ)
		jparse_dedup(c.v, c.klen);
	free(c.klen);
	p->depth--;
	return c.v;
 fail:
	free(c.klen);
	jval_free(c.v);
	return NULL;
}

static struct jval *
jparse_value(struct jparse *p)
{
	jparse_ws(p);
	switch (jparse_peek(p)) {
	case '{':
		return jparse_container(p, J_OBJ, '}');
	case '[':
		return jparse_container(p, J_ARR, ']');
	case '"':
		return jparse_string(p);
	case 't':
		return jparse_literal(p, "true", J_BOOL, 1);
	case 'f':
		return jparse_literal(p, "false", J_BOOL, 0);
	case 'n':
		return jparse_literal(p, "null", J_NULL, 0);
	}
	if (jparse_peek(p) == '-' ||
	    (jparse_peek(p) >= '0' && jparse_peek(p) <= '9'))
		return jparse_number(p);
	jparse_unexpected(p, "a value");
	return NULL;
}

struct jval *
json_parse(const char *text, size_t len, char *err, size_t errlen)
{
	struct jparse	 p = { (const unsigned char *)text, len, 0, 0, err, errlen, 0 };
	struct jval	*v;

	if (errlen > 0)
		err[0] = '\0';
	if ((v = jparse_value(&p)) == NULL)
		return NULL;
	jparse_ws(&p);
	if (p.pos < p.len) {
		jparse_unexpected(&p, "end of input after the value");
		jval_free(v);
		return NULL;
	}
	return v;
}

void
jval_free(struct jval *v)
{
	size_t	i;

	if (v == NULL)
		return;
	for (i = 0; i < v->n; i++) {
		if (v->keys != NULL)
			free(v->keys[i]);
		jval_free(v->items[i]);
	}
	free(v->keys);
	free(v->items);
	free(v->str);
	free(v);
}

const struct jval *
jval_get(const struct jval *obj, const char *key)
{
	size_t	i;

	if (obj == NULL || obj->type != J_OBJ)
		return NULL;
	for (i = 0; i < obj->n; i++)
		if (strcmp(obj->keys[i], key) == 0)
			return obj->items[i];
	return NULL;
}

const char *
jval_str(const struct jval *obj, const char *key)
{
	const struct jval	*v = jval_get(obj, key);

	return v != NULL && v->type == J_STR ? v->str : NULL;
}

double
jval_num(const struct jval *obj, const char *key, double def)
{
	const struct jval	*v = jval_get(obj, key);

	return v != NULL && v->type == J_NUM ? v->num : def;
}

int
jval_bool(const struct jval *obj, const char *key, int def)
{
	const struct jval	*v = jval_get(obj, key);

	return v != NULL && v->type == J_BOOL ? v->b : def;
}
