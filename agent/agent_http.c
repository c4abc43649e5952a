// SPDX-License-Identifier: Apache-2.0
/*
 * The agent's HTTP endpoint (--listen, written to the Node as the annotation
 * shoal.io/agent-endpoint so that shoalctl finds it):
 *
 *   GET /healthz, /readyz                 liveness; readiness (registered, pods listed, data
 *                                         plane synced)
 *   GET /metrics                          Prometheus text: agent, informer and dpsync figures
 *   GET /dp                               what the node's data plane holds (`shoalctl dp`)
 *   GET /pods/NS/NAME/log?container=C&follow=1&previous=1
 *                                         a container's log (`shoalctl logs`), followed until
 *                                         the container ends or the client goes
 *
 * libmicrohttpd with a thread per connection: a followed log blocks its own thread in the
 * content callback (checking every 200 ms for new bytes, the container's end, the client's
 * hang-up and the agent's stop), which is the simplest correct way to stream a file, and
 * an agent serves a handful of such clients at most.
 *
 * Authorization: when the agent itself talks to the API with a token, its endpoint (but
 * /healthz and /readyz) demands a bearer token too, and asks the API whether that token may
 * read the object in question (the pod for logs, the Node otherwise), caching the answer for
 * a minute. The API stays the one place that knows users.
 */
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent_int.h"
#include "hashmap.h"
#include "log.h"
#include "net_listen.h"
#include "strbuf.h"

#define AUTH_CACHE_S   60
#define FOLLOW_POLL_MS 200

struct agent_http {
	struct agent *a;
	struct MHD_Daemon *d;
	char *unix_path;
	atomic_bool stopping;
	pthread_mutex_t mu;
	struct hashmap *auth_ok; /* "token\npath" -> expiry (monotonic seconds, boxed) */
};

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned code, const char *ctype,
			       char *body, size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", ctype);
	enum MHD_Result ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result respond_text(struct MHD_Connection *conn, unsigned code, const char *fmt,
				    ...) __attribute__((format(printf, 3, 4)));
static enum MHD_Result respond_text(struct MHD_Connection *conn, unsigned code, const char *fmt,
				    ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return MHD_NO;
	return respond(conn, code, "text/plain; charset=utf-8", s, (size_t)n);
}

/* ---- authorization ------------------------------------------------------------------------ */

/* Empties the cache (it is small: a few clients, a minute each). h->mu held. */
static void auth_cache_clear(struct agent_http *h)
{
	size_t it = 0;
	const char *k;
	void *v;
	while (hashmap_next(h->auth_ok, &it, &k, &v))
		free(v);
	hashmap_free(h->auth_ok);
	h->auth_ok = hashmap_new(64);
}

/* Whether the request's bearer token may GET api_path from the API. */
static bool authorized(struct agent_http *h, struct MHD_Connection *conn, const char *api_path)
{
	struct agent *a = h->a;
	const char *auth, *token;
	char key[2048];
	int64_t now = agent_mono_s();

	if (!a->cfg->token)
		return true;
	auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
	if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
		return false;
	token = auth + 7;
	snprintf(key, sizeof(key), "%s\n%s", token, api_path);
	pthread_mutex_lock(&h->mu);
	int64_t *exp = hashmap_get(h->auth_ok, key);
	bool ok = exp && *exp > now;
	pthread_mutex_unlock(&h->mu);
	if (ok)
		return true;

	struct httpc *c = httpc_new(a->cfg->server, token);
	struct httpc_resp r;
	if (!c)
		return false;
	if (a->cfg->ca_file || a->cfg->insecure)
		httpc_set_tls(c, a->cfg->ca_file, a->cfg->insecure);
	httpc_set_timeout(c, 5000);
	if (httpc_request(c, "GET", api_path, NULL, 0, NULL, &r) == 0) {
		ok = r.code == 200;
		httpc_resp_free(&r);
	} else {
		log_warn("node %s: cannot check a client's token with the API: %s", a->cfg->node,
			 httpc_error(c));
	}
	httpc_free(c);
	if (!ok)
		return false;
	pthread_mutex_lock(&h->mu);
	int64_t *box = malloc(sizeof(*box)), *old = NULL;
	if (box) {
		*box = now + AUTH_CACHE_S;
		if (hashmap_count(h->auth_ok) > 1024)
			auth_cache_clear(h);
		if (!h->auth_ok || hashmap_put(h->auth_ok, key, box, (void **)&old))
			free(box);
		free(old);
	}
	pthread_mutex_unlock(&h->mu);
	return true;
}

/* ---- logs ---------------------------------------------------------------------------------- */

struct log_stream {
	struct agent_http *h;
	int fd;
	bool follow;
	char *path;
	char *ns, *pod, *container;
	int conn_fd;
	ino_t ino;
};

