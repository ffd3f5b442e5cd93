/* test_pmap.c: the string map keeps every key through growth, replaces and
 * deletes exactly one (also amid colliding probe runs), deletes by value
 * only when asked for that value, and iterates each entry once; a keyed
 * map does all that with the keys its values hold, copying none. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "spoolsync.h"

static void
test_many_keys_survive_growth_and_deletes(void **state)
{
	struct pmap	*m = pmap_new();
	char		 k[32];
	long		 i;

	(void)state;
	for (i = 0; i < 20000; i++) {
		snprintf(k, sizeof(k), "dir/%ld.dat", i);
		assert_null(pmap_put(m, k, (void *)(i + 1)));
	}
	assert_int_equal(pmap_count(m), 20000);
	for (i = 0; i < 20000; i += 2) {
		snprintf(k, sizeof(k), "dir/%ld.dat", i);
		assert_ptr_equal(pmap_del(m, k), (void *)(i + 1));
	}
	assert_int_equal(pmap_count(m), 10000);
	for (i = 0; i < 20000; i++) {
		snprintf(k, sizeof(k), "dir/%ld.dat", i);
		if (i % 2)
			assert_ptr_equal(pmap_get(m, k), (void *)(i + 1));
		else
			assert_null(pmap_get(m, k));
	}
	pmap_free(m, NULL);
}

static void
test_put_replaces_and_returns_the_old_value(void **state)
{
	struct pmap	*m = pmap_new();
	char		*a = strdup("a"), *b = strdup("b");

	(void)state;
	assert_null(pmap_put(m, "k", a));
	assert_ptr_equal(pmap_put(m, "k", b), a);
	assert_ptr_equal(pmap_get(m, "k"), b);
	assert_int_equal(pmap_count(m), 1);
	assert_null(pmap_del(m, "absent"));
	free(a);
	pmap_free(m, free);	/* frees b */
}

static void
test_iteration_visits_every_entry_once(void **state)
{
	struct pmap		*m = pmap_new();
	struct pmap_iter	 it = { 0, NULL };
	const char		*key;
	void			*val;
	char			 k[32];
	int			 seen[500] = { 0 }, n = 0;

	(void)state;
	for (long i = 0; i < 500; i++) {
		snprintf(k, sizeof(k), "%ld", i);
		pmap_put(m, k, (void *)i);
	}
	while (pmap_next(m, &it, &key, &val)) {
		assert_int_equal(atol(key), (long)val);
		seen[(long)val]++;
		n++;
	}
	assert_int_equal(n, 500);
	for (int i = 0; i < 500; i++)
		assert_int_equal(seen[i], 1);
	pmap_free(m, NULL);
}

/* Random puts and deletes over a small key space, checked against a plain
 * array after every step: a delete must leave every other key findable. */
static void
test_random_puts_and_deletes_match_a_model(void **state)
{
	struct pmap	*m = pmap_new();
	long		 model[3000];
	char		 k[64];
	unsigned	 seed = 12345;
	long		 i, n = 0;

	(void)state;
	memset(model, 0, sizeof(model));
	for (long step = 0; step < 60000; step++) {
		seed = seed * 1103515245u + 12345u;
		i = (long)((seed >> 8) % 3000);
		snprintf(k, sizeof(k), "data/h%ld/s/%ld.dat", i % 7, i);
		if ((seed >> 4) % 3 == 0) {
			assert_ptr_equal(pmap_del(m, k), (void *)model[i]);
			n -= model[i] != 0;
			model[i] = 0;
		} else {
			assert_ptr_equal(pmap_put(m, k, (void *)(step + 1)),
			    (void *)model[i]);
			n += model[i] == 0;
			model[i] = step + 1;
		}
		if (step % 997 == 0) {
			for (long j = 0; j < 3000; j++) {
				snprintf(k, sizeof(k), "data/h%ld/s/%ld.dat", j % 7, j);
				assert_ptr_equal(pmap_get(m, k), (void *)model[j]);
			}
		}
		assert_int_equal(pmap_count(m), n);
	}
	pmap_free(m, NULL);
}

static void
test_del_if_deletes_only_the_given_value(void **state)
{
	struct pmap	*m = pmap_new();
	int		 a, b;

	(void)state;
	pmap_put(m, "p", &a);
	assert_int_equal(pmap_del_if(m, "p", &b), 0);
	assert_ptr_equal(pmap_get(m, "p"), &a);
	assert_int_equal(pmap_del_if(m, "absent", &a), 0);
	assert_int_equal(pmap_del_if(m, "p", &a), 1);
	assert_null(pmap_get(m, "p"));
	assert_int_equal(pmap_count(m), 0);
	pmap_free(m, NULL);
}

/* A value holding its own key, as a state record does. */
struct kv {
	int	 tag;
	char	*key;
	long	 n;
};

static struct kv *
kv_new(const char *key, long n)
{
	struct kv	*v = calloc(1, sizeof(*v));

	v->key = strdup(key);
	v->n = n;
	return v;
}

static void
kv_free(void *p)
{
	struct kv	*v = p;

	free(v->key);
	free(v);
}

