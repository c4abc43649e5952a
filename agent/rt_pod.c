// SPDX-License-Identifier: Apache-2.0
/*
 * A pod's life on this node: sandbox (address, network, cgroup), container starts, exits,
 * restarts with back-off, graceful stops, termination and teardown, and its record in the
 * state directory (<state_dir>/pods/<uid>/pod.json) from which a restarted agent re-adopts it.
 *
 * The design choice: rt_pod_step() is level-triggered. Events (a shim exited, a probe failed,
 * a kill was asked for) only change recorded state and deadlines; rt_pod_step() then compares
 * what should run with what runs and acts, and rt_pod_next() says when it must look again.
 * A pod's containers each have instance directories c/<name>/<n>/ (the shim's pid.json and
 * exit.json) and log files logs/<name>/<n>.log, n being the container's restartCount; the
 * current and the previous instance are kept.
 *
 * Restart back-off is kubelet's: a container that exits (whatever the code, when the policy
 * restarts it) is started again at once the first time, then after base, 2x base, ... up to
 * max, and the count starts over once it ran for 2x max. Waiting shows as CrashLoopBackOff,
 * or RunContainerError when the last start itself failed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "nl.h"
#include "rt_int.h"
#include "rt_util.h"

#define HOOK_EXTENSION_MS 2000
#define REKILL_MS	  5000
#define TEARDOWN_RETRY_MS 100
#define TEARDOWN_TRIES	  100

static uint32_t hash32(const char *s, uint32_t seed)
{
	uint32_t h = 2166136261u ^ seed;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

static void inst_dir(const struct rt_pod *p, const struct rt_ctr *c, int instance, char *out,
		     size_t len)
{
	snprintf(out, len, "%s/c/%s/%d", p->dir, c->spec->name, instance);
}

void rt_ctr_log_path(const struct rt_pod *p, const char *name, int instance, char *out, size_t len)
{
	snprintf(out, len, "%s/logs/%s/%d.log", p->dir, name, instance);
}

static bool name_taken(struct rt *rt, const char *netns, const char *veth)
{
	for (size_t i = 0; i < rt->n_pods; i++) {
		const struct rt_pod *o = rt->pods[i];
		if ((netns && !strcmp(o->netns, netns)) || (veth && !strcmp(o->veth, veth)))
			return true;
	}
	return false;
}

struct rt_pod *rt_pod_new(struct rt *rt, json_t *obj, const char **why)
{
	struct rt_pod *p = calloc(1, sizeof(*p));
	if (!p) {
		*why = "out of memory";
		return NULL;
	}
	p->rt = rt;
	p->netns_fd = -1;
	int err = rt_spec_parse(obj, &p->spec, why);
	if (err) {
		free(p);
		errno = -err;
		return NULL;
	}
	p->obj = json_incref(obj);
	if (asprintf(&p->dir, "%s/pods/%s", rt->cfg.state_dir, p->spec.uid) < 0)
		goto nomem;

	/* <node>-<uid8>: readable in `ip netns`; a hash when two uids share 8 characters. */
	char uid8[9];
	snprintf(uid8, sizeof(uid8), "%s", p->spec.uid);
	snprintf(p->netns, sizeof(p->netns), "%.50s-%s", rt->cfg.node, uid8);
	if (name_taken(rt, p->netns, NULL))
		snprintf(p->netns, sizeof(p->netns), "%.50s-%08x%08x", rt->cfg.node,
			 hash32(p->spec.uid, 0), hash32(p->spec.uid, 1));
	for (uint32_t seed = 0;; seed++) {
		snprintf(p->veth, sizeof(p->veth), "sh%08x", hash32(p->spec.uid, seed * 7919));
		if (!name_taken(rt, NULL, p->veth))
			break;
	}
	p->n_ctrs = p->spec.n_ctrs;
	if (!(p->ctrs = calloc(p->n_ctrs ? p->n_ctrs : 1, sizeof(*p->ctrs))))
		goto nomem;
	for (size_t i = 0; i < p->n_ctrs; i++) {
		struct rt_ctr *c = &p->ctrs[i];
		c->pod = p;
		c->idx = i;
		c->spec = &p->spec.ctrs[i];
		c->instance = -1;
		c->state = RT_C_WAITING;
		c->pidfd = -1;
		snprintf(c->wait_reason, sizeof(c->wait_reason), "ContainerCreating");
		for (int j = 0; j < RT_N_PROBES; j++)
			c->probes[j].outfd = -1;
	}
	p->start_time = rt_real_ns();
	for (int i = 0; i < RT_N_CONDS; i++)
		p->cond[i].val = -1;
	return p;
nomem:
	rt_pod_free(p);
	*why = "out of memory";
	errno = ENOMEM;
	return NULL;
}

void rt_pod_free(struct rt_pod *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_ctrs; i++) {
		struct rt_ctr *c = &p->ctrs[i];
		rt_cg_free(&c->cg);
		rt_strv_free(c->envp);
		if (c->pidfd >= 0)
			close(c->pidfd);
		for (int j = 0; j < RT_N_PROBES; j++)
			if (c->probes[j].outfd >= 0)
				close(c->probes[j].outfd);
	}
	free(p->ctrs);
	if (p->netns_fd >= 0)
		close(p->netns_fd);
	rt_cg_free(&p->cg);
	while (p->kill_cbs) {
		struct rt_kill_cb *k = p->kill_cbs;
		p->kill_cbs = k->next;
		free(k);
	}
	rt_spec_free(&p->spec);
	json_decref(p->obj);
	json_decref(p->reported);
	free(p->dir);
	free(p);
}

/* ---- the record in the state directory ---- */

