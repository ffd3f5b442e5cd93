/*
 * pmap.c: a chained hash map from strings to pointers, for the engine's
 * per-path tables (state records, what a peer holds, queued work).
 */
#include <stdlib.h>
#include <string.h>

#include "spoolsync.h"

struct pent {
	struct pent	*next;
	uint64_t	 h;
	void		*val;
	char		 key[];
};

struct pmap {
	struct pent	**b;
	size_t		  nb;		/* a power of two */
	size_t		  n;
};

/* FNV-1a, then a final mix so that similar paths spread over the buckets. */
static uint64_t
pmap_hash(const char *s)
{
	uint64_t	h = 1469598103934665603ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	h ^= h >> 31;
	h *= 0x7fb5d329728ea185ULL;
	h ^= h >> 27;
	return h;
}

struct pmap *
pmap_new(void)
{
	struct pmap	*m = xcalloc(1, sizeof(*m));

	m->nb = 64;
	m->b = xcalloc(m->nb, sizeof(*m->b));
	return m;
}

void
pmap_free(struct pmap *m, void (*freefn)(void *))
{
	struct pent	*e, *next;

	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nb; i++) {
		for (e = m->b[i]; e != NULL; e = next) {
			next = e->next;
			if (freefn != NULL)
				freefn(e->val);
			free(e);
		}
	}
	free(m->b);
	free(m);
}

static struct pent **
pmap_slot(const struct pmap *m, const char *key, uint64_t h)
{
	struct pent	**pp = &m->b[h & (m->nb - 1)];

	while (*pp != NULL && ((*pp)->h != h || strcmp((*pp)->key, key) != 0))
		pp = &(*pp)->next;
	return pp;
}

void *
pmap_get(const struct pmap *m, const char *key)
{
	struct pent	*e = *pmap_slot(m, key, pmap_hash(key));

	return e == NULL ? NULL : e->val;
}

static void
pmap_grow(struct pmap *m)
{
	struct pent	**nb, *e, *next;
	size_t		  n = m->nb * 2;

	nb = xcalloc(n, sizeof(*nb));
	for (size_t i = 0; i < m->nb; i++) {
		for (e = m->b[i]; e != NULL; e = next) {
			next = e->next;
			e->next = nb[e->h & (n - 1)];
			nb[e->h & (n - 1)] = e;
		}
	}
	free(m->b);
	m->b = nb;
	m->nb = n;
}

void *
pmap_put(struct pmap *m, const char *key, void *val)
{
	uint64_t	  h = pmap_hash(key);
	struct pent	**pp = pmap_slot(m, key, h), *e;
	size_t		  len;
	void		 *old;

	if (*pp != NULL) {
		old = (*pp)->val;
		(*pp)->val = val;
		return old;
	}
	len = strlen(key);
	e = xmalloc(sizeof(*e) + len + 1);
	memcpy(e->key, key, len + 1);
	e->h = h;
	e->val = val;
	e->next = NULL;
	*pp = e;
	if (++m->n > m->nb)
		pmap_grow(m);
	return NULL;
}

void *
pmap_del(struct pmap *m, const char *key)
{
	struct pent	**pp = pmap_slot(m, key, pmap_hash(key)), *e;
	void		 *val;

	if ((e = *pp) == NULL)
		return NULL;
	*pp = e->next;
	val = e->val;
	free(e);
	m->n--;
	return val;
}

size_t
pmap_count(const struct pmap *m)
{
	return m->n;
}

int
pmap_next(const struct pmap *m, struct pmap_iter *it, const char **key,
    void **val)
{
	struct pent	*e = it->ent;

	if (e != NULL)
		e = e->next;
	while (e == NULL && it->bucket < m->nb)
		e = m->b[it->bucket++];
	it->ent = e;
	if (e == NULL)
		return 0;
	if (key != NULL)
		*key = e->key;
	if (val != NULL)
		*val = e->val;
	return 1;
}
