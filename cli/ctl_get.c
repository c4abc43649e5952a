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

/* Lists into items; sets *rv, when still NULL, to the list's resourceVersion (malloc'd).
 * Returns 0 or 1. */
static int ctl_list(struct ctl *c, const struct api_kind *k, const char *ns, json_t *items,
		    char **rv)
{
	char *cont = NULL;
	int rc = 1;

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

/* Reads the named objects, or lists; appends them (with apiVersion and kind) to items. Sets
 * *rv to a resourceVersion to watch from. Returns 0, or 1 after printing an error. */
static int ctl_get_items(struct ctl *c, const struct api_kind *k, const char *ns,
			 char *const *names, int nnames, json_t *items, char **rv)
{
	json_t *got = json_array(), *v;
	size_t i;
	int rc = 0;

	if (!got)
		return 1;
	if (nnames == 0) {
		rc = ctl_list(c, k, ns, got, rv);
	} else {
		for (int n = 0; n < nnames; n++) {
			char path[1024], res[256];
			json_t *obj = NULL;
			long code;
			if (ctl_path(k, ns, names[n], NULL, path, sizeof(path))) {
				fprintf(stderr, "error: name too long: %s\n", names[n]);
				rc = 1;
				continue;
			}
			if (ctl_call(c, "GET", path, NULL, NULL, &code, &obj)) {
				rc = 1;
				break;
			}
			if (code == 200) {
				json_array_append(got, obj);
				v = (json_t *)ctl_json_path(obj, "metadata.resourceVersion");
				if (!*rv && json_string_value(v))
					*rv = strdup(json_string_value(v));
			} else if (code == 404 && c->o->ignore_not_found) {
				/* nothing */
			} else if (code == 404 && !json_string_value(json_object_get(obj, "message"))) {
				fprintf(stderr, "Error from server (NotFound): %s \"%s\" not found\n",
					ctl_resource_name(k, res, sizeof(res)), names[n]);
				rc = 1;
			} else {
				ctl_print_server_error(code, obj);
				rc = 1;
			}
			json_decref(obj);
		}
	}
	json_array_foreach(got, i, v) {
		json_t *t = ctl_with_type(k, v);
		if (t)
			json_array_append_new(items, t);
	}
	json_decref(got);
	return rc;
}

int ctl_get(struct ctl *c)
{
	struct ctl_opts *o = c->o;
	const struct api_kind *k, *kinds[16];
	char **names, *rv = NULL, *save = NULL, *kname;
	int nnames = 0, nkinds = 0, rc = 0;
	json_t *all;
	bool watch = o->watch || strcmp(o->verb, "watch") == 0;
	bool printed = false;

	if (o->nargs >= 1 && strchr(o->args[0], ',') && !strchr(o->args[0], '/')) {
		/* get deploy,svc: several kinds, no names. */
		if (o->nargs > 1 || watch) {
			fprintf(stderr, "error: several kinds take neither names nor -w\n");
			return 2;
		}
		for (kname = strtok_r(o->args[0], ",", &save); kname && nkinds < 16;
		     kname = strtok_r(NULL, ",", &save)) {
			if (!(kinds[nkinds++] = ctl_kind(kname)))
				return 1;
		}
		names = NULL;
	} else {
		rc = ctl_kind_and_names(c, &k, &names, &nnames, false);
		if (rc)
			return rc;
		kinds[nkinds++] = k;
	}
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
	all = json_array();
	if (!all)
		return 1;
	for (int i = 0; i < nkinds; i++) {
		const char *ns;
		json_t *items = json_array();
		k = kinds[i];
		ns = k->namespaced && !o->all_ns ? o->ns : NULL;
		if (!items) {
			rc = 1;
			break;
		}
		rc |= ctl_get_items(c, k, ns, names, nnames, items, &rv);
		json_array_extend(all, items);
		if ((o->output == CTL_OUT_TABLE || o->output == CTL_OUT_WIDE ||
		     o->output == CTL_OUT_NAME) &&
		    json_array_size(items)) {
			if (printed && o->output != CTL_OUT_NAME)
				fputc('\n', c->out);
			ctl_print_objects_in(c->out, k, items, o->output,
					     (o->all_ns && k->namespaced ? CTL_PRINT_NS : 0) |
						     (nkinds > 1 ? CTL_PRINT_KIND_PREFIX : 0),
					     c->now, watch ? &c->table : NULL);
			printed = true;
		}
		json_decref(items);
	}
	if (o->output == CTL_OUT_JSON || o->output == CTL_OUT_YAML) {
		if (nnames == 1 && nkinds == 1 && json_array_size(all) == 1) {
			ctl_print_doc(c->out, json_array_get(all, 0), o->output);
		} else if ((!watch || json_array_size(all)) && (!rc || json_array_size(all))) {
			json_t *list = json_pack("{s:s, s:s, s:O, s:{s:s}}", "apiVersion", "v1",
						 "kind", "List", "items", all, "metadata",
						 "resourceVersion", "");
			if (list)
				ctl_print_doc(c->out, list, o->output);
			json_decref(list);
		}
	} else if (!printed && nnames == 0 && !watch && !rc) {
		const char *ns = nkinds == 1 && kinds[0]->namespaced && !o->all_ns ? o->ns : NULL;
		if (ns)
			fprintf(stderr, "No resources found in %s namespace.\n", ns);
		else
			fprintf(stderr, "No resources found\n");
	}
	fflush(c->out);
	if (watch && rc == 0)
		rc = ctl_watch(c, kinds[0], nnames ? names[0] : NULL, rv, !printed);
	json_decref(all);
	free(rv);
	return rc;
}
