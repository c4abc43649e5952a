// SPDX-License-Identifier: Apache-2.0
/*
 * The federation controller, run by `shoald --federation` through the controller framework
 * (controlplane/ctrl.h): informers on Cluster, FederatedDeployment and FederatedService, one
 * work queue whose keys say which part reconciles them ("c:NAME" probes a cluster,
 * fed_cluster.c; "d:NS/NAME" places and syncs a FederatedDeployment, fed_sync.c;
 * "s:NS/NAME" serves and publishes a FederatedService, fed_service.c), and the member
 * informers' events (fed_cluster.c) feeding the same queue.
 *
 * The design choice: one queue for both kinds, so that a Cluster whose health or capacity
 * changed re-queues every FederatedDeployment on the same workers that probe, and a
 * FederatedDeployment is never placed by two workers at once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_kinds.h"
#include "ctrl.h"
#include "fed_int.h"
#include "log.h"

void fed_queue_fd(struct fed *f, const char *key)
{
	char k[600];
	if (snprintf(k, sizeof(k), "d:%s", key) < (int)sizeof(k))
		ctrl_queue(f->c, k);
}

void fed_queue_cluster_after(struct fed *f, const char *name, int64_t ms)
{
	char k[300];
	if (snprintf(k, sizeof(k), "c:%s", name) < (int)sizeof(k))
		ctrl_queue_after(f->c, k, ms);
}

void fed_queue_all_fds(struct fed *f)
{
	struct ctrl_objs l = { 0 };
	if (ctrl_list(f->fds, NULL, &l)) {
		log_warn("federation: list federated deployments: out of memory");
		ctrl_objs_free(&l);
		return;
	}
	for (size_t i = 0; i < l.n; i++)
		fed_queue_fd(f, l.v[i]->key);
	ctrl_objs_free(&l);
	struct ctrl_objs s = { 0 };
	if (ctrl_list(f->fss, NULL, &s))
		log_warn("federation: list federated services: out of memory");
	for (size_t i = 0; i < s.n; i++) {
		char k[600];
		if (snprintf(k, sizeof(k), "s:%s", s.v[i]->key) < (int)sizeof(k))
			ctrl_queue(f->c, k);
	}
	ctrl_objs_free(&s);
}

/* What placement reads of a Cluster: its labels and its status. */
static bool cluster_moved(const struct ctrl_obj *now, const struct ctrl_obj *old)
{
	json_t *a = ctrl_obj_json(now), *b = ctrl_obj_json(old);
	bool moved = true;
	if (a && b) {
		const json_t *la = json_object_get(json_object_get(a, "metadata"), "labels");
		const json_t *lb = json_object_get(json_object_get(b, "metadata"), "labels");
		moved = !json_equal(json_object_get(a, "status"), json_object_get(b, "status")) ||
			!((!la && !lb) || (la && lb && json_equal(la, lb)));
	}
	json_decref(a);
	json_decref(b);
	return moved;
}

static void on_cluster(struct ctrl *c, enum ctrl_event ev, const struct ctrl_obj *now,
		       const struct ctrl_obj *old)
{
	struct fed *f = ctrl_priv(c);
	char k[300];
	/* probes run on their own schedule: the controller's status writes queue nothing */
	if ((ev != CTRL_MODIFIED || !old || now->generation != old->generation ||
	     now->deleting != old->deleting) &&
	    snprintf(k, sizeof(k), "c:%s", now->key) < (int)sizeof(k))
		ctrl_queue(c, k);
	if (ev != CTRL_MODIFIED || !old || cluster_moved(now, old))
		fed_queue_all_fds(f);
}

