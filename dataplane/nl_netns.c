// SPDX-License-Identifier: Apache-2.0
/*
 * Named network namespaces, kept alive by a bind mount at NL_NETNS_DIR/NAME, as iproute2 does
 * under /run/netns: the directory is made a shared mount point of its own so the bind mounts
 * propagate to other mount namespaces, and unmounted cleanly on delete.
 *
 * The design choice: only the calling thread changes namespace (unshare/setns act on the
 * thread), and it always returns to the namespace it came from, so other threads of an agent
 * never notice.
 */
#include "fsutil.h"
#include "nl_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static int nl_netns_path(const char *name, char *path, size_t len)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > 64 || !strcmp(name, ".") || !strcmp(name, ".."))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return -EINVAL;
	}
	snprintf(path, len, "%s/%s", NL_NETNS_DIR, name);
	return 0;
}

/* Makes NL_NETNS_DIR a shared mount point (bind-mounting it on itself the first time). */
static int nl_netns_dir(void)
{
	int err = fs_mkdir_p(NL_NETNS_DIR, 0755);
	if (err)
		return err;
	if (mount("", NL_NETNS_DIR, "none", MS_SHARED | MS_REC, NULL) == 0)
		return 0;
	if (errno != EINVAL)
		return -errno;
	if (mount(NL_NETNS_DIR, NL_NETNS_DIR, "none", MS_BIND | MS_REC, NULL) < 0)
		return -errno;
	if (mount("", NL_NETNS_DIR, "none", MS_SHARED | MS_REC, NULL) < 0)
		return -errno;
	return 0;
}

int nl_netns_create(const char *name)
{
	char path[PATH_MAX];
	int err = nl_netns_path(name, path, sizeof(path));
	if (err)
		return err;
	if ((err = nl_netns_dir()))
		return err;
	int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
	if (fd < 0)
		return -errno;
	close(fd);

	int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0) {
		err = -errno;
		unlink(path);
		return err;
	}
	if (unshare(CLONE_NEWNET) < 0) {
		err = -errno;
		goto out;
	}
	if (mount("/proc/thread-self/ns/net", path, "none", MS_BIND, NULL) < 0)
		err = -errno;
	if (setns(self, CLONE_NEWNET) < 0 && !err)
		err = -errno;
out:
	close(self);
	if (err) {
		umount2(path, MNT_DETACH);
		unlink(path);
	}
	return err;
}

int nl_netns_delete(const char *name)
{
	char path[PATH_MAX];
	int err = nl_netns_path(name, path, sizeof(path));
	if (err)
		return err;
	if (umount2(path, MNT_DETACH) < 0 && errno != EINVAL) {
		if (errno == ENOENT)
			return -ENOENT;
		return -errno;
	}
	if (unlink(path) < 0)
		return -errno;
	return 0;
}

int nl_netns_dir_release(void)
{
	DIR *d = opendir(NL_NETNS_DIR);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	struct dirent *de;
	bool empty = true;
	while ((de = readdir(d)) && empty)
		empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
	closedir(d);
	if (!empty)
		return -ENOTEMPTY;
	if (umount2(NL_NETNS_DIR, MNT_DETACH) < 0 && errno != EINVAL)
		return -errno;
	if (rmdir(NL_NETNS_DIR) < 0)
		return -errno;
	char parent[PATH_MAX];
	snprintf(parent, sizeof(parent), "%s", NL_NETNS_DIR);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		if (rmdir(parent) < 0 && errno != ENOTEMPTY && errno != EEXIST)
			return -errno;
	}
	return 0;
}

int nl_netns_open(const char *name)
{
	char path[PATH_MAX];
	int err = nl_netns_path(name, path, sizeof(path));
	if (err)
		return err;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int nl_netns_run_fd(int netns_fd, int (*fn)(void *arg), void *arg)
{
	int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return -errno;
	if (setns(netns_fd, CLONE_NEWNET) < 0) {
		int err = -errno;
		close(self);
		return err;
	}
	int ret = fn(arg);
	if (setns(self, CLONE_NEWNET) < 0) {
		/* Cannot happen for a namespace we were in; leaving the thread elsewhere would
		 * be worse than stopping. */
		ret = -errno;
	}
	close(self);
	return ret;
}

int nl_netns_run(const char *name, int (*fn)(void *arg), void *arg)
{
	int fd = nl_netns_open(name);
	if (fd < 0)
		return fd;
	int ret = nl_netns_run_fd(fd, fn, arg);
	close(fd);
	return ret;
}
