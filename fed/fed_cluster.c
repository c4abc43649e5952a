// SPDX-License-Identifier: Apache-2.0
/*
 * Member clusters: the client pool and the informer of each member, the probe, and the
 * Cluster's status.
 *
 * A probe is GET /readyz, then GET /api/v1/nodes (allocatable and the usage the agents
 * report), every --cluster-probe-interval. Ready follows the last probe; Offline turns True
 * once the last good probe is older than --cluster-grace-period (counted from the last good
 * probe, not from the first bad one, so a failover takes the grace period plus one sync, not
 * a probe interval more), and back to False on the first good probe. The design choice:
 * status is written only when something a reader acts on changed (conditions, node counts,
 * capacity), never just because a probe ran, so a healthy federation writes nothing in
 * steady state and every Cluster event is worth re-placing FederatedDeployments for.
 *
 * Deletion (Karmada's semantics): every Cluster carries the finalizer FED_FINALIZER. A
 * deleted Cluster is excluded from every placement at once (its addresses are withdrawn from
 * the other members), and this reconcile deletes from the member everything labelled as
 * managed by this federation (Deployments, Services, EndpointSlices), then removes the
 * finalizer (unless another Cluster names the same apiEndpoint: what is there is that
 * Cluster's as well, and stays). A member that cannot be reached is tried again every probe interval until the
 * grace period (--cluster-grace-period, counted from the deletion) is over; then the
 * federation gives up, says so in the log and in a Warning Event, and lets the Cluster go.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api_kinds.h"
#include "ctrl.h"
#include "errors.h"
#include "fed_int.h"
#include "httpc.h"
#include "informer.h"
#include "log.h"
#include "quantity.h"

#define FED_MEMBER_EVENT_DELAY_MS 200
/* The manager label of the slices a member's EndpointSlice controller writes. */
#define FED_MEMBER_SLICE_MANAGER "endpointslice-controller.shoal.io"

int64_t fed_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* ---- members ----------------------------------------------------------------------------- */

static void member_free(struct fed_member *m)
{
	if (!m)
		return;
	informer_stop(m->slices);
	informer_stop(m->inf);
	for (size_t i = 0; i < m->npool; i++)
		httpc_free(m->pool[i]);
	free(m->pool);
	pthread_mutex_destroy(&m->mu);
	free(m->name);
	free(m->config);
	free(m->endpoint);
	free(m->token);
	free(m->ca_file);
	free(m);
}

void fed_member_put(struct fed_member *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->f->mu);
	bool last = --m->refcnt == 0;
	pthread_mutex_unlock(&m->f->mu);
	if (last)
		member_free(m);
}

struct fed_member *fed_member_get(struct fed *f, const char *name)
{
	struct fed_member *m = NULL;
	pthread_mutex_lock(&f->mu);
	for (size_t i = 0; i < f->nmembers; i++)
		if (strcmp(f->members[i]->name, name) == 0) {
			m = f->members[i];
			m->refcnt++;
			break;
		}
	pthread_mutex_unlock(&f->mu);
	return m;
}

/* Removes name's member from the table (its last user frees it). */
static void member_remove(struct fed *f, const char *name)
{
	struct fed_member *m = NULL;
	pthread_mutex_lock(&f->mu);
	for (size_t i = 0; i < f->nmembers; i++)
		if (strcmp(f->members[i]->name, name) == 0) {
			m = f->members[i];
			f->members[i] = f->members[--f->nmembers];
			break;
		}
	pthread_mutex_unlock(&f->mu);
	fed_member_put(m);
}

void fed_members_free(struct fed *f)
{
	for (size_t i = 0; i < f->nmembers; i++)
		fed_member_put(f->members[i]);
	free(f->members);
	f->members = NULL;
	f->nmembers = f->cap = 0;
}

/* What the federation reads of a member Deployment: a change elsewhere (conditions,
 * observedGeneration, ...) needs no reconcile. */
static bool member_moved(const json_t *now, const json_t *old)
{
	static const char *const st[] = { "replicas", "readyReplicas", "availableReplicas",
					  "updatedReplicas" };
	if (!old)
		return true;
	const json_t *a = json_object_get(now, "status"), *b = json_object_get(old, "status");
	for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++)
		if (json_integer_value(json_object_get(a, st[i])) !=
		    json_integer_value(json_object_get(b, st[i])))
			return true;
	const json_t *ma = json_object_get(now, "metadata"), *mb = json_object_get(old, "metadata");
	const char *ha = json_string_value(
		json_object_get(json_object_get(ma, "annotations"), FED_ANN_HASH));
	const char *hb = json_string_value(
		json_object_get(json_object_get(mb, "annotations"), FED_ANN_HASH));
	return json_integer_value(json_object_get(json_object_get(now, "spec"), "replicas")) !=
		       json_integer_value(
			       json_object_get(json_object_get(old, "spec"), "replicas")) ||
	       !ha != !hb || (ha && strcmp(ha, hb)) ||
	       !json_equal(json_object_get(ma, "uid") ?: json_null(),
			   json_object_get(mb, "uid") ?: json_null());
}

