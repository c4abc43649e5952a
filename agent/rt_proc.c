// SPDX-License-Identifier: Apache-2.0
/*
 * Processes of the runtime: starting a container through shoal-shim, running a command inside
 * a running container (probes, hooks), and the records a shim leaves in the instance
 * directory (pid.json, exit.json).
 *
 * The design choice: the agent is multi-threaded, so it never forks to do container work;
 * it posix_spawn()s the shim, which does namespaces, cgroups and exec in a single-threaded
 * process of its own. The shim answers on a pipe within a bounded time ("ok PIDS" or
 * "error MESSAGE"), so a start error (a binary that does not exist, a bad workingDir) is
 * known when rt_proc_start_ctr returns, with the shim's words.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "nl.h"
#include "rt_int.h"
#include "rt_util.h"

#define SHIM_START_TIMEOUT_MS 15000

struct argv_b {
	char **v;
	size_t n, cap;
	bool oom;
};

static void arg(struct argv_b *b, const char *s)
{
	if (b->oom)
		return;
	if (b->n + 2 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 32;
		char **nv = realloc(b->v, cap * sizeof(char *));
		if (!nv) {
			b->oom = true;
			return;
		}
		b->v = nv;
		b->cap = cap;
	}
	if (!(b->v[b->n] = strdup(s))) {
		b->oom = true;
		return;
	}
	b->v[++b->n] = NULL;
}

static void argf(struct argv_b *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void argf(struct argv_b *b, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	arg(b, buf);
}

static void user_args(struct argv_b *b, const struct rt_ctr_spec *s)
{
	if (s->uid >= 0) {
		arg(b, "--user");
		argf(b, "%lld", (long long)s->uid);
	}
	if (s->gid >= 0) {
		arg(b, "--group");
		argf(b, "%lld", (long long)s->gid);
	}
}

/* Spawns the shim with stdin and stdout on /dev/null, stderr on errlog (or /dev/null), fd 3
 * on sync_fd (-1: none) and 1/2 on out_fd (-1: as stdout). */
static int spawn_shim(struct rt *rt, char **argv, char **envp, const char *errlog, int sync_fd,
		      int out_fd, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	int err;

	if ((err = posix_spawn_file_actions_init(&fa)))
		return -err;
	if ((err = posix_spawnattr_init(&at))) {
		posix_spawn_file_actions_destroy(&fa);
		return -err;
	}
	sigemptyset(&none);
	sigfillset(&all);
	if ((err = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)))
		goto out;
	if (out_fd >= 0) {
		if ((err = posix_spawn_file_actions_adddup2(&fa, out_fd, 1)) ||
		    (err = posix_spawn_file_actions_adddup2(&fa, out_fd, 2)))
			goto out;
	} else {
		if ((err = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0)) ||
		    (err = posix_spawn_file_actions_addopen(&fa, 2, errlog ? errlog : "/dev/null",
							    O_WRONLY | O_CREAT | O_APPEND, 0640)))
			goto out;
	}
	if (sync_fd >= 0 && (err = posix_spawn_file_actions_adddup2(&fa, sync_fd, 3)))
		goto out;
	if ((err = posix_spawnattr_setsigmask(&at, &none)) ||
	    (err = posix_spawnattr_setsigdefault(&at, &all)) ||
	    (err = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)))
		goto out;
	err = posix_spawn(pid, rt->shim, &fa, &at, argv, envp);
out:
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	return -err;
}

/* The last line of the shim's own log: why it ended before answering. */
static void shim_log_tail(const char *inst_dir, char *out, size_t len)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/shim.log", inst_dir);
	char *s = rt_read_file(path, 1 << 20, NULL);
	if (!s || !*s) {
		free(s);
		return;
	}
	size_t n = strlen(s);
	while (n && s[n - 1] == '\n')
		s[--n] = '\0';
	char *last = strrchr(s, '\n');
	snprintf(out, len, "%s", last ? last + 1 : s);
	free(s);
}

