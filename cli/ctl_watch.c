// SPDX-License-Identifier: Apache-2.0
/*
 * `get -w` and `watch`: one streaming GET with ?watch=1 from a resourceVersion; each
 * newline-delimited event is printed as it arrives (a table row, or the object as JSON/YAML,
 * or its name) and flushed, so a pipe sees it at once. Bookmarks are skipped; an ERROR event
 * (410 Gone when the revision was compacted) ends the watch with the server's message.
 * --request-timeout bounds how long to watch; reaching it is a normal end.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

struct ctl_watch_state {
	struct ctl *c;
	const struct api_kind *k;
	bool header;	/* print the header before the next row */
	bool failed;
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

int ctl_watch(struct ctl *c, const struct api_kind *k, const char *name, const char *rv,
	      bool print_header)
{
	struct ctl_watch_state w = { .c = c, .k = k, .header = print_header };
	struct httpc_resp resp;
	char path[4096], fsel[1024];
	const char *ns = k->namespaced && !c->o->all_ns ? c->o->ns : NULL;
	const char *field = c->o->field_selector;
	long timeout_ms = c->o->timeout_s > 0 ? c->o->timeout_s * 1000 : 0;
	int rc;

	if (name) {
		snprintf(fsel, sizeof(fsel), "metadata.name=%s", name);
		field = fsel;
	}
	if (ctl_path(k, ns, NULL, NULL, path, sizeof(path)) ||
	    ctl_query(path, sizeof(path), "watch", "1") ||
	    ctl_query(path, sizeof(path), "resourceVersion", rv) ||
	    ctl_query(path, sizeof(path), "allowWatchBookmarks", "true") ||
	    ctl_query(path, sizeof(path), "labelSelector", c->o->selector) ||
	    ctl_query(path, sizeof(path), "fieldSelector", field)) {
		fprintf(stderr, "error: selector too long\n");
		return 1;
	}
	rc = httpc_stream(c->http, path, timeout_ms, ctl_watch_line, &w, &resp);
	if (rc == -ETIMEDOUT && timeout_ms > 0)
		return 0; /* watched as long as asked */
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
	return w.failed ? 1 : 0;
}
