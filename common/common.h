/*
 * common.h: what every jabber-ha daemon shares.  This header is the table of
 * contents of common/: prototypes are grouped under the file that defines them.
 */
#ifndef JHA_COMMON_H
#define JHA_COMMON_H

#include <sys/types.h>
#include <sys/socket.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdnoreturn.h>

struct event_base;
struct bufferevent;
struct evbuffer;

#define JHA_VERSION	"0.1.0"
#define PRINTFLIKE(f, a) __attribute__((format(printf, f, a)))

/* log.c: levels, stderr with timestamps, plain lines under journald */
enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};
void		 log_init(const char *progname, int level);
void		 log_set_level(int level);
int		 log_get_level(void);
int		 log_level_parse(const char *name);	/* -1 if unknown */
const char	*log_level_name(int level);
void		 log_debug(const char *, ...) PRINTFLIKE(1, 2);
void		 log_info(const char *, ...) PRINTFLIKE(1, 2);
void		 log_warnx(const char *, ...) PRINTFLIKE(1, 2);
void		 log_warn(const char *, ...) PRINTFLIKE(1, 2);	/* + strerror(errno) */
void		 log_errorx(const char *, ...) PRINTFLIKE(1, 2);
noreturn void	 fatal(const char *, ...) PRINTFLIKE(1, 2);	/* + strerror(errno) */
noreturn void	 fatalx(const char *, ...) PRINTFLIKE(1, 2);

/* xmalloc.c: allocation that never returns NULL (fatalx on out-of-memory) */
void		*xmalloc(size_t);
void		*xcalloc(size_t, size_t);
void		*xreallocarray(void *, size_t, size_t);
char		*xstrdup(const char *);
char		*xstrndup(const char *, size_t);
int		 xasprintf(char **, const char *, ...) PRINTFLIKE(2, 3);

/* buf.c: a growable byte string, always NUL-terminated */
struct buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
};
void		 buf_init(struct buf *);
void		 buf_free(struct buf *);
void		 buf_reset(struct buf *);
void		 buf_reserve(struct buf *, size_t);	/* room for N more and a NUL */
void		 buf_add(struct buf *, const void *, size_t);
void		 buf_adds(struct buf *, const char *);
void		 buf_addc(struct buf *, char);
void		 buf_printf(struct buf *, const char *, ...) PRINTFLIKE(2, 3);
void		 buf_vprintf(struct buf *, const char *, va_list);
char		*buf_release(struct buf *);	/* caller frees; buf is reset */
/* CP (at most 0x10FFFF) as UTF-8 in OUT: the number of bytes, 1 to 4 */
size_t		 utf8_encode(unsigned cp, char out[4]);

/* json.c: a JSON writer on struct buf, and a bounded parser */
#define JSON_MAX_DEPTH	64
struct json {
	struct buf	 b;
	int		 depth;
	uint64_t	 first;		/* bit d-1: nothing written yet at depth d */
	int		 after_key;
};
void		 json_init(struct json *);
void		 json_free(struct json *);
const char	*json_text(const struct json *);
char		*json_release(struct json *);	/* caller frees */
void		 json_obj_begin(struct json *);
void		 json_obj_end(struct json *);
void		 json_arr_begin(struct json *);
void		 json_arr_end(struct json *);
void		 json_key(struct json *, const char *);
void		 json_str(struct json *, const char *);	/* NULL writes null */
void		 json_strn(struct json *, const char *, size_t);
void		 json_int(struct json *, int64_t);
void		 json_uint(struct json *, uint64_t);
void		 json_double(struct json *, double);
void		 json_bool(struct json *, int);
void		 json_null(struct json *);
void		 json_raw(struct json *, const char *);	/* a complete JSON value */
/* key + value in one call */
void		 json_kv_str(struct json *, const char *, const char *);
void		 json_kv_int(struct json *, const char *, int64_t);
void		 json_kv_uint(struct json *, const char *, uint64_t);
void		 json_kv_double(struct json *, const char *, double);
void		 json_kv_bool(struct json *, const char *, int);

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };
struct jval {
	enum jtype	  type;
	int		  b;		/* J_BOOL */
	double		  num;		/* J_NUM */
	char		 *str;		/* J_STR (NUL-terminated, may hold \u0000 as-is) */
	size_t		  slen;
	char		**keys;		/* J_OBJ: keys[i] -> items[i] */
	struct jval	**items;	/* J_ARR, J_OBJ */
	size_t		  n;
};
/* Parses exactly one value (surrounding white space allowed); NULL + err on error. */
struct jval	*json_parse(const char *, size_t, char *err, size_t errlen);
void		 jval_free(struct jval *);
const struct jval *jval_get(const struct jval *obj, const char *key);	/* NULL if absent */
const char	*jval_str(const struct jval *obj, const char *key);	/* NULL unless a string */
double		 jval_num(const struct jval *obj, const char *key, double def);
int		 jval_bool(const struct jval *obj, const char *key, int def);