static void
test_keyed_map_uses_the_values_keys_and_copies_none(void **state)
{
	struct pmap		*m = pmap_new_keyed(offsetof(struct kv, key));
	struct pmap_iter	 it = { 0, NULL };
	struct kv		*a = kv_new("dir/a", 1), *b = kv_new("dir/b", 2);
	const char		*key;
	void			*val;
	char			 probe[] = "dir/a";
	int			 seen = 0;

	(void)state;
	assert_null(pmap_put(m, a->key, a));
	assert_null(pmap_put(m, b->key, b));
	assert_ptr_equal(pmap_get(m, probe), a);	/* by content, not pointer */
	assert_null(pmap_get(m, "dir/c"));
	while (pmap_next(m, &it, &key, &val)) {
		/* The key handed back is the value's own string. */
		assert_ptr_equal(key, ((struct kv *)val)->key);
		seen++;
	}
	assert_int_equal(seen, 2);
	assert_int_equal(pmap_del_if(m, "dir/a", b), 0);
	assert_int_equal(pmap_del_if(m, "dir/a", a), 1);
	assert_null(pmap_get(m, "dir/a"));
	assert_ptr_equal(pmap_del(m, "dir/b"), b);
	assert_int_equal(pmap_count(m), 0);
	kv_free(a);
	kv_free(b);
	pmap_free(m, kv_free);
}

static void
test_keyed_map_replaces_a_value_and_returns_the_old(void **state)
{
	struct pmap	*m = pmap_new_keyed(offsetof(struct kv, key));
	struct kv	*a = kv_new("x", 1), *b = kv_new("x", 2);

	(void)state;
	assert_null(pmap_put(m, a->key, a));
	assert_ptr_equal(pmap_put(m, b->key, b), a);
	kv_free(a);		/* the map holds b, and b's key, only */
	assert_ptr_equal(pmap_get(m, "x"), b);
	assert_int_equal(pmap_count(m), 1);
	pmap_free(m, kv_free);	/* frees b: ASan sees no leak, no double free */
}

static void
test_keyed_map_matches_a_model_through_growth_and_deletes(void **state)
{
	struct pmap	*m = pmap_new_keyed(offsetof(struct kv, key));
	struct kv	*model[3000] = { NULL };
	char		 k[32];
	unsigned	 seed = 7;
	size_t		 n = 0;

	(void)state;
	for (int step = 0; step < 60000; step++) {
		size_t	i;

		seed = seed * 1103515245u + 12345u;
		i = (seed >> 8) % 3000;
		snprintf(k, sizeof(k), "spool/dir%zu/f%zu", i % 7, i);
		if (model[i] != NULL && (seed & 3) == 0) {
			assert_ptr_equal(pmap_del(m, k), model[i]);
			kv_free(model[i]);
			model[i] = NULL;
			n--;
		} else if (model[i] == NULL) {
			model[i] = kv_new(k, step);
			assert_null(pmap_put(m, model[i]->key, model[i]));
			n++;
		}
		if (step % 5000 == 0)
			for (size_t j = 0; j < 3000; j++) {
				snprintf(k, sizeof(k), "spool/dir%zu/f%zu", j % 7, j);
				assert_ptr_equal(pmap_get(m, k), model[j]);
			}
		assert_int_equal(pmap_count(m), n);
	}
	pmap_free(m, kv_free);
}

static void
test_a_table_of_a_big_spool_keeps_every_key(void **state)
{
	struct pmap		*m = pmap_new();
	struct pmap_iter	 it = { 0, NULL };
	char			 k[64];
	long			 i, n = 0;

	(void)state;
	/* 150,000 keys, as many as a big spool's paths: growth to 262,144
	 * slots, half deleted (long shifted runs), the rest all found. */
	for (i = 0; i < 150000; i++) {
		snprintf(k, sizeof(k), "example%%2etest/accounts/u%ld.dat", i);
		assert_null(pmap_put(m, k, (void *)(i + 1)));
	}
	for (i = 0; i < 150000; i += 7) {
		snprintf(k, sizeof(k), "example%%2etest/accounts/u%ld.dat", i);
		assert_ptr_equal(pmap_get(m, k), (void *)(i + 1));
	}
	for (i = 0; i < 150000; i += 2) {
		snprintf(k, sizeof(k), "example%%2etest/accounts/u%ld.dat", i);
		assert_ptr_equal(pmap_del(m, k), (void *)(i + 1));
	}
	while (pmap_next(m, &it, NULL, NULL))
		n++;
	assert_int_equal(n, 75000);
	assert_int_equal(pmap_count(m), 75000);
	pmap_free(m, NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_many_keys_survive_growth_and_deletes),
		cmocka_unit_test(test_put_replaces_and_returns_the_old_value),
		cmocka_unit_test(test_iteration_visits_every_entry_once),
		cmocka_unit_test(test_random_puts_and_deletes_match_a_model),
		cmocka_unit_test(test_del_if_deletes_only_the_given_value),
		cmocka_unit_test(test_a_table_of_a_big_spool_keeps_every_key),
		cmocka_unit_test(test_keyed_map_uses_the_values_keys_and_copies_none),
		cmocka_unit_test(test_keyed_map_replaces_a_value_and_returns_the_old),
		cmocka_unit_test(test_keyed_map_matches_a_model_through_growth_and_deletes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
