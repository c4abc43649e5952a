// SPDX-License-Identifier: Apache-2.0
/*
 * shoal-shim: the parent of one container, so that containers outlive shoal-agent.
 *
 *   shoal-shim run --dir DIR --log FILE [--log-max BYTES] [--netns PATH] [--cgroup DIR]...
 *                  [--kill-cgroup DIR] [--hostname NAME] [--rootfs DIR] [--workdir DIR]
 *                  [--user UID] [--group GID] -- COMMAND [ARG]...
 *   shoal-shim exec --pid PID --pid-start TICKS [--cgroup DIR]... [--workdir DIR]
 *                  [--user UID] [--group GID] -- COMMAND [ARG]...
 *
 * `run` (started by the agent with a sync pipe on fd 3 and the container's environment as
 * its own) leaves the agent's session, becomes a child subreaper, and forks the container:
 * the child joins the cgroups, the pod's network namespace, a new UTS namespace named for the
 * pod, optionally a root filesystem in a mount namespace of its own (pivot_root, /proc, /dev,
 * /sys), then execs. A close-on-exec pipe tells the shim whether exec succeeded; the shim
 * writes DIR/pid.json (itself and the container, each as pid + start time) and answers on
 * fd 3 ("ok ..." or "error MESSAGE"). It then copies the container's stdout and stderr into
 * the log file (rotating to FILE.1 at --log-max), reaps every process that ends up as its
 * child, and when the container's main process exits it kills what remains of it (cgroup.kill,
 * or the cgroup's process list where there is none) and writes DIR/exit.json: the exit code
 * (128 + signal when killed), the signal, start and finish times in ns. exit.json written
 * through a rename is what the agent trusts, also after its own restart.
 *
 * `exec` runs a command inside a running container (probes, preStop hooks): it checks that
 * PID is still the process that started at TICKS, joins its cgroups and namespaces and root,
 * and runs COMMAND in a process group of its own; its exit code is the command's. SIGTERM
 * makes it kill that process group (the agent's timeout).
 *
 * The design choice: the shim is a direct child of the agent that started it (not
 * double-forked), in a session of its own. The agent reaps the shims it started; a shim whose
 * agent went away is re-parented to init like any orphan and keeps supervising.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rt_util.h"

#define SHIM_MAX_CGROUPS 8
#define SHIM_SYNC_FD	 3

extern char **environ;

struct shim_opts {
	long uid, gid; /* -1: keep */
	const char *dir, *log, *netns, *kill_cgroup, *hostname, *rootfs, *workdir;
	const char *cgroups[SHIM_MAX_CGROUPS];
	int n_cgroups;
	uint64_t log_max;
	pid_t pid;
	uint64_t pid_start;
	char **argv;
};

static void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void die(int code, const char *fmt, ...)
{
	va_list ap;
	fputs("shoal-shim: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static int parse_opts(int argc, char **argv, struct shim_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->uid = o->gid = -1;
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--")) {
			if (i + 1 >= argc)
				return -1;
			o->argv = argv + i + 1;
			return 0;
		}
		if (i + 1 >= argc)
			return -1;
		const char *v = argv[++i];
		char *end;
		if (!strcmp(a, "--dir"))
			o->dir = v;
		else if (!strcmp(a, "--log"))
			o->log = v;
		else if (!strcmp(a, "--netns"))
			o->netns = v;
		else if (!strcmp(a, "--kill-cgroup"))
			o->kill_cgroup = v;
		else if (!strcmp(a, "--hostname"))
			o->hostname = v;
		else if (!strcmp(a, "--rootfs"))
			o->rootfs = v;
		else if (!strcmp(a, "--workdir"))
			o->workdir = v;
		else if (!strcmp(a, "--cgroup") && o->n_cgroups < SHIM_MAX_CGROUPS)
			o->cgroups[o->n_cgroups++] = v;
		else if (!strcmp(a, "--log-max")) {
			o->log_max = strtoull(v, &end, 10);
			if (*end)
				return -1;
		} else if (!strcmp(a, "--user") || !strcmp(a, "--group")) {
			long id = strtol(v, &end, 10);
			if (*end || id < 0 || id > 2147483647)
				return -1;
			*(a[2] == 'u' ? &o->uid : &o->gid) = id;
		} else if (!strcmp(a, "--pid")) {
			o->pid = (pid_t)strtol(v, &end, 10);
			if (*end || o->pid <= 0)
				return -1;
		} else if (!strcmp(a, "--pid-start")) {
			o->pid_start = strtoull(v, &end, 10);
			if (*end)
				return -1;
		} else {
			return -1;
		}
	}
	return -1;
}