static void on_fd(struct ctrl *c, enum ctrl_event ev, const struct ctrl_obj *now,
		  const struct ctrl_obj *old)
{
	/* The controller's own status writes need no reconcile: the spec did not move. */
	if (ev == CTRL_MODIFIED && old && now->generation == old->generation &&
	    now->deleting == old->deleting &&
	    json_equal(ctrl_obj_labels(now) ?: json_null(), ctrl_obj_labels(old) ?: json_null()))
		return;
	fed_queue_fd(ctrl_priv(c), now->key);
}

static void on_fs(struct ctrl *c, enum ctrl_event ev, const struct ctrl_obj *now,
		  const struct ctrl_obj *old)
{
	if (ev == CTRL_MODIFIED && old && now->generation == old->generation &&
	    now->deleting == old->deleting)
		return;
	char k[600];
	if (snprintf(k, sizeof(k), "s:%s", now->key) < (int)sizeof(k))
		ctrl_queue(c, k);
}

static int fed_init(struct ctrl *c)
{
	struct fed *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	pthread_mutex_init(&f->mu, NULL);
	ctrl_set_priv(c, f);
	f->c = c;
	const struct ctrl_config *cc = ctrl_config(c);
	f->defaults = (struct fed_config){ .id = "shoal",
					   .probe_interval_ms = 10000,
					   .grace_ms = 60000,
					   .member_timeout_ms = 5000 };
	if (cc && cc->fed) {
		const struct fed_config *g = cc->fed;
		if (g->id && *g->id)
			f->defaults.id = g->id;
		if (g->probe_interval_ms > 0)
			f->defaults.probe_interval_ms = g->probe_interval_ms;
		if (g->grace_ms > 0)
			f->defaults.grace_ms = g->grace_ms;
		if (g->member_timeout_ms > 0)
			f->defaults.member_timeout_ms = g->member_timeout_ms;
		f->defaults.credentials_dir = g->credentials_dir;
	}
	f->cfg = &f->defaults;
	snprintf(f->managed_sel, sizeof(f->managed_sel), "%s=%s", FED_LABEL_MANAGED_BY, f->cfg->id);
	f->clusters = ctrl_informer(c, "federation.shoal.io/v1", "Cluster", 0);
	f->fds = ctrl_informer(c, "federation.shoal.io/v1", "FederatedDeployment", 0);
	f->fss = ctrl_informer(c, "federation.shoal.io/v1", "FederatedService", 0);
	f->cluster_kind = api_kind_by_kind("federation.shoal.io/v1", "Cluster");
	f->fd_kind = api_kind_by_kind("federation.shoal.io/v1", "FederatedDeployment");
	if (!f->clusters || !f->fds || !f->fss || !f->cluster_kind || !f->fd_kind)
		return -EINVAL;
	if (ctrl_on(c, f->clusters, on_cluster) || ctrl_on(c, f->fds, on_fd) ||
	    ctrl_on(c, f->fss, on_fs))
		return -E2BIG;
	log_info("federation %s: probing members every %lldms, grace period %lldms, member "
		 "requests time out after %lldms",
		 f->cfg->id, (long long)f->cfg->probe_interval_ms, (long long)f->cfg->grace_ms,
		 (long long)f->cfg->member_timeout_ms);
	return 0;
}

static int fed_reconcile(struct ctrl *c, const char *key)
{
	struct fed *f = ctrl_priv(c);
	if (strncmp(key, "c:", 2) == 0)
		return fed_cluster_reconcile(f, key + 2);
	if (strncmp(key, "d:", 2) == 0)
		return fed_sync_reconcile(f, key + 2);
	if (strncmp(key, "s:", 2) == 0)
		return fed_service_reconcile(f, key + 2);
	log_warn("federation: unknown key \"%s\"", key);
	return 0;
}

static void fed_fini(struct ctrl *c)
{
	struct fed *f = ctrl_priv(c);
	if (!f)
		return;
	fed_members_free(f);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

const struct ctrl_def fed_controller = {
	.name = "federation",
	.workers = 8,
	.init = fed_init,
	.reconcile = fed_reconcile,
	.fini = fed_fini,
};
