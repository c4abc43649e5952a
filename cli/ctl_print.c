// SPDX-License-Identifier: Apache-2.0
/*
 * shoalctl's printers: kubectl-like tables built from the kind registry's printer columns,
 * AGE as kubectl writes it, and -o json|yaml|name. The one choice to know: a table is built
 * whole in memory and then written with each column as wide as its widest cell plus three
 * spaces (kubectl's tabwriter padding), so output lines up however long the values are.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ctl.h"
#include "yaml_json.h"

#define CTL_CELL_MAX 512

void ctl_age(long long s, char *buf, size_t len)
{
	long long m, h, d;

	if (s < -1) {
		snprintf(buf, len, "<invalid>");
		return;
	}
	if (s < 0)
		s = 0;
	if (s < 120) {
		snprintf(buf, len, "%llds", s);
		return;
	}
	m = s / 60;
	if (m < 10) {
		if (s % 60)
			snprintf(buf, len, "%lldm%llds", m, s % 60);
		else
			snprintf(buf, len, "%lldm", m);
		return;
	}
	if (m < 180) {
		snprintf(buf, len, "%lldm", m);
		return;
	}
	h = s / 3600;
	if (h < 8) {
		if (m % 60)
			snprintf(buf, len, "%lldh%lldm", h, m % 60);
		else
			snprintf(buf, len, "%lldh", h);
		return;
	}
	if (h < 48) {
		snprintf(buf, len, "%lldh", h);
		return;
	}
	d = h / 24;
	if (h < 24 * 8) {
		if (h % 24)
			snprintf(buf, len, "%lldd%lldh", d, h % 24);
		else
			snprintf(buf, len, "%lldd", d);
		return;
	}
	if (h < 24 * 365 * 2) {
		snprintf(buf, len, "%lldd", d);
		return;
	}
	if (h < 24 * 365 * 8) {
		if (d % 365)
			snprintf(buf, len, "%lldy%lldd", d / 365, d % 365);
		else
			snprintf(buf, len, "%lldy", d / 365);
		return;
	}
	snprintf(buf, len, "%lldy", d / 365);
}

long long ctl_since(const char *ts, time_t now)
{
	struct tm tm;
	const char *end;
	time_t t;
	int off = 0;

	if (!ts)
		return -1;
	memset(&tm, 0, sizeof(tm));
	end = strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end)
		return -1;
	if (*end == '.')
		for (end++; *end >= '0' && *end <= '9'; end++)
			;
	if (*end == 'Z' || *end == 'z') {
		end++;
	} else if ((*end == '+' || *end == '-') && strlen(end) == 6 && end[3] == ':') {
		int hh = atoi(end + 1), mm = atoi(end + 4);
		off = (hh * 3600 + mm * 60) * (*end == '-' ? -1 : 1);
		end += 6;
	} else {
		return -1;
	}
	if (*end)
		return -1;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	return (long long)(now - (t - off));
}

const json_t *ctl_json_path(const json_t *obj, const char *path)
{
	const json_t *cur = obj;
	const char *p = path;
	char part[256];

	while (cur && *p) {
		size_t n = strcspn(p, ".[");
		if (n >= sizeof(part))
			return NULL;
		if (n > 0) {
			memcpy(part, p, n);
			part[n] = '\0';
			cur = json_object_get(cur, part);
			p += n;
		}
		while (cur && *p == '[') {
			char *end;
			long idx = strtol(p + 1, &end, 10);
			if (*end != ']' || idx < 0)
				return NULL;
			cur = json_array_get(cur, (size_t)idx);
			p = end + 1;
		}
		if (*p == '.')
			p++;
	}
	return cur;
}

/* A JSON value as a cell: strings as they are, arrays joined with ",", maps as k=v. */
static void ctl_value_text(const json_t *v, char *buf, size_t len)
{
	size_t i, off = 0;
	const char *k;
	json_t *c;

	buf[0] = '\0';
	switch (json_typeof(v)) {
	case JSON_STRING:
		snprintf(buf, len, "%s", json_string_value(v));
		break;
	case JSON_INTEGER:
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		snprintf(buf, len, "%g", json_real_value(v));
		break;
	case JSON_TRUE:
		snprintf(buf, len, "true");
		break;
	case JSON_FALSE:
		snprintf(buf, len, "false");
		break;
	case JSON_NULL:
		snprintf(buf, len, "<none>");
		break;
	case JSON_ARRAY:
		json_array_foreach(v, i, c) {
			char one[CTL_CELL_MAX];
			ctl_value_text(c, one, sizeof(one));
			off += (size_t)snprintf(buf + off, off < len ? len - off : 0, "%s%s",
						i ? "," : "", one);
			if (off >= len)
				break;
		}
		if (!json_array_size(v))
			snprintf(buf, len, "<none>");
		break;
	case JSON_OBJECT:
		i = 0;
		json_object_foreach((json_t *)v, k, c) {
			char one[CTL_CELL_MAX];
			ctl_value_text(c, one, sizeof(one));
			off += (size_t)snprintf(buf + off, off < len ? len - off : 0, "%s%s=%s",
						i++ ? "," : "", k, one);
			if (off >= len)
				break;
		}
		if (!json_object_size(v))
			snprintf(buf, len, "<none>");
		break;
	}
}

