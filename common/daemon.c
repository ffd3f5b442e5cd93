/*
 * daemon.c: the life every jabber-ha daemon shares: the common config keys,
 * the control socket and HTTP listener, signals through libevent, reload
 * that swaps a config in only when it validated, readiness and watchdog for
 * systemd, and the drop to an unprivileged user after binding.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "common.h"

const char *const common_conf_keys[] = {
	"control", "http", "log_level", "user", "group", NULL
};

static const uint16_t	 http_ports[] = { 9291, 9292, 9293 };
static const char *const daemon_names[] = { "spoolsync", "hamon", "proxyd" };

void
common_conf_defaults(struct common_conf *c, const char *daemon)
{
	static char	 paths[3][64];
	char		 err[128], addr[32];
	size_t		 i;

	memset(c, 0, sizeof(*c));
	c->log_level = LOG_LVL_INFO;
	for (i = 0; i < 3; i++)
		if (strcmp(daemon, daemon_names[i]) == 0)
			break;
	if (i == 3)
		fatalx("common_conf_defaults: unknown daemon %s", daemon);
	snprintf(paths[i], sizeof(paths[i]), "/run/jabber-ha/%s.sock", daemon);
	c->control = paths[i];
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", http_ports[i]);
	if (net_addr_parse(addr, &c->http, err, sizeof(err)) == -1)
		fatalx("common_conf_defaults: %s", err);
	c->has_http = 1;
}

int
common_conf_parse(struct cfg_errs *errs, const struct cfg_node *root,
    struct common_conf *c)
{
	static const char *const levels[] = { "error", "warn", "info", "debug", NULL };
	const struct cfg_node	*http;
	size_t			 before = errs->n;

	cfg_get_str(errs, root, "control", 0, &c->control);
	if (c->control != NULL && c->control[0] != '/')
		cfg_err(errs, cfg_map_get(root, "control"), "control",
		    "must be an absolute path");
	http = cfg_map_get(root, "http");
	if (http != NULL && http->kind == CFG_SCALAR &&
	    strcmp(http->scalar, "off") == 0)
		c->has_http = 0;
	else if (cfg_get_addr(errs, root, "http", 0, &c->http) == 0 && http != NULL)
		c->has_http = 1;
	cfg_get_enum(errs, root, "log_level", 0, levels, &c->log_level);
	cfg_get_str(errs, root, "user", 0, &c->user);
	cfg_get_str(errs, root, "group", 0, &c->group);
	return errs->n == before ? 0 : -1;
}

struct cfg_doc *
common_conf_load(const char *path, struct cfg_errs *errs)
{
	struct cfg_doc	*doc;

	if ((doc = cfg_load(path, errs)) == NULL)
		return NULL;
	if (doc->root == NULL || doc->root->kind != CFG_MAP) {
		if (doc->root != NULL)
			cfg_err(errs, doc->root, NULL,
			    "the configuration must be a map of keys");
		else if (errs->n == 0)
			cfg_err(errs, NULL, NULL, "%s: empty configuration", path);
		cfg_free(doc);
		return NULL;
	}
	return doc;
}

const char **
common_conf_keys_with(const char *const *own)
{
	static const char	*all[64];
	size_t			 n = 0, i;

	for (i = 0; common_conf_keys[i] != NULL; i++)
		all[n++] = common_conf_keys[i];
	for (i = 0; own != NULL && own[i] != NULL && n < 63; i++)
		all[n++] = own[i];
	all[n] = NULL;
	return all;
}

uint64_t
now_mono_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t
now_mono_ms(void)
{
	return now_mono_ns() / 1000000ull;
}

uint64_t
now_real_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

void
daemon_status_json(struct daemon *d, struct json *j)
{
	json_obj_begin(j);
	json_kv_str(j, "daemon", d->name);
	json_kv_str(j, "version", JHA_VERSION);
	json_kv_int(j, "pid", (int64_t)getpid());
	json_kv_uint(j, "uptime_ms", now_mono_ms() - d->started_ms);
	json_kv_str(j, "config", d->conf_path);
	json_kv_uint(j, "reloads", d->reloads);
	json_kv_uint(j, "reload_failures", d->reload_failures);
	json_kv_str(j, "last_reload_error", d->last_reload_error[0] ?
	    d->last_reload_error : NULL);
	json_kv_str(j, "log_level", log_level_name(log_get_level()));
	if (d->status != NULL)
		d->status(d, j);
	json_obj_end(j);
}

static void
daemon_http_status_cb(struct json *j, void *arg)
{
	daemon_status_json(arg, j);
}

static void
daemon_control_cb(struct control_conn *c, int argc, char **argv, void *arg)
{
	struct daemon	*d = arg;
	struct json	 j;

	if (strcmp(argv[0], "status") == 0 && argc == 1) {
		json_init(&j);
		daemon_status_json(d, &j);
		control_reply(c, json_text(&j));
		json_free(&j);
	} else if (strcmp(argv[0], "ping") == 0 && argc == 1)
		control_reply(c, "\"pong\"");
	else if (strcmp(argv[0], "version") == 0 && argc == 1)
		control_reply(c, "\"" JHA_VERSION "\"");
	else if (strcmp(argv[0], "reload") == 0 && argc == 1) {
		if (daemon_reload(d) == 0)
			control_reply(c, "\"reloaded\"");
		else
			control_reply_error(c, "reload refused, the running "
			    "configuration stays: %s", d->last_reload_error);
	} else if (d->command != NULL)
		d->command(d, c, argc, argv);
	else
		control_reply_error(c, "unknown command '%s'", argv[0]);
}

static int
daemon_open_http(struct daemon *d, const struct common_conf *conf, char *err,
    size_t errlen)
{
	if (!conf->has_http)
		return 0;
	d->http = httpd_start(d->base, &conf->http, d->metrics,
	    daemon_http_status_cb, d, err, errlen);
	return d->http == NULL ? -1 : 0;
}

int
daemon_start(struct daemon *d, const struct common_conf *conf, char *err,
    size_t errlen)
{
	struct passwd	*pw;

	d->common = *conf;
	log_set_level(conf->log_level);
	d->ctl = control_listen(d->base, conf->control, daemon_control_cb, d, err,
	    errlen);
	if (d->ctl == NULL)
		return -1;
	/* The daemon's own user must be able to ask it after the drop. */
	if (conf->user != NULL && geteuid() == 0 &&
	    (pw = getpwnam(conf->user)) != NULL &&
	    chown(conf->control, pw->pw_uid, pw->pw_gid) == -1)
		log_warn("chown %s", conf->control);
	if (daemon_open_http(d, conf, err, errlen) == -1) {
		control_close(d->ctl);
		d->ctl = NULL;
		return -1;
	}
	return 0;
}

