/*
 * metrics.c: the registry of counters, gauges and histograms every daemon
 * keeps, rendered in the Prometheus text exposition format 0.0.4.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

static const char *const metric_type_names[] = { "counter", "gauge", "histogram" };

struct family;

struct metric {
	struct family	*fam;
	char		*labels;	/* a="x",b="y" or "" */
	double		 value;		/* counter, gauge */
	uint64_t	*buckets;	/* histogram: per bound, not cumulative */
	uint64_t	 count;
	double		 sum;
	struct metric	*next;		/* in the family, registration order */
	struct metric	*hnext;		/* in the hash chain */
	uint32_t	 hash;
};

/* All series of one name: one # HELP and # TYPE. */
struct family {
	char		*name;
	char		*help;
	enum metric_type type;
	double		*bounds;	/* histogram */
	size_t		 nbounds;
	struct metric	*first, **tail;
	struct family	*next;
};

struct collector {
	void		(*cb)(struct metrics *, void *);
	void		*arg;
};

struct metrics {
	struct family	*families, **ftail;
	struct metric	**table;	/* by (name, labels), so hot lookups stay cheap */
	size_t		 tsize, nseries;
	struct collector *collectors;
	size_t		 ncollectors;
};

struct metrics *
metrics_new(void)
{
	struct metrics	*m = xcalloc(1, sizeof(*m));

	m->ftail = &m->families;
	m->tsize = 64;
	m->table = xcalloc(m->tsize, sizeof(*m->table));
	return m;
}

static void
family_free(struct family *f)
{
	struct metric	*s, *next;

	for (s = f->first; s != NULL; s = next) {
		next = s->next;
		free(s->labels);
		free(s->buckets);
		free(s);
	}
	free(f->name);
	free(f->help);
	free(f->bounds);
	free(f);
}

void
metrics_free(struct metrics *m)
{
	struct family	*f, *next;

	if (m == NULL)
		return;
	for (f = m->families; f != NULL; f = next) {
		next = f->next;
		family_free(f);
	}
	free(m->table);
	free(m->collectors);
	free(m);
}

/* FNV-1a over name, a separator and labels. */
static uint32_t
metrics_hash(const char *name, const char *labels)
{
	uint32_t	 h = 2166136261u;
	const char	*s;

	for (s = name; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	h = (h ^ 0xff) * 16777619u;
	for (s = labels; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static void
metrics_grow(struct metrics *m)
{
	struct metric	**t, *s, *next;
	size_t		  i, size = m->tsize * 2;

	t = xcalloc(size, sizeof(*t));
	for (i = 0; i < m->tsize; i++) {
		for (s = m->table[i]; s != NULL; s = next) {
			next = s->hnext;
			s->hnext = t[s->hash & (size - 1)];
			t[s->hash & (size - 1)] = s;
		}
	}
	free(m->table);
	m->table = t;
	m->tsize = size;
}

static struct family *
metrics_family(struct metrics *m, const char *name)
{
	struct family	*f;

	for (f = m->families; f != NULL; f = f->next)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

/* [a-zA-Z_:][a-zA-Z0-9_:]*, as Prometheus requires. */
static int
metrics_name_ok(const char *name)
{
	const char	*s;

	if (name[0] == '\0' || (name[0] >= '0' && name[0] <= '9'))
		return 0;
	for (s = name; *s != '\0'; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '_' || *s == ':'))
			return 0;
	}
	return 1;
}

static struct family *
family_new(struct metrics *m, const char *name, enum metric_type type,
    const char *help, const double *bounds, size_t n)
{
	struct family	*f;
	size_t		 i;

	if (!metrics_name_ok(name))
		fatalx("metrics: invalid metric name \"%s\"", name);
	for (i = 0; i < n; i++)
		if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]))
			fatalx("metrics: %s: bucket bounds must be finite and "
			    "increasing", name);
	f = xcalloc(1, sizeof(*f));
	f->name = xstrdup(name);
	f->help = xstrdup(help != NULL ? help : "");
	f->type = type;
	if (n > 0) {
		f->bounds = xreallocarray(NULL, n, sizeof(*f->bounds));
		memcpy(f->bounds, bounds, n * sizeof(*bounds));
	}
	f->nbounds = n;
	f->tail = &f->first;
	*m->ftail = f;
	m->ftail = &f->next;
	return f;
}