/* A member Deployment changed: its FederatedDeployment has the same namespace and name. The
 * key waits a moment, so that the burst of status updates a member writes while it rolls
 * out costs one reconcile and one status write, not one each. */
static void on_member_event(void *arg, enum informer_event type, json_t *obj, json_t *old)
{
	struct fed_member *m = arg;
	if (type == INF_MODIFIED && !member_moved(obj, old))
		return;
	const json_t *meta = json_object_get(obj, "metadata");
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	const char *name = json_string_value(json_object_get(meta, "name"));
	if (!ns || !name)
		return;
	char key[600];
	snprintf(key, sizeof(key), "d:%s/%s", ns, name);
	ctrl_queue_after(m->f->c, key, FED_MEMBER_EVENT_DELAY_MS);
}

/* A member EndpointSlice of its own pods changed: the FederatedService of its Service (if
 * there is one) publishes the member only while it has ready endpoints. Only a change of
 * the endpoints or their readiness matters; the delay coalesces a rollout's burst. */
static void on_member_slice(void *arg, enum informer_event type, json_t *obj, json_t *old)
{
	struct fed_member *m = arg;
	if (type == INF_MODIFIED && json_equal(json_object_get(obj, "endpoints") ?: json_null(),
					       json_object_get(old, "endpoints") ?: json_null()))
		return;
	const json_t *meta = json_object_get(obj, "metadata");
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	const char *svc = json_string_value(
		json_object_get(json_object_get(meta, "labels"), "kubernetes.io/service-name"));
	if (!ns || !svc)
		return;
	char key[600];
	snprintf(key, sizeof(key), "%s/%s", ns, svc);
	struct ctrl_obj *fs = ctrl_get(m->f->fss, key);
	if (!fs)
		return;
	ctrl_obj_unref(fs);
	snprintf(key, sizeof(key), "s:%s/%s", ns, svc);
	ctrl_queue_after(m->f->c, key, FED_MEMBER_EVENT_DELAY_MS);
}

/* The member's watch broke: it answered until now. Probe it at once rather than at the next
 * interval, so that a member that stopped is seen at once and is Offline one grace period
 * after it stopped. */
static void on_member_error(void *arg, int err)
{
	struct fed_member *m = arg;
	if (!m->ready)
		return; /* known already: the probes follow their schedule */
	log_info("federation: cluster %s: its watch failed (%s): probing it", m->name,
		 shoal_strerror(err));
	int64_t now = fed_mono_ms();
	if (now > atomic_load(&m->last_ok_ms))
		atomic_store(&m->last_ok_ms, now);
	fed_queue_cluster_after(m->f, m->name, 0);
}

/* After a (re)list: every object the member holds for the federation is looked at once, so
 * one whose FederatedDeployment is gone is found and deleted. */
static void on_member_synced(void *arg)
{
	struct fed_member *m = arg;
	json_t **objs = NULL;
	size_t n = 0;
	/* the informer may sync before informer_start() returned: m->inf is set under m->mu */
	pthread_mutex_lock(&m->mu);
	struct informer *inf = m->inf;
	pthread_mutex_unlock(&m->mu);
	if (!inf || informer_list(inf, &objs, &n)) {
		log_warn("federation: cluster %s: list its cache: out of memory", m->name);
		return;
	}
	for (size_t i = 0; i < n; i++)
		on_member_event(m, INF_ADDED, objs[i], NULL);
	informer_list_free(objs, n);
	log_info("federation: cluster %s: watching its %zu managed deployments", m->name, n);
}

/*
 * The file spec.tokenFile names, resolved (symlinks, "..") into out; a bare name is a file of
 * the credentials directory. -ENOENT and friends when it cannot be resolved (msg says so),
 * -EPERM when it is not inside the credentials directory.
 */
