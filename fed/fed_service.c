// SPDX-License-Identifier: Apache-2.0
/*
 * FederatedService: the Service of the template in every selected member, and each member's
 * reachable addresses of it published to the others, so that a client in one cluster reaches
 * backends in another through its own Service.
 *
 * - A cluster's reachable addresses are, in order of preference: the Service's load-balancer
 *   ingress IPs (with the Service's ports), its externalIPs (the same), or, for NodePort and
 *   LoadBalancer Services, the InternalIP of every ready node with the node ports. A
 *   ClusterIP-only Service is not reachable from outside its cluster and publishes nothing.
 *   Nor does a cluster whose Service has no ready endpoint of its own (the federation's
 *   slices of the others do not count): it is published while it has one and withdrawn when
 *   it has none. Each member's EndpointSlices are watched for that (fed_cluster.c).
 * - The design choice: what cluster X publishes reaches cluster Y as an EndpointSlice
 *   "<name>-fed-<X>" of Y's Service (labels kubernetes.io/service-name, and a managed-by of
 *   the federation's own, which Y's EndpointSlice controller leaves alone). Y's agents
 *   already program every EndpointSlice of a Service into the data plane, so remote backends
 *   need nothing new on the nodes: they are endpoints like the local pods.
 * - Member objects carry federation.shoal.io/managed-by=<id>; a Service of that name without
 *   it is never changed (state NotOwned), and nothing is published for it.
 * - A member that is not ready keeps what it published for the grace period (its nodes may
 *   still serve); once it is Offline its slices are withdrawn from the others, so that their
 *   clients are no longer sent to an unreachable cluster, and published again when it is
 *   Ready (a Cluster's status change queues every FederatedService).
 * - Members are read when the FederatedService is reconciled, and it is reconciled again
 *   every 30 s (node addresses and load-balancer ingress change without telling us).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_kinds.h"
#include "ctrl.h"
#include "errors.h"
#include "fed_int.h"
#include "httpc.h"
#include "labels.h"
#include "log.h"

#define FED_SLICE_MANAGER "federation.shoal.io"
#define FED_LABEL_SOURCE  "federation.shoal.io/source-cluster"
#define RESYNC_MS	  30000

struct svc_target {
	char name[254];
	struct fed_member *m;
	bool selected, ready, offline;
	bool unknown;	   /* reading where it is reachable failed: what it published stays */
	json_t *svc;	   /* the member's Service (ours), or NULL */
	json_t *addresses; /* ["IP", ...] it is reachable at */
	json_t *ports;	   /* EndpointSlice ports for those addresses */
	const char *state;
	char msg[512];
};

