// SPDX-License-Identifier: Apache-2.0
/*
 * The HTTP side of shoald's API: libmicrohttpd daemons (one per listen address, each an epoll
 * thread pool), request bodies with their limits, routing of Kubernetes paths onto the kind
 * registry, authentication, discovery, health, and JSON Status answers. The design choice to
 * know: no request ever blocks an HTTP thread. A write suspends its connection until the
 * store's group commit calls back; a watch suspends while it has nothing to send.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "api_internal.h"
#include "ctrl.h"
#include "event_recorder.h"
#include "log.h"
#include "fed.h"
#include "sched_runner.h"

#define SHOAL_VERSION "0.1.0"

static const char *reason_for(int code)
{
	switch (code) {
	case 400:
		return "BadRequest";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "NotFound";
	case 405:
		return "MethodNotAllowed";
	case 409:
		return "Conflict";
	case 410:
		return "Expired";
	case 413:
		return "RequestEntityTooLarge";
	case 415:
		return "UnsupportedMediaType";
	case 422:
		return "Invalid";
	case 503:
		return "ServiceUnavailable";
	default:
		return code >= 500 ? "InternalError" : "BadRequest";
	}
}

const char *api_query(struct api_req *r, const char *name)
{
	if (r->local)
		return api_local_query(r->local, name);
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *api_header(struct api_req *r, const char *name)
{
	if (r->local)
		return api_local_header(r->local, name);
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

void api_req_suspend(struct api_req *r)
{
	if (!r->local) {
		atomic_fetch_add(&r->srv->suspended, 1);
		MHD_suspend_connection(r->conn);
	}
}

void api_req_resume(struct api_req *r, int state)
{
	if (r->local) {
		api_local_resume(r, state);
		return;
	}
	atomic_store(&r->state, state);
	atomic_fetch_sub(&r->srv->suspended, 1);
	MHD_resume_connection(r->conn);
}

static int respond(struct api_req *r, int code, char *body, size_t len, bool take)
{
	struct MHD_Response *resp;
	int ret;

	if (r->local) {
		r->code = code;
		return api_local_respond(r->local, code, body, len, take);
	}
	resp = MHD_create_response_from_buffer(len, body,
					       take ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
	if (!resp) {
		if (take)
			free(body);
		return MHD_NO;
	}
	if (MHD_add_response_header(resp, "Content-Type", "application/json") != MHD_YES)
		log_warn("cannot add Content-Type header");
	if (r->unknown && json_array_size(r->unknown)) {
		char warn[1024];
		size_t n = 0, i;
		json_t *v;
		n += snprintf(warn + n, sizeof(warn) - n, "299 - \"unknown field");
		json_array_foreach(r->unknown, i, v)
		{
			if (n < sizeof(warn) - 64)
				n += snprintf(warn + n, sizeof(warn) - n, "%s \\\"%s\\\"",
					      i ? "," : "", json_string_value(v));
		}
		snprintf(warn + n, sizeof(warn) - n, "\"");
		if (MHD_add_response_header(resp, "Warning", warn) != MHD_YES)
			log_warn("cannot add Warning header");
	}
	r->code = code;
	ret = MHD_queue_response(r->conn, code, resp);
	MHD_destroy_response(resp);
	return ret;
}

int api_respond_json(struct api_req *r, int code, const char *body, size_t len)
{
	return respond(r, code, (char *)body, len, false);
}

int api_respond_json_take(struct api_req *r, int code, char *body, size_t len)
{
	return respond(r, code, body, len, true);
}

int api_respond_status(struct api_req *r, int code, const char *reason, const char *fmt, ...)
{
	char msg[4096];
	va_list ap;
	json_t *st;
	char *s;
	int ret;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	st = json_pack("{s:s, s:s, s:{}, s:s, s:s, s:s, s:i}", "kind", "Status", "apiVersion", "v1",
		       "metadata", "status", code < 400 ? "Success" : "Failure", "message", msg,
		       "reason", reason ? reason : reason_for(code), "code", code);
	if (st && r->kind && r->has_name) {
		json_t *details = json_pack("{s:s, s:s, s:s}", "name", r->name, "group",
					    r->kind->group, "kind", r->kind->resource);
		if (details && json_object_set_new(st, "details", details))
			log_warn("status details: out of memory");
	}
	s = st ? json_dumps(st, JSON_COMPACT) : NULL;
	json_decref(st);
	if (!s)
		return MHD_NO;
	ret = api_respond_json(r, code, s, strlen(s));
	free(s);
	return ret;
}

/* ---- routing ---------------------------------------------------------------------------- */

