// SPDX-License-Identifier: Apache-2.0
/*
 * Printer columns: what `shoalctl get` shows for each kind, the same columns kubectl shows
 * (Pods: NAME READY STATUS RESTARTS AGE, wide: IP NODE NOMINATED NODE; Services: NAME TYPE
 * CLUSTER-IP EXTERNAL-IP PORT(S) AGE; ...). A column is a dotted path or a function that
 * computes the cell from the object.
 *
 * The design choice: computed cells follow kubectl's printers (pod status reasons, node
 * roles, "3 (5m ago)" restarts, "<none>" and "<pending>"), so that people read shoal's
 * tables as they read Kubernetes'. A missing path cell is printed by the client (as "<none>").
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api_validate.h"

/* ---- helpers ---- */

void api_human_duration(int64_t s, char *buf, size_t len)
{
	if (s < -1) {
		snprintf(buf, len, "<invalid>");
		return;
	}
	if (s < 0)
		s = 0;
	if (s < 120) {
		snprintf(buf, len, "%" PRId64 "s", s);
		return;
	}
	int64_t m = s / 60;
	if (m < 10) {
		if (s % 60)
			snprintf(buf, len, "%" PRId64 "m%" PRId64 "s", m, s % 60);
		else
			snprintf(buf, len, "%" PRId64 "m", m);
		return;
	}
	if (m < 180) {
		snprintf(buf, len, "%" PRId64 "m", m);
		return;
	}
	int64_t h = m / 60;
	if (h < 8) {
		if (m % 60)
			snprintf(buf, len, "%" PRId64 "h%" PRId64 "m", h, m % 60);
		else
			snprintf(buf, len, "%" PRId64 "h", h);
		return;
	}
	if (h < 48) {
		snprintf(buf, len, "%" PRId64 "h", h);
		return;
	}
	int64_t d = h / 24;
	if (h < 24 * 8) {
		if (h % 24)
			snprintf(buf, len, "%" PRId64 "d%" PRId64 "h", d, h % 24);
		else
			snprintf(buf, len, "%" PRId64 "d", d);
		return;
	}
	if (h < 24 * 365 * 2) {
		snprintf(buf, len, "%" PRId64 "d", d);
		return;
	}
	int64_t y = d / 365;
	if (h < 24 * 365 * 8 && d % 365)
		snprintf(buf, len, "%" PRId64 "y%" PRId64 "d", y, d % 365);
	else
		snprintf(buf, len, "%" PRId64 "y", y);
}

static void age_of(const char *ts, char *buf, size_t len)
{
	int64_t t = api_parse_time(ts);
	if (t < 0) {
		snprintf(buf, len, "<unknown>");
		return;
	}
	api_human_duration((int64_t)time(NULL) - t, buf, len);
}

void api_col_age(const json_t *obj, char *buf, size_t len)
{
	age_of(json_string_value(api_get_path(obj, "metadata.creationTimestamp")), buf, len);
}

static int64_t int_at(const json_t *obj, const char *path)
{
	const json_t *v = api_get_path(obj, path);
	return json_is_integer(v) ? json_integer_value(v) : 0;
}

static void col_int(const json_t *obj, const char *path, char *buf, size_t len)
{
	snprintf(buf, len, "%" PRId64, int_at(obj, path));
}

/* Appends s to buf (with sep when buf is not empty). */
static void append(char *buf, size_t len, const char *sep, const char *s)
{
	size_t n = strlen(buf);
	if (n + 1 >= len)
		return;
	snprintf(buf + n, len - n, "%s%s", n ? sep : "", s);
}

static void or_none(char *buf, size_t len)
{
	if (!buf[0])
		snprintf(buf, len, "<none>");
}

/* "k=v,k2=v2" of a string map. */
static void map_text(const json_t *m, char *buf, size_t len)
{
	buf[0] = 0;
	const char *k;
	json_t *v;
	char kv[512];
	if (!json_is_object(m))
		goto out;
	json_object_foreach ((json_t *)m, k, v) {
		snprintf(kv, sizeof(kv), "%s=%s", k,
			 json_string_value(v) ? json_string_value(v) : "");
		append(buf, len, ",", kv);
	}
out:
	or_none(buf, len);
}

