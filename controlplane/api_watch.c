// SPDX-License-Identifier: Apache-2.0
/*
 * Watch streams: one chunked HTTP response per watcher, fed from the watch cache. The content
 * reader copies pending event lines; when there are none, the cache parks the watcher by
 * suspending its connection (under the cache's lock, so no wake-up is lost), and the cache
 * resumes it when events, a bookmark or its deadline are due.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "log.h"
#include "strbuf.h"

struct watch_stream {
	struct MHD_Connection *conn;
	struct wc_watcher *w;
	struct strbuf buf; /* event lines read, sent from off */
	size_t off;
};

static void park(void *arg)
{
	struct watch_stream *ws = arg;
	MHD_suspend_connection(ws->conn);
}

static void wake(void *arg)
{
	struct watch_stream *ws = arg;
	MHD_resume_connection(ws->conn);
}

static ssize_t reader(void *cls, uint64_t pos, char *out, size_t max)
{
	struct watch_stream *ws = cls;

	(void)pos;
	if (ws->off == ws->buf.len) {
		ws->off = ws->buf.len = 0;
		ssize_t n = wc_watch_read(ws->w, &ws->buf, 256 * 1024, park, ws);
		if (n < 0)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (n == 0)
			return 0; /* parked: the connection is suspended until woken */
	}
	size_t n = ws->buf.len - ws->off < max ? ws->buf.len - ws->off : max;
	memcpy(out, ws->buf.s + ws->off, n);
	ws->off += n;
	return (ssize_t)n;
}

static void stream_free(void *cls)
{
	struct watch_stream *ws = cls;
	wc_watch_stop(ws->w);
	strbuf_free(&ws->buf);
	free(ws);
}

int api_serve_watch(struct api_req *r)
{
	const char *rv = api_query(r, "resourceVersion"), *to = api_query(r, "timeoutSeconds");
	struct wc_watch_req req = { .kind = r->kind, .ns = r->kind->namespaced ? r->ns : NULL,
				    .from_rev = -1 };
	struct selector *lsel = NULL;
	struct field_selector *fsel = NULL;
	struct watch_stream *ws;
	struct MHD_Response *resp;
	char *end;
	int ret;

	if (r->local)
		return api_respond_status(r, 400, "BadRequest",
					  "watch is served over HTTP only; in-process consumers "
					  "read the watch cache");
	if (rv && *rv && strcmp(rv, "0") != 0) {
		long long v = strtoll(rv, &end, 10);
		if (*end || v < 0)
			return api_respond_status(r, 400, "BadRequest",
						  "resourceVersion: must be a non-negative integer, "
						  "got \"%s\"",
						  rv);
		req.from_rev = v;
	}
	if (to && *to) {
		long v = strtol(to, &end, 10);
		if (*end || v < 0)
			return api_respond_status(r, 400, "BadRequest",
						  "timeoutSeconds: must be a non-negative integer");
		req.timeout_s = (int)v;
	}
	if (api_parse_selectors(r, &lsel, &fsel, &ret))
		return ret;
	req.lsel = lsel;
	req.fsel = fsel;
	const char *bm = api_query(r, "allowWatchBookmarks");
	req.bookmarks = bm && (strcmp(bm, "true") == 0 || strcmp(bm, "1") == 0);

	ws = calloc(1, sizeof(*ws));
	if (!ws) {
		selector_free(lsel);
		field_selector_free(fsel);
		return api_respond_status(r, 500, NULL, "out of memory");
	}
	ws->conn = r->conn;
	req.wake = wake;
	req.arg = ws;
	ws->w = wc_watch_start(r->srv->wc, &req);
	if (!ws->w) {
		int e = errno;
		free(ws);
		if (e == ECOMPACTED)
			return api_respond_status(r, 410, "Expired",
						  "too old resource version: %s (%lld)", rv,
						  (long long)wc_revision(r->srv->wc));
		return api_respond_status(r, 500, NULL, "watch: %s", shoal_strerror(e));
	}
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, reader, ws,
						 stream_free);
	if (!resp) {
		stream_free(ws);
		return MHD_NO;
	}
	if (MHD_add_response_header(resp, "Content-Type", "application/json") != MHD_YES)
		log_warn("watch: cannot add Content-Type");
	r->code = 200;
	ret = MHD_queue_response(r->conn, 200, resp);
	MHD_destroy_response(resp);
	return ret;
}
