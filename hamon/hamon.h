/*
 * hamon.h: hamon health-checks the Jabber backends and publishes the membership view.
 * The table of contents of hamon/: prototypes grouped by the file defining them.
 */
#ifndef HAMON_H
#define HAMON_H

#include "common.h"

#define HAMON_NAME_MAX		64	/* node and backend names */
#define HAMON_MAX_BACKENDS	10000

/* One backend as configured; a check is on when its bit (1 << kind) is set. */
struct backend_conf {
	const char	*name;
	struct net_addr	 address;
	char		 address_numeric[64];	/* resolved, as published in the view */
	const char	*domain;
	unsigned	 checks;
	const char	*login_user;
	const char	*password_file;
	char		*login_password;	/* owned: password_file's first line */
	const char	*spoolsync_url;
	int64_t		 max_lag_ms;
	const char	*spool_node;	/* its spoolsync node name (default: name) */
	const char	*exec_command;
};

struct hamon_conf {
	struct cfg_doc		*doc;		/* strings below point into it */
	struct common_conf	 common;
	char			 node[HAMON_NAME_MAX + 1];
	int64_t			 interval_ms;
	int64_t			 timeout_ms;
	int64_t			 rise, fall;
	const char		*state_file;	/* NULL: none (admin states not kept) */
	int64_t			 holds_max_age_ms;	/* 0: view not restored */
	const char		*on_change;	/* NULL: no hook */
	int64_t			 on_change_timeout_ms;
	struct backend_conf	*backends;
	size_t			 nbackends;
};

/*
 * One check of one backend, run once: a probe.  The scheduler (check.c)
 * starts probes; each check kind (check_*.c) runs on the libevent loop
 * without blocking and reports exactly one result through its callback,
 * unless cancelled first.  Probes never log: the result says what happened.
 */
enum check_kind {
	CHECK_XMPP = 0,		/* <stream:stream to=DOMAIN> -> <stream:features> */
	CHECK_LOGIN,		/* SASL login + bind + XEP-0199 ping round trip */
	CHECK_SPOOLSYNC,	/* the backend host's spoolsync /status */
	CHECK_EXEC,		/* a Nagios plugin: exit 0 ok, 1 warn, 2 crit, 3 unknown */
	CHECK_NKINDS
};

struct check_target {
	const char	*backend;	/* its name, for messages */
	struct net_addr	 address;	/* XMPP c2s address */
	const char	*domain;	/* the stream's to= */
	const char	*login_user;	/* CHECK_LOGIN: localpart (or full JID) */
	const char	*login_password;
	const char	*spoolsync_url;	/* CHECK_SPOOLSYNC: http://host:port/status */
	int64_t		 max_lag_ms;
	const char	*exec_command;	/* CHECK_EXEC: run by /bin/sh -c */
};

struct check_result {
	enum check_kind	 kind;
	int		 ok;		/* the check passed */
	uint64_t	 latency_us;	/* start to verdict (login: the ping's RTT) */
	/* CHECK_SPOOLSYNC: ok means the daemon answered; synced says whether
	 * every peer link is up and lag <= max_lag. */
	int		 synced;
	int64_t		 lag_ms;	/* worst peer lag, -1 unknown */
	/*
	 * Peers whose link is down but which this spool had caught up with
	 * before it dropped, space-separated.  They do not count against
	 * synced: the view decides, since only it knows whether that peer's
	 * own backend is gone (then this spool is the best there is).
	 */
	char		 peers_gone[256];
	int		 exec_status;	/* CHECK_EXEC: exit status, or -1 */
	char		 error[256];	/* why not ok (or the plugin's first line) */
};

struct probe;
typedef void	(*probe_done_cb)(const struct check_result *, void *arg);

/* conf.c */
#define CHECK_BIT(kind)		(1u << (kind))
#define CHECKS_LIVENESS		(CHECK_BIT(CHECK_XMPP) | CHECK_BIT(CHECK_LOGIN) | \
				 CHECK_BIT(CHECK_EXEC))
void		*hamon_conf_load(const char *path, struct cfg_errs *);
void		 hamon_conf_free(void *);
const struct common_conf *hamon_conf_common(const void *);
const char	*check_kind_name(enum check_kind);
int		 check_kind_parse(const char *);		/* -1 if unknown */
int		 hamon_name_valid(const char *);		/* 1-64 of A-Za-z0-9._- */
/* Same name, address and checks with the same settings (password included). */
int		 backend_conf_equal(const struct backend_conf *,
		    const struct backend_conf *);

/* check_xmpp.c, check_login.c, check_spoolsync.c, check_exec.c */
struct probe	*check_xmpp_start(struct event_base *, const struct check_target *,
		    int timeout_ms, probe_done_cb, void *arg);
struct probe	*check_login_start(struct event_base *, const struct check_target *,
		    int timeout_ms, probe_done_cb, void *arg);
