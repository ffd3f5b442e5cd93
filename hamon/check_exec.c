/*
 * check_exec.c: the exec check: a Nagios plugin run by /bin/sh -c in its own
 * process group, watched through a pidfd (no SIGCHLD handler to share), its
 * output bounded, killed (SIGTERM, then SIGKILL) past the timeout, always reaped.
 */
#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "probe_int.h"

#define EXEC_MAX_OUT	4096	/* stdout kept; the rest is read and dropped */
#define EXEC_MAX_ERR	512	/* stderr kept, for when stdout says nothing */
#define EXEC_GRACE_MS	200	/* from SIGTERM to SIGKILL */

extern char **environ;

struct exec_pipe {
	int		 fd;
	struct event	*ev;
	char		*data;
	size_t		 len, cap;
};

struct check_exec {
	struct probe	 p;		/* first: the probe base */
	pid_t		 pid;		/* also the process group; -1 once reaped */
	int		 pidfd;
	struct event	*ev_pid;
	struct event	*ev_grace;
	struct exec_pipe out, err;
	char		 outbuf[EXEC_MAX_OUT + 1], errbuf[EXEC_MAX_ERR + 1];
	int		 timed_out;
};

/*
 * A child cancelled before it exited: SIGKILLed, and reaped by a one-shot
 * event on its pidfd (the pid rides in the argument), which libevent itself
 * frees should the loop end first: nothing of ours is left to leak.
 */
static void
exec_reaper_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)waitpid((pid_t)(intptr_t)arg, NULL, WNOHANG);
	close(fd);
}

static void
exec_reap_later(struct event_base *base, pid_t pid, int pidfd)
{
	if (waitpid(pid, NULL, WNOHANG) != 0 ||
	    event_base_once(base, pidfd, EV_READ, exec_reaper_cb,
	    (void *)(intptr_t)pid, NULL) == -1)
		close(pidfd);
}

/* ---------------------------------------------------------------- output */

static void
exec_pipe_close(struct exec_pipe *ep)
{
	if (ep->ev != NULL)
		event_free(ep->ev);
	if (ep->fd != -1)
		close(ep->fd);
	ep->ev = NULL;
	ep->fd = -1;
}

/* Reads what is there (at most LIMIT bytes); 1 at EOF or error. */
static int
exec_pipe_read(struct exec_pipe *ep, size_t limit)
{
	char	scratch[4096];
	ssize_t	n;
	size_t	total = 0;

	while (ep->fd != -1 && total < limit) {
		if (ep->len < ep->cap)
			n = read(ep->fd, ep->data + ep->len, ep->cap - ep->len);
		else
			n = read(ep->fd, scratch, sizeof(scratch));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0)
			return 1;
		if (ep->len < ep->cap)
			ep->len += (size_t)n;
		total += (size_t)n;
	}
	return 0;
}

static void
exec_pipe_cb(evutil_socket_t fd, short what, void *arg)
{
	struct exec_pipe	*ep = arg;

	if (exec_pipe_read(ep, 64 * 1024))
		exec_pipe_close(ep);
}

/* The first line of stdout, else of stderr: what a person sees. */
static void
exec_first_line(struct check_exec *c, char *line, size_t linelen)
{
	const struct exec_pipe	*ep;

	c->out.data[c->out.len] = '\0';
	c->err.data[c->err.len] = '\0';
	ep = strcspn(c->out.data, "\n") > 0 ? &c->out : &c->err;
	probe_sanitize(line, linelen, ep->data, strcspn(ep->data, "\n"));
}

/* ---------------------------------------------------------------- verdict */

static void
exec_verdict(struct check_exec *c, int status)
{
	static const char *const what[] = { "ok", "warning", "critical", "unknown" };
	char			 line[240];
	int			 code;

	exec_first_line(c, line, sizeof(line));
	if (c->timed_out) {
		probe_fail(&c->p, "timeout after %d ms: killed%s%s%s", c->p.timeout_ms,
		    *line ? " (" : "", line, *line ? ")" : "");
		return;
	}
	if (WIFSIGNALED(status)) {
		probe_fail(&c->p, "killed by signal %d (%s)%s%s", WTERMSIG(status),
		    strsignal(WTERMSIG(status)), *line ? ": " : "", line);
		return;
	}
	code = WEXITSTATUS(status);
	c->p.res.exec_status = code;
	if (code == 0) {
		snprintf(c->p.res.error, sizeof(c->p.res.error), "%s", line);
		probe_ok(&c->p);
	} else if (code <= 3)
		probe_fail(&c->p, "%s%s%s", what[code], *line ? ": " : "", line);
	else
		probe_fail(&c->p, "exit %d%s%s", code, *line ? ": " : "", line);
}

static void
exec_pid_cb(evutil_socket_t fd, short what, void *arg)
{
	struct check_exec	*c = arg;
	int			 status;

	if (waitpid(c->pid, &status, WNOHANG) <= 0)
		return;
	/* What it wrote before it died is in the pipes; a straggler that kept
	 * them open cannot make us wait, nor outlive its check. */
	(void)exec_pipe_read(&c->out, 64 * 1024);
	(void)exec_pipe_read(&c->err, 64 * 1024);
	(void)kill(-c->pid, SIGKILL);
	c->pid = -1;
	event_del(c->ev_pid);
	exec_verdict(c, status);
}

static void
exec_grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct check_exec	*c = arg;

	if (c->pid > 0)
		(void)kill(-c->pid, SIGKILL);
}

