/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small namespace lab for C end-to-end tests: run `ip` commands, enter a named network
 * namespace, echo servers that name themselves, and a cgroup v2 directory of the run's own.
 * Everything is created under a per-run prefix and removed by the caller's cleanup.
 */
#ifndef SHOAL_TEST_NSLAB_H
#define SHOAL_TEST_NSLAB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Runs a shell command line (printf format); returns its exit status, or -1. */
int nslab_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Moves the calling thread into the named network namespace (ip netns). */
int nslab_enter_ns(const char *name);
/* Moves back into the namespace the process started in. */
int nslab_leave_ns(void);
/*
 * Forks an echo server in namespace `ns`: TCP and UDP on `port`, answering each message with
 * "<tag>:" followed by the message (tag "%peer": the sender's address as the server sees it).
 * Lives at most `secs` seconds. Returns its pid.
 */
pid_t nslab_echo_server(const char *ns, uint16_t port, const char *tag, unsigned secs);
/* Stops a child started above (SIGTERM, then waits). */
void nslab_stop(pid_t pid);
/* The cgroup v2 mount point ("" when there is none). */
const char *nslab_cgroup2_root(void);

/* TCP: connects (within timeout), sends msg, reads the answer into buf. fd kept in *fdp. */
int nslab_tcp_ask(uint32_t addr, uint16_t port, const char *msg, char *buf, size_t len, int *fdp);
/* Sends msg on an open TCP connection and reads the answer. */
int nslab_tcp_again(int fd, const char *msg, char *buf, size_t len);
/* UDP: sends msg from a fresh socket and reads the answer. */
int nslab_udp_ask(uint32_t addr, uint16_t port, const char *msg, char *buf, size_t len);

#endif