struct probe	*check_spoolsync_start(struct event_base *,
		    const struct check_target *, int timeout_ms, probe_done_cb, void *arg);
struct probe	*check_exec_start(struct event_base *, const struct check_target *,
		    int timeout_ms, probe_done_cb, void *arg);
/* Stops a probe before it reported: no callback will come. */
void		 probe_cancel(struct probe *);

/* view.c: the membership view, a pure function of (observations, admin states) */
enum backend_state {
	BACKEND_UP = 0,		/* alive and in sync: eligible */
	BACKEND_DOWN,		/* a liveness check is down (or none has a verdict yet) */
	BACKEND_UNSYNCED,	/* alive, but its spool is not known to be in sync */
	BACKEND_DRAINING,	/* admin: no new sessions, existing ones stay */
	BACKEND_MAINT,		/* admin: out */
	BACKEND_NSTATES
};
enum admin_state {
	ADMIN_READY = 0,	/* health decides */
	ADMIN_DRAIN,
	ADMIN_MAINT,
	ADMIN_NSTATES
};
/* What the checks say about one backend, after rise/fall. */
struct observation {
	const char	*name;
	const char	*address;	/* where proxyd connects: "host:port" */
	int		 checked;	/* every liveness check has a verdict */
	int		 alive;		/* ... and every one of them is up */
	int		 has_sync;	/* a spoolsync check is configured */
	int		 synced;	/* its verdict: up (0 while unknown) */
	int64_t		 latency_us;	/* last successful probe, -1: none yet */
	unsigned	 failures;	/* consecutive, of its worst check */
	const char	*last_error;	/* of a failing check, "" when none fails */
	int64_t		 lag_ms;	/* spool lag, -1: unknown */
	const char	*spool_node;	/* NULL: the same as name */
	const char	*peers_gone;	/* check_result's, "" when none */
};
struct view_backend {
	char			*name;
	char			*address;	/* the backend's XMPP c2s address */
	enum backend_state	 state;
	enum admin_state	 admin;
	uint64_t		 since_ms;	/* wall clock, when state last changed */
	int64_t			 latency_us;
	unsigned		 failures;
	char			*last_error;	/* "" when none */
	int64_t			 lag_ms;
	int			 eligible;
	/*
	 * Unsynced, but up (or holding) in the previous view: it keeps the
	 * domains it serves, and gets no new ones.  A returning backend,
	 * unsynced while it catches up, does not hold.  Published, so that
	 * every proxy places domains from the view alone.
	 */
	int			 holds;
};
struct view {
	uint64_t		 generation;	/* grows with every state change */
	char			*node;
	struct view_backend	*backends;
	size_t			 n;
	/*
	 * Read back by restore.c after a restart: view_compute takes only
	 * which backends were up or holding from it (no state kept for an
	 * unchecked backend, no since).
	 */
	int			 restored;
};
const char	*backend_state_name(enum backend_state);
int		 backend_state_parse(const char *);		/* -1 if unknown */
const char	*admin_state_name(enum admin_state);		/* ready drain maint */
int		 admin_state_parse(const char *);		/* -1 if unknown */
enum backend_state view_state(const struct observation *, enum admin_state);
/* OUT (empty or freed by the caller) from OBS[i] and ADMIN[i], i < N, and PREV. */
void		 view_compute(const struct observation *obs,
		    const enum admin_state *admin, size_t n, const struct view *prev,
		    const char *node, uint64_t now_ms, struct view *out);
const struct view_backend *view_find(const struct view *, const char *name);
void		 view_copy(struct view *dst, const struct view *src);
void		 view_free(struct view *);			/* leaves it empty */
size_t		 view_eligible(const struct view *);
/* {"generation":..,"node":..,"backends":[..]}; _members without the braces. */
void		 view_json(const struct view *, struct json *);
void		 view_json_members(const struct view *, struct json *);

/* admin.c: drain/maint/ready, kept across restarts next to state_file */
struct admin;
struct admin	*admin_new(void);
void		 admin_free(struct admin *);
enum admin_state admin_get(const struct admin *, const char *name);
/* 1 when it changed, 0 when it was already so (ADMIN_READY removes NAME). */
int		 admin_set(struct admin *, const char *name, enum admin_state);
size_t		 admin_count(const struct admin *);
/* A missing file is an empty set; anything else unreadable is an error. */
int		 admin_load(struct admin *, const char *path, char *err, size_t);
int		 admin_save(const struct admin *, const char *path, char *err, size_t);
/* "x.json" -> "x.admin.json", else PATH ".admin"; caller frees. */
char		*admin_path(const char *state_file);

/*
 * restore.c: after a restart, the view state_file kept is read back as the
 * previous view (restored = 1), so that a backend holding its domains still
 * holds: restarting the monitor must not move domains.
 *
 * OUT (empty, restored = 1): the backends of the view in STATE_FILE that C
 * configures (the others are left out and counted in *UNKNOWN), if it was
 * written for node C->node and vouched for (written or touched) at most
 * C->holds_max_age_ms before NOW_MS.  0 read, 1 no file, -1 rejected (ERR
 * says why; OUT is then empty): nothing is taken from a doubtful file.
 */
