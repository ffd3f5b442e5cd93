/*
 * xmltree.c: reading the trees xmlstream.c hands to its callbacks: an
 * attribute, a child, the text, and whether two trees are the same.
 */
#include <string.h>

#include "proxyd.h"

static int
xmlstream_ns_eq(const char *a, const char *b)
{
	if (a == NULL || *a == '\0')
		return b == NULL || *b == '\0';
	return b != NULL && strcmp(a, b) == 0;
}

const char *
xmlstream_attr(const struct xml_node *n, const char *ns, const char *name)
{
	size_t	i;

	for (i = 0; i < n->nattrs; i++)
		if (strcmp(n->attrs[i].name, name) == 0 &&
		    xmlstream_ns_eq(n->attrs[i].ns, ns))
			return n->attrs[i].value;
	return NULL;
}

const struct xml_node *
xmlstream_child(const struct xml_node *n, const char *ns, const char *name)
{
	const struct xml_node	*c;

	for (c = n->child; c != NULL; c = c->next)
		if (c->type == XML_NODE_ELEM && (name == NULL ||
		    (strcmp(c->name, name) == 0 && xmlstream_ns_eq(c->ns, ns))))
			return c;
	return NULL;
}

const char *
xmlstream_text(const struct xml_node *n)
{
	const struct xml_node	*c;

	for (c = n->child; c != NULL; c = c->next)
		if (c->type == XML_NODE_TEXT)
			return c->text;
	return "";
}

static int
xmlstream_attrs_equal(const struct xml_node *a, const struct xml_node *b)
{
	size_t	i;

	if (a->nattrs != b->nattrs)
		return 0;
	for (i = 0; i < a->nattrs; i++) {
		const struct xml_attr	*x = &a->attrs[i], *y = &b->attrs[i];

		if (!xmlstream_ns_eq(x->ns, y->ns) || strcmp(x->name, y->name) != 0 ||
		    x->vlen != y->vlen || memcmp(x->value, y->value, x->vlen) != 0)
			return 0;
	}
	return 1;
}

static int
xmlstream_one_equal(const struct xml_node *a, const struct xml_node *b)
{
	const struct xml_node	*x, *y;

	if (a->type != b->type)
		return 0;
	if (a->type == XML_NODE_TEXT)
		return a->len == b->len && memcmp(a->text, b->text, a->len) == 0;
	if (!xmlstream_ns_eq(a->ns, b->ns) || strcmp(a->name, b->name) != 0 ||
	    !xmlstream_attrs_equal(a, b))
		return 0;
	for (x = a->child, y = b->child; x != NULL && y != NULL; x = x->next, y = y->next)
		if (!xmlstream_one_equal(x, y))
			return 0;
	return x == NULL && y == NULL;
}

int
xmlstream_node_equal(const struct xml_node *a, const struct xml_node *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return xmlstream_one_equal(a, b);
}
