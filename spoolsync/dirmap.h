/* dirmap.h: the watcher's directories, wd -> path and path -> wd (dirmap.c). */
#ifndef SPOOLSYNC_DIRMAP_H
#define SPOOLSYNC_DIRMAP_H

#include <stddef.h>
#include <stdint.h>

/* A watched directory. */
struct wdir {
	int		 wd;
	char		*rel;
	uint64_t	 gen;		/* the last walk that saw it */
	struct wdir	*wd_next;	/* hash chains */
	struct wdir	*rel_next;
};

struct dirmap {
	struct wdir	**by_wd;
	struct wdir	**by_rel;
	size_t		  nbuckets;	/* a power of two */
	size_t		  n;
};

void		 dirmap_init(struct dirmap *);
void		 dirmap_free(struct dirmap *);
struct wdir	*dirmap_by_wd(const struct dirmap *, int wd);
struct wdir	*dirmap_by_rel(const struct dirmap *, const char *rel);
/* WD now watches REL: whatever the map said before about either yields. */
struct wdir	*dirmap_put(struct dirmap *, int wd, const char *rel);
void		 dirmap_del(struct dirmap *, struct wdir *);
/* Every directory at or beneath PREFIX into *OUT (the caller frees it). */
size_t		 dirmap_match(const struct dirmap *, const char *prefix,
		    struct wdir ***out);
/* Directories at or beneath FROM are now at or beneath TO. */
void		 dirmap_rename(struct dirmap *, const char *from, const char *to);
int		 dirmap_under(const char *rel, const char *prefix);

#endif