int		 restore_view(const char *state_file, const struct hamon_conf *c,
		    uint64_t now_ms, struct view *out, size_t *unknown, char *err,
		    size_t errlen);

/* check.c: the scheduler: probes every interval, spread, rise/fall per check */
struct probe_ops {
	struct probe	*(*start[CHECK_NKINDS])(struct event_base *,
			    const struct check_target *, int timeout_ms,
			    probe_done_cb, void *arg);
	void		 (*cancel)(struct probe *);
};
extern const struct probe_ops probe_ops_real;	/* server.c: check_*.c */
/* Rise/fall of one check: state -1 unknown (the first verdict decides), 0, 1. */
struct check_hyst {
	int		 state;
	unsigned	 ok_run, fail_run;
};
void		 check_hyst_init(struct check_hyst *);
int		 check_hyst_apply(struct check_hyst *, int ok, unsigned rise,
		    unsigned fall);		/* 1 when the state changed */
struct check_sched;
struct check_sched_cbs {
	void		(*changed)(void *arg);	/* a verdict changed (deferred) */
	void		(*result)(const char *backend, const struct check_result *,
			    void *arg);		/* every probe's result */
	void		*arg;
};
struct check_sched *check_sched_new(struct event_base *, const struct probe_ops *,
		    const struct check_sched_cbs *);
void		 check_sched_free(struct check_sched *);	/* cancels all probes */
/* Applies CONF (copied): unchanged backends keep their verdicts and history. */
void		 check_sched_configure(struct check_sched *, const struct hamon_conf *);
size_t		 check_sched_count(const struct check_sched *);
/* One per backend, in config order; valid until the next result or configure. */
void		 check_sched_observe(const struct check_sched *, struct observation *);
/* Every check of every backend has had its first verdict. */
int		 check_sched_settled(const struct check_sched *);
size_t		 check_sched_inflight(const struct check_sched *);

/* publish.c: a new view goes to watchers, state_file and on_change hooks */
struct publish;
struct publish	*publish_new(struct event_base *);
void		 publish_free(struct publish *);
/* Takes effect for the next view; strings are copied. */
void		 publish_configure(struct publish *, const char *state_file,
		    const char *on_change, int64_t hook_timeout_ms);
/* CTL may be NULL (tests). Broadcast, state file, then one hook per transition. */
void		 publish_view(struct publish *, struct control *,
		    const struct view *old, const struct view *new);
size_t		 publish_hooks_running(const struct publish *);
size_t		 publish_hooks_queued(const struct publish *);
uint64_t	 publish_state_errors(const struct publish *);
/* V into state_file now, as publish_view would (after a path change). */
void		 publish_save_state(struct publish *, const struct view *v);
/*
 * state_file's mtime set to now: this hamon still stands by the view in it
 * (restore.c trusts it only so long).  0 done, 1 nothing to do (no
 * state_file, or its last write failed: then it must age), -1 error.
 */
int		 publish_touch_state(struct publish *, char *err, size_t errlen);
/* temp in the same directory, fsync, rename, fsync the directory */
int		 publish_write_file(const char *path, const char *data, size_t len,
		    char *err, size_t errlen);

/* status.c: `hamon status` and `hamon watch` for people and for Nagios */
enum status_code { STATUS_OK = 0, STATUS_DEGRADED, STATUS_NONE, STATUS_UNREACHABLE };
int		 status_exit_code(const struct jval *view);
void		 status_print_table(FILE *, const struct jval *view, int color,
		    uint64_t now_ms);
void		 status_print_nagios(FILE *, const struct jval *view);
void		 status_print_watch(FILE *, const struct jval *view);

/* server.c: the running daemon (daemon_def hooks) */
int		 hamon_start(struct daemon *, void *conf, char *err, size_t);
int		 hamon_swap(struct daemon *, void *conf, char *err, size_t);
void		 hamon_stop(struct daemon *);
void		 hamon_status(struct daemon *, struct json *);
void		 hamon_command(struct daemon *, struct control_conn *, int, char **);

/* probe.c, check_*.c, xmpp_client.c: the probes (internals in probe_int.h).
 * A probe reports from the loop, never from inside check_*_start; after its
 * callback returns it is freed.  probe_cancel is safe from any callback (in
 * the probe's own it does nothing).  Exec children are reaped through a
 * pidfd: nobody in hamon may waitpid(-1) or reap children it did not start. */
/* The spoolsync URL a probe accepts: http://IP[:PORT][/PATH] ("localhost"
 * counts as 127.0.0.1): for validating a config at load time. */
int		 check_spoolsync_url_parse(const char *url, char *host, size_t hostlen,
		    uint16_t *port, const char **path, char *err, size_t errlen);

#endif
