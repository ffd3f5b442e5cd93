/*
 * sasl.c: who a session is: the name in the client's SASL <auth/> (PLAIN's
 * authcid, SCRAM's n=), taken as the session's user only when the backend
 * answers <success/>.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "proxyd.h"
#include "session_int.h"

#define NS_SASL		"urn:ietf:params:xml:ns:xmpp-sasl"
#define SASL_MAX_B64	4096
#define SASL_MAX_NAME	1023

/* Base64 to bytes; NULL when it is not base64 (or too long to be a name). */
static unsigned char *
sasl_b64(const char *in, size_t *outlen)
{
	size_t		 n = strlen(in), pad = 0;
	unsigned char	*out;
	int		 r;

	if (n == 0 || n > SASL_MAX_B64 || n % 4 != 0)
		return NULL;
	out = xmalloc(n / 4 * 3 + 1);
	if ((r = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n)) < 0) {
		free(out);
		return NULL;
	}
	if (in[n - 1] == '=')
		pad++;
	if (in[n - 2] == '=')
		pad++;
	*outlen = (size_t)r - pad;
	out[*outlen] = '\0';
	return out;
}

/* A name to list and log: no NUL, no control character (log forgery). */
static char *
sasl_name_ok(const char *p, size_t n)
{
	size_t	i;

	if (n == 0 || n > SASL_MAX_NAME)
		return NULL;
	for (i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return NULL;
	return xstrndup(p, n);
}

/* authzid NUL authcid NUL passwd (RFC 4616). */
char *
sasl_plain_authcid(const unsigned char *m, size_t n)
{
	const unsigned char	*a, *b;

	if ((a = memchr(m, '\0', n)) == NULL)
		return NULL;
	a++;
	if ((b = memchr(a, '\0', n - (size_t)(a - m))) == NULL)
		return NULL;
	return sasl_name_ok((const char *)a, (size_t)(b - a));
}

/* gs2-header "n=" saslname "," ... (RFC 5802); =2C and =3D unescaped. */
char *
sasl_scram_name(const unsigned char *m, size_t n)
{
	const char	*p = (const char *)m, *end = p + n, *c;
	char		*out, *o;

	if ((c = memchr(p, ',', n)) == NULL)
		return NULL;
	if ((c = memchr(c + 1, ',', (size_t)(end - c - 1))) == NULL)
		return NULL;
	p = c + 1;
	if (end - p < 2 || p[0] != 'n' || p[1] != '=')
		return NULL;
	p += 2;
	if ((c = memchr(p, ',', (size_t)(end - p))) == NULL)
		c = end;
	if ((out = sasl_name_ok(p, (size_t)(c - p))) == NULL)
		return NULL;
	for (o = out, p = out; *p != '\0'; ) {
		if (strncmp(p, "=2C", 3) == 0) {
			*o++ = ',';
			p += 3;
		} else if (strncmp(p, "=3D", 3) == 0) {
			*o++ = '=';
			p += 3;
		} else
			*o++ = *p++;
	}
	*o = '\0';
	return out;
}

void
sasl_client_element(struct session *s, const struct xml_node *n)
{
	const char	*mech;
	unsigned char	*m;
	size_t		 len;
	char		*name = NULL;

	if (strcmp(n->name, "auth") != 0 ||
	    (mech = xmlstream_attr(n, NULL, "mechanism")) == NULL)
		return;
	if ((m = sasl_b64(xmlstream_text(n), &len)) == NULL)
		return;
	if (strcmp(mech, "PLAIN") == 0)
		name = sasl_plain_authcid(m, len);
	else if (strncmp(mech, "SCRAM-", 6) == 0)
		name = sasl_scram_name(m, len);
	free(m);
	free(s->pending_user);
	s->pending_user = name;
}

int
sasl_backend_element(struct session *s, const struct xml_node *n)
{
	if (strcmp(n->name, "success") != 0)
		return 0;
	s->authed = 1;
	free(s->user);
	s->user = s->pending_user;
	s->pending_user = NULL;
	return 1;
}