static int token_path(const struct fed *f, const char *tf, char *out, size_t outlen, char *msg,
		      size_t msglen)
{
	const char *dir = f->cfg->credentials_dir;
	char rdir[PATH_MAX], joined[PATH_MAX], *r;

	if (!dir) {
		snprintf(msg, msglen,
			 "spec.tokenFile: %.300s: this federation reads no token files (it has no "
			 "--cluster-credentials-dir)",
			 tf);
		return -EPERM;
	}
	if (!realpath(dir, rdir)) {
		snprintf(msg, msglen, "spec.tokenFile: the credentials directory %.300s: %s", dir,
			 strerror(errno));
		return -errno;
	}
	if (tf[0] == '/')
		snprintf(joined, sizeof(joined), "%s", tf);
	else if (snprintf(joined, sizeof(joined), "%s/%s", rdir, tf) >= (int)sizeof(joined))
		return -ENAMETOOLONG;
	r = realpath(joined, NULL);
	if (!r) {
		int err = -errno;
		snprintf(msg, msglen, "spec.tokenFile: %.300s: %s", joined, strerror(-err));
		return err;
	}
	size_t dl = strlen(rdir);
	bool inside = !strncmp(r, rdir, dl) && (r[dl] == '/' || !strcmp(rdir, "/"));
	if (!inside || strlen(r) >= outlen) {
		snprintf(msg, msglen,
			 "spec.tokenFile: %.200s%s%.200s is outside the credentials directory "
			 "%.200s "
			 "(--cluster-credentials-dir): refused",
			 tf, strcmp(tf, r) ? ", resolved to " : "", strcmp(tf, r) ? r : "", rdir);
		free(r);
		return -EPERM;
	}
	snprintf(out, outlen, "%s", r);
	free(r);
	return 0;
}

