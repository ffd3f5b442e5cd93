/*
 * config_int.h: what config.c (loading, errors) shares with config_get.c
 * (getters); private to those two files, not part of common.h.
 */
#ifndef JHA_CONFIG_INT_H
#define JHA_CONFIG_INT_H

#include "common.h"

#define CFG_SHOW_MAX	60	/* bytes of a value or key quoted in a message */

/* Appends to MSG, never past its end. */
void		 cfg_catf(char *msg, size_t len, const char *fmt, ...) PRINTFLIKE(3, 4);
/* A value cut to CFG_SHOW_MAX bytes for a message, never inside a character. */
const char	*cfg_show(const char *s, char *out, size_t outlen);
/* A plain empty value, ~ or null: counts as absent. */
int		 cfg_is_null(const struct cfg_node *);

#endif
