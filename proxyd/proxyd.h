/*
 * proxyd.h: proxyd the filtering, domain-aware XMPP proxy.
 * The table of contents of proxyd/: prototypes grouped by the file defining them.
 */
#ifndef PROXYD_H
#define PROXYD_H

#include "common.h"

struct proxyd_conf {
	struct cfg_doc		*doc;		/* strings below point into it */
	struct common_conf	 common;
};

/* conf.c */
void		*proxyd_conf_load(const char *path, struct cfg_errs *);
void		 proxyd_conf_free(void *);
const struct common_conf *proxyd_conf_common(const void *);

#endif