struct fs_ctx {
	struct fed *f;
	const char *ns, *name;
	json_t *fs; /* NULL: deleted */
	struct svc_target *t;
	size_t n;
	int err;
	bool not_owned;
};

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static bool ours(const struct fed *f, const json_t *obj)
{
	const char *v = jstr(json_object_get(json_object_get(obj, "metadata"), "labels"),
			     FED_LABEL_MANAGED_BY);
	return v && !strcmp(v, f->cfg->id);
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static void fail(struct fs_ctx *x, struct svc_target *t, int err)
{
	t->state = "Error";
	if (!x->err)
		x->err = err;
	log_warn("federation: service %s/%s on cluster %s: %s", x->ns, x->name, t->name, t->msg);
}

/* The member Service wanted (spec.clusterIP and node ports left to the member). */
static json_t *desired_service(struct fs_ctx *x, char hash[17])
{
	const json_t *tmpl = json_object_get(json_object_get(x->fs, "spec"), "template");
	const json_t *tmeta = json_object_get(tmpl, "metadata");
	const json_t *labels = json_object_get(tmeta, "labels");
	const json_t *ann = json_object_get(tmeta, "annotations");
	const json_t *spec = json_object_get(tmpl, "spec");
	/* copies: the template is shared */
	json_t *s = json_pack("{s:s, s:s, s:{s:s, s:s, s:o, s:o}, s:o}", "apiVersion", "v1", "kind",
			      "Service", "metadata", "name", x->name, "namespace", x->ns, "labels",
			      labels ? json_deep_copy(labels) : json_object(), "annotations",
			      ann ? json_deep_copy(ann) : json_object(), "spec",
			      spec ? json_deep_copy(spec) : json_object());
	if (!s)
		return NULL;
	json_t *meta = json_object_get(s, "metadata");
	json_object_set_new(json_object_get(meta, "labels"), FED_LABEL_MANAGED_BY,
			    json_string(x->f->cfg->id));
	char *text = json_dumps(s, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text) {
		json_decref(s);
		return NULL;
	}
	snprintf(hash, 17, "%016" PRIx64, fnv1a(text));
	free(text);
	json_object_set_new(json_object_get(meta, "annotations"), FED_ANN_HASH, json_string(hash));
	return s;
}

/* Keeps what the member allocated (cluster IPs, node ports) in a replacement. */
static void keep_allocated(json_t *want, const json_t *have)
{
	json_t *ws = json_object_get(want, "spec");
	const json_t *hs = json_object_get(have, "spec");
	const char *keep[] = { "clusterIP", "clusterIPs" };
	for (size_t i = 0; i < 2; i++)
		if (json_object_get(hs, keep[i]) && !json_object_get(ws, keep[i]))
			json_object_set(ws, keep[i], json_object_get(hs, keep[i]));
	size_t i, j;
	json_t *wp, *hp;
	json_array_foreach (json_object_get(ws, "ports"), i, wp) {
		if (json_object_get(wp, "nodePort"))
			continue;
		json_array_foreach (json_object_get(hs, "ports"), j, hp)
			if (json_integer_value(json_object_get(hp, "port")) ==
				    json_integer_value(json_object_get(wp, "port")) &&
			    !strcmp(jstr(hp, "protocol") ?: "TCP", jstr(wp, "protocol") ?: "TCP") &&
			    json_object_get(hp, "nodePort"))
				json_object_set(wp, "nodePort", json_object_get(hp, "nodePort"));
	}
}

static void sync_service(struct fs_ctx *x, struct svc_target *t)
{
	char coll[600], path[1200], hash[17];
	json_t *cur = NULL, *want = NULL;
	snprintf(coll, sizeof(coll), "/api/v1/namespaces/%s/services", x->ns);
	snprintf(path, sizeof(path), "%s/%s", coll, x->name);
	int err = fed_member_do(t->m, "GET", path, NULL, &cur, t->msg, sizeof(t->msg));
	if (err && err != -ENOENT) {
		fail(x, t, err);
		goto out;
	}
	if (cur && !ours(x->f, cur)) {
		if (t->selected) {
			t->state = "NotOwned";
			x->not_owned = true;
			snprintf(
				t->msg, sizeof(t->msg),
				"a Service of this name exists without the label %s=%s; it is left "
				"alone",
				FED_LABEL_MANAGED_BY, x->f->cfg->id);
		}
		goto out;
	}
	if (!t->selected) {
		if (cur) {
			json_t *opts =
				json_pack("{s:{s:s}}", "preconditions", "uid",
					  jstr(json_object_get(cur, "metadata"), "uid") ?: "");
			err = fed_member_do(t->m, "DELETE", path, opts, NULL, t->msg,
					    sizeof(t->msg));
			json_decref(opts);
			if (err && err != -ENOENT)
				fail(x, t, err);
		}
		goto out;
	}
	want = desired_service(x, hash);
	if (!want) {
		snprintf(t->msg, sizeof(t->msg), "out of memory");
		fail(x, t, -ENOMEM);
		goto out;
	}
	if (!cur) {
		err = fed_member_do(t->m, "POST", coll, want, &t->svc, t->msg, sizeof(t->msg));
		if (err == -ENOENT && strstr(t->msg, "namespaces")) {
			json_t *ns = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind",
					       "Namespace", "metadata", "name", x->ns);
			err = ns ? fed_member_do(t->m, "POST", "/api/v1/namespaces", ns, NULL,
						 t->msg, sizeof(t->msg))
				 : -ENOMEM;
			json_decref(ns);
			if (!err || err == -EEXIST)
				err = fed_member_do(t->m, "POST", coll, want, &t->svc, t->msg,
						    sizeof(t->msg));
		}
		if (err)
			fail(x, t, err);
		else
			t->state = "Created";
		goto out;
	}
	const char *h = jstr(json_object_get(json_object_get(cur, "metadata"), "annotations"),
			     FED_ANN_HASH);
	if (h && !strcmp(h, hash)) {
		t->state = "Synced";
		t->svc = json_incref(cur);
		goto out;
	}
	keep_allocated(want, cur);
	json_object_set(json_object_get(want, "metadata"), "resourceVersion",
			json_object_get(json_object_get(cur, "metadata"), "resourceVersion"));
	err = fed_member_do(t->m, "PUT", path, want, &t->svc, t->msg, sizeof(t->msg));
	if (err)
		fail(x, t, err);
	else
		t->state = "Updated";
out:
	json_decref(cur);
	json_decref(want);
}

