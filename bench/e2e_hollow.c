// SPDX-License-Identifier: Apache-2.0
/*
 * Hollow node agents for bench/e2e: N simulated agents in one process against one shoald,
 * and what a cluster of that size costs the control plane and how fast a change reaches
 * every node.
 *
 *   e2e_hollow --unix PATH --agents N --pods P --services S [--endpoints E]
 *              [--baseline-seconds B] [--settle-seconds W0] [--steady-seconds W]
 *              [--rate R] [--prop-seconds T] [--lease-seconds L] [--setup-seconds X]
 *              [--bookmark-seconds K]
 *              [--server-pid PID]
 *
 * Each hollow agent does what a real one does towards the API and nothing else (no pods
 * run): it registers its Node (capacity, allocatable, a Ready condition, addresses, a pod
 * CIDR), creates its Lease kube-node-lease/<node> (coordination.k8s.io/v1) and renews it
 * every L seconds (default 10, with +-5 % jitter, by PUT with the resourceVersion of its last
 * renewal, as the kubelet does; unconditionally after a failed one), and keeps three watches
 * open: its pods (fieldSelector=spec.nodeName=<node>), Services and EndpointSlices, each a
 * list first and then a watch from the list's resourceVersion with allowWatchBookmarks=true. A watch that ends is
 * resumed from the last revision seen (a bookmark's or an event's); after 410 Gone the agent
 * lists again.
 *
 * The design choice: the streams of every agent are read by TWO threads, each around one epoll
 * set, the agents split between them (odd and even). The "stream thread" also runs the lists,
 * transfers in a libcurl multi handle driven by curl_multi_socket_action() on its epoll set,
 * and restarts every watch that ends. Each watch is a plain HTTP/1.1 GET on a unix socket of
 * its own, whose answer this file reads itself: status line, headers, and the chunked body
 * framed chunk by chunk (size line, data, CRLF, last chunk, trailer), every event line then
 * handled as before (its type, the object's resourceVersion and the sequence annotation are
 * read from it). The writes (registration, the pods, lease renewals, the measured changes) are
 * a second libcurl multi in the main thread with a small pool of keep-alive connections, as a
 * fleet of agents shares the API server's write path. So 15,000 streams cost this process
 * three threads.
 *   Earlier versions read the watches through libcurl, in one thread. With 15,000 transfers in one
 * multi handle, libcurl's bookkeeping per readable socket (its timers, a poll() of the socket,
 * the transfer's state machine) cost more than the read and the event itself: about 16 us of
 * CPU per delivered event, 80 ms for one event to reach 5,000 agents, which the
 * propagation figures then measured as much as shoald. The own reader does per ready socket
 * one recv() and the framing; what an agent must do with what it receives is unchanged. The
 * second reader halves the events one thread must take in turn when a change goes to every
 * agent (on a machine of 2 cores, it also competes for them with shoald's watch writers).
 *
 * Order of the run:
 *   1. every agent registers its Node and Lease; lease renewals run from here to the end
 *   2. S selectorless Services, each with one EndpointSlice of E endpoints (pods' addresses)
 *   3. P pods created with spec.nodeName already set, spread round-robin over the nodes: the
 *      figure is the API and watch side, not the scheduler's choices (shoald's scheduler
 *      runs, and has nothing to bind)
 *   4. shoald's CPU with the leases alone, for B seconds (before any watch)
 *   5. every agent lists and watches (3N streams), SETUP_INFLIGHT requests waiting at once;
 *      streams not open after X seconds (default 300) are given up, and what follows is
 *      measured over the agents whose three streams are open (agents_watching=); after W0 s
 *      of settling, shoald's CPU (utime + stime from /proc/PID/stat, as cores) and memory
 *      over W seconds: steady state
 *   6. propagation, for T seconds: R writes/s alternating an EndpointSlice change (endpoint
 *      0's ready condition flips) and a Service change, each carrying a sequence number in
 *      an annotation; from the write's HTTP acknowledgement to its event's arrival at EVERY
 *      agent (per write: the slowest agent), and over every (agent, write) delivery. Beside
 *      it, R writes/s to one pod each (an annotation), bound to a hollow node: from the
 *      acknowledgement to the arrival at that node's agent.
 * Arrival times are taken right after the recv() that brought the event's last bytes.
 * A delivery that arrives before its write's answer counts as 0 (the event is published
 * when the commit lands; the answer travels separately).
 *
 * Results go to stdout as key=value lines; times in ms.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "log.h"

#define NS		"hollow"
#define LEASE_NS	"kube-node-lease"
#define WRITE_POOL	32  /* keep-alive write connections for registration, pods, leases */
#define PROP_POOL	4   /* write connections kept for the measured changes */
#define SETUP_INFLIGHT	256 /* lists and watches waiting for their answer at once */
#define SETUP_TIMEOUT_S 300 /* default: for every stream to be established */
#define DRAIN_TIMEOUT_S 15  /* after the last measured write, for its deliveries */
#define PHASE_TIMEOUT_S 900 /* registration, objects, fill */
#define RETRY_MS	500 /* a failed list or watch is tried again after this */
#define MAX_ENDPOINTS	100

/* ---- configuration and shared state ---------------------------------------------------- */

struct cfg {
	const char *unix_path;
	int agents, services, endpoints, server_pid;
	long pods;
	double baseline_s, settle_s, steady_s, rate, prop_s, lease_s, setup_s;
	double bookmark_s; /* the server's bookmark interval: a stream quieter than twice it is stuck */
};
static struct cfg cfg;

enum skind { SK_PODS, SK_SVC, SK_EPS, SK_N };
static const char *const skind_name[SK_N] = { "pods", "services", "endpointslices" };
enum sstate { S_IDLE, S_LIST, S_WATCH, S_RETRY };

/* Where a watch's own reader is in the HTTP/1.1 answer. */
enum wphase {
	WP_REQUEST,  /* sending the request (or connecting) */
	WP_HEAD,     /* status line and headers */
	WP_SIZE,     /* a chunk's size line */
	WP_SIZE_EXT, /* ...past its digits */
	WP_DATA,     /* a chunk's bytes */
	WP_DATA_END, /* the CRLF after them */
	WP_TRAILER,  /* after the last chunk, up to the empty line */
	WP_END,	     /* the answer is complete */
};

struct stream {
	CURL *h; /* the list's transfer */
	int fd;	 /* the watch's socket, -1 when none */
	uint32_t agent;
	uint8_t kind, state;
	uint8_t phase;	     /* enum wphase, while the watch's socket is open */
	bool chunked;	     /* the answer's Transfer-Encoding is chunked */
	uint8_t digits;	     /* WP_SIZE: a digit was read */
	uint32_t req_off;    /* request bytes sent */
	uint32_t chunk_left; /* WP_SIZE: the size read so far; WP_DATA: bytes to come */
	bool established;    /* the watch's 200 arrived (this attempt) */
	bool in_reader2;     /* the stream thread's: the watch socket is the second reader's */
	bool retry_list;     /* the retry lists first (else it resumes the watch) */
	bool ever;	     /* ...at least once */
	int code;	     /* HTTP status of this attempt */
	int64_t last_rv;
	int64_t retry_at;
	int64_t list_start, list_ns; /* the first successful list's duration */
	int64_t last_line_at;	     /* when the last event or bookmark arrived (or it opened) */
	char *line;		     /* the current incomplete event line */
	uint32_t llen, lcap;
	char head[160]; /* a list answer's first bytes: its resourceVersion */
	uint32_t hlen;
};

struct agent {
	char name[32];
	int64_t lease_due; /* ns; 0: no lease yet */
	int64_t lease_rv;
	bool lease_busy, node_ok, lease_ok;
};

static struct agent *agents;
static struct stream *streams;
static int nstreams;

/* Measured writes: svc/eps sequence numbers 0..nprop-1, pod ones 0..npod-1. */
static long nprop, npod;
static int64_t *prop_send, *prop_ack; /* ack 0: not answered, -1: failed */
static int64_t *pod_send, *pod_ack;
static long *pod_target;     /* pod index of pod write i */
static int64_t *arrival;     /* [agent * nprop + seq] */
static int64_t *pod_arrival; /* [seq], at the owning agent */

/* Counters written by the stream thread, read by the main thread. */
static atomic_long n_established, n_events, n_bookmarks, n_error_events, n_stream_ends, n_relists,
	n_list_errors, n_watch_errors, n_prop_delivered, n_pod_delivered, n_dups, n_pod_foreign,
	n_bytes;
static atomic_bool streams_stop, streams_go;
/* setup_cancel: the setup took too long; streams never opened are given up and the run goes
 * on with the agents whose three streams are open (agent_ok) */
static atomic_bool setup_cancel, setup_cancelled;
static bool *agent_ok;
static int n_agents_ok;
static atomic_bool agent_ok_ready; /* agent_ok is filled: the stream thread may read it */

static long relaxed(atomic_long *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

static void bump(atomic_long *v, long d)
{
	atomic_fetch_add_explicit(v, d, memory_order_relaxed);
}

/* ---- a libcurl multi driven by epoll ------------------------------------------------- */

/* An epoll data word above 32 bits is a socket of the loop's own (a watch stream's, see
 * below); the rest are libcurl's, by descriptor. */
#define LOOP_OWN (1ull << 32)

struct loop {
	CURLM *m;
	int ep;
	int64_t timer_at; /* ns; 0: none */
	void (*done)(CURL *h, CURLcode rc);
	void (*own)(uint32_t idx, uint32_t events); /* an own socket is ready */
};

static int loop_sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct loop *l = userp;
	struct epoll_event ev = { .data.u64 = (uint64_t)s };

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (socketp && epoll_ctl(l->ep, EPOLL_CTL_DEL, s, NULL) && errno != ENOENT &&
		    errno != EBADF)
			log_warn("epoll_ctl del %d: %s", s, strerror(errno));
		return 0;
	}
	ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
	if (epoll_ctl(l->ep, socketp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s, &ev)) {
		/* a socket curl reopened under the same number after we last saw it */
		if (errno == EEXIST && !epoll_ctl(l->ep, EPOLL_CTL_MOD, s, &ev))
			goto assigned;
		if (errno == ENOENT && !epoll_ctl(l->ep, EPOLL_CTL_ADD, s, &ev))
			goto assigned;
		log_error("epoll_ctl %d: %s", s, strerror(errno));
		return -1;
	}
assigned:
	if (!socketp && curl_multi_assign(l->m, s, l) != CURLM_OK)
		log_warn("curl_multi_assign %d failed", s);
	return 0;
}

