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

/* conf.c */
void		*hamon_conf_load(const char *path, struct cfg_errs *);
void		 hamon_conf_free(void *);
const struct common_conf *hamon_conf_common(const void *);

#endif