static char *read_token(const char *path, char *msg, size_t msglen)
{
	/* resolved already: a symlink put in its place since is not followed */
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	FILE *fp = fd >= 0 ? fdopen(fd, "r") : NULL;
	if (!fp) {
		snprintf(msg, msglen, "spec.tokenFile: open %.300s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	char buf[4096];
	size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
	int rerr = ferror(fp);
	fclose(fp);
	if (rerr) {
		snprintf(msg, msglen, "spec.tokenFile: read %.300s: I/O error", path);
		return NULL;
	}
	buf[n] = 0;
	buf[strcspn(buf, "\r\n")] = 0;
	/* A static token file line ("token,user,group") holds the token first. */
	buf[strcspn(buf, ",")] = 0;
	if (!buf[0]) {
		snprintf(msg, msglen, "spec.tokenFile: %.300s holds no token", path);
		return NULL;
	}
	char *t = strdup(buf);
	if (!t)
		snprintf(msg, msglen, "out of memory");
	return t;
}

/*
 * The member for cluster name built from spec, replacing one built from another spec.
 * Returns it referenced, or NULL with msg saying what in the spec is wrong (the reason
 * goes to *reason).
 */
static struct fed_member *member_for(struct fed *f, const char *name, const json_t *spec,
				     const char **reason, char *msg, size_t msglen)
{
	const char *ep = json_string_value(json_object_get(spec, "apiEndpoint"));
	const char *tf = json_string_value(json_object_get(spec, "tokenFile"));
	const char *ca = json_string_value(json_object_get(spec, "caFile"));
	bool insecure = json_is_true(json_object_get(spec, "insecureSkipTLSVerify"));
	char *token = NULL, *config = NULL;
	struct fed_member *m = NULL;

	*reason = "InvalidSpec";
	if (!ep) {
		snprintf(msg, msglen, "spec.apiEndpoint: Required value");
		return NULL;
	}
	if (tf) {
		char path[PATH_MAX];
		int err = token_path(f, tf, path, sizeof(path), msg, msglen);
		if (err == -EPERM) {
			*reason = "InvalidSpec";
			return NULL;
		}
		token = err ? NULL : read_token(path, msg, msglen);
		if (!token) {
			*reason = "CredentialsUnreadable";
			return NULL;
		}
	}
	if (asprintf(&config, "%s|%s|%s|%d", ep, token ? token : "", ca ? ca : "", insecure) < 0) {
		config = NULL;
		goto nomem;
	}
	m = fed_member_get(f, name);
	if (m && strcmp(m->config, config) == 0) {
		free(token);
		free(config);
		return m;
	}
	if (m) {
		log_info("federation: cluster %s: its spec changed, reconnecting", name);
		fed_member_put(m);
		member_remove(f, name);
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		goto nomem;
	pthread_mutex_init(&m->mu, NULL);
	m->refcnt = 1;
	m->f = f;
	m->name = strdup(name);
	m->endpoint = strdup(ep);
	m->ca_file = ca ? strdup(ca) : NULL;
	m->insecure = insecure;
	m->token = token;
	m->config = config;
	token = config = NULL;
	m->last_ok_ms = fed_mono_ms();
	if (!m->name || !m->endpoint || (ca && !m->ca_file))
		goto nomem;
	/* A probe of a fresh client tells whether the endpoint parses at all. */
	struct httpc *h = httpc_new(m->endpoint, m->token);
	if (!h) {
		*reason = "InvalidSpec";
		snprintf(msg, msglen, "spec.apiEndpoint: \"%s\": %s", ep,
			 errno == EINVAL ? "not a server address this client can use"
					 : strerror(errno));
		member_free(m);
		return NULL;
	}
	httpc_free(h);
	struct informer_opts io = {
		.server = m->endpoint,
		.token = m->token,
		.ca_file = m->ca_file,
		.insecure = m->insecure,
		.path = "/apis/apps/v1/deployments",
		.label_selector = f->managed_sel,
		.on_event = on_member_event,
		.on_synced = on_member_synced,
		.on_error = on_member_error,
		.arg = m,
	};
	pthread_mutex_lock(&m->mu);
	m->inf = informer_start(&io);
	pthread_mutex_unlock(&m->mu);
	if (!m->inf) {
		snprintf(msg, msglen, "watch the member's deployments: %s", strerror(errno));
		*reason = "InvalidSpec";
		member_free(m);
		return NULL;
	}
	struct informer_opts so = io;
	so.path = "/apis/discovery.k8s.io/v1/endpointslices";
	so.label_selector = "endpointslice.kubernetes.io/managed-by=" FED_MEMBER_SLICE_MANAGER;
	so.on_event = on_member_slice;
	so.on_synced = NULL;
	so.on_error = NULL; /* the deployments' watch tells when the member stops answering */
	m->slices = informer_start(&so);
	if (!m->slices) {
		snprintf(msg, msglen, "watch the member's endpoint slices: %s", strerror(errno));
		*reason = "InvalidSpec";
		member_free(m);
		return NULL;
	}
	pthread_mutex_lock(&f->mu);
	if (f->nmembers == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 8;
		struct fed_member **v = realloc(f->members, cap * sizeof(*v));
		if (!v) {
			pthread_mutex_unlock(&f->mu);
			goto nomem;
		}
		f->members = v;
		f->cap = cap;
	}
	f->members[f->nmembers++] = m;
	m->refcnt++; /* the table's */
	pthread_mutex_unlock(&f->mu);
	return m;
nomem:
	free(token);
	free(config);
	member_free(m);
	*reason = "InternalError";
	snprintf(msg, msglen, "out of memory");
	return NULL;
}

static struct httpc *pool_take(struct fed_member *m)
{
	struct httpc *h = NULL;
	pthread_mutex_lock(&m->mu);
	if (m->npool)
		h = m->pool[--m->npool];
	pthread_mutex_unlock(&m->mu);
	if (h)
		return h;
	h = httpc_new(m->endpoint, m->token);
	if (!h)
		return NULL;
	if (m->ca_file || m->insecure)
		httpc_set_tls(h, m->ca_file, m->insecure);
	httpc_set_timeout(h, m->f->cfg->member_timeout_ms);
	return h;
}

static void pool_give(struct fed_member *m, struct httpc *h)
{
	pthread_mutex_lock(&m->mu);
	if (m->npool == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 8;
		struct httpc **v = realloc(m->pool, cap * sizeof(*v));
		if (!v) {
			pthread_mutex_unlock(&m->mu);
			httpc_free(h);
			return;
		}
		m->pool = v;
		m->cap = cap;
	}
	m->pool[m->npool++] = h;
	pthread_mutex_unlock(&m->mu);
}

int fed_member_do(struct fed_member *m, const char *method, const char *path, const json_t *body,
		  json_t **out, char *msg, size_t msglen)
{
	struct httpc_resp resp = { 0 };
	char *text = NULL;
	int err;

	if (out)
		*out = NULL;
	if (msg && msglen)
		msg[0] = 0;
	struct httpc *h = pool_take(m);
	if (!h) {
		err = errno ? -errno : -ENOMEM;
		snprintf(msg, msglen, "client for %s: %s", m->endpoint, strerror(-err));
		return err;
	}
	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		if (!text) {
			pool_give(m, h);
			snprintf(msg, msglen, "out of memory");
			return -ENOMEM;
		}
	}
	const char *ctype = strcmp(method, "PATCH") == 0 ? "application/merge-patch+json" : NULL;
	err = httpc_request(h, method, path, text, text ? strlen(text) : 0, ctype, &resp);
	free(text);
	if (err) {
		snprintf(msg, msglen, "%s %s: %s", method, path, httpc_error(h));
		/* a client whose connection broke is not reused */
		httpc_free(h);
		return err;
	}
	pool_give(m, h);
	json_t *j = resp.body ? json_loadb(resp.body, resp.len, 0, NULL) : NULL;
	if (resp.code >= 200 && resp.code < 300) {
		if (out)
			*out = j;
		else
			json_decref(j);
		httpc_resp_free(&resp);
		return 0;
	}
	const char *reason = json_string_value(json_object_get(j, "reason"));
	const char *m2 = json_string_value(json_object_get(j, "message"));
	long code = resp.code;
	err = code == 404						  ? -ENOENT
	      : code == 409 && reason && !strcmp(reason, "AlreadyExists") ? -EEXIST
	      : code == 409						  ? -ECONFLICT
	      : code == 401 || code == 403				  ? -EACCES
	      : code == 400 || code == 422				  ? -EINVAL
	      : code == 429						  ? -EAGAIN
									  : -EIO;
	snprintf(msg, msglen, "%s %s: %ld %s", method, path, code,
		 m2 ? m2 : (resp.body && resp.len < 200 ? resp.body : ""));
	json_decref(j);
	httpc_resp_free(&resp);
	return err;
}

/* ---- probe ------------------------------------------------------------------------------- */

struct probe {
	bool ok;
	const char *reason;
	char msg[512];
	int64_t nodes, ready_nodes;
	int64_t alloc_cpu_m, alloc_mem_m, alloc_pods, use_cpu_m, use_mem_m;
};

static int64_t qty(const json_t *o, const char *key)
{
	int64_t v = 0;
	const json_t *q = json_object_get(o, key);
	if (json_is_string(q)) {
		if (quantity_parse_milli(json_string_value(q), &v))
			return 0;
	} else if (json_is_integer(q)) {
		v = json_integer_value(q) * 1000;
	}
	return v;
}

static bool node_ready(const json_t *node)
{
	size_t i;
	json_t *c;
	json_array_foreach (json_object_get(json_object_get(node, "status"), "conditions"), i, c) {
		const char *t = json_string_value(json_object_get(c, "type"));
		if (t && !strcmp(t, "Ready"))
			return !strcmp(json_string_value(json_object_get(c, "status")) ?: "",
				       "True");
	}
	return false;
}

static void probe(struct fed_member *m, struct probe *p)
{
	json_t *nodes = NULL;
	int err = fed_member_do(m, "GET", "/readyz", NULL, NULL, p->msg, sizeof(p->msg));
	if (err == -EACCES) {
		p->reason = "Unauthorized";
		return;
	}
	if (err) {
		p->reason = "ProbeFailed";
		return;
	}
	err = fed_member_do(m, "GET", "/api/v1/nodes", NULL, &nodes, p->msg, sizeof(p->msg));
	if (err) {
		p->reason = err == -EACCES ? "Unauthorized" : "ProbeFailed";
		return;
	}
	size_t i;
	json_t *n;
	json_array_foreach (json_object_get(nodes, "items"), i, n) {
		const json_t *st = json_object_get(n, "status");
		p->nodes++;
		if (!node_ready(n))
			continue;
		if (json_is_true(json_object_get(json_object_get(n, "spec"), "unschedulable")))
			continue;
		p->ready_nodes++;
		const json_t *a = json_object_get(st, "allocatable");
		const json_t *u = json_object_get(st, "usage");
		p->alloc_cpu_m += qty(a, "cpu");
		p->alloc_mem_m += qty(a, "memory");
		p->alloc_pods += qty(a, "pods") / 1000;
		p->use_cpu_m += qty(u, "cpu");
		p->use_mem_m += qty(u, "memory");
	}
	json_decref(nodes);
	p->ok = true;
	p->reason = "ProbeSucceeded";
	snprintf(p->msg, sizeof(p->msg), "/readyz answered; %" PRId64 " of %" PRId64 " nodes ready",
		 p->ready_nodes, p->nodes);
}

/* ---- status ------------------------------------------------------------------------------ */

static const json_t *find_cond(const json_t *obj, const char *type)
{
	size_t i;
	json_t *c;
	json_array_foreach (json_object_get(json_object_get(obj, "status"), "conditions"), i, c) {
		const char *t = json_string_value(json_object_get(c, "type"));
		if (t && strcmp(t, type) == 0)
			return c;
	}
	return NULL;
}

static bool cond_true(const json_t *obj, const char *type)
{
	const json_t *c = find_cond(obj, type);
	return c && !strcmp(json_string_value(json_object_get(c, "status")) ?: "", "True");
}

bool fed_cluster_ready(const json_t *cluster)
{
	return cond_true(cluster, "Ready");
}

bool fed_cluster_offline(const json_t *cluster)
{
	return cond_true(cluster, "Offline");
}

json_t *fed_condition(const json_t *obj, const char *type, bool status, const char *reason,
		      const char *msg, const char *now)
{
	const json_t *old = find_cond(obj, type);
	const char *st = status ? "True" : "False";
	const char *since = now;
	if (old && !strcmp(json_string_value(json_object_get(old, "status")) ?: "", st) &&
	    json_string_value(json_object_get(old, "lastTransitionTime")))
		since = json_string_value(json_object_get(old, "lastTransitionTime"));
	return json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", type, "status", st, "reason", reason,
			 "message", msg, "lastTransitionTime", since);
}

static json_t *amounts(int64_t cpu_m, int64_t mem_m, int64_t pods)
{
	char c[64], m[64], p[64];
	quantity_format(cpu_m < 0 ? 0 : cpu_m, c, sizeof(c));
	quantity_format(mem_m < 0 ? 0 : mem_m, m, sizeof(m));
	/* as the API stores a quantity: a string, so that an unchanged status compares equal */
	quantity_format(pods < 0 ? 0 : pods * 1000, p, sizeof(p));
	return json_pack("{s:s, s:s, s:s}", "cpu", c, "memory", m, "pods", p);
}

/* Two statuses differ in what a reader acts on (timestamps aside). */
static bool status_differs(const json_t *a, const json_t *b)
{
	json_t *x = json_deep_copy(a), *y = json_deep_copy(b);
	bool differs = true;
	if (!x || !y)
		goto out;
	json_object_del(x, "lastProbeTime");
	json_object_del(y, "lastProbeTime");
	differs = !json_equal(x, y);
out:
	json_decref(x);
	json_decref(y);
	return differs;
}

int fed_status_write(struct fed *f, const struct api_kind *k, const char *ns, const char *name,
		     const json_t *st, char *msg, size_t msglen)
{
	char path[1200];
	json_t *patch = k ? json_pack("{s:O}", "status", st) : NULL;
	int err = patch ? ctrl_path(k, ns, name, "status", path, sizeof(path)) : -ENOMEM;
	if (!err)
		err = ctrl_write(f->c, "PATCH", path, patch, NULL, msg, msglen);
	json_decref(patch);
	return err == -ENOENT ? 0 : err; /* deleted meanwhile: its deletion is queued */
}

static int write_status(struct fed *f, const struct ctrl_obj *co, const json_t *obj, json_t *st)
{
	char msg[256] = "";
	int err = 0;
	if (status_differs(json_object_get(obj, "status"), st))
		err = fed_status_write(f, f->cluster_kind, NULL, co->o->name, st, msg, sizeof(msg));
	if (err)
		log_warn("federation: cluster %s: write status: %s", co->o->name,
			 msg[0] ? msg : strerror(-err));
	json_decref(st);
	return err;
}

#define FED_FINALIZER "federation.shoal.io/member-cleanup"

static bool has_finalizer(const json_t *obj)
{
	size_t i;
	json_t *v;
	json_array_foreach (json_object_get(json_object_get(obj, "metadata"), "finalizers"), i, v)
		if (!strcmp(json_string_value(v) ?: "", FED_FINALIZER))
			return true;
	return false;
}

/* Adds (on) or removes the federation's finalizer, keeping any other. */
static int set_finalizer(struct fed *f, const char *name, const json_t *obj, bool on)
{
	char path[400], msg[512];
	json_t *fins = json_array(), *patch = NULL;
	size_t i;
	json_t *v;
	int err;

	if (!fins)
		return -ENOMEM;
	json_array_foreach (json_object_get(json_object_get(obj, "metadata"), "finalizers"), i, v)
		if (strcmp(json_string_value(v) ?: "", FED_FINALIZER))
			json_array_append(fins, v);
	if (on)
		json_array_append_new(fins, json_string(FED_FINALIZER));
	patch = json_pack("{s:{s:o, s:O}}", "metadata", "finalizers", fins, "resourceVersion",
			  json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
	err = patch ? ctrl_path(f->cluster_kind, NULL, name, NULL, path, sizeof(path)) : -ENOMEM;
	if (!err)
		err = ctrl_write(f->c, "PATCH", path, patch, NULL, msg, sizeof(msg));
	json_decref(patch);
	if (err && err != -ENOENT && err != -ECONFLICT)
		log_warn("federation: cluster %s: %s the finalizer %s: %s", name,
			 on ? "add" : "remove", FED_FINALIZER, msg);
	return err == -ENOENT ? 0 : err;
}

/*
 * Deletes from member m what this federation made there (labelled managed-by=<id>). Returns
 * the number of objects it deleted (0: nothing was left), or a negative errno when the
 * member could not be asked or refused (msg says why).
 */
static int member_cleanup(struct fed *f, struct fed_member *m, char *msg, size_t msglen)
{
	static const char *const kinds[][2] = {
		{ "/apis/apps/v1/deployments", "/apis/apps/v1/namespaces/%s/deployments/%s" },
		{ "/api/v1/services", "/api/v1/namespaces/%s/services/%s" },
		{ "/apis/discovery.k8s.io/v1/endpointslices",
		  "/apis/discovery.k8s.io/v1/namespaces/%s/endpointslices/%s" },
	};
	int deleted = 0;

	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		char path[800];
		json_t *list = NULL, *it;
		size_t i;
		snprintf(path, sizeof(path),
			 "%s?labelSelector=federation.shoal.io%%2Fmanaged-by%%3D%s", kinds[k][0],
			 f->cfg->id);
		int err = fed_member_do(m, "GET", path, NULL, &list, msg, msglen);
		if (err)
			return err;
		json_array_foreach (json_object_get(list, "items"), i, it) {
			const json_t *meta = json_object_get(it, "metadata");
			snprintf(path, sizeof(path), kinds[k][1],
				 json_string_value(json_object_get(meta, "namespace")) ?: "",
				 json_string_value(json_object_get(meta, "name")) ?: "");
			err = fed_member_do(m, "DELETE", path, NULL, NULL, msg, msglen);
			if (err && err != -ENOENT) {
				json_decref(list);
				return err;
			}
			deleted++;
		}
		json_decref(list);
	}
	return deleted;
}

/* The name of another Cluster, not being deleted, with the same spec.apiEndpoint as obj's
 * (its member is that Cluster's too), into out; false when there is none. */
static bool endpoint_shared(struct fed *f, const char *name, const json_t *obj, char *out,
			    size_t outlen)
{
	const char *ep =
		json_string_value(json_object_get(json_object_get(obj, "spec"), "apiEndpoint"));
	struct ctrl_objs l = { 0 };
	bool shared = false;

	if (!ep || ctrl_list(f->clusters, NULL, &l))
		goto out;
	for (size_t i = 0; i < l.n && !shared; i++) {
		if (l.v[i]->deleting || !strcmp(l.v[i]->o->name, name))
			continue;
		json_t *o = ctrl_obj_json(l.v[i]);
		const char *oep = json_string_value(
			json_object_get(json_object_get(o, "spec"), "apiEndpoint"));
		if (oep && !strcmp(oep, ep)) {
			shared = true;
			snprintf(out, outlen, "%s", l.v[i]->o->name);
		}
		json_decref(o);
	}
out:
	ctrl_objs_free(&l);
	return shared;
}

/* A deleted Cluster: clean its member up, then let it go (see the top). */
static int cluster_deleting(struct fed *f, const struct ctrl_obj *co, const json_t *obj)
{
	const char *name = co->o->name, *reason = NULL;
	char msg[512] = "";
	int left, err;

	if (!has_finalizer(obj)) {
		member_remove(f, name);
		return 0;
	}
	/* the others stop being sent there; its FederatedDeployments' replicas move */
	fed_queue_all_fds(f);
	char other[256];
	if (endpoint_shared(f, name, obj, other, sizeof(other))) {
		/* what the federation made there is the other Cluster's as much as this one's */
		log_info("federation: cluster %s deleted: its member is cluster %s's too; its "
			 "objects stay",
			 name, other);
		err = set_finalizer(f, name, obj, false);
		if (!err)
			member_remove(f, name);
		return err;
	}
	struct fed_member *m =
		member_for(f, name, json_object_get(obj, "spec"), &reason, msg, sizeof(msg));
	bool asked = m != NULL;
	left = m ? member_cleanup(f, m, msg, sizeof(msg)) : -EINVAL;
	fed_member_put(m);
	if (left == 0) {
		log_info("federation: cluster %s deleted: the federation's objects are gone from "
			 "it",
			 name);
	} else {
		int64_t waited_ms =
			((int64_t)time(NULL) -
			 (int64_t)ctrl_parse_time(json_string_value(json_object_get(
				 json_object_get(obj, "metadata"), "deletionTimestamp")))) *
			1000;
		/* a spec the federation cannot use (no member to ask) is not waited for */
		if (left > 0 || (asked && waited_ms < f->cfg->grace_ms)) {
			if (left < 0)
				log_info("federation: cluster %s deleted: cannot clean it up yet "
					 "(%s); trying again",
					 name, msg);
			/* what was deleted is checked gone; an unreachable member is retried */
			fed_queue_cluster_after(f, name,
						left > 0 ? 200 : f->cfg->probe_interval_ms);
			return 0;
		}
		log_warn(
			"federation: cluster %s deleted: gave up removing the federation's objects "
			"from it after %llds: %s",
			name, (long long)(waited_ms / 1000), msg);
		ctrl_event(f->c, co, "Warning", "MemberCleanupAbandoned",
			   "the federation's objects may remain in the member: %s", msg);
	}
	err = set_finalizer(f, name, obj, false);
	if (err)
		return err;
	member_remove(f, name);
	return 0;
}

int fed_cluster_reconcile(struct fed *f, const char *name)
{
	struct ctrl_obj *co = ctrl_get(f->clusters, name);
	json_t *obj = NULL;
	struct fed_member *m = NULL;
	char now[32], msg[512];
	int err = 0;

	if (!co) {
		member_remove(f, name);
		goto out;
	}
	obj = ctrl_obj_json(co);
	if (!obj) {
		err = -ENOMEM;
		goto out;
	}
	if (co->deleting) {
		err = cluster_deleting(f, co, obj);
		goto out;
	}
	/* the finalizer first: a Cluster deleted from now on is cleaned up (a conflict: the
	 * next probe tries again) */
	if (!has_finalizer(obj) && (err = set_finalizer(f, name, obj, true)) && err != -ECONFLICT)
		log_warn("federation: cluster %s: without its finalizer, a delete would leave the "
			 "federation's objects in the member",
			 name);
	err = 0;
	ctrl_now(now);
	const char *reason = NULL;
	m = member_for(f, name, json_object_get(obj, "spec"), &reason, msg, sizeof(msg));
	if (!m) {
		/* A spec the federation cannot use: say why; nothing is placed there. */
		member_remove(f, name);
		json_t *st = json_pack("{s:[o,o]}", "conditions",
				       fed_condition(obj, "Ready", false, reason, msg, now),
				       fed_condition(obj, "Offline", true, reason, msg, now));
		err = st ? write_status(f, co, obj, st) : -ENOMEM;
		/* the token file may appear, or be readable, later */
		fed_queue_cluster_after(f, name, f->cfg->probe_interval_ms);
		goto out;
	}
	if (!m->offline && !m->ready && fed_cluster_offline(obj))
		m->offline = true; /* as the store remembers it, across a restart */
	struct probe p = { 0 };
	probe(m, &p);
	int64_t t = fed_mono_ms();
	if (p.ok) {
		m->last_ok_ms = t;
		m->ready = true;
		m->offline = false;
	} else {
		m->ready = false;
		if (t - m->last_ok_ms >= f->cfg->grace_ms)
			m->offline = true;
	}
	char offmsg[700];
	if (m->offline)
		snprintf(offmsg, sizeof(offmsg),
			 "not ready for %" PRId64 "s (grace period %" PRId64 "s): %s",
			 (t - m->last_ok_ms) / 1000, f->cfg->grace_ms / 1000, p.msg);
	else
		snprintf(offmsg, sizeof(offmsg), "%s",
			 m->ready ? "reachable" : "within the grace period");
	const json_t *ost = json_object_get(obj, "status");
	json_t *st = json_pack("{s:[o,o]}", "conditions",
			       fed_condition(obj, "Ready", m->ready, p.reason, p.msg, now),
			       fed_condition(obj, "Offline", m->offline,
					     m->offline ? "GracePeriodExceeded"
					     : m->ready ? "ClusterReady"
							: "NotReady",
					     offmsg, now));
	if (!st) {
		err = -ENOMEM;
		goto out;
	}
	if (p.ok) {
		const json_t *ref = json_object_get(json_object_get(obj, "spec"), "referencePod");
		int64_t rc = qty(ref, "cpu"), rm = qty(ref, "memory") / 1000;
		int64_t avail_cpu = p.alloc_cpu_m - p.use_cpu_m;
		int64_t avail_mem = p.alloc_mem_m - p.use_mem_m;
		json_object_set_new(st, "nodes", json_integer(p.nodes));
		json_object_set_new(st, "readyNodes", json_integer(p.ready_nodes));
		json_object_set_new(st, "allocatable",
				    amounts(p.alloc_cpu_m, p.alloc_mem_m, p.alloc_pods));
		json_object_set_new(st, "usage", amounts(p.use_cpu_m, p.use_mem_m, 0));
		json_object_set_new(st, "available", amounts(avail_cpu, avail_mem, p.alloc_pods));
		json_object_set_new(st, "estimatedReplicas",
				    json_integer(fed_estimate(avail_cpu, avail_mem / 1000,
							      p.alloc_pods, rc, rm)));
		json_object_set_new(st, "lastReadyTime", json_string(now));
	} else {
		/* what was last known stays: capacity of an unreachable member is not zero */
		const char *keep[] = { "nodes",	    "readyNodes",	 "allocatable",	 "usage",
				       "available", "estimatedReplicas", "lastReadyTime" };
		for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
			json_t *v = json_object_get(ost, keep[i]);
			if (v)
				json_object_set(st, keep[i], v);
		}
	}
	/* lastReadyTime moves with every probe: keep the stored one while it stays ready, so
	 * that a healthy cluster's status is not rewritten every interval */
	if (p.ok && fed_cluster_ready(obj) && json_object_get(ost, "lastReadyTime"))
		json_object_set(st, "lastReadyTime", json_object_get(ost, "lastReadyTime"));
	err = write_status(f, co, obj, st);
	int64_t next = f->cfg->probe_interval_ms;
	if (!m->ready && !m->offline) {
		int64_t left = m->last_ok_ms + f->cfg->grace_ms - t;
		if (left < next)
			next = left > 0 ? left : 1;
	}
	fed_queue_cluster_after(f, name, next);
out:
	fed_member_put(m);
	json_decref(obj);
	if (co)
		ctrl_obj_unref(co);
	return err;
}
