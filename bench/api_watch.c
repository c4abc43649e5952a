// SPDX-License-Identifier: Apache-2.0
/*
 * Watch fan-out for bench/api: many hollow watchers in one process, one writer at a steady
 * rate, and the delay from each write's acknowledgement to its event's arrival at every
 * watcher.
 *
 *   api_watch --unix PATH --watchers N --rate R --seconds S [--prefix P] [--namespace NS]
 *             [--server-pid PID]
 *
 * A watcher is only a non-blocking unix socket in one epoll set: it sends
 * GET .../pods?watch=1&resourceVersion=N (N: the revision before the first write), decodes
 * the chunked stream and, for each event line, notes the arrival time (CLOCK_MONOTONIC, taken
 * right after the read that completed the line) under the object's sequence number, which
 * it finds in the object's name. The writer is a thread with keep-alive connections that
 * creates pods P-0, P-1, ... at R per second, open-loop, and notes when each POST was answered
 * (the write is durable then). delay = arrival - acknowledgement, over every (watcher, event)
 * pair; it can be negative, because the watch cache publishes an event as soon as the commit
 * lands and the POST's answer travels separately: those are counted and taken as 0.
 * Beside it: the delay from the POST being sent (commit included), each write's own latency,
 * and the spread between the first and the last watcher to get an event (the fan-out's cost).
 * With --server-pid, the CPU time the server and this process spent from the first write to
 * the last delivery, to tell the server's cost from the watchers' on a small machine.
 *
 * Results go to stdout as key=value lines; times in ms.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "log.h"

#define SETUP_INFLIGHT 256   /* connections waiting for their response headers at once */
#define SETUP_TIMEOUT_S 120  /* for all watchers to be established */
#define DRAIN_TIMEOUT_S 15   /* after the last write, for the last events to arrive */

enum wstate { W_IDLE, W_HEADERS, W_BODY, W_DONE };
enum cstate { C_SIZE, C_SIZE_EXT, C_SIZE_LF, C_DATA, C_DATA_CR, C_DATA_LF };

struct watcher {
	int fd;
	enum wstate st;
	bool chunked;
	enum cstate cs;
	size_t chunk_left;
	char *line; /* the current, incomplete line (headers, then events) */
	size_t llen, lcap;
	int64_t *arrival; /* ns, indexed by sequence number; 0: not arrived */
	long events, dups, foreign, errors;
};

struct cfg {
	const char *unix_path, *prefix, *ns;
	int watchers, server_pid;
	double rate, seconds;
};

static struct cfg cfg;
static long total_writes;
static int64_t *ack_ns;	 /* per sequence number; 0: not (yet) acknowledged, -1: failed */
static int64_t *send_ns;
static atomic_long writes_done;
static atomic_bool writer_finished;
static char name_pat[160];
static size_t name_pat_len;

/* The pods' current resourceVersion: watches start there, so they see only the new writes. */
static int current_rv(char *out, size_t cap)
{
	struct bench_buf b = { 0 };
	char url[256];
	long code = 0;
	int ret = -EIO;
	CURL *h = curl_easy_init();

	if (!h)
		return -ENOMEM;
	snprintf(url, sizeof(url), "http://shoal/api/v1/namespaces/%s/pods?limit=1", cfg.ns);
	curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, cfg.unix_path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, bench_buf_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	CURLcode rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (rc != CURLE_OK || code != 200) {
		log_error("list pods: %s, HTTP %ld", curl_easy_strerror(rc), code);
		goto out;
	}
	json_t *doc = json_loadb(b.p, b.len, 0, NULL);
	const char *rv =
		json_string_value(json_object_get(json_object_get(doc, "metadata"), "resourceVersion"));
	if (rv && *rv) {
		snprintf(out, cap, "%s", rv);
		ret = 0;
	} else {
		log_error("list pods: no metadata.resourceVersion in the answer");
	}
	json_decref(doc);
out:
	curl_easy_cleanup(h);
	free(b.p);
	return ret;
}