static int loop_timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	struct loop *l = userp;

	(void)m;
	l->timer_at = timeout_ms < 0 ? 0 : bench_now_ns() + (int64_t)timeout_ms * 1000000;
	return 0;
}

static int loop_init(struct loop *l, void (*done)(CURL *, CURLcode))
{
	*l = (struct loop){ .done = done, .ep = -1 };
	l->ep = epoll_create1(EPOLL_CLOEXEC);
	l->m = curl_multi_init();
	if (l->ep < 0 || !l->m)
		return -ENOMEM;
	curl_multi_setopt(l->m, CURLMOPT_SOCKETFUNCTION, loop_sock_cb);
	curl_multi_setopt(l->m, CURLMOPT_SOCKETDATA, l);
	curl_multi_setopt(l->m, CURLMOPT_TIMERFUNCTION, loop_timer_cb);
	curl_multi_setopt(l->m, CURLMOPT_TIMERDATA, l);
	return 0;
}

static void loop_free(struct loop *l)
{
	if (l->m)
		curl_multi_cleanup(l->m);
	if (l->ep >= 0)
		close(l->ep);
}

/* Waits up to max_ms for sockets or curl's timer, drives the transfers, reports completed
 * ones to l->done. */
static int loop_run(struct loop *l, int max_ms)
{
	struct epoll_event evs[512];
	int running, wait = max_ms;

	if (l->timer_at) {
		int64_t d = (l->timer_at - bench_now_ns() + 999999) / 1000000;
		if (d < wait)
			wait = d < 0 ? 0 : (int)d;
	}
	int n = epoll_wait(l->ep, evs, 512, wait);
	if (n < 0 && errno != EINTR) {
		log_error("epoll_wait: %s", strerror(errno));
		return -errno;
	}
	for (int i = 0; i < n; i++) {
		int f = 0;
		if (evs[i].data.u64 & LOOP_OWN) {
			l->own((uint32_t)evs[i].data.u64, evs[i].events);
			continue;
		}
		if (evs[i].events & EPOLLIN)
			f |= CURL_CSELECT_IN;
		if (evs[i].events & EPOLLOUT)
			f |= CURL_CSELECT_OUT;
		if (evs[i].events & (EPOLLERR | EPOLLHUP))
			f |= CURL_CSELECT_ERR;
		curl_multi_socket_action(l->m, (curl_socket_t)evs[i].data.u64, f, &running);
	}
	if (l->timer_at && bench_now_ns() >= l->timer_at) {
		l->timer_at = 0;
		curl_multi_socket_action(l->m, CURL_SOCKET_TIMEOUT, 0, &running);
	}
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(l->m, &left)))
		if (msg->msg == CURLMSG_DONE)
			l->done(msg->easy_handle, msg->data.result);
	return 0;
}

/* ---- names and bodies ---------------------------------------------------------------- */

/* Node i's pod CIDR is 10.(100 + i / 256).(i % 256).0/24; pod j runs on node j % N as the
 * (j / N)-th pod there and has the address .(j / N + 2) in it. */
static void pod_ip(long j, char *out, size_t cap)
{
	long n = j % cfg.agents, k = j / cfg.agents;
	snprintf(out, cap, "10.%ld.%ld.%ld", 100 + n / 256, n % 256, k % 250 + 2);
}

static size_t fmt_time(char *out, size_t cap)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	return n + (size_t)snprintf(out + n, cap - n, ".%06ldZ", ts.tv_nsec / 1000);
}

static int body_node(char *b, size_t cap, int i)
{
	return snprintf(
		b, cap,
		"{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"%s\",\"labels\":"
		"{"
		"\"kubernetes.io/hostname\":\"%s\",\"kubernetes.io/os\":\"linux\","
		"\"topology.kubernetes.io/zone\":\"zone-%c\"}},"
		"\"spec\":{\"podCIDR\":\"10.%d.%d.0/24\",\"podCIDRs\":[\"10.%d.%d.0/24\"]},"
		"\"status\":{\"capacity\":{\"cpu\":\"32\",\"memory\":\"128Gi\",\"pods\":\"250\"},"
		"\"allocatable\":{\"cpu\":\"31\",\"memory\":\"126Gi\",\"pods\":\"250\"},"
		"\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"AgentReady\","
		"\"message\":\"hollow agent is posting ready status\"}],"
		"\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"10.%d.%d.%d\"},"
		"{\"type\":\"Hostname\",\"address\":\"%s\"}],"
		"\"nodeInfo\":{\"kubeletVersion\":\"shoal-hollow\",\"operatingSystem\":\"linux\","
		"\"architecture\":\"amd64\"}}}",
		agents[i].name, agents[i].name, 'a' + i % 3, 100 + i / 256, i % 256, 100 + i / 256,
		i % 256, 20 + i / 65024, (i / 254) % 256, i % 254 + 1, agents[i].name);
}

static int body_lease(char *b, size_t cap, int i, bool create)
{
	char t[48], rv[48] = "";
	fmt_time(t, sizeof(t));
	/* after a failed renewal the revision is unknown: the next one is unconditional */
	if (!create && agents[i].lease_rv > 0)
		snprintf(rv, sizeof(rv), ",\"resourceVersion\":\"%lld\"",
			 (long long)agents[i].lease_rv);
	return snprintf(
		b, cap,
		"{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":{"
		"\"name\":\"%s\",\"namespace\":\"" LEASE_NS "\"%s},\"spec\":{"
		"\"holderIdentity\":\"%s\",\"leaseDurationSeconds\":40,\"renewTime\":\"%s\"}}",
		agents[i].name, rv, agents[i].name, t);
}

static int body_pod(char *b, size_t cap, long j)
{
	return snprintf(
		b, cap,
		"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p-%06ld\","
		"\"namespace\":\"" NS "\",\"labels\":{\"app\":\"svc-%04ld\",\"bench\":\"e2e\"}},"
		"\"spec\":{\"nodeName\":\"%s\",\"containers\":[{\"name\":\"app\","
		"\"image\":\"registry.local/app:1\",\"ports\":[{\"containerPort\":8080}],"
		"\"resources\":{\"requests\":{\"cpu\":\"100m\",\"memory\":\"128Mi\"}}}]}}",
		j, cfg.services ? j / cfg.endpoints % cfg.services : 0,
		agents[j % cfg.agents].name);
}

static int body_service(char *b, size_t cap, int s)
{
	return snprintf(b, cap,
			"{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":"
			"\"svc-%04d\",\"namespace\":\"" NS "\"},\"spec\":{\"ports\":[{\"name\":"
			"\"http\",\"port\":80,\"targetPort\":8080}]}}",
			s);
}

/* The endpoints array of service s's slice; endpoint 0 ready or not. */
static int fmt_endpoints(char *b, size_t cap, int s, bool ready0)
{
	size_t off = 0;
	off += (size_t)snprintf(b + off, cap - off, "\"endpoints\":[");
	for (int k = 0; k < cfg.endpoints && off < cap; k++) {
		long j = ((long)s * cfg.endpoints + k) % cfg.pods;
		char ip[32];
		pod_ip(j, ip, sizeof(ip));
		off += (size_t)snprintf(
			b + off, cap - off,
			"%s{\"addresses\":[\"%s\"],\"conditions\":{\"ready\":%s,\"serving\":%s,"
			"\"terminating\":false},\"nodeName\":\"%s\",\"zone\":\"zone-%c\","
			"\"targetRef\":{\"kind\":\"Pod\",\"namespace\":\"" NS "\",\"name\":"
			"\"p-%06ld\"}}",
			k ? "," : "", ip, k || ready0 ? "true" : "false",
			k || ready0 ? "true" : "false", agents[j % cfg.agents].name,
			'a' + (int)(j % cfg.agents % 3), j);
	}
	off += (size_t)snprintf(b + off, cap - off, "]");
	return off < cap ? (int)off : -1;
}

static int body_slice(char *b, size_t cap, int s)
{
	int n = snprintf(b, cap,
			 "{\"apiVersion\":\"discovery.k8s.io/v1\",\"kind\":\"EndpointSlice\","
			 "\"metadata\":{\"name\":\"svc-%04d-a\",\"namespace\":\"" NS
			 "\",\"labels\":{"
			 "\"kubernetes.io/service-name\":\"svc-%04d\","
			 "\"endpointslice.kubernetes.io/managed-by\":\"bench.shoal.io\"}},"
			 "\"addressType\":\"IPv4\",\"ports\":[{\"name\":\"http\",\"port\":8080,"
			 "\"protocol\":\"TCP\"}],",
			 s, s);
	int m = fmt_endpoints(b + n, cap - (size_t)n, s, true);
	if (m < 0 || (size_t)(n + m + 2) > cap)
		return -1;
	b[n + m] = '}';
	b[n + m + 1] = '\0';
	return n + m + 1;
}

/* ---- the stream thread ----------------------------------------------------------------- */

static struct loop sloop = { .ep = -1 };

/*
 * Two readers share the watch sockets, by agent (all three streams of an agent in one): the
 * stream thread (on sloop's epoll set, with the lists) and a second reader thread with an
 * epoll set of its own. A socket is registered once its request is sent, and from then on only
 * its reader touches the stream; when it ends there, the second reader hands it back to the
 * stream thread (handoff), which resumes, relists or retries it.
 */
#define READERS 2
static int reader_ep[READERS] = { -1, -1 };
static pthread_mutex_t handoff_mu = PTHREAD_MUTEX_INITIALIZER;
struct handoff {
	uint32_t idx; /* the stream */
	bool clean;   /* its answer was complete */
};
static struct handoff *handoff, *handed; /* handed: the stream thread's copy */
static size_t nhandoff;

static int reader_of(const struct stream *st)
{
	return (int)(st->agent % READERS);
}
static int64_t parse_rv(const char *p, size_t n)
{
	static const char key[] = "\"resourceVersion\":\"";
	const char *q = memmem(p, n, key, sizeof(key) - 1);
	if (!q)
		return -1;
	q += sizeof(key) - 1;
	int64_t v = 0;
	while (q < p + n && *q >= '0' && *q <= '9')
		v = v * 10 + (*q++ - '0');
	return q < p + n && *q == '"' ? v : -1;
}

static long parse_marker(const char *p, size_t n, const char *key, size_t klen)
{
	const char *q = memmem(p, n, key, klen);
	if (!q)
		return -1;
	q += klen;
	long v = 0;
	const char *s = q;
	while (q < p + n && *q >= '0' && *q <= '9')
		v = v * 10 + (*q++ - '0');
	return q > s && q < p + n && *q == '"' ? v : -1;
}

/* One complete event line of stream st, arrived at t. */
static void on_line(struct stream *st, const char *l, size_t n, int64_t t)
{
	static const char seqk[] = "\"bench.shoal.io/seq\":\"";
	static const char podk[] = "\"bench.shoal.io/podseq\":\"";

	if (n == 0)
		return;
	st->last_line_at = t;
	if (n > 18 && memcmp(l, "{\"type\":\"BOOKMARK\"", 18) == 0) {
		bump(&n_bookmarks, 1);
	} else if (n > 15 && memcmp(l, "{\"type\":\"ERROR\"", 15) == 0) {
		bump(&n_error_events, 1);
		log_warn("%s of %s: %.300s", skind_name[st->kind], agents[st->agent].name, l);
		return;
	} else {
		bump(&n_events, 1);
	}
	int64_t rv = parse_rv(l, n);
	if (rv > st->last_rv)
		st->last_rv = rv;
	if (st->kind == SK_PODS) {
		long seq = parse_marker(l, n, podk, sizeof(podk) - 1);
		if (seq < 0 || seq >= npod)
			return;
		if (pod_target[seq] % cfg.agents != st->agent) {
			/* the pod's marker may show up again on a later event of the same pod; only
			 * an event at another node's agent is wrong */
			bump(&n_pod_foreign, 1);
			return;
		}
		if (pod_arrival[seq]) {
			bump(&n_dups, 1);
			return;
		}
		pod_arrival[seq] = t;
		bump(&n_pod_delivered, 1);
		return;
	}
	long seq = parse_marker(l, n, seqk, sizeof(seqk) - 1);
	if (seq < 0 || seq >= nprop)
		return;
	int64_t *a = &arrival[(size_t)st->agent * (size_t)nprop + (size_t)seq];
	if (*a) {
		bump(&n_dups, 1);
		return;
	}
	*a = t;
	/* the run waits for the deliveries to the agents it measures; one with only some of its
	 * streams open gets events too, and must not be counted */
	if (atomic_load_explicit(&agent_ok_ready, memory_order_acquire) && agent_ok[st->agent])
		bump(&n_prop_delivered, 1);
}

static int line_push(struct stream *st, const char *p, size_t n)
{
	if (st->llen + n + 1 > st->lcap) {
		size_t cap = st->lcap ? st->lcap : 4096;
		while (cap < st->llen + n + 1)
			cap *= 2;
		if (cap > (64u << 20))
			return -E2BIG;
		char *q = realloc(st->line, cap);
		if (!q)
			return -ENOMEM;
		st->line = q;
		st->lcap = (uint32_t)cap;
	}
	memcpy(st->line + st->llen, p, n);
	st->llen += (uint32_t)n;
	return 0;
}

/* The event lines in watch bytes p[0..n) that arrived at t, through st's line buffer (an
 * event may span reads and chunks). Returns 0, or -errno when a line cannot be held. */
static int stream_lines(struct stream *st, const char *p, size_t n, int64_t t)
{
	while (n) {
		const char *nl = memchr(p, '\n', n);
		size_t k = nl ? (size_t)(nl - p) : n;
		if (!nl)
			return line_push(st, p, k);
		if (st->llen) {
			int err = line_push(st, p, k);
			if (err)
				return err;
			on_line(st, st->line, st->llen, t);
			st->llen = 0;
		} else {
			on_line(st, p, k, t);
		}
		p += k + 1;
		n -= k + 1;
	}
	return 0;
}

/* libcurl's write callback of a list: only its resourceVersion matters, and it opens the
 * answer. */
static size_t stream_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct stream *st = arg;
	size_t n = size * nmemb;
	size_t k = sizeof(st->head) - 1 - st->hlen;

	bump(&n_bytes, (long)n);
	k = k < n ? k : n;
	memcpy(st->head + st->hlen, p, k);
	st->hlen += (uint32_t)k;
	st->head[st->hlen] = '\0';
	return n;
}

