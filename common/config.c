/*
 * config.c: YAML config files (libyaml events) into a tree of nodes that
 * remember file:line:col, the loader's limits, and errors a person can act on.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "common.h"
#include "config_int.h"

#define CFG_MSG_MAX	2048	/* one error message, escapes included */
#define CFG_HASH_MIN	16	/* maps with more keys find duplicates by hash */
#define CFG_YAML_TAG	"tag:yaml.org,2002:"

/* ---- errors ---- */

/* Appends to MSG, never past its end. */
static void
cfg_vcatf(char *msg, size_t len, const char *fmt, va_list ap)
{
	size_t	used = strlen(msg);

	if (used + 1 < len)
		vsnprintf(msg + used, len - used, fmt, ap);
}

void
cfg_catf(char *msg, size_t len, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	cfg_vcatf(msg, len, fmt, ap);
	va_end(ap);
}

/*
 * Values come from the file and may hold anything a quoted scalar can
 * escape: messages go to terminals and logs, so control characters and
 * bidirectional overrides are shown as escapes, never emitted.
 */
static void
cfg_escape(const char *in, char *out, size_t outlen)
{
	const unsigned char	*s = (const unsigned char *)in;
	size_t			 o = 0;
	char			 esc[12];

	for (; *s != '\0' && o + 1 < outlen; s++) {
		esc[0] = '\0';
		if (*s < 0x20 || *s == 0x7f)
			snprintf(esc, sizeof(esc), "\\x%02x", *s);
		else if (s[0] == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f) {
			snprintf(esc, sizeof(esc), "\\u%04x", s[1]);
			s++;
		} else if (s[0] == 0xe2 && ((s[1] == 0x80 && s[2] >= 0xa8 &&
		    s[2] <= 0xae) || (s[1] == 0x81 && s[2] >= 0xa6 && s[2] <= 0xa9))) {
			snprintf(esc, sizeof(esc), "\\u%04x",
			    0x2000 | ((s[1] & 0x3f) << 6) | (s[2] & 0x3f));
			s += 2;
		}
		if (esc[0] == '\0') {
			out[o++] = (char)*s;
			continue;
		}
		if (o + strlen(esc) + 1 > outlen)
			break;
		memcpy(out + o, esc, strlen(esc));
		o += strlen(esc);
	}
	out[o] = '\0';
}

/* A value cut to CFG_SHOW_MAX bytes for a message, never inside a character. */
const char *
cfg_show(const char *s, char *out, size_t outlen)
{
	size_t	n = strlen(s);

	if (n <= CFG_SHOW_MAX) {
		snprintf(out, outlen, "%s", s);
		return out;
	}
	n = CFG_SHOW_MAX;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	snprintf(out, outlen, "%.*s...", (int)n, s);
	return out;
}

static void
cfg_errs_add(struct cfg_errs *errs, const char *msg, const char *file)
{
	size_t	i;

	if (errs == NULL || errs->n > CFG_MAX_ERRS)
		return;
	/* The same problem reached twice (a shared parent) is said once. */
	for (i = 0; i < errs->n; i++)
		if (strcmp(errs->msg[i], msg) == 0)
			return;
	errs->msg = xreallocarray(errs->msg, errs->n + 1, sizeof(*errs->msg));
	if (errs->n == CFG_MAX_ERRS)
		xasprintf(&errs->msg[errs->n++], "%s%stoo many errors, only the "
		    "first %d are shown", file != NULL ? file : "",
		    file != NULL ? ": " : "", CFG_MAX_ERRS);
	else
		errs->msg[errs->n++] = xstrdup(msg);
}

/* LINE 0: a problem with the whole file ("file: what"). */
static void
cfg_verr(struct cfg_errs *errs, const char *file, int line, int col,
    const char *key, const char *fmt, va_list ap)
{
	char	raw[CFG_MSG_MAX], msg[CFG_MSG_MAX], shown[CFG_SHOW_MAX + 8];

	raw[0] = '\0';
	if (file != NULL && line > 0)
		cfg_catf(raw, sizeof(raw), "%s:%d:%d: ", file, line, col);
	else if (file != NULL)
		cfg_catf(raw, sizeof(raw), "%s: ", file);
	if (key != NULL)
		cfg_catf(raw, sizeof(raw), "%s: ", cfg_show(key, shown,
		    sizeof(shown)));
	cfg_vcatf(raw, sizeof(raw), fmt, ap);
	cfg_escape(raw, msg, sizeof(msg));
	cfg_errs_add(errs, msg, file);
}

