// SPDX-License-Identifier: Apache-2.0
/*
 * Watch streams: one chunked HTTP response per watcher, fed from the watch cache.
 *
 * libmicrohttpd sends the response headers and whatever the watcher has at once (the initial
 * state, the events since a resumed revision). The design choice to know: once a plain (not
 * TLS) HTTP/1.1 stream has nothing more to send, it is handed to a watch writer, a thread that
 * writes later events, framed as chunks, straight to the stream's socket when the cache wakes
 * it, and ends the stream itself (the last chunk, then close). A delivery is then one send()
 * from one thread, instead of a resume, an epoll round and a suspend in an HTTP thread.
 *
 * The hand-over: the connection is suspended (libmicrohttpd takes its socket out of its epoll
 * set), the writer takes a duplicate of the socket, and the connection's descriptor is
 * replaced by one end of a closed socket pair (dup3); resumed, the connection ends its
 * response on that stand-in and is closed and freed by libmicrohttpd. So idle watches are not
 * left suspended in libmicrohttpd, whose every resume (one per write answered) walks the list
 * of suspended connections. TLS and HTTP/1.0 streams stay with libmicrohttpd throughout:
 * suspended while idle, resumed when woken.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api_internal.h"
#include "log.h"
#include "strbuf.h"

#define WS_READ_MAX (64 * 1024) /* event bytes read from the cache at once */
#define WS_BUF_KEEP (16 * 1024) /* an idle stream's buffers are shrunk to this */

enum ws_mode {
	WS_MHD,	   /* libmicrohttpd calls reader() */
	WS_DIRECT, /* the writer owns the stream; libmicrohttpd's connection ends on a stand-in */
	WS_DONE,   /* the writer ended it */
};

struct watch_stream {
	struct MHD_Connection *conn;
	struct api_server *srv;
	struct wc_watcher *w;
	struct strbuf buf; /* event lines read (libmicrohttpd path), sent from off */
	size_t off;
	int fd; /* the connection's socket when the stream may go direct, else -1 */
	int rfd; /* the writer's duplicate of the socket, once direct */
	struct api_watch_writer *ww; /* the writer that owns it once direct */
	atomic_int mode;
	atomic_int refs; /* libmicrohttpd's response, and the writer once direct */
	bool suspended; /* under the connection's own serialisation (reader or writer) */
	/* The writer's, under writer->mu; queued is also cleared by the writer thread alone
	 * (without the mutex) once it has taken the stream off the queue: */
	atomic_bool queued;
	struct watch_stream *qnext;
	struct watch_stream *dnext, *dprev; /* in writer->direct */
	/* The writer thread's alone: */
	struct strbuf out; /* framed bytes the socket did not take yet, from out_off */
	size_t out_off;
	bool want_out;
};

struct api_watch_writer {
	struct api_server *srv;
	pthread_t th;
	bool started;
	int ep;	 /* the event fd and every direct stream's socket */
	int efd; /* eventfd: streams were queued, or stop */
	pthread_mutex_t mu;
	struct watch_stream *qhead, *qtail; /* streams to serve */
	struct watch_stream *direct;	    /* every stream the writer owns */
	size_t ndirect;
	struct strbuf frame; /* the writer thread's: the chunk being framed and sent */
	atomic_bool stop;
	atomic_bool draining; /* shutdown: every direct stream is ended */
};

static void kick(struct api_watch_writer *ww)
{
	uint64_t one = 1;
	if (write(ww->efd, &one, sizeof(one)) != sizeof(one) && errno != EAGAIN)
		log_warn("watch writer: eventfd: %s", strerror(errno));
}

/* Queues a direct stream for the writer. Under ww->mu. */
static void enqueue_locked(struct api_watch_writer *ww, struct watch_stream *ws)
{
	if (atomic_load_explicit(&ws->queued, memory_order_relaxed))
		return;
	atomic_store_explicit(&ws->queued, true, memory_order_relaxed);
	ws->qnext = NULL;
	if (ww->qtail)
		ww->qtail->qnext = ws;
	else
		ww->qhead = ws;
	ww->qtail = ws;
}

static void suspend(struct watch_stream *ws)
{
	if (ws->suspended)
		return;
	ws->suspended = true;
	atomic_fetch_add(&ws->srv->suspended, 1);
	MHD_suspend_connection(ws->conn);
}

static void resume(struct watch_stream *ws)
{
	if (!ws->suspended)
		return;
	ws->suspended = false;
	atomic_fetch_sub(&ws->srv->suspended, 1);
	MHD_resume_connection(ws->conn);
}