static size_t stream_header(char *p, size_t size, size_t nmemb, void *arg)
{
	struct stream *st = arg;
	size_t n = size * nmemb;

	if (n > 9 && memcmp(p, "HTTP/", 5) == 0) {
		const char *sp = memchr(p, ' ', n);
		st->code = sp ? atoi(sp + 1) : 0;
	}
	return n;
}

/*
 * The watches' own reader. A watch is a long-lived HTTP/1.1 GET on a plain unix socket of its
 * own: the request is written, the status line and headers are read, and the chunked body is
 * framed here (size line, data, CRLF; the last chunk and its trailer end the answer), its
 * bytes going to stream_lines() with the time of the read that brought them. The socket is
 * in the stream thread's epoll set, edge-triggered once the request is sent: a ready socket
 * is read until a recv() returns less than asked (all there was; more data is a new edge), so
 * an event costs one epoll report and one recv().
 */
#define WATCH_RECV_MAX (64 * 1024)

static int watch_request(const struct stream *st, char *b, size_t cap)
{
	const char *path = st->kind == SK_PODS	? "/api/v1/pods"
			   : st->kind == SK_SVC ? "/api/v1/services"
						: "/apis/discovery.k8s.io/v1/endpointslices";
	char sel[96] = "";

	if (st->kind == SK_PODS)
		snprintf(sel, sizeof(sel), "fieldSelector=spec.nodeName%%3D%s&",
			 agents[st->agent].name);
	int n = snprintf(b, cap,
			 "GET %s?%swatch=1&resourceVersion=%lld&allowWatchBookmarks=true "
			 "HTTP/1.1\r\nHost: shoal\r\nAccept: application/json\r\n\r\n",
			 path, sel, (long long)st->last_rv);
	return n > 0 && (size_t)n < cap ? n : -ENAMETOOLONG;
}

static void watch_ended(struct stream *st, bool clean);

/* Writes what is left of the request. Returns 0 when it is all sent (the answer comes
 * next), 1 when the socket takes no more yet (EPOLLOUT), or -errno. */
static int watch_send(struct stream *st)
{
	char req[512];
	int n = watch_request(st, req, sizeof(req));

	if (n < 0)
		return n;
	while (st->req_off < (uint32_t)n) {
		ssize_t k = send(st->fd, req + st->req_off, (size_t)n - st->req_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == ENOTCONN))
			return 1;
		if (k < 0)
			return -errno;
		st->req_off += (uint32_t)k;
	}
	st->phase = WP_HEAD;
	return 0;
}

/* The epoll events a watch socket waits for: the answer, edge-triggered, once the request
 * is sent. */
static uint32_t watch_events(const struct stream *st)
{
	return st->phase == WP_REQUEST ? EPOLLOUT | EPOLLIN | EPOLLRDHUP
				       : EPOLLIN | EPOLLRDHUP | EPOLLET;
}

static int watch_open(struct stream *st)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int err;

	if (strlen(cfg.unix_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, cfg.unix_path);
	st->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (st->fd < 0)
		return -errno;
	st->phase = WP_REQUEST;
	st->req_off = 0;
	st->chunked = false;
	st->chunk_left = 0;
	if (connect(st->fd, (struct sockaddr *)&sa, sizeof(sa)) && errno != EINPROGRESS) {
		/* EAGAIN: the server's backlog is full; the caller tries again later */
		err = -errno;
		goto err;
	}
	/* Sent before the socket joins its reader's epoll set: from then on, the stream is
	 * that reader's alone until it ends. */
	err = watch_send(st);
	if (err < 0)
		goto err;
	struct epoll_event ev = { .events = watch_events(st),
				  .data.u64 = LOOP_OWN | (uint64_t)(st - streams) };
	st->in_reader2 = reader_of(st) == 1;
	if (epoll_ctl(reader_ep[reader_of(st)], EPOLL_CTL_ADD, st->fd, &ev)) {
		err = -errno;
		st->in_reader2 = false;
		goto err;
	}
	return 0;
err:
	close(st->fd);
	st->fd = -1;
	return err;
}

static bool head_is(const char *l, size_t n, const char *name)
{
	size_t k = strlen(name);
	return n > k && strncasecmp(l, name, k) == 0;
}

/* One line of the answer's head (without its line end). Returns 1 when the head is done,
 * 0 for more, -EPROTO when it is not an answer. */
static int watch_head_line(struct stream *st, const char *l, size_t n)
{
	if (!st->code) {
		const char *sp = memchr(l, ' ', n);
		if (n < 12 || memcmp(l, "HTTP/1.", 7) != 0 || !sp)
			return -EPROTO;
		st->code = atoi(sp + 1);
		return 0;
	}
	if (n == 0)
		return 1;
	if (head_is(l, n, "transfer-encoding:") && memmem(l, n, "chunked", 7))
		st->chunked = true;
	return 0;
}

/* Frames the bytes of one read. Returns 0, 1 when the answer is complete (or, not being a
 * 200 chunked stream, is not read further), -errno on a malformed answer. */