static json_t *term_json(const struct rt_term *t)
{
	if (!t->set)
		return json_null();
	return json_pack("{s:i, s:i, s:s, s:s, s:I, s:I, s:s}", "exitCode", t->exit_code, "signal",
			 t->signal, "reason", t->reason, "message", t->msg, "startedAt",
			 (json_int_t)t->started, "finishedAt", (json_int_t)t->finished, "id",
			 t->id);
}

static void term_load(const json_t *o, struct rt_term *t)
{
	memset(t, 0, sizeof(*t));
	if (!json_is_object(o))
		return;
	t->set = true;
	t->exit_code = (int)json_integer_value(json_object_get(o, "exitCode"));
	t->signal = (int)json_integer_value(json_object_get(o, "signal"));
	t->started = json_integer_value(json_object_get(o, "startedAt"));
	t->finished = json_integer_value(json_object_get(o, "finishedAt"));
	const char *s;
	if ((s = json_string_value(json_object_get(o, "reason"))))
		snprintf(t->reason, sizeof(t->reason), "%s", s);
	if ((s = json_string_value(json_object_get(o, "message"))))
		snprintf(t->msg, sizeof(t->msg), "%s", s);
	if ((s = json_string_value(json_object_get(o, "id"))))
		snprintf(t->id, sizeof(t->id), "%s", s);
}

static json_t *cg_json(const struct rt_cg *cg)
{
	return json_pack("{s:s?, s:s?, s:s?}", "v2", cg->v2, "cpu", cg->cpu, "memory", cg->mem);
}

static int cg_load(const json_t *o, struct rt_cg *cg)
{
	const char *v2 = json_string_value(json_object_get(o, "v2")),
		   *cpu = json_string_value(json_object_get(o, "cpu")),
		   *mem = json_string_value(json_object_get(o, "memory"));
	struct rt_cg src = { (char *)v2, (char *)cpu, (char *)mem };
	return rt_cg_copy(cg, &src);
}

static const char *const state_names[] = { "waiting", "running", "terminated" };

int rt_pod_save(struct rt_pod *p)
{
	json_t *ctrs = json_array(), *conds = json_array();
	if (!ctrs || !conds)
		goto nomem;
	for (size_t i = 0; i < p->n_ctrs; i++) {
		struct rt_ctr *c = &p->ctrs[i];
		json_t *o = json_pack(
			"{s:s, s:i, s:i, s:i, s:b, s:s, s:b, s:b, s:s, s:s, s:o, s:o, "
			"s:o}",
			"name", c->spec->name, "instance", c->instance, "restarts", c->restarts,
			"backoff", c->backoff, "done", c->done, "state", state_names[c->state],
			"ready", c->ready, "started", c->started, "waitReason", c->wait_reason,
			"waitMessage", c->wait_msg, "cgroup", cg_json(&c->cg), "term",
			term_json(&c->term), "last", term_json(&c->last));
		if (!o || json_array_append_new(ctrs, o))
			goto nomem;
	}
	for (int i = 0; i < RT_N_CONDS; i++) {
		json_t *o = json_pack("[i, I]", p->cond[i].val, (json_int_t)p->cond[i].t);
		if (!o || json_array_append_new(conds, o))
			goto nomem;
	}
	json_t *root =
		json_pack("{s:i, s:O, s:s, s:s, s:s, s:I, s:b, s:I, s:o, s:o, s:o}", "version", 1,
			  "pod", p->obj, "ip", p->ip, "netns", p->netns, "veth", p->veth,
			  "startTime", (json_int_t)p->start_time, "terminating", p->terminating,
			  "termDeadline", (json_int_t)p->term_deadline, "cgroup", cg_json(&p->cg),
			  "conditions", conds, "containers", ctrs);
	ctrs = conds = NULL;
	if (!root)
		goto nomem;
	char *text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if (!text)
		return -ENOMEM;
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/pod.json", p->dir);
	int err = rt_write_atomic(path, text, strlen(text));
	free(text);
	if (err)
		log_error("runtime: pod %s/%s: write %s: %s", p->spec.ns, p->spec.name, path,
			  strerror(-err));
	else
		p->save = false;
	return err;
nomem:
	json_decref(ctrs);
	json_decref(conds);
	return -ENOMEM;
}

/* ---- sandbox ---- */

/* Kubernetes' effective pod resources: the containers' sum, or the largest init container's
 * when that is more (init containers run alone). */
static void pod_limits(const struct rt_pod *p, struct rt_limits *l)
{
	bool all_cpu = true, all_mem = true;
	l->cpu_limit = l->cpu_request = l->mem_limit = 0;
	for (size_t i = p->spec.n_apps; i < p->n_ctrs; i++) {
		const struct rt_ctr_spec *s = p->ctrs[i].spec;
		if (s->cpu_limit < 0)
			all_cpu = false;
		if (s->mem_limit < 0)
			all_mem = false;
	}
	for (size_t i = 0; i < p->spec.n_apps; i++) {
		const struct rt_ctr_spec *s = p->ctrs[i].spec;
		if (s->cpu_limit < 0)
			all_cpu = false;
		else
			l->cpu_limit += s->cpu_limit;
		if (s->mem_limit < 0)
			all_mem = false;
		else
			l->mem_limit += s->mem_limit;
		if (s->cpu_request > 0)
			l->cpu_request += s->cpu_request;
	}
	for (size_t i = p->spec.n_apps; i < p->n_ctrs; i++) {
		const struct rt_ctr_spec *s = p->ctrs[i].spec;
		if (s->cpu_limit > l->cpu_limit)
			l->cpu_limit = s->cpu_limit;
		if (s->mem_limit > l->mem_limit)
			l->mem_limit = s->mem_limit;
		if (s->cpu_request > l->cpu_request)
			l->cpu_request = s->cpu_request;
	}
	if (!all_cpu || !l->cpu_limit)
		l->cpu_limit = -1;
	if (!all_mem || !l->mem_limit)
		l->mem_limit = -1;
}

