/*
 * xmlstream_int.h: what xmlstream.c (the driver, pass mode, the interface)
 * and xmlparse.c (expat, its callbacks and the trees they build, the
 * memory both count) share: the stream's state and the calls between them.
 */
#ifndef PROXYD_XMLSTREAM_INT_H
#define PROXYD_XMLSTREAM_INT_H

#include <expat.h>

#include "proxyd.h"
#include "xmlmem.h"

#define XMLS_SEP	'\xff'
#define XMLS_BLOCK_MIN	1024
#define XMLS_BLOCK_MAX	65536
#define XMLS_KEEP_MAX	65536		/* XMLS_KEEP still frees a bigger parser */
#define XMLS_CHUNK	(1u << 30)	/* XML_Parse takes an int */
struct xml_bytes {
	unsigned char	*d;
	size_t		 len, cap;
};

struct xml_block {
	struct xml_block	*next;
	size_t			 size, used;
	size_t			 pad;	/* data stays 16-aligned */
	unsigned char		 data[];
};

struct xmlstream {
	struct xml_limits	 lim;
	int			 flags;
	char			*content_ns;
	const struct xmlstream_cb *cb;
	void			*arg;

	struct xmlfilter	 f;
	struct xmlrepair	 r;
	XML_Parser		 p;
	struct xml_mem		 mem;
	int			 in_parse, priming;
	int			 failed, stopped, stop_req, restart_req;
	enum xml_cond		 cond;
	char			*why;
	uint64_t		 since;

	struct xml_bytes	 pend;		/* an unfinished tag */
	struct xml_bytes	 held;		/* lexer input after a stop */
	struct xml_bytes	 prime;		/* the stream header's declarations */
	struct xml_bytes	 sprefix;	/* " p1 p2 ": prefixes of the streams ns */
	int			 has_default;

	int			 depth;		/* as expat reports it */
	size_t			 ndecl;
	struct xml_block	*blocks;
	size_t			 nblocks;
	struct xml_node		*root, *cur;
	struct xml_bytes	 text;
	struct xmlstream_pass	*ps;		/* once pass mode was asked for */
};

/* Pass mode (xmlstream_run_pass), allocated only for the streams that use it. */
struct xmlstream_pass {
	int			(*raw)(void *, const void *, size_t);	/* NULL: off */
	int			 div;	/* this item takes the parse path */
	int			 write;	/* hand on the canonical form, not the bytes */
};

/* xmlparse.c */
int		 xmlstream_fail(struct xmlstream *, enum xml_cond, const char *, ...)
		    PRINTFLIKE(3, 4);
int		 xmlstream_bytes_add(struct xmlstream *, struct xml_bytes *,
		    const void *, size_t);
void		 xmlstream_bytes_free(struct xmlstream *, struct xml_bytes *);
void		 xmlstream_arena_free(struct xmlstream *);
void		 xmlstream_parser_free(struct xmlstream *);
/* P[0..N) to expat (made and primed first if the stream has none). */
int		 xmlstream_expat(struct xmlstream *, const unsigned char *, size_t);

/* A callback's answer: non-zero asks the stream to stop after this item
 * (once per stanza, both halves: inline). */
static inline int
xmlstream_call(struct xmlstream *xs, int rc)
{
	if (rc != 0)
		xs->stop_req = 1;
	return rc;
}

#endif
