/*
 * tls.c: proxyd's TLS server side: one OpenSSL context per certificate (the
 * global one and each domain's own), the SNI callback that picks a domain's.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "proxyd.h"

struct tls_dom {
	char		*name;
	SSL_CTX		*ctx;
};
struct tls_set {
	SSL_CTX		*dflt;
	struct tls_dom	*dom;
	size_t		 ndom;
};

static void
tls_errstr(char *err, size_t errlen, const char *what, const char *file)
{
	unsigned long	e = ERR_get_error();
	char		 ssl[256];

	ERR_error_string_n(e, ssl, sizeof(ssl));
	snprintf(err, errlen, "%s %s: %s", what, file, e ? ssl : "failed");
	ERR_clear_error();
}

static int
tls_sni_cb(SSL *ssl, int *alert, void *arg)
{
	struct tls_set	*ts = arg;
	const char	*name;
	size_t		 i;

	name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	if (name == NULL)
		return SSL_TLSEXT_ERR_OK;
	for (i = 0; i < ts->ndom; i++)
		if (strcasecmp(ts->dom[i].name, name) == 0) {
			SSL_set_SSL_CTX(ssl, ts->dom[i].ctx);
			break;
		}
	return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *
tls_ctx_new(struct tls_set *ts, const struct tls_conf *t, char *err, size_t errlen)
{
	SSL_CTX	*ctx;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		tls_errstr(err, errlen, "SSL_CTX_new", "");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* Session tickets and a cache would keep per-session state around. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, t->cert) != 1) {
		tls_errstr(err, errlen, "certificate", t->cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, t->key, SSL_FILETYPE_PEM) != 1) {
		tls_errstr(err, errlen, "key", t->key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_errstr(err, errlen, "key does not match the certificate", t->key);
		goto fail;
	}
	SSL_CTX_set_tlsext_servername_callback(ctx, tls_sni_cb);
	SSL_CTX_set_tlsext_servername_arg(ctx, ts);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

struct tls_set *
tls_set_new(const struct proxyd_conf *c, char *err, size_t errlen)
{
	struct tls_set	*ts = xcalloc(1, sizeof(*ts));
	size_t		 i;

	ts->dom = xcalloc(c->ndomains + 1, sizeof(*ts->dom));
	for (i = 0; i < c->ndomains; i++) {
		if (c->domains[i].tls.cert == NULL)
			continue;
		ts->dom[ts->ndom].name = xstrdup(c->domains[i].name);
		if ((ts->dom[ts->ndom++].ctx = tls_ctx_new(ts, &c->domains[i].tls,
		    err, errlen)) == NULL)
			goto fail;
	}
	if (c->tls.cert != NULL) {
		if ((ts->dflt = tls_ctx_new(ts, &c->tls, err, errlen)) == NULL)
			goto fail;
	} else if (ts->ndom > 0) {
		/* Without SNI a client gets the first domain's certificate. */
		SSL_CTX_up_ref(ts->dom[0].ctx);
		ts->dflt = ts->dom[0].ctx;
	}
	return ts;
fail:
	tls_set_free(ts);
	return NULL;
}

void
tls_set_free(struct tls_set *ts)
{
	size_t	i;

	if (ts == NULL)
		return;
	for (i = 0; i < ts->ndom; i++) {
		free(ts->dom[i].name);
		SSL_CTX_free(ts->dom[i].ctx);
	}
	free(ts->dom);
	SSL_CTX_free(ts->dflt);
	free(ts);
}

int
tls_set_enabled(const struct tls_set *ts)
{
	return ts != NULL && ts->dflt != NULL;
}

struct ssl_st *
tls_set_ssl(struct tls_set *ts)
{
	if (!tls_set_enabled(ts))
		return NULL;
	return SSL_new(ts->dflt);
}
