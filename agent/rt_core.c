// SPDX-License-Identifier: Apache-2.0
/*
 * The pod runtime's loop and its public interface (agent/runtime.h).
 *
 * The design choice: one thread owns every pod. It sleeps in epoll_wait until a shim exits
 * (pidfd), a probe's socket or process is ready, a command arrives (eventfd), or the earliest
 * deadline of any pod is due (back-off restart, probe period, probe timeout, grace period) —
 * there is no polling tick. rt_pod_sync() and rt_pod_kill() hand commands to it; readers
 * (rt_pod_status, rt_pods, rt_log_path, usage) see what it last published, under one mutex.
 * Status changes are found by comparing each dirty pod's freshly built status with the last
 * one reported, and status_changed / done callbacks run on the loop thread with no lock held.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "nl.h"
#include "rt_int.h"
#include "rt_util.h"

#define REAP_KILL_MS 5000

/* ---- watches, notes, reaping ---- */

struct rt_watch *rt_watch_add(struct rt *rt, int fd, uint32_t events, enum rt_watch_kind kind,
			      struct rt_ctr *c, int probe)
{
	struct rt_watch *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->fd = fd;
	w->kind = kind;
	w->c = c;
	w->probe = probe;
	struct epoll_event ev = { .events = events, .data.ptr = w };
	if (epoll_ctl(rt->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int e = errno;
		free(w);
		errno = e;
		return NULL;
	}
	return w;
}

void rt_watch_drop(struct rt *rt, struct rt_watch *w)
{
	if (!w)
		return;
	if (epoll_ctl(rt->epfd, EPOLL_CTL_DEL, w->fd, NULL) < 0 && errno != EBADF)
		log_warn("runtime: epoll del %d: %s", w->fd, strerror(errno));
	close(w->fd);
	w->fd = -1;
	w->dead = true;
	w->next_dead = rt->graveyard;
	rt->graveyard = w;
}

static void note_add(struct rt *rt, struct rt_note *n)
{
	n->next = NULL;
	*rt->notes_tail = n;
	rt->notes_tail = &n->next;
}

void rt_note_done(struct rt *rt, const char *uid, void (*done)(void *, const char *), void *arg)
{
	if (!done)
		return;
	struct rt_note *n = calloc(1, sizeof(*n));
	if (!n || !(n->uid = strdup(uid))) {
		/* Rather late than never: a caller waits for this. */
		free(n);
		done(arg, uid);
		return;
	}
	n->done = done;
	n->arg = arg;
	note_add(rt, n);
}

void rt_note_status(struct rt *rt, struct rt_pod *p, json_t *status)
{
	if (!rt->cfg.status_changed)
		return;
	struct rt_note *n = calloc(1, sizeof(*n));
	if (!n || !(n->uid = strdup(p->spec.uid)) || !(n->ns = strdup(p->spec.ns)) ||
	    !(n->name = strdup(p->spec.name))) {
		log_error("runtime: pod %s/%s: status change not reported: out of memory",
			  p->spec.ns, p->spec.name);
		if (n) {
			free(n->uid);
			free(n->ns);
			free(n);
		}
		return;
	}
	n->status = json_incref(status);
	note_add(rt, n);
}

static void notes_deliver(struct rt *rt)
{
	struct rt_note *n = rt->notes;
	rt->notes = NULL;
	rt->notes_tail = &rt->notes;
	while (n) {
		struct rt_note *next = n->next;
		if (n->status)
			rt->cfg.status_changed(rt->cfg.arg, n->uid, n->ns, n->name, n->status);
		if (n->done)
			n->done(n->arg, n->uid);
		json_decref(n->status);
		free(n->uid);
		free(n->ns);
		free(n->name);
		free(n);
		n = next;
	}
}

void rt_reap_add(struct rt *rt, pid_t pid)
{
	if (rt->n_reap == rt->cap_reap) {
		size_t cap = rt->cap_reap ? rt->cap_reap * 2 : 8;
		void *nr = realloc(rt->reap, cap * sizeof(*rt->reap));
		if (!nr) {
			/* Cannot remember it: make sure it ends, and collect it now. */
			kill(pid, SIGKILL);
			while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
				;
			return;
		}
		rt->reap = nr;
		rt->cap_reap = cap;
	}
	rt->reap[rt->n_reap].pid = pid;
	rt->reap[rt->n_reap].kill_at = rt_mono_ms() + REAP_KILL_MS;
	rt->n_reap++;
}

static void reap_step(struct rt *rt, uint64_t now)
{
	for (size_t i = 0; i < rt->n_reap;) {
		pid_t r = waitpid(rt->reap[i].pid, NULL, WNOHANG);
		if (r == rt->reap[i].pid || (r < 0 && errno == ECHILD)) {
			rt->reap[i] = rt->reap[--rt->n_reap];
			continue;
		}
		if (now >= rt->reap[i].kill_at) {
			kill(rt->reap[i].pid, SIGKILL);
			rt->reap[i].kill_at = now + REAP_KILL_MS;
		}
		i++;
	}
}

/* ---- what other threads see ---- */

static void pub_free(struct rt_pub *u)
{
	if (!u)
		return;
	free(u->uid);
	free(u->ns);
	free(u->name);
	json_decref(u->status);
	rt_cg_free(&u->cg);
	free(u->dir);
	for (size_t i = 0; i < u->n; i++)
		free(u->names[i]);
	free(u->names);
	free(u->instances);
	free(u);
}

static struct rt_pub *pub_find(struct rt *rt, const char *uid, size_t *idx)
{
	for (size_t i = 0; i < rt->n_pub; i++) {
		if (!strcmp(rt->pub[i]->uid, uid)) {
			if (idx)
				*idx = i;
			return rt->pub[i];
		}
	}
	return NULL;
}

void rt_pub_update(struct rt *rt, struct rt_pod *p)
{
	struct rt_pub *u = calloc(1, sizeof(*u));
	if (!u)
		goto nomem;
	if (!(u->uid = strdup(p->spec.uid)) || !(u->ns = strdup(p->spec.ns)) ||
	    !(u->name = strdup(p->spec.name)) || !(u->dir = strdup(p->dir)) ||
	    rt_cg_copy(&u->cg, &p->cg) || !(u->names = calloc(p->n_ctrs + 1, sizeof(char *))) ||
	    !(u->instances = calloc(p->n_ctrs + 1, sizeof(int))))
		goto nomem;
	for (size_t i = 0; i < p->n_ctrs; i++) {
		if (!(u->names[i] = strdup(p->ctrs[i].spec->name)))
			goto nomem;
		u->instances[i] = p->ctrs[i].instance;
		u->n = i + 1;
	}
	u->status = json_incref(p->reported);
	u->created = p->start_time;
	pthread_mutex_lock(&rt->mu);
	size_t idx;
	struct rt_pub *old = pub_find(rt, u->uid, &idx);
	if (old) {
		u->cpu_usec = old->cpu_usec;
		u->cpu_ms = old->cpu_ms;
		u->cpu_have = old->cpu_have;
		rt->pub[idx] = u;
	} else if (rt->n_pub < rt->cap_pub) {
		rt->pub[rt->n_pub++] = u;
	} else {
		size_t cap = rt->cap_pub ? rt->cap_pub * 2 : 16;
		struct rt_pub **np = realloc(rt->pub, cap * sizeof(*np));
		if (!np) {
			pthread_mutex_unlock(&rt->mu);
			goto nomem;
		}
		rt->pub = np;
		rt->cap_pub = cap;
		rt->pub[rt->n_pub++] = u;
	}
	pthread_mutex_unlock(&rt->mu);
	pub_free(old);
	return;
nomem:
	log_error("runtime: pod %s/%s: cannot publish its state: out of memory", p->spec.ns,
		  p->spec.name);
	pub_free(u);
}

void rt_pub_remove(struct rt *rt, const char *uid)
{
	size_t idx;
	pthread_mutex_lock(&rt->mu);
	struct rt_pub *u = pub_find(rt, uid, &idx);
	if (u)
		rt->pub[idx] = rt->pub[--rt->n_pub];
	pthread_mutex_unlock(&rt->mu);
	pub_free(u);
}

/* Builds p's status; reports and publishes it when it changed. */
static void publish(struct rt *rt, struct rt_pod *p)
{
	p->dirty = false;
	json_t *st = rt_status_build(rt, p);
	if (!st) {
		log_error("runtime: pod %s/%s: status: out of memory", p->spec.ns, p->spec.name);
		p->dirty = true;
		return;
	}
	if (p->reported && json_equal(st, p->reported)) {
		json_decref(st);
		return;
	}
	json_decref(p->reported);
	p->reported = st;
	rt_note_status(rt, p, st);
	rt_pub_update(rt, p);
}

/* ---- pods ---- */

static struct rt_pod *pod_find(struct rt *rt, const char *uid)
{
	for (size_t i = 0; i < rt->n_pods; i++)
		if (!strcmp(rt->pods[i]->spec.uid, uid))
			return rt->pods[i];
	return NULL;
}

static int pod_add(struct rt *rt, struct rt_pod *p)
{
	if (rt->n_pods == rt->cap_pods) {
		size_t cap = rt->cap_pods ? rt->cap_pods * 2 : 16;
		struct rt_pod **np = realloc(rt->pods, cap * sizeof(*np));
		if (!np)
			return -ENOMEM;
		rt->pods = np;
		rt->cap_pods = cap;
	}
	rt->pods[rt->n_pods++] = p;
	return 0;
}

static int do_sync(struct rt *rt, json_t *obj)
{
	const char *uid =
		json_string_value(json_object_get(json_object_get(obj, "metadata"), "uid"));
	if (uid && pod_find(rt, uid))
		return 0; /* containers are immutable: nothing to do */
	const char *node =
		json_string_value(json_object_get(json_object_get(obj, "spec"), "nodeName"));
	if (node && *node && strcmp(node, rt->cfg.node)) {
		log_warn("runtime: pod %s is bound to node %s, not to %s", uid ? uid : "?", node,
			 rt->cfg.node);
		return -EINVAL;
	}
	const char *why = NULL;
	struct rt_pod *p = rt_pod_new(rt, obj, &why);
	if (!p) {
		int err = -errno;
		log_warn("runtime: pod refused: %s", why ? why : strerror(errno));
		return err ? err : -EINVAL;
	}
	int err = fs_mkdir_p(p->dir, 0755);
	if (!err)
		err = rt_pod_save(p);
	if (!err)
		err = pod_add(rt, p);
	if (err) {
		log_error("runtime: pod %s/%s: cannot record it in %s: %s", p->spec.ns,
			  p->spec.name, p->dir, strerror(-err));
		rt_rm_rf(p->dir);
		rt_pod_free(p);
		return err;
	}
	log_info("runtime: pod %s/%s (%s) accepted%s%s", p->spec.ns, p->spec.name, p->spec.uid,
		 p->spec.err_msg ? ": " : "", p->spec.err_msg ? p->spec.err_msg : "");
	rt_pod_step(rt, p, rt_mono_ms());
	if (p->save)
		rt_pod_save(p);
	publish(rt, p);
	return 0;
}

static void do_kill(struct rt *rt, struct rt_cmd *cmd)
{
	struct rt_pod *p = pod_find(rt, cmd->uid);
	if (!p || p->gone) {
		rt_note_done(rt, cmd->uid, cmd->done, cmd->arg);
		return;
	}
	if (cmd->done) {
		struct rt_kill_cb *k = calloc(1, sizeof(*k));
		if (!k) {
			log_error("runtime: pod %s/%s: kill callback lost: out of memory",
				  p->spec.ns, p->spec.name);
		} else {
			k->done = cmd->done;
			k->arg = cmd->arg;
			k->next = p->kill_cbs;
			p->kill_cbs = k;
		}
	}
	rt_pod_terminate(rt, p, cmd->grace);
}

static void cmd_finish(struct rt *rt, struct rt_cmd *cmd, int result)
{
	if (!cmd->waited) {
		json_decref(cmd->pod);
		free(cmd->uid);
		free(cmd);
		return;
	}
	pthread_mutex_lock(&rt->mu);
	cmd->result = result;
	cmd->finished = true;
	pthread_cond_broadcast(&rt->cv);
	pthread_mutex_unlock(&rt->mu);
}

static void run_cmd(struct rt *rt, struct rt_cmd *cmd)
{
	switch (cmd->type) {
	case RT_CMD_SYNC:
		cmd_finish(rt, cmd, do_sync(rt, cmd->pod));
		break;
	case RT_CMD_KILL:
		do_kill(rt, cmd);
		cmd_finish(rt, cmd, 0);
		break;
	}
}

/* Saves, publishes and forgets what changed in this iteration. */
static void flush(struct rt *rt)
{
	for (size_t i = 0; i < rt->n_pods;) {
		struct rt_pod *p = rt->pods[i];
		if (p->gone) {
			rt_pub_remove(rt, p->spec.uid);
			rt->pods[i] = rt->pods[--rt->n_pods];
			rt_pod_free(p);
			continue;
		}
		if (p->dirty)
			publish(rt, p);
		if (p->save)
			rt_pod_save(p);
		i++;
	}
	while (rt->graveyard) {
		struct rt_watch *w = rt->graveyard;
		rt->graveyard = w->next_dead;
		free(w);
	}
}

static void *loop(void *arg)
{
	struct rt *rt = arg;
	struct epoll_event evs[32];
	rt->loop_tid = pthread_self();
	for (;;) {
		/* What the previous round (or rt_open) changed goes out before sleeping. */
		flush(rt);
		notes_deliver(rt);
		uint64_t now = rt_mono_ms(), next = 0;
		for (size_t i = 0; i < rt->n_pods; i++) {
			uint64_t t = rt_pod_next(rt->pods[i]);
			if (t && (!next || t < next))
				next = t;
		}
		int timeout = -1;
		if (next)
			timeout = next <= now		 ? 0
				  : next - now > 3600000 ? 3600000
							 : (int)(next - now);
		/* Processes given up on are collected within 100 ms. */
		if (rt->n_reap && (timeout < 0 || timeout > 100))
			timeout = 100;
		int n = epoll_wait(rt->epfd, evs, 32, timeout);
		if (n < 0 && errno != EINTR) {
			log_error("runtime: epoll_wait: %s", strerror(errno));
			n = 0;
		}
		for (int i = 0; i < n; i++) {
			struct rt_watch *w = evs[i].data.ptr;
			if (w->dead)
				continue;
			switch (w->kind) {
			case RT_W_WAKE: {
				uint64_t v;
				if (read(w->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
					log_warn("runtime: wake fd: %s", strerror(errno));
				break;
			}
			case RT_W_SHIM:
				rt_pod_shim_event(rt, w->c);
				break;
			case RT_W_PROBE:
				rt_probe_event(rt, w, evs[i].events);
				break;
			case RT_W_HOOK:
				rt_pod_hook_event(rt, w->c);
				break;
			}
		}
		pthread_mutex_lock(&rt->mu);
		struct rt_cmd *cmds = rt->cmds;
		rt->cmds = NULL;
		rt->cmds_tail = &rt->cmds;
		bool stopping = rt->stopping;
		pthread_mutex_unlock(&rt->mu);
		while (cmds) {
			struct rt_cmd *next_cmd = cmds->next;
			if (stopping)
				cmd_finish(rt, cmds, -ECANCELED);
			else
				run_cmd(rt, cmds);
			cmds = next_cmd;
		}
		now = rt_mono_ms();
		if (!stopping)
			for (size_t i = 0; i < rt->n_pods; i++)
				rt_pod_step(rt, rt->pods[i], now);
		reap_step(rt, now);
		if (stopping) {
			flush(rt);
			notes_deliver(rt);
			break;
		}
	}
	return NULL;
}

static void wake(struct rt *rt)
{
	uint64_t one = 1;
	if (write(rt->wake.fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("runtime: wake: %s", strerror(errno));
}

/* ---- open, close ---- */

static int dupstr(char **dst, const char *s)
{
	*dst = NULL;
	return s && !(*dst = strdup(s)) ? -ENOMEM : 0;
}

static int find_shim(struct rt *rt, const char *given)
{
	char exe[PATH_MAX];
	if (given) {
		if (!(rt->shim = strdup(given)))
			return -ENOMEM;
	} else {
		ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (n < 0)
			return -errno;
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash)
			*slash = '\0';
		if (asprintf(&rt->shim, "%s/shoal-shim", exe) < 0) {
			rt->shim = NULL;
			return -ENOMEM;
		}
	}
	if (access(rt->shim, X_OK) < 0) {
		int err = -errno;
		log_error("runtime: container supervisor %s: %s", rt->shim, strerror(errno));
		return err;
	}
	return 0;
}

static bool name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (!n || n > 253)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '.' || s[i] == '_'))
			return false;
	return true;
}

static void load_pods(struct rt *rt)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/pods", rt->cfg.state_dir);
	DIR *d = opendir(dir);
	if (!d) {
		log_warn("runtime: %s: %s", dir, strerror(errno));
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char pd[PATH_MAX], pj[PATH_MAX + 16];
		if (snprintf(pd, sizeof(pd), "%s/%s", dir, de->d_name) >= (int)sizeof(pd))
			continue;
		snprintf(pj, sizeof(pj), "%s/pod.json", pd);
		if (access(pj, F_OK) < 0) {
			/* Created and not yet recorded when the agent stopped: nothing of it exists
			 * outside this directory. */
			log_info("runtime: %s: no pod record, removed", pd);
			int err = rt_rm_rf(pd);
			if (err)
				log_warn("runtime: remove %s: %s", pd, strerror(-err));
			continue;
		}
		struct rt_pod *p = rt_pod_load(rt, pd);
		if (!p) {
			log_error("runtime: %s: cannot be re-adopted; left as it is", pd);
			continue;
		}
		if (pod_add(rt, p)) {
			log_error("runtime: %s: out of memory", pd);
			rt_pod_free(p);
			continue;
		}
	}
	closedir(d);
}

