/*
 * log.c: leveled logging to stderr.  Lines carry a timestamp and the program
 * name, except under journald, which adds its own (JOURNAL_STREAM is set).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static const char	*log_prog = "jabber-ha";
/* A reload sets it while proxyd's workers log: relaxed atomics suffice. */
static atomic_int	 log_level = LOG_LVL_INFO;
static int		 log_plain;	/* journald: no timestamp, syslog prefixes */

static const char *const log_names[] = { "error", "warn", "info", "debug" };

void
log_init(const char *progname, int level)
{
	log_prog = progname;
	atomic_store_explicit(&log_level, level, memory_order_relaxed);
	log_plain = getenv("JOURNAL_STREAM") != NULL;
}

void
log_set_level(int level)
{
	atomic_store_explicit(&log_level, level, memory_order_relaxed);
}

int
log_get_level(void)
{
	return atomic_load_explicit(&log_level, memory_order_relaxed);
}

int
log_level_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
		if (strcasecmp(name, log_names[i]) == 0)
			return (int)i;
	if (strcasecmp(name, "warning") == 0)
		return LOG_LVL_WARN;
	return -1;
}

const char *
log_level_name(int level)
{
	if (level < 0 || level > LOG_LVL_DEBUG)
		return "?";
	return log_names[level];
}

/* One write(2) per line, so lines from threads never interleave. */
static void
log_vemit(int level, const char *fmt, va_list ap, const char *suffix)
{
	/* journald understands <N> priority prefixes (sd-daemon(3)). */
	static const int prio[] = { 3, 4, 6, 7 };
	char		 line[4096], ts[40];
	struct timespec	 now;
	struct tm	 tm;
	int		 n, m;

	if (level > atomic_load_explicit(&log_level, memory_order_relaxed))
		return;
	if (log_plain)
		n = snprintf(line, sizeof(line), "<%d>%s: ", prio[level],
		    log_names[level]);
	else {
		clock_gettime(CLOCK_REALTIME, &now);
		gmtime_r(&now.tv_sec, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		n = snprintf(line, sizeof(line), "%s.%03ldZ %s[%ld]: %s: ", ts,
		    now.tv_nsec / 1000000, log_prog, (long)getpid(),
		    log_names[level]);
	}
	m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	n = (m < 0 || (size_t)(n + m) >= sizeof(line)) ? (int)sizeof(line) - 2 : n + m;
	if (suffix != NULL)
		n += snprintf(line + n, sizeof(line) - n, ": %s", suffix);
	if ((size_t)n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
}

#define LOG_FN(fn, lvl)					\
void							\
fn(const char *fmt, ...)				\
{							\
	va_list ap;					\
	va_start(ap, fmt);				\
	log_vemit(lvl, fmt, ap, NULL);			\
	va_end(ap);					\
}
LOG_FN(log_debug, LOG_LVL_DEBUG)
LOG_FN(log_info, LOG_LVL_INFO)
LOG_FN(log_warnx, LOG_LVL_WARN)
LOG_FN(log_errorx, LOG_LVL_ERROR)

void
log_warn(const char *fmt, ...)
{
	va_list	ap;
	int	saved = errno;

	va_start(ap, fmt);
	log_vemit(LOG_LVL_WARN, fmt, ap, strerror(saved));
	va_end(ap);
	errno = saved;
}

void
fatal(const char *fmt, ...)
{
	va_list	ap;
	int	saved = errno;

	va_start(ap, fmt);
	log_vemit(LOG_LVL_ERROR, fmt, ap, strerror(saved));
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vemit(LOG_LVL_ERROR, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}