static int watch_feed(struct stream *st, const char *p, size_t n, int64_t t)
{
	while (n) {
		switch (st->phase) {
		case WP_HEAD: {
			const char *nl = memchr(p, '\n', n);
			size_t k = nl ? (size_t)(nl - p) : n;
			int err = line_push(st, p, k);
			if (err || !nl)
				return err;
			p += k + 1;
			n -= k + 1;
			size_t ll = st->llen;
			if (ll && st->line[ll - 1] == '\r')
				ll--;
			err = watch_head_line(st, st->line, ll);
			st->llen = 0;
			if (err < 0)
				return err;
			if (err == 0)
				break;
			if (st->code != 200 || !st->chunked)
				return 1; /* an error answer: its code is what counts */
			st->established = true;
			st->last_line_at = t; /* quiet from here */
			if (!st->ever) {
				st->ever = true;
				bump(&n_established, 1);
			}
			st->phase = WP_SIZE;
			st->chunk_left = 0;
			break;
		}
		case WP_SIZE:
		case WP_SIZE_EXT: {
			/* hex digits, then an extension (after ';') up to the line end */
			int c = *p++;
			n--;
			if (c == '\n') {
				if (!st->digits)
					return -EPROTO;
				st->phase = st->chunk_left ? WP_DATA : WP_TRAILER;
				st->digits = 0;
				break;
			}
			int d = c >= '0' && c <= '9'   ? c - '0'
				: c >= 'a' && c <= 'f' ? c - 'a' + 10
				: c >= 'A' && c <= 'F' ? c - 'A' + 10
						       : -1;
			if (st->phase == WP_SIZE_EXT || c == '\r')
				break;
			if (d < 0) {
				if (c != ';' && c != ' ' && c != '\t')
					return -EPROTO;
				st->phase = WP_SIZE_EXT;
				break;
			}
			if (st->chunk_left > (UINT32_MAX >> 4))
				return -E2BIG;
			st->chunk_left = st->chunk_left * 16 + (uint32_t)d;
			st->digits = 1;
			break;
		}
		case WP_TRAILER: {
			/* trailer lines, counted in chunk_left, up to an empty one */
			int c = *p++;
			n--;
			if (c == '\n') {
				if (!st->chunk_left) {
					st->phase = WP_END;
					return 1;
				}
				st->chunk_left = 0;
			} else if (c != '\r') {
				st->chunk_left++;
			}
			break;
		}
		case WP_DATA: {
			size_t k = n < st->chunk_left ? n : st->chunk_left;
			int err = stream_lines(st, p, k, t);
			if (err)
				return err;
			p += k;
			n -= k;
			st->chunk_left -= (uint32_t)k;
			if (!st->chunk_left)
				st->phase = WP_DATA_END;
			break;
		}
		case WP_DATA_END:
			/* CR LF (the CR optional) */
			if (*p == '\n')
				st->phase = WP_SIZE;
			else if (*p != '\r')
				return -EPROTO;
			p++;
			n--;
			break;
		default:
			return -EPROTO;
		}
	}
	return 0;
}

/* The stream thread's loop found watch socket idx ready. */
static void watch_ready(uint32_t idx, uint32_t events)
{
	static _Thread_local char buf[WATCH_RECV_MAX];
	struct stream *st = &streams[idx];
	int err;

	if (st->fd < 0)
		return; /* ended earlier in this round */
	if (st->phase == WP_REQUEST) {
		if (events & (EPOLLERR | EPOLLHUP)) {
			watch_ended(st, false);
			return;
		}
		err = watch_send(st);
		if (err == 0) {
			struct epoll_event ev = { .events = watch_events(st),
						  .data.u64 = LOOP_OWN | idx };
			if (epoll_ctl(reader_ep[reader_of(st)], EPOLL_CTL_MOD, st->fd, &ev))
				err = -errno;
		}
		if (err < 0) {
			if (relaxed(&n_watch_errors) < 10)
				log_warn("watch %s of %s: send: %s", skind_name[st->kind],
					 agents[st->agent].name, strerror(-err));
			watch_ended(st, false);
			return;
		}
		if (st->phase == WP_REQUEST || !(events & EPOLLIN))
			return;
	}
	for (;;) {
		ssize_t k = recv(st->fd, buf, sizeof(buf), MSG_DONTWAIT);
		int64_t t = bench_now_ns();
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN)
			return;
		if (k <= 0) {
			/* closed: cleanly only after the last chunk */
			if (k < 0 && relaxed(&n_stream_ends) + relaxed(&n_watch_errors) < 10)
				log_warn("watch %s of %s: recv: %s", skind_name[st->kind],
					 agents[st->agent].name, strerror(errno));
			watch_ended(st, st->phase == WP_END);
			return;
		}
		bump(&n_bytes, (long)k);
		err = watch_feed(st, buf, (size_t)k, t);
		if (err < 0 && relaxed(&n_stream_ends) + relaxed(&n_watch_errors) < 10)
			log_warn("watch %s of %s: the answer is not a chunked HTTP/1.1 stream: %s",
				 skind_name[st->kind], agents[st->agent].name, strerror(-err));
		if (err) {
			watch_ended(st, err > 0 && st->phase == WP_END);
			return;
		}
		if ((size_t)k < sizeof(buf))
			return; /* all there was */
	}
}

static void watch_close(struct stream *st)
{
	if (st->fd < 0)
		return;
	/* closing takes the socket out of the epoll set too */
	if (close(st->fd))
		log_warn("close watch socket: %s", strerror(errno));
	st->fd = -1;
}

static int stream_start(struct stream *st, bool list)
{
	st->state = list ? S_LIST : S_WATCH;
	st->established = false;
	st->code = 0;
	st->hlen = 0;
	st->llen = 0;
	if (!list)
		return watch_open(st);
	char url[512], sel[96] = "";
	const char *path = st->kind == SK_PODS	? "/api/v1/pods"
			   : st->kind == SK_SVC ? "/api/v1/services"
						: "/apis/discovery.k8s.io/v1/endpointslices";
	if (st->kind == SK_PODS)
		snprintf(sel, sizeof(sel), "fieldSelector=spec.nodeName%%3D%s&",
			 agents[st->agent].name);
	snprintf(url, sizeof(url), "http://shoal%s?%slimit=0", path, sel);
	st->list_start = bench_now_ns();
	curl_easy_setopt(st->h, CURLOPT_URL, url);
	if (curl_multi_add_handle(sloop.m, st->h) != CURLM_OK) {
		log_error("curl_multi_add_handle failed");
		return -EIO;
	}
	return 0;
}

static void stream_retry(struct stream *st, bool list)
{
	st->state = S_RETRY;
	st->retry_list = list || !st->last_rv;
	st->retry_at = bench_now_ns() + (int64_t)RETRY_MS * 1000000;
}

/* A list's transfer is done: the watch follows from its resourceVersion. */
static void stream_done(CURL *h, CURLcode rc)
{
	struct stream *st = NULL;

	curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&st);
	curl_multi_remove_handle(sloop.m, h);
	if (atomic_load(&streams_stop))
		return;
	int64_t rv = st->code == 200 && rc == CURLE_OK ? parse_rv(st->head, st->hlen) : -1;
	if (rv < 0) {
		bump(&n_list_errors, 1);
		if (relaxed(&n_list_errors) <= 10)
			log_warn("list %s for %s: %s, HTTP %d", skind_name[st->kind],
				 agents[st->agent].name, curl_easy_strerror(rc), st->code);
		stream_retry(st, true);
		return;
	}
	st->last_rv = rv;
	if (!st->list_ns)
		st->list_ns = bench_now_ns() - st->list_start;
	if (stream_start(st, false))
		stream_retry(st, false);
}

/* A watch ended (clean: its answer was complete): resume it from the last revision seen, or
 * list again after 410. */
static void watch_restart(struct stream *st, bool clean);

static void watch_ended(struct stream *st, bool clean)
{
	watch_close(st);
	if (atomic_load(&streams_stop))
		return;
	if (st->in_reader2) {
		/* The stream thread restarts it (lists and retries are its own). */
		pthread_mutex_lock(&handoff_mu);
		handoff[nhandoff].idx = (uint32_t)(st - streams);
		handoff[nhandoff].clean = clean;
		nhandoff++;
		pthread_mutex_unlock(&handoff_mu);
		return;
	}
	watch_restart(st, clean);
}

/* In the stream thread: a watch that ended goes on. */
static void watch_restart(struct stream *st, bool clean)
{
	if (st->established)
		bump(&n_stream_ends, 1);
	else
		bump(&n_watch_errors, 1);
	if (relaxed(&n_stream_ends) + relaxed(&n_watch_errors) <= 10)
		log_warn("watch %s of %s ended: %s, HTTP %d", skind_name[st->kind],
			 agents[st->agent].name, clean ? "complete" : "cut", st->code);
	if (st->code == 410) {
		bump(&n_relists, 1);
		if (stream_start(st, true))
			stream_retry(st, true);
	} else if (st->established && clean) {
		if (stream_start(st, false))
			stream_retry(st, false);
	} else {
		stream_retry(st, false); /* resumes from the last revision, after a pause */
	}
}