void ctl_cell(const struct api_column *col, const json_t *obj, time_t now, char *buf,
	      size_t len)
{
	const json_t *v;

	buf[0] = '\0';
	if (strcasecmp(col->header, "AGE") == 0) {
		/* kubectl's age, whatever the registry computes: from the column's path or
		 * creationTimestamp. */
		const char *path = col->path ? col->path : "metadata.creationTimestamp";
		long long s = ctl_since(json_string_value(ctl_json_path(obj, path)), now);
		if (s == -1 && !json_string_value(ctl_json_path(obj, path)))
			snprintf(buf, len, "<unknown>");
		else
			ctl_age(s, buf, len);
		return;
	}
	if (col->format) {
		col->format(obj, buf, len);
		if (!buf[0])
			snprintf(buf, len, "<none>");
		return;
	}
	v = col->path ? ctl_json_path(obj, col->path) : NULL;
	if (!v || (json_is_string(v) && !json_string_length(v)))
		snprintf(buf, len, "<none>");
	else
		ctl_value_text(v, buf, len);
}

/* ---- tables ----------------------------------------------------------------------------- */

static int ctl_table_add(struct ctl_table *t, char **row)
{
	if (t->rows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **nc = realloc(t->cells, cap * t->ncols * sizeof(char *));
		if (!nc)
			return -ENOMEM;
		t->cells = nc;
		t->cap = cap;
	}
	for (size_t i = 0; i < t->ncols; i++) {
		size_t w = strlen(row[i]);
		t->cells[t->rows * t->ncols + i] = row[i];
		if (w > t->width[i])
			t->width[i] = w;
	}
	t->rows++;
	return 0;
}

int ctl_table_row(struct ctl_table *t, const char *const *cells)
{
	char *row[CTL_COLS_MAX];
	size_t i;
	int rc = 0;
	for (i = 0; i < t->ncols; i++)
		if (!(row[i] = strdup(cells[i] ? cells[i] : "<none>")))
			rc = -ENOMEM;
	if (!rc)
		rc = ctl_table_add(t, row);
	if (rc)
		for (i = 0; i < t->ncols; i++)
			free(row[i]);
	return rc;
}

void ctl_table_print(FILE *f, const struct ctl_table *t, int indent)
{
	for (size_t r = 0; r < t->rows; r++) {
		fprintf(f, "%*s", indent, "");
		for (size_t i = 0; i < t->ncols; i++) {
			const char *cell = t->cells[r * t->ncols + i];
			if (i + 1 < t->ncols)
				fprintf(f, "%-*s   ", (int)t->width[i], cell);
			else
				fprintf(f, "%s\n", cell);
		}
	}
}

