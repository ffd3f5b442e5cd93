/*
 * control_int.h: what control.c (the server) shares with control_client.c;
 * private to those two files, not part of common.h.
 */
#ifndef JHA_CONTROL_INT_H
#define JHA_CONTROL_INT_H

#include <sys/un.h>

#include "common.h"

/* PATH into SUN; -1 and err when it is empty or too long for sun_path. */
int		 control_sockaddr(const char *path, struct sockaddr_un *sun, char *err,
		    size_t errlen);

#endif
