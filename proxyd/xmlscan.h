/*
 * xmlscan.h: the byte scanning xmlfilter.c's lexer, xmlrepair.c's repair
 * stage and xmlcheck.c share: character classes, whole UTF-8 characters,
 * 16-byte spans; and the appends of the two canonical writers (serialize.c,
 * xmlcheck.c).
 */
#ifndef PROXYD_XMLSCAN_H
#define PROXYD_XMLSCAN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "common.h"

#define REF_MAX		32	/* "&#x10FFFF;" is 10; leading zeros get 22 more */

static inline int
xmlscan_is_ws(unsigned char b)
{
	return b == ' ' || b == '\t' || b == '\n' || b == '\r';
}

static inline int
xmlscan_is_refchar(unsigned char b)
{
	return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
	    (b >= '0' && b <= '9') || b == '#' || b == '_' || b == '-' ||
	    b == '.' || b == ':';
}

static inline int
xmlscan_xml_char(uint32_t cp)
{
	if (cp < 0x20)
		return cp == 0x9 || cp == 0xa || cp == 0xd;
	return cp != 0xfffe && cp != 0xffff;
}

/*
 * Which bytes the plain loops may skip in each state: printable ASCII but
 * the bytes that state acts on.  The scalar path looks each byte up in a
 * table the compiler builds; the SSE2 path tests 16 bytes at a time.  The
 * span loops are inlined into each caller, so that every state's special
 * bytes are constants there (a call per span cost more than the span).
 */
#define XMLSCAN_INLINE	inline __attribute__((always_inline))

enum { P_TEXT = 1, P_APOS = 2, P_QUOT = 4, P_TAG = 8, P_CDATA = 16 };

#define P_OF(c)	((c) < 0x20 || (c) >= 0x80 ? 0 :			\
	((c) != '<' && (c) != '&' ? P_TEXT : 0) |			\
	((c) != '\'' ? P_APOS : 0) | ((c) != '"' ? P_QUOT : 0) |	\
	((c) != '>' && (c) != '\'' && (c) != '"' && (c) != '=' &&	\
	    (c) != '/' ? P_TAG : 0) |					\
	((c) != ']' && (c) != '>' ? P_CDATA : 0))
/* F(0), F(1), ... F(255): a byte class table the compiler builds. */
#define CLASS_4(F, c)	F(c), F((c) + 1), F((c) + 2), F((c) + 3)
#define CLASS_16(F, c)	CLASS_4(F, c), CLASS_4(F, (c) + 4), CLASS_4(F, (c) + 8), \
	CLASS_4(F, (c) + 12)
#define CLASS_64(F, c)	CLASS_16(F, c), CLASS_16(F, (c) + 16), \
	CLASS_16(F, (c) + 32), CLASS_16(F, (c) + 48)
#define CLASS_256(F)	CLASS_64(F, 0), CLASS_64(F, 64), CLASS_64(F, 128), \
	CLASS_64(F, 192)

static const uint8_t xmlscan_plain_tab[256] = {
	CLASS_256(P_OF)
};

/* The bytes of P[0..N) in table class M, from the start: the scalar path,
 * and the SSE2 path's reads shorter than a block. */
static inline size_t
xmlscan_span_scalar(const uint8_t *tab, uint8_t m, const unsigned char *p,
    size_t n)
{
	size_t	j = 0;

	while (j + 4 <= n && (tab[p[j]] & tab[p[j + 1]] & tab[p[j + 2]] &
	    tab[p[j + 3]] & m))
		j += 4;
	while (j < n && (tab[p[j]] & m))
		j++;
	return j;
}

#ifdef __SSE2__
/* The bits of the bytes of V below 0x20 or above 0x7f (negative as signed
 * bytes) or equal to one of A..E. */