static uint64_t backoff_delay(const struct rt *rt, int n)
{
	uint64_t d = rt->backoff_base;
	for (int i = 0; i < n && d < rt->backoff_max; i++)
		d *= 2;
	return d < rt->backoff_max ? d : rt->backoff_max;
}

/* The wait before the restart that follows the n-th exit in a row (n from 0). */
static uint64_t restart_delay(const struct rt *rt, int n)
{
	return n > 0 ? backoff_delay(rt, n - 1) : 0;
}

static bool sandbox_ready(const struct rt_pod *p)
{
	return p->net_ready && p->cg_ready;
}

static bool init_ok(const struct rt_ctr *c)
{
	return c->done && c->term.set && c->term.exit_code == 0;
}

bool rt_pod_inits_done(const struct rt_pod *p)
{
	for (size_t i = p->spec.n_apps; i < p->n_ctrs; i++)
		if (!init_ok(&p->ctrs[i]))
			return false;
	return true;
}

bool rt_pod_init_failed(const struct rt_pod *p)
{
	for (size_t i = p->spec.n_apps; i < p->n_ctrs; i++)
		if (p->ctrs[i].done && !init_ok(&p->ctrs[i]))
			return true;
	return false;
}

/* c may start now or when its back-off ends: init containers one at a time, in order, each
 * after the previous one succeeded; the others once every init container has. */
static bool startable(const struct rt_pod *p, const struct rt_ctr *c)
{
	if (p->terminating || p->spec.err_reason || c->spec->err_reason ||
	    c->state != RT_C_WAITING || c->done)
		return false;
	size_t upto = c->spec->init ? c->idx : p->n_ctrs;
	for (size_t i = p->spec.n_apps; i < upto; i++)
		if (!init_ok(&p->ctrs[i]))
			return false;
	return true;
}

static void ensure_sandbox(struct rt *rt, struct rt_pod *p, uint64_t now)
{
	char err[512] = "";
	int e;
	if (!*p->ip) {
		e = rt_ipam_alloc(rt->ipam, p->spec.uid, p->spec.ns, p->spec.name,
				  p->spec.owner_uid, p->spec.keep_address, p->ip, sizeof(p->ip));
		if (e) {
			p->ip[0] = '\0';
			snprintf(err, sizeof(err), "allocate an address from %s: %s",
				 rt->cfg.pod_cidr, e == -ENOSPC ? "no free address" : strerror(-e));
			goto fail;
		}
		p->save = p->dirty = true;
	}
	if (!p->net_ready) {
		char nerr[400];
		if (rt_net_setup(rt, p, nerr, sizeof(nerr))) {
			snprintf(err, sizeof(err), "network: %s", nerr);
			goto fail;
		}
		p->net_ready = true;
	}
	if (!p->cg_ready) {
		struct rt_limits lim;
		char name[160], cerr[400];
		pod_limits(p, &lim);
		snprintf(name, sizeof(name), "pod%s", p->spec.uid);
		rt_cg_free(&p->cg);
		if (rt_cg_create(&rt->cgroot, NULL, name, &lim, &p->cg, cerr, sizeof(cerr))) {
			snprintf(err, sizeof(err), "%s", cerr);
			goto fail;
		}
		p->cg_ready = true;
		p->save = true;
	}
	if (*p->sandbox_msg)
		log_info("runtime: pod %s/%s: sandbox ready after %d failures", p->spec.ns,
			 p->spec.name, p->sandbox_fails);
	p->sandbox_msg[0] = '\0';
	p->sandbox_fails = 0;
	p->dirty = true;
	return;
fail:
	snprintf(p->sandbox_msg, sizeof(p->sandbox_msg), "failed to create pod sandbox: %s", err);
	p->sandbox_retry_at = now + backoff_delay(rt, p->sandbox_fails++);
	p->dirty = true;
	log_warn("runtime: pod %s/%s: %s (retry in %" PRIu64 " ms)", p->spec.ns, p->spec.name,
		 p->sandbox_msg, p->sandbox_retry_at - now);
}

/* ---- exits and restarts ---- */

static void fmt_duration(uint64_t ms, char *buf, size_t len)
{
	if (ms < 1000)
		snprintf(buf, len, "%" PRIu64 "ms", ms);
	else if (ms < 60000)
		snprintf(buf, len, "%" PRIu64 "s", ms / 1000);
	else
		snprintf(buf, len, "%" PRIu64 "m%" PRIu64 "s", ms / 60000, ms % 60000 / 1000);
}

static void drop_running(struct rt *rt, struct rt_ctr *c)
{
	rt_probe_cancel(rt, c);
	if (c->hook_w) {
		rt_watch_drop(rt, c->hook_w);
		c->hook_w = NULL;
	}
	if (c->hook_pid > 0) {
		/* The container is gone: its hook goes with it. */
		if (kill(c->hook_pid, SIGKILL) && errno != ESRCH)
			log_warn("runtime: container %s: end its preStop hook (pid %d): %s",
				 c->spec->name, (int)c->hook_pid, strerror(errno));
		rt_reap_add(rt, c->hook_pid);
		c->hook_pid = 0;
	}
	if (c->shim_w) {
		rt_watch_drop(rt, c->shim_w);
		c->shim_w = NULL;
	}
	if (c->pidfd >= 0) {
		close(c->pidfd);
		c->pidfd = -1;
	}
	rt_proc_reap(c->shim_pid, c->shim_start);
}

