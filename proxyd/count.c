/*
 * count.c: live session counts by name (domain or backend), kept as sessions
 * change, so that max_connections and every status scrape cost O(1) per
 * name instead of a walk over every session.  Names come from the config and
 * hamon's view, so the set stays small: entries are never removed.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxyd.h"

struct count_ent {
	char	*key;
	size_t	 n;
};

struct count_map {
	struct count_ent *v;
	size_t		  cap;		/* a power of two, or 0 */
	size_t		  used;
	int		  icase;
};

static uint64_t
count_hash(const char *s, int icase)
{
	uint64_t	h = 1469598103934665603ull;	/* FNV-1a */

	for (; *s != '\0'; s++) {
		h ^= icase ? (unsigned char)tolower((unsigned char)*s) :
		    (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

struct count_map *
count_map_new(int icase)
{
	struct count_map	*m = xcalloc(1, sizeof(*m));

	m->icase = icase;
	return m;
}

void
count_map_free(struct count_map *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->cap; i++)
		free(m->v[i].key);
	free(m->v);
	free(m);
}

static struct count_ent *
count_slot(const struct count_map *m, const char *key)
{
	size_t	i;

	if (m->cap == 0)
		return NULL;
	i = count_hash(key, m->icase) & (m->cap - 1);
	for (;; i = (i + 1) & (m->cap - 1)) {
		if (m->v[i].key == NULL)
			return &m->v[i];
		if ((m->icase ? strcasecmp(m->v[i].key, key) :
		    strcmp(m->v[i].key, key)) == 0)
			return &m->v[i];
	}
}

static void
count_grow(struct count_map *m)
{
	struct count_ent	*old = m->v, *e;
	size_t			 oldcap = m->cap;

	m->cap = oldcap == 0 ? 16 : oldcap * 2;
	m->v = xcalloc(m->cap, sizeof(*m->v));
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].key != NULL) {
			e = count_slot(m, old[i].key);
			*e = old[i];
		}
	free(old);
}

void
count_add(struct count_map *m, const char *key, int delta)
{
	struct count_ent	*e;

	if (key == NULL || delta == 0)
		return;
	if ((m->used + 1) * 4 > m->cap * 3)
		count_grow(m);
	e = count_slot(m, key);
	if (e->key == NULL) {
		e->key = xstrdup(key);
		m->used++;
	}
	/* An unbalanced decrement is a bug; never wrap to a huge count. */
	if (delta > 0)
		e->n += (size_t)delta;
	else
		e->n -= e->n < (size_t)-delta ? e->n : (size_t)-delta;
}

size_t
count_get(const struct count_map *m, const char *key)
{
	const struct count_ent	*e;

	if (m == NULL || key == NULL || (e = count_slot(m, key)) == NULL ||
	    e->key == NULL)
		return 0;
	return e->n;
}
