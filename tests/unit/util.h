/* util.h: helpers every unit test may use, linked into each test binary. */
#ifndef TESTS_UNIT_UTIL_H
#define TESTS_UNIT_UTIL_H

/* Removes PATH and everything beneath it, never following symlinks. */
int	tu_rmtree(const char *path);
/* 1 when FN ends its (forked) process with a failure: fatalx, abort, a signal. */
int	tu_dies(void (*fn)(void));

#endif