void
cfg_err(struct cfg_errs *errs, const struct cfg_node *at, const char *key,
    const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	if (at != NULL)
		cfg_verr(errs, at->file != NULL ? at->file : "?", at->line,
		    at->col, key, fmt, ap);
	else
		cfg_verr(errs, NULL, 0, 0, key, fmt, ap);
	va_end(ap);
}

static void PRINTFLIKE(3, 4)
cfg_err_file(struct cfg_errs *errs, const char *file, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	cfg_verr(errs, file, 0, 0, NULL, fmt, ap);
	va_end(ap);
}

void
cfg_errs_free(struct cfg_errs *errs)
{
	size_t	i;

	if (errs == NULL)
		return;
	for (i = 0; i < errs->n; i++)
		free(errs->msg[i]);
	free(errs->msg);
	errs->msg = NULL;
	errs->n = 0;
}

void
cfg_errs_log(const struct cfg_errs *errs)
{
	size_t	i;

	for (i = 0; errs != NULL && i < errs->n; i++)
		log_errorx("%s", errs->msg[i]);
}

void
cfg_errs_print(const struct cfg_errs *errs, FILE *fp)
{
	size_t	i;

	for (i = 0; errs != NULL && i < errs->n; i++)
		fprintf(fp, "%s\n", errs->msg[i]);
	fflush(fp);
}

/* ---- building the tree from libyaml events ---- */

struct cfg_frame {
	struct cfg_node	 *node;		/* the open map or list */
	size_t		  cap;		/* of node->keys / node->vals */
	int		  want_value;	/* map: a key was read, its value is next */
	int		  drop;		/* map: that key was refused: drop the value */
	struct cfg_node	**hash;		/* map: keys by hash, for duplicates */
	size_t		  hcap;
};

struct cfg_build {
	struct cfg_errs		*errs;
	struct cfg_doc		*doc;
	const char		*text;
	size_t			 len;
	struct cfg_frame	 frames[CFG_MAX_DEPTH];
	int			 depth;
	size_t			 skip;	/* open collections inside a refused one */
	size_t			 nodes;
	int			 docs;
	int			 stop;
	size_t			 nerr;	/* counted even past CFG_MAX_ERRS */
};

static void
cfg_tree_free(struct cfg_node *n)
{
	size_t	i;

	if (n == NULL)
		return;
	for (i = 0; i < n->n; i++) {
		if (n->kind == CFG_MAP)
			cfg_tree_free(n->keys[i]);
		cfg_tree_free(n->vals[i]);
	}
	free(n->keys);
	free(n->vals);
	free(n->scalar);
	free(n);
}

void
cfg_free(struct cfg_doc *doc)
{
	if (doc == NULL)
		return;
	cfg_tree_free(doc->root);
	free(doc->file);
	free(doc);
}

static int
cfg_mark_int(size_t v)
{
	return v >= INT_MAX ? INT_MAX : (int)v + 1;
}

static void PRINTFLIKE(4, 5)
cfg_build_err(struct cfg_build *b, int line, int col, const char *fmt, ...)
{
	va_list	ap;

	b->nerr++;
	va_start(ap, fmt);
	cfg_verr(b->errs, b->doc->file, line, col, NULL, fmt, ap);
	va_end(ap);
}

#define cfg_build_errm(b, m, ...) \
	cfg_build_err((b), cfg_mark_int((m).line), cfg_mark_int((m).column), \
	    __VA_ARGS__)

int
cfg_is_null(const struct cfg_node *n)
{
	if (n->kind != CFG_SCALAR || n->quoted)
		return 0;
	return n->scalar[0] == '\0' || strcmp(n->scalar, "~") == 0 ||
	    strcmp(n->scalar, "null") == 0 || strcmp(n->scalar, "Null") == 0 ||
	    strcmp(n->scalar, "NULL") == 0;
}

static struct cfg_node *
cfg_build_node(struct cfg_build *b, enum cfg_kind kind, yaml_mark_t m)
{
	struct cfg_node	*n;

	if (b->nodes >= CFG_MAX_NODES) {
		cfg_build_errm(b, m, "too many values: the limit is %d",
		    CFG_MAX_NODES);
		b->stop = 1;
		return NULL;
	}
	b->nodes++;
	n = xcalloc(1, sizeof(*n));
	n->kind = kind;
	n->file = b->doc->file;
	n->line = cfg_mark_int(m.line);
	n->col = cfg_mark_int(m.column);
	return n;
}