/* One create in flight. */
struct wreq {
	CURL *h;
	long seq; /* -1: free */
	struct bench_buf b;
	char body[512];
};

static int wreq_start(CURLM *m, struct wreq *q, long seq)
{
	int n = snprintf(q->body, sizeof(q->body),
			 "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s-%ld\"},"
			 "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"x\","
			 "\"command\":[\"sleep\",\"1\"]}]}}",
			 cfg.prefix, seq);
	curl_easy_setopt(q->h, CURLOPT_POSTFIELDS, q->body);
	curl_easy_setopt(q->h, CURLOPT_POSTFIELDSIZE, (long)n);
	q->b.len = 0;
	q->seq = seq;
	send_ns[seq] = bench_now_ns();
	return curl_multi_add_handle(m, q->h) == CURLM_OK ? 0 : -EIO;
}

/*
 * The writer is open-loop: write i is sent at t0 + i/rate whether or not the earlier ones were
 * answered (up to WRITER_INFLIGHT at once), so a slow answer delays no later write and the
 * rate stays what was asked.
 */
#define WRITER_INFLIGHT 64

static void *writer_main(void *arg)
{
	struct wreq *qs = calloc(WRITER_INFLIGHT, sizeof(*qs));
	struct curl_slist *hdrs = NULL;
	CURLM *m = curl_multi_init();
	char url[256];
	long next = 0, done = 0;

	(void)arg;
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	if (!qs || !m || !hdrs) {
		log_error("writer: out of memory");
		goto out;
	}
	snprintf(url, sizeof(url), "http://shoal/api/v1/namespaces/%s/pods", cfg.ns);
	for (int i = 0; i < WRITER_INFLIGHT; i++) {
		qs[i].seq = -1;
		qs[i].h = curl_easy_init();
		if (!qs[i].h) {
			log_error("writer: curl_easy_init failed");
			goto out;
		}
		curl_easy_setopt(qs[i].h, CURLOPT_UNIX_SOCKET_PATH, cfg.unix_path);
		curl_easy_setopt(qs[i].h, CURLOPT_URL, url);
		curl_easy_setopt(qs[i].h, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(qs[i].h, CURLOPT_POST, 1L);
		curl_easy_setopt(qs[i].h, CURLOPT_WRITEFUNCTION, bench_buf_write);
		curl_easy_setopt(qs[i].h, CURLOPT_WRITEDATA, &qs[i].b);
		curl_easy_setopt(qs[i].h, CURLOPT_TIMEOUT, 30L);
		curl_easy_setopt(qs[i].h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(qs[i].h, CURLOPT_PRIVATE, &qs[i]);
	}
	curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)WRITER_INFLIGHT);

	int64_t t0 = bench_now_ns();
	while (done < total_writes) {
		int64_t t = bench_now_ns();
		for (int i = 0; i < WRITER_INFLIGHT && next < total_writes; i++) {
			if (qs[i].seq >= 0)
				continue;
			if (t0 + (int64_t)((double)next * 1e9 / cfg.rate) > t)
				break;
			if (wreq_start(m, &qs[i], next)) {
				log_error("writer: curl_multi_add_handle failed");
				goto out;
			}
			next++;
		}
		int running;
		curl_multi_perform(m, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(m, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct wreq *q = NULL;
			long code = 0;
			int64_t t1 = bench_now_ns();
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&q);
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
			if (msg->data.result != CURLE_OK || code != 201) {
				log_warn("writer: create %s-%ld: %s, HTTP %ld: %.200s", cfg.prefix,
					 q->seq, curl_easy_strerror(msg->data.result), code,
					 q->b.len ? q->b.p : "");
				ack_ns[q->seq] = -1;
			} else {
				ack_ns[q->seq] = t1;
			}
			curl_multi_remove_handle(m, q->h);
			q->seq = -1;
			done++;
		}
		atomic_store(&writes_done, done);
		/* Sleep until the next write is due or an answer arrives; with every handle busy,
		 * only an answer can help. */
		int wait_ms = 100, busy = 0;
		for (int i = 0; i < WRITER_INFLIGHT; i++)
			busy += qs[i].seq >= 0;
		if (next < total_writes && busy < WRITER_INFLIGHT) {
			int64_t due = t0 + (int64_t)((double)next * 1e9 / cfg.rate) - bench_now_ns();
			wait_ms = due <= 0 ? 0 : (int)((due + 999999) / 1000000);
		}
		if (wait_ms > 0)
			curl_multi_poll(m, NULL, 0, wait_ms, NULL);
	}
out:
	atomic_store(&writer_finished, true);
	for (int i = 0; qs && i < WRITER_INFLIGHT; i++) {
		if (qs[i].h && qs[i].seq >= 0)
			curl_multi_remove_handle(m, qs[i].h);
		curl_easy_cleanup(qs[i].h);
		free(qs[i].b.p);
	}
	curl_multi_cleanup(m);
	curl_slist_free_all(hdrs);
	free(qs);
	return NULL;
}

