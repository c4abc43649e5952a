// SPDX-License-Identifier: Apache-2.0
/*
 * `shoalctl get KIND [NAME...]`: named objects are read one by one, everything else is
 * listed in pages of 500 (limit/continue, one consistent snapshot); then printed as a table,
 * -o wide|json|yaml|name. With -w the watch continues from the list's resourceVersion, so
 * nothing between the list and the watch is missed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#define CTL_PAGE "500"

/* Lists into items; sets *rv to the list's resourceVersion (malloc'd). Returns 0 or 1. */
static int ctl_list(struct ctl *c, const struct api_kind *k, const char *ns, json_t *items,
		    char **rv)
{
	char *cont = NULL;
	int rc = 1;

	*rv = NULL;
	do {
		char path[4096];
		json_t *resp = NULL, *v;
		long code;
		size_t i;

		if (ctl_path(k, ns, NULL, NULL, path, sizeof(path)) ||
		    ctl_query(path, sizeof(path), "labelSelector", c->o->selector) ||
		    ctl_query(path, sizeof(path), "fieldSelector", c->o->field_selector) ||
		    ctl_query(path, sizeof(path), "limit", CTL_PAGE) ||
		    ctl_query(path, sizeof(path), "continue", cont)) {
			fprintf(stderr, "error: selector too long\n");
			break;
		}
		free(cont);
		cont = NULL;
		if (ctl_call(c, "GET", path, NULL, NULL, &code, &resp))
			break;
		if (code != 200) {
			ctl_print_server_error(code, resp);
			json_decref(resp);
			break;
		}
		json_array_foreach(json_object_get(resp, "items"), i, v)
			json_array_append(items, v);
		v = json_object_get(resp, "metadata");
		if (!*rv && json_string_value(json_object_get(v, "resourceVersion")))
			*rv = strdup(json_string_value(json_object_get(v, "resourceVersion")));
		if (json_string_length(json_object_get(v, "continue")))
			cont = strdup(json_string_value(json_object_get(v, "continue")));
		json_decref(resp);
		if (!cont)
			rc = 0;
	} while (cont);
	free(cont);
	return rc;
}

int ctl_get(struct ctl *c)
{
	struct ctl_opts *o = c->o;
	const struct api_kind *k;
	char **names, *rv = NULL;
	int nnames, rc;
	const char *ns;
	json_t *items;
	bool watch = o->watch || strcmp(o->verb, "watch") == 0;

	rc = ctl_kind_and_names(c, &k, &names, &nnames, false);
	if (rc)
		return rc;
	if (nnames > 0 && (o->selector || o->field_selector)) {
		fprintf(stderr, "error: a name cannot be given together with a selector\n");
		return 2;
	}
	if (watch && nnames > 1) {
		fprintf(stderr, "error: watch takes at most one name\n");
		return 2;
	}
	if (o->all_ns && nnames > 0) {
		fprintf(stderr, "error: a name cannot be given with -A\n");
		return 2;
	}
	ns = k->namespaced && !o->all_ns ? o->ns : NULL;
	items = json_array();
	if (!items)
		return 1;
	rc = 0;
	if (nnames == 0) {
		rc = ctl_list(c, k, ns, items, &rv);
	} else {
		for (int i = 0; i < nnames; i++) {
			char path[1024], res[256];
			json_t *obj = NULL;
			long code;
			if (ctl_path(k, ns, names[i], NULL, path, sizeof(path))) {
				fprintf(stderr, "error: name too long: %s\n", names[i]);
				rc = 1;
				continue;
			}
			if (ctl_call(c, "GET", path, NULL, NULL, &code, &obj)) {
				rc = 1;
				break;
			}
			if (code == 200) {
				json_array_append(items, obj);
				if (!rv && json_string_value(ctl_json_path(obj, "metadata.resourceVersion")))
					rv = strdup(json_string_value(
						ctl_json_path(obj, "metadata.resourceVersion")));
			} else if (code == 404 && o->ignore_not_found) {
				/* nothing */
			} else if (code == 404 && !json_string_value(json_object_get(obj, "message"))) {
				fprintf(stderr, "Error from server (NotFound): %s \"%s\" not found\n",
					ctl_resource_name(k, res, sizeof(res)), names[i]);
				rc = 1;
			} else {
				ctl_print_server_error(code, obj);
				rc = 1;
			}
			json_decref(obj);
		}
	}
	if (rc && !json_array_size(items)) {
		json_decref(items);
		free(rv);
		return 1;
	}

	/* Items as kubectl shows them: with apiVersion and kind. */
	for (size_t i = 0; i < json_array_size(items); i++) {
		json_t *t = ctl_with_type(k, json_array_get(items, i));
		if (t)
			json_array_set_new(items, i, t);
	}
	if (o->output == CTL_OUT_JSON || o->output == CTL_OUT_YAML) {
		if (nnames == 1 && json_array_size(items) == 1) {
			ctl_print_doc(c->out, json_array_get(items, 0), o->output);
		} else if (!watch || json_array_size(items)) {
			json_t *list = json_pack("{s:s, s:s, s:O, s:{s:s}}", "apiVersion", "v1",
						 "kind", "List", "items", items, "metadata",
						 "resourceVersion", "");
			if (list)
				ctl_print_doc(c->out, list, o->output);
			json_decref(list);
		}
	} else if (json_array_size(items)) {
		ctl_print_objects(c->out, k, items, o->output, o->all_ns && k->namespaced, false,
				  c->now);
	} else if (nnames == 0 && !watch) {
		if (ns)
			fprintf(stderr, "No resources found in %s namespace.\n", ns);
		else
			fprintf(stderr, "No resources found\n");
	}
	fflush(c->out);
	if (watch && rc == 0)
		rc = ctl_watch(c, k, nnames ? names[0] : NULL, rv, json_array_size(items) == 0);
	json_decref(items);
	free(rv);
	return rc;
}