static void log_stream_free(void *cls)
{
	struct log_stream *s = cls;
	if (s->fd >= 0)
		close(s->fd);
	free(s->path);
	free(s->ns);
	free(s->pod);
	free(s->container);
	free(s);
}

/* Whether the followed container still runs (its pod is known and its state is running). */
static bool container_running(struct log_stream *s)
{
	struct agent *a = s->h->a;
	char uid[128] = "";
	size_t it = 0;
	const char *k;
	void *v;

	pthread_mutex_lock(&a->mu);
	while (hashmap_next(a->pods, &it, &k, &v)) {
		struct agent_pod *p = v;
		if (p->ns && p->name && !strcmp(p->ns, s->ns) && !strcmp(p->name, s->pod) &&
		    p->in_runtime)
			snprintf(uid, sizeof(uid), "%s", k);
	}
	pthread_mutex_unlock(&a->mu);
	if (!uid[0])
		return false;
	json_t *st = a->rt_ops->pod_status(a->rt, uid);
	bool running = false;
	size_t i;
	json_t *cs;
	json_array_foreach (json_object_get(st, "containerStatuses"), i, cs) {
		const char *n = json_string_value(json_object_get(cs, "name"));
		if (s->container[0] ? (n && !strcmp(n, s->container)) : i == 0)
			running = json_object_get(json_object_get(cs, "state"), "running") != NULL;
	}
	json_decref(st);
	return running;
}

static bool client_gone(const struct log_stream *s)
{
	struct pollfd p = { .fd = s->conn_fd, .events = POLLRDHUP };
	if (s->conn_fd < 0)
		return false;
	return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static ssize_t log_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct log_stream *s = cls;
	(void)pos;

	for (;;) {
		ssize_t n = read(s->fd, buf, max);
		if (n > 0)
			return n;
		if (n < 0 && errno != EINTR)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		if (n < 0)
			continue;
		if (!s->follow || atomic_load(&s->h->stopping))
			return MHD_CONTENT_READER_END_OF_STREAM;
		/* At the end of the file: wait for more while the container runs. */
		struct stat st;
		bool replaced = stat(s->path, &st) == 0 && st.st_ino != s->ino;
		if (replaced || !container_running(s)) {
			n = read(s->fd, buf, max); /* what came before the end */
			return n > 0 ? n : MHD_CONTENT_READER_END_OF_STREAM;
		}
		if (client_gone(s))
			return MHD_CONTENT_READER_END_WITH_ERROR;
		struct timespec ts = { 0, FOLLOW_POLL_MS * 1000000L };
		nanosleep(&ts, NULL);
	}
}