static bool node_ready(const json_t *node)
{
	size_t i;
	json_t *c;
	json_array_foreach (json_object_get(json_object_get(node, "status"), "conditions"), i, c)
		if (!strcmp(jstr(c, "type") ?: "", "Ready"))
			return !strcmp(jstr(c, "status") ?: "", "True");
	return false;
}

/* Whether cluster t's Service has a ready endpoint of its own: one in a slice that is not
 * the federation's (those carry the source-cluster label) and whose condition ready is true
 * or not given (as Kubernetes reads it). 1, 0, or a negative errno (recorded by fail()). */
static int has_own_ready_endpoint(struct fs_ctx *x, struct svc_target *t)
{
	char path[1400];
	json_t *l = NULL;
	snprintf(path, sizeof(path),
		 "/apis/discovery.k8s.io/v1/namespaces/%s/endpointslices"
		 "?labelSelector=kubernetes.io%%2Fservice-name%%3D%s",
		 x->ns, x->name);
	int err = fed_member_do(t->m, "GET", path, NULL, &l, t->msg, sizeof(t->msg));
	if (err) {
		fail(x, t, err);
		return err;
	}
	int found = 0;
	size_t i, j;
	json_t *sl, *ep;
	json_array_foreach (json_object_get(l, "items"), i, sl) {
		if (json_object_get(json_object_get(json_object_get(sl, "metadata"), "labels"),
				    FED_LABEL_SOURCE))
			continue;
		json_array_foreach (json_object_get(sl, "endpoints"), j, ep) {
			const json_t *r =
				json_object_get(json_object_get(ep, "conditions"), "ready");
			if (!json_is_false(r) && json_array_size(json_object_get(ep, "addresses")))
				found = 1;
		}
	}
	json_decref(l);
	return found;
}

/*
 * Where cluster t's Service is reachable from outside: t->addresses and t->ports. Nowhere
 * while it has no ready endpoint of its own: its nodes would only reset what others send.
 */
static int reachable(struct fs_ctx *x, struct svc_target *t)
{
	int own = has_own_ready_endpoint(x, t);
	if (own < 0) {
		t->unknown = true;
		return own;
	}
	if (!own) {
		t->addresses = json_array();
		t->ports = json_array();
		if (!t->addresses || !t->ports)
			return -ENOMEM;
		snprintf(t->msg, sizeof(t->msg),
			 "no ready endpoints of its own: not published to the others");
		return 0;
	}

	const json_t *spec = json_object_get(t->svc, "spec");
	const char *type = jstr(spec, "type") ?: "ClusterIP";
	json_t *addrs = json_array(), *ports = json_array();
	bool node_ports = false;
	size_t i;
	json_t *v;

	if (!addrs || !ports)
		goto nomem;
	json_array_foreach (
		json_object_get(json_object_get(json_object_get(t->svc, "status"), "loadBalancer"),
				"ingress"),
		i, v)
		if (jstr(v, "ip"))
			json_array_append_new(addrs, json_string(jstr(v, "ip")));
	if (!json_array_size(addrs))
		json_array_foreach (json_object_get(spec, "externalIPs"), i, v)
			json_array_append(addrs, v);
	if (!json_array_size(addrs) &&
	    (!strcmp(type, "NodePort") || !strcmp(type, "LoadBalancer"))) {
		json_t *nodes = NULL;
		int err = fed_member_do(t->m, "GET", "/api/v1/nodes", NULL, &nodes, t->msg,
					sizeof(t->msg));
		if (err) {
			json_decref(addrs);
			json_decref(ports);
			fail(x, t, err);
			t->unknown = true;
			return err;
		}
		size_t j;
		json_t *n, *a;
		json_array_foreach (json_object_get(nodes, "items"), i, n) {
			if (!node_ready(n))
				continue;
			json_array_foreach (
				json_object_get(json_object_get(n, "status"), "addresses"), j, a)
				if (!strcmp(jstr(a, "type") ?: "", "InternalIP") &&
				    jstr(a, "address") && !strchr(jstr(a, "address"), ':'))
					json_array_append_new(addrs,
							      json_string(jstr(a, "address")));
		}
		json_decref(nodes);
		node_ports = true;
	}
	json_array_foreach (json_object_get(spec, "ports"), i, v) {
		json_t *np = json_object_get(v, node_ports ? "nodePort" : "port");
		if (!json_is_integer(np))
			continue;
		json_t *p = json_pack("{s:s, s:O, s:s}", "name", jstr(v, "name") ?: "", "port", np,
				      "protocol", jstr(v, "protocol") ?: "TCP");
		if (!p)
			goto nomem;
		json_array_append_new(ports, p);
	}
	if (!json_array_size(ports))
		json_array_clear(addrs);
	t->addresses = addrs;
	t->ports = ports;
	return 0;
nomem:
	json_decref(addrs);
	json_decref(ports);
	return -ENOMEM;
}

