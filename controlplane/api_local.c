// SPDX-License-Identifier: Apache-2.0
/*
 * In-process API requests (see api_local.h). The design choice to know: an in-process request
 * is an ordinary struct api_req with no MHD connection and a struct api_local beside it. The
 * few places that touch the connection (query parameters, headers, the answer, suspending
 * and resuming around a store commit) ask r->local first; everything else, including the
 * retry of a patch that lost a race, is the HTTP path's own code. Where an HTTP request's
 * connection is suspended until the commit calls back, the caller here waits on a condition
 * variable.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api_internal.h"
#include "api_local.h"
#include "log.h"

#define LOCAL_MAX_ARGS 32

struct api_local {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	char *query; /* decoded "key\0value\0" pairs */
	const char *args[LOCAL_MAX_ARGS][2];
	int nargs;
	const char *content_type;
	bool answered;
	long code;
	char *body;
	size_t len;
	bool oom;
};

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes %XX and '+' in place; returns -EINVAL for a bad escape. */
static int url_decode(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (*s == '+') {
			*o++ = ' ';
		} else if (*s == '%') {
			int h = hexval(s[1]), l = h < 0 ? -1 : hexval(s[2]);
			if (h < 0 || l < 0)
				return -EINVAL;
			*o++ = (char)(h * 16 + l);
			s += 2;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
	return 0;
}

/* Splits "a=b&c=d" into decoded pairs. */
static int parse_query(struct api_local *l, const char *q)
{
	char *save = NULL;

	l->query = strdup(q);
	if (!l->query)
		return -ENOMEM;
	for (char *t = strtok_r(l->query, "&", &save); t; t = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(t, '=');
		if (l->nargs == LOCAL_MAX_ARGS)
			return -EINVAL;
		if (eq)
			*eq++ = '\0';
		if (url_decode(t) || (eq && url_decode(eq)))
			return -EINVAL;
		l->args[l->nargs][0] = t;
		l->args[l->nargs][1] = eq ? eq : "";
		l->nargs++;
	}
	return 0;
}

const char *api_local_query(struct api_local *l, const char *name)
{
	for (int i = 0; i < l->nargs; i++)
		if (strcmp(l->args[i][0], name) == 0)
			return l->args[i][1];
	return NULL;
}

const char *api_local_header(struct api_local *l, const char *name)
{
	if (strcasecmp(name, "Content-Type") == 0)
		return l->content_type;
	return NULL;
}

int api_local_respond(struct api_local *l, int code, char *body, size_t len, bool take)
{
	char *copy = body;

	if (!take) {
		copy = malloc(len + 1);
		if (copy) {
			memcpy(copy, body, len);
			copy[len] = '\0';
		}
	}
	free(l->body);
	l->body = copy;
	l->len = copy ? len : 0;
	l->oom = !copy;
	l->code = code;
	l->answered = true;
	/* MHD_YES: the handlers pass it on as their own result. */
	return MHD_YES;
}

void api_local_resume(struct api_req *r, int state)
{
	struct api_local *l = r->local;
	pthread_mutex_lock(&l->mu);
	atomic_store(&r->state, state);
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->mu);
}

/* Runs the handler and, for a write, waits for its commit (and its retries). */
static void run(struct api_req *r)
{
	struct api_local *l = r->local;
	bool discovery = false;
	int err = api_route(r, r->url, &discovery);

	if (err == -ENAMETOOLONG) {
		api_respond_status(r, 422, "Invalid",
				   "metadata.name: Invalid value: must be no more than 253 "
				   "characters");
		return;
	}
	if (err || discovery) {
		api_respond_status(r, 404, "NotFound",
				   "the server could not find the requested resource (%s)", r->url);
		return;
	}
	api_handle(r);
	for (;;) {
		int st;
		pthread_mutex_lock(&l->mu);
		while ((st = atomic_load(&r->state)) == REQ_WAITING)
			pthread_cond_wait(&l->cond, &l->mu);
		pthread_mutex_unlock(&l->mu);
		if (st == REQ_DONE) {
			api_finish_write(r);
			return;
		}
		if (st != REQ_RETRY)
			return; /* answered without a write */
		atomic_store(&r->state, REQ_NEW);
		api_handle(r);
	}
}

