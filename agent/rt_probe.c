// SPDX-License-Identifier: Apache-2.0
/*
 * Liveness, readiness and startup probes: exec (a command run inside the container by
 * `shoal-shim exec`), tcpSocket (a connect from inside the pod's network namespace to the pod's
 * address) and httpGet (the same connection, one GET, a status of 200..399 is success).
 *
 * The design choice: no thread per probe. Every probe run is a file descriptor in the runtime
 * loop's epoll set (the exec's pidfd, or a non-blocking socket) with a deadline; the loop
 * sleeps until the next probe is due or a descriptor is ready. Thresholds follow Kubernetes:
 * successThreshold consecutive successes make a readiness probe pass, failureThreshold
 * consecutive failures make any probe fail; a failed liveness or startup probe stops the
 * container (with its grace period), which then restarts by the pod's restartPolicy;
 * liveness and readiness wait for the startup probe to pass.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "rt_int.h"
#include "rt_util.h"

static const char *const probe_names[RT_N_PROBES] = { "liveness", "readiness", "startup" };

/* The monotonic time of the container's start (its start is a CLOCK_REALTIME time). */
static uint64_t start_mono(const struct rt_ctr *c, uint64_t now)
{
	int64_t ago_ms = (rt_real_ns() - c->started_at) / 1000000;
	if (ago_ms < 0)
		ago_ms = 0;
	return (uint64_t)ago_ms >= now ? 1 : now - (uint64_t)ago_ms;
}

static void schedule(struct rt_ctr *c, int i, uint64_t now)
{
	const struct rt_probe_spec *s = &c->spec->probes[i];
	uint64_t at = start_mono(c, now) + (uint64_t)s->initial_delay * 1000;
	c->probes[i].next_at = at > now ? at : now;
}

void rt_probe_begin(struct rt *rt, struct rt_ctr *c, uint64_t now)
{
	(void)rt;
	for (int i = 0; i < RT_N_PROBES; i++) {
		struct rt_probe_run *pr = &c->probes[i];
		pr->succ = pr->fail = 0;
		pr->next_at = 0;
		pr->msg[0] = '\0';
		if (!c->spec->probes[i].set)
			continue;
		/* Readiness starts from what was last known (an adopted container keeps its
		 * Ready until a probe says otherwise); liveness is presumed good. */
		pr->ok = i == RT_PROBE_READINESS ? c->ready : true;
		if (i == RT_PROBE_STARTUP ? !c->started : c->started)
			schedule(c, i, now);
	}
}

static void reap_later(struct rt *rt, pid_t pid);

/* Ends the run in flight (if any) without a result. */
static void abort_run(struct rt *rt, struct rt_probe_run *pr)
{
	if (pr->w) {
		rt_watch_drop(rt, pr->w);
		pr->w = NULL;
	}
	if (pr->pid > 0) {
		/* shoal-shim exec kills the command's process group on SIGTERM. */
		kill(pr->pid, SIGTERM);
		reap_later(rt, pr->pid);
		pr->pid = 0;
	}
	if (pr->outfd >= 0) {
		close(pr->outfd);
		pr->outfd = -1;
	}
	pr->sent = false;
	pr->len = 0;
}

static void set_ready(struct rt_ctr *c, bool ready)
{
	if (c->ready == ready)
		return;
	c->ready = ready;
	c->pod->dirty = c->pod->save = true;
	log_info("runtime: pod %s/%s container %s: %s", c->pod->spec.ns, c->pod->spec.name,
		 c->spec->name, ready ? "ready" : "not ready");
}

static void result(struct rt *rt, struct rt_ctr *c, int i, bool ok, const char *msg)
{
	struct rt_probe_run *pr = &c->probes[i];
	const struct rt_probe_spec *s = &c->spec->probes[i];
	uint64_t now = rt_mono_ms();

	abort_run(rt, pr);
	if (ok) {
		pr->succ++;
		pr->fail = 0;
	} else {
		pr->fail++;
		pr->succ = 0;
		snprintf(pr->msg, sizeof(pr->msg), "%s", msg);
		log_debug("runtime: pod %s/%s container %s: %s probe failed (%d/%d): %s",
			  c->pod->spec.ns, c->pod->spec.name, c->spec->name, probe_names[i],
			  pr->fail, s->failure, msg);
	}
	switch (i) {
	case RT_PROBE_READINESS:
		if (ok && pr->succ >= s->success)
			pr->ok = true;
		else if (!ok && pr->fail >= s->failure)
			pr->ok = false;
		set_ready(c, c->started && pr->ok);
		break;
	case RT_PROBE_STARTUP:
		if (ok) {
			c->started = true;
			pr->next_at = 0;
			c->pod->dirty = c->pod->save = true;
			for (int j = 0; j < RT_N_PROBES; j++)
				if (j != RT_PROBE_STARTUP && c->spec->probes[j].set)
					schedule(c, j, now);
			set_ready(c, !c->spec->probes[RT_PROBE_READINESS].set ||
					     c->probes[RT_PROBE_READINESS].ok);
			break;
		}
		/* A failed startup probe is handled as a failed liveness one. */
		__attribute__((fallthrough));
	case RT_PROBE_LIVENESS:
		if (!ok && pr->fail >= s->failure) {
			char why[320];
			long grace = s->grace >= 0 ? s->grace : c->pod->spec.grace;
			snprintf(why, sizeof(why), "%s probe failed: %s", probe_names[i], msg);
			log_info("runtime: pod %s/%s container %s: %s, restarting", c->pod->spec.ns,
				 c->pod->spec.name, c->spec->name, why);
			pr->fail = 0;
			rt_ctr_stop(rt, c, (uint64_t)grace * 1000, why);
		}
		break;
	}
}