static void write_full(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(fd, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

/* Becomes the container's user: its group alone (no supplementary groups), then the user,
 * which drops every capability. 0 or -errno. */
static int become(const struct shim_opts *o)
{
	if (o->uid < 0 && o->gid < 0)
		return 0;
	gid_t g = (gid_t)(o->gid >= 0 ? o->gid : 0);
	if (setgroups(1, &g) < 0 || setgid(g) < 0)
		return -errno;
	if (o->uid >= 0 && setuid((uid_t)o->uid) < 0)
		return -errno;
	return 0;
}

/* In the container child: report why it could not start, and end. */
static void child_fail(int fd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));
static void child_fail(int fd, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (n >= (int)sizeof(msg))
		n = sizeof(msg) - 1;
	write_full(fd, msg, (size_t)n);
	_exit(127);
}

static int join_cgroups(const struct shim_opts *o, char *err, size_t len)
{
	char path[4096];
	for (int i = 0; i < o->n_cgroups; i++) {
		snprintf(path, sizeof(path), "%s/cgroup.procs", o->cgroups[i]);
		int e = rt_write_str(path, "0");
		if (e) {
			snprintf(err, len, "join cgroup %s: %s", o->cgroups[i], strerror(-e));
			return e;
		}
	}
	return 0;
}

static void mount_rootfs(const char *rootfs, int efd)
{
	char p[4096];
	struct stat st;

	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		child_fail(efd, "rootfs: make / private: %s", strerror(errno));
	if (mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
		child_fail(efd, "rootfs %s: bind mount: %s", rootfs, strerror(errno));
	snprintf(p, sizeof(p), "%s/proc", rootfs);
	if (mkdir(p, 0555) < 0 && errno != EEXIST)
		child_fail(efd, "rootfs %s: mkdir /proc: %s", rootfs, strerror(errno));
	if (mount("proc", p, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		child_fail(efd, "rootfs %s: mount /proc: %s", rootfs, strerror(errno));
	snprintf(p, sizeof(p), "%s/dev", rootfs);
	if (stat(p, &st) == 0 && S_ISDIR(st.st_mode) &&
	    mount("/dev", p, NULL, MS_BIND | MS_REC, NULL) < 0)
		child_fail(efd, "rootfs %s: bind mount /dev: %s", rootfs, strerror(errno));
	snprintf(p, sizeof(p), "%s/sys", rootfs);
	if (stat(p, &st) == 0 && S_ISDIR(st.st_mode) &&
	    mount("sysfs", p, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		child_fail(efd, "rootfs %s: mount /sys: %s", rootfs, strerror(errno));
	if (chdir(rootfs) < 0)
		child_fail(efd, "rootfs %s: %s", rootfs, strerror(errno));
	/* pivot_root(".", ".") stacks the old root on the new one; detaching it leaves only
	 * the new root. Filesystems that cannot be pivoted (initramfs) fall back to chroot. */
	if (syscall(SYS_pivot_root, ".", ".") == 0) {
		if (umount2(".", MNT_DETACH) < 0)
			child_fail(efd, "rootfs %s: detach the old root: %s", rootfs,
				   strerror(errno));
	} else if (chroot(".") < 0) {
		child_fail(efd, "rootfs %s: pivot_root and chroot: %s", rootfs, strerror(errno));
	}
	if (chdir("/") < 0)
		child_fail(efd, "rootfs %s: chdir /: %s", rootfs, strerror(errno));
}

/* The container process: namespaces, cgroups, root, then exec. Never returns. */
static void container_child(const struct shim_opts *o, int outw, int efd)
{
	char err[512];
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Ignored signals stay ignored across exec: give the container the defaults. */
	signal(SIGPIPE, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	if (setsid() < 0)
		child_fail(efd, "setsid: %s", strerror(errno));
	if (join_cgroups(o, err, sizeof(err)))
		child_fail(efd, "%s", err);
	if (o->netns) {
		int fd = open(o->netns, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
			child_fail(efd, "enter network namespace %s: %s", o->netns,
				   strerror(errno));
		close(fd);
	}
	if (unshare(CLONE_NEWUTS | (o->rootfs ? CLONE_NEWNS : 0)) < 0)
		child_fail(efd, "new namespaces: %s", strerror(errno));
	if (o->hostname && sethostname(o->hostname, strlen(o->hostname)) < 0)
		child_fail(efd, "hostname %s: %s", o->hostname, strerror(errno));
	int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (nullfd < 0)
		child_fail(efd, "open /dev/null: %s", strerror(errno));
	if (o->rootfs)
		mount_rootfs(o->rootfs, efd);
	const char *wd = o->workdir && *o->workdir ? o->workdir : "/";
	if (chdir(wd) < 0)
		child_fail(efd, "workingDir %s: %s", wd, strerror(errno));
	if (dup2(nullfd, 0) < 0 || dup2(outw, 1) < 0 || dup2(outw, 2) < 0)
		child_fail(efd, "stdio: %s", strerror(errno));
	int e = become(o);
	if (e)
		child_fail(efd, "run as user %ld group %ld: %s", o->uid, o->gid, strerror(-e));
	execvp(o->argv[0], o->argv);
	if (errno == ENOENT && !strchr(o->argv[0], '/'))
		child_fail(efd, "exec \"%s\": executable file not found in $PATH", o->argv[0]);
	child_fail(efd, "exec \"%s\": %s", o->argv[0], strerror(errno));
}

struct shim_log {
	const char *path;
	int fd;
	uint64_t size, max;
};

static void log_open(struct shim_log *l, bool truncate)
{
	l->fd = open(l->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (truncate ? O_TRUNC : 0),
		     0640);
	struct stat st;
	l->size = l->fd >= 0 && fstat(l->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	if (l->fd < 0)
		fprintf(stderr, "shoal-shim: open log %s: %s\n", l->path, strerror(errno));
}

/* Appends to the log; past the cap the file moves to FILE.1 (replacing an older one). */
static void log_write(struct shim_log *l, const char *buf, size_t n)
{
	if (l->max && l->size > 0 && l->size + n > l->max) {
		char old[4096];
		snprintf(old, sizeof(old), "%s.1", l->path);
		if (l->fd >= 0)
			close(l->fd);
		if (rename(l->path, old) < 0)
			fprintf(stderr, "shoal-shim: rotate %s: %s\n", l->path, strerror(errno));
		log_open(l, true);
	}
	if (l->fd < 0)
		return;
	write_full(l->fd, buf, n);
	l->size += n;
}

/* What remains of the container after its main process ended. */
static void kill_rest(const struct shim_opts *o)
{
	char path[4096];
	if (o->kill_cgroup) {
		snprintf(path, sizeof(path), "%s/cgroup.kill", o->kill_cgroup);
		if (rt_write_str(path, "1") == 0)
			return;
	}
	for (int round = 0; round < 50; round++) {
		int found = 0;
		for (int i = 0; i < o->n_cgroups; i++) {
			snprintf(path, sizeof(path), "%s/cgroup.procs", o->cgroups[i]);
			FILE *f = fopen(path, "re");
			if (!f)
				continue;
			int pid;
			while (fscanf(f, "%d", &pid) == 1) {
				if (pid > 0 && pid != getpid() && kill(pid, SIGKILL) == 0)
					found++;
			}
			fclose(f);
		}
		if (!found)
			return;
		usleep(10000);
	}
}

static int write_exit(const char *dir, int code, int sig, int64_t started, int64_t finished,
		      const char *start_error)
{
	char path[4096], buf[1024], esc[600];
	size_t j = 0;
	for (const char *s = start_error; s && *s && j < sizeof(esc) - 8; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			esc[j++] = '\\';
			esc[j++] = (char)c;
		} else if (c < 0x20) {
			j += (size_t)snprintf(esc + j, sizeof(esc) - j, "\\u%04x", c);
		} else {
			esc[j++] = (char)c;
		}
	}
	esc[j] = '\0';
	int n = snprintf(
		buf, sizeof(buf),
		"{\"exitCode\":%d,\"signal\":%d,\"startedAt\":%lld,\"finishedAt\":%lld%s%s%s}\n",
		code, sig, (long long)started, (long long)finished,
		start_error ? ",\"startError\":\"" : "", start_error ? esc : "",
		start_error ? "\"" : "");
	snprintf(path, sizeof(path), "%s/exit.json", dir);
	return rt_write_atomic(path, buf, (size_t)n);
}

static int shim_run(struct shim_opts *o)
{
	char path[4096], buf[65536];
	int outp[2], errp[2];

	if (!o->dir || !o->log || !o->argv)
		die(2, "run: --dir, --log and a command are required");
	if (fcntl(SHIM_SYNC_FD, F_GETFD) < 0)
		die(2, "run: no sync pipe on fd %d", SHIM_SYNC_FD);
	if (setsid() < 0)
		die(1, "setsid: %s", strerror(errno));
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		die(1, "become a subreaper: %s", strerror(errno));
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	if (fcntl(SHIM_SYNC_FD, F_SETFD, FD_CLOEXEC) < 0)
		die(1, "sync pipe: %s", strerror(errno));

	struct shim_log log = { .path = o->log, .max = o->log_max };
	log_open(&log, false);
	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0)
		die(1, "pipe: %s", strerror(errno));
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		die(1, "signalfd: %s", strerror(errno));

	int64_t started = rt_real_ns();
	pid_t pid = fork();
	if (pid < 0)
		die(1, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(outp[0]);
		close(errp[0]);
		container_child(o, outp[1], errp[1]);
	}
	close(outp[1]);
	close(errp[1]);

	/* EOF on the error pipe: exec happened (close-on-exec) or the child died. */
	char emsg[600];
	size_t elen = 0;
	for (;;) {
		ssize_t n = read(errp[0], emsg + elen, sizeof(emsg) - 1 - elen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		elen += (size_t)n;
		if (elen == sizeof(emsg) - 1)
			break;
	}
	emsg[elen] = '\0';
	close(errp[0]);
	if (elen) {
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		int err = write_exit(o->dir, 128, 0, started, rt_real_ns(), emsg);
		if (err)
			fprintf(stderr, "shoal-shim: write exit record: %s\n", strerror(-err));
		dprintf(SHIM_SYNC_FD, "error %s\n", emsg);
		close(SHIM_SYNC_FD);
		return 0;
	}

	uint64_t shim_start = 0, pid_start = 0;
	int err = rt_proc_start(getpid(), &shim_start, NULL);
	if (!err)
		err = rt_proc_start(pid, &pid_start, NULL);
	if (err) {
		/* The container ended at once and was reaped by nobody yet: its stat exists
		 * as a zombie, so this is a real failure of /proc. */
		fprintf(stderr, "shoal-shim: read start times: %s\n", strerror(-err));
	}
	int n = snprintf(buf, sizeof(buf),
			 "{\"shimPid\":%d,\"shimStart\":%llu,\"pid\":%d,\"pidStart\":%llu,"
			 "\"startedAt\":%lld}\n",
			 (int)getpid(), (unsigned long long)shim_start, (int)pid,
			 (unsigned long long)pid_start, (long long)started);
	snprintf(path, sizeof(path), "%s/pid.json", o->dir);
	if ((err = rt_write_atomic(path, buf, (size_t)n)))
		fprintf(stderr, "shoal-shim: write %s: %s\n", path, strerror(-err));
	dprintf(SHIM_SYNC_FD, "ok %d %llu %d %llu %lld\n", (int)getpid(),
		(unsigned long long)shim_start, (int)pid, (unsigned long long)pid_start,
		(long long)started);
	close(SHIM_SYNC_FD);

	struct pollfd pf[2] = { { .fd = outp[0], .events = POLLIN },
				{ .fd = sfd, .events = POLLIN } };
	bool main_done = false;
	int status = 0;
	int64_t finished = 0;
	uint64_t drain_until = 0;
	for (;;) {
		int timeout = -1;
		if (main_done) {
			uint64_t now = rt_mono_ms();
			if (pf[0].fd < 0 || now >= drain_until)
				break;
			timeout = (int)(drain_until - now);
		}
		int r = poll(pf, 2, timeout);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die(1, "poll: %s", strerror(errno));
		if (pf[1].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) == sizeof(si))
				;
			int st;
			pid_t p;
			while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
				if (p != pid)
					continue;
				status = st;
				finished = rt_real_ns();
				main_done = true;
				kill_rest(o);
				drain_until = rt_mono_ms() + 2000;
			}
		}
		if (pf[0].fd >= 0 && pf[0].revents) {
			ssize_t got = read(pf[0].fd, buf, sizeof(buf));
			if (got > 0) {
				log_write(&log, buf, (size_t)got);
			} else if (got == 0 || errno != EINTR) {
				close(pf[0].fd);
				pf[0].fd = -1;
			}
		}
	}
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	if ((err = write_exit(o->dir, code, sig, started, finished, NULL)))
		die(1, "write exit record in %s: %s", o->dir, strerror(-err));
	return 0;
}

static volatile sig_atomic_t exec_term;
static void on_term(int sig)
{
	(void)sig;
	exec_term = 1;
}

static bool same_ns(int fd, const char *self)
{
	struct stat a, b;
	return fstat(fd, &a) == 0 && stat(self, &b) == 0 && a.st_ino == b.st_ino &&
	       a.st_dev == b.st_dev;
}

static int shim_exec(struct shim_opts *o)
{
	static const struct {
		const char *name;
		int type;
	} nss[] = { { "net", CLONE_NEWNET }, { "uts", CLONE_NEWUTS }, { "mnt", CLONE_NEWNS } };
	char path[256], err[512];
	int fds[3];

	if (!o->pid || !o->argv)
		die(2, "exec: --pid, --pid-start and a command are required");
	if (!rt_proc_is(o->pid, o->pid_start))
		die(126, "exec: the container's process %d has exited", (int)o->pid);
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)o->pid, nss[i].name);
		if ((fds[i] = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			die(126, "exec: open %s: %s", path, strerror(errno));
	}
	snprintf(path, sizeof(path), "/proc/%d/root", (int)o->pid);
	int rootfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		die(126, "exec: open %s: %s", path, strerror(errno));
	/* The pid might have been recycled between the check and the opens. */
	if (!rt_proc_is(o->pid, o->pid_start))
		die(126, "exec: the container's process %d has exited", (int)o->pid);
	if (join_cgroups(o, err, sizeof(err)))
		die(126, "exec: %s", err);
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "/proc/self/ns/%s", nss[i].name);
		if (!same_ns(fds[i], path) && setns(fds[i], nss[i].type) < 0)
			die(126, "exec: enter the container's %s namespace: %s", nss[i].name,
			    strerror(errno));
		close(fds[i]);
	}
	if (fchdir(rootfd) < 0 || chroot(".") < 0)
		die(126, "exec: enter the container's root: %s", strerror(errno));
	close(rootfd);
	const char *wd = o->workdir && *o->workdir ? o->workdir : "/";
	if (chdir(wd) < 0)
		die(126, "exec: workingDir %s: %s", wd, strerror(errno));
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		die(126, "exec: become a subreaper: %s", strerror(errno));

	struct sigaction sa = { .sa_handler = on_term };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	pid_t child = fork();
	if (child < 0)
		die(126, "exec: fork: %s", strerror(errno));
	if (child == 0) {
		signal(SIGTERM, SIG_DFL);
		setpgid(0, 0);
		int e = become(o);
		if (e) {
			fprintf(stderr, "run as user %ld group %ld: %s\n", o->uid, o->gid,
				strerror(-e));
			_exit(126);
		}
		execvp(o->argv[0], o->argv);
		fprintf(stderr, "exec \"%s\": %s\n", o->argv[0], strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}
	setpgid(child, child);
	int st = 0;
	for (;;) {
		if (exec_term)
			kill(-child, SIGKILL);
		pid_t p = waitpid(child, &st, 0);
		if (p == child)
			break;
		if (p < 0 && errno != EINTR)
			die(126, "exec: wait: %s", strerror(errno));
	}
	kill(-child, SIGKILL);
	uint64_t until = rt_mono_ms() + 100;
	while (rt_mono_ms() < until) {
		pid_t p = waitpid(-1, NULL, WNOHANG);
		if (p < 0)
			break;
		if (p == 0)
			usleep(5000);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Closes every descriptor from `from` up (what the agent had open belongs to the agent). */
static void close_from(int from)
{
	if (syscall(SYS_close_range, from, ~0U, 0) == 0)
		return;
	long max = sysconf(_SC_OPEN_MAX);
	for (long fd = from; fd < (max > 0 ? max : 1024); fd++)
		close((int)fd);
}

int main(int argc, char **argv)
{
	struct shim_opts o;
	if (argc < 2 || parse_opts(argc, argv, &o) < 0) {
		fprintf(stderr, "usage: shoal-shim run --dir DIR --log FILE [options] -- CMD...\n"
				"       shoal-shim exec --pid PID --pid-start TICKS [options] -- "
				"CMD...\n");
		return 2;
	}
	if (!strcmp(argv[1], "run")) {
		/* fd 3 is the sync pipe; nothing else the agent had open belongs here. */
		close_from(SHIM_SYNC_FD + 1);
		return shim_run(&o);
	}
	if (!strcmp(argv[1], "exec")) {
		close_from(3);
		return shim_exec(&o);
	}
	fprintf(stderr, "shoal-shim: unknown mode \"%s\"\n", argv[1]);
	return 2;
}