/* net.c: addresses and sockets */
struct net_addr {
	struct sockaddr_storage	ss;
	socklen_t		len;
	char			text[300];	/* as written: "127.0.0.1:5222", "[::1]:5222" */
	char			host[256];	/* host part as written, without brackets */
	uint16_t		port;
};
/* "host:port" or "[v6]:port"; host may be a name (resolved once, numeric first). */
int		 net_addr_parse(const char *, struct net_addr *, char *err, size_t errlen);
const char	*net_sockaddr_str(const struct sockaddr *, socklen_t, char *, size_t);
int		 net_listen(const struct net_addr *, int backlog, char *err, size_t errlen);
int		 net_connect_nb(const struct net_addr *, char *err, size_t errlen);	/* non-blocking */
int		 net_set_nonblock(int fd);
int		 net_set_cloexec(int fd);

/* config.c: libyaml into a node tree that remembers file:line:col */
enum cfg_kind { CFG_SCALAR, CFG_MAP, CFG_LIST };
struct cfg_node {
	enum cfg_kind	  kind;
	const char	 *file;		/* owned by the document */
	int		  line, col;	/* 1-based */
	char		 *scalar;	/* CFG_SCALAR */
	int		  quoted;	/* quoted, block or !!str: never null/absent */
	struct cfg_node	**keys;		/* CFG_MAP: keys[i] (scalars) -> vals[i] */
	struct cfg_node	**vals;		/* CFG_MAP values, CFG_LIST items */
	size_t		  n;
};
struct cfg_doc {
	char		*file;
	struct cfg_node	*root;		/* never NULL in a doc cfg_load returns */
};
/* Every problem found is recorded: "file:line:col: key: what is wrong". */
struct cfg_errs {
	char	**msg;
	size_t	  n;
};
#define CFG_MAX_FILE	(1024 * 1024)
#define CFG_MAX_DEPTH	32
#define CFG_MAX_SCALAR	(64 * 1024)
#define CFG_MAX_NODES	100000
#define CFG_MAX_ERRS	100
void		 cfg_err(struct cfg_errs *, const struct cfg_node *at, const char *key,
		    const char *fmt, ...) PRINTFLIKE(4, 5);
void		 cfg_errs_free(struct cfg_errs *);
void		 cfg_errs_log(const struct cfg_errs *);		/* log_errorx each */
void		 cfg_errs_print(const struct cfg_errs *, FILE *);	/* one per line */
/*
 * NULL when the file cannot be read, is not valid YAML, is empty, or breaks a
 * rule of the loader (anchors/aliases, custom tags, duplicate or non-scalar
 * keys, CFG_MAX_* limits, several documents); every such problem in the file
 * is recorded at once, then the typed getters report the rest.
 */
struct cfg_doc	*cfg_load(const char *path, struct cfg_errs *);
struct cfg_doc	*cfg_load_string(const char *name, const char *text, size_t len,
		    struct cfg_errs *);
void		 cfg_free(struct cfg_doc *);

