// SPDX-License-Identifier: Apache-2.0
/*
 * A pod's status object, Kubernetes' shape: phase, conditions (PodScheduled, Initialized,
 * PodReadyToStartContainers, ContainersReady, Ready) with their transition times, hostIP(s),
 * podIP(s), startTime, qosClass and containerStatuses (state, lastState, ready, started,
 * restartCount, image, containerID).
 *
 * The choice a reader must know: the status is a pure function of the runtime's record of the
 * pod, except for condition transition times, which are kept with the pod (and saved) so an
 * unchanged condition keeps its time and a status that did not change compares equal.
 *
 * Phase: Pending until every container has been created (a container that cannot be created
 * keeps its pod Pending, as kubelet does); Succeeded or Failed once every container has ended
 * for good (Failed when any ended with a non-zero code); Running otherwise.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "rt_int.h"
#include "rt_util.h"

static json_t *time_json(int64_t ns)
{
	char buf[40];
	return json_string(rt_time_fmt(ns, buf, sizeof(buf)));
}

static json_t *term_status(const struct rt_term *t)
{
	json_t *o =
		json_pack("{s:i, s:s, s:o, s:o}", "exitCode", t->exit_code, "reason", t->reason,
			  "startedAt", time_json(t->started), "finishedAt", time_json(t->finished));
	if (!o)
		return NULL;
	if ((t->signal && json_object_set_new(o, "signal", json_integer(t->signal))) ||
	    (*t->msg && json_object_set_new(o, "message", json_string(t->msg))) ||
	    (*t->id && json_object_set_new(o, "containerID", json_string(t->id)))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *waiting(const char *reason, const char *msg)
{
	json_t *w = json_pack("{s:s}", "reason", reason);
	if (w && msg && *msg && json_object_set_new(w, "message", json_string(msg))) {
		json_decref(w);
		return NULL;
	}
	return json_pack("{s:o*}", "waiting", w);
}

static json_t *ctr_status(const struct rt_pod *p, const struct rt_ctr *c)
{
	json_t *state;
	if (p->spec.err_reason)
		state = waiting(p->spec.err_reason, p->spec.err_msg);
	else if (c->spec->err_reason)
		state = waiting(c->spec->err_reason, c->spec->err_msg);
	else if (c->state == RT_C_RUNNING)
		state = json_pack("{s:{s:o}}", "running", "startedAt", time_json(c->started_at));
	else if (c->state == RT_C_TERMINATED)
		state = json_pack("{s:o*}", "terminated", term_status(&c->term));
	else if (c->instance < 0 && *p->sandbox_msg)
		state = waiting("ContainerCreating", p->sandbox_msg);
	else if (c->instance < 0 && !c->spec->init && !rt_pod_inits_done(p))
		state = waiting("PodInitializing", NULL);
	else
		state = waiting(*c->wait_reason ? c->wait_reason : "ContainerCreating",
				c->wait_msg);
	json_t *last = c->last.set ? json_pack("{s:o*}", "terminated", term_status(&c->last))
				   : json_object();
	const char *id = c->instance >= 0 && c->state != RT_C_WAITING ? c->id : NULL;
	if (!id && c->last.set && *c->last.id)
		id = c->last.id;
	/* An init container is ready once it has succeeded. */
	bool ready = c->spec->init ? c->done && c->term.set && !c->term.exit_code : c->ready;
	json_t *o = json_pack("{s:s, s:o*, s:o*, s:b, s:b, s:i, s:s, s:s}", "name", c->spec->name,
			      "state", state, "lastState", last, "ready", ready, "started",
			      c->state == RT_C_RUNNING && c->started, "restartCount", c->restarts,
			      "image", c->spec->image ? c->spec->image : "", "imageID", "");
	if (o && id && json_object_set_new(o, "containerID", json_string(id))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static const char *phase_of(const struct rt_pod *p)
{
	if (p->spec.err_reason || p->spec.n_apps == 0)
		return "Pending";
	if (rt_pod_init_failed(p))
		return "Failed";
	if (!rt_pod_inits_done(p))
		return "Pending";
	bool all_done = true, failed = false, created = true;
	for (size_t i = 0; i < p->spec.n_apps; i++) {
		const struct rt_ctr *c = &p->ctrs[i];
		if (!c->done)
			all_done = false;
		else if (c->term.set && c->term.exit_code)
			failed = true;
		if (c->spec->err_reason || c->instance < 0)
			created = false;
	}
	if (all_done)
		return failed ? "Failed" : "Succeeded";
	return created ? "Running" : "Pending";
}

static const char *qos_of(const struct rt_pod *p)
{
	bool any = false, guaranteed = true;
	for (size_t i = 0; i < p->n_ctrs; i++) {
		const struct rt_ctr_spec *s = p->ctrs[i].spec;
		if (s->cpu_limit >= 0 || s->cpu_request >= 0 || s->mem_limit >= 0 ||
		    s->mem_request >= 0)
			any = true;
		if (s->cpu_limit < 0 || s->mem_limit < 0 || s->cpu_request != s->cpu_limit ||
		    s->mem_request != s->mem_limit)
			guaranteed = false;
	}
	return !any ? "BestEffort" : guaranteed ? "Guaranteed" : "Burstable";
}

static int add_cond(json_t *arr, struct rt_pod *p, int idx, const char *type, bool val,
		    const char *reason, const char *msg, int64_t now)
{
	if (p->cond[idx].val != (int)val) {
		p->cond[idx].val = val;
		p->cond[idx].t = now;
		p->save = true;
	}
	/* (no lastProbeTime: the agent does not record one, and the API drops a null) */
	json_t *o = json_pack("{s:s, s:s, s:o}", "type", type, "status", val ? "True" : "False",
			      "lastTransitionTime", time_json(p->cond[idx].t));
	if (!o)
		return -ENOMEM;
	if ((reason && json_object_set_new(o, "reason", json_string(reason))) ||
	    (msg && json_object_set_new(o, "message", json_string(msg))) ||
	    json_array_append_new(arr, o)) {
		json_decref(o);
		return -ENOMEM;
	}
	return 0;
}

json_t *rt_status_build(struct rt *rt, struct rt_pod *p)
{
	int64_t now = rt_real_ns();
	const char *phase = phase_of(p);
	bool completed = !strcmp(phase, "Succeeded") || !strcmp(phase, "Failed");
	json_t *st = json_object(), *conds = json_array(), *cs = json_array(), *ics = json_array();
	if (!st || !conds || !cs || !ics)
		goto nomem;

	bool all_ready = p->spec.n_apps > 0, inits = rt_pod_inits_done(p);
	char unready[512] = "", uninit[512] = "";
	size_t ul = 0, il = 0;
	for (size_t i = p->spec.n_apps; i < p->n_ctrs; i++) {
		const struct rt_ctr *c = &p->ctrs[i];
		if (!(c->done && c->term.set && !c->term.exit_code)) {
			il += (size_t)snprintf(uninit + il,
					       il < sizeof(uninit) ? sizeof(uninit) - il : 0,
					       "%s%s", il ? " " : "", c->spec->name);
			if (il >= sizeof(uninit))
				il = sizeof(uninit) - 1;
		}
		json_t *o = ctr_status(p, c);
		if (!o || json_array_append_new(ics, o))
			goto nomem;
	}
	for (size_t i = 0; i < p->spec.n_apps; i++) {
		const struct rt_ctr *c = &p->ctrs[i];
		if (!c->ready) {
			all_ready = false;
			ul += (size_t)snprintf(unready + ul,
					       ul < sizeof(unready) ? sizeof(unready) - ul : 0,
					       "%s%s", ul ? " " : "", c->spec->name);
			if (ul >= sizeof(unready))
				ul = sizeof(unready) - 1;
		}
		json_t *o = ctr_status(p, c);
		if (!o || json_array_append_new(cs, o))
			goto nomem;
	}
	char msg[600];
	snprintf(msg, sizeof(msg), "containers with unready status: [%s]", unready);
	char imsg[600];
	snprintf(imsg, sizeof(imsg), "containers with incomplete status: [%s]", uninit);
	const char *nr_reason = completed ? "PodCompleted" : "ContainersNotReady";
	const char *nr_msg = completed ? NULL : msg;
	bool sandbox = p->net_ready && p->cg_ready;
	if (add_cond(conds, p, RT_COND_SCHEDULED, "PodScheduled", true, NULL, NULL, now) ||
	    add_cond(conds, p, RT_COND_INITIALIZED, "Initialized", inits,
		     inits ? NULL : "ContainersNotInitialized", inits ? NULL : imsg, now) ||
	    add_cond(conds, p, RT_COND_SANDBOX, "PodReadyToStartContainers", sandbox, NULL, NULL,
		     now) ||
	    add_cond(conds, p, RT_COND_CREADY, "ContainersReady", all_ready && !completed,
		     all_ready && !completed ? NULL : nr_reason,
		     all_ready && !completed ? NULL : nr_msg, now) ||
	    add_cond(conds, p, RT_COND_READY, "Ready", all_ready && !completed,
		     all_ready && !completed ? NULL : nr_reason,
		     all_ready && !completed ? NULL : nr_msg, now))
		goto nomem;

	/* json_object_set_new() consumes the value whether or not it succeeds. */
	int bad = json_object_set_new(st, "phase", json_string(phase));
	bad |= json_object_set_new(st, "conditions", conds);
	conds = NULL;
	bad |= json_object_set_new(st, "containerStatuses", cs);
	cs = NULL;
	if (json_array_size(ics))
		bad |= json_object_set_new(st, "initContainerStatuses", ics);
	else
		json_decref(ics);
	ics = NULL;
	bad |= json_object_set_new(st, "startTime", time_json(p->start_time));
	bad |= json_object_set_new(st, "qosClass", json_string(qos_of(p)));
	if (rt->cfg.host_ip && *rt->cfg.host_ip) {
		bad |= json_object_set_new(st, "hostIP", json_string(rt->cfg.host_ip));
		bad |= json_object_set_new(st, "hostIPs",
					   json_pack("[{s:s}]", "ip", rt->cfg.host_ip));
	}
	if (*p->ip) {
		bad |= json_object_set_new(st, "podIP", json_string(p->ip));
		bad |= json_object_set_new(st, "podIPs", json_pack("[{s:s}]", "ip", p->ip));
	}
	if (p->spec.err_reason) {
		bad |= json_object_set_new(st, "reason", json_string(p->spec.err_reason));
		bad |= json_object_set_new(st, "message", json_string(p->spec.err_msg));
	}
	if (bad)
		goto nomem;
	return st;
nomem:
	json_decref(conds);
	json_decref(cs);
	json_decref(ics);
	json_decref(st);
	return NULL;
}