static int split_path(char *path, char **segs, int max)
{
	int n = 0;
	char *save = NULL;
	for (char *t = strtok_r(path, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
		if (n == max)
			return -1;
		segs[n++] = t;
	}
	return n;
}

static int copy_seg(char *dst, size_t len, const char *src)
{
	if (strlen(src) >= len)
		return -ENAMETOOLONG;
	strcpy(dst, src);
	return 0;
}

int api_route(struct api_req *r, const char *url, bool *discovery)
{
	char path[1024], *segs[10];
	const char *group, *version;
	int n, i;

	*discovery = false;
	if (strlen(url) >= sizeof(path))
		return -ENOENT;
	strcpy(path, url);
	n = split_path(path, segs, 10);
	if (n < 1)
		return -ENOENT;
	if (strcmp(segs[0], "api") == 0) {
		if (n < 2) {
			*discovery = true;
			return 0;
		}
		group = "";
		version = segs[1];
		i = 2;
	} else if (strcmp(segs[0], "apis") == 0) {
		if (n < 3) {
			*discovery = true;
			return 0;
		}
		group = segs[1];
		version = segs[2];
		i = 3;
	} else {
		return -ENOENT;
	}
	if (n == i) {
		*discovery = true;
		return 0;
	}
	int rest = n - i;
	char **s = segs + i;
	/* namespaces/NS/RESOURCE[/NAME[/SUB]] when RESOURCE is a namespaced kind. */
	if (rest >= 3 && strcmp(s[0], "namespaces") == 0) {
		const struct api_kind *k = api_kind_by_resource(group, version, s[2]);
		if (k && k->namespaced) {
			if (rest > 5 || copy_seg(r->ns, sizeof(r->ns), s[1]))
				return -ENOENT;
			r->kind = k;
			if (rest >= 4) {
				if (copy_seg(r->name, sizeof(r->name), s[3]))
					return -ENAMETOOLONG;
				r->has_name = true;
			}
			if (rest == 5 && copy_seg(r->sub, sizeof(r->sub), s[4]))
				return -ENOENT;
			return 0;
		}
	}
	/* RESOURCE[/NAME[/SUB]]: a cluster-scoped kind, or a namespaced kind across namespaces. */
	const struct api_kind *k = api_kind_by_resource(group, version, s[0]);
	if (!k || rest > 3 || (k->namespaced && rest > 1))
		return -ENOENT;
	r->kind = k;
	if (rest >= 2) {
		if (copy_seg(r->name, sizeof(r->name), s[1]))
			return -ENAMETOOLONG;
		r->has_name = true;
	}
	if (rest == 3 && copy_seg(r->sub, sizeof(r->sub), s[2]))
		return -ENOENT;
	return 0;
}

/* APIVersions, APIGroupList and APIResourceList, from the registry. */
static int serve_discovery(struct api_req *r, const char *url)
{
	char path[512], *segs[4];
	json_t *out = NULL;
	int n;

	snprintf(path, sizeof(path), "%s", url);
	n = split_path(path, segs, 4);
	if (n == 1 && strcmp(segs[0], "api") == 0) {
		out = json_pack("{s:s, s:[s]}", "kind", "APIVersions", "versions", "v1");
	} else if (n == 1) {
		json_t *groups = json_array();
		for (const struct api_kind *k = api_kinds; k->kind; k++) {
			if (!*k->group)
				continue;
			bool seen = false;
			size_t i;
			json_t *g;
			json_array_foreach(groups, i, g)
			{
				if (strcmp(json_string_value(json_object_get(g, "name")), k->group) == 0)
					seen = true;
			}
			if (seen)
				continue;
			char gv[128];
			snprintf(gv, sizeof(gv), "%s/%s", k->group, k->version);
			json_array_append_new(groups,
					      json_pack("{s:s, s:[{s:s, s:s}], s:{s:s, s:s}}", "name",
							k->group, "versions", "groupVersion", gv,
							"version", k->version, "preferredVersion",
							"groupVersion", gv, "version", k->version));
		}
		out = json_pack("{s:s, s:s, s:o}", "kind", "APIGroupList", "apiVersion", "v1", "groups",
				groups);
	} else {
		const char *group = n == 2 ? "" : segs[1], *version = n == 2 ? segs[1] : segs[2];
		json_t *res = json_array();
		char gv[128];
		for (const struct api_kind *k = api_kinds; k->kind; k++) {
			if (strcmp(k->group, group) != 0 || strcmp(k->version, version) != 0)
				continue;
			json_t *sn = json_array();
			for (int i = 0; i < 4 && k->short_names[i]; i++)
				json_array_append_new(sn, json_string(k->short_names[i]));
			json_array_append_new(
				res, json_pack("{s:s, s:s, s:b, s:s, s:o, s:[s,s,s,s,s,s,s]}", "name",
					       k->resource, "singularName", k->singular, "namespaced",
					       k->namespaced, "kind", k->kind, "shortNames", sn, "verbs",
					       "create", "delete", "get", "list", "patch", "update",
					       "watch"));
			if (k->has_status)
				json_array_append_new(res,
						      json_pack("{s:s+, s:b, s:s, s:[s,s,s]}", "name",
								k->resource, "/status", "namespaced",
								k->namespaced, "kind", k->kind, "verbs",
								"get", "patch", "update"));
		}
		snprintf(gv, sizeof(gv), "%s%s%s", group, *group ? "/" : "", version);
		out = json_pack("{s:s, s:s, s:s, s:o}", "kind", "APIResourceList", "apiVersion", "v1",
				"groupVersion", gv, "resources", res);
	}
	char *s = out ? json_dumps(out, JSON_COMPACT) : NULL;
	json_decref(out);
	if (!s)
		return api_respond_status(r, 500, NULL, "out of memory");
	int ret = api_respond_json(r, 200, s, strlen(s));
	free(s);
	return ret;
}

static int serve_text(struct api_req *r, int code, const char *text, const char *ctype)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), (void *)text,
								    MHD_RESPMEM_MUST_COPY);
	int ret;
	if (!resp)
		return MHD_NO;
	if (MHD_add_response_header(resp, "Content-Type", ctype) != MHD_YES)
		log_warn("cannot add Content-Type header");
	r->code = code;
	ret = MHD_queue_response(r->conn, code, resp);
	MHD_destroy_response(resp);
	return ret;
}

