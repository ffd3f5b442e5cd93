/*
 * conf.c: proxyd's configuration: the YAML file, validated whole, into a plain
 * struct proxyd_conf that reload swaps in only when it is valid.
 */
#include <stdlib.h>

#include "proxyd.h"

static const char *const proxyd_keys[] = { NULL };

void *
proxyd_conf_load(const char *path, struct cfg_errs *errs)
{
	struct proxyd_conf	*c = xcalloc(1, sizeof(*c));
	size_t			 before = errs->n;

	common_conf_defaults(&c->common, "proxyd");
	if ((c->doc = common_conf_load(path, errs)) == NULL)
		goto fail;
	cfg_check_keys(errs, c->doc->root, common_conf_keys_with(proxyd_keys));
	common_conf_parse(errs, c->doc->root, &c->common);
	if (errs->n > before)
		goto fail;
	return c;
fail:
	proxyd_conf_free(c);
	return NULL;
}

void
proxyd_conf_free(void *p)
{
	struct proxyd_conf	*c = p;

	if (c == NULL)
		return;
	cfg_free(c->doc);
	free(c);
}

const struct common_conf *
proxyd_conf_common(const void *p)
{
	const struct proxyd_conf	*c = p;

	return &c->common;
}
