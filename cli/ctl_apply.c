// SPDX-License-Identifier: Apache-2.0
/*
 * `shoalctl apply -f`: client-side apply, as kubectl did it before server-side apply. For each
 * object: GET it; absent -> POST; present -> compute the object apply wants (the live object
 * with the manifest laid over it, minus what the previous apply set and the manifest no
 * longer has, remembered in the shoal.io/last-applied-configuration annotation) and, when it
 * differs from the live one, PUT it with the resourceVersion that was read. A 409 means
 * someone wrote in between: read again and redo, a few times.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

#define CTL_APPLY_RETRIES 10
#define CTL_APPLY_BACKOFF_MS 20 /* first wait after a conflict; doubles, with jitter */

/* The manifest as remembered for the next apply: compact JSON, without status. */
static char *ctl_last_applied_text(const json_t *given)
{
	json_t *copy = json_deep_copy(given);
	json_t *ann;
	char *s;
	if (!copy)
		return NULL;
	json_object_del(copy, "status");
	ann = json_object_get(json_object_get(copy, "metadata"), "annotations");
	if (json_is_object(ann))
		json_object_del(ann, CTL_LAST_APPLIED);
	s = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(copy);
	return s;
}

static int ctl_set_annotation(json_t *obj, const char *key, const char *val)
{
	json_t *meta = json_object_get(obj, "metadata"), *ann;
	if (!json_is_object(meta))
		return -EINVAL;
	ann = json_object_get(meta, "annotations");
	if (!json_is_object(ann)) {
		ann = json_object();
		if (!ann || json_object_set_new(meta, "annotations", ann))
			return -ENOMEM;
	}
	return json_object_set_new(ann, key, json_string(val)) ? -ENOMEM : 0;
}

/* What the server owns is not the manifest's to set: an object saved with `get -o yaml` applies
 * like the manifest it came from. */
static void ctl_apply_strip(json_t *obj)
{
	static const char *const server_meta[] = { "resourceVersion", "uid", "creationTimestamp",
						   "generation", "deletionTimestamp",
						   "managedFields", NULL };
	json_t *meta = json_object_get(obj, "metadata");
	json_object_del(obj, "status");
	for (const char *const *f = server_meta; *f; f++)
		json_object_del(meta, *f);
}

