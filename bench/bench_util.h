/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small helpers shared by the load generators under bench/ (each bench/NAME.c is its own
 * program, so these are header-only): a growing response buffer for libcurl, the monotonic
 * clock, and a process's CPU time and run-queue wait, which tell a server's cost from its
 * clients' and from other work when they all share a small machine.
 */
#ifndef SHOAL_BENCH_UTIL_H
#define SHOAL_BENCH_UTIL_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

struct bench_buf {
	char *p;
	size_t len, cap;
};

/* libcurl write callback appending to a struct bench_buf (kept NUL-terminated). */
static inline size_t bench_buf_write(char *data, size_t size, size_t n, void *arg)
{
	struct bench_buf *b = arg;
	size_t len = size * n;
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + len + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p)
			return 0; /* curl reports a write error */
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
	return len;
}

static inline int64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU seconds (user + system) of process pid, or of this process when pid is 0; -1 when
 * unknown. */
static inline double bench_cpu_seconds(int pid)
{
	if (!pid) {
		struct rusage ru;
		if (getrusage(RUSAGE_SELF, &ru))
			return -1;
		return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
		       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	}
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* After the command's closing parenthesis: state is field 3, utime 14, stime 15. */
	const char *p = strrchr(buf, ')');
	unsigned long ut, st;
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
			 &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Time the threads of process pid (0: this process) spent running and waiting on a run queue
 * for a CPU, in seconds, summed over the threads alive now (/proc/PID/task/TID/schedstat).
 * Returns 0 or -1. The wait tells how much other work on the machine held the process back. */
static inline int bench_sched_seconds(int pid, double *run_s, double *wait_s)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", pid ? pid : (int)getpid());
	DIR *d = opendir(path);
	struct dirent *e;
	unsigned long long run = 0, wait = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char f[400];
		unsigned long long r, w;
		if (e->d_name[0] == '.')
			continue;
		snprintf(f, sizeof(f), "%s/%s/schedstat", path, e->d_name);
		FILE *fp = fopen(f, "r");
		if (!fp)
			continue;
		if (fscanf(fp, "%llu %llu", &r, &w) == 2) {
			run += r;
			wait += w;
		}
		fclose(fp);
	}
	closedir(d);
	*run_s = (double)run / 1e9;
	*wait_s = (double)wait / 1e9;
	return 0;
}

#endif