static void stream_unref(struct watch_stream *ws);

/* Replaces the connection's socket descriptor by one end of a closed socket pair. */
static int stand_in(int fd)
{
	int sp[2], err = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp))
		return -errno;
	if (dup3(sp[0], fd, O_CLOEXEC) < 0)
		err = -errno;
	close(sp[0]);
	close(sp[1]);
	return err;
}

/* Takes a direct stream off its writer again (the hand-over failed). */
static void unlink_direct(struct api_watch_writer *ww, struct watch_stream *ws)
{
	if (ws->dprev)
		ws->dprev->dnext = ws->dnext;
	else
		ww->direct = ws->dnext;
	if (ws->dnext)
		ws->dnext->dprev = ws->dprev;
	ww->ndirect--;
}

/*
 * Called by the cache, under its read lock, when the watcher has nothing to read. A plain
 * HTTP/1.1 stream goes to a writer (see the top of this file); a TLS one is suspended until
 * woken.
 */
static void park(void *arg)
{
	struct watch_stream *ws = arg;
	struct api_server *srv = ws->srv;
	struct api_watch_writer *ww;
	int rfd, err;

	if (atomic_load(&ws->mode) != WS_MHD)
		return; /* the writer's already: it notes the park itself */
	/* Suspended first: libmicrohttpd takes the socket out of its epoll set. */
	suspend(ws);
	if (ws->fd < 0 || !srv->nwriters)
		return;
	rfd = fcntl(ws->fd, F_DUPFD_CLOEXEC, 0);
	if (rfd < 0) {
		log_warn("watch writer: dup: %s; the stream stays with the HTTP threads",
			 strerror(errno));
		ws->fd = -1;
		return;
	}
	/* The writers share the streams, round robin. */
	ww = srv->writers[atomic_fetch_add(&srv->next_writer, 1) % (unsigned)srv->nwriters];
	struct epoll_event ev = { .events = EPOLLRDHUP | EPOLLET, .data.ptr = ws };
	pthread_mutex_lock(&ww->mu);
	if (atomic_load(&ww->draining) || epoll_ctl(ww->ep, EPOLL_CTL_ADD, rfd, &ev)) {
		if (!atomic_load(&ww->draining))
			log_warn("watch writer: epoll_ctl add: %s; the stream stays with the "
				 "HTTP threads",
				 strerror(errno));
		pthread_mutex_unlock(&ww->mu);
		close(rfd);
		ws->fd = -1;
		return;
	}
	ws->rfd = rfd;
	ws->ww = ww;
	atomic_store(&ws->refs, 2);
	ws->dnext = ww->direct;
	ws->dprev = NULL;
	if (ww->direct)
		ww->direct->dprev = ws;
	ww->direct = ws;
	ww->ndirect++;
	err = stand_in(ws->fd);
	if (err) {
		if (epoll_ctl(ww->ep, EPOLL_CTL_DEL, rfd, NULL))
			log_warn("watch writer: epoll_ctl del: %s", strerror(errno));
		unlink_direct(ww, ws);
		pthread_mutex_unlock(&ww->mu);
		log_warn("watch writer: stand-in socket: %s; the stream stays with the HTTP "
			 "threads",
			 strerror(-err));
		atomic_store(&ws->refs, 1);
		close(rfd);
		ws->fd = ws->rfd = -1;
		ws->ww = NULL;
		return;
	}
	atomic_store(&ws->mode, WS_DIRECT);
	pthread_mutex_unlock(&ww->mu);
	/* Resumed, the connection ends its response on the stand-in and goes. */
	resume(ws);
}

/* Called by the cache's notifier (the stream cannot be freed meanwhile). */
static void wake(void *arg)
{
	struct watch_stream *ws = arg;
	struct api_watch_writer *ww = ws->ww; /* set before the watcher was parked */

	if (ww) {
		pthread_mutex_lock(&ww->mu);
		int mode = atomic_load(&ws->mode);
		if (mode == WS_DIRECT) {
			bool was_empty = !ww->qhead;
			enqueue_locked(ww, ws);
			pthread_mutex_unlock(&ww->mu);
			if (was_empty)
				kick(ww);
			return;
		}
		pthread_mutex_unlock(&ww->mu);
		if (mode == WS_DONE)
			return; /* the writer has ended it */
	}
	resume(ws);
}