static uint64_t
cfg_hash(const char *s)
{
	uint64_t	h = 0xcbf29ce484222325ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h;
}

static void
cfg_hash_put(struct cfg_frame *f, struct cfg_node *key)
{
	size_t	i = (size_t)cfg_hash(key->scalar) & (f->hcap - 1);

	while (f->hash[i] != NULL)
		i = (i + 1) & (f->hcap - 1);
	f->hash[i] = key;
}

static const struct cfg_node *
cfg_frame_find(const struct cfg_frame *f, const char *key)
{
	size_t	i;

	if (f->hcap == 0) {
		for (i = 0; i < f->node->n; i++)
			if (strcmp(f->node->keys[i]->scalar, key) == 0)
				return f->node->keys[i];
		return NULL;
	}
	for (i = (size_t)cfg_hash(key) & (f->hcap - 1); f->hash[i] != NULL;
	    i = (i + 1) & (f->hcap - 1))
		if (strcmp(f->hash[i]->scalar, key) == 0)
			return f->hash[i];
	return NULL;
}

/* Small maps are scanned; a big one gets a table kept at most half full. */
static void
cfg_frame_index(struct cfg_frame *f, struct cfg_node *key)
{
	size_t	i, n = f->node->n;

	if (n <= CFG_HASH_MIN)
		return;
	if (n * 2 <= f->hcap) {
		cfg_hash_put(f, key);
		return;
	}
	free(f->hash);
	f->hcap = f->hcap == 0 ? 4 * CFG_HASH_MIN : f->hcap * 2;
	f->hash = xcalloc(f->hcap, sizeof(*f->hash));
	for (i = 0; i < n; i++)
		cfg_hash_put(f, f->node->keys[i]);
}

static void
cfg_frame_append(struct cfg_frame *f, struct cfg_node *key, struct cfg_node *val)
{
	struct cfg_node	*c = f->node;

	if (c->n == f->cap) {
		f->cap = f->cap == 0 ? 8 : f->cap * 2;
		c->vals = xreallocarray(c->vals, f->cap, sizeof(*c->vals));
		if (c->kind == CFG_MAP)
			c->keys = xreallocarray(c->keys, f->cap, sizeof(*c->keys));
	}
	if (c->kind == CFG_MAP)
		c->keys[c->n] = key;
	c->vals[c->n++] = val;
}

static void
cfg_build_key(struct cfg_build *b, struct cfg_frame *f, struct cfg_node *key)
{
	const struct cfg_node	*first;
	char			 shown[CFG_SHOW_MAX + 8];

	f->want_value = 1;
	if (key->scalar[0] == '\0' || (!key->quoted &&
	    strcmp(key->scalar, "~") == 0)) {
		cfg_build_err(b, key->line, key->col, "a key cannot be empty");
		goto refuse;
	}
	if ((first = cfg_frame_find(f, key->scalar)) != NULL) {
		cfg_build_err(b, key->line, key->col,
		    "duplicate key '%s' (first at line %d)",
		    cfg_show(key->scalar, shown, sizeof(shown)), first->line);
		goto refuse;
	}
	/* The value slot stays NULL until the value arrives. */
	cfg_frame_append(f, key, NULL);
	cfg_frame_index(f, key);
	return;
refuse:
	cfg_tree_free(key);
	f->drop = 1;
}

/* Puts NODE where the document expects the next node: root, item, key or value. */
static void
cfg_build_add(struct cfg_build *b, struct cfg_node *node)
{
	struct cfg_frame	*f;

	if (b->depth == 0) {
		b->doc->root = node;
		return;
	}
	f = &b->frames[b->depth - 1];
	if (f->node->kind == CFG_LIST)
		cfg_frame_append(f, NULL, node);
	else if (!f->want_value)
		cfg_build_key(b, f, node);
	else {
		if (f->drop)
			cfg_tree_free(node);
		else
			f->node->vals[f->node->n - 1] = node;
		f->want_value = f->drop = 0;
	}
}

/*
 * The next node was refused (an error is recorded, so the document will be
 * dropped): consume its place so parsing goes on and finds further errors.
 */
