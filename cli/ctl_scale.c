// SPDX-License-Identifier: Apache-2.0
/*
 * `shoalctl scale KIND NAME --replicas N`: a JSON merge patch that sets the field the kind
 * registry names as its scale path (spec.replicas for Deployments and ReplicaSets). A merge
 * patch carries no resourceVersion, so it cannot conflict: the last scale wins, as in kubectl.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* {"spec": {"replicas": N}} from "spec.replicas". */
static json_t *ctl_scale_patch(const char *path, long replicas)
{
	json_t *root = json_object(), *cur = root;
	char buf[256], *part, *save = NULL, *next;

	if (!root || strlen(path) >= sizeof(buf)) {
		json_decref(root);
		return NULL;
	}
	snprintf(buf, sizeof(buf), "%s", path);
	for (part = strtok_r(buf, ".", &save); part; part = next) {
		next = strtok_r(NULL, ".", &save);
		if (!next) {
			json_object_set_new(cur, part, json_integer(replicas));
		} else {
			json_t *o = json_object();
			json_object_set_new(cur, part, o);
			cur = o;
		}
	}
	return root;
}

int ctl_scale(struct ctl *c)
{
	const struct api_kind *k;
	char **names, path[1024], ref[512];
	json_t *patch, *resp = NULL;
	long code;
	int n, rc;

	rc = ctl_kind_and_names(c, &k, &names, &n, true);
	if (rc)
		return rc;
	if (c->o->replicas < 0) {
		fprintf(stderr, "error: scale needs --replicas N\n");
		return 2;
	}
	if (!k->scale_path) {
		fprintf(stderr, "error: %s cannot be scaled (it has no replicas)\n", k->resource);
		return 1;
	}
	patch = ctl_scale_patch(k->scale_path, c->o->replicas);
	if (!patch)
		return 1;
	for (int i = 0; i < n; i++) {
		if (ctl_path(k, k->namespaced ? c->o->ns : NULL, names[i], NULL, path,
			     sizeof(path))) {
			rc = 1;
			continue;
		}
		if (ctl_call(c, "PATCH", path, patch, "application/merge-patch+json", &code,
			     &resp)) {
			rc = 1;
			break;
		}
		if (code == 200) {
			fprintf(c->out, "%s scaled\n", ctl_ref(k, names[i], ref, sizeof(ref)));
		} else {
			ctl_print_server_error(code, resp);
			rc = 1;
		}
		json_decref(resp);
		resp = NULL;
	}
	json_decref(patch);
	return rc;
}
