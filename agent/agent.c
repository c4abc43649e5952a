// SPDX-License-Identifier: Apache-2.0
/*
 * The agent's life cycle: agent_start() opens the runtime (which re-adopts the pods that
 * still run), starts the data plane sync, the HTTP endpoint, the pod workers and the node
 * thread (which registers the Node, then starts the pod informer and keeps lease,
 * heartbeat and usage going); agent_stop() undoes it in reverse. Pods and the data plane
 * outlive the agent: a restarted agent finds them as they were.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "agent_int.h"
#include "fsutil.h"
#include "hashmap.h"
#include "log.h"
#include "strbuf.h"

const struct agent_rt_ops agent_rt_default = {
	.open = rt_open,
	.close = rt_close,
	.pod_sync = rt_pod_sync,
	.pod_kill = rt_pod_kill,
	.pods = rt_pods,
	.pod_status = rt_pod_status,
	.log_path = rt_log_path,
	.node_usage = rt_node_usage,
	.pod_usage = rt_pod_usage,
};

void agent_now(char *buf, size_t len, bool micro)
{
	struct timespec ts;
	struct tm tm;
	char base[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	if (micro)
		snprintf(buf, len, "%s.%06ldZ", base, ts.tv_nsec / 1000);
	else
		snprintf(buf, len, "%sZ", base);
}

int64_t agent_mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

struct httpc *agent_api_client(const struct agent *a)
{
	struct httpc *c = httpc_new(a->cfg->server, a->cfg->token);
	if (c && (a->cfg->ca_file || a->cfg->insecure))
		httpc_set_tls(c, a->cfg->ca_file, a->cfg->insecure);
	if (c)
		httpc_set_timeout(c, 15000);
	return c;
}

bool agent_sleep(struct agent *a, long ms)
{
	struct timespec ts;
	bool stopping;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&a->mu);
	while (!a->stopping && pthread_cond_timedwait(&a->cond, &a->mu, &ts) == 0)
		;
	stopping = a->stopping;
	pthread_mutex_unlock(&a->mu);
	return stopping;
}

json_t *agent_resp_json(const struct httpc_resp *r)
{
	json_error_t e;
	if (!r->body || !r->len)
		return NULL;
	return json_loadb(r->body, r->len, 0, &e);
}

const char *agent_resp_msg(const struct httpc_resp *r, char *buf, size_t len)
{
	json_t *j = agent_resp_json(r);
	const char *m = json_string_value(json_object_get(j, "message"));
	if (m)
		snprintf(buf, len, "%ld %s", r->code, m);
	else
		snprintf(buf, len, "%ld %.*s", r->code, (int)(r->len < 200 ? r->len : 200),
			 r->body ? r->body : "");
	json_decref(j);
	return buf;
}

static void pod_free(struct agent_pod *p)
{
	if (!p)
		return;
	free(p->uid);
	free(p->ns);
	free(p->name);
	json_decref(p->pod);
	json_decref(p->rt_status);
	json_decref(p->verdict);
	json_decref(p->usage);
	json_decref(p->usage_sent);
	json_decref(p->reasons);
	free(p);
}

static void agent_free(struct agent *a)
{
	if (!a)
		return;
	if (a->pods) {
		size_t it = 0;
		const char *k;
		void *v;
		while (hashmap_next(a->pods, &it, &k, &v))
			pod_free(v);
		hashmap_free(a->pods);
	}
	workq_free(a->queue);
	httpc_free(a->node_http);
	json_decref(a->lease);
	json_decref(a->conditions);
	json_decref(a->node_labels);
	free(a->workers);
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

void agent_pod_remove(struct agent *a, const char *uid)
{
	pod_free(hashmap_del(a->pods, uid));
}

struct agent *agent_start(const struct agent_config *cfg)
{
	struct agent *a = calloc(1, sizeof(*a));
	pthread_condattr_t ca;
	int err;

	if (!a) {
		errno = ENOMEM;
		return NULL;
	}
	a->cfg = cfg;
	a->rt_ops = cfg->rt ? cfg->rt : &agent_rt_default;
	pthread_mutex_init(&a->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->cond, &ca);
	pthread_condattr_destroy(&ca);
	a->pods = hashmap_new(256);
	a->queue = workq_new(NULL);
	a->node_http = agent_api_client(a);
	a->conditions = json_array();
	if (!a->pods || !a->queue || !a->node_http || !a->conditions) {
		err = -ENOMEM;
		log_error("node %s: cannot start the agent: %s", cfg->node, strerror(-err));
		goto err_free;
	}
	a->alloc_cpu_milli = cfg->cap_cpu_milli;
	a->alloc_memory = cfg->cap_memory;
	a->alloc_pods = cfg->cap_pods;
	if (cfg->advertise)
		snprintf(a->endpoint, sizeof(a->endpoint), "%s", cfg->advertise);

	err = fs_mkdir_p(cfg->state_dir, 0755);
	if (err) {
		log_error("node %s: state directory %s: %s", cfg->node, cfg->state_dir,
			  strerror(-err));
		goto err_free;
	}
	struct rt_config rc = {
		.node = cfg->node,
		.state_dir = cfg->state_dir,
		.cgroup_root = cfg->cgroup_root,
		.pod_cidr = cfg->pod_cidr,
		.status_changed = agent_pod_status_changed,
		.arg = a,
		.host_ip = cfg->node_ip,
		.shim_path = cfg->shim_path,
	};
	a->rt = a->rt_ops->open(&rc);
	if (!a->rt) {
		err = -errno;
		log_error("node %s: cannot open the pod runtime: %s", cfg->node, strerror(-err));
		goto err_free;
	}
	/* What the runtime re-adopted was admitted before the restart. */
	char **uids = NULL;
	size_t n = 0;
	err = a->rt_ops->pods(a->rt, &uids, &n);
	if (err) {
		log_error("node %s: cannot list the runtime's pods: %s", cfg->node, strerror(-err));
		goto err_rt;
	}
	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < n; i++) {
		struct agent_pod *p = agent_pod_get(a, uids[i], NULL, NULL, true);
		if (p) {
			p->admitted = true;
			p->in_runtime = true;
		}
		free(uids[i]);
	}
	pthread_mutex_unlock(&a->mu);
	free(uids);
	if (n)
		log_info("node %s: the runtime holds %zu pods from before", cfg->node, n);

	if (!cfg->no_dataplane) {
		struct dpsync_config dc = {
			.server = cfg->server,
			.token = cfg->token,
			.ca_file = cfg->ca_file,
			.insecure = cfg->insecure,
			.node = cfg->node,
			.zone = cfg->zone,
			.mode = cfg->proxy,
			.uplink = cfg->uplink,
			.node_ip = cfg->node_ip,
			.pod_cidr = cfg->pod_cidr,
			.cgroup_root = cfg->cgroup_root,
			.xdp_mode = cfg->xdp_mode,
			.pin_root = cfg->bpf_root,
		};
		a->dp = dpsync_start(&dc);
		if (!a->dp) {
			err = -errno;
			log_error("node %s: cannot start the data plane sync: %s", cfg->node,
				  strerror(-err));
			goto err_rt;
		}
	}
	err = agent_http_start(a);
	if (err)
		goto err_dp;

	a->workers = calloc((size_t)cfg->workers, sizeof(*a->workers));
	if (!a->workers) {
		err = -ENOMEM;
		goto err_http;
	}
	for (int i = 0; i < cfg->workers; i++) {
		err = -pthread_create(&a->workers[i], NULL, agent_worker, a);
		if (err) {
			log_error("node %s: start a worker: %s", cfg->node, strerror(-err));
			goto err_workers;
		}
		a->nworkers++;
	}
	err = -pthread_create(&a->node_thread, NULL, agent_node_thread, a);
	if (err) {
		log_error("node %s: start the node thread: %s", cfg->node, strerror(-err));
		goto err_workers;
	}
	a->node_thread_started = true;
	return a;