static void launch(struct rt *rt, struct rt_ctr *c, int i)
{
	struct rt_probe_run *pr = &c->probes[i];
	const struct rt_probe_spec *s = &c->spec->probes[i];
	char msg[256];
	int err;

	/* From the launch itself: the loop's clock was read before this round's other work
	 * (a container start can block it), which must not eat into the probe's timeout. */
	pr->deadline = rt_mono_ms() + (uint64_t)s->timeout * 1000;
	pr->sent = false;
	pr->len = 0;
	if (s->h.kind == RT_H_EXEC) {
		int pfd, out;
		pid_t pid;
		if ((err = rt_proc_exec(rt, c, s->h.argv, &pid, &pfd, &out))) {
			snprintf(msg, sizeof(msg), "exec: %s", strerror(-err));
			result(rt, c, i, false, msg);
			return;
		}
		pr->pid = pid;
		pr->outfd = out;
		if (!(pr->w = rt_watch_add(rt, pfd, EPOLLIN, RT_W_PROBE, c, i))) {
			close(pfd);
			result(rt, c, i, false, "exec: cannot watch the process");
		}
		return;
	}
	const char *host = s->h.host ? s->h.host : c->pod->ip;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)s->h.port) };
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		snprintf(msg, sizeof(msg), "host \"%s\" is not an IPv4 address", host);
		result(rt, c, i, false, msg);
		return;
	}
	int fd = rt_net_socket(rt, c->pod, SOCK_STREAM);
	if (fd < 0) {
		snprintf(msg, sizeof(msg), "socket in the pod: %s", strerror(-fd));
		result(rt, c, i, false, msg);
		return;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
		snprintf(msg, sizeof(msg), "dial tcp %s:%d: %s", host, s->h.port, strerror(errno));
		close(fd);
		result(rt, c, i, false, msg);
		return;
	}
	if (!(pr->w = rt_watch_add(rt, fd, EPOLLOUT, RT_W_PROBE, c, i))) {
		close(fd);
		result(rt, c, i, false, "cannot watch the socket");
	}
}

void rt_probe_tick(struct rt *rt, struct rt_ctr *c, uint64_t now)
{
	if (c->state != RT_C_RUNNING || c->stop != RT_STOP_NONE)
		return;
	for (int i = 0; i < RT_N_PROBES; i++) {
		struct rt_probe_run *pr = &c->probes[i];
		const struct rt_probe_spec *s = &c->spec->probes[i];
		if (!s->set)
			continue;
		if (pr->w && now >= pr->deadline) {
			char msg[64];
			snprintf(msg, sizeof(msg), "timed out after %ds", s->timeout);
			result(rt, c, i, false, msg);
			if (c->state != RT_C_RUNNING || c->stop != RT_STOP_NONE)
				return;
		}
		if (pr->w || !pr->next_at || now < pr->next_at)
			continue;
		pr->next_at = now + (uint64_t)s->period * 1000;
		launch(rt, c, i);
		if (c->state != RT_C_RUNNING || c->stop != RT_STOP_NONE)
			return;
	}
}

