/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A real shoald for integration tests: started from build/bin/shoald on a temporary state
 * directory and a unix socket (the host's network is never touched), stopped by its pid.
 * Plus a small HTTP client over that socket.
 */
#ifndef SHOAL_SHOALD_FIXTURE_H
#define SHOAL_SHOALD_FIXTURE_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

struct shoald {
	pid_t pid;
	char dir[256];
	char sock[320];
	const char *args[24]; /* extra arguments, NULL-terminated */
};

/* Starts shoald with extra (NULL-terminated, may be NULL) arguments in a new temporary
 * directory and waits until /readyz answers. Returns 0 or a negative errno. */
int shoald_start(struct shoald *s, const char *const *extra);
/* Starts it again on the same directory (after a stop or a kill). */
int shoald_restart(struct shoald *s);
/* SIGTERM and wait; returns the exit status (or -1). The directory is kept. */
int shoald_stop(struct shoald *s);
/* SIGKILL and wait. */
void shoald_kill9(struct shoald *s);
/* Stops it if running and removes the directory. */
void shoald_destroy(struct shoald *s);

struct http_resp {
	long code;
	char *body;
	size_t len;
	char warning[1024];
};

/* One request. body may be NULL; ctype defaults to application/json; token may be NULL.
 * Returns 0 (out->code holds the HTTP status) or -EIO when the server did not answer. */
int http_do(const struct shoald *s, const char *method, const char *path, const char *ctype,
	    const char *body, size_t body_len, const char *token, struct http_resp *out);
void http_resp_free(struct http_resp *r);

/* Shorthands: the answer's JSON (NULL when it is not JSON); *code gets the status. */
json_t *http_json(const struct shoald *s, const char *method, const char *path,
		  const char *body, long *code);

/* Reads a watch stream for at most ms milliseconds (the request should also carry
 * timeoutSeconds); returns the events as a JSON array. Runs in the caller's thread. */
json_t *http_watch(const struct shoald *s, const char *path, int ms, long *code);

/* The resourceVersion of an object as an integer. */
long long obj_rv(const json_t *obj);

#endif