static int streams_init(void)
{
	nstreams = cfg.agents * SK_N;
	streams = calloc((size_t)nstreams, sizeof(*streams));
	if (!streams)
		return -ENOMEM;
	for (int i = 0; i < nstreams; i++)
		streams[i].fd = -1;
	for (int i = 0; i < nstreams; i++) {
		struct stream *st = &streams[i];
		st->agent = (uint32_t)(i / SK_N);
		st->kind = (uint8_t)(i % SK_N);
		st->h = curl_easy_init();
		if (!st->h)
			return -ENOMEM;
		curl_easy_setopt(st->h, CURLOPT_UNIX_SOCKET_PATH, cfg.unix_path);
		curl_easy_setopt(st->h, CURLOPT_WRITEFUNCTION, stream_write);
		curl_easy_setopt(st->h, CURLOPT_WRITEDATA, st);
		curl_easy_setopt(st->h, CURLOPT_HEADERFUNCTION, stream_header);
		curl_easy_setopt(st->h, CURLOPT_HEADERDATA, st);
		curl_easy_setopt(st->h, CURLOPT_PRIVATE, st);
		curl_easy_setopt(st->h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(st->h, CURLOPT_CONNECTTIMEOUT, 30L);
	}
	return 0;
}

/* The second reader: the watch sockets of odd agents. */
static void *reader2_main(void *arg)
{
	struct epoll_event evs[512];

	(void)arg;
	while (!atomic_load(&streams_stop)) {
		int n = epoll_wait(reader_ep[1], evs, 512, 20);
		if (n < 0 && errno != EINTR) {
			log_error("epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++)
			watch_ready((uint32_t)evs[i].data.u64, evs[i].events);
	}
	return NULL;
}

static void *stream_main(void *arg)
{
	int next = 0;
	int64_t last_retry_scan = 0;

	(void)arg;
	while (!atomic_load(&streams_go) && !atomic_load(&streams_stop))
		usleep(1000);
	while (!atomic_load(&streams_stop)) {
		if (atomic_load(&setup_cancel) && !atomic_load(&setup_cancelled)) {
			for (int i = 0; i < nstreams; i++) {
				struct stream *st = &streams[i];
				if (st->ever)
					continue;
				if (i < next && st->state == S_LIST)
					curl_multi_remove_handle(sloop.m, st->h);
				if (st->in_reader2)
					continue; /* the second reader's: left open */
				watch_close(st);
				st->state = S_IDLE;
			}
			next = nstreams;
			atomic_store(&setup_cancelled, true);
		}
		/* Start streams while few are waiting for an answer: a burst of thousands of
		 * connects would overflow the server's listen backlog. */
		long waiting = next * 1L - relaxed(&n_established);
		while (next < nstreams && waiting < SETUP_INFLIGHT) {
			if (stream_start(&streams[next], true))
				stream_retry(&streams[next], true);
			next++;
			waiting++;
		}
		/* Watches the second reader saw end. */
		pthread_mutex_lock(&handoff_mu);
		size_t nh = nhandoff;
		for (size_t i = 0; i < nh; i++)
			handed[i] = handoff[i];
		nhandoff = 0;
		pthread_mutex_unlock(&handoff_mu);
		for (size_t i = 0; i < nh; i++) {
			streams[handed[i].idx].in_reader2 = false;
			watch_restart(&streams[handed[i].idx], handed[i].clean);
		}
		int64_t now = bench_now_ns();
		if (now - last_retry_scan > 100 * 1000000L) {
			last_retry_scan = now;
			for (int i = 0; i < next; i++) {
				struct stream *st = &streams[i];
				if (st->in_reader2)
					continue;
				if (st->state == S_RETRY && st->retry_at <= now &&
				    stream_start(st, st->retry_list))
					stream_retry(st, st->retry_list);
			}
		}
		if (loop_run(&sloop, next < nstreams ? 1 : 20))
			break;
	}
	return NULL;
}

/* ---- the writer (main thread) ------------------------------------------------------------ */

enum op {
	OP_NODE,
	OP_LEASE_CREATE,
	OP_LEASE,
	OP_SVC,
	OP_EPS,
	OP_POD,
	OP_PROP,
	OP_PODPROP,
};

struct wconn {
	CURL *h;
	int op;
	long arg;
	bool busy;
	int64_t t_send;
	struct bench_buf resp;
	char *body;
};

#define BODY_CAP (64 * 1024)

static struct loop wloop = { .ep = -1 };
static struct wconn wpool[WRITE_POOL + PROP_POOL];
static struct curl_slist *hdr_json, *hdr_merge;
static bool setup_failed; /* a registration or fill write was refused: the run stops */
static long w_errors, n_node_ok, n_lease_ok, n_svc_ok, n_eps_ok, n_pods_ok;
static long lease_renewals, lease_errors;
/* lease renewal latencies (ns) with the time they were answered, for the steady window */
static int64_t *lease_lat, *lease_at;
static long n_lease_lat, cap_lease_lat;
static int64_t lease_period_ns;
static int64_t lease_next; /* ns: no lease is due before (leases_tick) */

static int64_t jitter_ns(int64_t base, double frac)
{
	double r = (double)rand() / (double)RAND_MAX * 2 - 1;
	return base + (int64_t)((double)base * frac * r);
}

static struct wconn *wfree(bool prop)
{
	int from = prop ? WRITE_POOL : 0, to = prop ? WRITE_POOL + PROP_POOL : WRITE_POOL;
	for (int i = from; i < to; i++)
		if (!wpool[i].busy)
			return &wpool[i];
	return NULL;
}

static int wsend(struct wconn *c, int op, long arg, const char *method, const char *path,
		 bool merge, int len)
{
	char url[512];
	if (len < 0 || len >= BODY_CAP) {
		log_error("request body for %s does not fit", path);
		return -E2BIG;
	}
	snprintf(url, sizeof(url), "http://shoal%s", path);
	curl_easy_setopt(c->h, CURLOPT_URL, url);
	curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, c->body);
	curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE, (long)len);
	curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, merge ? hdr_merge : hdr_json);
	c->op = op;
	c->arg = arg;
	c->resp.len = 0;
	c->t_send = bench_now_ns();
	if (curl_multi_add_handle(wloop.m, c->h) != CURLM_OK) {
		log_error("curl_multi_add_handle failed");
		return -EIO;
	}
	c->busy = true;
	return 0;
}

static void note_lease_lat(int64_t at, int64_t lat)
{
	if (n_lease_lat == cap_lease_lat) {
		long cap = cap_lease_lat ? cap_lease_lat * 2 : 65536;
		int64_t *a = realloc(lease_lat, (size_t)cap * sizeof(*a));
		if (!a)
			return;
		lease_lat = a;
		int64_t *b = realloc(lease_at, (size_t)cap * sizeof(*b));
		if (!b)
			return;
		lease_at = b;
		cap_lease_lat = cap;
	}
	lease_lat[n_lease_lat] = lat;
	lease_at[n_lease_lat++] = at;
}

static void write_done(CURL *h, CURLcode rc)
{
	struct wconn *c = NULL;
	long code = 0;
	int64_t t = bench_now_ns();

	curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&c);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_multi_remove_handle(wloop.m, h);
	c->busy = false;
	bool ok = rc == CURLE_OK && (code == 200 || code == 201);
	if (!ok && !(c->op == OP_NODE && code == 409)) {
		w_errors++;
		if (c->op != OP_LEASE && c->op != OP_PROP && c->op != OP_PODPROP)
			setup_failed = true;
		if (w_errors <= 20)
			log_warn("write (op %d, %ld): %s, HTTP %ld: %.300s", c->op, c->arg,
				 curl_easy_strerror(rc), code, c->resp.len ? c->resp.p : "");
	}
	switch (c->op) {
	case OP_NODE:
		if (ok || code == 409) {
			agents[c->arg].node_ok = true;
			n_node_ok++;
		}
		break;
	case OP_LEASE_CREATE:
	case OP_LEASE: {
		struct agent *a = &agents[c->arg];
		a->lease_busy = false;
		int64_t rv = ok && c->resp.p ? parse_rv(c->resp.p, c->resp.len) : -1;
		if (c->op == OP_LEASE) {
			lease_renewals++;
			if (!ok)
				lease_errors++;
			else
				note_lease_lat(t, t - c->t_send);
		} else if (ok) {
			a->lease_ok = true;
			n_lease_ok++;
			/* first renewals spread over one period */
			a->lease_due =
				t + (int64_t)((double)rand() / RAND_MAX * (double)lease_period_ns);
		}
		a->lease_rv = rv > 0 ? rv : 0;
		if (a->lease_ok && c->op == OP_LEASE)
			a->lease_due = t + jitter_ns(lease_period_ns, 0.05);
		if (a->lease_ok && a->lease_due < lease_next)
			lease_next = a->lease_due;
		if (!a->lease_ok && !ok)
			a->lease_due = 0; /* creation failed: the registration phase tries again */
		break;
	}
	case OP_SVC:
		n_svc_ok += ok;
		break;
	case OP_EPS:
		n_eps_ok += ok;
		break;
	case OP_POD:
		n_pods_ok += ok;
		break;
	case OP_PROP:
		prop_ack[c->arg] = ok ? t : -1;
		break;
	case OP_PODPROP:
		pod_ack[c->arg] = ok ? t : -1;
		break;
	}
}

static int wpool_init(void)
{
	hdr_json = curl_slist_append(NULL, "Content-Type: application/json");
	hdr_json = curl_slist_append(hdr_json, "Expect:");
	hdr_merge = curl_slist_append(NULL, "Content-Type: application/merge-patch+json");
	hdr_merge = curl_slist_append(hdr_merge, "Expect:");
	if (!hdr_json || !hdr_merge)
		return -ENOMEM;
	for (int i = 0; i < WRITE_POOL + PROP_POOL; i++) {
		struct wconn *c = &wpool[i];
		c->h = curl_easy_init();
		c->body = malloc(BODY_CAP);
		if (!c->h || !c->body)
			return -ENOMEM;
		curl_easy_setopt(c->h, CURLOPT_UNIX_SOCKET_PATH, cfg.unix_path);
		curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, bench_buf_write);
		curl_easy_setopt(c->h, CURLOPT_WRITEDATA, &c->resp);
		curl_easy_setopt(c->h, CURLOPT_PRIVATE, c);
		curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c->h, CURLOPT_TIMEOUT, 60L);
	}
	curl_multi_setopt(wloop.m, CURLMOPT_MAXCONNECTS, (long)(WRITE_POOL + PROP_POOL) * 2);
	return 0;
}

/* Sends the lease renewals that are due, as far as the pool allows. */
static int leases_tick(int64_t now)
{
	static int cursor;
	/* Nothing is due before lease_next: the agents are not scanned (this runs every ms, on
	 * the cores shoald and the stream thread need). */
	if (now < lease_next)
		return 0;
	lease_next = INT64_MAX;
	for (int k = 0; k < cfg.agents; k++) {
		int i = (cursor + k) % cfg.agents;
		struct agent *a = &agents[i];
		if (!a->lease_ok || a->lease_busy)
			continue;
		if (a->lease_due > now) {
			lease_next = a->lease_due < lease_next ? a->lease_due : lease_next;
			continue;
		}
		struct wconn *c = wfree(false);
		if (!c) {
			cursor = i;
			lease_next = now; /* the next tick goes on from here */
			return 0;
		}
		char path[160];
		snprintf(path, sizeof(path),
			 "/apis/coordination.k8s.io/v1/namespaces/" LEASE_NS "/leases/%s", a->name);
		a->lease_busy = true;
		if (wsend(c, OP_LEASE, i, "PUT", path, false,
			  body_lease(c->body, BODY_CAP, i, false)))
			return -EIO;
	}
	return 0;
}

/* A synchronous request outside the loops (setup only). */
static int request(const char *method, const char *path, const char *body, long *code)
{
	CURL *h = curl_easy_init();
	char url[512];
	struct bench_buf b = { 0 };
	if (!h)
		return -ENOMEM;
	snprintf(url, sizeof(url), "http://shoal%s", path);
	curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, cfg.unix_path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr_json);
	}
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, bench_buf_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	CURLcode rc = curl_easy_perform(h);
	*code = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, code);
	if (rc != CURLE_OK)
		log_error("%s %s: %s", method, path, curl_easy_strerror(rc));
	else if (*code >= 300 && *code != 409)
		log_error("%s %s: HTTP %ld: %.300s", method, path, *code, b.p ? b.p : "");
	curl_easy_cleanup(h);
	free(b.p);
	return rc == CURLE_OK ? 0 : -EIO;
}

/* ---- measurements of the server --------------------------------------------------------- */

struct sample {
	int64_t t;
	double srv_cpu, self_cpu, srv_run, srv_wait;
	long events, bookmarks, bytes;
};

static void sample_take(struct sample *s)
{
	s->t = bench_now_ns();
	s->srv_cpu = cfg.server_pid ? bench_cpu_seconds(cfg.server_pid) : -1;
	s->self_cpu = bench_cpu_seconds(0);
	s->srv_run = s->srv_wait = -1;
	if (cfg.server_pid)
		bench_sched_seconds(cfg.server_pid, &s->srv_run, &s->srv_wait);
	s->events = relaxed(&n_events);
	s->bookmarks = relaxed(&n_bookmarks);
	s->bytes = relaxed(&n_bytes);
}

