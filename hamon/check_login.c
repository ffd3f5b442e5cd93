/*
 * check_login.c: the login check: a probe account logs in (SASL SCRAM-SHA-1,
 * else PLAIN), binds a resource and round-trips an XEP-0199 ping, whose RTT is
 * the latency.  Plain TCP: the backend network is trusted (STARTTLS: later).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "probe_int.h"

#define SCRAM_MAX_ITER	100000	/* PBKDF2 runs on the loop: a bound on a stall */
#define SCRAM_MAX_SALT	128
#define SASL_MAX_TEXT	4096

enum login_state { L_FEATURES, L_SASL, L_FEATURES2, L_BIND, L_PING };

struct check_login {
	struct probe	 p;		/* first: the probe base */
	struct xc	*xc;
	char		*user, *password, *domain;
	enum login_state state;
	int		 scram;		/* else PLAIN */
	int		 scram_step;	/* 0 client-first sent, 1 final sent, 2 verified */
	char		*first_bare;
	unsigned char	 server_sig[SHA_DIGEST_LENGTH];
	uint64_t	 ping_ns;
};

/* ---------------------------------------------------------------- base64 */

static char *
b64_encode(const unsigned char *in, size_t n)
{
	char	*out = xmalloc(4 * ((n + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	return out;
}

static int
b64_value(int c)
{
	if (c >= 'A' && c <= 'Z') return c - 'A';
	if (c >= 'a' && c <= 'z') return c - 'a' + 26;
	if (c >= '0' && c <= '9') return c - '0' + 52;
	if (c == '+') return 62;
	if (c == '/') return 63;
	return -1;
}

/* Strict base64 (white space skipped); -1 when invalid or OUT is too small. */
static int
b64_decode(const char *in, size_t n, unsigned char *out, size_t cap, size_t *outlen)
{
	uint32_t	acc = 0;
	size_t		i, bits = 0, o = 0, pad = 0;
	int		v;

	for (i = 0; i < n; i++) {
		if (in[i] == ' ' || in[i] == '\t' || in[i] == '\r' || in[i] == '\n')
			continue;
		if (in[i] == '=') {
			pad++;
			continue;
		}
		if (pad > 0 || (v = b64_value((unsigned char)in[i])) == -1)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		if ((bits += 6) >= 8) {
			bits -= 8;
			if (o >= cap)
				return -1;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	if (pad > 2 || bits >= 6 || (acc & ((1u << bits) - 1)) != 0)
		return -1;
	*outlen = o;
	return 0;
}

/* ---------------------------------------------------------------- SCRAM */

/* SaltedPassword depends on (password, salt, i) only: RFC 5802 lets a client
 * cache it, so PBKDF2 runs once per server salt, not once per probe. */
#define SCRAM_CACHE	64
static struct {
	unsigned char	key[SHA256_DIGEST_LENGTH];
	unsigned char	salted[SHA_DIGEST_LENGTH];
	int		used;
} scram_cache[SCRAM_CACHE];
static unsigned	scram_cache_next;

static void
scram_salted(const char *password, const unsigned char *salt, size_t saltlen,
    unsigned iter, unsigned char out[SHA_DIGEST_LENGTH])
{
	unsigned char	key[SHA256_DIGEST_LENGTH], it[4];
	EVP_MD_CTX	*md;
	size_t		i;

	it[0] = iter >> 24, it[1] = iter >> 16, it[2] = iter >> 8, it[3] = iter;
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(md, password, strlen(password) + 1) != 1 ||
	    EVP_DigestUpdate(md, salt, saltlen) != 1 ||
	    EVP_DigestUpdate(md, it, sizeof(it)) != 1 ||
	    EVP_DigestFinal_ex(md, key, NULL) != 1)
		fatalx("scram: sha256");
	EVP_MD_CTX_free(md);
	for (i = 0; i < SCRAM_CACHE; i++)
		if (scram_cache[i].used &&
		    CRYPTO_memcmp(scram_cache[i].key, key, sizeof(key)) == 0) {
			memcpy(out, scram_cache[i].salted, SHA_DIGEST_LENGTH);
			return;
		}
	if (PKCS5_PBKDF2_HMAC_SHA1(password, (int)strlen(password), salt,
	    (int)saltlen, (int)iter, SHA_DIGEST_LENGTH, out) != 1)
		fatalx("scram: PBKDF2");
	i = scram_cache_next++ % SCRAM_CACHE;
	memcpy(scram_cache[i].key, key, sizeof(key));
	memcpy(scram_cache[i].salted, out, SHA_DIGEST_LENGTH);
	scram_cache[i].used = 1;
}

static void
scram_hmac(const unsigned char *key, size_t keylen, const char *msg,
    unsigned char out[SHA_DIGEST_LENGTH])
{
	if (HMAC(EVP_sha1(), key, (int)keylen, (const unsigned char *)msg,
	    strlen(msg), out, NULL) == NULL)
		fatalx("scram: HMAC");
}

/* "n=user,r=nonce" with ',' and '=' escaped as RFC 5802 asks. */
char *
scram_client_first_bare(const char *user, const char *cnonce)
{
	struct buf	b;
	const char	*s;

	buf_init(&b);
	buf_adds(&b, "n=");
	for (s = user; *s != '\0'; s++) {
		if (*s == ',')
			buf_adds(&b, "=2C");
		else if (*s == '=')
			buf_adds(&b, "=3D");
		else
			buf_addc(&b, *s);
	}
	buf_printf(&b, ",r=%s", cnonce);
	return buf_release(&b);
}

/* The value of attribute A ("r", "s", "i") in a server message, bounded. */
static int
scram_attr(const char *msg, char a, const char **val, size_t *len)
{
	const char	*s = msg, *end;

	for (;;) {
		end = strchr(s, ',');
		if (s[0] == a && s[1] == '=') {
			*val = s + 2;
			*len = end != NULL ? (size_t)(end - s - 2) : strlen(s + 2);
			return 0;
		}
		if (end == NULL)
			return -1;
		s = end + 1;
	}
}

static int
scram_parse_first(const char *first, const char *cnonce, const char **nonce,
    size_t *noncelen, unsigned char *salt, size_t *saltlen, unsigned *iter,
    char *err, size_t errlen)
{
	const char	*v;
	size_t		 n, i;
	unsigned long	 it = 0;

	if (first[0] == 'm' && first[1] == '=') {
		snprintf(err, errlen, "server-first asks for an unknown extension");
		return -1;
	}
	if (scram_attr(first, 'r', nonce, noncelen) == -1 ||
	    *noncelen <= strlen(cnonce) ||
	    strncmp(*nonce, cnonce, strlen(cnonce)) != 0) {
		snprintf(err, errlen, "server-first: the nonce does not extend ours");
		return -1;
	}
	for (i = 0; i < *noncelen; i++)
		if ((*nonce)[i] < 0x21 || (*nonce)[i] > 0x7e) {
			snprintf(err, errlen, "server-first: bad nonce character");
			return -1;
		}
	if (scram_attr(first, 's', &v, &n) == -1 ||
	    b64_decode(v, n, salt, SCRAM_MAX_SALT, saltlen) == -1 || *saltlen == 0) {
		snprintf(err, errlen, "server-first: missing or bad salt");
		return -1;
	}
	if (scram_attr(first, 'i', &v, &n) == -1 || n == 0 || n > 9) {
		snprintf(err, errlen, "server-first: missing or bad iteration count");
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9') {
			snprintf(err, errlen, "server-first: bad iteration count");
			return -1;
		}
		it = it * 10 + (unsigned long)(v[i] - '0');
	}
	if (it == 0 || it > SCRAM_MAX_ITER) {
		snprintf(err, errlen, "server-first: iteration count %lu out of "
		    "range (1-%d)", it, SCRAM_MAX_ITER);
		return -1;
	}
	*iter = (unsigned)it;
	return 0;
}

/*
 * From the server-first message: the client-final message (caller frees)
 * and the ServerSignature the server must prove in its final message.
 */
char *
scram_client_final(const char *first_bare, const char *cnonce, const char *first,
    const char *password, unsigned char server_sig[SCRAM_SIG_LEN],
    char *err, size_t errlen)
{
	unsigned char	 salt[SCRAM_MAX_SALT], salted[SHA_DIGEST_LENGTH];
	unsigned char	 ckey[SHA_DIGEST_LENGTH], stored[SHA_DIGEST_LENGTH];
	unsigned char	 csig[SHA_DIGEST_LENGTH], skey[SHA_DIGEST_LENGTH];
	const char	*nonce;
	char		*without, *auth, *proof, *final;
	size_t		 noncelen, saltlen, i;
	unsigned	 iter;

	if (scram_parse_first(first, cnonce, &nonce, &noncelen, salt, &saltlen,
	    &iter, err, errlen) == -1)
		return NULL;
	scram_salted(password, salt, saltlen, iter, salted);
	scram_hmac(salted, sizeof(salted), "Client Key", ckey);
	SHA1(ckey, sizeof(ckey), stored);
	xasprintf(&without, "c=biws,r=%.*s", (int)noncelen, nonce);
	xasprintf(&auth, "%s,%s,%s", first_bare, first, without);
	scram_hmac(stored, sizeof(stored), auth, csig);
	for (i = 0; i < sizeof(ckey); i++)
		ckey[i] ^= csig[i];
	scram_hmac(salted, sizeof(salted), "Server Key", skey);
	scram_hmac(skey, sizeof(skey), auth, server_sig);
	proof = b64_encode(ckey, sizeof(ckey));
	xasprintf(&final, "%s,p=%s", without, proof);
	OPENSSL_cleanse(salted, sizeof(salted));
	OPENSSL_cleanse(ckey, sizeof(ckey));
	free(without);
	free(auth);
	free(proof);
	return final;
}

/* The server-final message must carry v=ServerSignature: else an impostor. */
int
scram_server_verify(const char *final, const unsigned char sig[SCRAM_SIG_LEN],
    char *err, size_t errlen)
{
	unsigned char	got[SHA_DIGEST_LENGTH + 3];
	size_t		n;

	if (final[0] == 'e' && final[1] == '=') {
		snprintf(err, errlen, "server error: %.80s", final + 2);
		return -1;
	}
	if (final[0] != 'v' || final[1] != '=' ||
	    b64_decode(final + 2, strcspn(final + 2, ","), got, sizeof(got), &n) == -1 ||
	    n != SHA_DIGEST_LENGTH || CRYPTO_memcmp(got, sig, n) != 0) {
		snprintf(err, errlen, "the server's SCRAM signature is wrong "
		    "(not the server that holds the account)");
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- the exchange */

static void
login_send_sasl(struct check_login *c, const char *elem, const char *mech,
    const char *data, size_t len)
{
	char	*b64, *msg;

	b64 = len > 0 ? b64_encode((const unsigned char *)data, len) : xstrdup("=");
	xasprintf(&msg, "<%s xmlns='" XMPP_NS_SASL "'%s%s%s>%s</%s>", elem,
	    mech ? " mechanism='" : "", mech ? mech : "", mech ? "'" : "",
	    b64, elem);
	xc_send(c->xc, msg);
	free(msg);
	free(b64);
}

static void
login_auth(struct check_login *c)
{
	unsigned char	 rnd[18];
	char		*cnonce, *first, *plain;
	size_t		 ulen = strlen(c->user), plen = strlen(c->password);

	if (!c->scram) {
		plain = xmalloc(ulen + plen + 2);
		plain[0] = '\0';
		memcpy(plain + 1, c->user, ulen + 1);
		memcpy(plain + 2 + ulen, c->password, plen);
		login_send_sasl(c, "auth", "PLAIN", plain, ulen + plen + 2);
		OPENSSL_cleanse(plain, ulen + plen + 2);
		free(plain);
		return;
	}
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		fatalx("login: RAND_bytes");
	cnonce = b64_encode(rnd, sizeof(rnd));
	c->first_bare = scram_client_first_bare(c->user, cnonce);
	free(cnonce);
	xasprintf(&first, "n,,%s", c->first_bare);
	login_send_sasl(c, "auth", "SCRAM-SHA-1", first, strlen(first));
	free(first);
}

static int
login_has_mech(const struct xnode *mechs, const char *name)
{
	const struct xnode	*m;

	for (m = mechs->child; m != NULL; m = m->next)
		if (strcmp(m->name, "mechanism") == 0 && m->text.len > 0 &&
		    strcmp(m->text.data, name) == 0)
			return 1;
	return 0;
}

static void
login_features(struct check_login *c, const struct xnode *n)
{
	const struct xnode	*mechs, *tls;

	mechs = xnode_child(n, XMPP_NS_SASL, "mechanisms");
	if (mechs == NULL) {
		tls = xnode_child(n, NULL, "starttls");
		probe_fail(&c->p, "sasl: %s", tls != NULL &&
		    xnode_child(tls, NULL, "required") != NULL ?
		    "the server requires STARTTLS (the probe speaks plain TCP)" :
		    "the server offers no SASL mechanisms");
		return;
	}
	if (login_has_mech(mechs, "SCRAM-SHA-1"))
		c->scram = 1;
	else if (!login_has_mech(mechs, "PLAIN")) {
		probe_fail(&c->p, "sasl: neither SCRAM-SHA-1 nor PLAIN offered");
		return;
	}
	xc_stage(c->xc, "sasl");
	c->state = L_SASL;
	login_auth(c);
}

/* The base64 text of a SASL element, decoded as a C string; NULL on error. */
static char *
login_sasl_text(struct check_login *c, const struct xnode *n)
{
	char	*out;
	size_t	 len;

	if (n->text.len > SASL_MAX_TEXT) {
		probe_fail(&c->p, "sasl: <%s> data too long", n->name);
		return NULL;
	}
	out = xmalloc(n->text.len + 1);
	if (b64_decode(n->text.len ? n->text.data : "", n->text.len,
	    (unsigned char *)out, n->text.len, &len) == -1 ||
	    memchr(out, '\0', len) != NULL) {
		free(out);
		probe_fail(&c->p, "sasl: <%s> data is not valid base64 text", n->name);
		return NULL;
	}
	out[len] = '\0';
	return out;
}

static void
login_challenge(struct check_login *c, const struct xnode *n)
{
	char	*text, *final, err[160];

	if (!c->scram || c->scram_step == 2) {
		probe_fail(&c->p, "sasl: unexpected challenge");
		return;
	}
	if ((text = login_sasl_text(c, n)) == NULL)
		return;
	if (c->scram_step == 0) {
		final = scram_client_final(c->first_bare, strstr(c->first_bare, ",r=") + 3,
		    text, c->password, c->server_sig, err, sizeof(err));
		if (final == NULL)
			probe_fail(&c->p, "sasl: %s", err);
		else {
			login_send_sasl(c, "response", NULL, final, strlen(final));
			c->scram_step = 1;
		}
		free(final);
	} else if (scram_server_verify(text, c->server_sig, err, sizeof(err)) == -1)
		probe_fail(&c->p, "sasl: %s", err);
	else {
		c->scram_step = 2;
		login_send_sasl(c, "response", NULL, "", 0);
	}
	free(text);
}

static void
login_success(struct check_login *c, const struct xnode *n)
{
	char	*text, err[160];

	if (c->scram && c->scram_step != 2) {
		if (c->scram_step == 0 || n->text.len == 0) {
			probe_fail(&c->p, "sasl: success without the server's SCRAM "
			    "signature (server not verified)");
			return;
		}
		if ((text = login_sasl_text(c, n)) == NULL)
			return;
		if (scram_server_verify(text, c->server_sig, err, sizeof(err)) == -1) {
			probe_fail(&c->p, "sasl: %s", err);
			free(text);
			return;
		}
		free(text);
	}
	c->state = L_FEATURES2;
	xc_restart(c->xc);
}

static void
login_sasl(struct check_login *c, const struct xnode *n)
{
	const struct xnode	*t;
	const char		*cond;

	if (strcmp(n->ns, XMPP_NS_SASL) != 0)
		probe_fail(&c->p, "sasl: unexpected <%.40s>", n->name);
	else if (strcmp(n->name, "challenge") == 0)
		login_challenge(c, n);
	else if (strcmp(n->name, "success") == 0)
		login_success(c, n);
	else if (strcmp(n->name, "failure") == 0) {
		cond = xnode_condition(n, XMPP_NS_SASL);
		t = xnode_child(n, XMPP_NS_SASL, "text");
		probe_fail(&c->p, "sasl: %.60s%s%.80s%s",
		    cond != NULL ? cond : "failure",
		    t != NULL && t->text.len ? " (" : "",
		    t != NULL && t->text.len ? t->text.data : "",
		    t != NULL && t->text.len ? ")" : "");
	} else
		probe_fail(&c->p, "sasl: unexpected <%.40s>", n->name);
}

static void
login_bind(struct check_login *c, const struct xnode *n)
{
	if (xnode_child(n, XMPP_NS_BIND, "bind") == NULL) {
		probe_fail(&c->p, "bind: the server offers no resource binding");
		return;
	}
	xc_stage(c->xc, "bind");
	c->state = L_BIND;
	xc_send(c->xc, "<iq type='set' id='bind1'><bind xmlns='" XMPP_NS_BIND
	    "'/></iq>");
}

static void
login_ping(struct check_login *c)
{
	struct buf	 b;

	buf_init(&b);
	buf_adds(&b, "<iq type='get' id='ping1' to='");
	xc_escape(&b, c->domain);
	buf_adds(&b, "'><ping xmlns='" XMPP_NS_PING "'/></iq>");
	xc_stage(c->xc, "ping");
	c->state = L_PING;
	c->ping_ns = now_mono_ns();
	xc_send(c->xc, b.data);
	buf_free(&b);
}

/* The answer to our iq ID, or NULL for any other stanza (ignored). */
static const char *
login_iq_type(const struct xnode *n, const char *id)
{
	const char	*v;

	if (strcmp(n->name, "iq") != 0 || (v = xnode_attr(n, "id")) == NULL ||
	    strcmp(v, id) != 0)
		return NULL;
	return (v = xnode_attr(n, "type")) != NULL ? v : "";
}

static void
login_iq_reply(struct check_login *c, const struct xnode *n)
{
	const struct xnode	*e;
	const char		*type, *cond = NULL;

	if ((type = login_iq_type(n, c->state == L_BIND ? "bind1" : "ping1")) == NULL)
		return;
	if (strcmp(type, "error") == 0 && (e = xnode_child(n, NULL, "error")) != NULL)
		cond = xnode_condition(e, XMPP_NS_STANZAS);
	/* XEP-0199: a server without the ping module answers service-unavailable:
	 * the round trip is proven all the same. */
	if (strcmp(type, "result") == 0 || (c->state == L_PING && cond != NULL &&
	    (strcmp(cond, "service-unavailable") == 0 ||
	    strcmp(cond, "feature-not-implemented") == 0))) {
		if (c->state == L_BIND)
			login_ping(c);
		else {
			c->p.res.latency_us = (now_mono_ns() - c->ping_ns) / 1000;
			probe_ok(&c->p);
		}
		return;
	}
	probe_fail(&c->p, "%s: %.60s", xc_get_stage(c->xc),
	    cond != NULL ? cond : strcmp(type, "error") == 0 ? "error" :
	    "reply of an unknown type");
}

static void
login_on_stream(struct xc *xc, void *arg)
{
	struct check_login	*c = arg;

	xc_stage(xc, c->state == L_FEATURES ? "features" : "bind");
}

static void
login_on_stanza(struct xc *xc, const struct xnode *n, void *arg)
{
	struct check_login	*c = arg;
	int			 features;

	features = strcmp(n->ns, XMPP_NS_STREAMS) == 0 &&
	    strcmp(n->name, "features") == 0;
	switch (c->state) {
	case L_FEATURES:
	case L_FEATURES2:
		if (!features)
			probe_fail(&c->p, "%s: expected <stream:features>, got "
			    "<%.40s>", xc_get_stage(xc), n->name);
		else if (c->state == L_FEATURES)
			login_features(c, n);
		else
			login_bind(c, n);
		break;
	case L_SASL:
		login_sasl(c, n);
		break;
	case L_BIND:
	case L_PING:
		login_iq_reply(c, n);
		break;
	}
}

static const struct xc_handler login_handler = {
	.on_stream = login_on_stream,
	.on_stanza = login_on_stanza,
};

static void
login_expire(struct probe *p)
{
	struct check_login	*c = (struct check_login *)p;

	if (c->xc != NULL)
		xc_expire(c->xc);
	else
		probe_fail(p, "login: timeout after %d ms", p->timeout_ms);
}

static void
login_release(struct probe *p)
{
	struct check_login	*c = (struct check_login *)p;

	xc_close(c->xc);
	c->xc = NULL;
	if (c->password != NULL) {
		OPENSSL_cleanse(c->password, strlen(c->password));
		free(c->password);
		c->password = NULL;
	}
	free(c->user);
	free(c->domain);
	free(c->first_bare);
	c->user = c->domain = c->first_bare = NULL;
}

static const struct probe_kind_ops login_ops = {
	.expire = login_expire,
	.release = login_release,
};

struct probe *
check_login_start(struct event_base *base, const struct check_target *t,
    int timeout_ms, probe_done_cb done, void *arg)
{
	struct check_login	*c;
	const char		*u = t->login_user != NULL ? t->login_user : "";

	c = xcalloc(1, sizeof(*c));
	probe_init(&c->p, &login_ops, base, CHECK_LOGIN, timeout_ms, done, arg);
	/* A full JID names the account by its localpart; the stream's to= is
	 * the backend's domain. */
	c->user = xstrndup(u, strcspn(u, "@"));
	c->password = xstrdup(t->login_password != NULL ? t->login_password : "");
	c->domain = xstrdup(t->domain != NULL ? t->domain : "");
	if (*c->user == '\0')
		probe_fail(&c->p, "login: no probe user configured");
	else
		c->xc = xc_open(&c->p, t, &login_handler, c);
	return &c->p;
}
