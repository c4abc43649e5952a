/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small helpers the pod runtime and its shim (shoal-shim) share: crash-safe file writes,
 * process identity (a pid together with its start time, so a recycled pid is never taken for
 * the process it once was), clocks and RFC 3339 times, directory creation and removal.
 * Nothing here allocates behind the caller's back or logs: callers report errors.
 */
#ifndef SHOAL_RT_UTIL_H
#define SHOAL_RT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Writes data to path through path.tmp + fsync + rename + fsync of the directory: a reader
 * (or a restarted agent) sees the old content or the new one, never a part. 0 or -errno. */
int rt_write_atomic(const char *path, const void *data, size_t len);

/* Reads a whole (small) file into a NUL-terminated malloc'd buffer. NULL and errno. */
char *rt_read_file(const char *path, size_t max, size_t *len);

/* The start time of pid in clock ticks since boot (field 22 of /proc/PID/stat) and whether it
 * still runs (not a zombie). -ENOENT when there is no such process. */
int rt_proc_start(pid_t pid, uint64_t *start, bool *alive);

/* True when pid is the process that started at `start` and has not exited. */
bool rt_proc_is(pid_t pid, uint64_t start);

/* CLOCK_MONOTONIC in milliseconds; CLOCK_REALTIME in nanoseconds. */
uint64_t rt_mono_ms(void);
int64_t rt_real_ns(void);

/* "2024-05-01T10:20:30Z" for a CLOCK_REALTIME nanosecond time, into buf (>= 21 bytes). */
char *rt_time_fmt(int64_t ns, char *buf, size_t len);

/* rm -rf of a directory tree (does not cross mount points). 0, or -errno of the first
 * failure; a missing path is 0. */
int rt_rm_rf(const char *path);

/* Writes the string s to an existing file (cgroup and /proc/sys knobs). 0 or -errno. */
int rt_write_str(const char *path, const char *s);

#endif
