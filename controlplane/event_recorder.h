/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Events written by shoald itself (the controllers and the scheduler), as client-go's event
 * recorder writes them: core/v1 Event objects about an involved object, deduplicated and
 * rate-limited, written by a background thread so that a reconcile never waits for them.
 *
 * - The same event (object, type, reason, message) again within 10 minutes raises the count
 *   and lastTimestamp of the Event already written instead of adding another.
 * - Per involved object a token bucket (burst 25, one more every 5 minutes) bounds what a
 *   hot loop can write; what it refuses, and what a full queue refuses, is counted.
 * - Events older than the TTL (lastTimestamp; default one hour, as kube-apiserver's
 *   --event-ttl) are deleted by a periodic sweep, whoever wrote them.
 * Recording is best effort: a lost event is counted and logged, never retried forever.
 */
#ifndef SHOAL_EVENT_RECORDER_H
#define SHOAL_EVENT_RECORDER_H

#include <stdint.h>

struct api_server;
struct strbuf;
struct event_recorder;

/* The object an event is about. */
struct event_ref {
	const char *api_version, *kind, *ns, *name, *uid;
};

/* Starts the writer thread. ttl_ms 0: one hour; negative: events are never deleted.
 * NULL and errno on failure. */
struct event_recorder *event_recorder_new(struct api_server *srv, const char *component,
					  int64_t ttl_ms);
/* Writes what is queued (for at most a second), stops the thread, frees. Accepts NULL. */
void event_recorder_free(struct event_recorder *r);

/* Queues an event. type is "Normal" or "Warning"; reason a CamelCase word; the message is
 * formatted. Never blocks on the store; r NULL records nothing. */
void event_record(struct event_recorder *r, const struct event_ref *obj, const char *type,
		  const char *reason, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Sweeps now (tests): deletes the events older than the TTL. Returns how many, or -errno. */
int event_recorder_sweep(struct event_recorder *r);

/* Waits until nothing is queued or being written (at most timeout_ms). 0 or -ETIMEDOUT. */
int event_recorder_flush(struct event_recorder *r, int timeout_ms);

/* Appends the recorder's figures (Prometheus text) to out. */
int event_recorder_render(struct event_recorder *r, struct strbuf *out);

#endif