/*
 * Cluster y's EndpointSlices for the others' addresses. Only the slices the federation wrote
 * are looked at: the member's own slices of the Service carry the Service's labels (its
 * federation.shoal.io/managed-by among them), and deleting one would leave y's nodes without
 * endpoints until its EndpointSlice controller writes it again (clients reset meanwhile).
 */
static void publish(struct fs_ctx *x, struct svc_target *y)
{
	char coll[600], sel[1400], path[1200];
	json_t *have = NULL;
	snprintf(coll, sizeof(coll), "/apis/discovery.k8s.io/v1/namespaces/%s/endpointslices",
		 x->ns);
	snprintf(sel, sizeof(sel),
		 "%s?labelSelector=kubernetes.io%%2Fservice-name%%3D%s,%s%%3D%s,%s%%3D%s", coll,
		 x->name, "federation.shoal.io%2Fmanaged-by", x->f->cfg->id,
		 "endpointslice.kubernetes.io%2Fmanaged-by", FED_SLICE_MANAGER);
	int err = fed_member_do(y->m, "GET", sel, NULL, &have, y->msg, sizeof(y->msg));
	if (err) {
		fail(x, y, err);
		return;
	}
	json_t *items = json_object_get(have, "items");
	/* wanted slices: one per other cluster with addresses (none when y is not selected) */
	for (size_t i = 0; y->selected && y->state && strcmp(y->state, "NotOwned") && i < x->n;
	     i++) {
		struct svc_target *s = &x->t[i];
		if (s == y || !json_array_size(s->addresses))
			continue;
		char name[320];
		snprintf(name, sizeof(name), "%s-fed-%s", x->name, s->name);
		json_t *eps = json_array();
		size_t k;
		json_t *a;
		json_array_foreach (s->addresses, k, a)
			json_array_append_new(eps, json_pack("{s:[O], s:{s:b}}", "addresses", a,
							     "conditions", "ready", 1));
		json_t *want = json_pack(
			"{s:s, s:s, s:{s:s, s:s, s:{s:s, s:s, s:s, s:s}}, s:s, s:o, s:O}",
			"apiVersion", "discovery.k8s.io/v1", "kind", "EndpointSlice", "metadata",
			"name", name, "namespace", x->ns, "labels", "kubernetes.io/service-name",
			x->name, "endpointslice.kubernetes.io/managed-by", FED_SLICE_MANAGER,
			FED_LABEL_MANAGED_BY, x->f->cfg->id, FED_LABEL_SOURCE, s->name,
			"addressType", "IPv4", "endpoints", eps, "ports", s->ports);
		if (!want) {
			snprintf(y->msg, sizeof(y->msg), "out of memory");
			fail(x, y, -ENOMEM);
			continue;
		}
		const json_t *cur = NULL;
		size_t j;
		json_t *it;
		json_array_foreach (items, j, it)
			if (!strcmp(jstr(json_object_get(it, "metadata"), "name") ?: "", name))
				cur = it;
		snprintf(path, sizeof(path), "%s/%s", coll, name);
		if (!cur) {
			err = fed_member_do(y->m, "POST", coll, want, NULL, y->msg, sizeof(y->msg));
		} else if (!json_equal(json_object_get(cur, "endpoints"), eps) ||
			   !json_equal(json_object_get(cur, "ports"), s->ports)) {
			json_object_set(json_object_get(want, "metadata"), "resourceVersion",
					json_object_get(json_object_get(cur, "metadata"),
							"resourceVersion"));
			err = fed_member_do(y->m, "PUT", path, want, NULL, y->msg, sizeof(y->msg));
		} else {
			err = 0;
		}
		json_decref(want);
		if (err)
			fail(x, y, err);
	}
	/* slices of clusters that publish nothing any more */
	size_t j;
	json_t *it;
	json_array_foreach (items, j, it) {
		const char *src = jstr(json_object_get(json_object_get(it, "metadata"), "labels"),
				       FED_LABEL_SOURCE);
		bool keep = false;
		if (!src)
			continue; /* not one of the others' slices */
		for (size_t i = 0;
		     src && y->selected && y->state && strcmp(y->state, "NotOwned") && i < x->n;
		     i++)
			if (&x->t[i] != y && !strcmp(x->t[i].name, src) &&
			    json_array_size(x->t[i].addresses))
				keep = true;
		/* a source cluster that is not ready keeps its slice while its nodes may still
		 * serve, until it is Offline; so does one that could not be read this time */
		for (size_t i = 0; !keep && src && y->selected && i < x->n; i++)
			if (!strcmp(x->t[i].name, src) && x->t[i].selected &&
			    ((!x->t[i].ready && !x->t[i].offline) || x->t[i].unknown))
				keep = true;
		if (keep)
			continue;
		snprintf(path, sizeof(path), "%s/%s", coll,
			 jstr(json_object_get(it, "metadata"), "name") ?: "");
		err = fed_member_do(y->m, "DELETE", path, NULL, NULL, y->msg, sizeof(y->msg));
		if (err && err != -ENOENT)
			fail(x, y, err);
	}
	json_decref(have);
}

