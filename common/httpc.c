// SPDX-License-Identifier: Apache-2.0
/*
 * HTTP client on libcurl's easy interface. Each client keeps one easy handle and resets its
 * options before every request (curl_easy_reset keeps live connections), so a sequence of
 * requests rides one keep-alive connection, over TCP or a unix socket alike.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "httpc.h"
#include "log.h"

#define HTTPC_DEFAULT_TIMEOUT_MS 30000L
#define HTTPC_CONNECT_TIMEOUT_MS 10000L
#define HTTPC_MAX_FDS 4

struct httpc {
	CURL *curl;
	char *server;
	char *base;	 /* URL prefix: "http://host:port" or "http://localhost" */
	char *unix_path; /* set for unix: servers */
	char *auth;	 /* "Authorization: Bearer ..." or NULL */
	char *ca_file;
	bool insecure;
	long timeout_ms;
	char errbuf[CURL_ERROR_SIZE];
	/* httpc_abort(): the sockets curl opened (shut down to end a blocked transfer) */
	pthread_mutex_t fd_mu;
	int fds[HTTPC_MAX_FDS];
	atomic_bool aborted;
};

static pthread_once_t httpc_once = PTHREAD_ONCE_INIT;
static CURLcode httpc_init_rc;

static void httpc_global_init(void)
{
	httpc_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct httpc *httpc_new(const char *server, const char *token)
{
	struct httpc *c;
	size_t n;

	if (!server || !*server) {
		errno = EINVAL;
		return NULL;
	}
	pthread_once(&httpc_once, httpc_global_init);
	if (httpc_init_rc != CURLE_OK) {
		errno = ENOMEM;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		goto err_nomem;
	c->timeout_ms = HTTPC_DEFAULT_TIMEOUT_MS;
	pthread_mutex_init(&c->fd_mu, NULL);
	for (int i = 0; i < HTTPC_MAX_FDS; i++)
		c->fds[i] = -1;
	c->server = strdup(server);
	if (!c->server)
		goto err_nomem;
	if (strncmp(server, "unix:", 5) == 0) {
		const char *path = server + 5;
		if (strncmp(path, "//", 2) == 0) /* unix:///run/x.sock */
			path += 2;
		if (*path == '\0')
			goto err_inval;
		c->unix_path = strdup(path);
		c->base = strdup("http://localhost");
		if (!c->unix_path || !c->base)
			goto err_nomem;
	} else if (strncmp(server, "http://", 7) == 0 || strncmp(server, "https://", 8) == 0) {
		n = strlen(server);
		while (n > 0 && server[n - 1] == '/')
			n--;
		if (n <= 8)
			goto err_inval;
		c->base = strndup(server, n);
		if (!c->base)
			goto err_nomem;
	} else {
		goto err_inval;
	}
	if (token && *token) {
		if (strpbrk(token, "\r\n"))
			goto err_inval;
		if (asprintf(&c->auth, "Authorization: Bearer %s", token) < 0) {
			c->auth = NULL;
			goto err_nomem;
		}
	}
	c->curl = curl_easy_init();
	if (!c->curl)
		goto err_nomem;
	return c;

err_inval:
	httpc_free(c);
	errno = EINVAL;
	return NULL;
err_nomem:
	httpc_free(c);
	errno = ENOMEM;
	return NULL;
}

void httpc_free(struct httpc *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	free(c->server);
	free(c->base);
	free(c->unix_path);
	free(c->auth);
	free(c->ca_file);
	pthread_mutex_destroy(&c->fd_mu);
	free(c);
}

void httpc_set_timeout(struct httpc *c, long timeout_ms)
{
	c->timeout_ms = timeout_ms < 0 ? 0 : timeout_ms;
}

void httpc_set_tls(struct httpc *c, const char *ca_file, bool insecure)
{
	free(c->ca_file);
	c->ca_file = ca_file ? strdup(ca_file) : NULL;
	c->insecure = insecure;
}

const char *httpc_server(const struct httpc *c)
{
	return c->server;
}

const char *httpc_error(const struct httpc *c)
{
	return c->errbuf;
}

/* ---- response collection ---------------------------------------------------------------- */

struct httpc_xfer {
	struct httpc *c;
	struct httpc_resp *resp;
	/* streaming */
	httpc_line_cb line_cb;
	void *arg;
	char *line;
	size_t line_len, line_cap;
	size_t body_cap;
	bool cancelled;
	bool oom;
};

static int httpc_append(char **buf, size_t *len, size_t *cap, const char *data, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t ncap = *cap ? *cap : 4096;
		char *nb;
		while (ncap < *len + n + 1)
			ncap *= 2;
		nb = realloc(*buf, ncap);
		if (!nb)
			return -ENOMEM;
		*buf = nb;
		*cap = ncap;
	}
	memcpy(*buf + *len, data, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

static size_t httpc_header_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct httpc_xfer *x = userdata;
	struct httpc_resp *r = x->resp;
	size_t n = size * nmemb, len = n;
	char **nh;

	/* A new status line starts a new header block (after 100 Continue or a redirect). */
	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		for (size_t i = 0; i < r->nheaders; i++)
			free(r->headers[i]);
		if (r->headers)
			r->headers[0] = NULL;
		r->nheaders = 0;
		return n;
	}
	while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
		len--;
	if (len == 0 || !memchr(data, ':', len))
		return n;
	nh = realloc(r->headers, (r->nheaders + 2) * sizeof(*nh));
	if (!nh) {
		x->oom = true;
		return 0;
	}
	r->headers = nh;
	r->headers[r->nheaders] = strndup(data, len);
	if (!r->headers[r->nheaders]) {
		x->oom = true;
		return 0;
	}
	r->headers[++r->nheaders] = NULL;
	return n;
}

static size_t httpc_body_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct httpc_xfer *x = userdata;
	struct httpc_resp *r = x->resp;
	size_t n = size * nmemb;
	long code = 0;

	if (x->line_cb) {
		curl_easy_getinfo(x->c->curl, CURLINFO_RESPONSE_CODE, &code);
		if (code >= 200 && code < 300) {
			size_t start = 0;
			for (size_t i = 0; i < n; i++) {
				if (data[i] != '\n')
					continue;
				if (httpc_append(&x->line, &x->line_len, &x->line_cap, data + start,
						 i - start)) {
					x->oom = true;
					return 0;
				}
				start = i + 1;
				if (x->line_len > 0 && x->line[x->line_len - 1] == '\r')
					x->line[--x->line_len] = '\0';
				if (x->line_len > 0 && x->line_cb(x->line, x->line_len, x->arg)) {
					x->cancelled = true;
					return 0;
				}
				x->line_len = 0;
			}
			if (start < n &&
			    httpc_append(&x->line, &x->line_len, &x->line_cap, data + start, n - start)) {
				x->oom = true;
				return 0;
			}
			return n;
		}
	}
	if (httpc_append(&r->body, &r->len, &x->body_cap, data, n)) {
		x->oom = true;
		return 0;
	}
	return n;
}