static ssize_t reader(void *cls, uint64_t pos, char *out, size_t max)
{
	struct watch_stream *ws = cls;

	(void)pos;
	if (atomic_load(&ws->mode) != WS_MHD)
		return MHD_CONTENT_READER_END_OF_STREAM; /* on the stand-in: the writer has it */
	if (ws->off == ws->buf.len) {
		ws->off = ws->buf.len = 0;
		if (ws->buf.cap > WS_BUF_KEEP)
			strbuf_free(&ws->buf);
		ssize_t n = wc_watch_read(ws->w, &ws->buf, WS_READ_MAX, park, ws);
		if (n < 0)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (n == 0) {
			/* Parked: suspended, or the writer's now (this buffer is not used again). */
			if (atomic_load(&ws->mode) != WS_MHD)
				strbuf_free(&ws->buf);
			return 0;
		}
	}
	size_t n = ws->buf.len - ws->off < max ? ws->buf.len - ws->off : max;
	memcpy(out, ws->buf.s + ws->off, n);
	ws->off += n;
	return (ssize_t)n;
}

/* The last of libmicrohttpd's response and the writer frees the stream. */
static void stream_unref(struct watch_stream *ws)
{
	if (atomic_fetch_sub(&ws->refs, 1) > 1)
		return;
	wc_watch_stop(ws->w);
	strbuf_free(&ws->buf);
	strbuf_free(&ws->out);
	free(ws);
}

static void stream_free(void *cls)
{
	stream_unref(cls);
}

/* ---- the writer thread ------------------------------------------------------------------- */

/* Ends a direct stream: the last chunk (when nothing else is pending), then close. The writer
 * must not touch ws afterwards. */