/* Applies one object; prints the outcome; returns 0 or 1. */
static int ctl_apply_one(struct ctl *c, json_t *given)
{
	const char *api_version = json_string_value(json_object_get(given, "apiVersion"));
	const char *kind = json_string_value(json_object_get(given, "kind"));
	const char *name = json_string_value(ctl_json_path(given, "metadata.name"));
	const struct api_kind *k = api_kind_by_kind(api_version, kind);
	char path[1024], ref[512], *last_text = NULL;
	const char *ns;
	json_t *body = NULL, *live = NULL, *resp = NULL;
	long code;
	int rc = 1;

	if (!k) {
		fprintf(stderr, "error: unknown kind \"%s\" in apiVersion \"%s\": no such kind is served\n",
			kind, api_version);
		return 1;
	}
	if (ctl_object_ns(c, k, given, &ns))
		return 1;
	if (!name) {
		/* generateName: always a create. */
		if (ctl_path(k, ns, NULL, NULL, path, sizeof(path)))
			return 1;
		if (ctl_call(c, "POST", path, given, NULL, &code, &resp))
			return 1;
		if (code != 201 && code != 200) {
			ctl_print_server_error(code, resp);
			goto out;
		}
		name = json_string_value(ctl_json_path(resp, "metadata.name"));
		fprintf(c->out, "%s created\n", ctl_ref(k, name ? name : "?", ref, sizeof(ref)));
		rc = 0;
		goto out;
	}
	ctl_ref(k, name, ref, sizeof(ref));
	if (ctl_path(k, ns, name, NULL, path, sizeof(path))) {
		fprintf(stderr, "error: %s: name too long\n", ref);
		return 1;
	}
	last_text = ctl_last_applied_text(given);
	if (!last_text)
		goto oom;

	for (int attempt = 0; attempt < CTL_APPLY_RETRIES; attempt++) {
		const char *old_text;

		/* Lost a race (another writer, a controller's status write): wait a little,
		 * longer each time and not in step with the others, then read again. */
		if (attempt > 0) {
			long ms = CTL_APPLY_BACKOFF_MS << (attempt < 6 ? attempt - 1 : 5);
			ms = ms / 2 + rand() % (ms / 2 + 1);
			struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
			nanosleep(&ts, NULL);
		}
		json_t *last = NULL;
		const char *rv;

		json_decref(live);
		json_decref(body);
		json_decref(resp);
		live = body = resp = NULL;
		if (ctl_call(c, "GET", path, NULL, NULL, &code, &live))
			goto out;
		if (code == 404) {
			char coll[1024];
			body = json_deep_copy(given);
			if (!body || ctl_set_annotation(body, CTL_LAST_APPLIED, last_text))
				goto oom;
			if (k->namespaced && !json_object_get(json_object_get(body, "metadata"),
							      "namespace"))
				json_object_set_new(json_object_get(body, "metadata"), "namespace",
						    json_string(ns));
			if (ctl_path(k, ns, NULL, NULL, coll, sizeof(coll)))
				goto out;
			if (ctl_call(c, "POST", coll, body, NULL, &code, &resp))
				goto out;
			if (code == 409) /* created by someone else meanwhile: update it */
				continue;
			if (code != 201 && code != 200) {
				ctl_print_server_error(code, resp);
				goto out;
			}
			fprintf(c->out, "%s created\n", ref);
			rc = 0;
			goto out;
		}
		if (code != 200) {
			ctl_print_server_error(code, live);
			goto out;
		}
		/* ctl_json_path splits at dots; the annotation key has some. */
		old_text = json_string_value(json_object_get(
			ctl_json_path(live, "metadata.annotations"), CTL_LAST_APPLIED));
		if (old_text)
			last = json_loads(old_text, 0, NULL);
		body = ctl_apply_merge(live, last, given);
		json_decref(last);
		if (!body || ctl_set_annotation(body, CTL_LAST_APPLIED, last_text))
			goto oom;
		rv = json_string_value(ctl_json_path(live, "metadata.resourceVersion"));
		if (ctl_json_same(body, live)) {
			fprintf(c->out, "%s unchanged\n", ref);
			rc = 0;
			goto out;
		}
		if (rv)
			json_object_set_new(json_object_get(body, "metadata"), "resourceVersion",
					    json_string(rv));
		if (ctl_call(c, "PUT", path, body, NULL, &code, &resp))
			goto out;
		if (code == 409)
			continue;
		if (code != 200 && code != 201) {
			ctl_print_server_error(code, resp);
			goto out;
		}
		fprintf(c->out, "%s configured\n", ref);
		rc = 0;
		goto out;
	}
	fprintf(stderr, "error: %s: gave up after %d conflicting writes\n", ref, CTL_APPLY_RETRIES);
	goto out;
oom:
	fprintf(stderr, "error: %s: out of memory\n", ref);
out:
	free(last_text);
	json_decref(live);
	json_decref(body);
	json_decref(resp);
	return rc;
}

int ctl_apply(struct ctl *c)
{
	char err[512];
	json_t *objs, *obj;
	size_t i;
	int rc = 0;

	srand((unsigned)getpid() ^ (unsigned)time(NULL)); /* retries' jitter differs per process */
	if (c->o->nfiles == 0) {
		fprintf(stderr, "error: apply needs -f FILE|DIR|-\n");
		return 2;
	}
	if (c->o->nargs) {
		fprintf(stderr, "error: apply takes no arguments besides -f\n");
		return 2;
	}
	objs = ctl_read_manifests(c->o->files, c->o->nfiles, err, sizeof(err));
	if (!objs) {
		fprintf(stderr, "error: %s\n", err);
		return 1;
	}
	if (json_array_size(objs) == 0) {
		fprintf(stderr, "error: no objects passed to apply\n");
		rc = 1;
	}
	json_array_foreach(objs, i, obj) {
		ctl_apply_strip(obj);
		rc |= ctl_apply_one(c, obj);
	}
	json_decref(objs);
	return rc;
}