static void
cfg_build_refuse(struct cfg_build *b)
{
	struct cfg_frame	*f;

	if (b->depth == 0)
		return;
	f = &b->frames[b->depth - 1];
	if (f->node->kind != CFG_MAP)
		return;
	if (f->want_value)
		f->want_value = f->drop = 0;
	else
		f->want_value = f->drop = 1;
}

/* Is the next node a map key that will be dropped or is its value dropped? */
static int
cfg_build_dropping(const struct cfg_build *b)
{
	const struct cfg_frame	*f;

	if (b->depth == 0)
		return 0;
	f = &b->frames[b->depth - 1];
	return f->node->kind == CFG_MAP && f->want_value && f->drop;
}

static int
cfg_build_want_key(const struct cfg_build *b)
{
	const struct cfg_frame	*f;

	if (b->depth == 0)
		return 0;
	f = &b->frames[b->depth - 1];
	return f->node->kind == CFG_MAP && !f->want_value;
}

/* Only the core schema's tags mean something here; "!" and !!str force a string. */
static void
cfg_build_props(struct cfg_build *b, yaml_mark_t m, const yaml_char_t *anchor,
    const yaml_char_t *tag, int *is_str)
{
	static const char *const std[] = { "str", "int", "bool", "null",
	    "float", "map", "seq", NULL };
	const char	*t = (const char *)tag, *name;
	char		 shown[CFG_SHOW_MAX + 8];
	size_t		 i;

	if (anchor != NULL)
		cfg_build_errm(b, m, "anchors are not supported (&%s): write the "
		    "value out in full", cfg_show((const char *)anchor, shown,
		    sizeof(shown)));
	if (t == NULL)
		return;
	if (strcmp(t, "!") == 0) {
		*is_str = 1;
		return;
	}
	if (strncmp(t, CFG_YAML_TAG, strlen(CFG_YAML_TAG)) == 0) {
		name = t + strlen(CFG_YAML_TAG);
		for (i = 0; std[i] != NULL; i++)
			if (strcmp(name, std[i]) == 0) {
				*is_str = strcmp(name, "str") == 0;
				return;
			}
		cfg_build_errm(b, m, "tag !!%s is not supported", cfg_show(name,
		    shown, sizeof(shown)));
		return;
	}
	cfg_build_errm(b, m, "tag '%s' is not supported (only standard tags "
	    "such as !!str)", cfg_show(t, shown, sizeof(shown)));
}

static void
cfg_build_scalar(struct cfg_build *b, const yaml_event_t *ev)
{
	const char	*value = (const char *)ev->data.scalar.value;
	size_t		 len = ev->data.scalar.length;
	struct cfg_node	*n;
	int		 is_str = 0;

	if (b->skip > 0)
		return;
	cfg_build_props(b, ev->start_mark, ev->data.scalar.anchor,
	    ev->data.scalar.tag, &is_str);
	if (len > CFG_MAX_SCALAR) {
		cfg_build_errm(b, ev->start_mark, "value is too long (%zu bytes, "
		    "the limit is %d)", len, CFG_MAX_SCALAR);
		cfg_build_refuse(b);
		return;
	}
	if (memchr(value, '\0', len) != NULL) {
		cfg_build_errm(b, ev->start_mark,
		    "a value cannot contain a NUL character");
		cfg_build_refuse(b);
		return;
	}
	if ((n = cfg_build_node(b, CFG_SCALAR, ev->start_mark)) == NULL)
		return;
	n->scalar = xstrndup(value, len);
	n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || is_str;
	cfg_build_add(b, n);
}

static void
cfg_build_alias(struct cfg_build *b, const yaml_event_t *ev)
{
	char	shown[CFG_SHOW_MAX + 8];

	if (b->skip > 0)
		return;
	cfg_build_errm(b, ev->start_mark, "aliases are not supported (*%s): "
	    "write the value out in full", cfg_show(
	    (const char *)ev->data.alias.anchor, shown, sizeof(shown)));
	cfg_build_refuse(b);
}