/* Selector text of a LabelSelector (matchLabels, then expressions as kubectl prints them). */
static void selector_text(const json_t *ls, char *buf, size_t len)
{
	map_text(api_get(ls, "matchLabels"), buf, len);
	if (strcmp(buf, "<none>") == 0)
		buf[0] = 0;
	const json_t *me = api_get(ls, "matchExpressions");
	size_t i;
	json_t *e;
	char t[512];
	json_array_foreach (me, i, e) {
		const char *op = api_str(e, "operator");
		const char *key = api_str(e, "key");
		if (!op || !key)
			continue;
		if (strcmp(op, "Exists") == 0) {
			snprintf(t, sizeof(t), "%s", key);
		} else if (strcmp(op, "DoesNotExist") == 0) {
			snprintf(t, sizeof(t), "!%s", key);
		} else {
			char vals[400] = "";
			size_t j;
			json_t *v;
			json_array_foreach (api_get(e, "values"), j, v)
				append(vals, sizeof(vals), ",",
				       json_string_value(v) ? json_string_value(v) : "");
			snprintf(t, sizeof(t), "%s %s (%s)", key,
				 strcmp(op, "In") == 0 ? "in" : "notin", vals);
		}
		append(buf, len, ",", t);
	}
	or_none(buf, len);
}

static void containers_field(const json_t *spec, const char *field, char *buf, size_t len)
{
	buf[0] = 0;
	size_t i;
	json_t *c;
	json_array_foreach (api_get(spec, "containers"), i, c)
		append(buf, len, ",", api_str(c, field) ? api_str(c, field) : "");
	or_none(buf, len);
}

static void tmpl_containers(const json_t *o, char *b, size_t l)
{
	containers_field(api_get_path(o, "spec.template.spec"), "name", b, l);
}

static void tmpl_images(const json_t *o, char *b, size_t l)
{
	containers_field(api_get_path(o, "spec.template.spec"), "image", b, l);
}

static void spec_selector(const json_t *o, char *b, size_t l)
{
	selector_text(api_get_path(o, "spec.selector"), b, l);
}

/* ---- Namespace ---- */

const struct api_column api_columns_namespace[] = {
	{ "NAME", "metadata.name", false, NULL },
	{ "STATUS", "status.phase", false, NULL },
	{ "AGE", NULL, false, api_col_age },
	{ NULL, NULL, false, NULL },
};

/* ---- Node ---- */

static void node_status(const json_t *o, char *buf, size_t len)
{
	const char *ready = NULL;
	size_t i;
	json_t *c;
	json_array_foreach (api_get_path(o, "status.conditions"), i, c) {
		const char *t = api_str(c, "type");
		if (t && strcmp(t, "Ready") == 0)
			ready = api_str(c, "status");
	}
	if (!ready)
		snprintf(buf, len, "Unknown");
	else
		snprintf(buf, len, "%s", strcmp(ready, "True") == 0 ? "Ready" : "NotReady");
	if (json_is_true(api_get_path(o, "spec.unschedulable")))
		append(buf, len, ",", "SchedulingDisabled");
}

static void node_roles(const json_t *o, char *buf, size_t len)
{
	static const char prefix[] = "node-role.kubernetes.io/";
	buf[0] = 0;
	const char *k;
	json_t *v;
	json_object_foreach ((json_t *)api_get_path(o, "metadata.labels"), k, v) {
		if (strncmp(k, prefix, sizeof(prefix) - 1) == 0 && k[sizeof(prefix) - 1])
			append(buf, len, ",", k + sizeof(prefix) - 1);
		else if (strcmp(k, "kubernetes.io/role") == 0 && json_string_value(v) &&
			 *json_string_value(v))
			append(buf, len, ",", json_string_value(v));
	}
	or_none(buf, len);
}

