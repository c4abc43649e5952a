// SPDX-License-Identifier: Apache-2.0
/* The shoald test fixture (see shoald_fixture.h). */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shoald_fixture.h"

static const char *shoald_bin(void)
{
	static char path[PATH_MAX];
	const char *env = getenv("SHOALD_BIN");
	if (env)
		return env;
	/* Tests run from the repository's top directory (tests/run); the daemon built with the
	 * sanitizers is preferred, so that the integration tests check it too. */
	snprintf(path, sizeof(path), "build/san-bin/shoald");
	if (access(path, X_OK) == 0)
		return path;
	snprintf(path, sizeof(path), "build/bin/shoald");
	return path;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static int spawn(struct shoald *s)
{
	const char *argv[40];
	char listen[400], state[300], logf[300];
	int n = 0;

	snprintf(listen, sizeof(listen), "unix:%s", s->sock);
	snprintf(state, sizeof(state), "%s/state", s->dir);
	snprintf(logf, sizeof(logf), "%s/shoald.log", s->dir);
	argv[n++] = shoald_bin();
	argv[n++] = "--listen";
	argv[n++] = listen;
	argv[n++] = "--state";
	argv[n++] = state;
	for (int i = 0; s->args[i] && n < 38; i++)
		argv[n++] = s->args[i];
	argv[n] = NULL;

	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(logf, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	s->pid = pid;
	for (int i = 0; i < 400; i++) {
		struct http_resp r;
		if (http_do(s, "GET", "/readyz", NULL, NULL, 0, NULL, &r) == 0 && r.code == 200) {
			http_resp_free(&r);
			return 0;
		}
		http_resp_free(&r);
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			s->pid = 0;
			fprintf(stderr, "# shoald exited during start; its log is %s\n", logf);
			return -ECHILD;
		}
		sleep_ms(25);
	}
	return -ETIMEDOUT;
}

int shoald_start(struct shoald *s, const char *const *extra)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->dir, sizeof(s->dir), "/tmp/shoald-test.XXXXXX");
	if (!mkdtemp(s->dir))
		return -errno;
	snprintf(s->sock, sizeof(s->sock), "%s/api.sock", s->dir);
	for (int i = 0; extra && extra[i] && i < 23; i++)
		s->args[i] = extra[i];
	return spawn(s);
}

int shoald_restart(struct shoald *s)
{
	return spawn(s);
}

int shoald_stop(struct shoald *s)
{
	int st = 0;
	if (!s->pid)
		return -1;
	kill(s->pid, SIGTERM);
	if (waitpid(s->pid, &st, 0) != s->pid)
		return -1;
	s->pid = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void shoald_kill9(struct shoald *s)
{
	if (!s->pid)
		return;
	kill(s->pid, SIGKILL);
	waitpid(s->pid, NULL, 0);
	s->pid = 0;
}

static int rm_rf(const char *path)
{
	char cmd[600];
	/* The directory is ours (mkdtemp) and its name has no shell characters. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	return system(cmd);
}

void shoald_destroy(struct shoald *s)
{
	if (s->pid)
		shoald_kill9(s);
	if (s->dir[0] && rm_rf(s->dir) != 0)
		fprintf(stderr, "# could not remove %s\n", s->dir);
	s->dir[0] = '\0';
}

struct buf {
	char *s;
	size_t len;
};

static size_t on_data(char *p, size_t sz, size_t n, void *arg)
{
	struct buf *b = arg;
	size_t add = sz * n;
	char *ns = realloc(b->s, b->len + add + 1);
	if (!ns)
		return 0;
	b->s = ns;
	memcpy(b->s + b->len, p, add);
	b->len += add;
	b->s[b->len] = '\0';
	return add;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
	struct http_resp *r = arg;
	size_t len = sz * n;
	if (len > 8 && strncasecmp(p, "Warning:", 8) == 0) {
		size_t c = len - 8 < sizeof(r->warning) - 1 ? len - 8 : sizeof(r->warning) - 1;
		memcpy(r->warning, p + 8, c);
		r->warning[c] = '\0';
	}
	return len;
}

static int request(const struct shoald *s, const char *method, const char *path,
		   const char *ctype, const char *body, size_t body_len, const char *token,
		   struct http_resp *out, long timeout_ms)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	struct buf b = { 0 };
	char url[4096], hdr[1200];
	CURLcode rc;

	memset(out, 0, sizeof(*out));
	if (!c)
		return -ENOMEM;
	snprintf(url, sizeof(url), "http://shoald%s", path);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, s->sock);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	snprintf(hdr, sizeof(hdr), "Content-Type: %s", ctype ? ctype : "application/json");
	h = curl_slist_append(h, hdr);
	h = curl_slist_append(h, "Expect:");
	if (token) {
		snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", token);
		h = curl_slist_append(h, hdr);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	}
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->code);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	out->body = b.s;
	out->len = b.len;
	if (rc != CURLE_OK && rc != CURLE_OPERATION_TIMEDOUT)
		return -EIO;
	if (rc == CURLE_OPERATION_TIMEDOUT && out->code == 0)
		return -ETIMEDOUT;
	return 0;
}

int http_do(const struct shoald *s, const char *method, const char *path, const char *ctype,
	    const char *body, size_t body_len, const char *token, struct http_resp *out)
{
	return request(s, method, path, ctype, body, body_len, token, out, 20000);
}

void http_resp_free(struct http_resp *r)
{
	free(r->body);
	r->body = NULL;
}

json_t *http_json(const struct shoald *s, const char *method, const char *path,
		  const char *body, long *code)
{
	struct http_resp r;
	json_t *j = NULL;
	json_error_t e;
	const char *ctype = strcmp(method, "PATCH") == 0 ? "application/merge-patch+json" : NULL;

	*code = 0;
	if (http_do(s, method, path, ctype, body, body ? strlen(body) : 0, NULL, &r) == 0) {
		*code = r.code;
		if (r.body)
			j = json_loadb(r.body, r.len, 0, &e);
	}
	http_resp_free(&r);
	return j;
}

json_t *http_watch(const struct shoald *s, const char *path, int ms, long *code)
{
	struct http_resp r;
	json_t *events = json_array();
	int err = request(s, "GET", path, NULL, NULL, 0, NULL, &r, ms);

	*code = r.code;
	if (err && err != -ETIMEDOUT) {
		http_resp_free(&r);
		return events;
	}
	char *save = NULL;
	for (char *line = r.body ? strtok_r(r.body, "\n", &save) : NULL; line;
	     line = strtok_r(NULL, "\n", &save)) {
		json_error_t e;
		json_t *ev = json_loads(line, 0, &e);
		if (ev)
			json_array_append_new(events, ev);
	}
	http_resp_free(&r);
	return events;
}

long long obj_rv(const json_t *obj)
{
	const char *rv = json_string_value(
		json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
	return rv ? atoll(rv) : -1;
}