err_workers:
	workq_shutdown(a->queue);
	for (int i = 0; i < a->nworkers; i++)
		pthread_join(a->workers[i], NULL);
err_http:
	agent_http_stop(a);
err_dp:
	dpsync_stop(a->dp);
err_rt:
	a->rt_ops->close(a->rt);
err_free:
	agent_free(a);
	errno = -err;
	return NULL;
}

void agent_stop(struct agent *a)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	a->stopping = true;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->mu);
	/* The endpoint first: its requests read what the rest tears down. */
	agent_http_stop(a);
	if (a->node_thread_started)
		pthread_join(a->node_thread, NULL);
	/* No more events: then no more work. */
	informer_stop(a->pods_inf);
	a->pods_inf = NULL;
	workq_shutdown(a->queue);
	for (int i = 0; i < a->nworkers; i++)
		pthread_join(a->workers[i], NULL);
	dpsync_stop(a->dp);
	/* The runtime's threads may still call back until it is closed. */
	a->rt_ops->close(a->rt);
	agent_free(a);
}

int agent_failed(struct agent *a)
{
	pthread_mutex_lock(&a->mu);
	int err = a->fatal;
	pthread_mutex_unlock(&a->mu);
	return err;
}

bool agent_ready(struct agent *a)
{
	pthread_mutex_lock(&a->mu);
	bool ready = a->registered && a->pods_synced;
	pthread_mutex_unlock(&a->mu);
	return ready && (!a->dp || dpsync_ready(a->dp));
}

