// SPDX-License-Identifier: Apache-2.0
/*
 * `shoalctl delete KIND NAME...`, `delete KIND -l SELECTOR` and `delete -f FILE`: one DELETE
 * per object, with gracePeriodSeconds when --grace-period is given (0 forces a pod away at
 * once). A missing object is an error unless --ignore-not-found; the other objects are still
 * deleted.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static int ctl_delete_one(struct ctl *c, const struct api_kind *k, const char *ns,
			  const char *name)
{
	char path[1024], ref[512], res[256], grace[32];
	json_t *resp = NULL;
	long code;

	if (ctl_path(k, ns, name, NULL, path, sizeof(path))) {
		fprintf(stderr, "error: name too long: %s\n", name);
		return 1;
	}
	if (c->o->grace >= 0) {
		snprintf(grace, sizeof(grace), "%ld", c->o->grace);
		if (ctl_query(path, sizeof(path), "gracePeriodSeconds", grace))
			return 1;
	}
	if (ctl_call(c, "DELETE", path, NULL, NULL, &code, &resp))
		return 1;
	if (code == 200 || code == 202) {
		/* kubectl's words: deployment.apps "web" deleted */
		ctl_ref(k, "", ref, sizeof(ref));
		ref[strlen(ref) - 1] = '\0';
		fprintf(c->out, "%s \"%s\" deleted\n", ref, name);
		json_decref(resp);
		return 0;
	}
	if (code == 404 && c->o->ignore_not_found) {
		json_decref(resp);
		return 0;
	}
	if (code == 404 && !json_string_value(json_object_get(resp, "message")))
		fprintf(stderr, "Error from server (NotFound): %s \"%s\" not found\n",
			ctl_resource_name(k, res, sizeof(res)), name);
	else
		ctl_print_server_error(code, resp);
	json_decref(resp);
	return 1;
}

static int ctl_delete_files(struct ctl *c)
{
	char err[512];
	json_t *objs = ctl_read_manifests(c->o->files, c->o->nfiles, err, sizeof(err)), *obj;
	size_t i;
	int rc = 0;

	if (!objs) {
		fprintf(stderr, "error: %s\n", err);
		return 1;
	}
	json_array_foreach(objs, i, obj) {
		const char *av = json_string_value(json_object_get(obj, "apiVersion"));
		const char *kind = json_string_value(json_object_get(obj, "kind"));
		const char *name = json_string_value(ctl_json_path(obj, "metadata.name"));
		const struct api_kind *k = api_kind_by_kind(av, kind);
		const char *ns;
		if (!k) {
			fprintf(stderr, "error: unknown kind \"%s\" in apiVersion \"%s\"\n", kind, av);
			rc = 1;
			continue;
		}
		if (!name) {
			fprintf(stderr, "error: a %s without metadata.name cannot be deleted\n", kind);
			rc = 1;
			continue;
		}
		if (ctl_object_ns(c, k, obj, &ns)) {
			rc = 1;
			continue;
		}
		rc |= ctl_delete_one(c, k, ns, name);
	}
	json_decref(objs);
	return rc;
}

/* delete KIND -l SELECTOR: list the names, then delete each. */
static int ctl_delete_selected(struct ctl *c, const struct api_kind *k, const char *ns)
{
	char path[4096];
	json_t *resp = NULL, *v;
	long code;
	size_t i;
	int rc = 0;

	if (ctl_path(k, ns, NULL, NULL, path, sizeof(path)) ||
	    ctl_query(path, sizeof(path), "labelSelector", c->o->selector))
		return 1;
	if (ctl_call(c, "GET", path, NULL, NULL, &code, &resp))
		return 1;
	if (code != 200) {
		ctl_print_server_error(code, resp);
		json_decref(resp);
		return 1;
	}
	if (!json_array_size(json_object_get(resp, "items")))
		fprintf(stderr, "No resources found\n");
	json_array_foreach(json_object_get(resp, "items"), i, v) {
		const char *name = json_string_value(ctl_json_path(v, "metadata.name"));
		const char *ons = json_string_value(ctl_json_path(v, "metadata.namespace"));
		if (name)
			rc |= ctl_delete_one(c, k, k->namespaced ? (ons ? ons : ns) : NULL, name);
	}
	json_decref(resp);
	return rc;
}

int ctl_delete(struct ctl *c)
{
	const struct api_kind *k;
	char **names;
	int n, rc;

	if (c->o->nfiles) {
		if (c->o->nargs) {
			fprintf(stderr, "error: give either -f or KIND NAME, not both\n");
			return 2;
		}
		return ctl_delete_files(c);
	}
	rc = ctl_kind_and_names(c, &k, &names, &n, false);
	if (rc)
		return rc;
	if (c->o->selector) {
		if (n) {
			fprintf(stderr, "error: a name cannot be given together with a selector\n");
			return 2;
		}
		return ctl_delete_selected(c, k, k->namespaced ? c->o->ns : NULL);
	}
	if (n == 0) {
		fprintf(stderr, "error: delete needs a name, -l SELECTOR or -f FILE\n");
		return 2;
	}
	for (int i = 0; i < n; i++)
		rc |= ctl_delete_one(c, k, k->namespaced ? c->o->ns : NULL, names[i]);
	return rc;
}