/* A field of /proc/PID/status in MiB (kB there), or -1. */
static double status_mib(int pid, const char *field)
{
	char path[64], line[256];
	size_t fl = strlen(field);
	double v = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
			v = strtod(line + fl + 1, NULL) / 1024;
			break;
		}
	fclose(f);
	return v;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct_ms(const int64_t *v, size_t n, double p)
{
	if (!n)
		return -1;
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
	fprintf(f,
		"usage: e2e_hollow --unix PATH --agents N --pods P --services S [--endpoints E]\n"
		"                  [--baseline-seconds B] [--settle-seconds W0] "
		"[--steady-seconds W]\n"
		"                  [--rate R] [--prop-seconds T] [--lease-seconds L] "
		"[--setup-seconds X]\n"
		"                  "
		"[--bookmark-seconds K] [--server-pid PID]\n");
}

static double secs_since(int64_t t0)
{
	return (double)(bench_now_ns() - t0) / 1e9;
}

/* Runs the writer loop (leases keep going) until done() is true or the time is up. */
static int run_until(bool (*done)(void), double max_s, const char *what)
{
	int64_t t0 = bench_now_ns();
	while (!done()) {
		if (secs_since(t0) > max_s) {
			log_error("%s: not done after %.0f s", what, max_s);
			return -ETIMEDOUT;
		}
		if (leases_tick(bench_now_ns()) || loop_run(&wloop, 5))
			return -EIO;
	}
	return 0;
}

static int64_t run_deadline;
static bool time_is_up(void)
{
	return bench_now_ns() >= run_deadline;
}

static int run_for(double s)
{
	run_deadline = bench_now_ns() + (int64_t)(s * 1e9);
	return run_until(time_is_up, s + 60, "wait");
}

static bool writes_idle(void)
{
	for (int i = 0; i < WRITE_POOL + PROP_POOL; i++)
		if (wpool[i].busy && wpool[i].op != OP_LEASE)
			return false;
	return true;
}

static bool streams_ready(void)
{
	return relaxed(&n_established) == nstreams;
}

