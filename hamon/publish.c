/*
 * publish.c: the moment the view changes it goes out: to every watcher on the
 * control socket first, then atomically into state_file, then to the
 * on_change hooks, children run per backend in order, never blocking the loop.
 * state_file is touched while hamon stands by it (restore.c reads its age).
 */
#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/pidfd.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "hamon.h"

#define PUBLISH_MAX_RUNNING	32	/* hooks at once, all backends together */
#define PUBLISH_MAX_QUEUED	10000	/* then new transitions are dropped */
#define PUBLISH_POLL_MS		20	/* reaping without a pidfd */

extern char	**environ;

struct hook {
	TAILQ_ENTRY(hook)	 entry;
	struct publish		*p;
	char			*backend;
	char			*old_state, *new_state;
	char			*node;
	char			*command;
	uint64_t		 generation;
	int64_t			 timeout_ms;
	pid_t			 pid;
	int			 pidfd;
	int			 killed;
	struct event		*ev_exit;	/* pidfd readable, or the poll */
	struct event		*ev_timeout;
};
TAILQ_HEAD(hooks, hook);

struct publish {
	struct event_base	*base;
	char			*state_file;
	char			*on_change;
	int64_t			 hook_timeout_ms;
	struct hooks		 queued, running;
	size_t			 nqueued, nrunning;
	uint64_t		 state_errors;
	int			 state_failing;	/* log once per failure streak */
};

static void	publish_pump(struct publish *);

struct publish *
publish_new(struct event_base *base)
{
	struct publish	*p = xcalloc(1, sizeof(*p));

	p->base = base;
	p->hook_timeout_ms = 10000;
	TAILQ_INIT(&p->queued);
	TAILQ_INIT(&p->running);
	return p;
}

static void
hook_free(struct hook *h)
{
	if (h->ev_exit != NULL)
		event_free(h->ev_exit);
	if (h->ev_timeout != NULL)
		event_free(h->ev_timeout);
	if (h->pidfd != -1)
		close(h->pidfd);
	free(h->backend);
	free(h->old_state);
	free(h->new_state);
	free(h->node);
	free(h->command);
	free(h);
}

void
publish_free(struct publish *p)
{
	struct hook	*h;

	if (p == NULL)
		return;
	if (p->nqueued > 0)
		log_warnx("on_change: %zu queued hook%s not run (stopping)",
		    p->nqueued, p->nqueued == 1 ? "" : "s");
	/* Running hooks are in their own sessions: they finish on their own. */
	while ((h = TAILQ_FIRST(&p->running)) != NULL) {
		TAILQ_REMOVE(&p->running, h, entry);
		hook_free(h);
	}
	while ((h = TAILQ_FIRST(&p->queued)) != NULL) {
		TAILQ_REMOVE(&p->queued, h, entry);
		hook_free(h);
	}
	free(p->state_file);
	free(p->on_change);
	free(p);
}

static void
publish_set(char **dst, const char *src)
{
	free(*dst);
	*dst = src != NULL ? xstrdup(src) : NULL;
}

void
publish_configure(struct publish *p, const char *state_file, const char *on_change,
    int64_t hook_timeout_ms)
{
	publish_set(&p->state_file, state_file);
	publish_set(&p->on_change, on_change);
	p->hook_timeout_ms = hook_timeout_ms;
}

size_t
publish_hooks_running(const struct publish *p)
{
	return p->nrunning;
}

size_t
publish_hooks_queued(const struct publish *p)
{
	return p->nqueued;
}

uint64_t
publish_state_errors(const struct publish *p)
{
	return p->state_errors;
}

/* The state file. */

