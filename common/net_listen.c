// SPDX-License-Identifier: Apache-2.0
/* Listening sockets from "unix:PATH" or "HOST:PORT" (see net_listen.h). */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "net_listen.h"

static int listen_unix(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "unix:%s: path too long (at most %zu bytes)", path,
			 sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "unix:%s: socket: %s", path, strerror(-ret));
		return ret;
	}
	if (unlink(path) && errno != ENOENT) {
		ret = -errno;
		snprintf(err, errlen, "unix:%s: remove the stale socket: %s", path, strerror(-ret));
		close(fd);
		return ret;
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 128) || chmod(path, 0660)) {
		ret = -errno;
		snprintf(err, errlen, "unix:%s: %s", path, strerror(-ret));
		close(fd);
		return ret;
	}
	return fd;
}

static int listen_tcp(const char *addr, char *err, size_t errlen)
{
	char host[256], *port, *h;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai = NULL;
	int fd, one = 1, ret;

	snprintf(host, sizeof(host), "%s", addr);
	port = strrchr(host, ':');
	if (!port) {
		snprintf(err, errlen, "%s: want HOST:PORT or unix:PATH", addr);
		return -EINVAL;
	}
	*port++ = '\0';
	h = host;
	if (*h == '[') {
		h++;
		char *e = strchr(h, ']');
		if (e)
			*e = '\0';
	}
	ret = getaddrinfo(*h ? h : NULL, port, &hints, &ai);
	if (ret) {
		snprintf(err, errlen, "%s: %s", addr, gai_strerror(ret));
		return -EINVAL;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: socket: %s", addr, strerror(-ret));
		goto out;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 128)) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", addr, strerror(-ret));
		close(fd);
		goto out;
	}
	ret = fd;
out:
	freeaddrinfo(ai);
	return ret;
}

int net_listen(const char *addr, char *err, size_t errlen)
{
	if (strncmp(addr, "unix:", 5) == 0)
		return listen_unix(addr + 5, err, errlen);
	return listen_tcp(addr, err, errlen);
}