/* config_get.c: reading the node tree: map access, typed getters, parsers */
/* Map access; cfg_check_keys reports unknown keys, suggesting the nearest known. */
const struct cfg_node *cfg_map_get(const struct cfg_node *map, const char *key);
int		 cfg_check_keys(struct cfg_errs *, const struct cfg_node *map,
		    const char *const *known /* NULL-terminated */);
int		 cfg_expect(struct cfg_errs *, const struct cfg_node *, const char *key,
		    enum cfg_kind);
/*
 * Typed getters.  cfg_get_*: look KEY up in MAP; when absent, return 0 leaving
 * *out as it was (the default) unless REQUIRED, which records an error.  On a
 * value of the wrong type or out of range, record an error and return -1.
 * A plain empty value, ~ or null counts as absent (a quoted "" does not).
 * Quoted numbers and booleans are accepted where a number or boolean is asked.
 * cfg_node_*: the same for a node already in hand (list items); KEY names it
 * in messages.  Strings point into the document: keep it while they are used.
 * Durations: 250ms 2s 1.5s 1m 1h (a unit is required).  Sizes: 512 (bytes),
 * 512B, 10KB (1000s), 64KiB, 1MiB, 1GiB (1024s).
 */
int		 cfg_get_str(struct cfg_errs *, const struct cfg_node *, const char *key,
		    int required, const char **out);
int		 cfg_get_int(struct cfg_errs *, const struct cfg_node *, const char *key,
		    int required, int64_t min, int64_t max, int64_t *out);
int		 cfg_get_bool(struct cfg_errs *, const struct cfg_node *, const char *key,
		    int required, int *out);
int		 cfg_get_duration_ms(struct cfg_errs *, const struct cfg_node *,
		    const char *key, int required, int64_t min, int64_t max, int64_t *out);
int		 cfg_get_size(struct cfg_errs *, const struct cfg_node *, const char *key,
		    int required, uint64_t min, uint64_t max, uint64_t *out);
int		 cfg_get_addr(struct cfg_errs *, const struct cfg_node *, const char *key,
		    int required, struct net_addr *out);
int		 cfg_get_enum(struct cfg_errs *, const struct cfg_node *, const char *key,
		    int required, const char *const *choices /* NULL-terminated */, int *out);
const struct cfg_node *cfg_get_list(struct cfg_errs *, const struct cfg_node *,
		    const char *key, int required);	/* NULL if absent or wrong */
const struct cfg_node *cfg_get_map(struct cfg_errs *, const struct cfg_node *,
		    const char *key, int required);
int		 cfg_node_str(struct cfg_errs *, const struct cfg_node *, const char *key,
		    const char **out);
int		 cfg_node_int(struct cfg_errs *, const struct cfg_node *, const char *key,
		    int64_t min, int64_t max, int64_t *out);
int		 cfg_node_bool(struct cfg_errs *, const struct cfg_node *, const char *key,
		    int *out);
int		 cfg_node_duration_ms(struct cfg_errs *, const struct cfg_node *,
		    const char *key, int64_t min, int64_t max, int64_t *out);
int		 cfg_node_size(struct cfg_errs *, const struct cfg_node *, const char *key,
		    uint64_t min, uint64_t max, uint64_t *out);
int		 cfg_node_addr(struct cfg_errs *, const struct cfg_node *, const char *key,
		    struct net_addr *out);
int		 cfg_node_enum(struct cfg_errs *, const struct cfg_node *, const char *key,
		    const char *const *choices, int *out);
/* Pure parsers behind the getters (0 ok, -1 with a message in err). */
int		 cfg_parse_duration_ms(const char *, int64_t *, char *err, size_t);
int		 cfg_parse_size(const char *, uint64_t *, char *err, size_t);
int		 cfg_parse_bool(const char *, int *);
/* Levenshtein in bytes; past 64 bytes: 0 when equal, else the longer length. */
size_t		 cfg_edit_distance(const char *, const char *);

