// SPDX-License-Identifier: Apache-2.0
/*
 * `shoalctl describe KIND NAME`: the object for people. Metadata first (name, namespace,
 * labels, annotations, creation time, owners), then spec and status as indented YAML (one
 * generic layout for every kind: the registry has no per-kind describer), conditions as a
 * table, a federated object's placement and per-cluster status (status.placement and
 * status.clusters) as a table, and the events whose involvedObject is this object, oldest
 * first.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "yaml_json.h"

static void ctl_describe_map(FILE *f, const char *title, const json_t *map, bool skip_applied)
{
	const char *k;
	json_t *v;
	bool first = true;

	fprintf(f, "%-14s ", title);
	json_object_foreach((json_t *)map, k, v) {
		if (skip_applied && strcmp(k, CTL_LAST_APPLIED) == 0)
			continue;
		fprintf(f, "%s%s=%s\n", first ? "" : "               ", k,
			json_is_string(v) ? json_string_value(v) : "?");
		first = false;
	}
	if (first)
		fprintf(f, "<none>\n");
}

/* A section as YAML, each line indented by two spaces. */
static void ctl_describe_yaml(FILE *f, const char *title, const json_t *v)
{
	char *y, *line, *save = NULL;

	if (!v || (json_is_object(v) && json_object_size(v) == 0))
		return;
	y = yj_emit(v);
	if (!y)
		return;
	fprintf(f, "%s:\n", title);
	for (line = strtok_r(y, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		fprintf(f, "  %s\n", line);
	free(y);
}

static void ctl_describe_conditions(FILE *f, const json_t *conds, time_t now)
{
	struct ctl_table t = { .ncols = 5 };
	const char *hdr[] = { "Type", "Status", "Reason", "Age", "Message" };
	const char *sep[] = { "----", "------", "------", "---", "-------" };
	size_t i;
	json_t *c;

	if (!json_array_size(conds))
		return;
	ctl_table_row(&t, hdr);
	ctl_table_row(&t, sep);
	json_array_foreach(conds, i, c) {
		char age[32] = "<unknown>";
		long long s = ctl_since(json_string_value(json_object_get(c, "lastTransitionTime")),
					now);
		if (s != -1)
			ctl_age(s, age, sizeof(age));
		const char *row[] = { json_string_value(json_object_get(c, "type")),
				      json_string_value(json_object_get(c, "status")),
				      json_string_value(json_object_get(c, "reason")) ?: "",
				      age,
				      json_string_value(json_object_get(c, "message")) ?: "" };
		ctl_table_row(&t, row);
	}
	fprintf(f, "Conditions:\n");
	ctl_table_print(f, &t, 2);
	ctl_table_free(&t);
}

/* When an Event last happened: lastTimestamp, else eventTime, else its creation. */
static const char *event_when(const json_t *e)
{
	const char *when = json_string_value(json_object_get(e, "lastTimestamp"));
	if (!when)
		when = json_string_value(json_object_get(e, "eventTime"));
	if (!when)
		when = json_string_value(ctl_json_path(e, "metadata.creationTimestamp"));
	return when;
}

static int event_order(const void *a, const void *b)
{
	const char *x = event_when(*(json_t *const *)a), *y = event_when(*(json_t *const *)b);
	return strcmp(x ? x : "", y ? y : "");
}

/* A federated object: what was placed where, and what each member reports. */
static void ctl_describe_clusters(FILE *f, const json_t *placement, const json_t *clusters)
{
	struct ctl_table t = { .ncols = 7 };
	const char *hdr[] = { "Cluster", "Placed", "Replicas", "Ready", "Available", "State",
			      "Message" };
	const char *sep[] = { "-------", "------", "--------", "-----", "---------", "-----",
			      "-------" };
	size_t i, j;
	json_t *c, *p;

	if (!json_array_size(clusters) && !json_array_size(placement))
		return;
	if (json_object_get(json_array_get(clusters, 0), "addresses")) {
		/* a FederatedService: where each member serves it */
		struct ctl_table s = { .ncols = 5 };
		const char *sh[] = { "Cluster", "State", "ClusterIP", "Addresses", "Message" };
		const char *ss[] = { "-------", "-----", "---------", "---------", "-------" };
		ctl_table_row(&s, sh);
		ctl_table_row(&s, ss);
		json_array_foreach(clusters, i, c) {
			char addrs[512] = "";
			size_t off = 0;
			json_array_foreach(json_object_get(c, "addresses"), j, p) {
				int w = snprintf(addrs + off, sizeof(addrs) - off, "%s%s", j ? "," : "",
						 json_string_value(p) ?: "?");
				if (w < 0 || (size_t)w >= sizeof(addrs) - off)
					break;
				off += (size_t)w;
			}
			const char *row[] = { json_string_value(json_object_get(c, "cluster")) ?: "?",
					      json_string_value(json_object_get(c, "state")) ?: "",
					      json_string_value(json_object_get(c, "clusterIP")) ?: "",
					      off ? addrs : "<none>",
					      json_string_value(json_object_get(c, "message")) ?: "" };
			ctl_table_row(&s, row);
		}
		fprintf(f, "Clusters:\n");
		ctl_table_print(f, &s, 2);
		ctl_table_free(&s);
		return;
	}
	ctl_table_row(&t, hdr);
	ctl_table_row(&t, sep);
	json_array_foreach(clusters, i, c) {
		const char *name = json_string_value(json_object_get(c, "cluster")) ?: "?";
		char placed[24] = "0", reps[24], ready[24], avail[24];
		json_array_foreach(placement, j, p)
			if (!strcmp(json_string_value(json_object_get(p, "cluster")) ?: "", name))
				snprintf(placed, sizeof(placed), "%lld",
					 (long long)json_integer_value(json_object_get(p, "replicas")));
		snprintf(reps, sizeof(reps), "%lld",
			 (long long)json_integer_value(json_object_get(c, "replicas")));
		snprintf(ready, sizeof(ready), "%lld",
			 (long long)json_integer_value(json_object_get(c, "readyReplicas")));
		snprintf(avail, sizeof(avail), "%lld",
			 (long long)json_integer_value(json_object_get(c, "availableReplicas")));
		const char *row[] = { name, placed, reps, ready, avail,
				      json_string_value(json_object_get(c, "state")) ?: "",
				      json_string_value(json_object_get(c, "message")) ?: "" };
		ctl_table_row(&t, row);
	}
	fprintf(f, "Clusters:\n");
	ctl_table_print(f, &t, 2);
	ctl_table_free(&t);
}

/* Events about the object: asked of the server by field selector; a server that does not
 * know that selector gets a plain list of the namespace's events, filtered here. */
static void ctl_describe_events(struct ctl *c, const struct api_kind *k, const char *ns,
				const char *name)
{
	const struct api_kind *ek = api_kind_lookup("events");
	struct ctl_table t = { .ncols = 5 };
	const char *hdr[] = { "Type", "Reason", "Age", "From", "Message" };
	const char *sep[] = { "----", "------", "----", "----", "-------" };
	char path[2048], sel[600];
	json_t *resp = NULL, *e;
	long code = 0;
	size_t i;

	if (!ek || ctl_path(ek, k->namespaced ? ns : "default", NULL, NULL, path, sizeof(path))) {
		fprintf(c->out, "Events:        <none>\n");
		return;
	}
	snprintf(sel, sizeof(sel), "involvedObject.name=%s", name);
	{
		char q[2048];
		snprintf(q, sizeof(q), "%s", path);
		if (ctl_query(q, sizeof(q), "fieldSelector", sel) == 0 &&
		    ctl_call(c, "GET", q, NULL, NULL, &code, &resp) == 0 && code != 200) {
			json_decref(resp);
			resp = NULL;
			if (ctl_call(c, "GET", path, NULL, NULL, &code, &resp))
				resp = NULL;
		}
	}
	if (code != 200 || !resp) {
		json_decref(resp);
		fprintf(c->out, "Events:        <none>\n");
		return;
	}
	ctl_table_row(&t, hdr);
	ctl_table_row(&t, sep);
	/* kubectl's order: by when each last happened, oldest first */
	json_t *items = json_object_get(resp, "items");
	size_t n = json_array_size(items);
	json_t **v = calloc(n ? n : 1, sizeof(*v));
	if (!v) {
		ctl_table_free(&t);
		json_decref(resp);
		fprintf(c->out, "Events:        <unknown: out of memory>\n");
		return;
	}
	json_array_foreach(items, i, e) v[i] = e;
	qsort(v, n, sizeof(*v), event_order);
	for (i = 0; i < n; i++) {
		e = v[i];
		const json_t *io = json_object_get(e, "involvedObject");
		const char *ikind = json_string_value(json_object_get(io, "kind"));
		char age[96] = "<unknown>";
		long long s;

		if (!json_string_value(json_object_get(io, "name")) ||
		    strcmp(json_string_value(json_object_get(io, "name")), name) != 0 ||
		    (ikind && strcmp(ikind, k->kind) != 0))
			continue;
		s = ctl_since(event_when(e), c->now);
		if (s != -1)
			ctl_age(s, age, sizeof(age));
		json_int_t count = json_integer_value(json_object_get(e, "count"));
		const char *first = json_string_value(json_object_get(e, "firstTimestamp"));
		long long fs = first ? ctl_since(first, c->now) : -1;
		if (count > 1 && s != -1 && fs != -1) {
			char over[32];
			size_t used = strlen(age);
			ctl_age(fs, over, sizeof(over));
			snprintf(age + used, sizeof(age) - used, " (x%lld over %s)", (long long)count,
				 over);
		}
		const char *from = json_string_value(ctl_json_path(e, "source.component"));
		if (!from)
			from = json_string_value(json_object_get(e, "reportingComponent"));
		const char *row[] = { json_string_value(json_object_get(e, "type")) ?: "Normal",
				      json_string_value(json_object_get(e, "reason")) ?: "",
				      age, from ?: "",
				      json_string_value(json_object_get(e, "message")) ?: "" };
		ctl_table_row(&t, row);
	}
	free(v);
	if (t.rows <= 2) {
		fprintf(c->out, "Events:        <none>\n");
	} else {
		fprintf(c->out, "Events:\n");
		ctl_table_print(c->out, &t, 2);
	}
	ctl_table_free(&t);
	json_decref(resp);
}

static int ctl_describe_one(struct ctl *c, const struct api_kind *k, const char *name)
{
	char path[1024], res[256];
	const char *ns = k->namespaced ? c->o->ns : NULL;
	json_t *obj = NULL, *meta, *status, *conds;
	long code;
	size_t i;
	json_t *v;

	if (ctl_path(k, ns, name, NULL, path, sizeof(path))) {
		fprintf(stderr, "error: name too long\n");
		return 1;
	}
	if (ctl_call(c, "GET", path, NULL, NULL, &code, &obj))
		return 1;
	if (code != 200) {
		if (code == 404 && !json_string_value(json_object_get(obj, "message")))
			fprintf(stderr, "Error from server (NotFound): %s \"%s\" not found\n",
				ctl_resource_name(k, res, sizeof(res)), name);
		else
			ctl_print_server_error(code, obj);
		json_decref(obj);
		return 1;
	}
	meta = json_object_get(obj, "metadata");
	fprintf(c->out, "%-14s %s\n", "Name:", name);
	if (k->namespaced)
		fprintf(c->out, "%-14s %s\n", "Namespace:",
			json_string_value(json_object_get(meta, "namespace")) ?: ns);
	fprintf(c->out, "%-14s %s\n", "Kind:", k->kind);
	ctl_describe_map(c->out, "Labels:", json_object_get(meta, "labels"), false);
	ctl_describe_map(c->out, "Annotations:", json_object_get(meta, "annotations"), true);
	fprintf(c->out, "%-14s %s\n", "Created:",
		json_string_value(json_object_get(meta, "creationTimestamp")) ?: "<unknown>");
	if (json_string_value(json_object_get(meta, "deletionTimestamp")))
		fprintf(c->out, "%-14s %s\n", "Deleting:",
			json_string_value(json_object_get(meta, "deletionTimestamp")));
	json_array_foreach(json_object_get(meta, "ownerReferences"), i, v)
		fprintf(c->out, "%-14s %s/%s\n", i ? "" : "Controlled By:",
			json_string_value(json_object_get(v, "kind")) ?: "?",
			json_string_value(json_object_get(v, "name")) ?: "?");
	ctl_describe_yaml(c->out, "Spec", json_object_get(obj, "spec"));
	/* Kinds without spec (Endpoints, EndpointSlice, Event, ...): the rest of the object. */
	if (!json_object_get(obj, "spec")) {
		const char *key;
		json_object_foreach(obj, key, v) {
			if (strcmp(key, "apiVersion") == 0 || strcmp(key, "kind") == 0 ||
			    strcmp(key, "metadata") == 0 || strcmp(key, "status") == 0)
				continue;
			char title[128];
			snprintf(title, sizeof(title), "%c%s", key[0] >= 'a' && key[0] <= 'z' ?
								     key[0] - 32 : key[0],
				 key + 1);
			if (json_is_object(v) || json_is_array(v))
				ctl_describe_yaml(c->out, title, v);
			else if (json_is_string(v))
				fprintf(c->out, "%s:%*s %s\n", title,
					(int)(strlen(title) < 13 ? 13 - strlen(title) : 0), "",
					json_string_value(v));
		}
	}
	status = json_deep_copy(json_object_get(obj, "status"));
	conds = status ? json_incref(json_object_get(status, "conditions")) : NULL;
	json_t *placement = NULL, *clusters = NULL;
	if (status) {
		json_object_del(status, "conditions");
		clusters = json_incref(json_object_get(status, "clusters"));
		if (json_is_array(clusters) && json_is_object(json_array_get(clusters, 0)) &&
		    json_object_get(json_array_get(clusters, 0), "cluster")) {
			placement = json_incref(json_object_get(status, "placement"));
			json_object_del(status, "clusters");
			json_object_del(status, "placement");
		} else {
			json_decref(clusters);
			clusters = NULL;
		}
	}
	ctl_describe_yaml(c->out, "Status", status);
	ctl_describe_clusters(c->out, placement, clusters);
	json_decref(placement);
	json_decref(clusters);
	ctl_describe_conditions(c->out, conds, c->now);
	json_decref(conds);
	json_decref(status);
	ctl_describe_events(c, k, ns, name);
	json_decref(obj);
	return 0;
}

int ctl_describe(struct ctl *c)
{
	const struct api_kind *k;
	char **names;
	int n, rc = ctl_kind_and_names(c, &k, &names, &n, true);

	if (rc)
		return rc;
	for (int i = 0; i < n; i++) {
		if (i)
			fputs("\n\n", c->out);
		rc |= ctl_describe_one(c, k, names[i]);
	}
	return rc;
}
