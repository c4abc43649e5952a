// SPDX-License-Identifier: Apache-2.0
/* The HTTP client against a small scripted server on a unix socket (a thread of this test):
 * methods, bodies and headers sent, Warning headers read, one connection for many requests,
 * watch lines split across chunks, a stream stopped by its callback, errors without a
 * server. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "httpc.h"
#include "shoal_test.h"

struct srv {
	char path[108];
	int lfd;
	pthread_t thr;
	int connections;    /* accepted so far */
	char last_req[4096]; /* head and body of the last request */
};

/* Reads one request (head, then Content-Length bytes of body) into buf; 0 at EOF. */
static ssize_t read_request(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	char *end;
	while (!(buf[n] = '\0', end = strstr(buf, "\r\n\r\n"))) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r <= 0)
			return 0;
		n += (size_t)r;
	}
	const char *cl = strcasestr(buf, "Content-Length:");
	size_t want = (size_t)(end + 4 - buf) + (cl ? (size_t)atoi(cl + 15) : 0);
	while (n < want) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r <= 0)
			return 0;
		n += (size_t)r;
	}
	buf[n] = '\0';
	return (ssize_t)n;
}

static void write_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

static void chunk(int fd, const char *s)
{
	char head[32];
	snprintf(head, sizeof(head), "%zx\r\n", strlen(s));
	write_all(fd, head, strlen(head));
	write_all(fd, s, strlen(s));
	write_all(fd, "\r\n", 2);
	usleep(20000); /* separate reads on the client side */
}

static void *serve(void *arg)
{
	struct srv *s = arg;
	char req[4096];
	int fd;

	while ((fd = accept(s->lfd, NULL, NULL)) >= 0) {
		s->connections++;
		while (read_request(fd, req, sizeof(req)) > 0) {
			snprintf(s->last_req, sizeof(s->last_req), "%s", req);
			if (strncmp(req, "GET /watch", 10) == 0) {
				const char *h = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
						"Transfer-Encoding: chunked\r\n\r\n";
				write_all(fd, h, strlen(h));
				chunk(fd, "{\"type\":\"ADDED\",\"n\":1}\n{\"type\":\"MOD");
				chunk(fd, "IFIED\",\"n\":2}\n\n");
				chunk(fd, "{\"type\":\"DELETED\",\"n\":3}\r\n{\"partial\":");
				write_all(fd, "0\r\n\r\n", 5);
				continue;
			}
			if (strncmp(req, "GET /gone", 9) == 0) {
				const char *b = "{\"kind\":\"Status\",\"code\":410}";
				char h[256];
				snprintf(h, sizeof(h),
					 "HTTP/1.1 410 Gone\r\nContent-Length: %zu\r\n\r\n%s",
					 strlen(b), b);
				write_all(fd, h, strlen(h));
				continue;
			}
			/* Echo: the method and body back, with a Warning header. */
			char body[2048], resp[4096];
			const char *rb = strstr(req, "\r\n\r\n") + 4;
			snprintf(body, sizeof(body), "%.*s|%s", (int)strcspn(req, " "), req, rb);
			snprintf(resp, sizeof(resp),
				 "HTTP/1.1 201 Created\r\nWarning: 299 - \"unknown field x\"\r\n"
				 "Content-Length: %zu\r\n\r\n%s",
				 strlen(body), body);
			write_all(fd, resp, strlen(resp));
		}
		close(fd);
	}
	return NULL;
}

static int srv_start(void **state)
{
	struct srv *s = calloc(1, sizeof(*s));
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(s->path, sizeof(s->path), "/tmp/shoal-httpc-%d.sock", getpid());
	unlink(s->path);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", s->path);
	s->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof(a)) || listen(s->lfd, 8))
		return -1;
	pthread_create(&s->thr, NULL, serve, s);
	*state = s;
	return 0;
}

static int srv_stop(void **state)
{
	struct srv *s = *state;
	shutdown(s->lfd, SHUT_RDWR);
	close(s->lfd);
	pthread_join(s->thr, NULL);
	unlink(s->path);
	free(s);
	return 0;
}

static struct httpc *client(struct srv *s, const char *token)
{
	char server[128];
	snprintf(server, sizeof(server), "unix:%s", s->path);
	struct httpc *c = httpc_new(server, token);
	assert_non_null(c);
	return c;
}

