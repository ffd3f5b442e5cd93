/*
 * exclude.c: the paths spoolsync leaves alone: the admin's glob patterns
 * (Prosody's scratch "*~", lock files) and spoolsync's own temp files.
 */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spoolsync.h"

struct exclude_pat {
	char	*glob;
	int	 anchored;	/* contains '/': matched against the path */
};

struct exclude {
	struct exclude_pat	*pat;
	size_t			 n;
};

struct exclude *
exclude_new(void)
{
	return xcalloc(1, sizeof(struct exclude));
}

void
exclude_free(struct exclude *ex)
{
	if (ex == NULL)
		return;
	for (size_t i = 0; i < ex->n; i++)
		free(ex->pat[i].glob);
	free(ex->pat);
	free(ex);
}

size_t
exclude_count(const struct exclude *ex)
{
	return ex == NULL ? 0 : ex->n;
}

int
exclude_add(struct exclude *ex, const char *pattern, char *err, size_t errlen)
{
	size_t	len;
	char	*g;
	int	lead;

	len = strnlen(pattern, EXCLUDE_PATTERN_MAX + 1);
	if (len > EXCLUDE_PATTERN_MAX) {
		snprintf(err, errlen, "exclude pattern longer than %d bytes",
		    EXCLUDE_PATTERN_MAX);
		return -1;
	}
	/* A leading '/' anchors at the root; a trailing one says nothing more,
	 * since a match excludes the whole subtree anyway. */
	lead = pattern[0] == '/';
	while (len > 0 && pattern[0] == '/') {
		pattern++;
		len--;
	}
	while (len > 0 && pattern[len - 1] == '/')
		len--;
	if (len == 0) {
		snprintf(err, errlen, "exclude pattern is empty");
		return -1;
	}
	g = xstrndup(pattern, len);
	ex->pat = xreallocarray(ex->pat, ex->n + 1, sizeof(*ex->pat));
	ex->pat[ex->n].glob = g;
	ex->pat[ex->n].anchored = lead || strchr(g, '/') != NULL;
	ex->n++;
	return 0;
}

int
exclude_is_temp(const char *name)
{
	return strncmp(name, SPOOLSYNC_TMP_PREFIX,
	    sizeof(SPOOLSYNC_TMP_PREFIX) - 1) == 0;
}

/* PREFIX is the path up to and including one component whose name is NAME. */
static int
exclude_match_one(const struct exclude *ex, const char *prefix, const char *name)
{
	if (exclude_is_temp(name))
		return 1;
	for (size_t i = 0; ex != NULL && i < ex->n; i++) {
		if (ex->pat[i].anchored) {
			if (fnmatch(ex->pat[i].glob, prefix, FNM_PATHNAME) == 0)
				return 1;
		} else if (fnmatch(ex->pat[i].glob, name, 0) == 0)
			return 1;
	}
	return 0;
}

int
exclude_match(const struct exclude *ex, const char *relpath)
{
	char		 prefix[PATH_REL_MAX + 1];
	const char	*p = relpath, *slash;
	size_t		 len = strlen(relpath);

	if (len > PATH_REL_MAX)
		return 1;	/* spoolsync cannot carry it anyway */
	memcpy(prefix, relpath, len + 1);
	while (*p != '\0') {
		if ((slash = strchr(p, '/')) == NULL)
			slash = p + strlen(p);
		prefix[slash - relpath] = '\0';
		if (exclude_match_one(ex, prefix, prefix + (p - relpath)))
			return 1;
		prefix[slash - relpath] = *slash;
		p = *slash == '/' ? slash + 1 : slash;
	}
	return 0;
}