/*
 * The one series for (name, labels), made on first use.  A name registered
 * again with another type is a programming error.
 */
static struct metric *
metrics_get(struct metrics *m, enum metric_type type, const char *name,
    const char *labels, const char *help, const double *bounds, size_t n)
{
	struct family	*f;
	struct metric	*s;
	uint32_t	 h;

	if (labels == NULL)
		labels = "";
	h = metrics_hash(name, labels);
	for (s = m->table[h & (m->tsize - 1)]; s != NULL; s = s->hnext)
		if (s->hash == h && strcmp(s->fam->name, name) == 0 &&
		    strcmp(s->labels, labels) == 0)
			break;
	if (s != NULL) {
		if (s->fam->type != type)
			fatalx("metrics: %s is a %s", name, metric_type_names[s->fam->type]);
		return s;
	}
	if ((f = metrics_family(m, name)) == NULL)
		f = family_new(m, name, type, help, bounds, n);
	else if (f->type != type)
		fatalx("metrics: %s is a %s", name, metric_type_names[f->type]);
	s = xcalloc(1, sizeof(*s));
	s->fam = f;
	s->labels = xstrdup(labels);
	if (type == METRIC_HISTOGRAM)
		s->buckets = xcalloc(f->nbounds + 1, sizeof(*s->buckets));
	s->hash = h;
	*f->tail = s;
	f->tail = &s->next;
	s->hnext = m->table[h & (m->tsize - 1)];
	m->table[h & (m->tsize - 1)] = s;
	if (++m->nseries > m->tsize)
		metrics_grow(m);
	return s;
}

struct metric *
metrics_counter(struct metrics *m, const char *name, const char *labels,
    const char *help)
{
	return metrics_get(m, METRIC_COUNTER, name, labels, help, NULL, 0);
}

struct metric *
metrics_gauge(struct metrics *m, const char *name, const char *labels,
    const char *help)
{
	return metrics_get(m, METRIC_GAUGE, name, labels, help, NULL, 0);
}

struct metric *
metrics_histogram(struct metrics *m, const char *name, const char *labels,
    const char *help, const double *bounds, size_t n)
{
	return metrics_get(m, METRIC_HISTOGRAM, name, labels, help, bounds, n);
}

/* Counters only go up: a negative or NaN step is ignored. */
void
metric_add(struct metric *s, double v)
{
	if (s->fam->type == METRIC_HISTOGRAM)
		fatalx("metrics: metric_add on histogram %s", s->fam->name);
	if (s->fam->type == METRIC_COUNTER && !(v >= 0))
		return;
	s->value += v;
}

/* Setting a counter is allowed for totals kept elsewhere (refreshed on collect). */
void
metric_set(struct metric *s, double v)
{
	if (s->fam->type == METRIC_HISTOGRAM)
		fatalx("metrics: metric_set on histogram %s", s->fam->name);
	s->value = v;
}

