/* util.c: helpers shared by the unit tests: temp trees and "does it die" checks. */
#include <sys/stat.h>
#include <sys/wait.h>

#include <ftw.h>
#include <stdio.h>
#include <unistd.h>

#include "util.h"

static int
tu_rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int
tu_rmtree(const char *path)
{
	return nftw(path, tu_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int
tu_dies(void (*fn)(void))
{
	pid_t	pid;
	int	status;

	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		close(STDERR_FILENO);
		fn();
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
