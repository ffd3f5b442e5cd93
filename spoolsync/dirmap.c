/*
 * dirmap.c: the watcher's directories, wd -> path and path -> wd, both O(1);
 * watch.c's only truth about what each inotify watch is on.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spoolsync.h"
#include "dirmap.h"

/* REL is PREFIX or beneath it ("" holds everything). */
int
dirmap_under(const char *rel, const char *prefix)
{
	size_t	n = strlen(prefix);

	if (n == 0)
		return 1;
	return strncmp(rel, prefix, n) == 0 && (rel[n] == '\0' || rel[n] == '/');
}

static size_t
dirmap_wd_slot(const struct dirmap *dm, int wd)
{
	return ((uint32_t)wd * 2654435761U) & (dm->nbuckets - 1);
}

static size_t
dirmap_rel_slot(const struct dirmap *dm, const char *rel)
{
	return pmap_hash_str(rel) & (dm->nbuckets - 1);
}

void
dirmap_init(struct dirmap *dm)
{
	dm->nbuckets = 64;
	dm->by_wd = xcalloc(dm->nbuckets, sizeof(*dm->by_wd));
	dm->by_rel = xcalloc(dm->nbuckets, sizeof(*dm->by_rel));
	dm->n = 0;
}

static void
dirmap_link(struct dirmap *dm, struct wdir *d)
{
	size_t	i = dirmap_wd_slot(dm, d->wd), j = dirmap_rel_slot(dm, d->rel);

	d->wd_next = dm->by_wd[i];
	dm->by_wd[i] = d;
	d->rel_next = dm->by_rel[j];
	dm->by_rel[j] = d;
}

static void
dirmap_unlink(struct dirmap *dm, struct wdir *d)
{
	struct wdir	**pp;

	for (pp = &dm->by_wd[dirmap_wd_slot(dm, d->wd)]; *pp != d;
	    pp = &(*pp)->wd_next)
		;
	*pp = d->wd_next;
	for (pp = &dm->by_rel[dirmap_rel_slot(dm, d->rel)]; *pp != d;
	    pp = &(*pp)->rel_next)
		;
	*pp = d->rel_next;
}

static void
dirmap_grow(struct dirmap *dm)
{
	struct wdir	**old = dm->by_wd, *d, *next;
	size_t		  oldn = dm->nbuckets;

	free(dm->by_rel);
	dm->nbuckets *= 2;
	dm->by_wd = xcalloc(dm->nbuckets, sizeof(*dm->by_wd));
	dm->by_rel = xcalloc(dm->nbuckets, sizeof(*dm->by_rel));
	for (size_t i = 0; i < oldn; i++) {
		for (d = old[i]; d != NULL; d = next) {
			next = d->wd_next;
			dirmap_link(dm, d);
		}
	}
	free(old);
}

struct wdir *
dirmap_by_wd(const struct dirmap *dm, int wd)
{
	struct wdir	*d;

	for (d = dm->by_wd[dirmap_wd_slot(dm, wd)]; d != NULL; d = d->wd_next)
		if (d->wd == wd)
			return d;
	return NULL;
}

struct wdir *
dirmap_by_rel(const struct dirmap *dm, const char *rel)
{
	struct wdir	*d;

	for (d = dm->by_rel[dirmap_rel_slot(dm, rel)]; d != NULL;
	    d = d->rel_next)
		if (strcmp(d->rel, rel) == 0)
			return d;
	return NULL;
}

void
dirmap_del(struct dirmap *dm, struct wdir *d)
{
	dirmap_unlink(dm, d);
	dm->n--;
	free(d->rel);
	free(d);
}

/* WD now watches REL: whatever the map said before about either yields. */
struct wdir *
dirmap_put(struct dirmap *dm, int wd, const char *rel)
{
	struct wdir	*d, *other;

	if ((other = dirmap_by_rel(dm, rel)) != NULL && other->wd != wd)
		dirmap_del(dm, other);
	if ((d = dirmap_by_wd(dm, wd)) != NULL) {
		if (strcmp(d->rel, rel) == 0)
			return d;
		dirmap_unlink(dm, d);
		free(d->rel);
		d->rel = xstrdup(rel);
		dirmap_link(dm, d);
		return d;
	}
	if (dm->n >= dm->nbuckets)
		dirmap_grow(dm);
	d = xcalloc(1, sizeof(*d));
	d->wd = wd;
	d->rel = xstrdup(rel);
	dirmap_link(dm, d);
	dm->n++;
	return d;
}

/* Every directory at or beneath PREFIX; the caller frees the array. */
size_t
dirmap_match(const struct dirmap *dm, const char *prefix, struct wdir ***out)
{
	struct wdir	**v = NULL, *d;
	size_t		  n = 0;

	for (size_t i = 0; i < dm->nbuckets; i++) {
		for (d = dm->by_wd[i]; d != NULL; d = d->wd_next) {
			if (!dirmap_under(d->rel, prefix))
				continue;
			v = xreallocarray(v, n + 1, sizeof(*v));
			v[n++] = d;
		}
	}
	*out = v;
	return n;
}

/* Directories at or beneath FROM are now at or beneath TO. */
void
dirmap_rename(struct dirmap *dm, const char *from, const char *to)
{
	struct wdir	**v;
	size_t		  n, flen = strlen(from);
	char		 *rel;

	n = dirmap_match(dm, from, &v);
	for (size_t i = 0; i < n; i++) {
		xasprintf(&rel, "%s%s", to, v[i]->rel + flen);
		dirmap_put(dm, v[i]->wd, rel);
		free(rel);
	}
	free(v);
}

void
dirmap_free(struct dirmap *dm)
{
	struct wdir	*d, *next;

	if (dm->by_wd == NULL)
		return;
	for (size_t i = 0; i < dm->nbuckets; i++) {
		for (d = dm->by_wd[i]; d != NULL; d = next) {
			next = d->wd_next;
			free(d->rel);
			free(d);
		}
	}
	free(dm->by_wd);
	free(dm->by_rel);
	memset(dm, 0, sizeof(*dm));
}