void
metric_observe(struct metric *s, double v)
{
	const struct family	*f = s->fam;
	size_t			 lo = 0, hi = f->nbounds, mid;

	if (f->type != METRIC_HISTOGRAM)
		fatalx("metrics: metric_observe on %s %s",
		    metric_type_names[f->type], f->name);
	if (isnan(v))
		return;
	while (lo < hi) {	/* the first bound >= v; nbounds is +Inf */
		mid = lo + (hi - lo) / 2;
		if (v <= f->bounds[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	s->buckets[lo]++;
	s->count++;
	s->sum += v;
}

/* A histogram's value is its number of observations. */
double
metric_value(const struct metric *s)
{
	if (s->fam->type == METRIC_HISTOGRAM)
		return (double)s->count;
	return s->value;
}

void
metrics_on_collect(struct metrics *m, void (*cb)(struct metrics *, void *),
    void *arg)
{
	m->collectors = xreallocarray(m->collectors, m->ncollectors + 1,
	    sizeof(*m->collectors));
	m->collectors[m->ncollectors].cb = cb;
	m->collectors[m->ncollectors].arg = arg;
	m->ncollectors++;
}

/* Integral values without an exponent; others as the shortest exact %g. */
static void
metrics_number(struct buf *b, double v)
{
	char	num[64];
	int	prec;

	if (isnan(v))
		buf_adds(b, "NaN");
	else if (isinf(v))
		buf_adds(b, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 0x1p64)
		buf_printf(b, "%.0f", v);
	else {
		for (prec = 15; prec <= 17; prec++) {
			snprintf(num, sizeof(num), "%.*g", prec, v);
			if (prec == 17 || strtod(num, NULL) == v)
				break;
		}
		buf_adds(b, num);
	}
}

/* HELP text: backslash and newline escaped. */
static void
metrics_help(struct buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			buf_adds(b, "\\\\");
		else if (*s == '\n')
			buf_adds(b, "\\n");
		else
			buf_addc(b, *s);
	}
}

/* name[suffix]{labels[,extra]} */
static void
metrics_series(struct buf *b, const struct metric *s, const char *suffix,
    const char *extra)
{
	buf_adds(b, s->fam->name);
	buf_adds(b, suffix);
	if (s->labels[0] == '\0' && extra == NULL)
		return;
	buf_addc(b, '{');
	buf_adds(b, s->labels);
	if (extra != NULL) {
		if (s->labels[0] != '\0')
			buf_addc(b, ',');
		buf_adds(b, extra);
	}
	buf_addc(b, '}');
}

static void
metrics_render_histogram(struct buf *b, const struct metric *s)
{
	const struct family	*f = s->fam;
	struct buf		 le;
	uint64_t		 cum = 0;
	size_t			 i;

	buf_init(&le);
	for (i = 0; i < f->nbounds; i++) {
		cum += s->buckets[i];
		buf_reset(&le);
		buf_adds(&le, "le=\"");
		metrics_number(&le, f->bounds[i]);
		buf_addc(&le, '"');
		metrics_series(b, s, "_bucket", le.data);
		buf_printf(b, " %llu\n", (unsigned long long)cum);
	}
	metrics_series(b, s, "_bucket", "le=\"+Inf\"");
	buf_printf(b, " %llu\n", (unsigned long long)s->count);
	metrics_series(b, s, "_sum", NULL);
	buf_addc(b, ' ');
	metrics_number(b, s->sum);
	buf_addc(b, '\n');
	metrics_series(b, s, "_count", NULL);
	buf_printf(b, " %llu\n", (unsigned long long)s->count);
	buf_free(&le);
}

static void
metrics_render_family(struct buf *b, const struct family *f)
{
	const struct metric	*s;

	if (f->help[0] != '\0') {
		buf_printf(b, "# HELP %s ", f->name);
		metrics_help(b, f->help);
		buf_addc(b, '\n');
	}
	buf_printf(b, "# TYPE %s %s\n", f->name, metric_type_names[f->type]);
	for (s = f->first; s != NULL; s = s->next) {
		if (f->type == METRIC_HISTOGRAM) {
			metrics_render_histogram(b, s);
			continue;
		}
		metrics_series(b, s, "", NULL);
		buf_addc(b, ' ');
		metrics_number(b, s->value);
		buf_addc(b, '\n');
	}
}

void
metrics_render(struct metrics *m, struct buf *b)
{
	const struct family	*f;
	size_t			 i;

	for (i = 0; i < m->ncollectors; i++)
		m->collectors[i].cb(m, m->collectors[i].arg);
	for (f = m->families; f != NULL; f = f->next)
		metrics_render_family(b, f);
}

void
metrics_label(struct buf *b, const char *key, const char *value)
{
	const char	*s;

	if (b->len > 0)
		buf_addc(b, ',');
	buf_adds(b, key);
	buf_adds(b, "=\"");
	for (s = value; *s != '\0'; s++) {
		if (*s == '\\')
			buf_adds(b, "\\\\");
		else if (*s == '"')
			buf_adds(b, "\\\"");
		else if (*s == '\n')
			buf_adds(b, "\\n");
		else
			buf_addc(b, *s);
	}
	buf_addc(b, '"');
}