/* ---- requests --------------------------------------------------------------------------- */

static int httpc_map_error(CURLcode rc)
{
	switch (rc) {
	case CURLE_OK:
		return 0;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
		return -ECONNRESET;
	default:
		return -EPROTO;
	}
}

/* ---- abort -------------------------------------------------------------------------------- */

/* curl opens its sockets through here so that httpc_abort() can shut them down. */
static curl_socket_t httpc_open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct httpc *c = arg;
	int fd;

	(void)purpose;
	if (atomic_load(&c->aborted))
		return CURL_SOCKET_BAD;
	fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
	if (fd < 0)
		return CURL_SOCKET_BAD;
	pthread_mutex_lock(&c->fd_mu);
	for (int i = 0; i < HTTPC_MAX_FDS; i++) {
		if (c->fds[i] < 0) {
			c->fds[i] = fd;
			break;
		}
	}
	pthread_mutex_unlock(&c->fd_mu);
	return fd;
}

static int httpc_close_socket(void *arg, curl_socket_t fd)
{
	struct httpc *c = arg;

	pthread_mutex_lock(&c->fd_mu);
	for (int i = 0; i < HTTPC_MAX_FDS; i++)
		if (c->fds[i] == fd)
			c->fds[i] = -1;
	pthread_mutex_unlock(&c->fd_mu);
	return close(fd);
}