static XMLSCAN_INLINE unsigned
xmlscan_block(__m128i v, char a, char b, char c, char d, char e)
{
	__m128i	m;

	m = _mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
	    _mm_cmpeq_epi8(v, _mm_set1_epi8(a)));
	m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8(b)));
	m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8(c)));
	m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8(d)));
	m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8(e)));
	return (unsigned)_mm_movemask_epi8(m);
}

/*
 * The span of P[0..N) with no control, non-ASCII or A..E byte (the same bytes
 * as table class M), 16 bytes at a time.  The last partial block is read as
 * the block that ends at P + N, its bits already seen shifted out: no byte
 * outside P[0..N) is ever read.
 */
static XMLSCAN_INLINE size_t
xmlscan_span(const uint8_t *tab, uint8_t m, const unsigned char *p, size_t n,
    char a, char b, char c, char d, char e)
{
	size_t		j;
	unsigned	bits;

	if (n < 16)
		return xmlscan_span_scalar(tab, m, p, n);
	for (j = 0; j + 16 <= n; j += 16) {
		bits = xmlscan_block(_mm_loadu_si128((const void *)(p + j)),
		    a, b, c, d, e);
		if (bits != 0)
			return j + (size_t)__builtin_ctz(bits);
	}
	if (j == n)
		return n;
	bits = xmlscan_block(_mm_loadu_si128((const void *)(p + n - 16)),
	    a, b, c, d, e) >> (16 - (n - j));
	return bits != 0 ? j + (size_t)__builtin_ctz(bits) : n;
}
#else
static inline size_t
xmlscan_span(const uint8_t *tab, uint8_t m, const unsigned char *p, size_t n,
    char a, char b, char c, char d, char e)
{
	(void)a, (void)b, (void)c, (void)d, (void)e;	/* the table has them */
	return xmlscan_span_scalar(tab, m, p, n);
}
#endif

/*
 * The length of the whole, valid UTF-8 character of at least two bytes at
 * P[0..N) that XML allows, 0 if it is not one (bad, cut short, U+FFFE or
 * U+FFFF): the bytes xmlfilter.c's xmlfilter_utf8 would take one by one
 * without an error.
 */
static inline size_t
xmlscan_utf8_len(const unsigned char *p, size_t n)
{
	unsigned char	b = p[0], lo = 0x80, hi = 0xbf;

	if (b >= 0xc2 && b <= 0xdf)
		return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (b >= 0xe0 && b <= 0xef) {
		if (b == 0xe0)
			lo = 0xa0;
		else if (b == 0xed)
			hi = 0x9f;
		if (n < 3 || p[1] < lo || p[1] > hi || (p[2] & 0xc0) != 0x80)
			return 0;
		return b == 0xef && p[1] == 0xbf && p[2] >= 0xbe ? 0 : 3;
	}
	if (b >= 0xf0 && b <= 0xf4) {
		if (b == 0xf0)
			lo = 0x90;
		else if (b == 0xf4)
			hi = 0x8f;
		if (n < 4 || p[1] < lo || p[1] > hi || (p[2] & 0xc0) != 0x80 ||
		    (p[3] & 0xc0) != 0x80)
			return 0;
		return 4;
	}
	return 0;
}

/*
 * Appends without the NUL: the public functions end the buffer once.  These
 * run for every byte proxyd relays, so they stay inline, and the literals'
 * lengths are known at compile time (SER_LIT).
 */
static inline void
ser_put(struct buf *b, const void *p, size_t n)
{
	if (b->cap - b->len < n + 1)
		buf_reserve(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

#define SER_LIT(b, lit)	ser_put((b), (lit), sizeof(lit) - 1)

static inline void
ser_putc(struct buf *b, char c)
{
	if (b->cap - b->len < 2)
		buf_reserve(b, 1);
	b->data[b->len++] = c;
}

static inline void
ser_end(struct buf *b)
{
	buf_reserve(b, 0);
	b->data[b->len] = '\0';
}

#endif /* PROXYD_XMLSCAN_H */