static int
daemon_same_str(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

int
daemon_apply_common(struct daemon *d, const struct common_conf *conf, char *err,
    size_t errlen)
{
	struct httpd	*old = d->http;
	int		 same_http;

	if (!daemon_same_str(conf->control, d->common.control)) {
		snprintf(err, errlen, "control: the socket path cannot change on "
		    "reload (restart the daemon)");
		return -1;
	}
	if (!daemon_same_str(conf->user, d->common.user) ||
	    !daemon_same_str(conf->group, d->common.group)) {
		snprintf(err, errlen, "user/group cannot change on reload "
		    "(restart the daemon)");
		return -1;
	}
	same_http = conf->has_http == d->common.has_http && (!conf->has_http ||
	    strcmp(conf->http.text, d->common.http.text) == 0);
	if (!same_http) {
		/* Open the new listener first: on failure the old one stays. */
		d->http = NULL;
		if (daemon_open_http(d, conf, err, errlen) == -1) {
			d->http = old;
			return -1;
		}
		if (old != NULL)
			httpd_stop(old);
	}
	d->common = *conf;
	log_set_level(conf->log_level);
	return 0;
}

int
daemon_reload(struct daemon *d)
{
	char	err[sizeof(d->last_reload_error)];

	sd_notifyf("RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)(now_mono_ns() / 1000));
	err[0] = '\0';
	if (d->reload == NULL || d->reload(d, err, sizeof(err)) == -1) {
		d->reload_failures++;
		snprintf(d->last_reload_error, sizeof(d->last_reload_error), "%s",
		    err[0] ? err : "invalid configuration");
		log_errorx("reload: %s", d->last_reload_error);
		log_warnx("reload: keeping the running configuration");
		sd_notify_send("READY=1");
		return -1;
	}
	d->reloads++;
	d->last_reload_error[0] = '\0';
	log_info("reload: configuration reloaded from %s", d->conf_path);
	sd_notify_send("READY=1");
	return 0;
}

static void
daemon_signal_cb(evutil_socket_t sig, short events, void *arg)
{
	struct daemon	*d = arg;

	if (sig == SIGHUP) {
		daemon_reload(d);
		return;
	}
	if (d->stopping++) {
		log_warnx("second %s, exiting at once", strsignal(sig));
		exit(1);
	}
	log_info("stopping on %s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	sd_notify_send("STOPPING=1");
	if (d->shutdown != NULL)
		d->shutdown(d);
	event_base_loopexit(d->base, NULL);
}

static void
daemon_watchdog_cb(evutil_socket_t fd, short events, void *arg)
{
	/* Sent from the loop itself: a wedged loop stops the pings. */
	sd_notify_send("WATCHDOG=1");
}

/* Every daemon's own health, refreshed at each scrape. */
static void
daemon_metrics_cb(struct metrics *m, void *arg)
{
	struct daemon	*d = arg;
	char		 name[96], labels[64];

	snprintf(name, sizeof(name), "%s_build_info", d->name);
	snprintf(labels, sizeof(labels), "version=\"%s\"", JHA_VERSION);
	metric_set(metrics_gauge(m, name, labels, "The running version."), 1);
	snprintf(name, sizeof(name), "%s_uptime_seconds", d->name);
	metric_set(metrics_gauge(m, name, NULL, "Seconds since the daemon started."),
	    (double)(now_mono_ms() - d->started_ms) / 1000.0);
	snprintf(name, sizeof(name), "%s_config_reloads_total", d->name);
	metric_set(metrics_counter(m, name, NULL,
	    "Configuration reloads that were applied."), d->reloads);
	snprintf(name, sizeof(name), "%s_config_reload_failures_total", d->name);
	metric_set(metrics_counter(m, name, NULL,
	    "Configuration reloads refused (the running one stayed)."),
	    d->reload_failures);
}

void
daemon_init(struct daemon *d, const char *name, const char *conf_path,
    struct event_base *base)
{
	static const int	sigs[3] = { SIGTERM, SIGINT, SIGHUP };
	struct timeval		tv;
	uint64_t		usec;

	memset(d, 0, sizeof(*d));
	d->name = name;
	d->conf_path = conf_path;
	d->base = base;
	d->started_ms = now_mono_ms();
	d->metrics = metrics_new();
	metrics_on_collect(d->metrics, daemon_metrics_cb, d);
	signal(SIGPIPE, SIG_IGN);
	for (int i = 0; i < 3; i++) {
		d->ev_sig[i] = evsignal_new(base, sigs[i], daemon_signal_cb, d);
		if (d->ev_sig[i] == NULL || evsignal_add(d->ev_sig[i], NULL) == -1)
			fatalx("cannot install the handler for signal %d", sigs[i]);
	}
	if ((usec = sd_watchdog_usec()) > 0) {
		usec /= 2;
		tv.tv_sec = usec / 1000000;
		tv.tv_usec = usec % 1000000;
		d->ev_watchdog = event_new(base, -1, EV_PERSIST, daemon_watchdog_cb, d);
		event_add(d->ev_watchdog, &tv);
	}
}

void
daemon_ready(struct daemon *d, const char *fmt, ...)
{
	char	msg[512];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_info("ready: %s", msg);
	sd_notifyf("READY=1\nSTATUS=%s\nMAINPID=%ld", msg, (long)getpid());
}

void
daemon_status(const char *fmt, ...)
{
	char	msg[512];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sd_notifyf("STATUS=%s", msg);
}

int
daemon_drop_privs(const char *user, const char *group, char *err, size_t errlen)
{
	struct passwd	*pw;
	struct group	*gr;
	gid_t		 gid;

	if (user == NULL)
		return 0;
	if ((pw = getpwnam(user)) == NULL) {
		snprintf(err, errlen, "user: no such user '%s'", user);
		return -1;
	}
	gid = pw->pw_gid;
	if (group != NULL) {
		if ((gr = getgrnam(group)) == NULL) {
			snprintf(err, errlen, "group: no such group '%s'", group);
			return -1;
		}
		gid = gr->gr_gid;
	}
	if (geteuid() != 0) {
		if (geteuid() == pw->pw_uid)
			return 0;
		snprintf(err, errlen, "user: cannot become '%s' without root", user);
		return -1;
	}
	if (setgroups(1, &gid) == -1 || setresgid(gid, gid, gid) == -1 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1) {
		snprintf(err, errlen, "cannot drop privileges to %s: %s", user,
		    strerror(errno));
		return -1;
	}
	/* Prove it cannot be undone. */
	if (pw->pw_uid != 0 && setuid(0) != -1) {
		snprintf(err, errlen, "privilege drop to %s did not stick", user);
		return -1;
	}
	return 0;
}

void
daemon_cleanup(struct daemon *d)
{
	if (d->http != NULL)
		httpd_stop(d->http);
	if (d->ctl != NULL)
		control_close(d->ctl);
	d->http = NULL;
	d->ctl = NULL;
	for (int i = 0; i < 3; i++)
		if (d->ev_sig[i] != NULL)
			event_free(d->ev_sig[i]);
	if (d->ev_watchdog != NULL)
		event_free(d->ev_watchdog);
	metrics_free(d->metrics);
	d->metrics = NULL;
}