static int httpc_xferinfo(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			  curl_off_t ulnow)
{
	struct httpc *c = arg;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return atomic_load(&c->aborted) ? 1 : 0;
}

void httpc_abort(struct httpc *c)
{
	atomic_store(&c->aborted, true);
	pthread_mutex_lock(&c->fd_mu);
	for (int i = 0; i < HTTPC_MAX_FDS; i++)
		/* ENOTCONN: not connected yet; the transfer sees the flag at its next check. */
		if (c->fds[i] >= 0 && shutdown(c->fds[i], SHUT_RDWR) != 0 && errno != ENOTCONN)
			log_debug("httpc: shutdown of a socket: %s", strerror(errno));
	pthread_mutex_unlock(&c->fd_mu);
}

static int httpc_perform(struct httpc *c, const char *method, const char *path, const char *body,
			 size_t body_len, const char *content_type, long timeout_ms,
			 httpc_line_cb line_cb, void *arg, struct httpc_resp *resp)
{
	struct httpc_xfer x = { .c = c, .resp = resp, .line_cb = line_cb, .arg = arg };
	struct curl_slist *hdrs = NULL, *h;
	char *url = NULL, ctype[128];
	CURL *cu = c->curl;
	CURLcode rc;
	int err = 0;

	memset(resp, 0, sizeof(*resp));
	c->errbuf[0] = '\0';
	if (atomic_load(&c->aborted)) {
		snprintf(c->errbuf, sizeof(c->errbuf), "the client was aborted");
		return -ECANCELED;
	}
	if (!path || path[0] != '/') {
		snprintf(c->errbuf, sizeof(c->errbuf), "path must start with /");
		return -EINVAL;
	}
	if (asprintf(&url, "%s%s", c->base, path) < 0)
		return -ENOMEM;

	curl_easy_reset(cu);
	curl_easy_setopt(cu, CURLOPT_URL, url);
	curl_easy_setopt(cu, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(cu, CURLOPT_CONNECTTIMEOUT_MS, HTTPC_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(cu, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(cu, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(cu, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(cu, CURLOPT_OPENSOCKETFUNCTION, httpc_open_socket);
	curl_easy_setopt(cu, CURLOPT_OPENSOCKETDATA, c);
	curl_easy_setopt(cu, CURLOPT_CLOSESOCKETFUNCTION, httpc_close_socket);
	curl_easy_setopt(cu, CURLOPT_CLOSESOCKETDATA, c);
	curl_easy_setopt(cu, CURLOPT_XFERINFOFUNCTION, httpc_xferinfo);
	curl_easy_setopt(cu, CURLOPT_XFERINFODATA, c);
	curl_easy_setopt(cu, CURLOPT_NOPROGRESS, 0L);
	if (c->unix_path)
		curl_easy_setopt(cu, CURLOPT_UNIX_SOCKET_PATH, c->unix_path);
	if (c->ca_file)
		curl_easy_setopt(cu, CURLOPT_CAINFO, c->ca_file);
	if (c->insecure) {
		curl_easy_setopt(cu, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(cu, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	curl_easy_setopt(cu, CURLOPT_HEADERFUNCTION, httpc_header_cb);
	curl_easy_setopt(cu, CURLOPT_HEADERDATA, &x);
	curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, httpc_body_cb);
	curl_easy_setopt(cu, CURLOPT_WRITEDATA, &x);

	/* No "Expect: 100-continue" round trip before bodies. */
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (hdrs && (h = curl_slist_append(hdrs, "Accept: application/json")))
		hdrs = h;
	if (hdrs && c->auth && (h = curl_slist_append(hdrs, c->auth)))
		hdrs = h;
	if (body) {
		snprintf(ctype, sizeof(ctype), "Content-Type: %s",
			 content_type ? content_type : "application/json");
		if (hdrs && (h = curl_slist_append(hdrs, ctype)))
			hdrs = h;
	}
	if (!hdrs) {
		err = -ENOMEM;
		goto out;
	}
	curl_easy_setopt(cu, CURLOPT_HTTPHEADER, hdrs);

	if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(cu, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(cu, CURLOPT_NOBODY, 1L);
	} else {
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST, method);
		if (body || strcmp(method, "POST") == 0) {
			curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE_LARGE,
					 (curl_off_t)(body ? body_len : 0));
			curl_easy_setopt(cu, CURLOPT_POSTFIELDS, body ? body : "");
		}
	}

	rc = curl_easy_perform(cu);
	if (x.oom) {
		err = -ENOMEM;
	} else if (x.cancelled || atomic_load(&c->aborted)) {
		err = -ECANCELED;
	} else if (rc != CURLE_OK) {
		err = httpc_map_error(rc);
		if (rc == CURLE_COULDNT_CONNECT && c->unix_path) {
			/* curl's message names "localhost port 80"; name the socket instead. */
			struct stat st;
			if (stat(c->unix_path, &st) != 0)
				snprintf(c->errbuf, sizeof(c->errbuf), "no socket at %s: %s",
					 c->unix_path, strerror(errno));
			else
				snprintf(c->errbuf, sizeof(c->errbuf), "connection refused on %s",
					 c->unix_path);
		} else if (rc == CURLE_COULDNT_CONNECT) {
			snprintf(c->errbuf, sizeof(c->errbuf), "connection refused");
		}
		if (!c->errbuf[0])
			snprintf(c->errbuf, sizeof(c->errbuf), "%s", curl_easy_strerror(rc));
	}
	curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &resp->code);
	/* A stream cut off in the middle of a line delivers nothing of it. */
out:
	curl_slist_free_all(hdrs);
	free(x.line);
	free(url);
	if (err && err != -ECANCELED) {
		httpc_resp_free(resp);
	}
	/* Reset drops our pointers to stack data; keep the connection cache. */
	curl_easy_setopt(cu, CURLOPT_HEADERDATA, NULL);
	curl_easy_setopt(cu, CURLOPT_WRITEDATA, NULL);
	curl_easy_setopt(cu, CURLOPT_HTTPHEADER, NULL);
	return err;
}

int httpc_request(struct httpc *c, const char *method, const char *path, const char *body,
		  size_t body_len, const char *content_type, struct httpc_resp *resp)
{
	return httpc_perform(c, method, path, body, body_len, content_type, c->timeout_ms, NULL,
			     NULL, resp);
}

int httpc_stream(struct httpc *c, const char *path, long timeout_ms, httpc_line_cb line_cb,
		 void *arg, struct httpc_resp *resp)
{
	if (!line_cb)
		return -EINVAL;
	return httpc_perform(c, "GET", path, NULL, 0, NULL, timeout_ms < 0 ? 0 : timeout_ms,
			     line_cb, arg, resp);
}

const char *httpc_resp_header(const struct httpc_resp *resp, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < resp->nheaders; i++) {
		const char *h = resp->headers[i];
		if (strncasecmp(h, name, n) == 0 && h[n] == ':') {
			h += n + 1;
			while (*h == ' ' || *h == '\t')
				h++;
			return h;
		}
	}
	return NULL;
}

void httpc_resp_free(struct httpc_resp *resp)
{
	if (!resp)
		return;
	for (size_t i = 0; i < resp->nheaders; i++)
		free(resp->headers[i]);
	free(resp->headers);
	free(resp->body);
	resp->headers = NULL;
	resp->nheaders = 0;
	resp->body = NULL;
	resp->len = 0;
}

char *httpc_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = malloc(n * 3 + 1), *o = out;

	if (!out)
		return NULL;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
			*o++ = (char)ch;
		} else {
			*o++ = '%';
			*o++ = hex[ch >> 4];
			*o++ = hex[ch & 15];
		}
	}
	*o = '\0';
	return out;
}