struct rt *rt_open(const struct rt_config *cfg)
{
	int err = -EINVAL;
	if (!cfg || !name_ok(cfg->node) || !cfg->state_dir || !*cfg->state_dir ||
	    !cfg->cgroup_root || !cfg->pod_cidr) {
		log_error(
			"runtime: node (a name), state_dir, cgroup_root and pod_cidr are required");
		errno = EINVAL;
		return NULL;
	}
	struct rt *rt = calloc(1, sizeof(*rt));
	if (!rt)
		return NULL;
	rt->node_ns = rt->epfd = rt->wake.fd = -1;
	rt->notes_tail = &rt->notes;
	rt->cmds_tail = &rt->cmds;
	pthread_mutex_init(&rt->mu, NULL);
	pthread_cond_init(&rt->cv, NULL);
	rt->cfg = *cfg;
	rt->cfg.node = rt->cfg.state_dir = rt->cfg.cgroup_root = rt->cfg.pod_cidr = NULL;
	rt->cfg.host_ip = rt->cfg.shim_path = NULL;
	if ((err = dupstr((char **)&rt->cfg.node, cfg->node)) ||
	    (err = dupstr((char **)&rt->cfg.state_dir, cfg->state_dir)) ||
	    (err = dupstr((char **)&rt->cfg.cgroup_root, cfg->cgroup_root)) ||
	    (err = dupstr((char **)&rt->cfg.pod_cidr, cfg->pod_cidr)) ||
	    (err = dupstr((char **)&rt->cfg.host_ip, cfg->host_ip)))
		goto fail;
	rt->backoff_base = cfg->backoff_base_ms ? cfg->backoff_base_ms : 10000;
	rt->backoff_max = cfg->backoff_max_ms ? cfg->backoff_max_ms : 300000;
	if (rt->backoff_max < rt->backoff_base)
		rt->backoff_max = rt->backoff_base;
	rt->log_max = cfg->log_max_bytes ? cfg->log_max_bytes : 10u << 20;
	if ((err = find_shim(rt, cfg->shim_path)))
		goto fail;
	if ((rt->node_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) < 0) {
		err = -errno;
		log_error("runtime: open the node's network namespace: %s", strerror(errno));
		goto fail;
	}
	char pods[PATH_MAX];
	snprintf(pods, sizeof(pods), "%s/pods", cfg->state_dir);
	if ((err = fs_mkdir_p(pods, 0755))) {
		log_error("runtime: state directory %s: %s", pods, strerror(-err));
		goto fail;
	}
	if ((err = rt_cg_init(&rt->cgroot, cfg->cgroup_root)))
		goto fail;
	if (!(rt->ipam = rt_ipam_open(cfg->state_dir, cfg->pod_cidr))) {
		err = -errno;
		goto fail;
	}
	if ((err = rt_net_forwarding(rt)))
		goto fail;
	if ((rt->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    (rt->wake.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		err = -errno;
		log_error("runtime: epoll: %s", strerror(errno));
		goto fail;
	}
	rt->wake.kind = RT_W_WAKE;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &rt->wake };
	if (epoll_ctl(rt->epfd, EPOLL_CTL_ADD, rt->wake.fd, &ev) < 0) {
		err = -errno;
		goto fail;
	}

	load_pods(rt);
	char **live = calloc(rt->n_pods + 1, sizeof(char *));
	if (!live) {
		err = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < rt->n_pods; i++)
		live[i] = rt->pods[i]->spec.uid;
	err = rt_ipam_gc(rt->ipam, live, rt->n_pods);
	free(live);
	if (err)
		goto fail;
	/* Re-adopted pods are visible (rt_pods, rt_pod_status) when rt_open returns; their
	 * statuses are reported by the loop's first round. */
	for (size_t i = 0; i < rt->n_pods; i++)
		publish(rt, rt->pods[i]);
	if ((err = -pthread_create(&rt->thread, NULL, loop, rt))) {
		log_error("runtime: start the runtime thread: %s", strerror(-err));
		goto fail;
	}
	rt->thread_started = true;
	log_info("runtime: node %s, pod CIDR %s, %zu pods re-adopted", cfg->node, cfg->pod_cidr,
		 rt->n_pods);
	return rt;
fail:
	rt_close(rt);
	errno = err < 0 ? -err : EINVAL;
	return NULL;
}

void rt_close(struct rt *rt)
{
	if (!rt)
		return;
	if (rt->thread_started) {
		pthread_mutex_lock(&rt->mu);
		rt->stopping = true;
		pthread_mutex_unlock(&rt->mu);
		wake(rt);
		pthread_join(rt->thread, NULL);
	}
	/* Commands that came after the loop's last look. */
	pthread_mutex_lock(&rt->mu);
	struct rt_cmd *cmds = rt->cmds;
	rt->cmds = NULL;
	rt->cmds_tail = &rt->cmds;
	pthread_mutex_unlock(&rt->mu);
	while (cmds) {
		struct rt_cmd *next = cmds->next;
		cmd_finish(rt, cmds, -ECANCELED);
		cmds = next;
	}
	for (size_t i = 0; i < rt->n_pods; i++) {
		rt_pod_detach(rt, rt->pods[i]);
		rt_pod_free(rt->pods[i]);
	}
	free(rt->pods);
	for (size_t i = 0; i < rt->n_reap; i++) {
		kill(rt->reap[i].pid, SIGKILL);
		while (waitpid(rt->reap[i].pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	free(rt->reap);
	while (rt->graveyard) {
		struct rt_watch *w = rt->graveyard;
		rt->graveyard = w->next_dead;
		free(w);
	}
	notes_deliver(rt);
	for (size_t i = 0; i < rt->n_pub; i++)
		pub_free(rt->pub[i]);
	free(rt->pub);
	rt_ipam_close(rt->ipam);
	rt_cg_fini(&rt->cgroot);
	if (rt->wake.fd >= 0)
		close(rt->wake.fd);
	if (rt->epfd >= 0)
		close(rt->epfd);
	if (rt->node_ns >= 0)
		close(rt->node_ns);
	free((char *)rt->cfg.node);
	free((char *)rt->cfg.state_dir);
	free((char *)rt->cfg.cgroup_root);
	free((char *)rt->cfg.pod_cidr);
	free((char *)rt->cfg.host_ip);
	free(rt->shim);
	pthread_mutex_destroy(&rt->mu);
	pthread_cond_destroy(&rt->cv);
	free(rt);
}

/* ---- the interface ---- */

static int submit(struct rt *rt, struct rt_cmd *cmd)
{
	/* An unwaited command belongs to the loop once queued (it frees it). */
	bool waited = cmd->waited;
	pthread_mutex_lock(&rt->mu);
	if (rt->stopping) {
		pthread_mutex_unlock(&rt->mu);
		return -ECANCELED;
	}
	cmd->next = NULL;
	*rt->cmds_tail = cmd;
	rt->cmds_tail = &cmd->next;
	pthread_mutex_unlock(&rt->mu);
	wake(rt);
	if (!waited)
		return 0;
	pthread_mutex_lock(&rt->mu);
	while (!cmd->finished)
		pthread_cond_wait(&rt->cv, &rt->mu);
	int result = cmd->result;
	pthread_mutex_unlock(&rt->mu);
	return result;
}

static bool on_loop(struct rt *rt)
{
	return rt->thread_started && pthread_equal(pthread_self(), rt->loop_tid);
}

int rt_pod_sync(struct rt *rt, const json_t *pod)
{
	if (!rt || !json_is_object(pod))
		return -EINVAL;
	json_t *copy = json_deep_copy(pod);
	if (!copy)
		return -ENOMEM;
	if (on_loop(rt)) {
		/* From a status_changed callback: the loop is ours already. */
		int r = do_sync(rt, copy);
		json_decref(copy);
		return r;
	}
	struct rt_cmd cmd = { .type = RT_CMD_SYNC, .pod = copy, .waited = true };
	int r = submit(rt, &cmd);
	json_decref(copy);
	return r;
}

int rt_pod_kill(struct rt *rt, const char *uid, long grace_s,
		void (*done)(void *arg, const char *uid), void *arg)
{
	if (!rt || !uid)
		return -EINVAL;
	pthread_mutex_lock(&rt->mu);
	bool known = pub_find(rt, uid, NULL) != NULL;
	pthread_mutex_unlock(&rt->mu);
	if (!known) {
		if (done)
			done(arg, uid);
		return 0;
	}
	struct rt_cmd *cmd = calloc(1, sizeof(*cmd));
	if (!cmd || !(cmd->uid = strdup(uid))) {
		free(cmd);
		return -ENOMEM;
	}
	cmd->type = RT_CMD_KILL;
	cmd->grace = grace_s;
	cmd->done = done;
	cmd->arg = arg;
	if (on_loop(rt)) {
		do_kill(rt, cmd);
		free(cmd->uid);
		free(cmd);
		return 0;
	}
	int err = submit(rt, cmd);
	if (err) {
		free(cmd->uid);
		free(cmd);
	}
	return err;
}

int rt_pods(struct rt *rt, char ***uids, size_t *n)
{
	if (!rt || !uids || !n)
		return -EINVAL;
	pthread_mutex_lock(&rt->mu);
	char **v = calloc(rt->n_pub + 1, sizeof(char *));
	size_t k = 0;
	for (size_t i = 0; v && i < rt->n_pub; i++) {
		if (!(v[k] = strdup(rt->pub[i]->uid)))
			break;
		k++;
	}
	bool ok = v && k == rt->n_pub;
	pthread_mutex_unlock(&rt->mu);
	if (!ok) {
		rt_strv_free(v);
		return -ENOMEM;
	}
	*uids = v;
	*n = k;
	return 0;
}

json_t *rt_pod_status(struct rt *rt, const char *uid)
{
	if (!rt || !uid)
		return NULL;
	pthread_mutex_lock(&rt->mu);
	struct rt_pub *u = pub_find(rt, uid, NULL);
	json_t *st = u && u->status ? json_deep_copy(u->status) : NULL;
	pthread_mutex_unlock(&rt->mu);
	return st;
}

char *rt_log_path(struct rt *rt, const char *ns, const char *pod, const char *container,
		  bool previous)
{
	char *path = NULL;
	int err = ENOENT;
	if (!rt || !pod) {
		errno = EINVAL;
		return NULL;
	}
	if (!ns || !*ns)
		ns = "default";
	pthread_mutex_lock(&rt->mu);
	for (size_t i = 0; i < rt->n_pub && !path; i++) {
		struct rt_pub *u = rt->pub[i];
		if (strcmp(u->ns, ns) || strcmp(u->name, pod))
			continue;
		for (size_t j = 0; j < u->n; j++) {
			if (container && *container && strcmp(u->names[j], container))
				continue;
			int inst = u->instances[j] - (previous ? 1 : 0);
			if (inst < 0)
				break;
			if (asprintf(&path, "%s/logs/%s/%d.log", u->dir, u->names[j], inst) < 0) {
				path = NULL;
				err = ENOMEM;
			}
			break;
		}
	}
	pthread_mutex_unlock(&rt->mu);
	if (path && access(path, F_OK) < 0) {
		free(path);
		path = NULL;
	}
	if (!path)
		errno = err;
	return path;
}

static int proc_stat(uint64_t *busy, uint64_t *total)
{
	char *s = rt_read_file("/proc/stat", 1 << 20, NULL);
	if (!s)
		return -errno;
	unsigned long long v[8] = { 0 };
	int n = sscanf(s, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		       &v[4], &v[5], &v[6], &v[7]);
	free(s);
	if (n < 4)
		return -EPROTO;
	*busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
	*total = *busy + v[3] + v[4];
	return 0;
}

int rt_node_usage(struct rt *rt, struct rt_usage *out)
{
	uint64_t busy = 0, total = 0;
	if (!rt || !out)
		return -EINVAL;
	int err = proc_stat(&busy, &total);
	if (err)
		return err;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 1)
		ncpu = 1;
	pthread_mutex_lock(&rt->mu);
	uint64_t db = rt->node_have ? busy - rt->node_busy : busy;
	uint64_t dt = rt->node_have ? total - rt->node_total : total;
	rt->node_busy = busy;
	rt->node_total = total;
	rt->node_have = true;
	pthread_mutex_unlock(&rt->mu);
	out->cpu_cores = dt ? (double)db / (double)dt * (double)ncpu : 0;

	char *mi = rt_read_file("/proc/meminfo", 1 << 20, NULL);
	if (!mi)
		return -errno;
	unsigned long long mt = 0, ma = 0;
	char *p = strstr(mi, "MemTotal:"), *q = strstr(mi, "MemAvailable:");
	if (p)
		sscanf(p, "MemTotal: %llu", &mt);
	if (q)
		sscanf(q, "MemAvailable: %llu", &ma);
	free(mi);
	if (!p || !q)
		return -EPROTO;
	out->memory_bytes = (mt > ma ? mt - ma : 0) * 1024;
	return 0;
}

int rt_pod_usage(struct rt *rt, const char *uid, struct rt_usage *out)
{
	struct rt_cg cg;
	if (!rt || !uid || !out)
		return -EINVAL;
	pthread_mutex_lock(&rt->mu);
	struct rt_pub *u = pub_find(rt, uid, NULL);
	int err = u ? rt_cg_copy(&cg, &u->cg) : -ENOENT;
	int64_t created = u ? u->created : 0;
	pthread_mutex_unlock(&rt->mu);
	if (err)
		return err;
	uint64_t usec = 0, mem = 0, now = rt_mono_ms();
	err = rt_cg_usage(&cg, &usec, &mem);
	rt_cg_free(&cg);
	if (err)
		return err;
	double cores = 0;
	pthread_mutex_lock(&rt->mu);
	if ((u = pub_find(rt, uid, NULL))) {
		if (u->cpu_have && now > u->cpu_ms) {
			cores = (double)(usec - (usec >= u->cpu_usec ? u->cpu_usec : usec)) /
				((double)(now - u->cpu_ms) * 1000.0);
		} else {
			double secs = (double)(rt_real_ns() - created) / 1e9;
			cores = secs > 0 ? (double)usec / 1e6 / secs : 0;
		}
		u->cpu_usec = usec;
		u->cpu_ms = now;
		u->cpu_have = true;
	}
	pthread_mutex_unlock(&rt->mu);
	out->cpu_cores = cores;
	out->memory_bytes = mem;
	return 0;
}

int rt_ipam_release_owner(struct rt *rt, const char *owner_uid)
{
	if (!rt || !owner_uid || !*owner_uid)
		return -EINVAL;
	return rt_ipam_owner_release(rt->ipam, owner_uid);
}
