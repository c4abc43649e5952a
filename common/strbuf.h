/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A growable byte buffer for building answers (lists, watch events, metrics text). A failed
 * allocation is remembered in err and later appends do nothing, so a caller checks once at
 * the end. The text is always NUL-terminated once anything was added.
 */
#ifndef SHOAL_STRBUF_H
#define SHOAL_STRBUF_H

#include <stddef.h>

struct strbuf {
	char *s;
	size_t len, cap;
	int err; /* 0 or -ENOMEM */
};

/* Makes room for at least n more bytes (and the NUL). Returns 0 or -ENOMEM. */
int strbuf_reserve(struct strbuf *b, size_t n);
int strbuf_add(struct strbuf *b, const char *s, size_t n);
int strbuf_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the text over (the caller frees it) and empties the buffer. */
char *strbuf_take(struct strbuf *b, size_t *len);
void strbuf_free(struct strbuf *b);

#endif