int agent_metrics(struct agent *a, struct strbuf *out)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} counters[] = {
#define C(f, h) { #f, h, offsetof(struct agent_counters, f) }
		C(syncs, "Pod syncs handed to the runtime"),
		C(sync_errors, "Pod syncs the node could not act on"),
		C(kills, "Pods killed"),
		C(status_writes, "Pod status writes"),
		C(status_conflicts, "Pod status writes that met a newer object"),
		C(status_errors, "Pod status writes that failed"),
		C(usage_writes, "Pod usage samples written"),
		C(evictions, "Pods evicted under memory pressure"),
		C(rejections, "Pods the node refused (resources, node affinity)"),
		C(events, "Events posted"),
		C(lease_renewals, "Lease renewals"),
		C(lease_errors, "Lease renewals that failed"),
		C(heartbeats, "Node status writes"),
		C(heartbeat_errors, "Node status writes that failed"),
		C(deletions_confirmed, "Pod deletions confirmed to the API"),
		C(http_requests, "Requests to the agent's HTTP endpoint"),
#undef C
	};
	const char *node = a->cfg->node;
	unsigned long long val[sizeof(counters) / sizeof(counters[0])];

	/* Read together under the agent's lock, under which related counters move together
	 * (a status write that carried a usage sample counts in both). */
	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
		val[i] = atomic_load((atomic_ullong *)((char *)&a->n + counters[i].off));
	pthread_mutex_unlock(&a->mu);
	for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
		strbuf_printf(
			out,
			"# HELP shoal_agent_%s_total %s\n# TYPE shoal_agent_%s_total counter\n"
			"shoal_agent_%s_total{node=\"%s\"} %llu\n",
			counters[i].name, counters[i].help, counters[i].name, counters[i].name,
			node, val[i]);
	}
	pthread_mutex_lock(&a->mu);
	size_t npods = hashmap_count(a->pods), running = 0;
	size_t it = 0;
	const char *k;
	void *v;
	while (hashmap_next(a->pods, &it, &k, &v))
		running += ((struct agent_pod *)v)->in_runtime;
	bool pressure = a->memory_pressure;
	struct rt_usage nu = a->node_usage;
	bool have = a->have_node_usage;
	pthread_mutex_unlock(&a->mu);
	struct workq_stats qs;
	workq_stats(a->queue, &qs);
	strbuf_printf(
		out,
		"# HELP shoal_agent_pods Pods the agent knows of\n# TYPE shoal_agent_pods gauge\n"
		"shoal_agent_pods{node=\"%s\"} %zu\n"
		"# HELP shoal_agent_pods_running Pods held by the runtime\n"
		"# TYPE shoal_agent_pods_running gauge\nshoal_agent_pods_running{node=\"%s\"} %zu\n"
		"# HELP shoal_agent_queue_length Pods waiting for a worker\n"
		"# TYPE shoal_agent_queue_length gauge\nshoal_agent_queue_length{node=\"%s\"} %zu\n"
		"# HELP shoal_agent_memory_pressure 1 while memory use is above the eviction "
		"threshold\n"
		"# TYPE shoal_agent_memory_pressure gauge\n"
		"shoal_agent_memory_pressure{node=\"%s\"} %d\n"
		"# HELP shoal_agent_ready 1 when registered, synced and the data plane is ready\n"
		"# TYPE shoal_agent_ready gauge\nshoal_agent_ready{node=\"%s\"} %d\n",
		node, npods, node, running, node, qs.depth + qs.waiting, node, pressure, node,
		agent_ready(a));
	if (have)
		strbuf_printf(out,
			      "# HELP shoal_agent_node_cpu_cores CPU the node's pods use\n"
			      "# TYPE shoal_agent_node_cpu_cores gauge\n"
			      "shoal_agent_node_cpu_cores{node=\"%s\"} %.3f\n"
			      "# HELP shoal_agent_node_memory_bytes Memory the node's pods use\n"
			      "# TYPE shoal_agent_node_memory_bytes gauge\n"
			      "shoal_agent_node_memory_bytes{node=\"%s\"} %llu\n",
			      node, nu.cpu_cores, node, (unsigned long long)nu.memory_bytes);
	pthread_mutex_lock(&a->mu);
	struct informer *inf = a->pods_inf;
	pthread_mutex_unlock(&a->mu);
	if (inf) {
		struct informer_stats s;
		informer_stats(inf, &s);
		strbuf_printf(
			out,
			"# HELP shoal_agent_informer_lists_total Lists done by the pod informer\n"
			"# TYPE shoal_agent_informer_lists_total counter\n"
			"shoal_agent_informer_lists_total{node=\"%s\",resource=\"pods\"} %llu\n"
			"# HELP shoal_agent_informer_watches_total Watches (re)started\n"
			"# TYPE shoal_agent_informer_watches_total counter\n"
			"shoal_agent_informer_watches_total{node=\"%s\",resource=\"pods\"} %llu\n"
			"# HELP shoal_agent_informer_gone_total 410 Gone answers seen\n"
			"# TYPE shoal_agent_informer_gone_total counter\n"
			"shoal_agent_informer_gone_total{node=\"%s\",resource=\"pods\"} %llu\n"
			"# HELP shoal_agent_informer_events_total Watch events handled\n"
			"# TYPE shoal_agent_informer_events_total counter\n"
			"shoal_agent_informer_events_total{node=\"%s\",resource=\"pods\"} %llu\n",
			node, (unsigned long long)s.lists, node, (unsigned long long)s.watches,
			node, (unsigned long long)s.gone, node, (unsigned long long)s.events);
	}
	if (a->dp)
		dpsync_metrics(a->dp, out);
	return out->err;
}