static void
exec_expire(struct probe *p)
{
	struct check_exec	*c = (struct check_exec *)p;
	struct timeval		 tv = { 0, EXEC_GRACE_MS * 1000 };

	if (c->pid <= 0) {
		probe_fail(p, "timeout after %d ms", p->timeout_ms);
		return;
	}
	/* The verdict comes when the group is dead and reaped. */
	c->timed_out = 1;
	(void)kill(-c->pid, SIGTERM);
	evtimer_add(c->ev_grace, &tv);
}

/* Its stragglers, though, would keep the pgid alive: the zombie keeps it ours. */
static void
exec_release(struct probe *p)
{
	struct check_exec	*c = (struct check_exec *)p;

	exec_pipe_close(&c->out);
	exec_pipe_close(&c->err);
	if (c->ev_pid != NULL)
		event_free(c->ev_pid);
	if (c->ev_grace != NULL)
		event_free(c->ev_grace);
	c->ev_pid = c->ev_grace = NULL;
	if (c->pid > 0) {
		(void)kill(-c->pid, SIGKILL);
		exec_reap_later(p->base, c->pid, c->pidfd);
	} else if (c->pidfd != -1)
		close(c->pidfd);
	c->pid = -1;
	c->pidfd = -1;
}

static const struct probe_kind_ops exec_ops = {
	.expire = exec_expire,
	.release = exec_release,
};

/* ---------------------------------------------------------------- start */

static int
exec_spawn(struct check_exec *c, const char *cmd, int outw, int errw)
{
	posix_spawn_file_actions_t	 fa;
	posix_spawnattr_t		 attr;
	sigset_t			 none, dfl;
	char				*argv[4];
	int				 rc;
	static const int		 sigs[] = { SIGPIPE, SIGINT, SIGTERM, SIGHUP,
					    SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2,
					    SIGALRM };
	size_t				 i;

	argv[0] = "/bin/sh";
	argv[1] = "-c";
	argv[2] = (char *)cmd;
	argv[3] = NULL;
	sigemptyset(&none);
	sigemptyset(&dfl);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaddset(&dfl, sigs[i]);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, outw, 1);
	posix_spawn_file_actions_adddup2(&fa, errw, 2);
	/* Whatever some library left without FD_CLOEXEC stays with the daemon. */
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	posix_spawnattr_init(&attr);
	/* Its own group, so the timeout kills the plugin and all it started;
	 * the daemon's ignored signals and mask are not the plugin's. */
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
	    POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dfl);
	rc = posix_spawn(&c->pid, "/bin/sh", &fa, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		c->pid = -1;
		probe_fail(&c->p, "exec: cannot start /bin/sh: %s", strerror(rc));
		return -1;
	}
	return 0;
}

static void
exec_pipe_open(struct check_exec *c, struct exec_pipe *ep, int fd)
{
	ep->fd = fd;
	(void)net_set_nonblock(fd);
	if ((ep->ev = event_new(c->p.base, fd, EV_READ | EV_PERSIST, exec_pipe_cb,
	    ep)) == NULL)
		fatalx("exec: event_new");
	event_add(ep->ev, NULL);
}

static int
exec_run(struct check_exec *c, const char *cmd)
{
	int	outp[2] = { -1, -1 }, errp[2] = { -1, -1 }, saved;

	if (pipe2(outp, O_CLOEXEC) == -1 || pipe2(errp, O_CLOEXEC) == -1) {
		saved = errno;
		if (outp[0] != -1)
			close(outp[0]), close(outp[1]);
		probe_fail(&c->p, "exec: pipe: %s", strerror(saved));
		return -1;
	}
	if (exec_spawn(c, cmd, outp[1], errp[1]) == -1) {
		close(outp[0]), close(outp[1]), close(errp[0]), close(errp[1]);
		return -1;
	}
	close(outp[1]);
	close(errp[1]);
	exec_pipe_open(c, &c->out, outp[0]);
	exec_pipe_open(c, &c->err, errp[0]);
	if ((c->pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0)) == -1) {
		saved = errno;
		/* Without a pidfd nothing would tell us it ended: end it now. */
		(void)kill(-c->pid, SIGKILL);
		(void)waitpid(c->pid, NULL, 0);
		c->pid = -1;
		probe_fail(&c->p, "exec: pidfd_open: %s", strerror(saved));
		return -1;
	}
	if ((c->ev_pid = event_new(c->p.base, c->pidfd, EV_READ | EV_PERSIST,
	    exec_pid_cb, c)) == NULL)
		fatalx("exec: event_new");
	event_add(c->ev_pid, NULL);
	return 0;
}

struct probe *
check_exec_start(struct event_base *base, const struct check_target *t,
    int timeout_ms, probe_done_cb done, void *arg)
{
	struct check_exec	*c;

	c = xcalloc(1, sizeof(*c));
	c->pid = -1;
	c->pidfd = -1;
	c->out.fd = c->err.fd = -1;
	c->out.data = c->outbuf, c->out.cap = EXEC_MAX_OUT;
	c->err.data = c->errbuf, c->err.cap = EXEC_MAX_ERR;
	probe_init(&c->p, &exec_ops, base, CHECK_EXEC, timeout_ms, done, arg);
	if ((c->ev_grace = evtimer_new(base, exec_grace_cb, c)) == NULL)
		fatalx("exec: evtimer_new");
	if (t->exec_command == NULL || *t->exec_command == '\0')
		probe_fail(&c->p, "exec: no command configured");
	else
		(void)exec_run(c, t->exec_command);
	return &c->p;
}