void ctl_table_free(struct ctl_table *t)
{
	for (size_t i = 0; i < t->rows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
}

static const struct api_column ctl_col_name = { .header = "NAME", .path = "metadata.name" };
static const struct api_column ctl_col_ns = { .header = "NAMESPACE",
					      .path = "metadata.namespace" };
static const struct api_column ctl_col_age = { .header = "AGE",
					       .path = "metadata.creationTimestamp" };

/* The columns shown: NAMESPACE (with_ns), then the registry's columns as it lists them (the
 * wide ones only for -o wide; Events, as in kubectl, have neither NAME nor AGE), or NAME and
 * AGE for a kind without columns. */
static size_t ctl_columns(const struct api_kind *k, bool wide, bool with_ns,
			  const struct api_column **cols)
{
	const struct api_column *c = k && k->columns && k->columns[0].header ? k->columns : NULL;
	size_t n = 0;

	if (with_ns)
		cols[n++] = &ctl_col_ns;
	if (!c) {
		cols[n++] = &ctl_col_name;
		cols[n++] = &ctl_col_age;
		return n;
	}
	for (; c->header && n < CTL_COLS_MAX; c++)
		if (!c->wide || wide)
			cols[n++] = c;
	return n;
}

/* Adds the rows of items (and the header, unless CTL_PRINT_NO_HEADER) to t and prints them.
 * Afterwards t holds no rows but keeps its column widths, so rows printed later line up. */
static int ctl_print_table(FILE *f, const struct api_kind *k, const json_t *items, bool wide,
			   unsigned flags, time_t now, struct ctl_table *t)
{
	const struct api_column *cols[CTL_COLS_MAX];
	char *row[CTL_COLS_MAX];
	const json_t *obj;
	size_t i, j, ncols;
	int rc = 0;

	ncols = ctl_columns(k, wide, flags & CTL_PRINT_NS, cols);
	if (t->ncols != ncols) {
		ctl_table_free(t);
		memset(t, 0, sizeof(*t));
		t->ncols = ncols;
	}
	if (!(flags & CTL_PRINT_NO_HEADER)) {
		for (j = 0; j < t->ncols; j++)
			row[j] = strdup(cols[j]->header);
		for (j = 0; j < t->ncols; j++)
			if (!row[j])
				rc = -ENOMEM;
		if (!rc)
			rc = ctl_table_add(t, row);
		if (rc) {
			for (j = 0; j < t->ncols; j++)
				free(row[j]);
			goto out;
		}
	}
	json_array_foreach(items, i, obj) {
		char cell[CTL_CELL_MAX];
		for (j = 0; j < t->ncols; j++) {
			ctl_cell(cols[j], obj, now, cell, sizeof(cell));
			if ((flags & CTL_PRINT_KIND_PREFIX) && strcmp(cols[j]->header, "NAME") == 0) {
				char ref[CTL_CELL_MAX + 128];
				ctl_ref(k, cell, ref, sizeof(ref));
				row[j] = strdup(ref);
			} else {
				row[j] = strdup(cell);
			}
			if (!row[j])
				rc = -ENOMEM;
		}
		if (!rc)
			rc = ctl_table_add(t, row);
		if (rc) {
			for (j = 0; j < t->ncols; j++)
				free(row[j]);
			goto out;
		}
	}
	ctl_table_print(f, t, 0);
out:
	for (i = 0; i < t->rows * t->ncols; i++)
		free(t->cells[i]);
	t->rows = 0;
	return rc;
}

int ctl_print_doc(FILE *f, const json_t *obj, enum ctl_output out)
{
	char *s;
	if (out == CTL_OUT_YAML)
		s = yj_emit(obj);
	else
		s = json_dumps(obj, JSON_INDENT(4) | JSON_ENCODE_ANY);
	if (!s)
		return -ENOMEM;
	fputs(s, f);
	if (out != CTL_OUT_YAML)
		fputc('\n', f);
	free(s);
	return 0;
}

int ctl_print_objects(FILE *f, const struct api_kind *k, const json_t *items,
		      enum ctl_output out, unsigned flags, time_t now)
{
	return ctl_print_objects_in(f, k, items, out, flags, now, NULL);
}

int ctl_print_objects_in(FILE *f, const struct api_kind *k, const json_t *items,
			 enum ctl_output out, unsigned flags, time_t now, struct ctl_table *table)
{
	size_t i;
	const json_t *obj;
	char ref[512];

	switch (out) {
	case CTL_OUT_TABLE:
	case CTL_OUT_WIDE:
		if (!table) {
			struct ctl_table t = { 0 };
			int rc = ctl_print_table(f, k, items, out == CTL_OUT_WIDE, flags, now, &t);
			ctl_table_free(&t);
			return rc;
		}
		return ctl_print_table(f, k, items, out == CTL_OUT_WIDE, flags, now, table);
	case CTL_OUT_NAME:
		json_array_foreach(items, i, obj) {
			const char *name = json_string_value(ctl_json_path(obj, "metadata.name"));
			fprintf(f, "%s\n", ctl_ref(k, name ? name : "", ref, sizeof(ref)));
		}
		return 0;
	case CTL_OUT_JSON:
	case CTL_OUT_YAML:
		json_array_foreach(items, i, obj) {
			int rc;
			if (out == CTL_OUT_YAML && (i > 0 || (flags & CTL_PRINT_NO_HEADER)))
				fputs("---\n", f);
			rc = ctl_print_doc(f, obj, out);
			if (rc)
				return rc;
		}
		return 0;
	}
	return -EINVAL;
}

const char *ctl_ref(const struct api_kind *k, const char *name, char *buf, size_t len)
{
	char kind[128];
	size_t i;
	for (i = 0; k->kind[i] && i + 1 < sizeof(kind); i++)
		kind[i] = (char)((k->kind[i] >= 'A' && k->kind[i] <= 'Z') ? k->kind[i] + 32 :
									      k->kind[i]);
	kind[i] = '\0';
	if (k->group && *k->group)
		snprintf(buf, len, "%s.%s/%s", kind, k->group, name);
	else
		snprintf(buf, len, "%s/%s", kind, name);
	return buf;
}

const char *ctl_resource_name(const struct api_kind *k, char *buf, size_t len)
{
	if (k->group && *k->group)
		snprintf(buf, len, "%s.%s", k->resource, k->group);
	else
		snprintf(buf, len, "%s", k->resource);
	return buf;
}
