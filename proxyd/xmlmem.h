/*
 * xmlmem.h: the counted, paged allocator that proxyd's expat parsers run on
 * (xmlmem.c); only xmlstream.c includes it.
 */
#ifndef PROXYD_XMLMEM_H
#define PROXYD_XMLMEM_H

#include <expat.h>

#define XMLMEM_CLASSES	30		/* size classes of small blocks */

/* What one parser holds: counted against LIMIT (hit: it refused a block). */
struct xml_mem {
	size_t		 used, peak, limit;
	int		 hit;
	void		*free[XMLMEM_CLASSES];	/* freed blocks by size class */
	struct xml_page	*pages;
	size_t		 npages;
	size_t		 live;			/* blocks handed out */
};

/* For XML_ParserCreate_MM: blocks go to the xml_mem set by xmlmem_use. */
extern const XML_Memory_Handling_Suite xmlmem_suite;
/* The parser about to run (or be made) on this thread allocates from M. */
void		 xmlmem_use(struct xml_mem *m);
/* N more bytes held by M; -1 (and M->hit) past its limit. */
int		 xmlmem_take(struct xml_mem *m, size_t n);
/* Bytes of pages M holds. */
size_t		 xmlmem_pages_bytes(const struct xml_mem *m);

#endif
