/*
 * placement.c: which backend holds a domain: rendezvous (highest random
 * weight) hashing over the eligible backends, so that every proxy given the
 * same view agrees and losing a backend moves only that backend's domains.
 *
 * The rule, a function of the view alone, so that every proxy given the
 * same view agrees (one that just started, or missed views while hamon was
 * away, included):
 *
 *  - the candidates are the eligible backends (up) and those hamon marks
 *    `holds`: unsynced after being up.  Such a backend is alive, only its
 *    spool is behind its peer's; moving its domains would cut every session
 *    for a peer that lacks the newest writes, so it keeps them.  A backend
 *    that returns unsynced (catching up) does not hold: it gets nothing.
 *  - the preferred backend if it is a candidate, else the candidate with the
 *    highest weight; none when there is no candidate.
 *
 * Since a holding backend stays a candidate, the hash gives it back exactly
 * the domains it had.  Its limit: a domain newly configured while its
 * winner holds goes there too (it has no sessions or data to lose).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxyd.h"

/*
 * A fixed key: every proxy, of every version, must compute the same weights,
 * or two proxies would place a domain on two backends.  Changing it (or the
 * hash) moves every domain at once; tests/unit/test_placement.c pins it.
 */
#define PLACEMENT_K0	0x61682d7265626261ull	/* "abber-ha" */
#define PLACEMENT_K1	0x746d63616c702f6aull	/* "j/placmt" */

/* SipHash-2-4, fed a byte at a time (names are short). */
struct sip {
	uint64_t	v0, v1, v2, v3;
	uint64_t	tail;
	uint64_t	len;
};

#define ROTL(x, b)	(uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void
sip_round(struct sip *s)
{
	s->v0 += s->v1;
	s->v1 = ROTL(s->v1, 13);
	s->v1 ^= s->v0;
	s->v0 = ROTL(s->v0, 32);
	s->v2 += s->v3;
	s->v3 = ROTL(s->v3, 16);
	s->v3 ^= s->v2;
	s->v0 += s->v3;
	s->v3 = ROTL(s->v3, 21);
	s->v3 ^= s->v0;
	s->v2 += s->v1;
	s->v1 = ROTL(s->v1, 17);
	s->v1 ^= s->v2;
	s->v2 = ROTL(s->v2, 32);
}

static void
sip_init(struct sip *s, uint64_t k0, uint64_t k1)
{
	s->v0 = k0 ^ 0x736f6d6570736575ull;
	s->v1 = k1 ^ 0x646f72616e646f6dull;
	s->v2 = k0 ^ 0x6c7967656e657261ull;
	s->v3 = k1 ^ 0x7465646279746573ull;
	s->tail = 0;
	s->len = 0;
}

static void
sip_byte(struct sip *s, unsigned char c)
{
	s->tail |= (uint64_t)c << (8 * (s->len & 7));
	if ((++s->len & 7) == 0) {
		s->v3 ^= s->tail;
		sip_round(s);
		sip_round(s);
		s->v0 ^= s->tail;
		s->tail = 0;
	}
}

static uint64_t
sip_final(struct sip *s)
{
	uint64_t	b = (s->len << 56) | s->tail;

	s->v3 ^= b;
	sip_round(s);
	sip_round(s);
	s->v0 ^= b;
	s->v2 ^= 0xff;
	sip_round(s);
	sip_round(s);
	sip_round(s);
	sip_round(s);
	return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

/* Domains are ASCII or IDNA A-labels: ASCII case folding is all there is. */
static unsigned char
placement_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

uint64_t
placement_weight(const char *domain, const char *backend)
{
	struct sip	s;
	const char	*p;

	sip_init(&s, PLACEMENT_K0, PLACEMENT_K1);
	for (p = domain; *p != '\0'; p++)
		sip_byte(&s, placement_lower((unsigned char)*p));
	/* The separator keeps ("ab", "c") and ("a", "bc") apart. */
	sip_byte(&s, 0);
	for (p = backend; *p != '\0'; p++)
		sip_byte(&s, (unsigned char)*p);
	return sip_final(&s);
}

const struct pbackend *
placement_pick(const struct pview *v, const char *domain, const char *prefer)
{
	const struct pbackend	*b, *best = NULL;
	uint64_t		 w, bestw = 0;
	size_t			 i;

	if (v == NULL || domain == NULL)
		return NULL;
	for (i = 0; i < v->n; i++) {
		b = &v->b[i];
		if (!b->eligible && !b->holds)
			continue;
		if (prefer != NULL && strcmp(b->name, prefer) == 0)
			return b;
		w = placement_weight(domain, b->name);
		/* Ties (a 2^-64 event) go to the smaller name, never to the order. */
		if (best == NULL || w > bestw ||
		    (w == bestw && strcmp(b->name, best->name) < 0)) {
			best = b;
			bestw = w;
		}
	}
	return best;
}

/* The same destination: both none, or the same name at the same address. */
static int
placement_same(const struct pbackend *a, const struct pbackend *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a->name, b->name) == 0 &&
	    strcmp(a->address.text, b->address.text) == 0;
}

