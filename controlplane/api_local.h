/* SPDX-License-Identifier: Apache-2.0 */
/*
 * In-process API requests: what shoald's own controllers write through. A request runs the
 * very handlers an HTTP request runs (schema, defaulting, validation, generateName, uid,
 * ClusterIP and nodePort allocation, graceful deletion, merge patch, the status
 * sub-resource, resourceVersion preconditions, Status errors), as an administrator, without
 * a socket; the caller's thread blocks until the write has committed (or failed). Because
 * the watch cache holds a write before its writer is acknowledged, a get right after a
 * write sees it.
 *
 * Watches are not served this way: in-process consumers read the watch cache itself.
 */
#ifndef SHOAL_API_LOCAL_H
#define SHOAL_API_LOCAL_H

#include <jansson.h>
#include <stddef.h>

struct api_server;

/*
 * Runs one request. path_and_query is what an HTTP client would send after the host
 * ("/api/v1/namespaces/default/pods?fieldValidation=Strict"); body (len bytes) may be NULL;
 * content_type matters for PATCH (NULL: application/merge-patch+json). On an answer returns
 * 0 with *code (the HTTP status) and, when resp is not NULL, the body (malloc'd,
 * NUL-terminated; the caller frees it). Returns -ENOMEM or -EINVAL (a malformed query)
 * when no handler ran.
 */
int api_local_do(struct api_server *srv, const char *method, const char *path_and_query,
		 const char *body, size_t len, const char *content_type, long *code, char **resp,
		 size_t *resp_len);

/*
 * The same with JSON: body (may be NULL) is serialized; the answer is parsed. Returns the
 * answer (an object or a Status; NULL when it is not JSON or the request did not run, with
 * *code 0 in the latter case). PATCH is sent as a merge patch.
 */
json_t *api_local_json(struct api_server *srv, const char *method, const char *path,
		       const json_t *body, long *code);

/* The message of a Status answer ("" when there is none), for logs and conditions. */
const char *api_local_message(const json_t *status);

#endif