/* metrics.c: a registry of counters, gauges and histograms, Prometheus text */
struct metrics;
struct metric;
struct metrics	*metrics_new(void);
void		 metrics_free(struct metrics *);
/* Same name + labels gives the same metric; labels preformatted: a="x",b="y". */
struct metric	*metrics_counter(struct metrics *, const char *name, const char *labels,
		    const char *help);
struct metric	*metrics_gauge(struct metrics *, const char *name, const char *labels,
		    const char *help);
struct metric	*metrics_histogram(struct metrics *, const char *name,
		    const char *labels, const char *help, const double *bounds, size_t n);
void		 metric_add(struct metric *, double);
void		 metric_set(struct metric *, double);
void		 metric_observe(struct metric *, double);
double		 metric_value(const struct metric *);
/* Called before every render, so a daemon can refresh its gauges. */
void		 metrics_on_collect(struct metrics *, void (*)(struct metrics *, void *),
		    void *);
void		 metrics_render(struct metrics *, struct buf *);
/* Appends key="escaped value" (with a leading comma when buf is not empty). */
void		 metrics_label(struct buf *, const char *key, const char *value);

/* http.c: the small /metrics and /status listener (evhttp) */
struct httpd;
typedef void	(*httpd_status_cb)(struct json *, void *);	/* writes one object */
struct httpd	*httpd_start(struct event_base *, const struct net_addr *,
		    struct metrics *, httpd_status_cb, void *arg, char *err, size_t);
void		 httpd_stop(struct httpd *);

/* control.c: the unix control socket server: one request line in, JSON out */
#define CONTROL_VERSION		1
#define CONTROL_MAX_REQUEST	4096
#define CONTROL_MAX_REPLY	(8 * 1024 * 1024)
#define CONTROL_MAX_ARGS	16
struct control;
struct control_conn;
/* ARGV is the request line split on blanks; reply with exactly one control_reply*. */
typedef void	(*control_handler_cb)(struct control_conn *, int argc, char **argv,
		    void *arg);
struct control	*control_listen(struct event_base *, const char *path,
		    control_handler_cb, void *arg, char *err, size_t errlen);
void		 control_close(struct control *);
/* {"v":1,"ok":true,"data":DATA}\n then close; DATA is a JSON value (NULL: null). */
void		 control_reply(struct control_conn *, const char *data_json);
/* {"v":1,"ok":false,"error":"..."}\n then close. */
void		 control_reply_error(struct control_conn *, const char *, ...)
		    PRINTFLIKE(2, 3);
/* Keep CONN open as a watcher; INITIAL (may be NULL) is its first line. */
void		 control_watch(struct control_conn *, const char *initial_json);
/* One {"v":1,"ok":true,"data":DATA}\n line to every watcher. */
void		 control_broadcast(struct control *, const char *data_json);
size_t		 control_watchers(const struct control *);

/* control_client.c: the clients of the control socket */
/* Client, blocking: 0 and *data (caller frees) on ok; -1 and err on an error
 * reply or a protocol error; -2 and err when the daemon cannot be reached. */
int		 control_request(const char *path, const char *line, int timeout_ms,
		    struct jval **data, char *err, size_t errlen);
/* Client, blocking stream: calls CB for every line until it returns non-zero or EOF. */
int		 control_stream(const char *path, const char *line,
		    int (*cb)(const struct jval *data, void *), void *arg,
		    char *err, size_t errlen);
/* Client on libevent: (re)connects with backoff, sends LINE, hands each data. */
struct control_sub;
struct control_sub *control_sub_new(struct event_base *, const char *path,
		    const char *line,
		    void (*on_data)(const struct jval *data, void *),
		    void (*on_state)(int connected, const char *err, void *), void *arg);
void		 control_sub_free(struct control_sub *);

