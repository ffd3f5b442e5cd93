/*
 * hamon.h: hamon health-checks the Jabber backends and publishes the membership view.
 * The table of contents of hamon/: prototypes grouped by the file defining them.
 */
#ifndef HAMON_H
#define HAMON_H

#include "common.h"

struct hamon_conf {
	struct cfg_doc		*doc;		/* strings below point into it */
	struct common_conf	 common;
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
	int		 exec_status;	/* CHECK_EXEC: exit status, or -1 */
	char		 error[256];	/* why not ok (or the plugin's first line) */
};

struct probe;
typedef void	(*probe_done_cb)(const struct check_result *, void *arg);

/* conf.c */
void		*hamon_conf_load(const char *path, struct cfg_errs *);
void		 hamon_conf_free(void *);
const struct common_conf *hamon_conf_common(const void *);

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

#endif