static void node_address(const json_t *o, const char *type, char *buf, size_t len)
{
	buf[0] = 0;
	size_t i;
	json_t *a;
	json_array_foreach (api_get_path(o, "status.addresses"), i, a) {
		const char *t = api_str(a, "type");
		if (t && strcmp(t, type) == 0 && api_str(a, "address")) {
			snprintf(buf, len, "%s", api_str(a, "address"));
			return;
		}
	}
	or_none(buf, len);
}

static void node_internal_ip(const json_t *o, char *b, size_t l)
{
	node_address(o, "InternalIP", b, l);
}

static void node_external_ip(const json_t *o, char *b, size_t l)
{
	node_address(o, "ExternalIP", b, l);
}

const struct api_column api_columns_node[] = {
	{ "NAME", "metadata.name", false, NULL },
	{ "STATUS", NULL, false, node_status },
	{ "ROLES", NULL, false, node_roles },
	{ "AGE", NULL, false, api_col_age },
	{ "VERSION", "status.nodeInfo.kubeletVersion", false, NULL },
	{ "INTERNAL-IP", NULL, true, node_internal_ip },
	{ "EXTERNAL-IP", NULL, true, node_external_ip },
	{ "OS-IMAGE", "status.nodeInfo.osImage", true, NULL },
	{ "KERNEL-VERSION", "status.nodeInfo.kernelVersion", true, NULL },
	{ "CONTAINER-RUNTIME", "status.nodeInfo.containerRuntimeVersion", true, NULL },
	{ NULL, NULL, false, NULL },
};

/* ---- Pod ---- */

static void pod_ready(const json_t *o, char *buf, size_t len)
{
	size_t total = json_array_size(api_get_path(o, "spec.containers")), ready = 0, i;
	json_t *cs;
	json_array_foreach (api_get_path(o, "status.containerStatuses"), i, cs)
		if (api_bool(cs, "ready"))
			ready++;
	snprintf(buf, len, "%zu/%zu", ready, total);
}

/* kubectl's pod status: the phase, refined by init and container states. */
static void pod_status(const json_t *o, char *buf, size_t len)
{
	const json_t *st = api_get(o, "status");
	const char *reason = api_nonempty(st, "reason");
	if (!reason)
		reason = api_nonempty(st, "phase");
	snprintf(buf, len, "%s", reason ? reason : "Pending");
	bool initializing = false;
	size_t i, ninit = json_array_size(api_get_path(o, "spec.initContainers"));
	json_t *cs;
	json_array_foreach (api_get(st, "initContainerStatuses"), i, cs) {
		const json_t *term = api_get_path(cs, "state.terminated");
		const json_t *wait = api_get_path(cs, "state.waiting");
		int64_t code = 0;
		if (term && api_int(term, "exitCode", &code) && code == 0)
			continue;
		initializing = true;
		if (term) {
			int64_t sig = 0;
			if (api_nonempty(term, "reason"))
				snprintf(buf, len, "Init:%s", api_str(term, "reason"));
			else if (api_int(term, "signal", &sig) && sig)
				snprintf(buf, len, "Init:Signal:%" PRId64, sig);
			else
				snprintf(buf, len, "Init:ExitCode:%" PRId64, code);
		} else if (wait && api_nonempty(wait, "reason") &&
			   strcmp(api_str(wait, "reason"), "PodInitializing") != 0) {
			snprintf(buf, len, "Init:%s", api_str(wait, "reason"));
		} else {
			snprintf(buf, len, "Init:%zu/%zu", i, ninit);
		}
		break;
	}
	if (!initializing) {
		bool running = false;
		const json_t *arr = api_get(st, "containerStatuses");
		for (size_t j = json_array_size(arr); j-- > 0;) {
			cs = json_array_get(arr, j);
			const json_t *term = api_get_path(cs, "state.terminated");
			const json_t *wait = api_get_path(cs, "state.waiting");
			int64_t code = 0, sig = 0;
			if (wait && api_nonempty(wait, "reason")) {
				snprintf(buf, len, "%s", api_str(wait, "reason"));
			} else if (term && api_nonempty(term, "reason")) {
				snprintf(buf, len, "%s", api_str(term, "reason"));
			} else if (term) {
				api_int(term, "exitCode", &code);
				if (api_int(term, "signal", &sig) && sig)
					snprintf(buf, len, "Signal:%" PRId64, sig);
				else
					snprintf(buf, len, "ExitCode:%" PRId64, code);
			} else if (api_get_path(cs, "state.running") && api_bool(cs, "ready")) {
				running = true;
			}
		}
		if (strcmp(buf, "Completed") == 0 && running)
			snprintf(buf, len, "Running");
	}
	if (api_get_path(o, "metadata.deletionTimestamp")) {
		if (reason && strcmp(reason, "NodeLost") == 0)
			snprintf(buf, len, "Unknown");
		else
			snprintf(buf, len, "Terminating");
	}
}