static void
cfg_build_open(struct cfg_build *b, enum cfg_kind kind, const yaml_event_t *ev)
{
	const yaml_char_t	*anchor, *tag;
	struct cfg_frame	*f;
	struct cfg_node		*n;
	int			 is_str = 0;

	if (b->skip > 0) {
		b->skip++;
		return;
	}
	if (kind == CFG_MAP) {
		anchor = ev->data.mapping_start.anchor;
		tag = ev->data.mapping_start.tag;
	} else {
		anchor = ev->data.sequence_start.anchor;
		tag = ev->data.sequence_start.tag;
	}
	cfg_build_props(b, ev->start_mark, anchor, tag, &is_str);
	if (cfg_build_want_key(b))
		cfg_build_errm(b, ev->start_mark, "a key must be a string, not a "
		    "%s", kind == CFG_MAP ? "map" : "list");
	else if (b->depth == CFG_MAX_DEPTH)
		cfg_build_errm(b, ev->start_mark, "nested too deeply: the limit "
		    "is %d levels", CFG_MAX_DEPTH);
	else if (!cfg_build_dropping(b)) {
		if ((n = cfg_build_node(b, kind, ev->start_mark)) == NULL)
			return;
		cfg_build_add(b, n);
		f = &b->frames[b->depth++];
		memset(f, 0, sizeof(*f));
		f->node = n;
		return;
	}
	/* Skip the whole collection: one error, however deep it goes. */
	cfg_build_refuse(b);
	b->skip = 1;
}

static void
cfg_build_close(struct cfg_build *b)
{
	struct cfg_frame	*f;

	if (b->skip > 0) {
		b->skip--;
		return;
	}
	if (b->depth == 0)
		return;
	f = &b->frames[--b->depth];
	free(f->hash);
	f->hash = NULL;
	f->hcap = 0;
}

static void
cfg_build_event(struct cfg_build *b, const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (++b->docs > 1) {
			cfg_build_errm(b, ev->start_mark, "multiple documents are "
			    "not supported: a second one starts here");
			b->stop = 1;
		}
		break;
	case YAML_SCALAR_EVENT:
		cfg_build_scalar(b, ev);
		break;
	case YAML_ALIAS_EVENT:
		cfg_build_alias(b, ev);
		break;
	case YAML_MAPPING_START_EVENT:
		cfg_build_open(b, CFG_MAP, ev);
		break;
	case YAML_SEQUENCE_START_EVENT:
		cfg_build_open(b, CFG_LIST, ev);
		break;
	case YAML_MAPPING_END_EVENT:
	case YAML_SEQUENCE_END_EVENT:
		cfg_build_close(b);
		break;
	default:
		break;
	}
}

/* libyaml's reader reports a byte offset: turn it into line and column. */
static void
cfg_text_pos(const char *text, size_t len, size_t off, int *line, int *col)
{
	size_t	i;

	*line = *col = 1;
	for (i = 0; i < off && i < len; i++) {
		if (text[i] == '\n' || (text[i] == '\r' && (i + 1 >= len ||
		    text[i + 1] != '\n'))) {
			if (*line < INT_MAX)
				(*line)++;
			*col = 1;
		} else if (((unsigned char)text[i] & 0xc0) != 0x80 &&
		    text[i] != '\r' && *col < INT_MAX)
			(*col)++;
	}
}

/* The byte at a libyaml mark (0-based line, column in characters), or -1. */
static int
cfg_text_at(const char *text, size_t len, size_t line, size_t col)
{
	size_t	i = 0;

	while (line > 0 && i < len)
		if (text[i++] == '\n')
			line--;
	for (; i < len; i++) {
		if (((unsigned char)text[i] & 0xc0) == 0x80)
			continue;
		if (col-- == 0)
			return (unsigned char)text[i];
	}
	return -1;
}

static void
cfg_build_yaml_error(struct cfg_build *b, const yaml_parser_t *p)
{
	const char	*problem = p->problem != NULL ? p->problem : "invalid YAML";
	const char	*hint = "";
	int		 utf8 = strstr(problem, "UTF-8") != NULL;
	int		 line, col, c;

	switch (p->error) {
	case YAML_MEMORY_ERROR:
		cfg_build_err(b, 0, 0, "out of memory while parsing");
		break;
	case YAML_READER_ERROR:
		cfg_text_pos(b->text, b->len, p->problem_offset, &line, &col);
		if (p->problem_value >= 0)
			cfg_build_err(b, line, col, "%s (0x%02X)%s", problem,
			    (unsigned)p->problem_value, utf8 ?
			    ": the file must be UTF-8 text" : "");
		else
			cfg_build_err(b, line, col, "%s", problem);
		break;
	default:
		c = cfg_text_at(b->text, b->len, p->problem_mark.line,
		    p->problem_mark.column);
		if (c == '\t' && strstr(problem, "tab") == NULL)
			hint = " (a tab: YAML indents with spaces only)";
		if (p->context != NULL)
			cfg_build_errm(b, p->problem_mark, "%s%s, %s at %d:%d",
			    problem, hint, p->context,
			    cfg_mark_int(p->context_mark.line),
			    cfg_mark_int(p->context_mark.column));
		else
			cfg_build_errm(b, p->problem_mark, "%s%s", problem, hint);
		break;
	}
}