static int line_push(struct watcher *w, const char *p, size_t n)
{
	if (w->llen + n + 1 > w->lcap) {
		size_t cap = w->lcap ? w->lcap : 2048;
		while (cap < w->llen + n + 1)
			cap *= 2;
		if (cap > (64u << 20))
			return -E2BIG;
		char *q = realloc(w->line, cap);
		if (!q)
			return -ENOMEM;
		w->line = q;
		w->lcap = cap;
	}
	memcpy(w->line + w->llen, p, n);
	w->llen += n;
	w->line[w->llen] = '\0';
	return 0;
}

/* One complete event line. */
static void on_event(struct watcher *w, const char *l, size_t n, int64_t t)
{
	if (n == 0)
		return;
	if (memmem(l, n, "\"type\":\"ERROR\"", 14)) {
		w->errors++;
		return;
	}
	const char *p = memmem(l, n, name_pat, name_pat_len);
	if (!p) {
		w->foreign++;
		return;
	}
	char *end;
	long seq = strtol(p + name_pat_len, &end, 10);
	if (end == p + name_pat_len || *end != '"' || seq < 0 || seq >= total_writes) {
		w->foreign++;
		return;
	}
	if (w->arrival[seq]) {
		w->dups++;
		return;
	}
	w->arrival[seq] = t;
	w->events++;
}

/* Body bytes (after the chunk framing is removed): split into lines. */
static int bench_buf_write_bytes(struct watcher *w, const char *p, size_t n, int64_t t)
{
	while (n) {
		const char *nl = memchr(p, '\n', n);
		size_t k = nl ? (size_t)(nl - p) : n;
		if (!nl)
			return line_push(w, p, k);
		if (w->llen) {
			int err = line_push(w, p, k);
			if (err)
				return err;
			on_event(w, w->line, w->llen, t);
			w->llen = 0;
		} else {
			on_event(w, p, k, t);
		}
		p += k + 1;
		n -= k + 1;
	}
	return 0;
}