int api_local_do(struct api_server *srv, const char *method, const char *path_and_query,
		 const char *body, size_t len, const char *content_type, long *code, char **resp,
		 size_t *resp_len)
{
	struct api_local l = { .content_type = content_type ? content_type
							    : "application/merge-patch+json" };
	struct api_req *r = calloc(1, sizeof(*r));
	const char *q = strchr(path_and_query, '?');
	int err = -ENOMEM;

	*code = 0;
	if (resp)
		*resp = NULL;
	if (resp_len)
		*resp_len = 0;
	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&l.mu, NULL);
	pthread_cond_init(&l.cond, NULL);
	r->srv = srv;
	r->local = &l;
	r->method = method;
	r->code = 200;
	clock_gettime(CLOCK_MONOTONIC, &r->start);
	r->url = q ? strndup(path_and_query, (size_t)(q - path_and_query)) : strdup(path_and_query);
	if (!r->url)
		goto out;
	if (q) {
		err = parse_query(&l, q + 1);
		if (err)
			goto out;
	}
	if (body) {
		r->body = malloc(len + 1);
		if (!r->body) {
			err = -ENOMEM;
			goto out;
		}
		memcpy(r->body, body, len);
		r->body[len] = '\0';
		r->body_len = len;
		r->body_cap = len + 1;
		r->body_too_large = len > API_MAX_BODY;
	}
	/* In-process requests come from shoald itself: an administrator. */
	snprintf(r->user.name, sizeof(r->user.name), "system:shoald");
	r->user.groups = AUTH_MASTERS;
	atomic_fetch_add(&srv->inflight, 1);
	if (r->body_too_large)
		api_respond_status(r, 413, NULL,
				   "request body is larger than the limit of %u bytes",
				   API_MAX_BODY);
	else
		run(r);
	atomic_fetch_sub(&srv->inflight, 1);

	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	api_metrics_observe(
		srv->metrics, r->verb ? r->verb : "other", r->kind ? r->kind->resource : "",
		r->code, (now.tv_sec - r->start.tv_sec) + (now.tv_nsec - r->start.tv_nsec) / 1e9);
	if (!l.answered || l.oom) {
		err = -ENOMEM;
		goto out;
	}
	*code = l.code;
	if (resp) {
		*resp = l.body;
		l.body = NULL;
	}
	if (resp_len)
		*resp_len = l.len;
	err = 0;
out:
	if (r) {
		store_kv_clear(&r->txn_prev);
		free(r->written);
		json_decref(r->unknown);
		free(r->body);
		free(r->url);
		free(r);
	}
	free(l.body);
	free(l.query);
	pthread_mutex_destroy(&l.mu);
	pthread_cond_destroy(&l.cond);
	return err;
}

json_t *api_local_json(struct api_server *srv, const char *method, const char *path,
		       const json_t *body, long *code)
{
	char *text = NULL, *resp = NULL;
	size_t len = 0;
	json_t *out = NULL;
	json_error_t e;

	*code = 0;
	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		if (!text)
			return NULL;
		len = strlen(text);
	}
	int err = api_local_do(srv, method, path, text, len, NULL, code, &resp, &len);
	free(text);
	if (err) {
		log_warn("in-process %s %s: %s", method, path, shoal_strerror(err));
		return NULL;
	}
	out = resp ? json_loadb(resp, len, 0, &e) : NULL;
	free(resp);
	return out;
}

const char *api_local_message(const json_t *status)
{
	const char *m = json_string_value(json_object_get(status, "message"));
	return m ? m : "";
}
