/*
 * config_get.c: reading a loaded config: map access, unknown keys, the typed
 * getters and the pure parsers behind them (durations, sizes, booleans).
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common.h"
#include "config_int.h"

#define CFG_EDIT_MAX	64	/* longer strings are not compared for suggestions */
#define CFG_MAX_DECIMALS 6

/* ---- maps and keys ---- */

const struct cfg_node *
cfg_map_get(const struct cfg_node *map, const char *key)
{
	size_t	i;

	if (map == NULL || map->kind != CFG_MAP || key == NULL)
		return NULL;
	for (i = 0; i < map->n; i++)
		if (strcmp(map->keys[i]->scalar, key) == 0)
			return map->vals[i];
	return NULL;
}

size_t
cfg_edit_distance(const char *a, const char *b)
{
	size_t	row[2][CFG_EDIT_MAX + 1], la = strlen(a), lb = strlen(b), i, j;
	size_t	del, ins, sub, *prev, *cur;

	if (la > CFG_EDIT_MAX || lb > CFG_EDIT_MAX)
		return strcmp(a, b) == 0 ? 0 : (la > lb ? la : lb);
	for (j = 0; j <= lb; j++)
		row[0][j] = j;
	for (i = 1; i <= la; i++) {
		prev = row[(i - 1) & 1];
		cur = row[i & 1];
		cur[0] = i;
		for (j = 1; j <= lb; j++) {
			del = prev[j] + 1;
			ins = cur[j - 1] + 1;
			sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
			cur[j] = del < ins ? del : ins;
			if (sub < cur[j])
				cur[j] = sub;
		}
	}
	return row[la & 1][lb];
}

/* The nearest known key, when it is close enough to be the one meant. */
static const char *
cfg_suggest(const char *key, const char *const *known)
{
	const char	*best = NULL;
	size_t		 d, bestd = SIZE_MAX, i;

	for (i = 0; known[i] != NULL; i++)
		if ((d = cfg_edit_distance(key, known[i])) < bestd) {
			bestd = d;
			best = known[i];
		}
	if (best == NULL || bestd >= strlen(best))
		return NULL;
	if (bestd <= 2 || bestd <= strlen(key) / 3)
		return best;
	return NULL;
}

static const char *
cfg_found(const struct cfg_node *n, char *buf, size_t len)
{
	char	shown[CFG_SHOW_MAX + 8];

	if (n == NULL)
		return "nothing";
	if (n->kind == CFG_MAP)
		return "a map";
	if (n->kind == CFG_LIST)
		return "a list";
	if (cfg_is_null(n))
		return "an empty value";
	snprintf(buf, len, "'%s'", cfg_show(n->scalar, shown, sizeof(shown)));
	return buf;
}

static const char *
cfg_kind_want(enum cfg_kind kind)
{
	switch (kind) {
	case CFG_MAP:
		return "a map";
	case CFG_LIST:
		return "a list";
	default:
		return "a value";
	}
}

int
cfg_expect(struct cfg_errs *errs, const struct cfg_node *n, const char *key,
    enum cfg_kind kind)
{
	char	buf[CFG_SHOW_MAX + 16];

	if (n != NULL && n->kind == kind && !(kind == CFG_SCALAR && cfg_is_null(n)))
		return 0;
	cfg_err(errs, n, key, "expected %s, found %s", cfg_kind_want(kind),
	    cfg_found(n, buf, sizeof(buf)));
	return -1;
}

