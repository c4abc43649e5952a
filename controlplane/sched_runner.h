/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The scheduler thread of shoald (see sched_runner.c): fed from the watch cache, binding
 * through the store with compare-and-swap.
 */
#ifndef SHOAL_SCHED_RUNNER_H
#define SHOAL_SCHED_RUNNER_H

#include <stddef.h>

struct api_server;
struct sched_runner;
struct strbuf;

/* Starts the scheduler; config_path (JSON, see scheduler/scheduler.h) may be NULL for the
 * defaults. NULL and errno on failure (the cause is logged). */
struct sched_runner *sched_runner_start(struct api_server *srv, const char *config_path);
/* Appends the scheduler's figures in Prometheus' text format (counters, queue lengths, and
 * per node the allocatable, requested, predicted-peak and batch-allocatable cpu and memory)
 * to out. Returns out->err. */
int sched_runner_render(struct sched_runner *r, struct strbuf *out);
/* Stops the thread, waits for binds in flight, frees everything. Accepts NULL. */
void sched_runner_stop(struct sched_runner *r);

#endif
