/*
 * admin.c: the admin states set by `hamon drain|maint|ready NAME`, which
 * override health and must survive a restart: a small JSON file written
 * atomically next to state_file, read back at start.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hamon.h"

#define ADMIN_FILE_MAX		(4 * 1024 * 1024)
#define ADMIN_FILE_VERSION	1

struct admin_entry {
	char		*name;
	enum admin_state state;
};

struct admin {
	struct admin_entry	*e;
	size_t			 n, cap;
};

struct admin *
admin_new(void)
{
	return xcalloc(1, sizeof(struct admin));
}

static void
admin_clear(struct admin *a)
{
	size_t	i;

	for (i = 0; i < a->n; i++)
		free(a->e[i].name);
	free(a->e);
	a->e = NULL;
	a->n = a->cap = 0;
}

void
admin_free(struct admin *a)
{
	if (a == NULL)
		return;
	admin_clear(a);
	free(a);
}

static ssize_t
admin_index(const struct admin *a, const char *name)
{
	size_t	i;

	for (i = 0; i < a->n; i++)
		if (strcmp(a->e[i].name, name) == 0)
			return (ssize_t)i;
	return -1;
}

enum admin_state
admin_get(const struct admin *a, const char *name)
{
	ssize_t	i = admin_index(a, name);

	return i < 0 ? ADMIN_READY : a->e[i].state;
}

int
admin_set(struct admin *a, const char *name, enum admin_state st)
{
	ssize_t	i = admin_index(a, name);

	if (i >= 0 && st == ADMIN_READY) {
		free(a->e[i].name);
		a->e[i] = a->e[--a->n];
		return 1;
	}
	if (i >= 0) {
		if (a->e[i].state == st)
			return 0;
		a->e[i].state = st;
		return 1;
	}
	if (st == ADMIN_READY)
		return 0;
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 8;
		a->e = xreallocarray(a->e, a->cap, sizeof(*a->e));
	}
	a->e[a->n].name = xstrdup(name);
	a->e[a->n].state = st;
	a->n++;
	return 1;
}

size_t
admin_count(const struct admin *a)
{
	return a->n;
}

char *
admin_path(const char *state_file)
{
	size_t	n = strlen(state_file);
	char	*p;

	if (n > 5 && strcmp(state_file + n - 5, ".json") == 0)
		xasprintf(&p, "%.*s.admin.json", (int)(n - 5), state_file);
	else
		xasprintf(&p, "%s.admin", state_file);
	return p;
}

static int
admin_read_file(const char *path, struct buf *b, char *err, size_t errlen)
{
	char	chunk[8192];
	ssize_t	n;
	int	fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		if (errno == ENOENT)
			return 1;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
		buf_add(b, chunk, (size_t)n);
		if (b->len > ADMIN_FILE_MAX) {
			snprintf(err, errlen, "%s is larger than %d bytes", path,
			    ADMIN_FILE_MAX);
			close(fd);
			return -1;
		}
	}
	if (n < 0) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* Every entry valid, or nothing taken from the file. */
static int
admin_parse(struct admin *out, const char *path, const struct jval *root,
    char *err, size_t errlen)
{
	const struct jval	*set;
	size_t			 i;
	int			 st;

	if (root->type != J_OBJ || (set = jval_get(root, "backends")) == NULL ||
	    set->type != J_OBJ) {
		snprintf(err, errlen, "%s: not an admin state file (no \"backends\" "
		    "object)", path);
		return -1;
	}
	if (jval_num(root, "version", 0) != ADMIN_FILE_VERSION) {
		snprintf(err, errlen, "%s: unknown version (this hamon reads %d)",
		    path, ADMIN_FILE_VERSION);
		return -1;
	}
	for (i = 0; i < set->n; i++) {
		if (!hamon_name_valid(set->keys[i]) || set->items[i]->type != J_STR ||
		    (st = admin_state_parse(set->items[i]->str)) < 0) {
			snprintf(err, errlen, "%s: entry %zu is not NAME: "
			    "\"drain\"|\"maint\"|\"ready\"", path, i + 1);
			return -1;
		}
		admin_set(out, set->keys[i], st);
	}
	return 0;
}

int
admin_load(struct admin *a, const char *path, char *err, size_t errlen)
{
	struct admin	 tmp = { NULL, 0, 0 };
	struct jval	*root = NULL;
	struct buf	 b;
	char		 perr[256];
	int		 r, rc = -1;

	buf_init(&b);
	if ((r = admin_read_file(path, &b, err, errlen)) != 0) {
		rc = r == 1 ? 0 : -1;
		if (r == 1)
			admin_clear(a);
		goto done;
	}
	if ((root = json_parse(b.data != NULL ? b.data : "", b.len, perr,
	    sizeof(perr))) == NULL) {
		snprintf(err, errlen, "%s: not valid JSON: %s", path, perr);
		goto done;
	}
	if (admin_parse(&tmp, path, root, err, errlen) == -1)
		goto done;
	admin_clear(a);
	*a = tmp;
	tmp.e = NULL;
	tmp.n = 0;
	rc = 0;
done:
	admin_clear(&tmp);
	jval_free(root);
	buf_free(&b);
	return rc;
}

int
admin_save(const struct admin *a, const char *path, char *err, size_t errlen)
{
	struct json	j;
	size_t		i;
	int		rc;

	json_init(&j);
	json_obj_begin(&j);
	json_kv_int(&j, "version", ADMIN_FILE_VERSION);
	json_key(&j, "backends");
	json_obj_begin(&j);
	for (i = 0; i < a->n; i++)
		json_kv_str(&j, a->e[i].name, admin_state_name(a->e[i].state));
	json_obj_end(&j);
	json_obj_end(&j);
	buf_addc(&j.b, '\n');
	rc = publish_write_file(path, j.b.data, j.b.len, err, errlen);
	json_free(&j);
	return rc;
}