static void http_event(struct rt *rt, struct rt_ctr *c, int i, uint32_t events)
{
	struct rt_probe_run *pr = &c->probes[i];
	const struct rt_probe_spec *s = &c->spec->probes[i];
	const char *host = s->h.host ? s->h.host : c->pod->ip;
	char msg[256];

	if (!pr->sent) {
		char req[2048];
		bool has_host = false;
		size_t n = 0;
		for (size_t j = 0; s->h.headers && s->h.headers[j]; j++)
			has_host |= !strncasecmp(s->h.headers[j], "host:", 5);
		n += (size_t)snprintf(req + n, sizeof(req) - n,
				      "GET %s HTTP/1.1\r\nUser-Agent: kube-probe/shoal\r\n"
				      "Accept: */*\r\nConnection: close\r\n",
				      s->h.path);
		if (!has_host && n < sizeof(req))
			n += (size_t)snprintf(req + n, sizeof(req) - n, "Host: %s:%d\r\n", host,
					      s->h.port);
		for (size_t j = 0; s->h.headers && s->h.headers[j] && n < sizeof(req); j++)
			n += (size_t)snprintf(req + n, sizeof(req) - n, "%s\r\n", s->h.headers[j]);
		if (n < sizeof(req))
			n += (size_t)snprintf(req + n, sizeof(req) - n, "\r\n");
		if (n >= sizeof(req)) {
			result(rt, c, i, false, "request headers too long");
			return;
		}
		ssize_t w = send(pr->w->fd, req, n, MSG_NOSIGNAL);
		if (w != (ssize_t)n) {
			snprintf(msg, sizeof(msg), "send to %s:%d: %s", host, s->h.port,
				 w < 0 ? strerror(errno) : "short write");
			result(rt, c, i, false, msg);
			return;
		}
		pr->sent = true;
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = pr->w };
		if (epoll_ctl(rt->epfd, EPOLL_CTL_MOD, pr->w->fd, &ev) < 0)
			result(rt, c, i, false, "cannot watch the socket");
		return;
	}
	(void)events;
	ssize_t got = recv(pr->w->fd, pr->buf + pr->len, sizeof(pr->buf) - 1 - pr->len, 0);
	if (got < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (got > 0)
		pr->len += (size_t)got;
	pr->buf[pr->len] = '\0';
	if (got > 0 && !strstr(pr->buf, "\r\n") && pr->len < sizeof(pr->buf) - 1)
		return;
	int code = 0;
	if (sscanf(pr->buf, "HTTP/%*d.%*d %d", &code) != 1) {
		snprintf(msg, sizeof(msg), "GET http://%s:%d%s: %s", host, s->h.port, s->h.path,
			 got < 0 ? strerror(errno) : "no HTTP response");
		result(rt, c, i, false, msg);
		return;
	}
	snprintf(msg, sizeof(msg), "HTTP probe failed with statuscode: %d", code);
	result(rt, c, i, code >= 200 && code < 400, msg);
}

void rt_probe_event(struct rt *rt, struct rt_watch *w, uint32_t events)
{
	struct rt_ctr *c = w->c;
	int i = w->probe;
	struct rt_probe_run *pr = &c->probes[i];
	const struct rt_probe_spec *s = &c->spec->probes[i];
	char msg[256];

	if (s->h.kind == RT_H_EXEC) {
		int st;
		pid_t r = waitpid(pr->pid, &st, WNOHANG);
		if (r == 0)
			return;
		pr->pid = 0; /* collected (or not ours to collect) */
		if (r < 0) {
			snprintf(msg, sizeof(msg), "exec: wait: %s", strerror(errno));
			result(rt, c, i, false, msg);
			return;
		}
		int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		char out[200] = "";
		ssize_t n = pread(pr->outfd, out, sizeof(out) - 1, 0);
		out[n > 0 ? n : 0] = '\0';
		out[strcspn(out, "\n")] = '\0';
		snprintf(msg, sizeof(msg), "command exited with %d%s%s", code, *out ? ": " : "",
			 out);
		result(rt, c, i, code == 0, msg);
		return;
	}
	if (!pr->sent) {
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			soerr = errno;
		if (soerr) {
			const char *host = s->h.host ? s->h.host : c->pod->ip;
			snprintf(msg, sizeof(msg), "dial tcp %s:%d: %s", host, s->h.port,
				 strerror(soerr));
			result(rt, c, i, false, msg);
			return;
		}
		if (s->h.kind == RT_H_TCP) {
			result(rt, c, i, true, "");
			return;
		}
	}
	http_event(rt, c, i, events);
}

void rt_probe_cancel(struct rt *rt, struct rt_ctr *c)
{
	for (int i = 0; i < RT_N_PROBES; i++) {
		abort_run(rt, &c->probes[i]);
		c->probes[i].next_at = 0;
	}
}

uint64_t rt_probe_next(const struct rt_ctr *c)
{
	uint64_t m = 0;
	if (c->state != RT_C_RUNNING || c->stop != RT_STOP_NONE)
		return 0;
	for (int i = 0; i < RT_N_PROBES; i++) {
		const struct rt_probe_run *pr = &c->probes[i];
		uint64_t t = pr->w ? pr->deadline : pr->next_at;
		if (t && (!m || t < m))
			m = t;
	}
	return m;
}

/* ---- exec processes given up on: collected later, SIGKILLed if they linger ---- */

static void reap_later(struct rt *rt, pid_t pid)
{
	rt_reap_add(rt, pid);
}
