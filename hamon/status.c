/*
 * status.c: the view for people (a table, colour on a terminal only), for
 * Nagios (one line with perfdata) and for `hamon watch` (one line per view);
 * all from the JSON the daemon sends, so the client links nothing else.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hamon.h"

#define STATUS_PROBLEMS_SHOWN	5

static const char *const status_words[] = { "OK", "WARNING", "CRITICAL", "UNKNOWN" };

static const struct jval *
status_backends(const struct jval *v)
{
	const struct jval	*b = v != NULL ? jval_get(v, "backends") : NULL;

	return b != NULL && b->type == J_ARR ? b : NULL;
}

static size_t
status_count_eligible(const struct jval *bs)
{
	size_t	i, n = 0;

	for (i = 0; i < bs->n; i++)
		n += jval_bool(bs->items[i], "eligible", 0) != 0;
	return n;
}

int
status_exit_code(const struct jval *v)
{
	const struct jval	*bs = status_backends(v);
	size_t			 ok;

	if (bs == NULL)
		return STATUS_UNREACHABLE;
	if (bs->n == 0)
		return STATUS_OK;	/* nothing configured, nothing wrong */
	ok = status_count_eligible(bs);
	if (ok == bs->n)
		return STATUS_OK;
	return ok == 0 ? STATUS_NONE : STATUS_DEGRADED;
}

static const char *
status_str(const struct jval *b, const char *key, const char *def)
{
	const char	*s = jval_str(b, key);

	return s != NULL && s[0] != '\0' ? s : def;
}