static void pod_restarts(const json_t *o, char *buf, size_t len)
{
	int64_t total = 0, last = -1;
	size_t i;
	json_t *cs;
	json_array_foreach (api_get_path(o, "status.containerStatuses"), i, cs) {
		int64_t n = 0;
		if (api_int(cs, "restartCount", &n))
			total += n;
		int64_t t = api_parse_time(
			json_string_value(api_get_path(cs, "lastState.terminated.finishedAt")));
		if (t > last)
			last = t;
	}
	if (total > 0 && last >= 0) {
		char ago[32];
		api_human_duration((int64_t)time(NULL) - last, ago, sizeof(ago));
		snprintf(buf, len, "%" PRId64 " (%s ago)", total, ago);
	} else {
		snprintf(buf, len, "%" PRId64, total);
	}
}

const struct api_column api_columns_pod[] = {
	{ "NAME", "metadata.name", false, NULL },
	{ "READY", NULL, false, pod_ready },
	{ "STATUS", NULL, false, pod_status },
	{ "RESTARTS", NULL, false, pod_restarts },
	{ "AGE", NULL, false, api_col_age },
	{ "IP", "status.podIP", true, NULL },
	{ "NODE", "spec.nodeName", true, NULL },
	{ "NOMINATED NODE", "status.nominatedNodeName", true, NULL },
	{ NULL, NULL, false, NULL },
};

/* ---- Service ---- */

static void svc_external_ip(const json_t *o, char *buf, size_t len)
{
	const json_t *spec = api_get(o, "spec");
	const char *type = api_str(spec, "type");
	buf[0] = 0;
	if (type && strcmp(type, "ExternalName") == 0) {
		snprintf(buf, len, "%s",
			 api_str(spec, "externalName") ? api_str(spec, "externalName") : "");
		or_none(buf, len);
		return;
	}
	size_t i;
	json_t *v;
	if (type && strcmp(type, "LoadBalancer") == 0) {
		json_array_foreach (api_get_path(o, "status.loadBalancer.ingress"), i, v) {
			if (api_nonempty(v, "ip"))
				append(buf, len, ",", api_str(v, "ip"));
			else if (api_nonempty(v, "hostname"))
				append(buf, len, ",", api_str(v, "hostname"));
		}
	}
	json_array_foreach (api_get(spec, "externalIPs"), i, v)
		if (json_string_value(v))
			append(buf, len, ",", json_string_value(v));
	if (!buf[0] && type && strcmp(type, "LoadBalancer") == 0)
		snprintf(buf, len, "<pending>");
	or_none(buf, len);
}

static void svc_ports(const json_t *o, char *buf, size_t len)
{
	buf[0] = 0;
	size_t i;
	json_t *p;
	char t[64];
	json_array_foreach (api_get_path(o, "spec.ports"), i, p) {
		int64_t port = 0, np = 0;
		api_int(p, "port", &port);
		const char *proto = api_str(p, "protocol") ? api_str(p, "protocol") : "TCP";
		if (api_int(p, "nodePort", &np) && np)
			snprintf(t, sizeof(t), "%" PRId64 ":%" PRId64 "/%s", port, np, proto);
		else
			snprintf(t, sizeof(t), "%" PRId64 "/%s", port, proto);
		append(buf, len, ",", t);
	}
	or_none(buf, len);
}

static void svc_selector(const json_t *o, char *buf, size_t len)
{
	map_text(api_get_path(o, "spec.selector"), buf, len);
}

