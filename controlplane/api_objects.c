// SPDX-License-Identifier: Apache-2.0
/*
 * Object helpers for the API: the canonical serialization every stored object has (apiVersion,
 * kind and metadata first, no resourceVersion: the watch cache splices it in from the store's
 * mod revision), UIDs, timestamps, generated names and store keys.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "api_internal.h"

static json_t *ordered_meta(const json_t *meta)
{
	static const char *const first[] = { "name", "generateName", "namespace", "uid",
					     "generation", "creationTimestamp", NULL };
	json_t *out = json_object();
	const char *k;
	json_t *v;

	if (!out)
		return NULL;
	for (const char *const *f = first; *f; f++) {
		json_t *x = json_object_get(meta, *f);
		if (x && json_object_set(out, *f, x))
			goto err;
	}
	json_object_foreach((json_t *)meta, k, v)
	{
		if (strcmp(k, "resourceVersion") == 0 || json_object_get(out, k))
			continue;
		if (json_object_set(out, k, v))
			goto err;
	}
	return out;
err:
	json_decref(out);
	return NULL;
}

char *api_obj_dump(const json_t *obj, size_t *len)
{
	static const char *const first[] = { "apiVersion", "kind", NULL };
	json_t *out = json_object(), *meta = NULL;
	const char *k;
	json_t *v;
	char *s = NULL;

	if (!out)
		return NULL;
	for (const char *const *f = first; *f; f++) {
		json_t *x = json_object_get(obj, *f);
		if (x && json_object_set(out, *f, x))
			goto out;
	}
	meta = ordered_meta(json_object_get(obj, "metadata"));
	if (!meta || json_object_set_new(out, "metadata", meta))
		goto out;
	json_object_foreach((json_t *)obj, k, v)
	{
		if (json_object_get(out, k))
			continue;
		if (json_object_set(out, k, v))
			goto out;
	}
	s = json_dumps(out, JSON_COMPACT);
	if (s)
		*len = strlen(s);
out:
	json_decref(out);
	return s;
}

void api_new_uid(char out[37])
{
	unsigned char b[16];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
		/* getrandom on Linux >= 3.17 does not fail for 16 bytes once seeded; fall back to
		 * the clock so a UID is still unique in practice. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		for (size_t i = 0; i < sizeof(b); i++)
			b[i] = (unsigned char)((ts.tv_nsec >> (i % 8)) ^ (ts.tv_sec >> (i % 4)) ^ i * 37);
	}
	b[6] = (b[6] & 0x0f) | 0x40; /* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80; /* variant 1 */
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
}

void api_now(char out[32])
{
	api_time_from_now(0, out);
}

void api_time_from_now(long long seconds, char out[32])
{
	time_t t = time(NULL) + seconds;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int api_mark_deleting(json_t *meta, long long grace)
{
	char when[32];
	api_time_from_now(grace, when);
	if (json_object_set_new(meta, "deletionTimestamp", json_string(when)) ||
	    json_object_set_new(meta, "deletionGracePeriodSeconds", json_integer(grace)))
		return -ENOMEM;
	return 0;
}

void api_generate_name(const char *prefix, char *out, size_t len)
{
	/* Kubernetes' alphabet for generated suffixes: no vowels, no look-alikes. */
	static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
	unsigned char r[5];
	char suffix[6];

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		unsigned seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)out;
		for (size_t i = 0; i < sizeof(r); i++)
			r[i] = (unsigned char)rand_r(&seed);
	}
	for (int i = 0; i < 5; i++)
		suffix[i] = alphabet[r[i] % (sizeof(alphabet) - 1)];
	suffix[5] = '\0';
	snprintf(out, len, "%.*s%s", 58, prefix, suffix);
}

void api_key(const struct api_kind *k, const char *ns, const char *name, char *buf, size_t len)
{
	if (k->namespaced)
		snprintf(buf, len, "/registry/%s/%s/%s", k->resource, ns, name);
	else
		snprintf(buf, len, "/registry/%s/%s", k->resource, name);
}

int api_json_depth(const char *s, size_t len)
{
	int depth = 0, max = 0;
	bool in_str = false;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = false;
			continue;
		}
		if (c == '"')
			in_str = true;
		else if (c == '{' || c == '[') {
			if (++depth > max)
				max = depth;
		} else if (c == '}' || c == ']')
			depth--;
	}
	return max;
}

int api_pod_set_condition(json_t *pod, const char *type, const char *status, const char *reason,
			  const char *message)
{
	json_t *st = json_object_get(pod, "status"), *conds, *c;
	char now[32];
	size_t i;

	if (!json_is_object(st)) {
		st = json_object();
		if (!st || json_object_set_new(pod, "status", st))
			return -ENOMEM;
	}
	conds = json_object_get(st, "conditions");
	if (!json_is_array(conds)) {
		conds = json_array();
		if (!conds || json_object_set_new(st, "conditions", conds))
			return -ENOMEM;
	}
	json_array_foreach(conds, i, c)
	{
		const char *t = json_string_value(json_object_get(c, "type"));
		if (!t || strcmp(t, type) != 0)
			continue;
		const char *s = json_string_value(json_object_get(c, "status"));
		const char *m = json_string_value(json_object_get(c, "message"));
		if (s && strcmp(s, status) == 0 && ((!m && !message) ||
						    (m && message && strcmp(m, message) == 0)))
			return 0;
		if (json_array_remove(conds, i))
			return -ENOMEM;
		break;
	}
	api_now(now);
	c = json_pack("{s:s, s:s, s:s}", "type", type, "status", status, "lastTransitionTime", now);
	if (!c)
		return -ENOMEM;
	if (reason)
		json_object_set_new(c, "reason", json_string(reason));
	if (message)
		json_object_set_new(c, "message", json_string(message));
	return json_array_append_new(conds, c) ? -ENOMEM : 1;
}

int api_pod_set_bound(json_t *pod, const char *node)
{
	json_t *spec = json_object_get(pod, "spec");
	if (!json_is_object(spec) || json_object_set_new(spec, "nodeName", json_string(node)))
		return -EINVAL;
	json_object_del(json_object_get(pod, "status"), "nominatedNodeName");
	int err = api_pod_set_condition(pod, "PodScheduled", "True", NULL, NULL);
	return err < 0 ? err : 0;
}
