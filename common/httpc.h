/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP client for shoal's API, on libcurl: shoalctl, the agent and federation use it.
 *
 * A client talks to one server, named as "http://HOST:PORT", "https://HOST:PORT" or
 * "unix:/PATH" (HTTP over a unix socket). The one design choice: a client object owns one CURL
 * easy handle and reuses it, so consecutive requests reuse the open connection; it is
 * therefore NOT thread-safe. Give each thread its own client.
 *
 * Requests return 0 once a response arrived (whatever its status code; look at resp->code) or
 * a negative errno when none did: -ECONNREFUSED (nothing listens, or the socket file is
 * missing), -ETIMEDOUT, -EHOSTUNREACH, -EPROTO (TLS or protocol), -ECANCELED (a stream
 * callback asked to stop), -ENOMEM. httpc_error() then tells what curl said.
 */
#ifndef SHOAL_HTTPC_H
#define SHOAL_HTTPC_H

#include <stdbool.h>
#include <stddef.h>

struct httpc;

struct httpc_resp {
	long code;	/* HTTP status */
	char *body;	/* NUL-terminated, may hold NULs before; NULL when empty */
	size_t len;
	char **headers; /* "Name: value" lines of the final response, NULL-terminated */
	size_t nheaders;
};

/* A client for server (see above) sending token as a bearer token when it is not NULL or
 * empty. Returns NULL with errno EINVAL for a server it cannot parse, ENOMEM otherwise. */
struct httpc *httpc_new(const char *server, const char *token);
void httpc_free(struct httpc *c);

/* Total time a request may take, in milliseconds (default 30 s; 0: no limit). The connect
 * phase is always limited to 10 s. */
void httpc_set_timeout(struct httpc *c, long timeout_ms);
/* TLS: a CA bundle to verify the server with, and/or no verification at all. */
void httpc_set_tls(struct httpc *c, const char *ca_file, bool insecure);
/* The server as given to httpc_new(). */
const char *httpc_server(const struct httpc *c);
/* What went wrong in the last failed call, for messages. */
const char *httpc_error(const struct httpc *c);

/* Sends METHOD path (with its query string) with body (may be NULL) of content_type (default
 * application/json when a body is given). resp is filled on success and must be released
 * with httpc_resp_free(). */
int httpc_request(struct httpc *c, const char *method, const char *path, const char *body,
		  size_t body_len, const char *content_type, struct httpc_resp *resp);

/*
 * A streaming GET, as for `?watch=1`: on a 2xx response, calls line_cb once per complete
 * newline-terminated line of the body (the newline removed, empty lines skipped); a non-zero
 * return from the callback ends the stream and the call returns -ECANCELED. On any other
 * status the body is collected into resp instead. timeout_ms bounds the whole stream (0: until
 * the server ends it). Returns 0 when the server ended the stream.
 */
typedef int (*httpc_line_cb)(const char *line, size_t len, void *arg);
int httpc_stream(struct httpc *c, const char *path, long timeout_ms, httpc_line_cb line_cb,
		 void *arg, struct httpc_resp *resp);

/* Ends the request in flight on c (from any thread): its call returns -ECANCELED soon, and
 * so does every later call on c. For stopping a thread blocked in a watch stream. */
void httpc_abort(struct httpc *c);

/* The value of the first header called name (case-insensitive), or NULL. */
const char *httpc_resp_header(const struct httpc_resp *resp, const char *name);
void httpc_resp_free(struct httpc_resp *resp);

/* Percent-encodes s for a query string value; malloc'd, NULL on ENOMEM. */
char *httpc_escape(const char *s);

#endif