/* auth.c: the cluster key and a mutual HMAC-SHA256 challenge-response */
#define AUTH_KEY_MIN	32
#define AUTH_KEY_MAX	4096
#define AUTH_SESSION_KEY_LEN 32
struct auth_key {
	unsigned char	bytes[AUTH_KEY_MAX];
	size_t		len;
};
enum auth_role { AUTH_CLIENT, AUTH_SERVER };
/* Refused unless a regular file, mode 0600 or stricter, >= AUTH_KEY_MIN bytes. */
int		 auth_key_load(const char *path, struct auth_key *, char *err, size_t);
/* The handshake as a pure state machine, for any transport. */
enum auth_status { AUTH_MORE, AUTH_DONE, AUTH_FAIL };
struct auth_hs;
struct auth_hs	*auth_hs_new(const struct auth_key *, enum auth_role);
void		 auth_hs_free(struct auth_hs *);
/* Bytes to send now (may be 0); consumed by the call. */
size_t		 auth_hs_output(struct auth_hs *, const unsigned char **);
enum auth_status auth_hs_input(struct auth_hs *, const unsigned char *, size_t,
		    size_t *consumed);
const char	*auth_hs_error(const struct auth_hs *);
int		 auth_hs_session_key(const struct auth_hs *,
		    unsigned char out[AUTH_SESSION_KEY_LEN]);
/* Blocking, on a connected fd, with poll and a timeout; reads nothing past it. */
int		 auth_handshake_fd(int fd, const struct auth_key *, enum auth_role,
		    int timeout_ms, unsigned char session_key[AUTH_SESSION_KEY_LEN],
		    char *err, size_t errlen);
/*
 * On a bufferevent: CB gets ok=1 and the session key, or ok=0 and a reason,
 * always later from the loop.  Auth's callbacks are gone by then and it never
 * frees BEV.  Bytes the peer sent after the handshake stay in BEV's input;
 * the read callback CB installs is called once for them.
 */
typedef void	(*auth_done_cb)(struct bufferevent *, int ok, const char *err,
		    const unsigned char *session_key, void *arg);
void		 auth_bev_start(struct bufferevent *, const struct auth_key *,
		    enum auth_role, int timeout_ms, auth_done_cb, void *arg);
/* Abandons a handshake in progress without calling its CB (before a free). */
void		 auth_bev_cancel(struct bufferevent *);

/* sdnotify.c: the sd_notify datagram protocol, without libsystemd */
int		 sd_notify_send(const char *state);	/* 0 also when not under systemd */
int		 sd_notifyf(const char *, ...) PRINTFLIKE(1, 2);
uint64_t	 sd_watchdog_usec(void);		/* 0 when no watchdog asked */

/* daemon.c: the life of a daemon: signals, reload, privileges, readiness */
struct common_conf {
	const char	*control;	/* unix socket path */
	struct net_addr	 http;
	int		 has_http;	/* http: off disables it */
	const char	*user, *group;	/* drop to these after binding (NULL: stay) */
	int		 log_level;
};
extern const char *const common_conf_keys[];	/* control, http, log_level, user, group */
void		 common_conf_defaults(struct common_conf *, const char *daemon);
int		 common_conf_parse(struct cfg_errs *, const struct cfg_node *root,
		    struct common_conf *);
/* Load PATH into a doc whose root is a map (NULL and errors otherwise). */
struct cfg_doc	*common_conf_load(const char *path, struct cfg_errs *);
/* Merge the common keys and a daemon's own into one NULL-terminated list. */
const char	**common_conf_keys_with(const char *const *own);

/*
 * One running daemon.  The daemon fills the hooks; daemon.c serves "status",
 * "reload", "version" and "ping" on the control socket and /status on HTTP,
 * and hands every other request to command().
 */
struct daemon {
	const char		*name;
	const char		*conf_path;
	struct event_base	*base;
	struct common_conf	 common;	/* in force */
	struct control		*ctl;
	struct httpd		*http;
	struct metrics		*metrics;
	/* Build and validate a new config from conf_path; swap it in only when
	 * valid (calling daemon_apply_common first); -1 keeps the old one. */
	int			(*reload)(struct daemon *, char *err, size_t errlen);
	void			(*shutdown)(struct daemon *);
	void			(*status)(struct daemon *, struct json *);	/* own members */
	void			(*command)(struct daemon *, struct control_conn *,
				    int argc, char **argv);
	void			*arg;
	uint64_t		 started_ms;
	unsigned		 reloads, reload_failures;
	char			 last_reload_error[512];
	int			 stopping;
	struct event		*ev_sig[3];
	struct event		*ev_watchdog;
};
void		 daemon_init(struct daemon *, const char *name, const char *conf_path,
		    struct event_base *);
