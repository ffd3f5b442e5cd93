/*
 * xmlmem.c: the allocator proxyd's expat parsers run on: every byte a parser
 * holds is counted against its limit (so no input can grow one past
 * buffer_bytes), and its small blocks come from pages of its own, given back
 * whole when the parser is freed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd.h"
#include "xmlmem.h"

#define XMLS_HDR	16		/* allocation header: size and owner */
#define XMLS_PAGE	16384		/* expat's small blocks come from pages */
#define XMLS_PAGE_CACHE	64		/* free pages kept for the next parser */

/*
 * A parser's small blocks (about 45, 12 KB in all: expat's parser, its DTD,
 * hash tables, pools and tags) live in pages of their own, so that freeing an
 * idle parser gives whole pages back: malloc'd one by one, they were spread
 * between the sessions' long-lived objects, and the holes they left kept an
 * idle session's RSS at three times what it held.  Size classes are close
 * (under 1/8 apart) because expat's usual sizes (536, 1060, 2064) sit just
 * above powers of two.
 */
static const unsigned short xmlstream_classes[] = {
	32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512,
	576, 640, 768, 896, 1024, 1088, 1152, 1280, 1536, 1792, 2048, 2112,
	2560, 3072, 4096
};
_Static_assert(sizeof(xmlstream_classes) / sizeof(xmlstream_classes[0]) ==
    XMLMEM_CLASSES, "XMLMEM_CLASSES is the number of size classes");
#define XMLS_CLASSES	XMLMEM_CLASSES
#if defined(__SANITIZE_ADDRESS__)
#define XMLS_CLASS_MAX	0		/* AddressSanitizer sees every block */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define XMLS_CLASS_MAX	0
#endif
#endif
#ifndef XMLS_CLASS_MAX
#define XMLS_CLASS_MAX	4096
#endif

struct xml_page {
	struct xml_page	*next;
	size_t		 used;
	size_t		 pad[2];	/* data stays 16-aligned */
	unsigned char	 data[];
};


static _Thread_local struct xml_mem *xmlstream_mem_cur;
static _Thread_local struct xml_page *xmlstream_page_cache;
static _Thread_local size_t xmlstream_page_ncache;