static int serve_plain_paths(struct api_req *r, const char *url, bool *served)
{
	*served = true;
	if (strcmp(url, "/healthz") == 0 || strcmp(url, "/livez") == 0)
		return serve_text(r, 200, "ok", "text/plain");
	if (strcmp(url, "/readyz") == 0) {
		if (atomic_load(&r->srv->stopping))
			return serve_text(r, 503, "shutting down", "text/plain");
		return serve_text(r, 200, "ok", "text/plain");
	}
	if (strcmp(url, "/version") == 0)
		return serve_text(r, 200,
				  "{\"major\":\"1\",\"minor\":\"29\",\"gitVersion\":\"v" SHOAL_VERSION
				  "-shoal\",\"platform\":\"linux\"}",
				  "application/json");
	if (strcmp(url, "/metrics") == 0) {
		size_t len;
		char *text = api_metrics_render(r->srv, &len);
		if (!text)
			return api_respond_status(r, 500, NULL, "out of memory");
		int ret = serve_text(r, 200, text, "text/plain; version=0.0.4");
		free(text);
		return ret;
	}
	*served = false;
	return MHD_YES;
}

/* ---- the request life cycle ------------------------------------------------------------- */

static bool method_is(const struct api_req *r, const char *m)
{
	return strcmp(r->method, m) == 0;
}