static void
cfg_build_run(struct cfg_build *b)
{
	yaml_parser_t	p;
	yaml_event_t	ev;
	int		done = 0;

	if (!yaml_parser_initialize(&p))
		fatalx("out of memory initialising the YAML parser");
	yaml_parser_set_input_string(&p, (const unsigned char *)b->text, b->len);
	/* No UTF-16 guessing: positions and messages assume UTF-8. */
	yaml_parser_set_encoding(&p, YAML_UTF8_ENCODING);
	while (!done && !b->stop) {
		if (!yaml_parser_parse(&p, &ev)) {
			cfg_build_yaml_error(b, &p);
			break;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		cfg_build_event(b, &ev);
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	while (b->depth > 0)
		free(b->frames[--b->depth].hash);
}

struct cfg_doc *
cfg_load_string(const char *name, const char *text, size_t len,
    struct cfg_errs *errs)
{
	struct cfg_build	 b;

	if (len > CFG_MAX_FILE) {
		cfg_err_file(errs, name, "file is too large (%zu bytes, the limit "
		    "is %d)", len, CFG_MAX_FILE);
		return NULL;
	}
	memset(&b, 0, sizeof(b));
	b.errs = errs;
	b.text = text;
	b.len = len;
	/* A UTF-8 byte order mark (some editors write one) is not content. */
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
		b.text += 3;
		b.len -= 3;
	}
	b.doc = xcalloc(1, sizeof(*b.doc));
	b.doc->file = xstrdup(name);
	cfg_build_run(&b);
	if (b.nerr == 0 && (b.doc->root == NULL || cfg_is_null(b.doc->root)))
		cfg_build_err(&b, 0, 0, "empty configuration");
	if (b.nerr > 0) {
		cfg_free(b.doc);
		return NULL;
	}
	return b.doc;
}

/* The whole file, or NULL with an error; +1 byte notices a file growing. */
static char *
cfg_read_file(const char *path, size_t *lenp, struct cfg_errs *errs)
{
	struct stat	 st;
	char		*data = NULL;
	size_t		 len = 0, cap;
	ssize_t		 r;
	int		 fd;

	/* O_NONBLOCK: opening a FIFO must not hang the daemon. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) == -1) {
		cfg_err_file(errs, path, "cannot open: %s", strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1) {
		cfg_err_file(errs, path, "cannot stat: %s", strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		cfg_err_file(errs, path, "not a regular file");
		goto fail;
	}
	if (st.st_size > CFG_MAX_FILE)
		goto toolarge;
	cap = (size_t)st.st_size + 1;
	data = xmalloc(cap);
	for (;;) {
		if (len == cap) {
			if (len > CFG_MAX_FILE)
				goto toolarge;
			cap = cap * 2 > CFG_MAX_FILE + 1 ? CFG_MAX_FILE + 1 : cap * 2;
			data = xreallocarray(data, cap, 1);
		}
		if ((r = read(fd, data + len, cap - len)) == -1) {
			if (errno == EINTR)
				continue;
			cfg_err_file(errs, path, "cannot read: %s", strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (len > CFG_MAX_FILE)
		goto toolarge;
	close(fd);
	*lenp = len;
	return data;
toolarge:
	cfg_err_file(errs, path, "file is too large (%lld bytes, the limit is %d)",
	    (long long)(len > (size_t)st.st_size ? (off_t)len : st.st_size),
	    CFG_MAX_FILE);
fail:
	free(data);
	close(fd);
	return NULL;
}

struct cfg_doc *
cfg_load(const char *path, struct cfg_errs *errs)
{
	struct cfg_doc	*doc;
	char		*data;
	size_t		 len;

	if ((data = cfg_read_file(path, &len, errs)) == NULL)
		return NULL;
	doc = cfg_load_string(path, data, len, errs);
	free(data);
	return doc;
}