const struct api_column api_columns_service[] = {
	{ "NAME", "metadata.name", false, NULL },
	{ "TYPE", "spec.type", false, NULL },
	{ "CLUSTER-IP", "spec.clusterIP", false, NULL },
	{ "EXTERNAL-IP", NULL, false, svc_external_ip },
	{ "PORT(S)", NULL, false, svc_ports },
	{ "AGE", NULL, false, api_col_age },
	{ "SELECTOR", NULL, true, svc_selector },
	{ NULL, NULL, false, NULL },
};

/* ---- Endpoints, EndpointSlice ---- */

/* "a:80,b:80,c:80 + 2 more..." as kubectl prints endpoints. */
static void ep_endpoints(const json_t *o, char *buf, size_t len)
{
	buf[0] = 0;
	size_t shown = 0, total = 0, i, j, k;
	json_t *ss, *a, *p;
	char t[128];
	json_array_foreach (api_get(o, "subsets"), i, ss) {
		const json_t *ports = api_get(ss, "ports");
		json_array_foreach (api_get(ss, "addresses"), j, a) {
			const char *ip = api_str(a, "ip") ? api_str(a, "ip") : "";
			if (json_array_size(ports) == 0) {
				if (total++ < 3) {
					append(buf, len, ",", ip);
					shown++;
				}
			}
			json_array_foreach (ports, k, p) {
				int64_t port = 0;
				api_int(p, "port", &port);
				if (total++ < 3) {
					snprintf(t, sizeof(t), "%s:%" PRId64, ip, port);
					append(buf, len, ",", t);
					shown++;
				}
			}
		}
	}
	if (total > shown) {
		snprintf(t, sizeof(t), " + %zu more...", total - shown);
		append(buf, len, "", t);
	}
	or_none(buf, len);
}

const struct api_column api_columns_endpoints[] = {
	{ "NAME", "metadata.name", false, NULL },
	{ "ENDPOINTS", NULL, false, ep_endpoints },
	{ "AGE", NULL, false, api_col_age },
	{ NULL, NULL, false, NULL },
};

static void eps_ports(const json_t *o, char *buf, size_t len)
{
	buf[0] = 0;
	size_t i;
	json_t *p;
	char t[32];
	json_array_foreach (api_get(o, "ports"), i, p) {
		int64_t port;
		if (api_int(p, "port", &port)) {
			snprintf(t, sizeof(t), "%" PRId64, port);
			append(buf, len, ",", t);
		}
	}
	if (!buf[0])
		snprintf(buf, len, "<unset>");
}

static void eps_endpoints(const json_t *o, char *buf, size_t len)
{
	buf[0] = 0;
	size_t total = 0, i, j;
	json_t *e, *a;
	json_array_foreach (api_get(o, "endpoints"), i, e) {
		json_array_foreach (api_get(e, "addresses"), j, a) {
			if (total++ < 3 && json_string_value(a))
				append(buf, len, ",", json_string_value(a));
		}
	}
	if (total > 3) {
		char t[48];
		snprintf(t, sizeof(t), " + %zu more...", total - 3);
		append(buf, len, "", t);
	}
	if (!buf[0])
		snprintf(buf, len, "<unset>");
}

const struct api_column api_columns_endpointslice[] = {
	{ "NAME", "metadata.name", false, NULL }, { "ADDRESSTYPE", "addressType", false, NULL },
	{ "PORTS", NULL, false, eps_ports },	  { "ENDPOINTS", NULL, false, eps_endpoints },
	{ "AGE", NULL, false, api_col_age },	  { NULL, NULL, false, NULL },
};

/* ---- Event, Lease ---- */

static void ev_last_seen(const json_t *o, char *buf, size_t len)
{
	const char *ts = api_nonempty(o, "lastTimestamp");
	if (!ts)
		ts = api_nonempty(o, "eventTime");
	if (!ts)
		ts = json_string_value(api_get_path(o, "series.lastObservedTime"));
	if (!ts)
		ts = json_string_value(api_get_path(o, "metadata.creationTimestamp"));
	age_of(ts, buf, len);
}