static int start_request(struct api_req *r)
{
	const char *url = r->url;
	bool discovery = false, served;
	int err, ret;

	ret = serve_plain_paths(r, url, &served);
	if (served)
		return ret;

	err = auth_authenticate(r->srv->auth,
				MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
							    "Authorization"),
				&r->user);
	if (err)
		return api_respond_status(r, 401, "Unauthorized", "Unauthorized");

	err = api_route(r, url, &discovery);
	if (err == -ENAMETOOLONG)
		return api_respond_status(r, 422, "Invalid",
					  "metadata.name: Invalid value: must be no more than 253 "
					  "characters");
	if (err)
		return api_respond_status(r, 404, "NotFound", "the server could not find the "
							      "requested resource (%s)",
					  url);
	if (discovery)
		return serve_discovery(r, url);
	return api_handle(r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct api_server *srv = cls;
	struct api_req *r = *con_cls;

	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		r->srv = srv;
		r->http11 = strcmp(version, MHD_HTTP_VERSION_1_1) == 0;
		r->conn = conn;
		r->method = method;
		r->url = strdup(url);
		r->code = 200;
		clock_gettime(CLOCK_MONOTONIC, &r->start);
		*con_cls = r;
		atomic_fetch_add(&srv->inflight, 1);
		if (!r->url)
			return MHD_NO;
		const char *cl =
			MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
		/* An oversized body is read and dropped, then answered 413: answering before the
		 * client has sent it makes many clients see a reset instead of the answer. */
		if (cl && strtoull(cl, NULL, 10) > API_MAX_BODY)
			r->body_too_large = true;
		return MHD_YES;
	}
	if (*upload_size) {
		size_t n = *upload_size;
		*upload_size = 0;
		if (r->body_too_large || r->body_len + n > API_MAX_BODY) {
			r->body_too_large = true;
			return MHD_YES; /* drain, answer at the end */
		}
		if (r->body_len + n + 1 > r->body_cap) {
			size_t cap = r->body_cap ? r->body_cap : 8192;
			while (cap < r->body_len + n + 1)
				cap *= 2;
			char *b = realloc(r->body, cap);
			if (!b)
				return MHD_NO;
			r->body = b;
			r->body_cap = cap;
		}
		memcpy(r->body + r->body_len, upload, n);
		r->body_len += n;
		r->body[r->body_len] = '\0';
		return MHD_YES;
	}
	switch (atomic_load(&r->state)) {
	case REQ_WAITING:
		return MHD_YES; /* a spurious call while suspended */
	case REQ_DONE:
		return api_finish_write(r);
	case REQ_RETRY:
		atomic_store(&r->state, REQ_NEW);
		return api_handle(r);
	default:
		break;
	}
	if (r->body_too_large)
		return api_respond_status(r, 413, NULL, "request body is larger than the limit of %u "
							"bytes",
					  API_MAX_BODY);
	(void)method_is;
	return start_request(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct api_server *srv = cls;
	struct api_req *r = *con_cls;
	struct timespec now;

	(void)conn;
	(void)toe;
	if (!r)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	double secs = (now.tv_sec - r->start.tv_sec) + (now.tv_nsec - r->start.tv_nsec) / 1e9;
	api_metrics_observe(srv->metrics, r->verb ? r->verb : "other",
			    r->kind ? r->kind->resource : "", r->code, secs);
	store_kv_clear(&r->txn_prev);
	free(r->written);
	json_decref(r->unknown);
	free(r->body);
	free(r->url);
	free(r);
	*con_cls = NULL;
	atomic_fetch_sub(&srv->inflight, 1);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	(void)cls;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	size_t n = strlen(buf);
	while (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	/* A watch client that went away is routine: its stream's end has nowhere to go. */
	if (strstr(buf, "Failed to send the footers"))
		log_debug("http: %s", buf);
	else
		log_warn("http: %s", buf);
}

/* ---- listening ---------------------------------------------------------------------------- */

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_error("listen unix:%s: path too long", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (unlink(path) && errno != ENOENT)
		log_warn("remove stale socket %s: %s", path, strerror(errno));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 1024)) {
		int err = -errno;
		log_error("listen unix:%s: %s", path, strerror(-err));
		close(fd);
		return err;
	}
	if (chmod(path, 0660))
		log_warn("chmod %s: %s", path, strerror(errno));
	return fd;
}

static int listen_tcp(const char *addr)
{
	char host[256], *port;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai = NULL;
	int fd = -1, one = 1, err;

	snprintf(host, sizeof(host), "%s", addr);
	port = strrchr(host, ':');
	if (!port) {
		log_error("listen %s: want HOST:PORT or unix:PATH", addr);
		return -EINVAL;
	}
	*port++ = '\0';
	char *h = host;
	if (*h == '[') {
		h++;
		char *e = strchr(h, ']');
		if (e)
			*e = '\0';
	}
	err = getaddrinfo(*h ? h : NULL, port, &hints, &ai);
	if (err) {
		log_error("listen %s: %s", addr, gai_strerror(err));
		return -EINVAL;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		err = -errno;
		goto out;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)))
		log_warn("SO_REUSEADDR: %s", strerror(errno));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 1024)) {
		err = -errno;
		log_error("listen %s: %s", addr, strerror(-err));
		close(fd);
		fd = -1;
		goto out;
	}
	err = fd;
out:
	freeaddrinfo(ai);
	return err;
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc(n + 1);
		if (buf && fread(buf, 1, n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		} else if (buf) {
			buf[n] = '\0';
		}
	}
	fclose(f);
	return buf;
}