static void test_httpc_request_sends_method_body_and_token(void **state)
{
	struct srv *s = *state;
	struct httpc *c = client(s, "s3cret");
	struct httpc_resp r;

	assert_int_equal(httpc_request(c, "PUT", "/api/v1/x?a=b", "{\"k\":1}", 7, NULL, &r), 0);
	assert_int_equal(r.code, 201);
	assert_string_equal(r.body, "PUT|{\"k\":1}");
	assert_string_equal(httpc_resp_header(&r, "warning"), "299 - \"unknown field x\"");
	assert_null(httpc_resp_header(&r, "X-Missing"));
	assert_non_null(strstr(s->last_req, "PUT /api/v1/x?a=b HTTP/1.1\r\n"));
	assert_non_null(strstr(s->last_req, "Authorization: Bearer s3cret\r\n"));
	assert_non_null(strstr(s->last_req, "Content-Type: application/json\r\n"));
	httpc_resp_free(&r);

	assert_int_equal(httpc_request(c, "PATCH", "/p", "{}", 2, "application/merge-patch+json",
				       &r),
			 0);
	assert_string_equal(r.body, "PATCH|{}");
	assert_non_null(strstr(s->last_req, "Content-Type: application/merge-patch+json\r\n"));
	httpc_resp_free(&r);
	assert_int_equal(httpc_request(c, "DELETE", "/d", NULL, 0, NULL, &r), 0);
	assert_string_equal(r.body, "DELETE|");
	httpc_resp_free(&r);
	httpc_free(c);
}

static void test_httpc_reuses_one_connection(void **state)
{
	struct srv *s = *state;
	struct httpc *c = client(s, NULL);
	struct httpc_resp r;
	int before = s->connections;

	for (int i = 0; i < 20; i++) {
		assert_int_equal(httpc_request(c, i % 2 ? "POST" : "GET", "/x", i % 2 ? "{}" : NULL,
					       i % 2 ? 2 : 0, NULL, &r),
				 0);
		httpc_resp_free(&r);
	}
	assert_int_equal(s->connections - before, 1);
	assert_null(strstr(s->last_req, "Authorization:"));
	httpc_free(c);
}

struct lines {
	char got[8][128];
	int n;
	int stop_after;
};

static int on_line(const char *line, size_t len, void *arg)
{
	struct lines *l = arg;
	assert_int_equal(strlen(line), len);
	if (l->n < 8)
		snprintf(l->got[l->n++], sizeof(l->got[0]), "%s", line);
	return l->stop_after && l->n >= l->stop_after;
}

static void test_httpc_stream_splits_lines_across_chunks(void **state)
{
	struct srv *s = *state;
	struct httpc *c = client(s, NULL);
	struct httpc_resp r;
	struct lines l = { 0 };

	assert_int_equal(httpc_stream(c, "/watch?watch=1", 5000, on_line, &l, &r), 0);
	assert_int_equal(r.code, 200);
	assert_int_equal(l.n, 3); /* the unterminated last line is not delivered */
	assert_string_equal(l.got[0], "{\"type\":\"ADDED\",\"n\":1}");
	assert_string_equal(l.got[1], "{\"type\":\"MODIFIED\",\"n\":2}");
	assert_string_equal(l.got[2], "{\"type\":\"DELETED\",\"n\":3}");
	httpc_resp_free(&r);

	struct lines stop = { .stop_after = 1 };
	assert_int_equal(httpc_stream(c, "/watch", 5000, on_line, &stop, &r), -ECANCELED);
	assert_int_equal(stop.n, 1);
	httpc_resp_free(&r);

	/* An error status is a body, not lines. */
	struct lines none = { 0 };
	assert_int_equal(httpc_stream(c, "/gone", 5000, on_line, &none, &r), 0);
	assert_int_equal(r.code, 410);
	assert_int_equal(none.n, 0);
	assert_string_equal(r.body, "{\"kind\":\"Status\",\"code\":410}");
	httpc_resp_free(&r);
	httpc_free(c);
}

static void test_httpc_errors_without_a_server(void **state)
{
	(void)state;
	struct httpc_resp r;
	struct httpc *c = httpc_new("unix:/nonexistent/shoal.sock", NULL);
	assert_non_null(c);
	assert_int_equal(httpc_request(c, "GET", "/healthz", NULL, 0, NULL, &r), -ECONNREFUSED);
	assert_non_null(strstr(httpc_error(c), "no socket at /nonexistent/shoal.sock"));
	assert_null(r.body);
	httpc_free(c);

	assert_null(httpc_new("ftp://x", NULL));
	assert_int_equal(errno, EINVAL);
	assert_null(httpc_new("unix:", NULL));
	assert_null(httpc_new("http://", NULL));
	assert_null(httpc_new("http://h:1", "bad\ntoken"));
}

static void test_httpc_escape(void **state)
{
	(void)state;
	char *e = httpc_escape("app in (a,b),tier!=db x/y");
	assert_string_equal(e, "app%20in%20%28a%2Cb%29%2Ctier%21%3Ddb%20x%2Fy");
	free(e);
}

SHOAL_TEST_MAIN_SETUP(srv_start, srv_stop,
		      cmocka_unit_test(test_httpc_request_sends_method_body_and_token),
		      cmocka_unit_test(test_httpc_reuses_one_connection),
		      cmocka_unit_test(test_httpc_stream_splits_lines_across_chunks),
		      cmocka_unit_test(test_httpc_errors_without_a_server),
		      cmocka_unit_test(test_httpc_escape))