static bool streams_ready_or_time(void)
{
	return streams_ready() || time_is_up();
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "unix", required_argument, NULL, 'u' },
		{ "agents", required_argument, NULL, 'a' },
		{ "pods", required_argument, NULL, 'p' },
		{ "services", required_argument, NULL, 's' },
		{ "endpoints", required_argument, NULL, 'e' },
		{ "baseline-seconds", required_argument, NULL, 'B' },
		{ "settle-seconds", required_argument, NULL, 'W' },
		{ "steady-seconds", required_argument, NULL, 'w' },
		{ "rate", required_argument, NULL, 'r' },
		{ "prop-seconds", required_argument, NULL, 'T' },
		{ "lease-seconds", required_argument, NULL, 'L' },
		{ "setup-seconds", required_argument, NULL, 'X' },
		{ "bookmark-seconds", required_argument, NULL, 'K' },
		{ "server-pid", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	pthread_t sthread, rthread;
	bool sthread_started = false, rthread_started = false;
	int o, ret = 1, err;

	cfg = (struct cfg){ .agents = 200,
			    .pods = 3000,
			    .services = 20,
			    .endpoints = 20,
			    .baseline_s = 3,
			    .settle_s = 3,
			    .steady_s = 10,
			    .rate = 5,
			    .prop_s = 10,
			    .lease_s = 10,
			    .setup_s = SETUP_TIMEOUT_S,
			    .bookmark_s = 60 };
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'u':
			cfg.unix_path = optarg;
			break;
		case 'a':
			cfg.agents = atoi(optarg);
			break;
		case 'p':
			cfg.pods = atol(optarg);
			break;
		case 's':
			cfg.services = atoi(optarg);
			break;
		case 'e':
			cfg.endpoints = atoi(optarg);
			break;
		case 'B':
			cfg.baseline_s = atof(optarg);
			break;
		case 'W':
			cfg.settle_s = atof(optarg);
			break;
		case 'w':
			cfg.steady_s = atof(optarg);
			break;
		case 'r':
			cfg.rate = atof(optarg);
			break;
		case 'T':
			cfg.prop_s = atof(optarg);
			break;
		case 'L':
			cfg.lease_s = atof(optarg);
			break;
		case 'X':
			cfg.setup_s = atof(optarg);
			break;
		case 'K':
			cfg.bookmark_s = atof(optarg);
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
	if (!cfg.unix_path || cfg.agents < 1 || cfg.agents > 60000 || cfg.pods < 1 ||
	    cfg.services < 1 || cfg.services > 9999 || cfg.endpoints < 1 ||
	    cfg.endpoints > MAX_ENDPOINTS || cfg.rate <= 0 || cfg.prop_s <= 0 ||
	    cfg.steady_s <= 0 || cfg.lease_s <= 0 || cfg.setup_s <= 0 || cfg.bookmark_s <= 0 ||
	    cfg.baseline_s < 0 || cfg.settle_s < 0 || cfg.pods / cfg.agents > 240) {
		usage(stderr);
		return 2;
	}
	log_init("e2e_hollow", LOG_LVL_INFO);
	srand((unsigned)getpid());
	lease_period_ns = (int64_t)(cfg.lease_s * 1e9);
	nprop = npod = (long)(cfg.rate * cfg.prop_s + 0.5);
	if (nprop < 1)
		nprop = npod = 1;

	err = raise_nofile((rlim_t)cfg.agents * SK_N + 1024);
	if (err) {
		log_error("raise RLIMIT_NOFILE to %d: %s", cfg.agents * SK_N + 1024,
			  strerror(-err));
		return 1;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		log_error("curl_global_init failed");
		return 1;
	}
	agents = calloc((size_t)cfg.agents, sizeof(*agents));
	agent_ok = calloc((size_t)cfg.agents, sizeof(*agent_ok));
	arrival = calloc((size_t)cfg.agents * (size_t)nprop, sizeof(*arrival));
	prop_send = calloc((size_t)nprop, sizeof(*prop_send));
	prop_ack = calloc((size_t)nprop, sizeof(*prop_ack));
	pod_send = calloc((size_t)npod, sizeof(*pod_send));
	pod_ack = calloc((size_t)npod, sizeof(*pod_ack));
	pod_target = calloc((size_t)npod, sizeof(*pod_target));
	pod_arrival = calloc((size_t)npod, sizeof(*pod_arrival));
	if (!agents || !agent_ok || !arrival || !prop_send || !prop_ack || !pod_send || !pod_ack ||
	    !pod_target || !pod_arrival || loop_init(&wloop, write_done) ||
	    loop_init(&sloop, stream_done) || wpool_init() || streams_init()) {
		log_error("setup: out of memory");
		goto out;
	}
	sloop.own = watch_ready;
	reader_ep[0] = sloop.ep;
	reader_ep[1] = epoll_create1(EPOLL_CLOEXEC);
	handoff = calloc((size_t)nstreams, sizeof(*handoff));
	handed = calloc((size_t)nstreams, sizeof(*handed));
	if (reader_ep[1] < 0 || !handoff || !handed) {
		log_error("setup: %s", strerror(errno));
		goto out;
	}
	for (int i = 0; i < cfg.agents; i++)
		snprintf(agents[i].name, sizeof(agents[i].name), "hollow-%05d", i);
	for (long i = 0; i < npod; i++)
		pod_target[i] = (i * 7919 + 13) % cfg.pods;
	if (pthread_create(&sthread, NULL, stream_main, NULL)) {
		log_error("pthread_create failed");
		goto out;
	}
	sthread_started = true;
	if (pthread_create(&rthread, NULL, reader2_main, NULL)) {
		log_error("pthread_create failed");
		goto out;
	}
	rthread_started = true;

	/* 0. Namespaces. kube-node-lease may exist already (shoald makes it). */
	long code;
	if (request("POST", "/api/v1/namespaces", "{\"metadata\":{\"name\":\"" LEASE_NS "\"}}",
		    &code) ||
	    (code != 201 && code != 409) ||
	    request("POST", "/api/v1/namespaces", "{\"metadata\":{\"name\":\"" NS "\"}}", &code) ||
	    (code != 201 && code != 409))
		goto out;

	/* 1. Registration: Node, then Lease, for every agent. */
	int64_t t0 = bench_now_ns();
	int next_node = 0;
	while (n_lease_ok < cfg.agents) {
		int64_t now = bench_now_ns();
		if (secs_since(t0) > PHASE_TIMEOUT_S) {
			log_error("registration: %ld of %d nodes, %ld leases after %d s", n_node_ok,
				  cfg.agents, n_lease_ok, PHASE_TIMEOUT_S);
			goto out;
		}
		for (int i = 0; i < cfg.agents; i++) {
			struct agent *a = &agents[i];
			if (!a->node_ok || a->lease_ok || a->lease_busy)
				continue;
			struct wconn *c = wfree(false);
			if (!c)
				break;
			a->lease_busy = true;
			if (wsend(c, OP_LEASE_CREATE, i, "POST",
				  "/apis/coordination.k8s.io/v1/namespaces/" LEASE_NS "/leases",
				  false, body_lease(c->body, BODY_CAP, i, true)))
				goto out;
		}
		struct wconn *c;
		while (next_node < cfg.agents && (c = wfree(false))) {
			if (wsend(c, OP_NODE, next_node, "POST", "/api/v1/nodes", false,
				  body_node(c->body, BODY_CAP, next_node)))
				goto out;
			next_node++;
		}
		if (leases_tick(now) || loop_run(&wloop, 5))
			goto out;
		if (setup_failed) {
			log_error("registration: a write failed");
			goto out;
		}
	}
	double register_s = secs_since(t0);
	log_info("%d nodes and leases registered in %.1f s", cfg.agents, register_s);

	/* 2. Services and their EndpointSlices. */
	int next_svc = 0, next_eps = 0;
	t0 = bench_now_ns();
	while (n_svc_ok + n_eps_ok < 2L * cfg.services) {
		struct wconn *c;
		char path[160];
		if (secs_since(t0) > PHASE_TIMEOUT_S || setup_failed) {
			log_error("services: %ld services, %ld slices stored", n_svc_ok, n_eps_ok);
			goto out;
		}
		while (next_svc < cfg.services && (c = wfree(false))) {
			if (wsend(c, OP_SVC, next_svc, "POST", "/api/v1/namespaces/" NS "/services",
				  false, body_service(c->body, BODY_CAP, next_svc)))
				goto out;
			next_svc++;
		}
		while (next_eps < cfg.services && (c = wfree(false))) {
			snprintf(path, sizeof(path),
				 "/apis/discovery.k8s.io/v1/namespaces/" NS "/endpointslices");
			if (wsend(c, OP_EPS, next_eps, "POST", path, false,
				  body_slice(c->body, BODY_CAP, next_eps)))
				goto out;
			next_eps++;
		}
		if (leases_tick(bench_now_ns()) || loop_run(&wloop, 5))
			goto out;
		if (next_svc == cfg.services && next_eps == cfg.services && writes_idle() &&
		    n_svc_ok + n_eps_ok < 2L * cfg.services) {
			log_error("services: %ld of %d services, %ld slices stored", n_svc_ok,
				  cfg.services, n_eps_ok);
			goto out;
		}
	}

	/* 3. The pods, bound already. Lease renewals go first, the fill takes what is left. */
	t0 = bench_now_ns();
	long next_pod = 0;
	while (n_pods_ok < cfg.pods) {
		struct wconn *c;
		if (secs_since(t0) > PHASE_TIMEOUT_S || setup_failed) {
			log_error("fill: %ld of %ld pods stored after %.0f s", n_pods_ok, cfg.pods,
				  secs_since(t0));
			goto out;
		}
		if (leases_tick(bench_now_ns()))
			goto out;
		while (next_pod < cfg.pods && (c = wfree(false))) {
			if (wsend(c, OP_POD, next_pod, "POST", "/api/v1/namespaces/" NS "/pods",
				  false, body_pod(c->body, BODY_CAP, next_pod)))
				goto out;
			next_pod++;
		}
		if (loop_run(&wloop, 5))
			goto out;
		if (next_pod == cfg.pods && writes_idle() && n_pods_ok < cfg.pods) {
			log_error("fill: %ld of %ld pods stored", n_pods_ok, cfg.pods);
			goto out;
		}
	}
	double fill_s = secs_since(t0);
	log_info("%ld pods stored in %.1f s (%.0f/s)", cfg.pods, fill_s, (double)cfg.pods / fill_s);

	/* 4. Leases alone. */
	struct sample b0, b1;
	sample_take(&b0);
	if (run_for(cfg.baseline_s))
		goto out;
	sample_take(&b1);
	double rss_nowatch = status_mib(cfg.server_pid, "VmRSS");
	double anon_nowatch = status_mib(cfg.server_pid, "RssAnon");

	/* 5. Every agent lists and watches; then the steady window. */
	t0 = bench_now_ns();
	atomic_store(&streams_go, true);
	for (;;) {
		/* progress every 10 s: how many streams are open and what shoald spends */
		struct sample a, b;
		sample_take(&a);
		run_deadline = a.t + (int64_t)((cfg.setup_s < 10 ? cfg.setup_s : 10) * 1e9);
		if (run_until(streams_ready_or_time, 70, "watches"))
			goto out;
		sample_take(&b);
		if (streams_ready())
			break;
		log_info("%ld of %d streams open after %.0f s; shoald %.2f cores, waited %.1f s "
			 "for a "
			 "CPU, in the last %.0f s",
			 relaxed(&n_established), nstreams, secs_since(t0),
			 (b.srv_cpu - a.srv_cpu) / ((double)(b.t - a.t) / 1e9),
			 b.srv_wait - a.srv_wait, (double)(b.t - a.t) / 1e9);
		if (secs_since(t0) > cfg.setup_s) {
			log_warn("watches: only %ld of %d streams open after %.0f s: going on with "
				 "the "
				 "agents whose three streams are open",
				 relaxed(&n_established), nstreams, cfg.setup_s);
			atomic_store(&setup_cancel, true);
			while (!atomic_load(&setup_cancelled))
				usleep(1000);
			break;
		}
	}
	for (int i = 0; i < cfg.agents; i++) {
		agent_ok[i] = !atomic_load(&setup_cancelled) ||
			      (streams[i * SK_N].ever && streams[i * SK_N + 1].ever &&
			       streams[i * SK_N + 2].ever);
		n_agents_ok += agent_ok[i];
	}
	atomic_store_explicit(&agent_ok_ready, true, memory_order_release);
	if (!n_agents_ok) {
		log_error("no agent has its three streams open");
		goto out;
	}
	/* pod changes go to pods of watching agents */
	for (long i = 0; i < npod; i++)
		for (long k = 0; k < cfg.agents && !agent_ok[pod_target[i] % cfg.agents]; k++)
			pod_target[i] = (pod_target[i] + 1) % cfg.pods;
	double setup_s = secs_since(t0);
	log_info("%ld of %d streams open (%d of %d agents with all three) after %.1f s",
		 relaxed(&n_established), nstreams, n_agents_ok, cfg.agents, setup_s);
	if (run_for(cfg.settle_s))
		goto out;
	struct sample s0, s1;
	long lr0 = lease_renewals, le0 = lease_errors, ll0 = n_lease_lat;
	sample_take(&s0);
	if (run_for(cfg.steady_s))
		goto out;
	sample_take(&s1);
	long lr1 = lease_renewals, le1 = lease_errors, ll1 = n_lease_lat;
	double rss = status_mib(cfg.server_pid, "VmRSS"), hwm = status_mib(cfg.server_pid, "VmHWM");
	double anon = status_mib(cfg.server_pid, "RssAnon"),
	       file = status_mib(cfg.server_pid, "RssFile");
	double self_rss = status_mib(getpid(), "VmRSS");
	log_info("steady: shoald %.2f cores, VmRSS %.0f MiB",
		 (s1.srv_cpu - s0.srv_cpu) / ((double)(s1.t - s0.t) / 1e9), rss);

	/* 6. Propagation: open-loop, svc/eps writes at R/s and pod writes at R/s, offset by half
	 * a period. */
	struct sample p0, p1;
	sample_take(&p0);
	int64_t tp = bench_now_ns(), period = (int64_t)(1e9 / cfg.rate), drain_end = 0;
	long next_prop = 0, next_podw = 0, ends_before = relaxed(&n_stream_ends);
	for (;;) {
		int64_t now = bench_now_ns();
		struct wconn *c;
		char path[200];
		while (next_prop < nprop && tp + next_prop * period <= now && (c = wfree(true))) {
			long s = next_prop;
			int svc = (int)(s / 2 % cfg.services);
			int n;
			if (s % 2 == 0) {
				/* the slice: endpoint 0 flips between ready and not */
				bool ready0 = (s / 2 / cfg.services) % 2 == 1;
				n = snprintf(
					c->body, BODY_CAP,
					"{\"metadata\":{\"annotations\":{\"bench.shoal.io/seq\":"
					"\"%ld\"}},",
					s);
				int m = fmt_endpoints(c->body + n, BODY_CAP - (size_t)n - 2, svc,
						      ready0);
				if (m < 0)
					goto out;
				n += m;
				c->body[n++] = '}';
				c->body[n] = '\0';
				snprintf(path, sizeof(path),
					 "/apis/discovery.k8s.io/v1/namespaces/" NS
					 "/endpointslices/svc-%04d-a",
					 svc);
			} else {
				n = snprintf(
					c->body, BODY_CAP,
					"{\"metadata\":{\"annotations\":{\"bench.shoal.io/seq\":"
					"\"%ld\"}}}",
					s);
				snprintf(path, sizeof(path),
					 "/api/v1/namespaces/" NS "/services/svc-%04d", svc);
			}
			prop_send[s] = now;
			if (wsend(c, OP_PROP, s, "PATCH", path, true, n))
				goto out;
			next_prop++;
		}
		while (next_podw < npod && tp + period / 2 + next_podw * period <= now &&
		       (c = wfree(true))) {
			long s = next_podw;
			int n = snprintf(
				c->body, BODY_CAP,
				"{\"metadata\":{\"annotations\":{\"bench.shoal.io/podseq\":"
				"\"%ld\"}}}",
				s);
			snprintf(path, sizeof(path), "/api/v1/namespaces/" NS "/pods/p-%06ld",
				 pod_target[s]);
			pod_send[s] = now;
			if (wsend(c, OP_PODPROP, s, "PATCH", path, true, n))
				goto out;
			next_podw++;
		}
		if (next_prop == nprop && next_podw == npod && writes_idle()) {
			if (!drain_end) {
				drain_end = now + (int64_t)DRAIN_TIMEOUT_S * 1000000000;
				sample_take(&p1);
			}
			long acked = 0, packed = 0;
			for (long i = 0; i < nprop; i++)
				acked += prop_ack[i] > 0;
			for (long i = 0; i < npod; i++)
				packed += pod_ack[i] > 0;
			if ((relaxed(&n_prop_delivered) >= acked * n_agents_ok &&
			     relaxed(&n_pod_delivered) >= packed) ||
			    now > drain_end)
				break;
		}
		if (leases_tick(now) || loop_run(&wloop, 1))
			goto out;
	}
	double prop_run_s = (double)(p1.t - p0.t) / 1e9;
	int64_t t_stop = bench_now_ns();
	atomic_store(&streams_stop, true);
	pthread_join(sthread, NULL);
	sthread_started = false;
	pthread_join(rthread, NULL);
	rthread_started = false;

	/* ---- results ---- */
	long acked = 0, missing = 0, negative = 0, complete = 0, packed = 0, pmissing = 0,
	     pnegative = 0, missing_kind[2] = { 0, 0 }, agents_missing = 0, silent = 0;
	int64_t *per_write = calloc((size_t)nprop, sizeof(int64_t));
	int64_t *all = calloc((size_t)nprop * (size_t)cfg.agents, sizeof(int64_t));
	int64_t *pods = calloc((size_t)npod, sizeof(int64_t));
	int64_t *wlat = calloc((size_t)nprop, sizeof(int64_t));
	int64_t *first_to_last = calloc((size_t)nprop, sizeof(int64_t));
	if (!per_write || !all || !pods || !wlat || !first_to_last) {
		log_error("out of memory");
		goto out;
	}
	size_t nall = 0, nw = 0, nsp = 0, np = 0;
	for (long s = 0; s < nprop; s++) {
		if (prop_ack[s] <= 0)
			continue;
		acked++;
		wlat[nsp] = prop_ack[s] - prop_send[s];
		int64_t worst = 0, first = INT64_MAX, last = 0;
		bool whole = true;
		for (int i = 0; i < cfg.agents; i++) {
			if (!agent_ok[i])
				continue;
			int64_t a = arrival[(size_t)i * (size_t)nprop + (size_t)s];
			if (!a) {
				missing++;
				missing_kind[s % 2]++;
				whole = false;
				continue;
			}
			first = a < first ? a : first;
			last = a > last ? a : last;
			int64_t d = a - prop_ack[s];
			if (d < 0) {
				negative++;
				d = 0;
			}
			all[nall++] = d;
			worst = d > worst ? d : worst;
		}
		first_to_last[nsp++] = last >= first ? last - first : 0;
		if (whole) {
			per_write[nw++] = worst;
			complete++;
		}
	}
	/* Who missed what: with bookmarks every K seconds and leases moving the revision, an open
	 * stream that said nothing for 2K + 5 s is stuck (when the run lasted that long). */
	for (int i = 0; i < cfg.agents; i++) {
		long m = 0;
		for (long s = 0; agent_ok[i] && s < nprop; s++)
			m += prop_ack[s] > 0 && !arrival[(size_t)i * (size_t)nprop + (size_t)s];
		for (int k = 0; agent_ok[i] && k < SK_N; k++) {
			struct stream *st = &streams[i * SK_N + k];
			bool quiet = t_stop - st->last_line_at >
				     (int64_t)((2 * cfg.bookmark_s + 5) * 1e9);
			silent += quiet;
			if (m && agents_missing < 10)
				log_warn(
					"%s missed %ld writes; its %s stream: %s, last line %.1f s "
					"before the end, revision %lld",
					agents[i].name, m, skind_name[k],
					st->established ? "open" : "not open",
					st->last_line_at ? (double)(t_stop - st->last_line_at) / 1e9
							 : -1,
					(long long)st->last_rv);
		}
		agents_missing += m > 0;
	}
	for (long s = 0; s < npod; s++) {
		if (pod_ack[s] <= 0)
			continue;
		packed++;
		if (!pod_arrival[s]) {
			pmissing++;
			continue;
		}
		int64_t d = pod_arrival[s] - pod_ack[s];
		if (d < 0) {
			pnegative++;
			d = 0;
		}
		pods[np++] = d;
	}
	qsort(per_write, nw, sizeof(int64_t), cmp_i64);
	qsort(all, nall, sizeof(int64_t), cmp_i64);
	qsort(pods, np, sizeof(int64_t), cmp_i64);
	qsort(wlat, nsp, sizeof(int64_t), cmp_i64);
	qsort(first_to_last, nsp, sizeof(int64_t), cmp_i64);
	int64_t *ll = lease_lat + ll0;
	size_t nll = (size_t)(ll1 - ll0);
	qsort(ll, nll, sizeof(int64_t), cmp_i64);

	double win = (double)(s1.t - s0.t) / 1e9, base = (double)(b1.t - b0.t) / 1e9;
	printf("agents=%d\nstreams=%d\npods=%ld\nservices=%d\nendpoints_per_slice=%d\n"
	       "lease_seconds=%.1f\n",
	       cfg.agents, nstreams, cfg.pods, cfg.services, cfg.endpoints, cfg.lease_s);
	printf("agents_watching=%d\nstreams_open=%ld\n", n_agents_ok, relaxed(&n_established));
	printf("register_s=%.2f\nfill_s=%.2f\nfill_rate=%.0f\nwatch_setup_s=%.2f\n", register_s,
	       fill_s, (double)cfg.pods / fill_s, setup_s);
	if (cfg.server_pid) {
		printf("baseline_s=%.2f\nbaseline_cpu_cores=%.3f\nbaseline_runqueue_wait_s=%.2f\n",
		       base, (b1.srv_cpu - b0.srv_cpu) / base, b1.srv_wait - b0.srv_wait);
		printf("steady_s=%.2f\nsteady_cpu_cores=%.3f\nsteady_runqueue_wait_s=%.2f\n", win,
		       (s1.srv_cpu - s0.srv_cpu) / win, s1.srv_wait - s0.srv_wait);
		printf("rss_mib=%.1f\nhwm_mib=%.1f\nrss_anon_mib=%.1f\nrss_file_mib=%.1f\n", rss,
		       hwm, anon, file);
		printf("prop_cpu_cores=%.3f\n", (p1.srv_cpu - p0.srv_cpu) / prop_run_s);
		printf("rss_before_watches_mib=%.1f\nrss_anon_before_watches_mib=%.1f\n",
		       rss_nowatch, anon_nowatch);
	}
	printf("bench_cpu_cores=%.3f\nbench_rss_mib=%.1f\n", (s1.self_cpu - s0.self_cpu) / win,
	       self_rss);
	printf("steady_events_per_s=%.0f\nsteady_bookmarks_per_s=%.0f\nsteady_mib_per_s=%.2f\n",
	       (double)(s1.events - s0.events) / win, (double)(s1.bookmarks - s0.bookmarks) / win,
	       (double)(s1.bytes - s0.bytes) / win / 1048576);
	printf("lease_renewals_per_s=%.1f\nlease_errors=%ld\nlease_p50_ms=%.3f\nlease_p99_ms=%."
	       "3f\n",
	       (double)(lr1 - lr0) / win, le1 - le0, pct_ms(ll, nll, 0.5), pct_ms(ll, nll, 0.99));
	printf("prop_rate=%.1f\nprop_seconds=%.1f\nprop_writes=%ld\nprop_acked=%ld\n"
	       "prop_complete=%ld\nprop_missing=%ld\nprop_negative=%ld\n",
	       cfg.rate, cfg.prop_s, nprop, acked, complete, missing, negative);
	printf("prop_missing_slices=%ld\nprop_missing_services=%ld\nagents_missing=%ld\n"
	       "silent_streams=%ld\n",
	       missing_kind[0], missing_kind[1], agents_missing, silent);
	printf("prop_all_p50_ms=%.3f\nprop_all_p99_ms=%.3f\nprop_all_max_ms=%.3f\n",
	       pct_ms(per_write, nw, 0.5), pct_ms(per_write, nw, 0.99),
	       nw ? (double)per_write[nw - 1] / 1e6 : -1);
	printf("prop_delivery_p50_ms=%.3f\nprop_delivery_p99_ms=%.3f\nprop_deliveries=%zu\n",
	       pct_ms(all, nall, 0.5), pct_ms(all, nall, 0.99), nall);
	printf("prop_write_p50_ms=%.3f\nprop_write_p99_ms=%.3f\n", pct_ms(wlat, nsp, 0.5),
	       pct_ms(wlat, nsp, 0.99));
	printf("prop_spread_p50_ms=%.3f\nprop_spread_p99_ms=%.3f\n",
	       pct_ms(first_to_last, nsp, 0.5), pct_ms(first_to_last, nsp, 0.99));
	printf("pod_writes=%ld\npod_acked=%ld\npod_missing=%ld\npod_negative=%ld\n"
	       "pod_p50_ms=%.3f\npod_p99_ms=%.3f\npod_max_ms=%.3f\n",
	       npod, packed, pmissing, pnegative, pct_ms(pods, np, 0.5), pct_ms(pods, np, 0.99),
	       np ? (double)pods[np - 1] / 1e6 : -1);
	printf("stream_ends=%ld\nwatch_errors=%ld\nlist_errors=%ld\nrelists=%ld\nerror_events=%ld\n"
	       "duplicates=%ld\npod_foreign=%ld\nstream_ends_during_prop=%ld\nwrite_errors=%ld\n",
	       relaxed(&n_stream_ends), relaxed(&n_watch_errors), relaxed(&n_list_errors),
	       relaxed(&n_relists), relaxed(&n_error_events), relaxed(&n_dups),
	       relaxed(&n_pod_foreign), relaxed(&n_stream_ends) - ends_before, w_errors);
	/* how long the agents' first lists took, per kind */
	int64_t *lists = calloc((size_t)cfg.agents, sizeof(int64_t));
	if (!lists) {
		log_error("out of memory");
		goto out;
	}
	for (int k = 0; k < SK_N; k++) {
		size_t nl = 0;
		for (int i = 0; i < cfg.agents; i++)
			if (streams[i * SK_N + k].list_ns)
				lists[nl++] = streams[i * SK_N + k].list_ns;
		qsort(lists, nl, sizeof(int64_t), cmp_i64);
		printf("list_%s_p50_ms=%.3f\nlist_%s_p99_ms=%.3f\n", skind_name[k],
		       pct_ms(lists, nl, 0.5), skind_name[k], pct_ms(lists, nl, 0.99));
	}
	free(lists);
	fflush(stdout);
	if (missing || pmissing || acked < nprop || packed < npod)
		log_warn("propagation: %ld of %ld writes acknowledged, %ld deliveries missing; "
			 "pods: %ld of %ld acknowledged, %ld missing",
			 acked, nprop, missing, packed, npod, pmissing);
	ret = missing || pmissing || acked < nprop || packed < npod ? 1 : 0;
	free(per_write);
	free(all);
	free(pods);
	free(wlat);
	free(first_to_last);
out:
	atomic_store(&streams_stop, true);
	if (sthread_started)
		pthread_join(sthread, NULL);
	if (rthread_started)
		pthread_join(rthread, NULL);
	for (int i = 0; streams && i < nstreams; i++) {
		if (streams[i].h) {
			curl_multi_remove_handle(sloop.m, streams[i].h);
			curl_easy_cleanup(streams[i].h);
		}
		watch_close(&streams[i]);
		free(streams[i].line);
	}
	for (int i = 0; i < WRITE_POOL + PROP_POOL; i++) {
		if (wpool[i].h) {
			if (wpool[i].busy)
				curl_multi_remove_handle(wloop.m, wpool[i].h);
			curl_easy_cleanup(wpool[i].h);
		}
		free(wpool[i].body);
		free(wpool[i].resp.p);
	}
	loop_free(&sloop);
	loop_free(&wloop);
	if (reader_ep[1] >= 0)
		close(reader_ep[1]);
	free(handoff);
	free(handed);
	curl_slist_free_all(hdr_json);
	curl_slist_free_all(hdr_merge);
	free(streams);
	free(agents);
	free(agent_ok);
	free(arrival);
	free(prop_send);
	free(prop_ack);
	free(pod_send);
	free(pod_ack);
	free(pod_target);
	free(pod_arrival);
	free(lease_lat);
	free(lease_at);
	curl_global_cleanup();
	return ret;
}
