/*
 * tls.c: proxyd's TLS: the server side (one OpenSSL context per certificate,
 * the global one and each domain's own, the SNI callback that picks a
 * domain's) and the client side toward backends (one context per setting).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

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

/* ---- toward the backends ---- */

struct tls_client {
	const struct proxyd_conf	*conf;
	SSL_CTX				*dflt;	/* backend_tls; NULL: mode none */
	SSL_CTX				**own;	/* one per backends entry */
};

static SSL_CTX *
tls_client_ctx_new(const struct backend_tls_conf *t, char *err, size_t errlen)
{
	SSL_CTX	*ctx;

	if (t->mode == BTLS_NONE)
		return NULL;
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		tls_errstr(err, errlen, "SSL_CTX_new", "");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (t->ca != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, t->ca, NULL) != 1) {
			tls_errstr(err, errlen, "backend_tls: CA file", t->ca);
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		tls_errstr(err, errlen, "backend_tls: the system's CA store", "");
		goto fail;
	}
	SSL_CTX_set_verify(ctx, t->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

struct tls_client *
tls_client_new(const struct proxyd_conf *c, char *err, size_t errlen)
{
	struct tls_client	*tc = xcalloc(1, sizeof(*tc));
	size_t			 i;

	tc->conf = c;
	tc->own = xcalloc(c->nbackends + 1, sizeof(*tc->own));
	*err = '\0';
	if ((tc->dflt = tls_client_ctx_new(&c->backend_tls, err, errlen)) == NULL &&
	    *err != '\0')
		goto fail;
	for (i = 0; i < c->nbackends; i++)
		if ((tc->own[i] = tls_client_ctx_new(&c->backends[i].tls, err,
		    errlen)) == NULL && *err != '\0')
			goto fail;
	return tc;
fail:
	tls_client_free(tc);
	return NULL;
}

void
tls_client_free(struct tls_client *tc)
{
	size_t	i;

	if (tc == NULL)
		return;
	for (i = 0; i < tc->conf->nbackends; i++)
		SSL_CTX_free(tc->own[i]);
	free(tc->own);
	SSL_CTX_free(tc->dflt);
	free(tc);
}

static ssize_t
tls_client_index(const struct tls_client *tc, const char *backend)
{
	size_t	i;

	for (i = 0; i < tc->conf->nbackends; i++)
		if (strcmp(tc->conf->backends[i].name, backend) == 0)
			return (ssize_t)i;
	return -1;
}

const struct backend_tls_conf *
tls_client_conf(const struct tls_client *tc, const char *backend)
{
	static const struct backend_tls_conf	none = { BTLS_NONE, NULL, 0, NULL, 0 };
	ssize_t					i;

	if (tc == NULL)
		return &none;
	if ((i = tls_client_index(tc, backend)) >= 0)
		return &tc->conf->backends[i].tls;
	return &tc->conf->backend_tls;
}

struct ssl_st *
tls_client_ssl(const struct tls_client *tc, const char *backend, const char *host)
{
	const struct backend_tls_conf	*t = tls_client_conf(tc, backend);
	ssize_t				 i;
	SSL_CTX				*ctx;
	SSL				*ssl;

	if (t->mode == BTLS_NONE)
		return NULL;
	i = tls_client_index(tc, backend);
	ctx = i >= 0 ? tc->own[i] : tc->dflt;
	if (ctx == NULL || (ssl = SSL_new(ctx)) == NULL)
		return NULL;
	if (t->name != NULL)
		host = t->name;
	if (SSL_set_tlsext_host_name(ssl, host) != 1 ||
	    (t->verify && SSL_set1_host(ssl, host) != 1)) {
		SSL_free(ssl);
		return NULL;
	}
	if (t->verify)
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	return ssl;
}

void
tls_client_error(struct ssl_st *ssl, unsigned long e, char *out, size_t outlen)
{
	long		 vr = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
	char		 ssl_err[256];

	if (vr != X509_V_OK) {
		snprintf(out, outlen, "certificate verification failed: %s",
		    X509_verify_cert_error_string(vr));
	} else if (e != 0) {
		ERR_error_string_n(e, ssl_err, sizeof(ssl_err));
		snprintf(out, outlen, "handshake failed: %s", ssl_err);
	} else
		snprintf(out, outlen, "handshake failed (the connection closed)");
	ERR_clear_error();
}
