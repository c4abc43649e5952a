/* SPDX-License-Identifier: Apache-2.0 */
/*
 * shoald's HTTP API: libmicrohttpd on epoll with a small thread pool (no thread per
 * connection). Reads are answered from the watch cache on the spot; writes are handed to the
 * store's group commit and their connections suspended until the commit is durable; watch
 * streams are suspended while they have nothing to send.
 */
#ifndef SHOAL_API_SERVER_H
#define SHOAL_API_SERVER_H

#include <stdint.h>

struct api_server;
struct ctrl_config;
struct store;

struct api_server_opts {
	const char *listen[4];	 /* "HOST:PORT", "[::1]:PORT" or "unix:PATH"; NULL-terminated */
	const char *token_file;	 /* NULL: no authentication (every request is an admin) */
	const char *tls_cert;	 /* PEM files; both or neither */
	const char *tls_key;
	const char *service_cidr; /* default 10.96.0.0/16 */
	int node_port_min, node_port_max; /* default 30000-32767 */
	int threads;		 /* HTTP threads (0: 2) */
	int watch_ring_events;	 /* 0: 100,000 */
	int bookmark_interval_ms; /* 0: 60,000 */
	int no_scheduler;	 /* do not run the scheduler */
	const char *scheduler_config; /* JSON file, NULL: defaults */
	int no_controllers;	 /* do not run the workload controllers */
	const struct ctrl_config *controllers; /* their tuning (ctrl.h), NULL: defaults */
	int64_t event_ttl_ms; /* Events are deleted this long after they last happened
				 (0: one hour; negative: never) */
};

/* Starts serving. Returns NULL and sets errno (the cause is logged). */
struct api_server *api_server_start(struct store *st, const struct api_server_opts *opts);

/* Stops accepting, ends watch streams, waits (at most drain_ms) for requests in flight,
 * and frees the server. Accepts NULL. */
void api_server_stop(struct api_server *srv, int drain_ms);

#endif
