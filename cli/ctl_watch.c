// SPDX-License-Identifier: Apache-2.0
/*
 * `get -w` and `watch`: one streaming GET with ?watch=1 from a resourceVersion; each
 * newline-delimited event is printed as it arrives (a table row, or the object as JSON/YAML,
 * or its name) and flushed, so a pipe sees it at once. Bookmarks are skipped; an ERROR event
 * (410 Gone when the revision was compacted) ends the watch with the server's message. When
 * the server ends a stream, the watch goes on from the last resourceVersion it saw.
 * --request-timeout bounds how long to watch; reaching it is a normal end.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

struct ctl_watch_state {
	struct ctl *c;
	const struct api_kind *k;
	bool header;	/* print the header before the next row */
	bool failed;
	char rv[32];	/* the last resourceVersion seen, to resume from */
};

static int ctl_watch_line(const char *line, size_t len, void *arg)
{
	struct ctl_watch_state *w = arg;
	struct ctl *c = w->c;
	json_error_t je;
	json_t *ev = json_loadb(line, len, 0, &je), *obj, *items;
	const char *type;

	if (!ev) {
		fprintf(stderr, "error: bad watch event from the server: %s\n", je.text);
		w->failed = true;
		return 1;
	}
	type = json_string_value(json_object_get(ev, "type"));
	obj = json_object_get(ev, "object");
	if (!type || !json_is_object(obj)) {
		fprintf(stderr, "error: watch event without type or object\n");
		w->failed = true;
		json_decref(ev);
		return 1;
	}
	{
		const char *orv =
			json_string_value(json_object_get(json_object_get(obj, "metadata"),
							  "resourceVersion"));
		if (orv && strcmp(type, "ERROR") != 0)
			snprintf(w->rv, sizeof(w->rv), "%s", orv);
	}
	if (strcmp(type, "BOOKMARK") == 0) {
		json_decref(ev);
		return 0;
	}
	if (strcmp(type, "ERROR") == 0) {
		json_int_t code = json_integer_value(json_object_get(obj, "code"));
		ctl_print_server_error((long)code, obj);
		w->failed = true;
		json_decref(ev);
		return 1;
	}
	obj = ctl_with_type(w->k, obj);
	items = json_array();
	if (obj && items && !json_array_append(items, obj)) {
		ctl_print_objects_in(c->out, w->k, items, c->o->output,
				     (c->o->all_ns && w->k->namespaced ? CTL_PRINT_NS : 0) |
					     (w->header ? 0 : CTL_PRINT_NO_HEADER),
				     time(NULL), &c->table);
		w->header = false;
		fflush(c->out);
	}
	json_decref(obj);
	json_decref(items);
	json_decref(ev);
	return 0;
}

static long long ctl_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ctl_watch(struct ctl *c, const struct api_kind *k, const char *name, const char *rv,
	      bool print_header)
{
	struct ctl_watch_state w = { .c = c, .k = k, .header = print_header };
	char fsel[1024];
	const char *ns = k->namespaced && !c->o->all_ns ? c->o->ns : NULL;
	const char *field = c->o->field_selector;
	long long deadline = c->o->timeout_s > 0 ? ctl_now_ms() + c->o->timeout_s * 1000LL : 0;
	int rc = 0;

	if (name) {
		snprintf(fsel, sizeof(fsel), "metadata.name=%s", name);
		field = fsel;
	}
	snprintf(w.rv, sizeof(w.rv), "%s", rv ? rv : "");
	/* The server may end a stream (its own timeout, a restart): go on from the last
	 * revision seen, so no event is missed or repeated. */
	for (int attempt = 0;; attempt++) {
		struct httpc_resp resp;
		char path[4096];
		long timeout_ms = 0;

		if (deadline) {
			timeout_ms = (long)(deadline - ctl_now_ms());
			if (timeout_ms <= 0)
				return 0; /* watched as long as asked */
		}
		if (attempt > 0)
			usleep(200000);
		path[0] = '\0';
		if (ctl_path(k, ns, NULL, NULL, path, sizeof(path)) ||
		    ctl_query(path, sizeof(path), "watch", "1") ||
		    ctl_query(path, sizeof(path), "resourceVersion", w.rv[0] ? w.rv : NULL) ||
		    ctl_query(path, sizeof(path), "allowWatchBookmarks", "true") ||
		    ctl_query(path, sizeof(path), "labelSelector", c->o->selector) ||
		    ctl_query(path, sizeof(path), "fieldSelector", field)) {
			fprintf(stderr, "error: selector too long\n");
			return 1;
		}
		rc = httpc_stream(c->http, path, timeout_ms, ctl_watch_line, &w, &resp);
		if (rc == -ETIMEDOUT && deadline)
			return 0;
		if (rc == -ECANCELED) {
			httpc_resp_free(&resp);
			return w.failed ? 1 : 0;
		}
		if (rc) {
			fprintf(stderr, "error: watch on %s: %s\n", httpc_server(c->http),
				httpc_error(c->http));
			return 1;
		}
		if (resp.code < 200 || resp.code >= 300) {
			json_t *st = resp.body ? json_loadb(resp.body, resp.len, 0, NULL) : NULL;
			ctl_print_server_error(resp.code, st);
			json_decref(st);
			httpc_resp_free(&resp);
			return 1;
		}
		httpc_resp_free(&resp);
		if (w.failed)
			return 1;
	}
}