static enum MHD_Result serve_log(struct agent_http *h, struct MHD_Connection *conn,
				 const char *rest)
{
	struct agent *a = h->a;
	char ns[256], pod[256], tail[16], apipath[700];
	const char *q;

	/* rest: "NS/NAME/log" */
	if (sscanf(rest, "%255[^/]/%255[^/]/%15s", ns, pod, tail) != 3 || strcmp(tail, "log"))
		return respond_text(conn, 404, "not found: want /pods/NAMESPACE/NAME/log\n");
	snprintf(apipath, sizeof(apipath), "/api/v1/namespaces/%s/pods/%s", ns, pod);
	if (!authorized(h, conn, apipath))
		return respond_text(
			conn, 401,
			"Unauthorized: a bearer token that may read pod %s/%s is needed\n", ns,
			pod);
	const char *container =
		MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "container");
	q = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "follow");
	bool follow = q && (!strcmp(q, "1") || !strcmp(q, "true"));
	q = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "previous");
	bool previous = q && (!strcmp(q, "1") || !strcmp(q, "true"));

	char *path = a->rt_ops->log_path(a->rt, ns, pod, container ? container : "", previous);
	if (!path) {
		int err = errno;
		if (err == ENOENT)
			return respond_text(conn, 404,
					    "no log of pod %s/%s%s%s%s on node %s (the pod, the "
					    "container%s is not here)\n",
					    ns, pod, container ? " container " : "",
					    container ? container : "",
					    previous ? " (previous)" : "", a->cfg->node,
					    previous ? " or its previous run" : "");
		return respond_text(conn, err == EINVAL ? 400 : 500, "log of pod %s/%s: %s\n", ns,
				    pod, strerror(err));
	}
	struct log_stream *s = calloc(1, sizeof(*s));
	if (!s) {
		free(path);
		return MHD_NO;
	}
	s->h = h;
	s->path = path;
	s->follow = follow && !previous;
	s->ns = strdup(ns);
	s->pod = strdup(pod);
	s->container = strdup(container ? container : "");
	s->fd = open(path, O_RDONLY | O_CLOEXEC);
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	s->conn_fd = ci ? ci->connect_fd : -1;
	struct stat st;
	if (s->fd < 0 || fstat(s->fd, &st) || !s->ns || !s->pod || !s->container) {
		int err = errno;
		log_stream_free(s);
		return respond_text(conn, 500, "open the log: %s\n", strerror(err));
	}
	s->ino = st.st_ino;
	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024,
								   log_read, s, log_stream_free);
	if (!r) {
		log_stream_free(s);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
	enum MHD_Result ret = MHD_queue_response(conn, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---- dispatch ------------------------------------------------------------------------------ */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **state)
{
	struct agent_http *h = cls;
	struct agent *a = h->a;
	char nodepath[400];
	(void)version;
	(void)upload;

	if (!*state) { /* first call: headers only */
		*state = h;
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0; /* no endpoint takes a body; drop it */
		return MHD_YES;
	}
	a->n.http_requests++;
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return respond_text(conn, 405, "method %s not allowed\n", method);
	if (!strcmp(url, "/healthz"))
		return respond_text(conn, 200, "ok\n");
	if (!strcmp(url, "/readyz")) {
		if (agent_ready(a))
			return respond_text(conn, 200, "ok\n");
		pthread_mutex_lock(&a->mu);
		bool reg = a->registered, synced = a->pods_synced;
		pthread_mutex_unlock(&a->mu);
		return respond_text(conn, 503, "not ready:%s%s%s\n", reg ? "" : " not registered;",
				    synced ? "" : " pods not listed;",
				    a->dp && !dpsync_ready(a->dp) ? " data plane syncing" : "");
	}
	snprintf(nodepath, sizeof(nodepath), "/api/v1/nodes/%s", a->cfg->node);
	if (!strcmp(url, "/metrics")) {
		if (!authorized(h, conn, nodepath))
			return respond_text(conn, 401, "Unauthorized\n");
		struct strbuf b = { 0 };
		if (agent_metrics(a, &b)) {
			strbuf_free(&b);
			return respond_text(conn, 500, "out of memory\n");
		}
		size_t len;
		char *s = strbuf_take(&b, &len);
		return respond(conn, 200, "text/plain; version=0.0.4", s ? s : strdup(""),
			       s ? len : 0);
	}
	if (!strcmp(url, "/dp")) {
		if (!authorized(h, conn, nodepath))
			return respond_text(conn, 401, "Unauthorized\n");
		if (!a->dp)
			return respond_text(conn, 404,
					    "node %s runs without a data plane (--proxy none)\n",
					    a->cfg->node);
		struct strbuf b = { 0 };
		int err = dpsync_describe(a->dp, &b);
		if (err) {
			strbuf_free(&b);
			return respond_text(conn, 500, "describe the data plane: %s\n",
					    strerror(-err));
		}
		size_t len;
		char *s = strbuf_take(&b, &len);
		return respond(conn, 200, "text/plain; charset=utf-8", s ? s : strdup(""),
			       s ? len : 0);
	}
	if (!strncmp(url, "/pods/", 6))
		return serve_log(h, conn, url + 6);
	return respond_text(conn, 404, "not found: %s\n", url);
}

int agent_http_start(struct agent *a)
{
	char err[512];
	struct agent_http *h;
	int fd;

	if (!a->cfg->listen)
		return 0;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->a = a;
	pthread_mutex_init(&h->mu, NULL);
	h->auth_ok = hashmap_new(64);
	if (!h->auth_ok) {
		free(h);
		return -ENOMEM;
	}
	fd = net_listen(a->cfg->listen, err, sizeof(err));
	if (fd < 0) {
		log_error("node %s: listen: %s", a->cfg->node, err);
		hashmap_free(h->auth_ok);
		free(h);
		return fd;
	}
	if (!strncmp(a->cfg->listen, "unix:", 5))
		h->unix_path = strdup(a->cfg->listen + 5);
	h->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
					MHD_USE_POLL | MHD_USE_ERROR_LOG,
				0, NULL, NULL, on_request, h, MHD_OPTION_LISTEN_SOCKET, fd,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_END);
	if (!h->d) {
		log_error("node %s: cannot start the HTTP endpoint on %s", a->cfg->node,
			  a->cfg->listen);
		close(fd);
		if (h->unix_path)
			unlink(h->unix_path);
		free(h->unix_path);
		hashmap_free(h->auth_ok);
		free(h);
		return -EIO;
	}
	a->http = h;
	log_info("node %s: serving on %s", a->cfg->node, a->cfg->listen);
	return 0;
}

void agent_http_stop(struct agent *a)
{
	struct agent_http *h = a->http;
	if (!h)
		return;
	atomic_store(&h->stopping, true);
	MHD_stop_daemon(h->d);
	if (h->unix_path && unlink(h->unix_path) && errno != ENOENT)
		log_warn("remove %s: %s", h->unix_path, strerror(errno));
	free(h->unix_path);
	auth_cache_clear(h);
	hashmap_free(h->auth_ok);
	pthread_mutex_destroy(&h->mu);
	free(h);
	a->http = NULL;
}