/* Strips the chunked transfer coding. Returns 1 at the last chunk. */
static int on_chunked(struct watcher *w, const char *p, size_t n, int64_t t)
{
	for (size_t i = 0; i < n;) {
		char c = p[i];
		switch (w->cs) {
		case C_SIZE:
			i++;
			if (c >= '0' && c <= '9')
				w->chunk_left = w->chunk_left * 16 + (size_t)(c - '0');
			else if ((c | 32) >= 'a' && (c | 32) <= 'f')
				w->chunk_left = w->chunk_left * 16 + (size_t)((c | 32) - 'a' + 10);
			else if (c == '\r')
				w->cs = C_SIZE_LF;
			else if (c == ';')
				w->cs = C_SIZE_EXT;
			else
				return -EPROTO;
			break;
		case C_SIZE_EXT:
			i++;
			if (c == '\r')
				w->cs = C_SIZE_LF;
			break;
		case C_SIZE_LF:
			i++;
			if (c != '\n')
				return -EPROTO;
			if (w->chunk_left == 0)
				return 1;
			w->cs = C_DATA;
			break;
		case C_DATA: {
			size_t k = n - i < w->chunk_left ? n - i : w->chunk_left;
			int err = bench_buf_write_bytes(w, p + i, k, t);
			if (err)
				return err;
			i += k;
			w->chunk_left -= k;
			if (!w->chunk_left)
				w->cs = C_DATA_CR;
			break;
		}
		case C_DATA_CR:
			i++;
			if (c != '\r')
				return -EPROTO;
			w->cs = C_DATA_LF;
			break;
		case C_DATA_LF:
			i++;
			if (c != '\n')
				return -EPROTO;
			w->cs = C_SIZE;
			break;
		}
	}
	return 0;
}

/* Response headers; returns the bytes consumed (0: incomplete) or a negative errno. */
static long on_headers(struct watcher *w, const char *p, size_t n)
{
	size_t old = w->llen;
	if (line_push(w, p, n))
		return -ENOMEM;
	char *end = strstr(w->line, "\r\n\r\n");
	if (!end)
		return 0;
	size_t hl = (size_t)(end - w->line) + 4;
	int code = 0;
	if (sscanf(w->line, "HTTP/1.%*d %d", &code) != 1 || code != 200) {
		log_warn("watch: HTTP %d: %.300s", code, w->line);
		return -EPROTO;
	}
	*end = '\0';
	w->chunked = strcasestr(w->line, "transfer-encoding: chunked") != NULL;
	w->llen = 0;
	return (long)(hl - old);
}

static int watcher_connect(struct watcher *w, const char *req, size_t reqlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", cfg.unix_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int err = -errno;
		close(fd);
		return err;
	}
	ssize_t k = write(fd, req, reqlen);
	if (k != (ssize_t)reqlen) {
		int err = k < 0 ? -errno : -EAGAIN;
		close(fd);
		return err;
	}
	w->fd = fd;
	w->st = W_HEADERS;
	return 0;
}

