/*
 * test_check_login.c: the login check against a scripted XMPP server that
 * does real SCRAM-SHA-1 (it verifies our proof), PLAIN, bind and ping, and
 * against servers that lie: a wrong signature, none, a bad nonce, errors.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "probe_server.h"
#include "probe_int.h"

#define DOMAIN		"example.test"
#define PASSWORD	"s3cret,=pw"

enum mode {
	M_SCRAM, M_PLAIN_ONLY, M_BAD_SIG, M_NO_SIG, M_SIG_IN_CHALLENGE, M_BAD_NONCE,
	M_HUGE_ITER, M_BIND_ERROR, M_BIND_SILENT, M_PING_UNAVAILABLE, M_PING_FORBIDDEN,
	M_STARTTLS_REQUIRED, M_NO_MECH
};

struct script {
	enum mode	 mode;
	const char	*password;	/* the account's, on the server */
};

static const char header_reply[] =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' from='example.test' "
    "id='s1' version='1.0'>";

/* ---------------------------------------------------------------- server SCRAM */

static char *
b64e(const unsigned char *in, size_t n)
{
	char	*out = malloc(4 * ((n + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	return out;
}

static size_t
b64d(const char *in, size_t n, unsigned char *out)
{
	int	len;

	if (n == 0 || (n == 1 && in[0] == '=')) {
		out[0] = '\0';
		return 0;
	}
	len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
	assert_true(len >= 0);
	while (n > 0 && in[n - 1] == '=')
		len--, n--;
	out[len] = '\0';
	return (size_t)len;
}

/* The base64 text of the last <NAME ...>text</NAME> received, decoded. */
static size_t
sasl_text(struct srv *s, const char *name, char *out)
{
	char		 open[32], close[32];
	const char	*a, *b;

	snprintf(open, sizeof(open), "<%s", name);
	snprintf(close, sizeof(close), "</%s>", name);
	a = srv_after(s, open);
	assert_non_null(a);
	if ((b = strstr(a, "/>")) != NULL && b < strchr(a, '>') + 1) {
		out[0] = '\0';
		return 0;
	}
	a = strchr(a, '>') + 1;
	b = strstr(a, close);
	assert_non_null(b);
	return b64d(a, (size_t)(b - a), (unsigned char *)out);
}

static void
send_sasl(int fd, const char *elem, const char *data, size_t n)
{
	char	buf[1024], *b = b64e((const unsigned char *)data, n);

	snprintf(buf, sizeof(buf), "<%s xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s"
	    "</%s>", elem, b, elem);
	free(b);
	srv_sends(fd, buf);
}

/* Checks the client proof; on success, the server-final message. */
static int
scram_server(struct srv *s, int fd, const struct script *sc, char *final,
    size_t finallen)
{
	static const unsigned char salt[] = "NaCl-salt-16byte";
	unsigned char	 salted[20], ckey[20], stored[20], csig[20], skey[20], ssig[20];
	unsigned char	 proof[64];
	char		 first[512], cfinal[512], sfirst[1024], auth[4096], *bare, *p;
	char		*b;
	size_t		 i;

	sasl_text(s, "auth", first);
	if (strncmp(first, "n,,n=probe,r=", 13) != 0) {
		snprintf(s->note, sizeof(s->note), "bad client-first: %s", first);
		return -1;
	}
	bare = first + 3;
	b = b64e(salt, 16);
	snprintf(sfirst, sizeof(sfirst), "r=%s%s,s=%s,i=%s", sc->mode == M_BAD_NONCE ?
	    "XXXX" : bare + 10, "srvnonce", b, sc->mode == M_HUGE_ITER ?
	    "100000000" : "4096");
	free(b);
	send_sasl(fd, "challenge", sfirst, strlen(sfirst));
	if (srv_expect(s, fd, "</response>", 2000) == -1)
		return -1;
	sasl_text(s, "response", cfinal);
	if ((p = strstr(cfinal, ",p=")) == NULL)
		return -1;
	*p = '\0';
	snprintf(auth, sizeof(auth), "%s,%s,%s", bare, sfirst, cfinal);
	PKCS5_PBKDF2_HMAC_SHA1(sc->password, (int)strlen(sc->password), salt, 16, 4096,
	    20, salted);
	HMAC(EVP_sha1(), salted, 20, (const unsigned char *)"Client Key", 10, ckey, NULL);
	SHA1(ckey, 20, stored);
	HMAC(EVP_sha1(), stored, 20, (unsigned char *)auth, strlen(auth), csig, NULL);
	if (b64d(p + 3, strlen(p + 3), proof) != 20)
		return -1;
	for (i = 0; i < 20; i++)
		proof[i] ^= csig[i];
	SHA1(proof, 20, ckey);
	if (memcmp(ckey, stored, 20) != 0) {
		snprintf(s->note, sizeof(s->note), "proof wrong");
		return -1;
	}
	HMAC(EVP_sha1(), salted, 20, (const unsigned char *)"Server Key", 10, skey, NULL);
	HMAC(EVP_sha1(), skey, 20, (unsigned char *)auth, strlen(auth), ssig, NULL);
	if (sc->mode == M_BAD_SIG)
		ssig[7] ^= 1;
	b = b64e(ssig, 20);
	snprintf(final, finallen, "v=%s", b);
	free(b);
	snprintf(s->note, sizeof(s->note), "proof ok");
	return 0;
}

static int
plain_server(struct srv *s, const struct script *sc)
{
	char	data[512], want[256];
	size_t	n = sasl_text(s, "auth", data);

	memcpy(want, "\0probe\0", 7);
	memcpy(want + 7, sc->password, strlen(sc->password));
	if (n != 7 + strlen(sc->password) || memcmp(data, want, n) != 0)
		return -1;
	snprintf(s->note, sizeof(s->note), "plain ok");
	return 0;
}

static int
sasl_server(struct srv *s, int fd, const struct script *sc)
{
	char	final[256];
	int	rc;

	if (srv_expect(s, fd, "</auth>", 2000) == -1)
		return -1;
	if (sc->mode == M_PLAIN_ONLY)
		rc = plain_server(s, sc);
	else
		rc = scram_server(s, fd, sc, final, sizeof(final));
	if (rc == -1) {
		srv_sends(fd, "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
		    "<not-authorized/><text>Invalid username or password</text>"
		    "</failure>");
		return -1;
	}
	if (sc->mode == M_PLAIN_ONLY)
		srv_sends(fd, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
	else if (sc->mode == M_NO_SIG)
		srv_sends(fd, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
	else if (sc->mode == M_SIG_IN_CHALLENGE) {
		send_sasl(fd, "challenge", final, strlen(final));
		if (srv_expect(s, fd, "</response>", 2000) == -1)
			return -1;
		srv_sends(fd, "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
	} else
		send_sasl(fd, "success", final, strlen(final));
	return 0;
}

static void
login_script(struct srv *s, int fd)
{
	const struct script	*sc = s->arg;

	if (srv_expect(s, fd, "version='1.0'>", 2000) == -1)
		return;
	srv_sends(fd, header_reply);
	if (sc->mode == M_STARTTLS_REQUIRED || sc->mode == M_NO_MECH) {
		srv_sends(fd, sc->mode == M_NO_MECH ? "<stream:features/>" :
		    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:"
		    "xmpp-tls'><required/></starttls></stream:features>");
		(void)srv_sleep(s, 2000);
		return;
	}
	srv_sends(fd, "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:"
	    "xmpp-sasl'>");
	if (sc->mode != M_PLAIN_ONLY)
		srv_sends(fd, "<mechanism>DIGEST-MD5</mechanism><mechanism>SCRAM-SHA-1"
		    "</mechanism>");
	srv_sends(fd, "<mechanism>PLAIN</mechanism></mechanisms></stream:features>");
	if (sasl_server(s, fd, sc) == -1) {
		(void)srv_sleep(s, 2000);
		return;
	}
	if (srv_expect(s, fd, "version='1.0'>", 2000) == -1)
		return;
	srv_sends(fd, header_reply);
	srv_sends(fd, "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
	    "</stream:features>");
	if (srv_expect(s, fd, "id='bind1'", 2000) == -1 ||
	    srv_expect(s, fd, "</iq>", 2000) == -1)
		return;
	if (sc->mode == M_BIND_SILENT) {
		(void)srv_sleep(s, 3000);
		return;
	}
	if (sc->mode == M_BIND_ERROR) {
		srv_sends(fd, "<iq type='error' id='bind1'><error type='cancel'>"
		    "<not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
		    "</error></iq>");
		(void)srv_sleep(s, 2000);
		return;
	}
	/* Unrelated traffic first: the probe waits for its own answer. */
	srv_sends(fd, "<message from='x@example.test'><body>hi</body></message>"
	    "<iq type='result' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
	    "<jid>probe@example.test/r1</jid></bind></iq>");
	if (srv_expect(s, fd, "urn:xmpp:ping", 2000) == -1 ||
	    srv_expect(s, fd, "</iq>", 2000) == -1)
		return;
	srv_sleep(s, 5);	/* a measurable round trip */
	if (sc->mode == M_PING_UNAVAILABLE || sc->mode == M_PING_FORBIDDEN)
		srv_sends(fd, sc->mode == M_PING_FORBIDDEN ?
		    "<iq type='error' id='ping1'><error type='auth'><forbidden xmlns="
		    "'urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>" :
		    "<iq type='error' id='ping1'><error type='cancel'><service-"
		    "unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>");
	else
		srv_sends(fd, "<iq type='result' id='ping1' from='example.test'/>");
	(void)srv_expect(s, fd, "</stream:stream>", 2000);
}

/* ---------------------------------------------------------------- helpers */

static void
login_once(enum mode mode, const char *server_pw, const char *probe_pw,
    const char *user, struct outcome *o, struct srv *keep)
{
	struct event_base	*base = event_base_new();
	struct script		 sc = { mode, server_pw };
	struct check_target	 t;
	struct srv		 s;

	srv_start(&s, login_script, &sc);
	target_init(&t, s.port, DOMAIN);
	t.login_user = user;
	t.login_password = probe_pw;
	memset(o, 0, sizeof(*o));
	o->t0 = now_mono_ms();
	(void)check_login_start(base, &t, 1000, outcome_cb, o);
	run_until(base, o, 1, 4000);
	/* The probe's stream close leaves on a later loop turn than its result. */
	if (o->r.ok && __atomic_load_n(&s.conns, __ATOMIC_SEQ_CST) > 0)
		srv_wait_scripts(&s, base, 1, 3000);
	srv_stop(&s);
	event_base_free(base);
	if (keep != NULL)
		*keep = s;
	assert_int_equal(o->calls, 1);
	assert_int_equal(o->r.kind, CHECK_LOGIN);
}

/* ---------------------------------------------------------------- tests */

/* RFC 5802 section 5, user "user", password "pencil". */
static void
test_scram_matches_the_rfc5802_example(void **state)
{
	static const char cnonce[] = "fyko+d2lbbFgONRv9qkxdawL";
	unsigned char	 sig[SCRAM_SIG_LEN];
	char		*bare, *final, err[160];

	bare = scram_client_first_bare("user", cnonce);
	assert_string_equal(bare, "n=user,r=fyko+d2lbbFgONRv9qkxdawL");
	final = scram_client_final(bare, cnonce, "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1"
	    "ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096", "pencil", sig, err, sizeof(err));
	assert_non_null(final);
	assert_string_equal(final, "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
	    "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=");
	assert_int_equal(scram_server_verify("v=rmF9pqV8S7suAoZWja4dJRkFsKQ=", sig,
	    err, sizeof(err)), 0);
	assert_int_equal(scram_server_verify("v=rmF9pqV8S7suAoZWja4dJRkFsKA=", sig,
	    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "signature is wrong"));
	assert_int_equal(scram_server_verify("e=invalid-proof", sig, err,
	    sizeof(err)), -1);
	assert_string_equal(err, "server error: invalid-proof");
	free(bare);
	free(final);
}

static void
test_scram_escapes_the_username_and_refuses_bad_server_first(void **state)
{
	unsigned char	 sig[SCRAM_SIG_LEN];
	char		*bare, err[160];

	bare = scram_client_first_bare("a,b=c", "N");
	assert_string_equal(bare, "n=a=2Cb=3Dc,r=N");
	free(bare);
	assert_null(scram_client_final("n=u,r=abc", "abc", "r=abc", "pw", sig, err,
	    sizeof(err)));
	assert_non_null(strstr(err, "nonce"));
	assert_null(scram_client_final("n=u,r=abc", "abc", "r=abcd,s=!!!,i=1", "pw",
	    sig, err, sizeof(err)));
	assert_non_null(strstr(err, "salt"));
	assert_null(scram_client_final("n=u,r=abc", "abc", "r=abcd,s=QSXC,i=0", "pw",
	    sig, err, sizeof(err)));
	assert_non_null(strstr(err, "iteration"));
	assert_null(scram_client_final("n=u,r=abc", "abc", "m=ext,r=abcd,s=QSXC,i=1",
	    "pw", sig, err, sizeof(err)));
	assert_non_null(strstr(err, "extension"));
}

static void
test_scram_login_binds_pings_and_reports_the_rtt(void **state)
{
	struct outcome	o;
	struct srv	s;

	login_once(M_SCRAM, PASSWORD, PASSWORD, "probe", &o, &s);
	if (!o.r.ok)
		fail_msg("%s (server: %s)", o.r.error, s.note);
	assert_string_equal(s.note, "proof ok");
	assert_true(o.r.latency_us >= 4000 && o.r.latency_us < 500000);
	/* The ping goes to the domain, then the stream is closed politely. */
	assert_non_null(strstr(s.got, "<iq type='get' id='ping1' to='example.test'>"
	    "<ping xmlns='urn:xmpp:ping'/></iq>"));
	assert_non_null(strstr(s.got, "</stream:stream>"));
}

static void
test_a_full_jid_logs_in_with_its_localpart(void **state)
{
	struct outcome	o;

	login_once(M_SCRAM, PASSWORD, PASSWORD, "probe@example.test", &o, NULL);
	assert_true(o.r.ok);
}

static void
test_plain_is_used_when_scram_is_not_offered(void **state)
{
	struct outcome	o;
	struct srv	s;

	login_once(M_PLAIN_ONLY, PASSWORD, PASSWORD, "probe", &o, &s);
	if (!o.r.ok)
		fail_msg("%s", o.r.error);
	assert_string_equal(s.note, "plain ok");
}

static void
test_wrong_password_is_not_authorized(void **state)
{
	struct outcome	o;

	login_once(M_SCRAM, PASSWORD, "wrong", "probe", &o, NULL);
	assert_false(o.r.ok);
	assert_string_equal(o.r.error,
	    "sasl: not-authorized (Invalid username or password)");
	login_once(M_PLAIN_ONLY, PASSWORD, "wrong", "probe", &o, NULL);
	assert_false(o.r.ok);
	assert_error_has(&o, "sasl: not-authorized");
}

static void
test_a_wrong_server_signature_fails(void **state)
{
	struct outcome	o;
	struct srv	s;

	login_once(M_BAD_SIG, PASSWORD, PASSWORD, "probe", &o, &s);
	assert_string_equal(s.note, "proof ok");
	assert_false(o.r.ok);
	assert_error_has(&o, "sasl: the server's SCRAM signature is wrong");
	/* It never got as far as binding. */
	assert_null(strstr(s.got, "bind1"));
}

static void
test_success_without_a_signature_fails(void **state)
{
	struct outcome	o;

	login_once(M_NO_SIG, PASSWORD, PASSWORD, "probe", &o, NULL);
	assert_false(o.r.ok);
	assert_error_has(&o, "without the server's SCRAM signature");
}

static void
test_a_signature_in_a_challenge_is_verified(void **state)
{
	struct outcome	o;

	login_once(M_SIG_IN_CHALLENGE, PASSWORD, PASSWORD, "probe", &o, NULL);
	if (!o.r.ok)
		fail_msg("%s", o.r.error);
}

static void
test_a_bad_nonce_or_iteration_count_fails(void **state)
{
	struct outcome	o;

	login_once(M_BAD_NONCE, PASSWORD, PASSWORD, "probe", &o, NULL);
	assert_false(o.r.ok);
	assert_error_has(&o, "sasl: server-first: the nonce does not extend ours");
	login_once(M_HUGE_ITER, PASSWORD, PASSWORD, "probe", &o, NULL);
	assert_false(o.r.ok);
	assert_error_has(&o, "iteration count 100000000 out of range");
	assert_true(o.at_ms < 500);
}

static void
test_bind_failures_say_bind(void **state)
{
	struct outcome	o;

	login_once(M_BIND_ERROR, PASSWORD, PASSWORD, "probe", &o, NULL);
	assert_false(o.r.ok);
	assert_string_equal(o.r.error, "bind: not-allowed");
	login_once(M_BIND_SILENT, PASSWORD, PASSWORD, "probe", &o, NULL);
	assert_false(o.r.ok);
	assert_error_has(&o, "bind: timeout after 1000 ms");
	assert_in_range(o.at_ms, 995, 1400);
}

static void
test_ping_errors(void **state)
{
	struct outcome	o;

	/* XEP-0199: service-unavailable still proves the round trip. */
	login_once(M_PING_UNAVAILABLE, PASSWORD, PASSWORD, "probe", &o, NULL);
	assert_true(o.r.ok);
	login_once(M_PING_FORBIDDEN, PASSWORD, PASSWORD, "probe", &o, NULL);
	assert_false(o.r.ok);
	assert_string_equal(o.r.error, "ping: forbidden");
}

static void
test_no_usable_mechanism_is_said(void **state)
{
	struct outcome	o;

	login_once(M_STARTTLS_REQUIRED, PASSWORD, PASSWORD, "probe", &o, NULL);
	assert_false(o.r.ok);
	assert_error_has(&o, "requires STARTTLS");
	login_once(M_NO_MECH, PASSWORD, PASSWORD, "probe", &o, NULL);
	assert_false(o.r.ok);
	assert_error_has(&o, "no SASL mechanisms");
}

static void
test_no_user_configured_fails_cleanly(void **state)
{
	struct outcome	o;

	login_once(M_SCRAM, PASSWORD, PASSWORD, NULL, &o, NULL);
	assert_false(o.r.ok);
	assert_string_equal(o.r.error, "login: no probe user configured");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scram_matches_the_rfc5802_example),
		cmocka_unit_test(test_scram_escapes_the_username_and_refuses_bad_server_first),
		cmocka_unit_test(test_scram_login_binds_pings_and_reports_the_rtt),
		cmocka_unit_test(test_a_full_jid_logs_in_with_its_localpart),
		cmocka_unit_test(test_plain_is_used_when_scram_is_not_offered),
		cmocka_unit_test(test_wrong_password_is_not_authorized),
		cmocka_unit_test(test_a_wrong_server_signature_fails),
		cmocka_unit_test(test_success_without_a_signature_fails),
		cmocka_unit_test(test_a_signature_in_a_challenge_is_verified),
		cmocka_unit_test(test_a_bad_nonce_or_iteration_count_fails),
		cmocka_unit_test(test_bind_failures_say_bind),
		cmocka_unit_test(test_ping_errors),
		cmocka_unit_test(test_no_usable_mechanism_is_said),
		cmocka_unit_test(test_no_user_configured_fails_cleanly),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