/* Open the control socket and the HTTP listener of CONF. */
int		 daemon_start(struct daemon *, const struct common_conf *, char *err,
		    size_t errlen);
/* On reload: refuse what cannot change live, rebind HTTP, set the log level. */
int		 daemon_apply_common(struct daemon *, const struct common_conf *,
		    char *err, size_t errlen);
int		 daemon_reload(struct daemon *);
void		 daemon_ready(struct daemon *, const char *, ...) PRINTFLIKE(2, 3);
void		 daemon_status(const char *, ...) PRINTFLIKE(1, 2);	/* STATUS= */
void		 daemon_status_json(struct daemon *, struct json *);
int		 daemon_drop_privs(const char *user, const char *group, char *err,
		    size_t errlen);
void		 daemon_cleanup(struct daemon *);
/* Run-time clocks. */
uint64_t	 now_mono_ns(void);
uint64_t	 now_mono_ms(void);
uint64_t	 now_real_ms(void);

/* cli.c: what every daemon's command line shares */
struct cli {
	const char	*daemon;	/* "hamon" */
	const char	*conf_path;	/* -c FILE (default /etc/jabber-ha/DAEMON.yaml) */
	const char	*sock_path;	/* -s SOCKET overrides the config's control */
	int		 json;		/* --json */
	int		 argc;		/* the subcommand and its words */
	char		**argv;
};
/* Takes -c FILE, -s SOCKET and --json anywhere; -1 and err on a bad flag. */
int		 cli_parse(struct cli *, const char *daemon, int argc, char **argv,
		    char *err, size_t errlen);
/* The control socket: -s, else the config's control key, else the default. */
void		 cli_control_path(const struct cli *, char *out, size_t outlen);
/*
 * Send LINE to the daemon.  On success print the data as JSON (--json or no
 * PRINT) or through PRINT, and return 0; an error reply prints it and
 * returns 1; an unreachable daemon returns 3.
 */
int		 cli_request(const struct cli *, const char *line,
		    void (*print)(const struct jval *, void *), void *arg);
/* Print a parsed JSON value compactly (used for --json). */
void		 cli_print_json(FILE *, const struct jval *);
/* check-config: PARSE loads and validates a file; exit 0 valid, 1 invalid. */
int		 cli_check_config(const struct cli *,
		    int (*parse)(const char *path, struct cfg_errs *));

/* main.c: the main() every daemon binary shares: subcommands, run, reload */
struct daemon_cmd {
	const char	*name;
	const char	*usage;		/* "NAME" */
	const char	*help;
	int		(*fn)(struct cli *);	/* returns the exit code */
};
struct daemon_def {
	const char	*name;
	const char	*summary;
	/* Load and validate a whole config: the daemon's conf, or NULL + errs. */
	void		*(*load)(const char *path, struct cfg_errs *);
	void		 (*free)(void *conf);
	const struct common_conf *(*common)(const void *conf);
	/* Before the privilege drop: open what needs root, set d->arg. */
	int		 (*start)(struct daemon *, void *conf, char *err, size_t);
	/* Reload: apply a validated conf, or -1 (then the old one stays). */
	int		 (*swap)(struct daemon *, void *conf, char *err, size_t);
	void		 (*stop)(struct daemon *);
	void		 (*status)(struct daemon *, struct json *);
	void		 (*command)(struct daemon *, struct control_conn *, int, char **);
	/* `status` for humans; NULL prints the JSON. */
	void		 (*print_status)(const struct jval *, void *);
	const struct daemon_cmd *cmds;	/* the daemon's own subcommands */
};
int		 daemon_main(const struct daemon_def *, int argc, char **argv);
void		*daemon_conf(const struct daemon *);	/* the config in force */

#endif