static size_t
xmlstream_class(size_t total)
{
	size_t	lo = 0, hi = XMLS_CLASSES - 1, mid;

	while (lo < hi) {
		mid = (lo + hi) / 2;
		if (xmlstream_classes[mid] < total)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct xml_page *
xmlstream_page_new(void)
{
	struct xml_page	*pg;

	if ((pg = xmlstream_page_cache) != NULL) {
		xmlstream_page_cache = pg->next;
		xmlstream_page_ncache--;
	} else if ((pg = malloc(XMLS_PAGE)) == NULL)
		return NULL;
	pg->next = NULL;
	pg->used = 0;
	return pg;
}

/* A block of TOTAL bytes (at most XMLS_CLASS_MAX) from M's pages. */
static unsigned char *
xmlstream_pool_get(struct xml_mem *m, size_t total)
{
	size_t		 c = xmlstream_class(total), size = xmlstream_classes[c];
	struct xml_page	*pg;
	unsigned char	*p;

	if ((p = m->free[c]) != NULL)
		memcpy(&m->free[c], p, sizeof(void *));
	else {
		for (pg = m->pages; pg != NULL; pg = pg->next)
			if (XMLS_PAGE - sizeof(*pg) - pg->used >= size)
				break;
		if (pg == NULL) {
			if ((pg = xmlstream_page_new()) == NULL)
				return NULL;
			pg->next = m->pages;
			m->pages = pg;
			m->npages++;
		}
		p = pg->data + pg->used;
		pg->used += size;
	}
	m->live++;
	return p;
}

/* The last block back: every page goes (to the cache, or to malloc). */
static void
xmlstream_pool_put(struct xml_mem *m, unsigned char *p, size_t total)
{
	size_t		 c = xmlstream_class(total);
	struct xml_page	*pg;

	memcpy(p, &m->free[c], sizeof(void *));
	m->free[c] = p;
	if (--m->live > 0)
		return;
	while ((pg = m->pages) != NULL) {
		m->pages = pg->next;
		if (xmlstream_page_ncache < XMLS_PAGE_CACHE) {
			pg->next = xmlstream_page_cache;
			xmlstream_page_cache = pg;
			xmlstream_page_ncache++;
		} else
			free(pg);
	}
	memset(m->free, 0, sizeof(m->free));
	m->npages = 0;
}

static unsigned char *
xmlstream_block_get(struct xml_mem *m, size_t n)
{
	return n + XMLS_HDR <= XMLS_CLASS_MAX ? xmlstream_pool_get(m, n + XMLS_HDR) :
	    malloc(n + XMLS_HDR);
}

static void
xmlstream_block_put(struct xml_mem *m, unsigned char *h, size_t n)
{
	if (n + XMLS_HDR <= XMLS_CLASS_MAX)
		xmlstream_pool_put(m, h, n + XMLS_HDR);
	else
		free(h);
}

int
xmlmem_take(struct xml_mem *m, size_t n)
{
	if (n > m->limit || m->used > m->limit - n) {
		m->hit = 1;
		return -1;
	}
	m->used += n;
	if (m->used > m->peak)
		m->peak = m->used;
	return 0;
}

static void *
xmlstream_malloc_cb(size_t n)
{
	struct xml_mem	*m = xmlstream_mem_cur;
	unsigned char	*h;

	if (n > SIZE_MAX - XMLS_HDR || xmlmem_take(m, n + XMLS_HDR) == -1)
		return NULL;
	if ((h = xmlstream_block_get(m, n)) == NULL) {
		m->used -= n + XMLS_HDR;
		return NULL;
	}
	memcpy(h, &n, sizeof(n));
	memcpy(h + sizeof(n), &m, sizeof(m));
	return h + XMLS_HDR;
}

static void
xmlstream_free_cb(void *p)
{
	unsigned char	*h;
	struct xml_mem	*m;
	size_t		 n;

	if (p == NULL)
		return;
	h = (unsigned char *)p - XMLS_HDR;
	memcpy(&n, h, sizeof(n));
	memcpy(&m, h + sizeof(n), sizeof(m));
	m->used -= n + XMLS_HDR;
	xmlstream_block_put(m, h, n);
}

static void *
xmlstream_realloc_cb(void *p, size_t n)
{
	unsigned char	*h, *nh;
	struct xml_mem	*m;
	size_t		 old;

	if (p == NULL)
		return xmlstream_malloc_cb(n);
	h = (unsigned char *)p - XMLS_HDR;
	memcpy(&old, h, sizeof(old));
	memcpy(&m, h + sizeof(old), sizeof(m));
	if (n > SIZE_MAX - XMLS_HDR)
		return NULL;
	if (n > old && xmlmem_take(m, n - old) == -1)
		return NULL;
	if (old + XMLS_HDR > XMLS_CLASS_MAX && n + XMLS_HDR > XMLS_CLASS_MAX)
		nh = realloc(h, n + XMLS_HDR);
	else if (old + XMLS_HDR <= XMLS_CLASS_MAX && n + XMLS_HDR <= XMLS_CLASS_MAX &&
	    xmlstream_class(old + XMLS_HDR) == xmlstream_class(n + XMLS_HDR))
		nh = h;
	else if ((nh = xmlstream_block_get(m, n)) != NULL) {
		memcpy(nh + XMLS_HDR, h + XMLS_HDR, old < n ? old : n);
		memcpy(nh + sizeof(n), &m, sizeof(m));
		xmlstream_block_put(m, h, old);
	}
	if (nh == NULL) {
		if (n > old)
			m->used -= n - old;
		return NULL;
	}
	if (n < old)
		m->used -= old - n;
	memcpy(nh, &n, sizeof(n));
	return nh + XMLS_HDR;
}

const XML_Memory_Handling_Suite xmlmem_suite = {
	xmlstream_malloc_cb, xmlstream_realloc_cb, xmlstream_free_cb
};

void
xmlmem_use(struct xml_mem *m)
{
	xmlstream_mem_cur = m;
}

size_t
xmlmem_pages_bytes(const struct xml_mem *m)
{
	return m->npages * XMLS_PAGE;
}