static int ensure_default_namespaces(struct api_server *srv)
{
	static const char *const names[] = { "default", "kube-system", "kube-public",
					     "kube-node-lease", NULL };
	for (const char *const *n = names; *n; n++) {
		char key[128], uid[37], now[32], body[512];
		snprintf(key, sizeof(key), "/registry/namespaces/%s", *n);
		api_new_uid(uid);
		api_now(now);
		int len = snprintf(body, sizeof(body),
				   "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{"
				   "\"name\":\"%s\",\"uid\":\"%s\",\"creationTimestamp\":\"%s\"},"
				   "\"spec\":{\"finalizers\":[\"kubernetes\"]},\"status\":{\"phase\":"
				   "\"Active\"}}",
				   *n, uid, now);
		struct store_op op = { .type = STORE_PUT, .key = key, .value = body,
				       .value_len = (size_t)len, .expect_mod_rev = 0 };
		int err = store_txn(srv->st, &op, 1, NULL, NULL);
		if (err && err != -EEXIST) {
			log_error("create namespace %s: %s", *n, shoal_strerror(err));
			return err;
		}
	}
	return 0;
}

struct api_server *api_server_start(struct store *st, const struct api_server_opts *o)
{
	struct api_server *srv = calloc(1, sizeof(*srv));
	struct wc_opts wo = { .ring_events = o->watch_ring_events > 0 ? o->watch_ring_events : 0,
			      .bookmark_interval_ms = o->bookmark_interval_ms };
	char *cert = NULL, *key = NULL;
	int err = 0;

	if (!srv)
		return NULL;
	srv->st = st;
	srv->metrics = api_metrics_new();
	if (!srv->metrics) {
		err = -ENOMEM;
		goto err;
	}
	if (o->token_file) {
		srv->auth = auth_load(o->token_file);
		if (!srv->auth) {
			err = -errno;
			goto err;
		}
	}
	err = ensure_default_namespaces(srv);
	if (err)
		goto err;
	srv->alloc = alloc_open(st, o->service_cidr ? o->service_cidr : "10.96.0.0/16",
				o->node_port_min ? o->node_port_min : 30000,
				o->node_port_max ? o->node_port_max : 32767);
	if (!srv->alloc) {
		err = -errno;
		goto err;
	}
	srv->wc = wc_open(st, &wo);
	if (!srv->wc) {
		err = -errno;
		goto err;
	}
	for (; srv->nwriters < API_WATCH_WRITERS; srv->nwriters++) {
		srv->writers[srv->nwriters] = api_watch_writer_start(srv);
		if (!srv->writers[srv->nwriters]) {
			err = -errno;
			goto err;
		}
	}
	if (!!o->tls_cert != !!o->tls_key) {
		log_error("--tls-cert and --tls-key go together");
		err = -EINVAL;
		goto err;
	}
	if (o->tls_cert) {
		cert = read_file(o->tls_cert);
		key = read_file(o->tls_key);
		if (!cert || !key) {
			err = -errno ? -errno : -EINVAL;
			log_error("read TLS certificate or key (%s, %s): %s", o->tls_cert,
				  o->tls_key, strerror(-err));
			goto err;
		}
	}
	for (int i = 0; i < 4 && o->listen[i]; i++) {
		bool is_unix = strncmp(o->listen[i], "unix:", 5) == 0;
		int fd = is_unix ? listen_unix(o->listen[i] + 5) : listen_tcp(o->listen[i]);
		if (fd < 0) {
			err = fd;
			goto err;
		}
		if (is_unix)
			srv->unix_paths[i] = strdup(o->listen[i] + 5);
		unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
				 MHD_USE_ERROR_LOG;
		if (cert && !is_unix)
			flags |= MHD_USE_TLS;
		struct MHD_OptionItem opts[] = {
			{ MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, NULL },
			{ MHD_OPTION_LISTEN_SOCKET, fd, NULL },
			{ MHD_OPTION_THREAD_POOL_SIZE, o->threads > 0 ? o->threads : 2, NULL },
			{ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, srv },
			{ MHD_OPTION_CONNECTION_TIMEOUT, 0, NULL },
			{ MHD_OPTION_CONNECTION_LIMIT, 20000, NULL },
			/* Per connection: request headers and the send buffer of a response
			 * (a watch's chunks are 4 KiB); thousands of watches each hold one. */
			{ MHD_OPTION_CONNECTION_MEMORY_LIMIT, 16 * 1024, NULL },
			{ cert && !is_unix ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, cert },
			{ MHD_OPTION_HTTPS_MEM_KEY, 0, key },
			{ MHD_OPTION_END, 0, NULL },
		};
		struct MHD_Daemon *d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv,
							MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
		if (!d) {
			log_error("start HTTP server on %s failed", o->listen[i]);
			close(fd);
			err = -EADDRNOTAVAIL;
			goto err;
		}
		srv->daemons[srv->ndaemons++] = d;
		log_info("serving on %s%s", o->listen[i], cert && !is_unix ? " (TLS)" : "");
	}
	if (!o->no_scheduler || !o->no_controllers) {
		srv->events = event_recorder_new(srv, "shoald", o->event_ttl_ms);
		if (!srv->events) {
			err = -errno;
			goto err;
		}
	}
	if (!o->no_scheduler) {
		srv->sched = sched_runner_start(srv, o->scheduler_config);
		if (!srv->sched) {
			err = -errno;
			goto err;
		}
	}
	const struct ctrl_def *const *defs = o->no_controllers ? NULL : ctrl_builtin;
	const struct ctrl_def *with_fed[32];
	if (o->controllers && o->controllers->fed) {
		/* the federation controller, after the built-in ones (or alone) */
		size_t n = 0;
		for (size_t i = 0; !o->no_controllers && ctrl_builtin[i] && n < 30; i++)
			with_fed[n++] = ctrl_builtin[i];
		with_fed[n++] = &fed_controller;
		with_fed[n] = NULL;
		defs = with_fed;
	}
	if (defs) {
		srv->ctrl = ctrl_manager_start(srv, o->controllers, defs);
		if (!srv->ctrl) {
			err = -errno;
			goto err;
		}
	}
	if (!srv->ndaemons) {
		log_error("nothing to listen on: give --listen");
		err = -EINVAL;
		goto err;
	}
	if (!srv->auth)
		log_warn("no --token-file: every request is served as an administrator");
	free(cert);
	free(key);
	return srv;
err:
	free(cert);
	free(key);
	api_server_stop(srv, 0);
	errno = -err;
	return NULL;
}