size_t
placement_moves(const struct pview *old, const struct pview *cur,
    const char *const *domains, const char *const *prefers, size_t n,
    size_t *moved_idx)
{
	const char	*prefer;
	size_t		 i, moved = 0;

	for (i = 0; i < n; i++) {
		prefer = prefers != NULL ? prefers[i] : NULL;
		if (placement_same(placement_pick(old, domains[i], prefer),
		    placement_pick(cur, domains[i], prefer)))
			continue;
		if (moved_idx != NULL)
			moved_idx[moved] = i;
		moved++;
	}
	return moved;
}

enum placement_move
placement_move_kind(const struct pview *cur, const char *from,
    const struct pbackend *to)
{
	const struct pbackend	*b = pview_find(cur, from);

	if (to != NULL && strcmp(to->name, from) == 0)
		return MOVE_STAY;
	/* A dead backend's sessions are broken already: waiting helps nobody. */
	if (to == NULL || b == NULL || strcmp(b->state, "down") == 0)
		return MOVE_NOW;
	return MOVE_SPREAD;
}

uint64_t
placement_spread_delay(uint64_t spread_ms, size_t i, size_t k)
{
	if (k == 0 || i >= k)
		return spread_ms;
	/* Split to stay clear of overflow: spread_ms is at most an hour. */
	return spread_ms / k * i + spread_ms % k * i / k;
}

/* Each served domain and where the rule puts it now. */
struct placed {
	char	*domain;
	char	*backend;	/* NULL: nowhere */
};
struct placement_table {
	struct placed	*v;		/* sorted by domain, case-insensitively */
	size_t		 n;
};

struct placement_table *
placement_table_new(void)
{
	return xcalloc(1, sizeof(struct placement_table));
}

static void
placement_table_clear(struct placed *v, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		free(v[i].domain);
		free(v[i].backend);
	}
	free(v);
}

void
placement_table_free(struct placement_table *t)
{
	if (t == NULL)
		return;
	placement_table_clear(t->v, t->n);
	free(t);
}

static int
placement_cmp(const void *a, const void *b)
{
	return strcasecmp(((const struct placed *)a)->domain,
	    ((const struct placed *)b)->domain);
}

static const struct placed *
placement_table_find(const struct placement_table *t, const char *domain)
{
	struct placed	key;

	if (t == NULL || t->n == 0)
		return NULL;
	key.domain = (char *)(uintptr_t)domain;
	return bsearch(&key, t->v, t->n, sizeof(*t->v), placement_cmp);
}

size_t
placement_table_update(struct placement_table *t, const struct pview *cur,
    const struct domain_conf *d, size_t n)
{
	const struct placed	*old;
	const struct pbackend	*b;
	struct placed		*v = xcalloc(n + 1, sizeof(*v));
	size_t			 i, changed = 0;

	for (i = 0; i < n; i++) {
		old = placement_table_find(t, d[i].name);
		b = placement_pick(cur, d[i].name, d[i].prefer);
		v[i].domain = xstrdup(d[i].name);
		v[i].backend = b != NULL ? xstrdup(b->name) : NULL;
		if (old == NULL || (old->backend == NULL) != (b == NULL) ||
		    (b != NULL && strcmp(old->backend, b->name) != 0))
			changed++;
	}
	qsort(v, n, sizeof(*v), placement_cmp);
	placement_table_clear(t->v, t->n);
	t->v = v;
	t->n = n;
	return changed;
}

int
placement_table_get(const struct placement_table *t, const char *domain,
    const char **backend)
{
	const struct placed	*p = placement_table_find(t, domain);

	if (p == NULL)
		return -1;
	*backend = p->backend;
	return 0;
}
