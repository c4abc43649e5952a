// SPDX-License-Identifier: Apache-2.0
/* Namespace lab helpers for C end-to-end tests (see nslab.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nslab.h"

static int orig_ns = -1;

int nslab_sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

int nslab_enter_ns(const char *name)
{
	char path[256];
	int fd, err = 0;

	if (orig_ns < 0)
		orig_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (setns(fd, CLONE_NEWNET))
		err = -errno;
	close(fd);
	return err;
}

int nslab_leave_ns(void)
{
	if (orig_ns < 0)
		return 0;
	return setns(orig_ns, CLONE_NEWNET) ? -errno : 0;
}

/* The answer's prefix: the tag, or with tag "%peer" the sender's address (to see NAT). */
static void prefix(const char *tag, int fd, const struct sockaddr_in *from, char *buf, size_t len)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);

	if (strcmp(tag, "%peer")) {
		snprintf(buf, len, "%s", tag);
		return;
	}
	if (!from && getpeername(fd, (void *)&a, &al) == 0)
		from = &a;
	if (!from || !inet_ntop(AF_INET, &from->sin_addr, buf, (socklen_t)len))
		snprintf(buf, len, "?");
}

static void echo_loop(uint16_t port, const char *tag)
{
	char pre[64];
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct pollfd pf[66];
	int one = 1, n = 2;
	char buf[2048], out[2200];

	pf[0].fd = socket(AF_INET, SOCK_STREAM, 0);
	pf[1].fd = socket(AF_INET, SOCK_DGRAM, 0);
	setsockopt(pf[0].fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(pf[0].fd, (void *)&a, sizeof(a)) || listen(pf[0].fd, 64) ||
	    bind(pf[1].fd, (void *)&a, sizeof(a)))
		_exit(2);
	pf[0].events = pf[1].events = POLLIN;
	for (;;) {
		if (poll(pf, (nfds_t)n, -1) < 0)
			continue;
		if (pf[0].revents & POLLIN) {
			int c = accept(pf[0].fd, NULL, NULL);

			if (c >= 0 && n < 66) {
				pf[n].fd = c;
				pf[n].events = POLLIN;
				n++;
			} else if (c >= 0) {
				close(c);
			}
		}
		if (pf[1].revents & POLLIN) {
			struct sockaddr_in from;
			socklen_t fl = sizeof(from);
			ssize_t r = recvfrom(pf[1].fd, buf, sizeof(buf) - 1, 0, (void *)&from, &fl);

			if (r >= 0) {
				buf[r] = '\0';
				prefix(tag, pf[1].fd, &from, pre, sizeof(pre));
				int m = snprintf(out, sizeof(out), "%s:%s", pre, buf);

				sendto(pf[1].fd, out, (size_t)m, 0, (void *)&from, fl);
			}
		}
		for (int i = 2; i < n; i++) {
			if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t r = read(pf[i].fd, buf, sizeof(buf) - 1);

			if (r <= 0) {
				close(pf[i].fd);
				pf[i] = pf[--n];
				i--;
				continue;
			}
			buf[r] = '\0';
			prefix(tag, pf[i].fd, NULL, pre, sizeof(pre));
			int m = snprintf(out, sizeof(out), "%s:%s", pre, buf);

			if (write(pf[i].fd, out, (size_t)m) < 0)
				continue;
		}
	}
}

pid_t nslab_echo_server(const char *ns, uint16_t port, const char *tag, unsigned secs)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	alarm(secs);
	if (nslab_enter_ns(ns))
		_exit(2);
	echo_loop(port, tag);
	_exit(0);
}

void nslab_stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

const char *nslab_cgroup2_root(void)
{
	static char root[256];
	char line[512], dev[64], mnt[256], type[64];
	FILE *f = fopen("/proc/self/mounts", "r");

	root[0] = '\0';
	if (!f)
		return root;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%63s %255s %63s", dev, mnt, type) == 3 &&
		    !strcmp(type, "cgroup2")) {
			snprintf(root, sizeof(root), "%s", mnt);
			break;
		}
	}
	fclose(f);
	return root;
}

static void set_timeouts(int fd)
{
	struct timeval tv = { .tv_sec = 2 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

int nslab_tcp_again(int fd, const char *msg, char *buf, size_t len)
{
	ssize_t r;

	if (write(fd, msg, strlen(msg)) < 0)
		return -errno;
	r = read(fd, buf, len - 1);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ECONNRESET;
	buf[r] = '\0';
	return 0;
}

int nslab_tcp_ask(uint32_t addr, uint16_t port, const char *msg, char *buf, size_t len, int *fdp)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = addr };
	int fd = socket(AF_INET, SOCK_STREAM, 0), err;

	if (fd < 0)
		return -errno;
	set_timeouts(fd);
	if (connect(fd, (void *)&a, sizeof(a))) {
		err = -errno;
		close(fd);
		return err;
	}
	err = nslab_tcp_again(fd, msg, buf, len);
	if (err || !fdp)
		close(fd);
	else
		*fdp = fd;
	return err;
}

int nslab_udp_ask(uint32_t addr, uint16_t port, const char *msg, char *buf, size_t len)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = addr };
	int fd = socket(AF_INET, SOCK_DGRAM, 0), err = 0;
	ssize_t r;

	if (fd < 0)
		return -errno;
	set_timeouts(fd);
	if (sendto(fd, msg, strlen(msg), 0, (void *)&a, sizeof(a)) < 0) {
		err = -errno;
	} else {
		r = recv(fd, buf, len - 1, 0);
		if (r < 0)
			err = -errno;
		else
			buf[r] = '\0';
	}
	close(fd);
	return err;
}