static void ctr_exited(struct rt *rt, struct rt_ctr *c, struct rt_term *t)
{
	struct rt_pod *p = c->pod;
	uint64_t now = rt_mono_ms();

	drop_running(rt, c);
	if (t->signal == SIGKILL && rt_cg_oom_kills(&c->cg) > c->oom_before)
		snprintf(t->reason, sizeof(t->reason), "OOMKilled");
	if (*c->stop_msg && !*t->msg)
		snprintf(t->msg, sizeof(t->msg), "%s", c->stop_msg);
	snprintf(t->id, sizeof(t->id), "%s", c->id);
	if (!t->started)
		t->started = c->started_at;
	c->shim_pid = c->pid = 0;
	c->ready = c->started = false;
	c->stop = RT_STOP_NONE;
	c->stop_msg[0] = '\0';

	enum rt_restart pol = p->spec.restart;
	bool restart = !p->terminating &&
		       (pol == RT_RESTART_ALWAYS || (pol == RT_RESTART_ONFAILURE && t->exit_code));
	/* An init container runs until it succeeds (or, with Never, fails the pod). */
	if (c->spec->init)
		restart = !p->terminating && pol != RT_RESTART_NEVER && t->exit_code;
	log_info("runtime: pod %s/%s container %s exited with %d (%s)%s", p->spec.ns, p->spec.name,
		 c->spec->name, t->exit_code, t->reason, restart ? "" : ", not restarted");
	if (!restart) {
		c->term = *t;
		c->state = RT_C_TERMINATED;
		c->done = true;
		c->wait_reason[0] = c->wait_msg[0] = '\0';
	} else {
		c->last = *t;
		uint64_t ran = t->finished > t->started
				       ? (uint64_t)(t->finished - t->started) / 1000000
				       : 0;
		if (ran >= 2 * rt->backoff_max)
			c->backoff = 0;
		uint64_t delay = restart_delay(rt, c->backoff);
		if (c->backoff < 30)
			c->backoff++;
		int64_t ago = (rt_real_ns() - t->finished) / 1000000;
		uint64_t left = ago > 0 && (uint64_t)ago < delay ? delay - (uint64_t)ago
				: ago > 0			 ? 0
								 : delay;
		c->restart_at = now + left;
		c->state = RT_C_WAITING;
		if (!strcmp(t->reason, "StartError")) {
			snprintf(c->wait_reason, sizeof(c->wait_reason), "RunContainerError");
			snprintf(c->wait_msg, sizeof(c->wait_msg), "%s", t->msg);
		} else {
			char d[32];
			fmt_duration(delay, d, sizeof(d));
			snprintf(c->wait_reason, sizeof(c->wait_reason), "CrashLoopBackOff");
			snprintf(c->wait_msg, sizeof(c->wait_msg),
				 "back-off %s restarting failed container=%s pod=%s_%s(%s)", d,
				 c->spec->name, p->spec.name, p->spec.ns, p->spec.uid);
		}
	}
	p->dirty = p->save = true;
}

static void remove_instance(struct rt_pod *p, struct rt_ctr *c, int instance)
{
	char path[PATH_MAX];
	if (instance < 0)
		return;
	inst_dir(p, c, instance, path, sizeof(path));
	int err = rt_rm_rf(path);
	if (err)
		log_warn("runtime: remove %s: %s", path, strerror(-err));
	rt_ctr_log_path(p, c->spec->name, instance, path, sizeof(path));
	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("runtime: remove %s: %s", path, strerror(errno));
	strncat(path, ".1", sizeof(path) - strlen(path) - 1);
	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("runtime: remove %s: %s", path, strerror(errno));
}

static void start_failed(struct rt *rt, struct rt_ctr *c, const char *msg)
{
	struct rt_term t = { .set = true, .exit_code = 128 };
	snprintf(t.reason, sizeof(t.reason), "StartError");
	snprintf(t.msg, sizeof(t.msg), "%s", msg);
	t.started = t.finished = rt_real_ns();
	ctr_exited(rt, c, &t);
}

