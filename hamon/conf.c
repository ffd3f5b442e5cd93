/*
 * conf.c: hamon's configuration: the YAML file, validated whole, into a plain
 * struct hamon_conf that reload swaps in only when it is valid.
 */
#include <stdlib.h>

#include "hamon.h"

static const char *const hamon_keys[] = { NULL };

void *
hamon_conf_load(const char *path, struct cfg_errs *errs)
{
	struct hamon_conf	*c = xcalloc(1, sizeof(*c));
	size_t			 before = errs->n;

	common_conf_defaults(&c->common, "hamon");
	if ((c->doc = common_conf_load(path, errs)) == NULL)
		goto fail;
	cfg_check_keys(errs, c->doc->root, common_conf_keys_with(hamon_keys));
	common_conf_parse(errs, c->doc->root, &c->common);
	if (errs->n > before)
		goto fail;
	return c;
fail:
	hamon_conf_free(c);
	return NULL;
}

void
hamon_conf_free(void *p)
{
	struct hamon_conf	*c = p;

	if (c == NULL)
		return;
	cfg_free(c->doc);
	free(c);
}

const struct common_conf *
hamon_conf_common(const void *p)
{
	const struct hamon_conf	*c = p;

	return &c->common;
}