static void ev_object(const json_t *o, char *buf, size_t len)
{
	const json_t *io = api_get(o, "involvedObject");
	const char *kind = api_str(io, "kind"), *name = api_str(io, "name");
	char lower[64];
	snprintf(lower, sizeof(lower), "%s", kind ? kind : "");
	for (char *c = lower; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	snprintf(buf, len, "%s/%s", lower, name ? name : "");
}

const struct api_column api_columns_event[] = {
	{ "LAST SEEN", NULL, false, ev_last_seen }, { "TYPE", "type", false, NULL },
	{ "REASON", "reason", false, NULL },	    { "OBJECT", NULL, false, ev_object },
	{ "MESSAGE", "message", false, NULL },	    { NULL, NULL, false, NULL },
};

const struct api_column api_columns_lease[] = {
	{ "NAME", "metadata.name", false, NULL },
	{ "HOLDER", "spec.holderIdentity", false, NULL },
	{ "AGE", NULL, false, api_col_age },
	{ NULL, NULL, false, NULL },
};

/* ---- Deployment, ReplicaSet, DaemonSet ---- */

static int64_t spec_replicas(const json_t *o)
{
	const json_t *r = api_get_path(o, "spec.replicas");
	return json_is_integer(r) ? json_integer_value(r) : 1;
}

static void deploy_ready(const json_t *o, char *buf, size_t len)
{
	snprintf(buf, len, "%" PRId64 "/%" PRId64, int_at(o, "status.readyReplicas"),
		 spec_replicas(o));
}

static void deploy_uptodate(const json_t *o, char *b, size_t l)
{
	col_int(o, "status.updatedReplicas", b, l);
}

static void deploy_available(const json_t *o, char *b, size_t l)
{
	col_int(o, "status.availableReplicas", b, l);
}

const struct api_column api_columns_deployment[] = {
	{ "NAME", "metadata.name", false, NULL },
	{ "READY", NULL, false, deploy_ready },
	{ "UP-TO-DATE", NULL, false, deploy_uptodate },
	{ "AVAILABLE", NULL, false, deploy_available },
	{ "AGE", NULL, false, api_col_age },
	{ "CONTAINERS", NULL, true, tmpl_containers },
	{ "IMAGES", NULL, true, tmpl_images },
	{ "SELECTOR", NULL, true, spec_selector },
	{ NULL, NULL, false, NULL },
};

static void rs_desired(const json_t *o, char *buf, size_t len)
{
	snprintf(buf, len, "%" PRId64, spec_replicas(o));
}

static void rs_current(const json_t *o, char *b, size_t l)
{
	col_int(o, "status.replicas", b, l);
}

static void rs_ready(const json_t *o, char *b, size_t l)
{
	col_int(o, "status.readyReplicas", b, l);
}

const struct api_column api_columns_replicaset[] = {
	{ "NAME", "metadata.name", false, NULL },
	{ "DESIRED", NULL, false, rs_desired },
	{ "CURRENT", NULL, false, rs_current },
	{ "READY", NULL, false, rs_ready },
	{ "AGE", NULL, false, api_col_age },
	{ "CONTAINERS", NULL, true, tmpl_containers },
	{ "IMAGES", NULL, true, tmpl_images },
	{ "SELECTOR", NULL, true, spec_selector },
	{ NULL, NULL, false, NULL },
};

static void ds_desired(const json_t *o, char *b, size_t l)
{
	col_int(o, "status.desiredNumberScheduled", b, l);
}
static void ds_current(const json_t *o, char *b, size_t l)
{
	col_int(o, "status.currentNumberScheduled", b, l);
}
static void ds_ready(const json_t *o, char *b, size_t l)
{
	col_int(o, "status.numberReady", b, l);
}
static void ds_uptodate(const json_t *o, char *b, size_t l)
{
	col_int(o, "status.updatedNumberScheduled", b, l);
}
static void ds_available(const json_t *o, char *b, size_t l)
{
	col_int(o, "status.numberAvailable", b, l);
}
static void ds_node_selector(const json_t *o, char *b, size_t l)
{
	map_text(api_get_path(o, "spec.template.spec.nodeSelector"), b, l);
}

const struct api_column api_columns_daemonset[] = {
	{ "NAME", "metadata.name", false, NULL },
	{ "DESIRED", NULL, false, ds_desired },
	{ "CURRENT", NULL, false, ds_current },
	{ "READY", NULL, false, ds_ready },
	{ "UP-TO-DATE", NULL, false, ds_uptodate },
	{ "AVAILABLE", NULL, false, ds_available },
	{ "NODE SELECTOR", NULL, false, ds_node_selector },
	{ "AGE", NULL, false, api_col_age },
	{ "CONTAINERS", NULL, true, tmpl_containers },
	{ "IMAGES", NULL, true, tmpl_images },
	{ "SELECTOR", NULL, true, spec_selector },
	{ NULL, NULL, false, NULL },
};

/* ---- Job ---- */

static bool has_condition(const json_t *o, const char *type)
{
	size_t i;
	json_t *c;
	json_array_foreach (api_get_path(o, "status.conditions"), i, c) {
		const char *t = api_str(c, "type"), *s = api_str(c, "status");
		if (t && s && strcmp(t, type) == 0 && strcmp(s, "True") == 0)
			return true;
	}
	return false;
}

static void job_status(const json_t *o, char *buf, size_t len)
{
	if (has_condition(o, "Complete"))
		snprintf(buf, len, "Complete");
	else if (has_condition(o, "Failed"))
		snprintf(buf, len, "Failed");
	else if (has_condition(o, "FailureTarget"))
		snprintf(buf, len, "FailureTarget");
	else if (has_condition(o, "SuccessCriteriaMet"))
		snprintf(buf, len, "SuccessCriteriaMet");
	else if (has_condition(o, "Suspended") || json_is_true(api_get_path(o, "spec.suspend")))
		snprintf(buf, len, "Suspended");
	else
		snprintf(buf, len, "Running");
}

static void job_completions(const json_t *o, char *buf, size_t len)
{
	int64_t done = int_at(o, "status.succeeded");
	const json_t *c = api_get_path(o, "spec.completions");
	if (json_is_integer(c))
		snprintf(buf, len, "%" PRId64 "/%" JSON_INTEGER_FORMAT, done,
			 json_integer_value(c));
	else {
		const json_t *p = api_get_path(o, "spec.parallelism");
		snprintf(buf, len, "%" PRId64 "/1 of %" JSON_INTEGER_FORMAT, done,
			 json_is_integer(p) ? json_integer_value(p) : 1);
	}
}

static void job_duration(const json_t *o, char *buf, size_t len)
{
	int64_t start = api_parse_time(json_string_value(api_get_path(o, "status.startTime")));
	int64_t end = api_parse_time(json_string_value(api_get_path(o, "status.completionTime")));
	if (start < 0) {
		buf[0] = 0;
		return;
	}
	api_human_duration((end >= 0 ? end : (int64_t)time(NULL)) - start, buf, len);
}

const struct api_column api_columns_job[] = {
	{ "NAME", "metadata.name", false, NULL },
	{ "STATUS", NULL, false, job_status },
	{ "COMPLETIONS", NULL, false, job_completions },
	{ "DURATION", NULL, false, job_duration },
	{ "AGE", NULL, false, api_col_age },
	{ "CONTAINERS", NULL, true, tmpl_containers },
	{ "IMAGES", NULL, true, tmpl_images },
	{ "SELECTOR", NULL, true, spec_selector },
	{ NULL, NULL, false, NULL },
};

/* ---- PodGroup ---- */

static void pg_running(const json_t *o, char *b, size_t l)
{
	col_int(o, "status.running", b, l);
}

const struct api_column api_columns_podgroup[] = {
	{ "NAME", "metadata.name", false, NULL }, { "MINMEMBER", "spec.minMember", false, NULL },
	{ "RUNNING", NULL, false, pg_running },	  { "PHASE", "status.phase", false, NULL },
	{ "AGE", NULL, false, api_col_age },	  { NULL, NULL, false, NULL },
};