/* 4s, 3m12s, 2h05m, 6d03h: how long a state has held. */
static void
status_age(char *out, size_t len, double ms)
{
	long long	s = ms > 0 ? (long long)(ms / 1000) : 0;

	if (s < 60)
		snprintf(out, len, "%llds", s);
	else if (s < 3600)
		snprintf(out, len, "%lldm%02llds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(out, len, "%lldh%02lldm", s / 3600, s % 3600 / 60);
	else
		snprintf(out, len, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
}

static void
status_ms(char *out, size_t len, const struct jval *b, const char *key,
    const char *fmt)
{
	const struct jval	*v = jval_get(b, key);

	if (v == NULL || v->type != J_NUM)
		snprintf(out, len, "-");
	else
		snprintf(out, len, fmt, v->num);
}

static const char *
status_colour(const char *state)
{
	if (strcmp(state, "up") == 0)
		return "\033[32m";
	if (strcmp(state, "down") == 0)
		return "\033[1;31m";
	if (strcmp(state, "maint") == 0)
		return "\033[36m";
	return "\033[33m";
}

static void
status_row(FILE *fp, const struct jval *b, int w, int color, uint64_t now_ms)
{
	const char	*state = status_str(b, "state", "?");
	char		 since[32], lat[32], lag[32], fails[32];
	double		 t = jval_num(b, "since_ms", 0);

	if (t > 0)
		status_age(since, sizeof(since), (double)now_ms - t);
	else
		snprintf(since, sizeof(since), "-");
	status_ms(lat, sizeof(lat), b, "latency_ms", "%.1fms");
	status_ms(lag, sizeof(lag), b, "lag_ms", "%.0fms");
	status_ms(fails, sizeof(fails), b, "failures", "%.0f");
	/* An unsynced backend that keeps serving its domains says so. */
	fprintf(fp, "%-*s  %s%-9s%s %-8s %-9s %-8s %-7s %s%s\n", w,
	    status_str(b, "name", "?"), color ? status_colour(state) : "", state,
	    color ? "\033[0m" : "", since, lat, fails, lag,
	    jval_bool(b, "holds", 0) ? "(keeps its domains) " : "",
	    status_str(b, "last_error", "-"));
}

void
status_print_table(FILE *fp, const struct jval *v, int color, uint64_t now_ms)
{
	const struct jval	*bs = status_backends(v);
	size_t			 i;
	int			 w = 7, code;

	if (bs == NULL) {
		fprintf(fp, "hamon sent no view\n");
		return;
	}
	code = status_exit_code(v);
	fprintf(fp, "hamon %s: generation %.0f, %zu of %zu backends eligible "
	    "(%s)\n", status_str(v, "node", "?"), jval_num(v, "generation", 0),
	    status_count_eligible(bs), bs->n, status_words[code]);
	if (bs->n == 0)
		return;
	for (i = 0; i < bs->n; i++)
		if ((int)strlen(status_str(bs->items[i], "name", "?")) > w)
			w = (int)strlen(status_str(bs->items[i], "name", "?"));
	fprintf(fp, "%-*s  %-9s %-8s %-9s %-8s %-7s %s\n", w, "BACKEND", "STATE",
	    "SINCE", "LATENCY", "FAILURES", "LAG", "LAST ERROR");
	for (i = 0; i < bs->n; i++)
		status_row(fp, bs->items[i], w, color, now_ms);
}

void
status_print_nagios(FILE *fp, const struct jval *v)
{
	const struct jval	*bs = status_backends(v), *b, *lat;
	size_t			 i, shown = 0, nstate[BACKEND_NSTATES + 1];
	int			 code = status_exit_code(v), s;

	if (bs == NULL) {
		fprintf(fp, "HAMON UNKNOWN - hamon sent no view\n");
		return;
	}
	if (bs->n == 0) {
		fprintf(fp, "HAMON OK - no backends configured | eligible=0;;;0;0\n");
		return;
	}
	memset(nstate, 0, sizeof(nstate));
	fprintf(fp, "HAMON %s - %zu/%zu backends eligible", status_words[code],
	    status_count_eligible(bs), bs->n);
	for (i = 0; i < bs->n; i++) {
		b = bs->items[i];
		s = backend_state_parse(status_str(b, "state", "?"));
		nstate[s >= 0 ? s : BACKEND_NSTATES]++;
		if (jval_bool(b, "eligible", 0) || shown++ >= STATUS_PROBLEMS_SHOWN)
			continue;
		fprintf(fp, "%s %s %s", shown == 1 ? ":" : ",",
		    status_str(b, "name", "?"), status_str(b, "state", "?"));
		if (jval_str(b, "last_error") != NULL)
			fprintf(fp, " (%s)", jval_str(b, "last_error"));
	}
	if (shown > STATUS_PROBLEMS_SHOWN)
		fprintf(fp, ", and %zu more", shown - STATUS_PROBLEMS_SHOWN);
	fprintf(fp, " | eligible=%zu;;;0;%zu", status_count_eligible(bs), bs->n);
	for (s = 0; s < BACKEND_NSTATES; s++)
		fprintf(fp, " %s=%zu", backend_state_name(s), nstate[s]);
	for (i = 0; i < bs->n; i++) {
		b = bs->items[i];
		lat = jval_get(b, "latency_ms");
		if (lat != NULL && lat->type == J_NUM && isfinite(lat->num))
			fprintf(fp, " latency_%s=%.3fms;;;0", status_str(b, "name",
			    "?"), lat->num);
	}
	fputc('\n', fp);
}

void
status_print_watch(FILE *fp, const struct jval *v)
{
	const struct jval	*bs = status_backends(v), *b;
	char			 stamp[32];
	struct timespec		 ts;
	struct tm		 tm;
	size_t			 i;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
	fprintf(fp, "%s.%03ld generation %.0f:", stamp, ts.tv_nsec / 1000000,
	    jval_num(v, "generation", 0));
	for (i = 0; bs != NULL && i < bs->n; i++) {
		b = bs->items[i];
		fprintf(fp, "%s %s %s", i > 0 ? "," : "", status_str(b, "name", "?"),
		    status_str(b, "state", "?"));
		if (!jval_bool(b, "eligible", 0) && jval_str(b, "last_error") != NULL)
			fprintf(fp, " (%s)", jval_str(b, "last_error"));
	}
	if (bs == NULL || bs->n == 0)
		fprintf(fp, " no backends");
	fputc('\n', fp);
	fflush(fp);
}