static int by_name(const void *a, const void *b)
{
	return strcmp((*(struct ctrl_obj *const *)a)->o->name,
		      (*(struct ctrl_obj *const *)b)->o->name);
}

static int write_status(struct fs_ctx *x)
{
	char now[32], msg[1024] = "";
	json_t *clusters = json_array(), *st = NULL;
	int err = 0;
	if (!clusters)
		return -ENOMEM;
	ctrl_now(now);
	for (size_t i = 0; i < x->n; i++) {
		struct svc_target *t = &x->t[i];
		if (!t->selected)
			continue;
		const char *state = t->state ? t->state : t->ready ? "Pending" : "NotReady";
		json_t *addrs = json_array();
		size_t j, k;
		json_t *a, *p;
		json_array_foreach (t->addresses, j, a)
			json_array_foreach (t->ports, k, p) {
				char s[96];
				snprintf(s, sizeof(s), "%s:%lld", json_string_value(a),
					 (long long)json_integer_value(json_object_get(p, "port")));
				json_array_append_new(addrs, json_string(s));
			}
		json_t *c = json_pack("{s:s, s:s, s:o}", "cluster", t->name, "state", state,
				      "addresses", addrs ? addrs : json_array());
		if (c && jstr(json_object_get(t->svc, "spec"), "clusterIP"))
			json_object_set_new(
				c, "clusterIP",
				json_string(jstr(json_object_get(t->svc, "spec"), "clusterIP")));
		if (c && t->msg[0] && strcmp(state, "Synced"))
			json_object_set_new(c, "message", json_string(t->msg));
		json_array_append_new(clusters, c);
		if (t->msg[0] && strcmp(state, "Synced") && strlen(msg) < sizeof(msg) - 2)
			snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), "%s%s: %s",
				 msg[0] ? "; " : "", t->name, t->msg);
	}
	st = json_pack(
		"{s:I, s:O, s:[o,o]}", "observedGeneration",
		json_integer_value(
			json_object_get(json_object_get(x->fs, "metadata"), "generation")),
		"clusters", clusters, "conditions",
		fed_condition(x->fs, "Synced", !x->err && !x->not_owned,
			      x->err	     ? "SyncFailed"
			      : x->not_owned ? "NotOwned"
					     : "Synced",
			      msg[0] ? msg : "every selected member serves the Service", now),
		fed_condition(x->fs, "NotOwned", x->not_owned, x->not_owned ? "NotOwned" : "Owned",
			      x->not_owned ? "a member holds a Service of this name that the "
					     "federation does not manage"
					   : "every member Service is managed by this federation",
			      now));
	if (!st) {
		err = -ENOMEM;
		goto out;
	}
	if (!json_equal(json_object_get(x->fs, "status"), st))
		err = fed_status_write(
			x->f, api_kind_by_kind("federation.shoal.io/v1", "FederatedService"), x->ns,
			x->name, st, msg, sizeof(msg));