static void finish(struct api_watch_writer *ww, struct watch_stream *ws)
{
	static const char last[] = "0\r\n\r\n";

	pthread_mutex_lock(&ww->mu);
	if (epoll_ctl(ww->ep, EPOLL_CTL_DEL, ws->rfd, NULL))
		log_warn("watch writer: epoll_ctl del: %s", strerror(errno));
	if (atomic_load(&ws->queued)) {
		struct watch_stream **p = &ww->qhead, *prev = NULL;
		while (*p && *p != ws) {
			prev = *p;
			p = &(*p)->qnext;
		}
		if (*p) {
			*p = ws->qnext;
			if (ww->qtail == ws)
				ww->qtail = prev;
		}
		atomic_store(&ws->queued, false);
	}
	unlink_direct(ww, ws);
	atomic_store(&ws->mode, WS_DONE);
	pthread_mutex_unlock(&ww->mu);
	/* Best effort: a client that is gone, or a full socket, gets no last chunk. */
	if (ws->out_off == ws->out.len &&
	    send(ws->rfd, last, sizeof(last) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 &&
	    errno != EPIPE && errno != ECONNRESET && errno != EAGAIN)
		log_debug("watch writer: last chunk: %s", strerror(errno));
	if (close(ws->rfd))
		log_warn("watch writer: close: %s", strerror(errno));
	ws->rfd = -1;
	stream_unref(ws);
}

/* Writes what is pending. Returns 0 when all is written, -EAGAIN when the socket is full,
 * another -errno when the client is gone. */
static int flush_out(struct api_watch_writer *ww, struct watch_stream *ws)
{
	while (ws->out_off < ws->out.len) {
		ssize_t k = send(ws->rfd, ws->out.s + ws->out_off, ws->out.len - ws->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN) {
			if (!ws->want_out) {
				struct epoll_event ev = { .events = EPOLLOUT | EPOLLRDHUP | EPOLLET,
							  .data.ptr = ws };
				if (epoll_ctl(ww->ep, EPOLL_CTL_MOD, ws->rfd, &ev))
					return -errno;
				ws->want_out = true;
			}
			return -EAGAIN;
		}
		if (k <= 0)
			return k < 0 ? -errno : -EPIPE;
		ws->out_off += (size_t)k;
	}
	/* An idle stream holds no buffer. */
	strbuf_free(&ws->out);
	ws->out_off = 0;
	if (ws->want_out) {
		struct epoll_event ev = { .events = EPOLLRDHUP | EPOLLET, .data.ptr = ws };
		if (epoll_ctl(ww->ep, EPOLL_CTL_MOD, ws->rfd, &ev))
			return -errno;
		ws->want_out = false;
	}
	return 0;
}

static void park_direct(void *arg)
{
	(void)arg; /* the connection stays suspended; the cache wakes the stream through wake() */
}

/* "<size in hex>\r\n" into head (at least 20 bytes); returns its length. */
static size_t chunk_head(char *head, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char tmp[16];
	size_t k = 0, l = 0;

	do {
		tmp[k++] = hex[n & 15];
		n >>= 4;
	} while (n);
	while (k)
		head[l++] = tmp[--k];
	head[l++] = '\r';
	head[l++] = '\n';
	return l;
}

/*
 * Sends what the watcher has, as chunks, until it parks or the socket is full. A chunk is
 * framed in the writer's own buffer and sent from there with one send(); only what the
 * socket does not take is copied to the stream's buffer (so an idle or keeping-up stream
 * holds no memory, and a delivery costs no allocation).
 */
static void serve(struct api_watch_writer *ww, struct watch_stream *ws)
{
	struct strbuf *f = &ww->frame;
	int err = flush_out(ww, ws);

	while (!err) {
		char head[24];
		size_t hl, off;
		/* Room for the chunk header first: the events are appended after it. */
		f->len = 0;
		err = strbuf_reserve(f, 4096);
		if (err)
			break;
		f->len = sizeof(head);
		ssize_t n = wc_watch_read(ws->w, f, WS_READ_MAX, park_direct, ws);
		if (n <= 0) {
			err = n < 0 ? -EPIPE : 1;
			break;
		}
		hl = chunk_head(head, (size_t)n);
		off = sizeof(head) - hl;
		memcpy(f->s + off, head, hl);
		err = strbuf_add(f, "\r\n", 2);
		if (err)
			break;
		ssize_t k;
		do
			k = send(ws->rfd, f->s + off, f->len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		while (k < 0 && errno == EINTR);
		if (k < 0 && errno != EAGAIN) {
			err = -errno;
			break;
		}
		off += k > 0 ? (size_t)k : 0;
		if (off == f->len) {
			int64_t at = wc_watch_read_commit_ns(ws->w);
			if (at) {
				struct timespec now;
				clock_gettime(CLOCK_MONOTONIC, &now);
				api_metrics_observe_watch_delivery(
					ws->srv->metrics,
					(int64_t)now.tv_sec * 1000000000 + now.tv_nsec - at);
			}
			continue;
		}
		/* The socket is full: the rest waits in the stream's buffer for EPOLLOUT. */
		ws->out_off = 0;
		ws->out.len = 0;
		err = strbuf_add(&ws->out, f->s + off, f->len - off);
		if (err)
			strbuf_free(&ws->out);
		if (!err)
			err = flush_out(ww, ws);
	}
	/* A burst (a resumed stream's history) may have grown the frame: not kept; nor a
	 * failed allocation, which the next stream tries again. */
	if (f->cap > 4 * WS_READ_MAX || f->err)
		strbuf_free(f);
	if (err < 0 && err != -EAGAIN)
		finish(ww, ws);
}

static void *writer_main(void *arg)
{
	struct api_watch_writer *ww = arg;
	struct epoll_event evs[256];

	while (!atomic_load(&ww->stop)) {
		int n = epoll_wait(ww->ep, evs, 256, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("watch writer: epoll_wait: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < n; i++) {
			struct watch_stream *ws = evs[i].data.ptr;
			if (!evs[i].events)
				continue; /* of a stream ended earlier in this batch */
			if (!ws) {
				uint64_t v;
				if (read(ww->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
					log_warn("watch writer: eventfd: %s", strerror(errno));
				continue;
			}
			if (evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
				finish(ww, ws); /* the client is gone */
				/* A later event for ws in this batch would be stale. */
				for (int j = i + 1; j < n; j++)
					if (evs[j].data.ptr == ws)
						evs[j].events = 0;
				continue;
			}
			if (evs[i].events & EPOLLOUT) {
				pthread_mutex_lock(&ww->mu);
				enqueue_locked(ww, ws);
				pthread_mutex_unlock(&ww->mu);
			}
		}
		/* The streams woken meanwhile, each served once per round. The queue is taken whole;
		 * each stream is marked unqueued only when its turn comes (not all at once under the
		 * mutex, which the notifier waits for to queue the next ones): a wake before that
		 * finds it queued still, and its event is read when it is served. */
		pthread_mutex_lock(&ww->mu);
		struct watch_stream *q = ww->qhead;
		ww->qhead = ww->qtail = NULL;
		bool draining = atomic_load(&ww->draining);
		pthread_mutex_unlock(&ww->mu);
		while (q) {
			struct watch_stream *s = q;
			/* qnext first: once unqueued, s may be queued again (and qnext rewritten) */
			q = q->qnext;
			if (q)
				__builtin_prefetch(q);
			atomic_store(&s->queued, false);
			if (draining)
				finish(ww, s);
			else
				serve(ww, s);
		}
		if (draining) {
			pthread_mutex_lock(&ww->mu);
			struct watch_stream *s = ww->direct;
			pthread_mutex_unlock(&ww->mu);
			/* Only this thread removes streams from direct, so s stays valid. */
			while (s) {
				struct watch_stream *next = s->dnext;
				finish(ww, s);
				s = next;
			}
		}
	}
	return NULL;
}

struct api_watch_writer *api_watch_writer_start(struct api_server *srv)
{
	struct api_watch_writer *ww = calloc(1, sizeof(*ww));
	int err;

	if (!ww)
		return NULL;
	ww->srv = srv;
	ww->ep = ww->efd = -1;
	pthread_mutex_init(&ww->mu, NULL);
	ww->ep = epoll_create1(EPOLL_CLOEXEC);
	ww->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ww->ep < 0 || ww->efd < 0) {
		err = errno;
		log_error("watch writer: %s", strerror(err));
		goto err;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	if (epoll_ctl(ww->ep, EPOLL_CTL_ADD, ww->efd, &ev)) {
		err = errno;
		log_error("watch writer: epoll_ctl: %s", strerror(err));
		goto err;
	}
	err = pthread_create(&ww->th, NULL, writer_main, ww);
	if (err) {
		log_error("watch writer: pthread_create: %s", strerror(err));
		goto err;
	}
	ww->started = true;
	return ww;
err:
	api_watch_writer_stop(ww);
	errno = err;
	return NULL;
}

void api_watch_writer_drain(struct api_watch_writer *ww)
{
	if (!ww)
		return;
	pthread_mutex_lock(&ww->mu);
	atomic_store(&ww->draining, true);
	pthread_mutex_unlock(&ww->mu);
	kick(ww);
}

size_t api_watch_writer_streams(struct api_watch_writer *ww)
{
	size_t n;

	if (!ww)
		return 0;
	pthread_mutex_lock(&ww->mu);
	n = ww->ndirect;
	pthread_mutex_unlock(&ww->mu);
	return n;
}

void api_watch_writer_stop(struct api_watch_writer *ww)
{
	if (!ww)
		return;
	if (ww->started) {
		api_watch_writer_drain(ww);
		/* Every stream is handed back before the thread ends. */
		for (int i = 0; i < 500 && api_watch_writer_streams(ww); i++) {
			struct timespec ts = { 0, 10 * 1000000L };
			nanosleep(&ts, NULL);
		}
		atomic_store(&ww->stop, true);
		kick(ww);
		pthread_join(ww->th, NULL);
		/* What is left (a stream that could not be ended in time) ends here. */
		while (ww->direct)
			finish(ww, ww->direct);
	}
	if (ww->ep >= 0)
		close(ww->ep);
	if (ww->efd >= 0)
		close(ww->efd);
	strbuf_free(&ww->frame);
	pthread_mutex_destroy(&ww->mu);
	free(ww);
}

/* ---- the request ------------------------------------------------------------------------ */

/* The socket of a plain (not TLS) connection, for the writer; -1 otherwise. */
static int direct_fd(struct api_req *r)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_DAEMON);
	const union MHD_DaemonInfo *di;
	int fd, zero = 0, one = 1;
	struct sockaddr_storage sa;
	socklen_t salen = sizeof(sa);

	/* The writer frames chunks: HTTP/1.0 streams stay with libmicrohttpd. */
	if (!r->srv->nwriters || !ci || !r->http11)
		return -1;
	di = MHD_get_daemon_info(ci->daemon, MHD_DAEMON_INFO_FLAGS);
	if (!di || (di->flags & MHD_USE_TLS))
		return -1;
	ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!ci)
		return -1;
	fd = ci->connect_fd;
	if (getsockname(fd, (struct sockaddr *)&sa, &salen))
		return -1;
	if (sa.ss_family == AF_INET || sa.ss_family == AF_INET6) {
		/* Each event goes out at once: no corking or Nagle delay on a written chunk. */
		if (setsockopt(fd, IPPROTO_TCP, TCP_CORK, &zero, sizeof(zero)) ||
		    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one))) {
			log_warn("watch: TCP socket options: %s", strerror(errno));
			return -1;
		}
	}
	return fd;
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
	ws->srv = r->srv;
	ws->fd = direct_fd(r);
	ws->rfd = -1;
	atomic_init(&ws->mode, WS_MHD);
	atomic_init(&ws->refs, 1);
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
	/* A small block: events are small, and thousands of idle streams each hold one. */
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4 * 1024, reader, ws,
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
