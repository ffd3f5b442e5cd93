/* test_prefeat.c: the cache of backends' pre-authentication features: by
 * backend and domain, refreshed, never for a backend offering legacy auth
 * (its digest needs the backend's own stream id), bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxyd.h"

static void
features(struct xml_node *f, struct xml_node *child, const char *ns)
{
	memset(f, 0, sizeof(*f));
	memset(child, 0, sizeof(*child));
	f->type = child->type = XML_NODE_ELEM;
	f->ns = "http://etherx.jabber.org/streams";
	f->name = "features";
	child->ns = ns;
	child->name = "mechanisms";
	child->parent = f;
	f->child = f->last = child;
}

static void
body(struct buf *b, const char *s)
{
	buf_init(b);
	buf_add(b, s, strlen(s));
}

static void
test_kept_by_backend_and_domain_and_refreshed(void **unused)
{
	struct session_ctx	 ctx;
	struct xml_node		 f, c;
	struct buf		 b1, b2, got;

	memset(&ctx, 0, sizeof(ctx));
	ctx.shared = proxyd_shared_new();
	buf_init(&got);
	features(&f, &c, "urn:ietf:params:xml:ns:xmpp-sasl");
	body(&b1, "<mechanisms>PLAIN</mechanisms>");
	body(&b2, "<mechanisms>SCRAM-SHA-1</mechanisms>");
	assert_int_equal(prefeat_get(&ctx, "a", "example.com", &got), -1);
	prefeat_put(&ctx, "a", "example.com", &f, &b1);
	assert_int_equal(prefeat_get(&ctx, "a", "EXAMPLE.com", &got), 0);
	assert_int_equal(got.len, b1.len);
	assert_memory_equal(got.data, b1.data, b1.len);
	assert_int_equal(prefeat_get(&ctx, "b", "example.com", &got), -1);
	assert_int_equal(prefeat_get(&ctx, "a", "example.org", &got), -1);
	prefeat_put(&ctx, "a", "example.com", &f, &b2);
	assert_int_equal(prefeat_get(&ctx, "a", "example.com", &got), 0);
	assert_int_equal(got.len, b2.len);
	assert_memory_equal(got.data, b2.data, b2.len);
	prefeat_forget(&ctx, "a", "example.com");
	assert_int_equal(prefeat_get(&ctx, "a", "example.com", &got), -1);
	proxyd_shared_free(ctx.shared);
	buf_free(&got);
	buf_free(&b1);
	buf_free(&b2);
}

static void
test_a_backend_offering_legacy_auth_is_never_cached(void **unused)
{
	struct session_ctx	 ctx;
	struct xml_node		 f, c, legacy;
	struct buf		 b, got;

	memset(&ctx, 0, sizeof(ctx));
	ctx.shared = proxyd_shared_new();
	buf_init(&got);
	features(&f, &c, "urn:ietf:params:xml:ns:xmpp-sasl");
	body(&b, "<mechanisms/>");
	prefeat_put(&ctx, "a", "example.com", &f, &b);
	assert_int_equal(prefeat_get(&ctx, "a", "example.com", &got), 0);
	/* It now offers XEP-0078 too: what was cached goes. */
	memset(&legacy, 0, sizeof(legacy));
	legacy.type = XML_NODE_ELEM;
	legacy.ns = "http://jabber.org/features/iq-auth";
	legacy.name = "auth";
	c.next = &legacy;
	f.last = &legacy;
	prefeat_put(&ctx, "a", "example.com", &f, &b);
	assert_int_equal(prefeat_get(&ctx, "a", "example.com", &got), -1);
	prefeat_put(&ctx, "b", "example.com", &f, &b);
	assert_int_equal(prefeat_get(&ctx, "b", "example.com", &got), -1);
	assert_int_equal(prefeat_count(&ctx), 0);
	proxyd_shared_free(ctx.shared);
	buf_free(&got);
	buf_free(&b);
}

static void
test_the_cache_is_bounded_oldest_out(void **unused)
{
	struct session_ctx	 ctx;
	struct xml_node		 f, c;
	struct buf		 b;
	struct buf		 got;
	char			 name[32];
	int			 i;

	memset(&ctx, 0, sizeof(ctx));
	ctx.shared = proxyd_shared_new();
	buf_init(&got);
	features(&f, &c, "urn:ietf:params:xml:ns:xmpp-sasl");
	body(&b, "<mechanisms/>");
	for (i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "d%d.example", i);
		prefeat_put(&ctx, "a", name, &f, &b);
	}
	assert_int_equal(prefeat_get(&ctx, "a", "d0.example", &got), -1);
	assert_int_equal(prefeat_get(&ctx, "a", "d2999.example", &got), 0);
	assert_int_equal(prefeat_count(&ctx), 1024);
	proxyd_shared_free(ctx.shared);
	buf_free(&got);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kept_by_backend_and_domain_and_refreshed),
		cmocka_unit_test(test_a_backend_offering_legacy_auth_is_never_cached),
		cmocka_unit_test(test_the_cache_is_bounded_oldest_out),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