int rt_proc_start_ctr(struct rt *rt, struct rt_ctr *c, char **argv, const char *inst_dir,
		      const char *log, char *err, size_t len)
{
	struct rt_pod *p = c->pod;
	struct argv_b b = { 0 };
	const char *dirs[4];
	char errlog[PATH_MAX], line[1024];
	int sync[2] = { -1, -1 }, e;
	pid_t pid = -1;

	arg(&b, "shoal-shim");
	arg(&b, "run");
	arg(&b, "--dir");
	arg(&b, inst_dir);
	arg(&b, "--log");
	arg(&b, log);
	arg(&b, "--log-max");
	argf(&b, "%" PRIu64, rt->log_max);
	arg(&b, "--netns");
	argf(&b, "%s/%s", NL_NETNS_DIR, p->netns);
	rt_cg_dirs(&c->cg, dirs);
	for (int i = 0; dirs[i]; i++) {
		arg(&b, "--cgroup");
		arg(&b, dirs[i]);
	}
	if (c->cg.v2) {
		arg(&b, "--kill-cgroup");
		arg(&b, c->cg.v2);
	}
	arg(&b, "--hostname");
	arg(&b, p->spec.hostname);
	if (c->spec->rootfs) {
		arg(&b, "--rootfs");
		arg(&b, c->spec->rootfs);
	}
	if (c->spec->workdir) {
		arg(&b, "--workdir");
		arg(&b, c->spec->workdir);
	}
	user_args(&b, c->spec);
	arg(&b, "--");
	for (size_t i = 0; argv[i]; i++)
		arg(&b, argv[i]);
	if (b.oom) {
		snprintf(err, len, "out of memory");
		rt_strv_free(b.v);
		return -1;
	}

	snprintf(errlog, sizeof(errlog), "%s/shim.log", inst_dir);
	if (pipe2(sync, O_CLOEXEC) < 0) {
		snprintf(err, len, "start shim: pipe: %s", strerror(errno));
		rt_strv_free(b.v);
		return -1;
	}
	/* fd 3 in the shim: keep the write end away from 3 so dup2 clears close-on-exec. */
	int w = fcntl(sync[1], F_DUPFD_CLOEXEC, 10);
	close(sync[1]);
	sync[1] = w;
	if (w < 0) {
		snprintf(err, len, "start shim: %s", strerror(errno));
		goto fail;
	}
	if ((e = spawn_shim(rt, b.v, c->envp, errlog, sync[1], -1, &pid))) {
		snprintf(err, len, "start %s: %s", rt->shim, strerror(-e));
		goto fail;
	}
	close(sync[1]);
	sync[1] = -1;

	/* The answer: one line, or EOF when the shim died first. */
	size_t got = 0;
	uint64_t until = rt_mono_ms() + SHIM_START_TIMEOUT_MS;
	bool timed_out = false;
	while (got < sizeof(line) - 1 && !memchr(line, '\n', got)) {
		uint64_t now = rt_mono_ms();
		if (now >= until) {
			timed_out = true;
			break;
		}
		struct pollfd pf = { .fd = sync[0], .events = POLLIN };
		int r = poll(&pf, 1, (int)(until - now));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			timed_out = r == 0;
			break;
		}
		ssize_t n = read(sync[0], line + got, sizeof(line) - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		line[got] = '\0';
	}
	line[got] = '\0';
	close(sync[0]);
	sync[0] = -1;
	line[strcspn(line, "\n")] = '\0';

	int sp, cp;
	unsigned long long ss, cs;
	long long started;
	if (!strncmp(line, "ok ", 3) &&
	    sscanf(line + 3, "%d %llu %d %llu %lld", &sp, &ss, &cp, &cs, &started) == 5) {
		c->shim_pid = sp;
		c->shim_start = ss;
		c->pid = cp;
		c->pid_start = cs;
		c->started_at = started;
		rt_strv_free(b.v);
		return 0;
	}
	if (timed_out) {
		kill(pid, SIGKILL);
		snprintf(err, len, "the container did not start within %d s",
			 SHIM_START_TIMEOUT_MS / 1000);
	} else if (!strncmp(line, "error ", 6)) {
		snprintf(err, len, "%s", line + 6);
	} else {
		char tail[512] = "";
		shim_log_tail(inst_dir, tail, sizeof(tail));
		snprintf(err, len, "shoal-shim ended before the container started%s%s",
			 *tail ? ": " : "", tail);
	}
	/* The shim ends right after an error answer (or was killed): collect it. */
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	rt_strv_free(b.v);
	return -1;
fail:
	if (sync[0] >= 0)
		close(sync[0]);
	if (sync[1] >= 0)
		close(sync[1]);
	rt_strv_free(b.v);
	return -1;
}