static void ctr_start(struct rt *rt, struct rt_ctr *c, uint64_t now)
{
	struct rt_pod *p = c->pod;
	char dir[PATH_MAX], log[PATH_MAX], err[600];
	int inst = c->instance + 1, e;

	c->instance = inst;
	c->restarts = inst;
	snprintf(c->id, sizeof(c->id), "shoal://%.8s-%s-%d", p->spec.uid, c->spec->name, inst);
	p->dirty = p->save = true;
	if (!c->cg.v2 && !c->cg.cpu && !c->cg.mem) {
		struct rt_limits lim = { c->spec->cpu_limit, c->spec->cpu_request,
					 c->spec->mem_limit };
		if (rt_cg_create(&rt->cgroot, &p->cg, c->spec->name, &lim, &c->cg, err,
				 sizeof(err))) {
			start_failed(rt, c, err);
			return;
		}
	}
	struct rt_env_ctx ctx = { .pod = p->obj,
				  .pod_ip = p->ip,
				  .host_ip = rt->cfg.host_ip,
				  .node = rt->cfg.node,
				  .hostname = p->spec.hostname };
	rt_strv_free(c->envp);
	c->envp = rt_spec_env(c->spec, &ctx);
	char **argv = c->envp ? rt_spec_argv(c->spec, c->envp) : NULL;
	if (!argv) {
		start_failed(rt, c, "out of memory");
		return;
	}
	inst_dir(p, c, inst, dir, sizeof(dir));
	rt_ctr_log_path(p, c->spec->name, inst, log, sizeof(log));
	char *slash = strrchr(log, '/');
	*slash = '\0';
	if ((e = fs_mkdir_p(dir, 0755)) || (e = fs_mkdir_p(log, 0755))) {
		snprintf(err, sizeof(err), "state directory: %s", strerror(-e));
		rt_strv_free(argv);
		start_failed(rt, c, err);
		return;
	}
	*slash = '/';
	remove_instance(p, c, inst - 2);
	if ((e = rt_pod_save(p)) && e != -ENOMEM)
		log_warn("runtime: pod %s/%s: starting without a saved record", p->spec.ns,
			 p->spec.name);
	c->oom_before = rt_cg_oom_kills(&c->cg);
	int rc = rt_proc_start_ctr(rt, c, argv, dir, log, err, sizeof(err));
	rt_strv_free(argv);
	if (rc) {
		log_info("runtime: pod %s/%s container %s could not start: %s", p->spec.ns,
			 p->spec.name, c->spec->name, err);
		start_failed(rt, c, err);
		return;
	}
	c->state = RT_C_RUNNING;
	c->wait_reason[0] = c->wait_msg[0] = '\0';
	c->stop = RT_STOP_NONE;
	c->stop_msg[0] = '\0';
	/* Our own child: its pid cannot be reused before we collect it, even if it has exited. */
	int sfd = pidfd_open(c->shim_pid, 0);
	c->pidfd = rt_proc_pidfd(c->pid, c->pid_start);
	if (sfd < 0 || !(c->shim_w = rt_watch_add(rt, sfd, EPOLLIN, RT_W_SHIM, c, 0))) {
		log_error("runtime: pod %s/%s container %s: watch shim %d: %s", p->spec.ns,
			  p->spec.name, c->spec->name, (int)c->shim_pid, strerror(errno));
		if (sfd >= 0)
			close(sfd);
		/* Unsupervisable: stop it and report it as failed. */
		rt_cg_kill(&c->cg);
		start_failed(rt, c, "cannot supervise the container");
		return;
	}
	c->started = !c->spec->probes[RT_PROBE_STARTUP].set;
	c->ready = c->started && !c->spec->probes[RT_PROBE_READINESS].set;
	rt_probe_begin(rt, c, now);
	log_info("runtime: pod %s/%s container %s started (pid %d, restart %d)", p->spec.ns,
		 p->spec.name, c->spec->name, (int)c->pid, c->restarts);
}

void rt_pod_shim_event(struct rt *rt, struct rt_ctr *c)
{
	char dir[PATH_MAX];
	struct rt_term t;
	inst_dir(c->pod, c, c->instance, dir, sizeof(dir));
	int err = rt_proc_read_exit(dir, &t);
	if (err) {
		/* The shim died without a record (killed): the container is unsupervised. */
		memset(&t, 0, sizeof(t));
		t.set = true;
		t.exit_code = 255;
		t.started = c->started_at;
		t.finished = rt_real_ns();
		snprintf(t.reason, sizeof(t.reason), "Unknown");
		snprintf(t.msg, sizeof(t.msg),
			 "shoal-shim (pid %d) ended without recording the container's exit: %s",
			 (int)c->shim_pid, strerror(-err));
		if (c->pidfd >= 0)
			pidfd_send_signal(c->pidfd, SIGKILL, NULL, 0);
		rt_cg_kill(&c->cg);
		log_warn("runtime: pod %s/%s container %s: %s", c->pod->spec.ns, c->pod->spec.name,
			 c->spec->name, t.msg);
	}
	ctr_exited(rt, c, &t);
}

/* ---- stopping ---- */

static void send_signal(struct rt_ctr *c, int sig)
{
	if (c->pidfd >= 0) {
		if (pidfd_send_signal(c->pidfd, sig, NULL, 0) < 0 && errno != ESRCH)
			log_warn("runtime: signal %d to container %s: %s", sig, c->spec->name,
				 strerror(errno));
	} else if (c->pid > 0 && rt_proc_is(c->pid, c->pid_start)) {
		kill(c->pid, sig);
	}
	if (sig == SIGKILL)
		rt_cg_kill(&c->cg);
}

static void send_term(struct rt_ctr *c, uint64_t now)
{
	send_signal(c, SIGTERM);
	c->stop = RT_STOP_TERM;
	if (c->kill_at <= now)
		c->kill_at = now;
}

void rt_ctr_stop(struct rt *rt, struct rt_ctr *c, uint64_t grace_ms, const char *why)
{
	uint64_t now = rt_mono_ms();
	if (c->state != RT_C_RUNNING)
		return;
	if (c->stop != RT_STOP_NONE) {
		if (now + grace_ms < c->kill_at)
			c->kill_at = now + grace_ms;
		return;
	}
	if (why)
		snprintf(c->stop_msg, sizeof(c->stop_msg), "%s", why);
	rt_probe_cancel(rt, c);
	c->ready = false;
	c->pod->dirty = true;
	c->kill_at = now + grace_ms;
	if (c->spec->prestop && grace_ms > 0) {
		pid_t pid;
		int pfd, out;
		int err = rt_proc_exec(rt, c, c->spec->prestop, &pid, &pfd, &out);
		if (!err) {
			close(out);
			c->hook_pid = pid;
			c->hook_deadline = c->kill_at;
			if ((c->hook_w = rt_watch_add(rt, pfd, EPOLLIN, RT_W_HOOK, c, 0))) {
				c->stop = RT_STOP_HOOK;
				return;
			}
			close(pfd);
			kill(pid, SIGTERM);
			rt_reap_add(rt, pid);
			c->hook_pid = 0;
		} else {
			log_warn("runtime: pod %s/%s container %s: preStop hook: %s",
				 c->pod->spec.ns, c->pod->spec.name, c->spec->name, strerror(-err));
		}
	}
	send_term(c, now);
}