int
cfg_check_keys(struct cfg_errs *errs, const struct cfg_node *map,
    const char *const *known)
{
	const struct cfg_node	*k;
	const char		*near;
	size_t			 i, j;
	int			 rc = 0;

	if (map == NULL)
		return 0;
	if (cfg_expect(errs, map, NULL, CFG_MAP) == -1)
		return -1;
	for (i = 0; i < map->n; i++) {
		k = map->keys[i];
		for (j = 0; known[j] != NULL; j++)
			if (strcmp(k->scalar, known[j]) == 0)
				break;
		if (known[j] != NULL)
			continue;
		rc = -1;
		if ((near = cfg_suggest(k->scalar, known)) != NULL)
			cfg_err(errs, k, k->scalar, "unknown key (did you mean "
			    "'%s'?)", near);
		else
			cfg_err(errs, k, k->scalar, "unknown key");
	}
	return rc;
}

/* ---- pure parsers ---- */

/* A decimal with up to CFG_MAX_DECIMALS places: ip + frac / scale. */
struct cfg_num {
	uint64_t	ip, frac, scale;
};

static int
cfg_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* 0, or -1 (no number), -2 (too large), -3 (too many decimals). */
static int
cfg_num_parse(const char **sp, struct cfg_num *n)
{
	const char	*s = *sp;
	int		 over = 0, places = 0, precise = 0;

	n->ip = n->frac = 0;
	n->scale = 1;
	if (!cfg_is_digit(*s))
		return -1;
	for (; cfg_is_digit(*s); s++) {
		if (n->ip > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			over = 1;
		else
			n->ip = n->ip * 10 + (uint64_t)(*s - '0');
	}
	if (*s == '.') {
		if (!cfg_is_digit(*++s))
			return -1;
		for (; cfg_is_digit(*s); s++, places++)
			if (places < CFG_MAX_DECIMALS) {
				n->frac = n->frac * 10 + (uint64_t)(*s - '0');
				n->scale *= 10;
			} else if (*s != '0')
				precise = 1;
	}
	*sp = s;
	return over ? -2 : precise ? -3 : 0;
}

/* N * MULT exactly: 0, -1 (too large), -2 (not a whole number). */
static int
cfg_num_scale(const struct cfg_num *n, uint64_t mult, uint64_t *out)
{
	uint64_t	v, f;

	if (mult != 0 && n->ip > UINT64_MAX / mult)
		return -1;
	v = n->ip * mult;
	/* frac < 10^6 and mult <= 2^40: no overflow. */
	f = n->frac * mult;
	if (f % n->scale != 0)
		return -2;
	f /= n->scale;
	if (v > UINT64_MAX - f)
		return -1;
	*out = v + f;
	return 0;
}

struct cfg_unit {
	const char	*name;
	uint64_t	 mult;
};

static const struct cfg_unit cfg_time_units[] = {
	{ "ms", 1 }, { "s", 1000 }, { "m", 60 * 1000 }, { "h", 3600 * 1000 },
	{ NULL, 0 }
};

static const struct cfg_unit cfg_size_units[] = {
	{ "B", 1 },
	{ "KB", 1000ULL }, { "MB", 1000ULL * 1000 },
	{ "GB", 1000ULL * 1000 * 1000 }, { "TB", 1000ULL * 1000 * 1000 * 1000 },
	{ "KiB", 1ULL << 10 }, { "MiB", 1ULL << 20 }, { "GiB", 1ULL << 30 },
	{ "TiB", 1ULL << 40 },
	{ NULL, 0 }
};

/*
 * "<number>[ ]<unit>" into *OUT.  WHAT names the quantity in messages;
 * UNITLESS is the multiplier for a bare number, 0 when a unit is required.
 */
static int
cfg_parse_quantity(const char *s, const struct cfg_unit *units, int icase,
    uint64_t unitless, const char *what, const char *unitlist, uint64_t *out,
    char *err, size_t errlen)
{
	struct cfg_num	 num;
	const char	*p = s;
	char		 shown[CFG_SHOW_MAX + 8];
	uint64_t	 mult = unitless;
	size_t		 i;
	int		 rc;

	cfg_show(s, shown, sizeof(shown));
	if (*p == '-' && cfg_is_digit(p[1])) {
		snprintf(err, errlen, "'%s': a %s cannot be negative", shown, what);
		return -1;
	}
	if ((rc = cfg_num_parse(&p, &num)) == -1) {
		snprintf(err, errlen, "'%s' is not a %s (a number and a unit: %s)",
		    shown, what, unitlist);
		return -1;
	}
	while (*p == ' ')
		p++;
	if (*p == '\0' && unitless == 0) {
		snprintf(err, errlen, "'%s' needs a unit (%s)", shown, unitlist);
		return -1;
	}
	if (*p != '\0') {
		for (i = 0; units[i].name != NULL; i++)
			if ((icase ? strcasecmp(p, units[i].name) :
			    strcmp(p, units[i].name)) == 0)
				break;
		if (units[i].name == NULL) {
			snprintf(err, errlen, "'%s' has an unknown unit (use %s)",
			    shown, unitlist);
			return -1;
		}
		mult = units[i].mult;
	}
	if (rc == -3) {
		snprintf(err, errlen, "'%s' has too many decimals", shown);
		return -1;
	}
	if (rc == -2 || (rc = cfg_num_scale(&num, mult, out)) == -1) {
		snprintf(err, errlen, "'%s' is too large", shown);
		return -1;
	}
	if (rc == -2) {
		snprintf(err, errlen, "'%s' is not a whole number of %s", shown,
		    unitless == 0 ? "milliseconds" : "bytes");
		return -1;
	}
	return 0;
}

int
cfg_parse_duration_ms(const char *s, int64_t *out, char *err, size_t errlen)
{
	char		shown[CFG_SHOW_MAX + 8];
	uint64_t	v;

	if (cfg_parse_quantity(s, cfg_time_units, 0, 0, "duration",
	    "ms, s, m, h", &v, err, errlen) == -1)
		return -1;
	if (v > INT64_MAX) {
		snprintf(err, errlen, "'%s' is too large", cfg_show(s, shown,
		    sizeof(shown)));
		return -1;
	}
	*out = (int64_t)v;
	return 0;
}

int
cfg_parse_size(const char *s, uint64_t *out, char *err, size_t errlen)
{
	return cfg_parse_quantity(s, cfg_size_units, 1, 1, "size",
	    "B, KB, MB, GB, TB, KiB, MiB, GiB, TiB", out, err, errlen);
}

int
cfg_parse_bool(const char *s, int *out)
{
	static const char *const yes[] = { "true", "yes", "on", NULL };
	static const char *const no[] = { "false", "no", "off", NULL };
	size_t			 i;

	if (s == NULL)
		return -1;
	for (i = 0; yes[i] != NULL; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

/* Decimal with an optional sign: 0, -1 (not an integer), -2 (overflow). */
static int
cfg_parse_int(const char *s, int64_t *out)
{
	uint64_t	v = 0, limit = INT64_MAX;
	int		neg = 0, over = 0, d;

	if (*s == '-' || *s == '+') {
		neg = *s == '-';
		s++;
	}
	if (neg)
		limit = (uint64_t)INT64_MAX + 1;
	if (!cfg_is_digit(*s))
		return -1;
	for (; cfg_is_digit(*s); s++) {
		d = *s - '0';
		if (v > (limit - (uint64_t)d) / 10)
			over = 1;
		else
			v = v * 10 + (uint64_t)d;
	}
	if (*s != '\0')
		return -1;
	if (over)
		return -2;
	if (neg)
		*out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	else
		*out = (int64_t)v;
	return 0;
}

/* ---- formatting ranges for messages ---- */

static const char *
cfg_fmt_ms(int64_t ms, char *buf, size_t len)
{
	if (ms != 0 && ms % (3600 * 1000) == 0)
		snprintf(buf, len, "%" PRId64 "h", ms / (3600 * 1000));
	else if (ms != 0 && ms % (60 * 1000) == 0)
		snprintf(buf, len, "%" PRId64 "m", ms / (60 * 1000));
	else if (ms != 0 && ms % 1000 == 0)
		snprintf(buf, len, "%" PRId64 "s", ms / 1000);
	else
		snprintf(buf, len, "%" PRId64 "ms", ms);
	return buf;
}

static const char *
cfg_fmt_size(uint64_t v, char *buf, size_t len)
{
	size_t	i;

	/* The largest unit that says it exactly, binary first. */
	for (i = 8; v != 0 && i >= 1; i--)
		if (v % cfg_size_units[i].mult == 0) {
			snprintf(buf, len, "%" PRIu64 "%s", v /
			    cfg_size_units[i].mult, cfg_size_units[i].name);
			return buf;
		}
	snprintf(buf, len, "%" PRIu64 "B", v);
	return buf;
}

static const char *
cfg_fmt_range(const char *lo, const char *hi, int lo_min, int hi_max,
    int neg, char *buf, size_t len)
{
	if (lo_min && hi_max)
		snprintf(buf, len, "%s to %s", lo, hi);
	else if (hi_max)
		snprintf(buf, len, "at least %s", lo);
	else if (lo_min)
		snprintf(buf, len, "at most %s", hi);
	else
		snprintf(buf, len, neg ? "%s to %s" : "%s-%s", lo, hi);
	return buf;
}

/* ---- typed getters ---- */

/* The scalar text of N, or NULL with "expected WANT, found ...". */
static const char *
cfg_scalar(struct cfg_errs *errs, const struct cfg_node *n, const char *key,
    const char *want)
{
	char	buf[CFG_SHOW_MAX + 16];

	if (n != NULL && n->kind == CFG_SCALAR && !cfg_is_null(n))
		return n->scalar;
	cfg_err(errs, n, key, "expected %s, found %s", want, cfg_found(n, buf,
	    sizeof(buf)));
	return NULL;
}

/* 1 present (*vp), 0 absent and optional, -1 absent and required, or no map. */
static int
cfg_lookup(struct cfg_errs *errs, const struct cfg_node *map, const char *key,
    int required, const struct cfg_node **vp)
{
	const struct cfg_node	*v;
	char			 buf[CFG_SHOW_MAX + 16];

	if (map != NULL && map->kind != CFG_MAP) {
		cfg_err(errs, map, NULL, "expected a map, found %s", cfg_found(map,
		    buf, sizeof(buf)));
		return -1;
	}
	v = cfg_map_get(map, key);
	if (v != NULL && !cfg_is_null(v)) {
		*vp = v;
		return 1;
	}
	if (!required)
		return 0;
	if (v != NULL)
		cfg_err(errs, v, key, "needs a value");
	else
		cfg_err(errs, map, key, "required key is missing");
	return -1;
}

int
cfg_node_str(struct cfg_errs *errs, const struct cfg_node *n, const char *key,
    const char **out)
{
	const char	*s;

	if ((s = cfg_scalar(errs, n, key, "a string")) == NULL)
		return -1;
	*out = s;
	return 0;
}

int
cfg_node_int(struct cfg_errs *errs, const struct cfg_node *n, const char *key,
    int64_t min, int64_t max, int64_t *out)
{
	const char	*s;
	char		 lo[24], hi[24], range[64], shown[CFG_SHOW_MAX + 8];
	int64_t		 v = 0;
	int		 rc;

	if ((s = cfg_scalar(errs, n, key, "an integer")) == NULL)
		return -1;
	if ((rc = cfg_parse_int(s, &v)) == -1) {
		cfg_err(errs, n, key, "'%s' is not an integer", cfg_show(s, shown,
		    sizeof(shown)));
		return -1;
	}
	if (rc == 0 && v >= min && v <= max) {
		*out = v;
		return 0;
	}
	snprintf(lo, sizeof(lo), "%" PRId64, min);
	snprintf(hi, sizeof(hi), "%" PRId64, max);
	cfg_err(errs, n, key, "%s is out of range (%s)", cfg_show(s, shown,
	    sizeof(shown)), cfg_fmt_range(lo, hi, min == INT64_MIN,
	    max == INT64_MAX, min < 0, range, sizeof(range)));
	return -1;
}

int
cfg_node_bool(struct cfg_errs *errs, const struct cfg_node *n, const char *key,
    int *out)
{
	const char	*s;
	char		 shown[CFG_SHOW_MAX + 8];

	/* A quoted "yes" is still a yes: the field asks for a boolean. */
	if ((s = cfg_scalar(errs, n, key, "true or false")) == NULL)
		return -1;
	if (cfg_parse_bool(s, out) == -1) {
		cfg_err(errs, n, key, "'%s' is not a boolean (use true or false)",
		    cfg_show(s, shown, sizeof(shown)));
		return -1;
	}
	return 0;
}

int
cfg_node_duration_ms(struct cfg_errs *errs, const struct cfg_node *n,
    const char *key, int64_t min, int64_t max, int64_t *out)
{
	const char	*s;
	char		 err[256], lo[32], hi[32], range[80], shown[CFG_SHOW_MAX + 8];
	int64_t		 v;

	if ((s = cfg_scalar(errs, n, key, "a duration")) == NULL)
		return -1;
	if (cfg_parse_duration_ms(s, &v, err, sizeof(err)) == -1) {
		cfg_err(errs, n, key, "%s", err);
		return -1;
	}
	if (v >= min && v <= max) {
		*out = v;
		return 0;
	}
	cfg_err(errs, n, key, "%s is out of range (%s)", cfg_show(s, shown,
	    sizeof(shown)), cfg_fmt_range(cfg_fmt_ms(min, lo, sizeof(lo)),
	    cfg_fmt_ms(max, hi, sizeof(hi)), 0, max == INT64_MAX, min < 0,
	    range, sizeof(range)));
	return -1;
}

int
cfg_node_size(struct cfg_errs *errs, const struct cfg_node *n, const char *key,
    uint64_t min, uint64_t max, uint64_t *out)
{
	const char	*s;
	char		 err[256], lo[32], hi[32], range[80], shown[CFG_SHOW_MAX + 8];
	uint64_t	 v;

	if ((s = cfg_scalar(errs, n, key, "a size")) == NULL)
		return -1;
	if (cfg_parse_size(s, &v, err, sizeof(err)) == -1) {
		cfg_err(errs, n, key, "%s", err);
		return -1;
	}
	if (v >= min && v <= max) {
		*out = v;
		return 0;
	}
	cfg_err(errs, n, key, "%s is out of range (%s)", cfg_show(s, shown,
	    sizeof(shown)), cfg_fmt_range(cfg_fmt_size(min, lo, sizeof(lo)),
	    cfg_fmt_size(max, hi, sizeof(hi)), 0, max == UINT64_MAX, 0,
	    range, sizeof(range)));
	return -1;
}

int
cfg_node_addr(struct cfg_errs *errs, const struct cfg_node *n, const char *key,
    struct net_addr *out)
{
	struct net_addr	 a;
	const char	*s;
	char		 err[512];

	if ((s = cfg_scalar(errs, n, key, "an address (host:port)")) == NULL)
		return -1;
	/* Parsed aside: on an error the caller's default stays. */
	if (net_addr_parse(s, &a, err, sizeof(err)) == -1) {
		cfg_err(errs, n, key, "%s", err);
		return -1;
	}
	*out = a;
	return 0;
}

int
cfg_node_enum(struct cfg_errs *errs, const struct cfg_node *n, const char *key,
    const char *const *choices, int *out)
{
	const char	*s;
	char		 list[512], shown[CFG_SHOW_MAX + 8];
	size_t		 i;

	snprintf(list, sizeof(list), "one of: ");
	for (i = 0; choices[i] != NULL; i++)
		cfg_catf(list, sizeof(list), "%s%s", i > 0 ? ", " : "", choices[i]);
	if ((s = cfg_scalar(errs, n, key, list)) == NULL)
		return -1;
	for (i = 0; choices[i] != NULL; i++)
		if (strcmp(s, choices[i]) == 0) {
			*out = (int)i;
			return 0;
		}
	cfg_err(errs, n, key, "must be %s (found '%s')", list,
	    cfg_show(s, shown, sizeof(shown)));
	return -1;
}

int
cfg_get_str(struct cfg_errs *errs, const struct cfg_node *map, const char *key,
    int required, const char **out)
{
	const struct cfg_node	*v;
	int			 rc;

	if ((rc = cfg_lookup(errs, map, key, required, &v)) <= 0)
		return rc;
	return cfg_node_str(errs, v, key, out);
}

int
cfg_get_int(struct cfg_errs *errs, const struct cfg_node *map, const char *key,
    int required, int64_t min, int64_t max, int64_t *out)
{
	const struct cfg_node	*v;
	int			 rc;

	if ((rc = cfg_lookup(errs, map, key, required, &v)) <= 0)
		return rc;
	return cfg_node_int(errs, v, key, min, max, out);
}

int
cfg_get_bool(struct cfg_errs *errs, const struct cfg_node *map, const char *key,
    int required, int *out)
{
	const struct cfg_node	*v;
	int			 rc;

	if ((rc = cfg_lookup(errs, map, key, required, &v)) <= 0)
		return rc;
	return cfg_node_bool(errs, v, key, out);
}

int
cfg_get_duration_ms(struct cfg_errs *errs, const struct cfg_node *map,
    const char *key, int required, int64_t min, int64_t max, int64_t *out)
{
	const struct cfg_node	*v;
	int			 rc;

	if ((rc = cfg_lookup(errs, map, key, required, &v)) <= 0)
		return rc;
	return cfg_node_duration_ms(errs, v, key, min, max, out);
}

int
cfg_get_size(struct cfg_errs *errs, const struct cfg_node *map, const char *key,
    int required, uint64_t min, uint64_t max, uint64_t *out)
{
	const struct cfg_node	*v;
	int			 rc;

	if ((rc = cfg_lookup(errs, map, key, required, &v)) <= 0)
		return rc;
	return cfg_node_size(errs, v, key, min, max, out);
}

int
cfg_get_addr(struct cfg_errs *errs, const struct cfg_node *map, const char *key,
    int required, struct net_addr *out)
{
	const struct cfg_node	*v;
	int			 rc;

	if ((rc = cfg_lookup(errs, map, key, required, &v)) <= 0)
		return rc;
	return cfg_node_addr(errs, v, key, out);
}

int
cfg_get_enum(struct cfg_errs *errs, const struct cfg_node *map, const char *key,
    int required, const char *const *choices, int *out)
{
	const struct cfg_node	*v;
	int			 rc;

	if ((rc = cfg_lookup(errs, map, key, required, &v)) <= 0)
		return rc;
	return cfg_node_enum(errs, v, key, choices, out);
}

static const struct cfg_node *
cfg_get_kind(struct cfg_errs *errs, const struct cfg_node *map, const char *key,
    int required, enum cfg_kind kind)
{
	const struct cfg_node	*v;

	if (cfg_lookup(errs, map, key, required, &v) <= 0)
		return NULL;
	if (cfg_expect(errs, v, key, kind) == -1)
		return NULL;
	return v;
}

const struct cfg_node *
cfg_get_list(struct cfg_errs *errs, const struct cfg_node *map, const char *key,
    int required)
{
	return cfg_get_kind(errs, map, key, required, CFG_LIST);
}

const struct cfg_node *
cfg_get_map(struct cfg_errs *errs, const struct cfg_node *map, const char *key,
    int required)
{
	return cfg_get_kind(errs, map, key, required, CFG_MAP);
}
