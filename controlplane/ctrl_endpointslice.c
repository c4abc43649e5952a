// SPDX-License-Identifier: Apache-2.0
/*
 * The EndpointSlice controller: for each Service with a selector, the pods it selects that
 * have an address become endpoints (ready: the pod is Ready and not terminating; serving:
 * the pod is Ready; terminating: it is being deleted), with their node, their node's zone
 * (label topology.kubernetes.io/zone), a reference to the pod and the hostname a pod with
 * a matching subdomain asks for. Ports come from the Service's targetPorts: a number, or the
 * name of a container port of each pod, so pods that resolve a name to different numbers
 * land in different slices. A slice holds 100 endpoints at most; slices are labeled
 * kubernetes.io/service-name and endpointslice.kubernetes.io/managed-by and owned by their
 * Service. The legacy Endpoints object of the Service is kept too (ready addresses and
 * notReadyAddresses per port set, 1000 addresses at most).
 *
 * The design choice to know: minimal churn, as Kubernetes' reconciler. Endpoints stay in the
 * slice that holds them; a slice is written only when its content changes; new endpoints go
 * first into slices that change anyway, then into new slices (a slice emptied is reused
 * before one is created), and the last partial chunk into an unchanged slice with room;
 * writes go in the order create, update, delete, so an endpoint never vanishes in between.
 * A pod that becomes ready is one slice update.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_kinds.h"
#include "ctrl.h"
#include "hashmap.h"
#include "log.h"
#include "strbuf.h"

#define MANAGED_BY		"endpointslice-controller.shoal.io"
#define LABEL_SERVICE		"kubernetes.io/service-name"
#define LABEL_MANAGED		"endpointslice.kubernetes.io/managed-by"
#define LABEL_HEADLESS		"service.kubernetes.io/headless"
#define LABEL_ZONE		"topology.kubernetes.io/zone"
#define MAX_PER_SLICE		100
#define MAX_ENDPOINTS_ADDRESSES 1000

struct eps_ctrl {
	struct ctrl_informer *svc, *pods, *slices, *nodes, *endpoints;
	const struct api_kind *slice_kind, *ep_kind;
};

/* ---- handlers ------------------------------------------------------------------------------- */