static void watcher_close(struct watcher *w, int ep)
{
	if (w->fd >= 0) {
		if (epoll_ctl(ep, EPOLL_CTL_DEL, w->fd, NULL))
			log_warn("epoll_ctl del: %s", strerror(errno));
		close(w->fd);
	}
	w->fd = -1;
	w->st = W_DONE;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct_ms(const int64_t *v, size_t n, double p)
{
	if (!n)
		return 0;
	return (double)v[(size_t)(p * (double)(n - 1) + 0.5)] / 1e6;
}

static int raise_nofile(rlim_t want)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl))
		return -errno;
	if (rl.rlim_cur >= want)
		return 0;
	if (rl.rlim_max < want)
		rl.rlim_max = want; /* needs CAP_SYS_RESOURCE */
	rl.rlim_cur = want;
	return setrlimit(RLIMIT_NOFILE, &rl) ? -errno : 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: api_watch --unix PATH --watchers N --rate R --seconds S [--prefix P] "
		   "[--namespace NS] [--server-pid PID]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "unix", required_argument, NULL, 'u' },
		{ "watchers", required_argument, NULL, 'w' },
		{ "rate", required_argument, NULL, 'r' },
		{ "seconds", required_argument, NULL, 's' },
		{ "prefix", required_argument, NULL, 'p' },
		{ "namespace", required_argument, NULL, 'n' },
		{ "server-pid", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct watcher *ws = NULL;
	int64_t *arrivals = NULL, *delays = NULL, *fsend = NULL, *spread = NULL, *wlat = NULL;
	pthread_t writer;
	bool writer_started = false;
	char rv[64], req[512], *rbuf = NULL;
	int ep = -1, o, ret = 1;

	cfg = (struct cfg){ .prefix = "wf", .ns = "default", .watchers = 100, .rate = 50,
			    .seconds = 10 };
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'u':
			cfg.unix_path = optarg;
			break;
		case 'w':
			cfg.watchers = atoi(optarg);
			break;
		case 'r':
			cfg.rate = atof(optarg);
			break;
		case 's':
			cfg.seconds = atof(optarg);
			break;
		case 'p':
			cfg.prefix = optarg;
			break;
		case 'n':
			cfg.ns = optarg;
			break;
		case 'S':
			cfg.server_pid = atoi(optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!cfg.unix_path || cfg.watchers < 1 || cfg.watchers > 1000000 || cfg.rate <= 0 ||
	    cfg.seconds <= 0 || strlen(cfg.prefix) > 100) {
		usage(stderr);
		return 2;
	}
	log_init("api_watch", LOG_LVL_INFO);
	total_writes = (long)(cfg.rate * cfg.seconds + 0.5);
	if (total_writes < 1)
		total_writes = 1;
	name_pat_len = (size_t)snprintf(name_pat, sizeof(name_pat), "\"name\":\"%s-", cfg.prefix);

	int err = raise_nofile((rlim_t)cfg.watchers + 256);
	if (err) {
		log_error("raise RLIMIT_NOFILE to %d: %s", cfg.watchers + 256, strerror(-err));
		return 1;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		log_error("curl_global_init failed");
		return 1;
	}
	ws = calloc((size_t)cfg.watchers, sizeof(*ws));
	arrivals = calloc((size_t)cfg.watchers * (size_t)total_writes, sizeof(*arrivals));
	ack_ns = calloc((size_t)total_writes, sizeof(*ack_ns));
	send_ns = calloc((size_t)total_writes, sizeof(*send_ns));
	rbuf = malloc(256 * 1024);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!ws || !arrivals || !ack_ns || !send_ns || !rbuf || ep < 0) {
		log_error("setup: %s", strerror(ep < 0 ? errno : ENOMEM));
		goto out;
	}
	for (int i = 0; i < cfg.watchers; i++) {
		ws[i].fd = -1;
		ws[i].arrival = arrivals + (size_t)i * (size_t)total_writes;
	}
	if (current_rv(rv, sizeof(rv)))
		goto out;
	size_t reqlen = (size_t)snprintf(req, sizeof(req),
					 "GET /api/v1/namespaces/%s/pods?watch=1&resourceVersion=%s "
					 "HTTP/1.1\r\nHost: shoal\r\nAccept: application/json\r\n\r\n",
					 cfg.ns, rv);

	/* Establish every watch before the first write, a bounded number in flight at once. */
	int64_t t_setup = bench_now_ns(), t_drain_end = 0, t_run = 0, t_end = 0;
	double cpu_srv0 = 0, cpu_self0 = 0, run0 = 0, wait0 = 0, run1 = 0, wait1 = 0;
	int next = 0, pending = 0, ready = 0, failed = 0;
	long deliveries_due = 0;
	struct epoll_event evs[1024];
	for (;;) {
		while (next < cfg.watchers && pending < SETUP_INFLIGHT) {
			err = watcher_connect(&ws[next], req, reqlen);
			if (err == -EAGAIN)
				break; /* the listen backlog is full: try again shortly */
			if (err) {
				log_error("watcher %d: connect %s: %s", next, cfg.unix_path,
					  strerror(-err));
				goto out;
			}
			struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.u32 = next };
			if (epoll_ctl(ep, EPOLL_CTL_ADD, ws[next].fd, &ev)) {
				log_error("epoll_ctl add: %s", strerror(errno));
				goto out;
			}
			next++;
			pending++;
		}
		if (!writer_started && ready + failed == cfg.watchers) {
			if (failed) {
				log_error("%d of %d watches could not be established", failed,
					  cfg.watchers);
				goto out;
			}
			log_info("%d watchers established in %.2f s from revision %s", ready,
				 (double)(bench_now_ns() - t_setup) / 1e9, rv);
			cpu_srv0 = cfg.server_pid ? bench_cpu_seconds(cfg.server_pid) : -1;
			cpu_self0 = bench_cpu_seconds(0);
			if (cfg.server_pid)
				bench_sched_seconds(cfg.server_pid, &run0, &wait0);
			t_run = bench_now_ns();
			if (pthread_create(&writer, NULL, writer_main, NULL)) {
				log_error("pthread_create failed");
				goto out;
			}
			writer_started = true;
		}
		if (!writer_started && bench_now_ns() - t_setup > (int64_t)SETUP_TIMEOUT_S * 1000000000) {
			log_error("only %d of %d watchers established after %d s", ready,
				  cfg.watchers, SETUP_TIMEOUT_S);
			goto out;
		}
		if (writer_started && atomic_load(&writer_finished)) {
			int64_t t = bench_now_ns();
			if (!t_drain_end) {
				t_drain_end = t + (int64_t)DRAIN_TIMEOUT_S * 1000000000;
				for (long i = 0; i < total_writes; i++)
					deliveries_due += ack_ns[i] > 0;
				deliveries_due *= ready;
			}
			long got = 0;
			for (int i = 0; i < cfg.watchers; i++)
				got += ws[i].events;
			if (got >= deliveries_due || t > t_drain_end) {
				t_end = t;
				break;
			}
		}
		int n = epoll_wait(ep, evs, 1024, next < cfg.watchers ? 2 : 20);
		if (n < 0 && errno != EINTR) {
			log_error("epoll_wait: %s", strerror(errno));
			goto out;
		}
		for (int k = 0; k < n; k++) {
			struct watcher *w = &ws[evs[k].data.u32];
			ssize_t r = read(w->fd, rbuf, 256 * 1024);
			int64_t t = bench_now_ns();
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r <= 0) {
				if (w->st == W_HEADERS) {
					pending--;
					failed++;
				}
				if (writer_started && !atomic_load(&writer_finished))
					log_warn("watcher %u: stream ended (%s)", evs[k].data.u32,
						 r < 0 ? strerror(errno) : "closed by server");
				watcher_close(w, ep);
				continue;
			}
			const char *p = rbuf;
			size_t len = (size_t)r;
			if (w->st == W_HEADERS) {
				long used = on_headers(w, p, len);
				if (used == 0)
					continue;
				pending--;
				if (used < 0) {
					failed++;
					watcher_close(w, ep);
					continue;
				}
				ready++;
				w->st = W_BODY;
				p += used;
				len -= (size_t)used;
			}
			int rc = w->chunked ? on_chunked(w, p, len, t) : bench_buf_write_bytes(w, p, len, t);
			if (rc) {
				if (rc < 0)
					log_warn("watcher %u: bad stream: %s", evs[k].data.u32,
						 strerror(-rc));
				watcher_close(w, ep);
			}
		}
	}
	double cpu_srv = cfg.server_pid && cpu_srv0 >= 0 ? bench_cpu_seconds(cfg.server_pid) - cpu_srv0 : -1;
	double cpu_self = bench_cpu_seconds(0) - cpu_self0;
	if (cfg.server_pid && bench_sched_seconds(cfg.server_pid, &run1, &wait1) == 0)
		printf("server_runqueue_wait_s=%.2f\n", wait1 - wait0);
	if (writer_started)
		pthread_join(writer, NULL);
	writer_started = false;

	/* Every (watcher, acknowledged write) pair: its delay, or missing. */
	long acked = 0, missing = 0, negative = 0, dups = 0, foreign = 0, errors = 0, ended = 0;
	for (long s = 0; s < total_writes; s++)
		acked += ack_ns[s] > 0;
	delays = malloc((size_t)(acked ? acked : 1) * (size_t)cfg.watchers * sizeof(*delays));
	fsend = malloc((size_t)(acked ? acked : 1) * (size_t)cfg.watchers * sizeof(*fsend));
	spread = malloc((size_t)(acked ? acked : 1) * sizeof(*spread));
	wlat = malloc((size_t)(acked ? acked : 1) * sizeof(*wlat));
	if (!delays || !fsend || !spread || !wlat) {
		log_error("out of memory");
		goto out;
	}
	size_t nd = 0, ns = 0;
	for (long s = 0; s < total_writes; s++) {
		if (ack_ns[s] <= 0)
			continue;
		int64_t first = INT64_MAX, last = 0;
		wlat[ns] = ack_ns[s] - send_ns[s];
		for (int i = 0; i < cfg.watchers; i++) {
			int64_t a = ws[i].arrival[s];
			if (!a) {
				missing++;
				continue;
			}
			first = a < first ? a : first;
			last = a > last ? a : last;
			int64_t d = a - ack_ns[s];
			if (d < 0) {
				negative++;
				d = 0;
			}
			fsend[nd] = a - send_ns[s];
			delays[nd++] = d;
		}
		spread[ns++] = last >= first ? last - first : 0;
	}
	for (int i = 0; i < cfg.watchers; i++) {
		dups += ws[i].dups;
		foreign += ws[i].foreign;
		errors += ws[i].errors;
		ended += ws[i].st == W_DONE;
	}
	qsort(delays, nd, sizeof(*delays), cmp_i64);
	qsort(fsend, nd, sizeof(*fsend), cmp_i64);
	qsort(spread, ns, sizeof(*spread), cmp_i64);
	qsort(wlat, ns, sizeof(*wlat), cmp_i64);
	printf("watchers=%d\nwrites=%ld\nacked=%ld\ndeliveries=%zu\nmissing=%ld\nnegative=%ld\n"
	       "duplicates=%ld\nerror_events=%ld\nother_events=%ld\nended_streams=%ld\n"
	       "p50_ms=%.3f\np99_ms=%.3f\nmax_ms=%.3f\nwrite_p50_ms=%.3f\nwrite_p99_ms=%.3f\n"
	       "spread_p50_ms=%.3f\nspread_p99_ms=%.3f\nfrom_send_p50_ms=%.3f\n"
	       "from_send_p99_ms=%.3f\n",
	       cfg.watchers, total_writes, acked, nd, missing, negative, dups, errors, foreign,
	       ended, pct_ms(delays, nd, 0.5), pct_ms(delays, nd, 0.99),
	       nd ? (double)delays[nd - 1] / 1e6 : 0, pct_ms(wlat, ns, 0.5), pct_ms(wlat, ns, 0.99),
	       pct_ms(spread, ns, 0.5), pct_ms(spread, ns, 0.99), pct_ms(fsend, nd, 0.5),
	       pct_ms(fsend, nd, 0.99));
	printf("run_s=%.3f\nserver_cpu_s=%.2f\nwatchers_cpu_s=%.2f\n", (double)(t_end - t_run) / 1e9,
	       cpu_srv, cpu_self);
	if (missing || acked < total_writes)
		log_warn("%ld of %ld writes acknowledged; %ld deliveries missing", acked,
			 total_writes, missing);
	ret = missing || acked < total_writes || errors ? 1 : 0;
out:
	if (writer_started) {
		pthread_join(writer, NULL);
	}
	for (int i = 0; ws && i < cfg.watchers; i++) {
		if (ws[i].fd >= 0)
			close(ws[i].fd);
		free(ws[i].line);
	}
	if (ep >= 0)
		close(ep);
	free(ws);
	free(arrivals);
	free(ack_ns);
	free(send_ns);
	free(delays);
	free(fsend);
	free(spread);
	free(wlat);
	free(rbuf);
	curl_global_cleanup();
	return ret;
}
