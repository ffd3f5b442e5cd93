/*
 * pmap.c: a hash map from strings to pointers, for the engine's per-path
 * tables (state records, what a peer holds, queued work).
 *
 * Open addressing with linear probing: a slot holds the key's full hash next
 * to its entry, so a probe compares hashes within one cache line and touches
 * an entry (its key) only on a likely match.  With 100,000 paths in several
 * maps a lookup is then about two cache misses, not one per chained entry.
 * Deletes shift the following run back (no tombstones).
 *
 * A map made by pmap_new_keyed stores no key of its own: each value holds
 * its key (a char * at a fixed offset), so a table of 100,000 records costs
 * no copy of every path and no allocation per entry.
 */
#include <stdlib.h>
#include <string.h>

#include "spoolsync.h"

#define PMAP_MIN	64	/* slots; a power of two */

struct pent {
	void		*val;
	char		 key[];
};

struct pslot {
	uint64_t	 h;
	void		*e;		/* a struct pent, or keyed: the value; NULL: empty */
};

struct pmap {
	struct pslot	*s;
	size_t		 ns;		/* a power of two */
	size_t		 n;
	int		 keyed;		/* values hold their keys, at koff */
	size_t		 koff;
};

static const char *
pmap_key_of(const struct pmap *m, const void *e)
{
	if (m->keyed)
		return *(char *const *)(const void *)((const char *)e + m->koff);
	return ((const struct pent *)e)->key;
}

static void *
pmap_val_of(const struct pmap *m, void *e)
{
	return m->keyed ? e : ((struct pent *)e)->val;
}

static uint64_t
pmap_mix(uint64_t h)
{
	h ^= h >> 31;
	h *= 0x7fb5d329728ea185ULL;
	h ^= h >> 27;
	h *= 0x81dadef4bc2dd44dULL;
	h ^= h >> 33;
	return h;
}

/* Eight bytes a step (paths are long and share prefixes), then a mix. */
static uint64_t
pmap_hash(const char *s, size_t len)
{
	uint64_t	h = 0x9e3779b97f4a7c15ULL ^ len, w;

	for (; len >= 8; s += 8, len -= 8) {
		memcpy(&w, s, 8);
		w *= 0xbf58476d1ce4e5b9ULL;
		w ^= w >> 29;
		h = (h ^ w) * 0x94d049bb133111ebULL;
		h ^= h >> 32;
	}
	w = 0;
	memcpy(&w, s, len);
	h = (h ^ w ^ ((uint64_t)len << 56)) * 0xbf58476d1ce4e5b9ULL;
	return pmap_mix(h);
}

uint64_t
pmap_hash_str(const char *s)
{
	return pmap_hash(s, strlen(s));
}

struct pmap *
pmap_new(void)
{
	struct pmap	*m = xcalloc(1, sizeof(*m));

	m->ns = PMAP_MIN;
	m->s = xcalloc(m->ns, sizeof(*m->s));
	return m;
}

struct pmap *
pmap_new_keyed(size_t key_off)
{
	struct pmap	*m = pmap_new();

	m->keyed = 1;
	m->koff = key_off;
	return m;
}

void
pmap_free(struct pmap *m, void (*freefn)(void *))
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->ns; i++) {
		if (m->s[i].e == NULL)
			continue;
		if (freefn != NULL)
			freefn(pmap_val_of(m, m->s[i].e));
		if (!m->keyed)
			free(m->s[i].e);
	}
	free(m->s);
	free(m);
}

/* KEY's slot, or the empty slot where it would go. */
static size_t
pmap_find(const struct pmap *m, const char *key, uint64_t h)
{
	size_t	mask = m->ns - 1, i = h & mask;

	while (m->s[i].e != NULL &&
	    (m->s[i].h != h || strcmp(pmap_key_of(m, m->s[i].e), key) != 0))
		i = (i + 1) & mask;
	return i;
}

void *
pmap_get(const struct pmap *m, const char *key)
{
	size_t	i;

	if (m->n == 0)
		return NULL;	/* often so (what is being applied, on a sender) */
	i = pmap_find(m, key, pmap_hash(key, strlen(key)));

	return m->s[i].e == NULL ? NULL : pmap_val_of(m, m->s[i].e);
}

static void
pmap_grow(struct pmap *m)
{
	struct pslot	*old = m->s;
	size_t		 oldn = m->ns, mask, j;

	m->ns *= 2;
	mask = m->ns - 1;
	m->s = xcalloc(m->ns, sizeof(*m->s));
	for (size_t i = 0; i < oldn; i++) {
		if (old[i].e == NULL)
			continue;
		for (j = old[i].h & mask; m->s[j].e != NULL; j = (j + 1) & mask)
			;
		m->s[j] = old[i];
	}
	free(old);
}

void *
pmap_put(struct pmap *m, const char *key, void *val)
{
	size_t		 len = strlen(key), i;
	uint64_t	 h = pmap_hash(key, len);
	struct pent	*e;
	void		*old;

	i = pmap_find(m, key, h);
	if (m->keyed) {
		old = m->s[i].e;
		m->s[i].h = h;
		m->s[i].e = val;
		if (old != NULL)
			return old;
	} else if (m->s[i].e != NULL) {
		e = m->s[i].e;
		old = e->val;
		e->val = val;
		return old;
	} else {
		e = xmalloc(sizeof(*e) + len + 1);
		memcpy(e->key, key, len + 1);
		e->val = val;
		m->s[i].h = h;
		m->s[i].e = e;
	}
	/* At most three quarters full: probe runs stay short. */
	if (++m->n > m->ns / 4 * 3)
		pmap_grow(m);
	return NULL;
}

/* Slot I is emptied; the run after it moves back so every key stays found. */
static void
pmap_remove_slot(struct pmap *m, size_t i)
{
	size_t	mask = m->ns - 1, j = i, home;

	if (!m->keyed)
		free(m->s[i].e);
	m->s[i].e = NULL;
	m->n--;
	for (;;) {
		j = (j + 1) & mask;
		if (m->s[j].e == NULL)
			return;
		home = m->s[j].h & mask;
		/* Stays unless its home is outside (i, j], cyclically. */
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		m->s[i] = m->s[j];
		m->s[j].e = NULL;
		i = j;
	}
}

void *
pmap_del(struct pmap *m, const char *key)
{
	size_t	 i;
	void	*val;

	if (m->n == 0)
		return NULL;
	i = pmap_find(m, key, pmap_hash(key, strlen(key)));
	if (m->s[i].e == NULL)
		return NULL;
	val = pmap_val_of(m, m->s[i].e);
	pmap_remove_slot(m, i);
	return val;
}

int
pmap_del_if(struct pmap *m, const char *key, const void *val)
{
	size_t	i;

	if (m->n == 0)
		return 0;
	i = pmap_find(m, key, pmap_hash(key, strlen(key)));
	if (m->s[i].e == NULL || pmap_val_of(m, m->s[i].e) != val)
		return 0;
	pmap_remove_slot(m, i);
	return 1;
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
	void	*e = NULL;

	while (e == NULL && it->bucket < m->ns)
		e = m->s[it->bucket++].e;
	it->ent = e;
	if (e == NULL)
		return 0;
	if (key != NULL)
		*key = pmap_key_of(m, e);
	if (val != NULL)
		*val = pmap_val_of(m, e);
	return 1;
}