static void queue_services(struct ctrl *c, const struct ctrl_obj *pod)
{
	struct eps_ctrl *p = ctrl_priv(c);
	struct ctrl_objs l = { 0 };
	if (ctrl_selecting(p->svc, pod->o->ns, ctrl_obj_labels(pod), &l) == 0)
		for (size_t i = 0; i < l.n; i++)
			ctrl_queue(c, l.v[i]->key);
	ctrl_objs_free(&l);
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Whether a pod's change can change an endpoint. */
static bool pod_changed(const struct ctrl_obj *a, const struct ctrl_obj *b)
{
	const struct ctrl_pod *x = a->pod, *y = b->pod;
	if (a->deleting != b->deleting || x->ready != y->ready || x->phase != y->phase ||
	    !same_str(x->ip, y->ip) || !same_str(x->node, y->node) ||
	    !same_str(x->hostname, y->hostname) || !same_str(x->subdomain, y->subdomain) ||
	    x->nports != y->nports || !json_equal(ctrl_obj_labels(a), ctrl_obj_labels(b)))
		return true;
	for (size_t i = 0; i < x->nports; i++)
		if (x->ports[i].port != y->ports[i].port ||
		    !same_str(x->ports[i].name, y->ports[i].name))
			return true;
	return false;
}

static void on_pod(struct ctrl *c, enum ctrl_event ev, const struct ctrl_obj *now,
		   const struct ctrl_obj *old)
{
	if (ev == CTRL_MODIFIED && !pod_changed(now, old))
		return;
	queue_services(c, now);
	if (ev == CTRL_MODIFIED && !json_equal(ctrl_obj_labels(now), ctrl_obj_labels(old)))
		queue_services(c, old);
}

static void on_service(struct ctrl *c, enum ctrl_event ev, const struct ctrl_obj *now,
		       const struct ctrl_obj *old)
{
	(void)ev;
	(void)old;
	ctrl_queue(c, now->key);
}

/* A managed slice changed or went: its Service is checked (someone may have edited it). */
static void on_slice(struct ctrl *c, enum ctrl_event ev, const struct ctrl_obj *now,
		     const struct ctrl_obj *old)
{
	(void)old;
	const char *svc = ctrl_obj_label(now, LABEL_SERVICE);
	const char *by = ctrl_obj_label(now, LABEL_MANAGED);
	char key[600];
	if (!svc || !by || strcmp(by, MANAGED_BY) != 0)
		return;
	snprintf(key, sizeof(key), "%s/%s", now->o->ns, svc);
	if (ev == CTRL_ADDED)
		ctrl_creation_observed(c, key);
	else if (ev == CTRL_DELETED)
		ctrl_deletion_observed(c, key, now->key);
	ctrl_queue(c, key);
}

static void on_endpoints(struct ctrl *c, enum ctrl_event ev, const struct ctrl_obj *now,
			 const struct ctrl_obj *old)
{
	struct eps_ctrl *p = ctrl_priv(c);
	(void)ev;
	(void)old;
	struct ctrl_obj *svc = ctrl_get(p->svc, now->key);
	if (svc)
		ctrl_queue(c, now->key);
	ctrl_obj_unref(svc);
}

static int eps_init(struct ctrl *c)
{
	struct eps_ctrl *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	ctrl_set_priv(c, p);
	p->svc = ctrl_informer(c, "v1", "Service", CTRL_INDEX_SELECTORS);
	p->pods = ctrl_informer(c, "v1", "Pod", CTRL_INDEX_LABELS);
	p->slices = ctrl_informer(c, "discovery.k8s.io/v1", "EndpointSlice", CTRL_INDEX_LABELS);
	p->nodes = ctrl_informer(c, "v1", "Node", 0);
	p->endpoints = ctrl_informer(c, "v1", "Endpoints", 0);
	p->slice_kind = api_kind_by_kind("discovery.k8s.io/v1", "EndpointSlice");
	p->ep_kind = api_kind_by_kind("v1", "Endpoints");
	if (!p->svc || !p->pods || !p->slices || !p->nodes || !p->endpoints || !p->slice_kind ||
	    !p->ep_kind)
		return -EINVAL;
	if (ctrl_on(c, p->svc, on_service) || ctrl_on(c, p->pods, on_pod) ||
	    ctrl_on(c, p->slices, on_slice) || ctrl_on(c, p->endpoints, on_endpoints))
		return -E2BIG;
	return 0;
}

static void eps_fini(struct ctrl *c)
{
	free(ctrl_priv(c));
}

/* ---- desired endpoints -------------------------------------------------------------------- */

/* The endpoints of one port set and address type. */
struct group {
	char *key;
	const char *address_type;
	json_t *ports;	       /* EndpointSlice ports */
	json_t *eps;	       /* desired endpoints, in pod order */
	struct hashmap *index; /* endpoint key -> position + 1 */
	bool *placed;
	size_t nplaced;
};

static void group_free(struct group *g)
{
	if (!g)
		return;
	free(g->key);
	json_decref(g->ports);
	json_decref(g->eps);
	hashmap_free(g->index);
	free(g->placed);
	free(g);
}

/* The endpoint's identity: its pod's uid, else its first address. */
static const char *ep_key(const json_t *ep)
{
	const char *uid =
		json_string_value(json_object_get(json_object_get(ep, "targetRef"), "uid"));
	return uid && *uid ? uid
			   : json_string_value(json_array_get(json_object_get(ep, "addresses"), 0));
}

/* The ports of one pod for the Service's ports (names resolved on the pod); NULL on OOM. */
static json_t *pod_ports(const json_t *svc_ports, const struct ctrl_pod *pod)
{
	json_t *out = json_array();
	size_t i;
	json_t *sp;

	json_array_foreach (svc_ports, i, sp) {
		const char *name = json_string_value(json_object_get(sp, "name"));
		const char *proto = json_string_value(json_object_get(sp, "protocol"));
		const char *app = json_string_value(json_object_get(sp, "appProtocol"));
		const json_t *tp = json_object_get(sp, "targetPort");
		json_int_t port = json_integer_value(json_object_get(sp, "port"));

		if (!proto)
			proto = "TCP";
		if (json_is_integer(tp) && json_integer_value(tp) > 0) {
			port = json_integer_value(tp);
		} else if (json_is_string(tp) && *json_string_value(tp)) {
			/* A named port: the pod's container port of that name and protocol. */
			const char *want = json_string_value(tp);
			port = 0;
			for (size_t j = 0; j < pod->nports && !port; j++)
				if (pod->ports[j].name && strcmp(pod->ports[j].name, want) == 0 &&
				    strcmp(pod->ports[j].protocol, proto) == 0)
					port = pod->ports[j].port;
			if (!port)
				continue; /* this pod does not serve that port */
		}
		json_t *p = json_pack("{s:s, s:s, s:I}", "name", name ? name : "", "protocol",
				      proto, "port", port);
		if (p && app)
			json_object_set_new(p, "appProtocol", json_string(app));
		if (!p || json_array_append_new(out, p)) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

static char *group_key(const char *address_type, const json_t *ports)
{
	char *pk = json_dumps(ports, JSON_COMPACT | JSON_SORT_KEYS);
	struct strbuf b = { 0 };
	strbuf_printf(&b, "%s|%s", address_type, pk ? pk : "");
	free(pk);
	if (b.err) {
		strbuf_free(&b);
		return NULL;
	}
	return strbuf_take(&b, NULL);
}

static json_t *endpoint_of(struct eps_ctrl *p, const struct ctrl_obj *pod, const char *svc_name,
			   bool publish_not_ready)
{
	const struct ctrl_pod *pp = pod->pod;
	bool ready = publish_not_ready || (pp->ready && !pod->deleting);
	bool serving = publish_not_ready || pp->ready;
	json_t *ep = json_pack("{s:[s], s:{s:b, s:b, s:b}, s:{s:s, s:s, s:s, s:s}}", "addresses",
			       pp->ip, "conditions", "ready", ready, "serving", serving,
			       "terminating", pod->deleting, "targetRef", "kind", "Pod",
			       "namespace", pod->o->ns, "name", pod->o->name, "uid", pod->uid);
	if (!ep)
		return NULL;
	if (pp->hostname && pp->subdomain && strcmp(pp->subdomain, svc_name) == 0)
		json_object_set_new(ep, "hostname", json_string(pp->hostname));
	if (pp->node) {
		json_object_set_new(ep, "nodeName", json_string(pp->node));
		struct ctrl_obj *node = ctrl_get(p->nodes, pp->node);
		const char *zone = node ? ctrl_obj_label(node, LABEL_ZONE) : NULL;
		if (zone)
			json_object_set_new(ep, "zone", json_string(zone));
		ctrl_obj_unref(node);
	}
	return ep;
}

static int pod_cmp(const void *x, const void *y)
{
	return strcmp((*(struct ctrl_obj *const *)x)->key, (*(struct ctrl_obj *const *)y)->key);
}

/* Groups the endpoints of the pods svc selects by address type and port set. */
static int desired_groups(struct eps_ctrl *p, const struct ctrl_obj *svc, const json_t *spec,
			  struct group ***out, size_t *nout)
{
	struct ctrl_objs pods = { 0 };
	struct group **gs = NULL;
	size_t ng = 0;
	int err = ctrl_select(p->pods, svc->o->ns, svc->sel, &pods);
	const json_t *ports = json_object_get(spec, "ports");
	bool pnr = json_is_true(json_object_get(spec, "publishNotReadyAddresses"));

	if (pods.n)
		qsort(pods.v, pods.n, sizeof(pods.v[0]), pod_cmp);
	for (size_t i = 0; !err && i < pods.n; i++) {
		const struct ctrl_obj *pod = pods.v[i];
		const struct ctrl_pod *pp = pod->pod;
		if (!pp->ip || pp->phase == POD_SUCCEEDED || pp->phase == POD_FAILED)
			continue;
		const char *at = strchr(pp->ip, ':') ? "IPv6" : "IPv4";
		json_t *pps = pod_ports(ports, pp);
		char *gk = pps ? group_key(at, pps) : NULL;
		json_t *ep = gk ? endpoint_of(p, pod, svc->o->name, pnr) : NULL;
		struct group *g = NULL;
		if (!ep) {
			json_decref(pps);
			free(gk);
			err = -ENOMEM;
			break;
		}
		for (size_t j = 0; j < ng && !g; j++)
			if (strcmp(gs[j]->key, gk) == 0)
				g = gs[j];
		if (g) {
			free(gk);
			json_decref(pps);
		} else {
			struct group **ngs = realloc(gs, (ng + 1) * sizeof(*gs));
			g = calloc(1, sizeof(*g));
			if (ngs)
				gs = ngs;
			if (!ngs || !g) {
				free(g);
				free(gk);
				json_decref(pps);
				json_decref(ep);
				err = -ENOMEM;
				break;
			}
			gs[ng++] = g;
			g->key = gk;
			g->address_type = at;
			g->ports = pps;
			g->eps = json_array();
			g->index = hashmap_new(16);
			if (!g->eps || !g->index) {
				json_decref(ep);
				err = -ENOMEM;
				break;
			}
		}
		if (json_array_append_new(g->eps, ep) ||
		    hashmap_put(g->index, ep_key(ep), (void *)(intptr_t)json_array_size(g->eps),
				NULL))
			err = -ENOMEM;
	}
	for (size_t j = 0; !err && j < ng; j++) {
		gs[j]->placed = calloc(json_array_size(gs[j]->eps) + 1, sizeof(bool));
		if (!gs[j]->placed)
			err = -ENOMEM;
	}
	ctrl_objs_free(&pods);
	*out = gs;
	*nout = ng;
	return err;
}

/* ---- slices -------------------------------------------------------------------------------- */

struct slice {
	struct ctrl_obj *rec; /* NULL: to be created */
	json_t *obj;	      /* the stored slice (NULL for a new one) */
	struct group *g;      /* the group it serves now (NULL: none) */
	json_t *eps;	      /* its endpoints after the reconcile */
	bool changed;
};

static json_t *slice_labels(const struct ctrl_obj *svc, const json_t *svc_obj, bool headless)
{
	json_t *l = json_deep_copy(json_object_get(json_object_get(svc_obj, "metadata"), "labels"));
	if (!l)
		l = json_object();
	if (!l)
		return NULL;
	json_object_set_new(l, LABEL_SERVICE, json_string(svc->o->name));
	json_object_set_new(l, LABEL_MANAGED, json_string(MANAGED_BY));
	if (headless)
		json_object_set_new(l, LABEL_HEADLESS, json_string(""));
	else
		json_object_del(l, LABEL_HEADLESS);
	return l;
}

static json_t *svc_ref(const struct ctrl_obj *svc)
{
	json_t *refs = json_array();
	if (refs &&
	    json_array_append_new(refs, ctrl_owner_ref("v1", "Service", svc->o->name, svc->uid))) {
		json_decref(refs);
		return NULL;
	}
	return refs;
}

/* Writes the slices: creates, then updates, then deletions. */
static int write_slices(struct ctrl *c, const struct ctrl_obj *svc, struct slice *sl, size_t n,
			const json_t *labels, const json_t *refs)
{
	struct eps_ctrl *p = ctrl_priv(c);
	char path[1024], gen[300];
	int first = 0;

	snprintf(gen, sizeof(gen), "%s-", svc->o->name);
	for (int pass = 0; pass < 3; pass++) {
		for (size_t i = 0; i < n; i++) {
			struct slice *s = &sl[i];
			bool create = !s->rec && s->g;
			bool del = s->rec && !s->g;
			bool update = s->rec && s->g && s->changed;
			json_t *body = NULL;
			const char *method;
			int err;

			if ((pass == 0 && !create) || (pass == 1 && !update) || (pass == 2 && !del))
				continue;
			if (del) {
				method = "DELETE";
				err = ctrl_path(p->slice_kind, svc->o->ns, s->rec->o->name, NULL,
						path, sizeof(path));
			} else {
				char rv[32];
				snprintf(rv, sizeof(rv), "%lld",
					 s->rec ? (long long)s->rec->o->rev : 0LL);
				json_t *meta = create ? json_pack("{s:s, s:O, s:O}", "generateName",
								  gen, "labels", labels,
								  "ownerReferences", refs)
						      : json_pack("{s:s, s:s, s:O, s:O}", "name",
								  s->rec->o->name,
								  "resourceVersion", rv, "labels",
								  labels, "ownerReferences", refs);
				body = meta ? json_pack("{s:s, s:s, s:o, s:s, s:O, s:O}",
							"apiVersion", "discovery.k8s.io/v1", "kind",
							"EndpointSlice", "metadata", meta,
							"addressType", s->g->address_type,
							"endpoints", s->eps, "ports", s->g->ports)
					    : NULL;
				method = create ? "POST" : "PUT";
				err = body ? ctrl_path(p->slice_kind, svc->o->ns,
						       create ? NULL : s->rec->o->name, NULL, path,
						       sizeof(path))
					   : -ENOMEM;
			}
			/* Until the informer has seen a slice made or removed, this Service is
			 * not reconciled again: it would make the slice twice. */
			if (!err && create)
				ctrl_expect_creations(c, svc->key, 1);
			if (!err && del)
				ctrl_expect_deletion(c, svc->key, s->rec->key);
			if (!err) {
				err = ctrl_write(c, method, path, body, NULL, NULL, 0);
				if (err && create)
					ctrl_creation_observed(c, svc->key);
				if (err && del)
					ctrl_deletion_observed(c, svc->key, s->rec->key);
			}
			json_decref(body);
			if (err && !(del && err == -ENOENT) && !first)
				first = err;
		}
	}
	return first;
}

/* Takes n endpoints of g not yet placed (from *next on) into eps. */
static int take(struct group *g, size_t *next, json_t *eps, size_t n)
{
	size_t total = json_array_size(g->eps);
	for (; n && *next < total; (*next)++) {
		if (g->placed[*next])
			continue;
		g->placed[*next] = true;
		g->nplaced++;
		if (json_array_append(eps, json_array_get(g->eps, *next)))
			return -ENOMEM;
		n--;
	}
	return 0;
}

static bool meta_differs(const struct slice *s, const json_t *labels, const json_t *refs)
{
	const json_t *meta = json_object_get(s->obj, "metadata");
	return !json_equal(json_object_get(meta, "labels"), labels) ||
	       !json_equal(json_object_get(meta, "ownerReferences"), refs) ||
	       !json_equal(json_object_get(s->obj, "ports"), s->g->ports) ||
	       !same_str(json_string_value(json_object_get(s->obj, "addressType")),
			 s->g->address_type);
}

/* The minimal-churn placement (see the top of this file). */
static int place(struct group **gs, size_t ng, struct slice **slp, size_t *nsl)
{
	struct slice *sl = *slp;
	size_t n = *nsl;

	/* 1. Endpoints stay where they are, updated in place; the rest leave. */
	for (size_t i = 0; i < n; i++) {
		struct slice *s = &sl[i];
		const json_t *old = json_object_get(s->obj, "endpoints");
		const char *at = json_string_value(json_object_get(s->obj, "addressType"));
		json_t *ports = json_object_get(s->obj, "ports");
		char *gk = group_key(at ? at : "", ports ? ports : json_array());
		size_t j;
		json_t *ep;

		s->eps = json_array();
		if (!gk || !s->eps) {
			free(gk);
			return -ENOMEM;
		}
		for (j = 0; j < ng && !s->g; j++)
			if (strcmp(gs[j]->key, gk) == 0)
				s->g = gs[j];
		free(gk);
		json_array_foreach (old, j, ep) {
			const char *k = ep_key(ep);
			intptr_t at1 = s->g && k ? (intptr_t)hashmap_get(s->g->index, k) : 0;
			if (!at1 || s->g->placed[at1 - 1]) {
				s->changed = true;
				continue;
			}
			const json_t *want = json_array_get(s->g->eps, at1 - 1);
			s->g->placed[at1 - 1] = true;
			s->g->nplaced++;
			s->changed |= !json_equal(ep, want);
			if (json_array_append(s->eps, (json_t *)want))
				return -ENOMEM;
		}
	}
	for (size_t k = 0; k < ng; k++) {
		struct group *g = gs[k];
		size_t next = 0, total = json_array_size(g->eps);
		/* 2. Into slices of this group that change anyway. */
		for (size_t i = 0; i < n && g->nplaced < total; i++) {
			struct slice *s = &sl[i];
			if (s->g == g && s->changed && json_array_size(s->eps) &&
			    json_array_size(s->eps) < MAX_PER_SLICE &&
			    take(g, &next, s->eps, MAX_PER_SLICE - json_array_size(s->eps)))
				return -ENOMEM;
		}
		while (g->nplaced < total) {
			size_t left = total - g->nplaced;
			struct slice *s = NULL;
			/* 3. The last partial chunk: an unchanged slice with room. */
			if (left < MAX_PER_SLICE)
				for (size_t i = 0; i < n && !s; i++)
					if (sl[i].g == g && !sl[i].changed &&
					    json_array_size(sl[i].eps) + left <= MAX_PER_SLICE)
						s = &sl[i];
			/* 4. A slice emptied (of the same address type), else a new one. */
			for (size_t i = 0; i < n && !s; i++)
				if (sl[i].rec && !json_array_size(sl[i].eps) &&
				    same_str(json_string_value(
						     json_object_get(sl[i].obj, "addressType")),
					     g->address_type)) {
					s = &sl[i];
					s->g = g;
				}
			if (!s) {
				struct slice *more = realloc(sl, (n + 1) * sizeof(*sl));
				if (!more)
					return -ENOMEM;
				sl = more;
				*slp = sl;
				s = &sl[n++];
				*nsl = n;
				memset(s, 0, sizeof(*s));
				s->g = g;
				s->eps = json_array();
				if (!s->eps)
					return -ENOMEM;
			}
			s->changed = true;
			if (take(g, &next, s->eps, MAX_PER_SLICE - json_array_size(s->eps)))
				return -ENOMEM;
		}
	}
	/* 5. Emptied slices go. */
	for (size_t i = 0; i < n; i++)
		if (!json_array_size(sl[i].eps))
			sl[i].g = NULL;
	return 0;
}

/* ---- the legacy Endpoints object ----------------------------------------------------------- */

static int addr_cmp(const void *x, const void *y)
{
	const json_t *a = *(json_t *const *)x, *b = *(json_t *const *)y;
	return strcmp(json_string_value(json_object_get(a, "ip")),
		      json_string_value(json_object_get(b, "ip")));
}

/* A sorted array of the addresses in list. */
static json_t *sorted(json_t *list)
{
	size_t n = json_array_size(list);
	json_t **v = malloc((n + 1) * sizeof(*v)), *out = json_array();
	if (!v || !out) {
		free(v);
		json_decref(out);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		v[i] = json_array_get(list, i);
	qsort(v, n, sizeof(*v), addr_cmp);
	for (size_t i = 0; i < n; i++)
		json_array_append(out, v[i]);
	free(v);
	return out;
}

static json_t *endpoints_subsets(struct group **gs, size_t ng, bool *truncated)
{
	json_t *subsets = json_array();
	size_t total = 0;

	*truncated = false;
	for (size_t k = 0; subsets && k < ng; k++) {
		json_t *ready = json_array(), *not_ready = json_array(), *ports = json_array();
		size_t i;
		json_t *ep, *pt;
		json_array_foreach (gs[k]->eps, i, ep) {
			const json_t *cond = json_object_get(ep, "conditions");
			bool r = json_is_true(json_object_get(cond, "ready"));
			if (json_is_true(json_object_get(cond, "terminating")) && !r)
				continue;
			if (total == MAX_ENDPOINTS_ADDRESSES) {
				*truncated = true;
				break;
			}
			json_t *a = json_pack("{s:O, s:O}", "ip",
					      json_array_get(json_object_get(ep, "addresses"), 0),
					      "targetRef", json_object_get(ep, "targetRef"));
			if (a && json_object_get(ep, "nodeName"))
				json_object_set(a, "nodeName", json_object_get(ep, "nodeName"));
			if (a && json_object_get(ep, "hostname"))
				json_object_set(a, "hostname", json_object_get(ep, "hostname"));
			if (a)
				json_array_append_new(r ? ready : not_ready, a);
			total++;
		}
		json_array_foreach (gs[k]->ports, i, pt) {
			json_t *q = json_deep_copy(pt);
			if (q && !*json_string_value(json_object_get(q, "name")))
				json_object_del(q, "name");
			json_array_append_new(ports, q);
		}
		json_t *ss = json_object();
		json_t *sr = sorted(ready), *snr = sorted(not_ready);
		json_decref(ready);
		json_decref(not_ready);
		if (!ss || !sr || !snr || !ports) {
			json_decref(ss);
			json_decref(sr);
			json_decref(snr);
			json_decref(ports);
			json_decref(subsets);
			return NULL;
		}
		if (json_array_size(sr))
			json_object_set(ss, "addresses", sr);
		if (json_array_size(snr))
			json_object_set(ss, "notReadyAddresses", snr);
		json_object_set(ss, "ports", ports);
		json_decref(sr);
		json_decref(snr);
		json_decref(ports);
		if (json_object_get(ss, "addresses") || json_object_get(ss, "notReadyAddresses"))
			json_array_append(subsets, ss);
		json_decref(ss);
	}
	return subsets;
}

static int sync_endpoints(struct ctrl *c, const struct ctrl_obj *svc, const json_t *svc_obj,
			  struct group **gs, size_t ng, bool headless)
{
	struct eps_ctrl *p = ctrl_priv(c);
	struct ctrl_obj *cur = ctrl_get(p->endpoints, svc->key);
	json_t *curj = cur ? ctrl_obj_json(cur) : NULL;
	bool truncated;
	json_t *subsets = endpoints_subsets(gs, ng, &truncated);
	json_t *labels =
		json_deep_copy(json_object_get(json_object_get(svc_obj, "metadata"), "labels"));
	char path[1024];
	int err = 0;

	if (!labels)
		labels = json_object();
	if (headless && labels)
		json_object_set_new(labels, LABEL_HEADLESS, json_string(""));
	if (!subsets || !labels || (cur && !curj)) {
		err = -ENOMEM;
		goto out;
	}
	json_t *curmeta = json_object_get(curj, "metadata");
	json_t *ann = json_deep_copy(json_object_get(curmeta, "annotations"));
	if (!ann)
		ann = json_object();
	if (truncated)
		json_object_set_new(ann, "endpoints.kubernetes.io/over-capacity",
				    json_string("truncated"));
	else
		json_object_del(ann, "endpoints.kubernetes.io/over-capacity");
	const json_t *cursub = json_object_get(curj, "subsets");
	if (cur && json_equal(cursub ? cursub : json_array(), subsets) &&
	    json_equal(json_object_get(curmeta, "labels") ? json_object_get(curmeta, "labels")
							  : json_object(),
		       labels) &&
	    json_equal(json_object_get(curmeta, "annotations")
			       ? json_object_get(curmeta, "annotations")
			       : json_object(),
		       ann)) {
		json_decref(ann);
		goto out; /* unchanged */
	}
	char rv[32];
	snprintf(rv, sizeof(rv), "%lld", cur ? (long long)cur->o->rev : 0LL);
	json_t *meta = json_pack("{s:s, s:o, s:o}", "name", svc->o->name, "labels", labels,
				 "annotations", ann);
	labels = NULL;
	if (meta && cur)
		json_object_set_new(meta, "resourceVersion", json_string(rv));
	json_t *body = meta ? json_pack("{s:s, s:s, s:o, s:O}", "apiVersion", "v1", "kind",
					"Endpoints", "metadata", meta, "subsets", subsets)
			    : NULL;
	err = body ? ctrl_path(p->ep_kind, svc->o->ns, cur ? svc->o->name : NULL, NULL, path,
			       sizeof(path))
		   : -ENOMEM;
	if (!err)
		err = ctrl_write(c, cur ? "PUT" : "POST", path, body, NULL, NULL, 0);
	json_decref(body);
out:
	json_decref(labels);
	json_decref(subsets);
	json_decref(curj);
	ctrl_obj_unref(cur);
	return err;
}

/* ---- reconcile ------------------------------------------------------------------------- */

/* The slices this controller made for the Service named in key: owned by it, or labeled
 * for its name (a Service deleted and created again). */
static int managed_slices(struct eps_ctrl *p, const char *ns, const char *name, const char *uid,
			  struct ctrl_objs *out)
{
	char s[600], err[128];
	snprintf(s, sizeof(s), "%s=%s,%s=%s", LABEL_SERVICE, name, LABEL_MANAGED, MANAGED_BY);
	struct selector *sel = selector_parse(s, err, sizeof(err));
	struct ctrl_objs both = { 0 };
	struct hashmap *seen = hashmap_new(16);
	int e = sel && seen ? ctrl_select(p->slices, ns, sel, &both) : -ENOMEM;
	selector_free(sel);
	if (!e && uid)
		e = ctrl_owned(p->slices, uid, &both);
	for (size_t i = 0; !e && i < both.n; i++) {
		if (hashmap_get(seen, both.v[i]->key))
			continue;
		if (hashmap_put(seen, both.v[i]->key, (void *)1, NULL)) {
			e = -ENOMEM;
			break;
		}
		struct ctrl_obj **v = realloc(out->v, (out->n + 1) * sizeof(*v));
		if (!v) {
			e = -ENOMEM;
			break;
		}
		ctrl_obj_ref(both.v[i]);
		out->v = v;
		out->v[out->n++] = both.v[i];
		out->cap = out->n;
	}
	hashmap_free(seen);
	ctrl_objs_free(&both);
	return e;
}

/* The Service is gone, or no longer has a selector to manage: what was made for it goes. */
static int remove_all(struct ctrl *c, const char *ns, const char *name)
{
	struct eps_ctrl *p = ctrl_priv(c);
	struct ctrl_objs l = { 0 };
	char path[1024];
	int first = managed_slices(p, ns, name, NULL, &l);

	for (size_t i = 0; i < l.n; i++) {
		int e = ctrl_path(p->slice_kind, ns, l.v[i]->o->name, NULL, path, sizeof(path));
		if (!e)
			e = ctrl_write(c, "DELETE", path, NULL, NULL, NULL, 0);
		if (e && e != -ENOENT && !first)
			first = e;
	}
	ctrl_objs_free(&l);
	char key[600];
	snprintf(key, sizeof(key), "%s/%s", ns, name);
	struct ctrl_obj *ep = ctrl_get(p->endpoints, key);
	if (ep) {
		char rv[32];
		snprintf(rv, sizeof(rv), "%lld", (long long)ep->o->rev);
		json_t *opts = json_pack("{s:{s:s}}", "preconditions", "resourceVersion", rv);
		int e = ctrl_path(p->ep_kind, ns, name, NULL, path, sizeof(path));
		if (!e)
			e = ctrl_write(c, "DELETE", path, opts, NULL, NULL, 0);
		json_decref(opts);
		if (e && e != -ENOENT && !first)
			first = e;
		ctrl_obj_unref(ep);
	}
	return first;
}

static int eps_reconcile(struct ctrl *c, const char *key)
{
	struct eps_ctrl *p = ctrl_priv(c);
	char ns[256], name[256];
	struct ctrl_obj *svc;
	struct group **gs = NULL;
	struct slice *sl = NULL;
	struct ctrl_objs existing = { 0 };
	struct group placeholder = { .address_type = "IPv4" };
	size_t ng = 0, nsl = 0;
	json_t *obj = NULL, *labels = NULL, *refs = NULL;
	int err;

	ctrl_split_key(key, ns, sizeof(ns), name, sizeof(name));
	/* Our last writes are not all in the cache yet: their events bring the key back. */
	if (!ctrl_expectations_met(c, key))
		return 0;
	svc = ctrl_get(p->svc, key);
	if (!svc)
		return remove_all(c, ns, name);
	obj = ctrl_obj_json(svc);
	if (!obj) {
		ctrl_obj_unref(svc);
		return -ENOMEM;
	}
	const json_t *spec = json_object_get(obj, "spec");
	const char *type = json_string_value(json_object_get(spec, "type"));
	if (!svc->sel || (type && strcmp(type, "ExternalName") == 0) || svc->deleting) {
		/* Endpoints of a Service without a selector are its owner's to write. */
		json_decref(obj);
		ctrl_obj_unref(svc);
		return 0;
	}
	const char *cip = json_string_value(json_object_get(spec, "clusterIP"));
	bool headless = cip && strcmp(cip, "None") == 0;

	err = desired_groups(p, svc, spec, &gs, &ng);
	if (!err)
		err = managed_slices(p, ns, name, svc->uid, &existing);
	labels = slice_labels(svc, obj, headless);
	refs = svc_ref(svc);
	if (!err && (!labels || !refs))
		err = -ENOMEM;
	if (!err && existing.n) {
		sl = calloc(existing.n, sizeof(*sl));
		if (!sl)
			err = -ENOMEM;
	}
	for (size_t i = 0; !err && i < existing.n; i++) {
		sl[nsl].rec = existing.v[i];
		sl[nsl].obj = ctrl_obj_json(existing.v[i]);
		if (!sl[nsl].obj)
			err = -ENOMEM;
		nsl++;
	}
	if (!err)
		err = place(gs, ng, &sl, &nsl);
	if (!err) {
		size_t live = 0;
		for (size_t i = 0; i < nsl; i++) {
			live += sl[i].g != NULL;
			if (sl[i].rec && sl[i].g && meta_differs(&sl[i], labels, refs))
				sl[i].changed = true;
		}
		/* No endpoints at all: one empty slice stays, saying the Service has none. */
		if (!live) {
			struct slice *keep = NULL;
			placeholder.ports = json_array();
			if (!placeholder.ports) {
				err = -ENOMEM;
				goto out;
			}
			for (size_t i = 0; i < nsl && !keep; i++)
				if (sl[i].rec && same_str(json_string_value(json_object_get(
								  sl[i].obj, "addressType")),
							  "IPv4"))
					keep = &sl[i];
			if (!keep) {
				struct slice *more = realloc(sl, (nsl + 1) * sizeof(*sl));
				if (!more) {
					err = -ENOMEM;
					goto out;
				}
				sl = more;
				keep = &sl[nsl++];
				memset(keep, 0, sizeof(*keep));
				keep->eps = json_array();
			}
			keep->g = &placeholder;
			keep->changed = !keep->rec ||
					json_array_size(json_object_get(keep->obj, "endpoints")) ||
					meta_differs(keep, labels, refs);
		}
		err = write_slices(c, svc, sl, nsl, labels, refs);
	}
	int e2 = sync_endpoints(c, svc, obj, gs, ng, headless);
	if (!err)
		err = e2;
out:
	for (size_t i = 0; i < nsl; i++) {
		json_decref(sl[i].obj);
		json_decref(sl[i].eps);
	}
	free(sl);
	json_decref(placeholder.ports);
	ctrl_objs_free(&existing);
	for (size_t i = 0; i < ng; i++)
		group_free(gs[i]);
	free(gs);
	json_decref(labels);
	json_decref(refs);
	json_decref(obj);
	ctrl_obj_unref(svc);
	return err;
}

const struct ctrl_def ctrl_endpointslice = {
	.name = "endpointslice",
	.workers = 2,
	.init = eps_init,
	.reconcile = eps_reconcile,
	.fini = eps_fini,
};
