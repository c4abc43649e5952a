// SPDX-License-Identifier: Apache-2.0
/*
 * Reading manifests for apply and delete -f: files, directories (their *.yaml, *.yml and
 * *.json files in name order, not recursing) and "-" for stdin, each a stream of YAML or
 * JSON documents. A document of kind List stands for its items. Every object must carry
 * apiVersion, kind and metadata.name (or generateName); the error names file and document.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctl.h"
#include "yaml_json.h"

#define CTL_MANIFEST_MAX (64u << 20)

static char *ctl_slurp(FILE *f, size_t *len)
{
	size_t cap = 65536, n = 0, r;
	char *buf = malloc(cap), *nb;
	if (!buf)
		return NULL;
	while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			if (cap >= CTL_MANIFEST_MAX) {
				free(buf);
				errno = EFBIG;
				return NULL;
			}
			cap *= 2;
			nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				return NULL;
			}
			buf = nb;
		}
	}
	if (ferror(f)) {
		free(buf);
		errno = EIO;
		return NULL;
	}
	*len = n;
	return buf;
}

static int ctl_add_object(json_t *all, json_t *doc, const char *file, size_t idx, char *err,
			  size_t errlen)
{
	const char *kind = json_string_value(json_object_get(doc, "kind"));
	size_t i;
	json_t *item;

	if (!json_is_object(doc)) {
		snprintf(err, errlen, "%s: document %zu is not an object", file, idx + 1);
		return -EINVAL;
	}
	if (kind && strcmp(kind, "List") == 0) {
		json_t *items = json_object_get(doc, "items");
		if (!json_is_array(items)) {
			snprintf(err, errlen, "%s: document %zu: a List needs items", file, idx + 1);
			return -EINVAL;
		}
		json_array_foreach(items, i, item) {
			int rc = ctl_add_object(all, item, file, idx, err, errlen);
			if (rc)
				return rc;
		}
		return 0;
	}
	if (!kind || !*kind || !json_string_value(json_object_get(doc, "apiVersion"))) {
		snprintf(err, errlen, "%s: document %zu: apiVersion and kind are required", file,
			 idx + 1);
		return -EINVAL;
	}
	if (!json_string_value(ctl_json_path(doc, "metadata.name")) &&
	    !json_string_value(ctl_json_path(doc, "metadata.generateName"))) {
		snprintf(err, errlen, "%s: document %zu (%s): metadata.name is required", file,
			 idx + 1, kind);
		return -EINVAL;
	}
	return json_array_append(all, doc) ? -ENOMEM : 0;
}

static int ctl_read_one(json_t *all, const char *path, char *err, size_t errlen)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	const char *name = f == stdin ? "<stdin>" : path;
	char perr[300];
	size_t len = 0, i;
	char *buf;
	json_t *docs, *doc;
	int rc = 0;

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	buf = ctl_slurp(f, &len);
	if (f != stdin)
		fclose(f);
	if (!buf) {
		snprintf(err, errlen, "%s: %s", name, strerror(errno));
		return -EIO;
	}
	docs = yj_parse(buf, len, perr, sizeof(perr));
	free(buf);
	if (!docs) {
		snprintf(err, errlen, "%s: %s", name, perr);
		return -EINVAL;
	}
	json_array_foreach(docs, i, doc) {
		rc = ctl_add_object(all, doc, name, i, err, errlen);
		if (rc)
			break;
	}
	json_decref(docs);
	return rc;
}

static int ctl_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool ctl_manifest_name(const char *n)
{
	size_t l = strlen(n);
	return n[0] != '.' && ((l > 5 && strcmp(n + l - 5, ".yaml") == 0) ||
			       (l > 4 && strcmp(n + l - 4, ".yml") == 0) ||
			       (l > 5 && strcmp(n + l - 5, ".json") == 0));
}

static int ctl_read_dir(json_t *all, const char *dir, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	if (!d) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -errno;
	}
	while ((e = readdir(d))) {
		if (!ctl_manifest_name(e->d_name))
			continue;
		if (n == cap) {
			char **nn = realloc(names, (cap = cap ? cap * 2 : 16) * sizeof(*nn));
			if (!nn) {
				rc = -ENOMEM;
				break;
			}
			names = nn;
		}
		if (asprintf(&names[n], "%s/%s", dir, e->d_name) < 0) {
			rc = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (!rc) {
		qsort(names, n, sizeof(*names), ctl_name_cmp);
		for (size_t i = 0; i < n && !rc; i++)
			rc = ctl_read_one(all, names[i], err, errlen);
	} else {
		snprintf(err, errlen, "%s: %s", dir, strerror(-rc));
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

json_t *ctl_read_manifests(const char *const *files, int nfiles, char *err, size_t errlen)
{
	json_t *all = json_array();
	struct stat st;
	int rc = 0;

	if (!all) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (int i = 0; i < nfiles && !rc; i++) {
		if (strcmp(files[i], "-") != 0 && stat(files[i], &st) == 0 && S_ISDIR(st.st_mode))
			rc = ctl_read_dir(all, files[i], err, errlen);
		else
			rc = ctl_read_one(all, files[i], err, errlen);
	}
	if (rc) {
		json_decref(all);
		return NULL;
	}
	return all;
}