out:
	json_decref(clusters);
	json_decref(st);
	return err;
}

int fed_service_reconcile(struct fed *f, const char *key)
{
	char ns[256], name[256];
	struct ctrl_obj *co = ctrl_get(f->fss, key);
	struct ctrl_objs l = { 0 };
	struct selector *sel = NULL;
	struct fs_ctx x = { .f = f, .ns = ns, .name = name };
	int err;

	ctrl_split_key(key, ns, sizeof(ns), name, sizeof(name));
	if (co && !co->deleting) {
		x.fs = ctrl_obj_json(co);
		if (!x.fs) {
			err = -ENOMEM;
			goto out;
		}
	}
	const json_t *pl = json_object_get(json_object_get(x.fs, "spec"), "placement");
	const json_t *ls = json_object_get(pl, "clusterSelector");
	char serr[256];
	if (ls && selector_from_json(ls, false, &sel, serr, sizeof(serr)) < 0)
		sel = NULL;
	err = ctrl_list(f->clusters, NULL, &l);
	if (err)
		goto out;
	qsort(l.v, l.n, sizeof(l.v[0]), by_name);
	x.t = calloc(l.n ? l.n : 1, sizeof(*x.t));
	if (!x.t) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < l.n; i++) {
		struct svc_target *t = &x.t[x.n++];
		json_t *c = ctrl_obj_json(l.v[i]);
		snprintf(t->name, sizeof(t->name), "%s", l.v[i]->o->name);
		const json_t *names = json_object_get(pl, "clusters");
		size_t j;
		json_t *v;
		json_array_foreach (names, j, v)
			if (!strcmp(json_string_value(v) ?: "", t->name))
				t->selected = true;
		if (sel && selector_matches(sel, ctrl_obj_labels(l.v[i])))
			t->selected = true;
		t->selected = t->selected && x.fs && !l.v[i]->deleting;
		t->ready = c && fed_cluster_ready(c);
		t->offline = c && fed_cluster_offline(c);
		json_decref(c);
		t->m = t->ready ? fed_member_get(f, t->name) : NULL;
	}
	/* the Services first, then what each is reachable at, then publish to the others */
	for (size_t i = 0; i < x.n; i++)
		if (x.t[i].m)
			sync_service(&x, &x.t[i]);
	for (size_t i = 0; i < x.n; i++)
		if (x.t[i].m && x.t[i].svc && reachable(&x, &x.t[i]) == -ENOMEM)
			x.err = -ENOMEM; /* any other failure is recorded by fail() */
	for (size_t i = 0; i < x.n; i++)
		if (x.t[i].m)
			publish(&x, &x.t[i]);
	if (x.fs) {
		int serr2 = write_status(&x);
		if (!err)
			err = serr2;
		char k[600];
		snprintf(k, sizeof(k), "s:%s", key);
		ctrl_queue_after(f->c, k, RESYNC_MS);
	}
	if (!err)
		err = x.err;
out:
	for (size_t i = 0; i < x.n; i++) {
		fed_member_put(x.t[i].m);
		json_decref(x.t[i].svc);
		json_decref(x.t[i].addresses);
		json_decref(x.t[i].ports);
	}
	free(x.t);
	selector_free(sel);
	ctrl_objs_free(&l);
	json_decref(x.fs);
	if (co)
		ctrl_obj_unref(co);
	return err;
}