int rt_proc_exec(struct rt *rt, struct rt_ctr *c, char *const *argv, pid_t *pidp, int *pidfdp,
		 int *outfdp)
{
	struct argv_b b = { 0 };
	const char *dirs[4];
	int err;

	arg(&b, "shoal-shim");
	arg(&b, "exec");
	arg(&b, "--pid");
	argf(&b, "%d", (int)c->pid);
	arg(&b, "--pid-start");
	argf(&b, "%" PRIu64, c->pid_start);
	rt_cg_dirs(&c->cg, dirs);
	for (int i = 0; dirs[i]; i++) {
		arg(&b, "--cgroup");
		arg(&b, dirs[i]);
	}
	if (c->spec->workdir) {
		arg(&b, "--workdir");
		arg(&b, c->spec->workdir);
	}
	user_args(&b, c->spec);
	arg(&b, "--");
	for (size_t i = 0; argv[i]; i++)
		arg(&b, argv[i]);
	if (b.oom) {
		rt_strv_free(b.v);
		return -ENOMEM;
	}
	int out = memfd_create("shoal-exec", MFD_CLOEXEC);
	if (out < 0) {
		err = -errno;
		rt_strv_free(b.v);
		return err;
	}
	pid_t pid;
	err = spawn_shim(rt, b.v, c->envp, NULL, -1, out, &pid);
	rt_strv_free(b.v);
	if (err) {
		close(out);
		return err;
	}
	int pfd = pidfd_open(pid, 0);
	if (pfd < 0) {
		err = -errno;
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		close(out);
		return err;
	}
	*pidp = pid;
	*pidfdp = pfd;
	*outfdp = out;
	return 0;
}

int rt_proc_read_exit(const char *inst_dir, struct rt_term *t)
{
	char path[PATH_MAX];
	json_error_t jerr;
	snprintf(path, sizeof(path), "%s/exit.json", inst_dir);
	json_t *o = json_load_file(path, 0, &jerr);
	if (!o)
		return access(path, F_OK) == 0 ? -EPROTO : -ENOENT;
	memset(t, 0, sizeof(*t));
	t->set = true;
	t->exit_code = (int)json_integer_value(json_object_get(o, "exitCode"));
	t->signal = (int)json_integer_value(json_object_get(o, "signal"));
	t->started = json_integer_value(json_object_get(o, "startedAt"));
	t->finished = json_integer_value(json_object_get(o, "finishedAt"));
	const char *se = json_string_value(json_object_get(o, "startError"));
	if (se) {
		snprintf(t->reason, sizeof(t->reason), "StartError");
		snprintf(t->msg, sizeof(t->msg), "%s", se);
	} else {
		snprintf(t->reason, sizeof(t->reason), "%s", t->exit_code ? "Error" : "Completed");
	}
	json_decref(o);
	return 0;
}

int rt_proc_read_pids(const char *inst_dir, struct rt_ctr *c)
{
	char path[PATH_MAX];
	json_error_t jerr;
	snprintf(path, sizeof(path), "%s/pid.json", inst_dir);
	json_t *o = json_load_file(path, 0, &jerr);
	if (!o)
		return access(path, F_OK) == 0 ? -EPROTO : -ENOENT;
	c->shim_pid = (pid_t)json_integer_value(json_object_get(o, "shimPid"));
	c->shim_start = (uint64_t)json_integer_value(json_object_get(o, "shimStart"));
	c->pid = (pid_t)json_integer_value(json_object_get(o, "pid"));
	c->pid_start = (uint64_t)json_integer_value(json_object_get(o, "pidStart"));
	c->started_at = json_integer_value(json_object_get(o, "startedAt"));
	json_decref(o);
	return c->shim_pid > 0 && c->pid > 0 ? 0 : -EPROTO;
}

int rt_proc_pidfd(pid_t pid, uint64_t start)
{
	if (pid <= 0)
		return -ESRCH;
	int fd = pidfd_open(pid, 0);
	if (fd < 0)
		return -errno;
	/* Checked after opening: the fd now pins this very process. */
	if (!rt_proc_is(pid, start)) {
		close(fd);
		return -ESRCH;
	}
	return fd;
}

void rt_proc_reap(pid_t pid, uint64_t start)
{
	uint64_t s;
	if (pid <= 0 || rt_proc_start(pid, &s, NULL) || s != start)
		return;
	while (waitpid(pid, NULL, WNOHANG) < 0 && errno == EINTR)
		;
}