static int
publish_fsync_dir(const char *path, char *err, size_t errlen)
{
	char	*copy = xstrdup(path);
	int	 fd, rc = 0;

	if ((fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    fsync(fd) == -1) {
		snprintf(err, errlen, "cannot sync the directory of %s: %s", path,
		    strerror(errno));
		rc = -1;
	}
	if (fd != -1)
		close(fd);
	free(copy);
	return rc;
}

static int
publish_write_all(int fd, const char *data, size_t len)
{
	ssize_t	n;

	while (len > 0) {
		if ((n = write(fd, data, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

int
publish_write_file(const char *path, const char *data, size_t len, char *err,
    size_t errlen)
{
	char	*tmp;
	mode_t	 mask;
	int	 fd;

	xasprintf(&tmp, "%s.XXXXXX", path);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "cannot create a temp file beside %s: %s",
		    path, strerror(errno));
		free(tmp);
		return -1;
	}
	mask = umask(0);
	umask(mask);
	if (fchmod(fd, 0644 & ~mask) == -1 || publish_write_all(fd, data, len) == -1 ||
	    fsync(fd) == -1) {
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (close(fd) == -1) {
		fd = -1;
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) == -1) {
		snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path,
		    strerror(errno));
		goto fail;
	}
	free(tmp);
	return publish_fsync_dir(path, err, errlen);
fail:
	if (fd != -1)
		close(fd);
	unlink(tmp);
	free(tmp);
	return -1;
}

static void
publish_state(struct publish *p, const char *json)
{
	struct buf	b;
	char		err[512];

	if (p->state_file == NULL)
		return;
	buf_init(&b);
	buf_adds(&b, json);
	buf_addc(&b, '\n');
	if (publish_write_file(p->state_file, b.data, b.len, err, sizeof(err)) == -1) {
		p->state_errors++;
		if (!p->state_failing++)
			log_warnx("state_file: %s", err);
	} else if (p->state_failing) {
		log_info("state_file: %s written again", p->state_file);
		p->state_failing = 0;
	}
	buf_free(&b);
}

void
publish_save_state(struct publish *p, const struct view *v)
{
	struct json	j;

	json_init(&j);
	view_json(v, &j);
	publish_state(p, json_text(&j));
	json_free(&j);
}

int
publish_touch_state(struct publish *p, char *err, size_t errlen)
{
	if (p->state_file == NULL || p->state_failing)
		return 1;
	if (utimensat(AT_FDCWD, p->state_file, NULL, 0) == 0)
		return 0;
	/* None yet: no view went out (no backends), nothing to stand by. */
	if (errno == ENOENT)
		return 1;
	p->state_errors++;
	snprintf(err, errlen, "cannot touch %s: %s", p->state_file,
	    strerror(errno));
	return -1;
}

/* The hooks. */

static char **
hook_env(const struct hook *h)
{
	char	**env, **e;
	size_t	  n = 0, i = 0;

	for (e = environ; e != NULL && *e != NULL; e++)
		n++;
	env = xcalloc(n + 6, sizeof(*env));
	for (e = environ; e != NULL && *e != NULL; e++)
		if (strncmp(*e, "HAMON_", 6) != 0)
			env[i++] = xstrdup(*e);
	xasprintf(&env[i++], "HAMON_BACKEND=%s", h->backend);
	xasprintf(&env[i++], "HAMON_OLD_STATE=%s", h->old_state);
	xasprintf(&env[i++], "HAMON_NEW_STATE=%s", h->new_state);
	xasprintf(&env[i++], "HAMON_GENERATION=%llu",
	    (unsigned long long)h->generation);
	xasprintf(&env[i++], "HAMON_NODE=%s", h->node);
	return env;
}

static void
hook_env_free(char **env)
{
	char	**e;

	for (e = env; *e != NULL; e++)
		free(*e);
	free(env);
}

/* A shell in its own session, stdin /dev/null, default signals. */
static int
hook_spawn(struct hook *h, char *err, size_t errlen)
{
	posix_spawn_file_actions_t	 fa;
	posix_spawnattr_t		 attr;
	sigset_t			 none, dfl;
	char				*argv[] = { "sh", "-c", h->command, NULL };
	char				**env = hook_env(h);
	int				 r;

	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGCHLD);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
	    POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dfl);
	r = posix_spawn(&h->pid, "/bin/sh", &fa, &attr, argv, env);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	hook_env_free(env);
	if (r != 0) {
		snprintf(err, errlen, "cannot run /bin/sh: %s", strerror(r));
		return -1;
	}
	return 0;
}

static void
hook_report(const struct hook *h, int status, int reaped)
{
	const char	*what = "on_change";

	if (h->killed)
		log_warnx("%s for %s (%s -> %s): killed after %lld ms", what,
		    h->backend, h->old_state, h->new_state,
		    (long long)h->timeout_ms);
	else if (!reaped)
		log_warnx("%s for %s (%s -> %s): exit status lost", what,
		    h->backend, h->old_state, h->new_state);
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		log_debug("%s for %s (%s -> %s): done", what, h->backend,
		    h->old_state, h->new_state);
	else if (WIFEXITED(status))
		log_warnx("%s for %s (%s -> %s): exited %d", what, h->backend,
		    h->old_state, h->new_state, WEXITSTATUS(status));
	else
		log_warnx("%s for %s (%s -> %s): killed by signal %d", what,
		    h->backend, h->old_state, h->new_state,
		    WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static void
hook_done(struct hook *h, int status, int reaped)
{
	struct publish	*p = h->p;

	hook_report(h, status, reaped);
	TAILQ_REMOVE(&p->running, h, entry);
	p->nrunning--;
	hook_free(h);
	publish_pump(p);
}

static void
hook_exit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hook	*h = arg;
	pid_t		 r;
	int		 status = 0;

	while ((r = waitpid(h->pid, &status, WNOHANG)) == -1 && errno == EINTR)
		;
	if (r == 0)
		return;		/* the poll: not yet */
	hook_done(h, status, r == h->pid);
}

static void
hook_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hook	*h = arg;

	/* The whole session: a hook's own children must not outlive it. */
	h->killed = 1;
	kill(-h->pid, SIGKILL);
	kill(h->pid, SIGKILL);
}

static int
hook_watch(struct hook *h)
{
	struct timeval	tv;

	if ((h->pidfd = pidfd_open(h->pid, 0)) != -1)
		h->ev_exit = event_new(h->p->base, h->pidfd, EV_READ | EV_PERSIST,
		    hook_exit_cb, h);
	else
		h->ev_exit = event_new(h->p->base, -1, EV_PERSIST, hook_exit_cb, h);
	h->ev_timeout = evtimer_new(h->p->base, hook_timeout_cb, h);
	if (h->ev_exit == NULL || h->ev_timeout == NULL)
		return -1;
	tv.tv_sec = PUBLISH_POLL_MS / 1000;
	tv.tv_usec = (PUBLISH_POLL_MS % 1000) * 1000;
	event_add(h->ev_exit, h->pidfd != -1 ? NULL : &tv);
	tv.tv_sec = h->timeout_ms / 1000;
	tv.tv_usec = (h->timeout_ms % 1000) * 1000;
	evtimer_add(h->ev_timeout, &tv);
	return 0;
}

static int
publish_backend_busy(const struct publish *p, const char *backend)
{
	const struct hook	*h;

	TAILQ_FOREACH(h, &p->running, entry)
		if (strcmp(h->backend, backend) == 0)
			return 1;
	return 0;
}

static void
publish_run(struct publish *p, struct hook *h)
{
	char	err[256];

	TAILQ_REMOVE(&p->queued, h, entry);
	p->nqueued--;
	if (hook_spawn(h, err, sizeof(err)) == -1) {
		log_warnx("on_change for %s (%s -> %s): %s", h->backend,
		    h->old_state, h->new_state, err);
		hook_free(h);
		return;
	}
	TAILQ_INSERT_TAIL(&p->running, h, entry);
	p->nrunning++;
	if (hook_watch(h) == -1)
		fatalx("on_change: cannot watch hook process %ld", (long)h->pid);
}

/* In queue order; a backend's next transition waits for its previous hook. */
static void
publish_pump(struct publish *p)
{
	struct hook	*h, *next;

	for (h = TAILQ_FIRST(&p->queued); h != NULL; h = next) {
		next = TAILQ_NEXT(h, entry);
		if (p->nrunning >= PUBLISH_MAX_RUNNING)
			return;
		if (!publish_backend_busy(p, h->backend))
			publish_run(p, h);
	}
}

static void
publish_enqueue(struct publish *p, const char *backend, const char *old_state,
    const char *new_state, const struct view *v)
{
	struct hook	*h;

	if (p->nqueued >= PUBLISH_MAX_QUEUED) {
		log_warnx("on_change: %zu hooks queued, dropping %s (%s -> %s)",
		    p->nqueued, backend, old_state, new_state);
		return;
	}
	h = xcalloc(1, sizeof(*h));
	h->p = p;
	h->pid = -1;
	h->pidfd = -1;
	h->backend = xstrdup(backend);
	h->old_state = xstrdup(old_state);
	h->new_state = xstrdup(new_state);
	h->node = xstrdup(v->node != NULL ? v->node : "");
	h->command = xstrdup(p->on_change);
	h->generation = v->generation;
	h->timeout_ms = p->hook_timeout_ms;
	TAILQ_INSERT_TAIL(&p->queued, h, entry);
	p->nqueued++;
}

static void
publish_hooks(struct publish *p, const struct view *old, const struct view *new)
{
	const struct view_backend	*ob, *nb;
	size_t				 i;

	if (p->on_change == NULL)
		return;
	for (i = 0; i < new->n; i++) {
		nb = &new->backends[i];
		ob = view_find(old, nb->name);
		if (ob == NULL || ob->state != nb->state)
			publish_enqueue(p, nb->name, ob != NULL ?
			    backend_state_name(ob->state) : "none",
			    backend_state_name(nb->state), new);
	}
	for (i = 0; old != NULL && i < old->n; i++)
		if (view_find(new, old->backends[i].name) == NULL)
			publish_enqueue(p, old->backends[i].name,
			    backend_state_name(old->backends[i].state), "removed", new);
	publish_pump(p);
}

void
publish_view(struct publish *p, struct control *ctl, const struct view *old,
    const struct view *new)
{
	struct json	j;

	json_init(&j);
	view_json(new, &j);
	if (ctl != NULL)
		control_broadcast(ctl, json_text(&j));
	publish_state(p, json_text(&j));
	json_free(&j);
	publish_hooks(p, old, new);
}