void rt_pod_hook_event(struct rt *rt, struct rt_ctr *c)
{
	int st = 0;
	pid_t r = waitpid(c->hook_pid, &st, WNOHANG);
	if (r == 0)
		return;
	if (r > 0 && (!WIFEXITED(st) || WEXITSTATUS(st)))
		log_warn("runtime: pod %s/%s container %s: preStop hook failed (status %d)",
			 c->pod->spec.ns, c->pod->spec.name, c->spec->name,
			 WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	c->hook_pid = 0;
	rt_watch_drop(rt, c->hook_w);
	c->hook_w = NULL;
	if (c->stop == RT_STOP_HOOK)
		send_term(c, rt_mono_ms());
}

static void step_stop(struct rt_ctr *c, uint64_t now)
{
	switch (c->stop) {
	case RT_STOP_NONE:
		break;
	case RT_STOP_HOOK:
		if (now < c->hook_deadline)
			break;
		/* A hook that overran the grace period runs on, as in Kubernetes: the container
		 * gets SIGTERM now and 2 s more before SIGKILL; the hook ends with it (the
		 * container's cgroup is killed, and drop_running() ends what is left). */
		c->kill_at = now + HOOK_EXTENSION_MS;
		if (c->pod->terminating) {
			/* The pod's deadline, which each step applies again, moves with it. */
			int64_t ext = rt_real_ns() + (int64_t)HOOK_EXTENSION_MS * 1000000;
			if (c->pod->term_deadline < ext) {
				c->pod->term_deadline = ext;
				c->pod->save = true;
			}
		}
		send_term(c, now);
		break;
	case RT_STOP_TERM:
	case RT_STOP_KILL:
		if (now < c->kill_at)
			break;
		if (c->stop == RT_STOP_TERM)
			log_info("runtime: pod %s/%s container %s: grace period over, SIGKILL",
				 c->pod->spec.ns, c->pod->spec.name, c->spec->name);
		send_signal(c, SIGKILL);
		c->stop = RT_STOP_KILL;
		c->kill_at = now + REKILL_MS;
		break;
	}
}

static uint64_t stop_next(const struct rt_ctr *c)
{
	switch (c->stop) {
	case RT_STOP_HOOK:
		return c->hook_deadline;
	case RT_STOP_TERM:
	case RT_STOP_KILL:
		return c->kill_at ? c->kill_at : 1;
	default:
		return 0;
	}
}

/* ---- termination ---- */

void rt_pod_terminate(struct rt *rt, struct rt_pod *p, long grace_s)
{
	if (grace_s < 0)
		grace_s = p->spec.grace;
	int64_t deadline = rt_real_ns() + (int64_t)grace_s * 1000000000;
	if (!p->terminating || deadline < p->term_deadline)
		p->term_deadline = deadline;
	if (!p->terminating)
		log_info("runtime: pod %s/%s: terminating (grace %ld s)", p->spec.ns, p->spec.name,
			 grace_s);
	p->terminating = true;
	p->dirty = p->save = true;
	rt_pod_step(rt, p, rt_mono_ms());
}

static void teardown(struct rt *rt, struct rt_pod *p, uint64_t now)
{
	if (now < p->teardown_at)
		return;
	bool busy = false;
	for (size_t i = 0; i < p->n_ctrs; i++) {
		struct rt_ctr *c = &p->ctrs[i];
		if (rt_cg_remove(&c->cg) == -EBUSY) {
			rt_cg_kill(&c->cg);
			busy = true;
		}
	}
	if (!busy && rt_cg_remove(&p->cg) == -EBUSY) {
		rt_cg_kill(&p->cg);
		busy = true;
	}
	if (busy && ++p->teardown_tries < TEARDOWN_TRIES) {
		p->teardown_at = now + TEARDOWN_RETRY_MS;
		return;
	}
	if (busy)
		log_warn("runtime: pod %s/%s: cgroup %s still has processes; left behind",
			 p->spec.ns, p->spec.name, p->cg.v2 ? p->cg.v2 : "");
	rt_net_teardown(rt, p);
	if (*p->ip) {
		int err = rt_ipam_release(rt->ipam, p->spec.uid);
		if (err)
			log_warn("runtime: pod %s/%s: release %s: %s", p->spec.ns, p->spec.name,
				 p->ip, strerror(-err));
	}
	int err = rt_rm_rf(p->dir);
	if (err)
		log_warn("runtime: pod %s/%s: remove %s: %s", p->spec.ns, p->spec.name, p->dir,
			 strerror(-err));
	p->torn_down = p->gone = true;
	log_info("runtime: pod %s/%s: gone", p->spec.ns, p->spec.name);
	while (p->kill_cbs) {
		struct rt_kill_cb *k = p->kill_cbs;
		p->kill_cbs = k->next;
		rt_note_done(rt, p->spec.uid, k->done, k->arg);
		free(k);
	}
}

static bool any_running(const struct rt_pod *p)
{
	for (size_t i = 0; i < p->n_ctrs; i++)
		if (p->ctrs[i].state == RT_C_RUNNING)
			return true;
	return false;
}

static void step_terminating(struct rt *rt, struct rt_pod *p, uint64_t now)
{
	int64_t left_ns = p->term_deadline - rt_real_ns();
	uint64_t left = left_ns > 0 ? (uint64_t)left_ns / 1000000 : 0;
	for (size_t i = 0; i < p->n_ctrs; i++) {
		struct rt_ctr *c = &p->ctrs[i];
		if (c->state == RT_C_WAITING && !c->done) {
			c->done = true;
			p->dirty = p->save = true;
		}
		if (c->state != RT_C_RUNNING)
			continue;
		rt_ctr_stop(rt, c, left, NULL);
		step_stop(c, now);
	}
	if (!any_running(p) && !p->torn_down)
		teardown(rt, p, now);
}

void rt_pod_step(struct rt *rt, struct rt_pod *p, uint64_t now)
{
	if (p->gone)
		return;
	if (p->terminating) {
		step_terminating(rt, p, now);
		return;
	}
	/* What runs is driven whether or not the sandbox is whole. */
	for (size_t i = 0; i < p->n_ctrs; i++) {
		struct rt_ctr *c = &p->ctrs[i];
		step_stop(c, now);
		rt_probe_tick(rt, c, now);
	}
	if (p->spec.err_reason)
		return;
	bool want = false;
	for (size_t i = 0; i < p->n_ctrs && !want; i++)
		want = startable(p, &p->ctrs[i]) && now >= p->ctrs[i].restart_at;
	if (!want)
		return;
	if (!sandbox_ready(p)) {
		if (now < p->sandbox_retry_at)
			return;
		ensure_sandbox(rt, p, now);
		if (!sandbox_ready(p))
			return;
	}
	for (size_t i = 0; i < p->n_ctrs; i++) {
		struct rt_ctr *c = &p->ctrs[i];
		if (startable(p, c) && now >= c->restart_at)
			ctr_start(rt, c, now);
	}
}

static void due(uint64_t *m, uint64_t t)
{
	if (t && (!*m || t < *m))
		*m = t;
}

uint64_t rt_pod_next(const struct rt_pod *p)
{
	uint64_t m = 0;
	if (p->gone)
		return 0;
	for (size_t i = 0; i < p->n_ctrs; i++) {
		const struct rt_ctr *c = &p->ctrs[i];
		due(&m, stop_next(c));
		due(&m, rt_probe_next(c));
		if (startable(p, c)) {
			uint64_t t = c->restart_at ? c->restart_at : 1;
			if (!sandbox_ready(p) && p->sandbox_retry_at > t)
				t = p->sandbox_retry_at;
			due(&m, t);
		}
	}
	if (p->terminating && !any_running(p) && !p->torn_down)
		due(&m, p->teardown_at ? p->teardown_at : 1);
	if (p->terminating)
		for (size_t i = 0; i < p->n_ctrs; i++)
			if (p->ctrs[i].state == RT_C_WAITING && !p->ctrs[i].done)
				due(&m, 1);
	return m;
}

void rt_pod_detach(struct rt *rt, struct rt_pod *p)
{
	for (size_t i = 0; i < p->n_ctrs; i++) {
		struct rt_ctr *c = &p->ctrs[i];
		rt_probe_cancel(rt, c);
		if (c->hook_w) {
			rt_watch_drop(rt, c->hook_w);
			c->hook_w = NULL;
		}
		if (c->hook_pid > 0) {
			kill(c->hook_pid, SIGTERM);
			rt_reap_add(rt, c->hook_pid);
			c->hook_pid = 0;
		}
		if (c->shim_w) {
			rt_watch_drop(rt, c->shim_w);
			c->shim_w = NULL;
		}
	}
	if (p->save && !p->gone && rt_pod_save(p))
		log_warn("runtime: pod %s/%s: record not saved on close", p->spec.ns, p->spec.name);
}

/* ---- re-adoption ---- */

static bool inst_exists(const struct rt_pod *p, const struct rt_ctr *c, int instance)
{
	char dir[PATH_MAX], f[PATH_MAX + 16];
	inst_dir(p, c, instance, dir, sizeof(dir));
	snprintf(f, sizeof(f), "%s/pid.json", dir);
	if (access(f, F_OK) == 0)
		return true;
	snprintf(f, sizeof(f), "%s/exit.json", dir);
	return access(f, F_OK) == 0;
}

/* c was running (or was being started) when the agent stopped: find out what became of it. */
static void adopt_ctr(struct rt *rt, struct rt_ctr *c, uint64_t now)
{
	struct rt_pod *p = c->pod;
	char dir[PATH_MAX];
	struct rt_term t;

	inst_dir(p, c, c->instance, dir, sizeof(dir));
	snprintf(c->id, sizeof(c->id), "shoal://%.8s-%s-%d", p->spec.uid, c->spec->name,
		 c->instance);
	int err = rt_proc_read_pids(dir, c);
	if (err == -ENOENT && rt_proc_read_exit(dir, &t) == -ENOENT) {
		/* Never got as far as the shim's answer: start this instance again. */
		c->instance--;
		c->state = RT_C_WAITING;
		c->restart_at = 0;
		return;
	}
	c->state = RT_C_RUNNING;
	if (rt_proc_read_exit(dir, &t) == 0) {
		log_info("runtime: pod %s/%s container %s exited while the agent was away",
			 p->spec.ns, p->spec.name, c->spec->name);
		rt_proc_reap(c->shim_pid, c->shim_start);
		ctr_exited(rt, c, &t);
		return;
	}
	int sfd = err ? err : rt_proc_pidfd(c->shim_pid, c->shim_start);
	if (sfd < 0 && rt_proc_read_exit(dir, &t) == 0) {
		/* It ended between the two looks. */
		rt_proc_reap(c->shim_pid, c->shim_start);
		ctr_exited(rt, c, &t);
		return;
	}
	if (sfd < 0) {
		c->pidfd = rt_proc_pidfd(c->pid, c->pid_start);
		rt_proc_reap(c->shim_pid, c->shim_start);
		rt_pod_shim_event(rt, c);
		return;
	}
	if (!(c->shim_w = rt_watch_add(rt, sfd, EPOLLIN, RT_W_SHIM, c, 0))) {
		close(sfd);
		log_error("runtime: pod %s/%s container %s: cannot watch its shim", p->spec.ns,
			  p->spec.name, c->spec->name);
	}
	c->pidfd = rt_proc_pidfd(c->pid, c->pid_start);
	c->oom_before = rt_cg_oom_kills(&c->cg);
	struct rt_env_ctx ctx = { .pod = p->obj,
				  .pod_ip = p->ip,
				  .host_ip = rt->cfg.host_ip,
				  .node = rt->cfg.node,
				  .hostname = p->spec.hostname };
	c->envp = rt_spec_env(c->spec, &ctx);
	rt_probe_begin(rt, c, now);
	log_info("runtime: pod %s/%s container %s re-adopted (pid %d)", p->spec.ns, p->spec.name,
		 c->spec->name, (int)c->pid);
}

struct rt_pod *rt_pod_load(struct rt *rt, const char *dir)
{
	char path[PATH_MAX];
	json_error_t jerr;
	const char *why = NULL;
	snprintf(path, sizeof(path), "%s/pod.json", dir);
	json_t *root = json_load_file(path, 0, &jerr);
	if (!root) {
		log_warn("runtime: %s: %s", path, jerr.text);
		return NULL;
	}
	struct rt_pod *p = rt_pod_new(rt, json_object_get(root, "pod"), &why);
	if (!p) {
		log_warn("runtime: %s: %s", path, why ? why : "unreadable");
		json_decref(root);
		return NULL;
	}
	const char *s;
	if ((s = json_string_value(json_object_get(root, "ip"))))
		snprintf(p->ip, sizeof(p->ip), "%s", s);
	if ((s = json_string_value(json_object_get(root, "netns"))) && *s)
		snprintf(p->netns, sizeof(p->netns), "%s", s);
	if ((s = json_string_value(json_object_get(root, "veth"))) && *s)
		snprintf(p->veth, sizeof(p->veth), "%s", s);
	p->start_time = json_integer_value(json_object_get(root, "startTime"));
	p->terminating = json_is_true(json_object_get(root, "terminating"));
	p->term_deadline = json_integer_value(json_object_get(root, "termDeadline"));
	if (cg_load(json_object_get(root, "cgroup"), &p->cg))
		goto nomem;
	const json_t *conds = json_object_get(root, "conditions");
	for (int i = 0; i < RT_N_CONDS && i < (int)json_array_size(conds); i++) {
		const json_t *e = json_array_get(conds, (size_t)i);
		p->cond[i].val = (int)json_integer_value(json_array_get(e, 0));
		p->cond[i].t = json_integer_value(json_array_get(e, 1));
	}
	if (*p->ip && (p->netns_fd = nl_netns_open(p->netns)) < 0)
		p->netns_fd = -1;

	uint64_t now = rt_mono_ms();
	const json_t *ctrs = json_object_get(root, "containers");
	for (size_t i = 0; i < p->n_ctrs; i++) {
		struct rt_ctr *c = &p->ctrs[i];
		const json_t *o = NULL, *e;
		size_t j;
		json_array_foreach (ctrs, j, e) {
			const char *n = json_string_value(json_object_get(e, "name"));
			if (n && !strcmp(n, c->spec->name))
				o = e;
		}
		if (!o)
			continue;
		c->instance = (int)json_integer_value(json_object_get(o, "instance"));
		c->restarts = (int)json_integer_value(json_object_get(o, "restarts"));
		c->backoff = (int)json_integer_value(json_object_get(o, "backoff"));
		c->done = json_is_true(json_object_get(o, "done"));
		c->ready = json_is_true(json_object_get(o, "ready"));
		c->started = json_is_true(json_object_get(o, "started"));
		if ((s = json_string_value(json_object_get(o, "waitReason"))))
			snprintf(c->wait_reason, sizeof(c->wait_reason), "%s", s);
		if ((s = json_string_value(json_object_get(o, "waitMessage"))))
			snprintf(c->wait_msg, sizeof(c->wait_msg), "%s", s);
		term_load(json_object_get(o, "term"), &c->term);
		term_load(json_object_get(o, "last"), &c->last);
		if (cg_load(json_object_get(o, "cgroup"), &c->cg))
			goto nomem;
		const char *st = json_string_value(json_object_get(o, "state"));
		c->state = st && !strcmp(st, "running")	     ? RT_C_RUNNING
			   : st && !strcmp(st, "terminated") ? RT_C_TERMINATED
							     : RT_C_WAITING;
		/* A start that was under way when the agent stopped left a newer instance. */
		if (c->state != RT_C_RUNNING && inst_exists(p, c, c->instance + 1)) {
			c->instance++;
			c->restarts = c->instance;
			c->state = RT_C_RUNNING;
		}
		if (c->state == RT_C_RUNNING) {
			adopt_ctr(rt, c, now);
		} else if (c->state == RT_C_WAITING && !c->done && c->last.set) {
			uint64_t delay = restart_delay(rt, c->backoff > 0 ? c->backoff - 1 : 0);
			int64_t ago = (rt_real_ns() - c->last.finished) / 1000000;
			c->restart_at = ago >= 0 && (uint64_t)ago < delay
						? now + delay - (uint64_t)ago
						: now;
		}
	}
	json_decref(root);
	/* A pod whose namespace vanished (a reboot) gets its sandbox made again before anything
	 * starts; one that is still there is taken as it is. */
	p->net_ready = p->netns_fd >= 0;
	const char *cgdir = p->cg.v2 ? p->cg.v2 : p->cg.cpu ? p->cg.cpu : p->cg.mem;
	p->cg_ready = cgdir && access(cgdir, F_OK) == 0;
	p->dirty = true;
	return p;
nomem:
	json_decref(root);
	rt_pod_free(p);
	return NULL;
}