void api_server_stop(struct api_server *srv, int drain_ms)
{
	if (!srv)
		return;
	atomic_store(&srv->stopping, true);
	for (int i = 0; i < srv->ndaemons; i++) {
		MHD_socket s = MHD_quiesce_daemon(srv->daemons[i]);
		if (s != MHD_INVALID_SOCKET)
			close(s);
	}
	ctrl_manager_stop(srv->ctrl);
	srv->ctrl = NULL;
	sched_runner_stop(srv->sched);
	srv->sched = NULL;
	event_recorder_free(srv->events);
	srv->events = NULL;
	/* Every watch ends: idle ones are woken (or handed back by the writer) and end their
	 * response. */
	if (srv->wc)
		wc_shutdown_watchers(srv->wc);
	for (int i = 0; i < srv->nwriters; i++)
		api_watch_writer_drain(srv->writers[i]);
	/* Drain: requests in flight (writes waiting for their commit) finish and answer. */
	int waited = 0;
	for (; waited < drain_ms && atomic_load(&srv->inflight) > 0; waited += 10) {
		struct timespec ts = { 0, 10 * 1000000L };
		nanosleep(&ts, NULL);
	}
	/* libmicrohttpd aborts the process when a daemon stops with a connection suspended: the
	 * watches just woken are given the time to be resumed, whatever drain_ms is. */
	for (waited = 0; waited < 5000 && atomic_load(&srv->suspended) > 0; waited += 10) {
		struct timespec ts = { 0, 10 * 1000000L };
		nanosleep(&ts, NULL);
	}
	if (atomic_load(&srv->suspended) > 0) {
		/* Left as they are (their threads may still use the cache): the process exits. */
		log_error("%d connections are still suspended after 5 s; the HTTP servers are left "
			  "running",
			  atomic_load(&srv->suspended));
		return;
	}
	for (int i = 0; i < srv->ndaemons; i++)
		MHD_stop_daemon(srv->daemons[i]);
	for (int i = 0; i < srv->nwriters; i++)
		api_watch_writer_stop(srv->writers[i]);
	for (int i = 0; i < 4; i++) {
		if (srv->unix_paths[i] && unlink(srv->unix_paths[i]) && errno != ENOENT)
			log_warn("remove %s: %s", srv->unix_paths[i], strerror(errno));
		free(srv->unix_paths[i]);
	}
	wc_close(srv->wc);
	alloc_free(srv->alloc);
	auth_free(srv->auth);
	api_metrics_free(srv->metrics);
	free(srv);
}
