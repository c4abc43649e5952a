/* SPDX-License-Identifier: Apache-2.0 */
/*
 * shoalctl's shared pieces: the parsed command line, the client context every verb gets,
 * and the helpers the verbs share (paths, calls, manifests, printers). One file per verb
 * (ctl_apply.c, ctl_get.c, ...). Kinds come from the kind registry (api_kinds.h): shoalctl has
 * no per-kind code.
 *
 * Verbs return a process exit status: 0, 1 for an error (already printed), 2 for bad usage.
 */
#ifndef SHOAL_CTL_H
#define SHOAL_CTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "api_kinds.h"
#include "httpc.h"

#define CTL_DEFAULT_SERVER "unix:/run/shoal/shoald.sock"
#define CTL_LAST_APPLIED "shoal.io/last-applied-configuration"

enum ctl_output { CTL_OUT_TABLE, CTL_OUT_WIDE, CTL_OUT_JSON, CTL_OUT_YAML, CTL_OUT_NAME };

/* Options, one bit each, so that a verb can refuse those it does not take. */
enum {
	CTL_OPT_FILE = 1u << 0,
	CTL_OPT_SELECTOR = 1u << 1,
	CTL_OPT_FIELD_SELECTOR = 1u << 2,
	CTL_OPT_OUTPUT = 1u << 3,
	CTL_OPT_WATCH = 1u << 4,
	CTL_OPT_REPLICAS = 1u << 5,
	CTL_OPT_GRACE = 1u << 6,
	CTL_OPT_ALL_NS = 1u << 7,
	CTL_OPT_IGNORE_NOT_FOUND = 1u << 8,
	CTL_OPT_TIMEOUT = 1u << 9,
	CTL_OPT_REVISION = 1u << 10, /* rollout: --to-revision, --revision */
	CTL_OPT_WAIT = 1u << 11,     /* rollout status: --timeout */
	CTL_OPT_CONTAINER = 1u << 12,
	CTL_OPT_FOLLOW = 1u << 13,
	CTL_OPT_PREVIOUS = 1u << 14,
	CTL_OPT_NODE = 1u << 15,
};

#define CTL_MAX_FILES 32

struct ctl_opts {
	const char *server;
	const char *token;
	const char *ns;
	bool ns_given;	/* -n was on the command line */
	const char *ca_file;
	bool insecure;
	bool help;
	const char *verb;
	char **args; /* positional arguments after the verb */
	int nargs;
	const char *files[CTL_MAX_FILES];
	int nfiles;
	const char *selector;
	const char *field_selector;
	enum ctl_output output;
	bool watch;
	bool all_ns;
	bool ignore_not_found;
	long replicas;	   /* -1: not given */
	long grace;	   /* -1: not given */
	long timeout_s;	   /* request timeout; watch: how long to watch (0: until ended) */
	long revision;	   /* rollout --to-revision / --revision (0: not given) */
	long wait_s;	   /* rollout status --timeout (0: no limit) */
	const char *container; /* logs -c */
	bool follow;	       /* logs -f */
	bool previous;	       /* logs --previous */
	const char *node;      /* dp --node */
	unsigned given;	   /* CTL_OPT_* bits seen */
};

/* Parses argv (options may come before or after the verb, as kubectl allows). Environment
 * defaults ($SHOAL_SERVER, $SHOAL_TOKEN) are applied here. Returns 0, or -EINVAL with a
 * message in err. */
int ctl_parse_args(int argc, char **argv, struct ctl_opts *o, char *err, size_t errlen);
void ctl_usage(FILE *f);

/* A table: rows of ncols cells, printed with each column as wide as its widest cell. */
#define CTL_COLS_MAX 24
struct ctl_table {
	char **cells; /* rows * ncols */
	size_t rows, cap;
	size_t ncols;
	size_t width[CTL_COLS_MAX];
};
/* Adds a row of ncols cells (copied; NULL prints as <none>). */
int ctl_table_row(struct ctl_table *t, const char *const *cells);
void ctl_table_print(FILE *f, const struct ctl_table *t, int indent);
void ctl_table_free(struct ctl_table *t);

struct ctl {
	struct ctl_opts *o;
	struct httpc *http;
	FILE *out;
	time_t now;
	struct ctl_table table; /* get -w: the columns' widths so far */
};

/* ---- ctl_api.c: kinds, paths, calls ---- */

/* The kind a user named; prints an error and returns NULL when unknown. */
const struct api_kind *ctl_kind(const char *name);
/* /api/v1/namespaces/NS/pods[/NAME[/SUB]] (no namespace segment for cluster-scoped kinds or
 * when ns is NULL). Returns 0 or -ENAMETOOLONG. */
int ctl_path(const struct api_kind *k, const char *ns, const char *name, const char *sub,
	     char *buf, size_t len);
/* The namespace an object goes to: its own, else -n, else "default"; NULL for cluster-scoped
 * kinds. Prints an error and returns -EINVAL when the object's namespace contradicts an
 * explicit -n. */
int ctl_object_ns(struct ctl *c, const struct api_kind *k, const json_t *obj, const char **ns);
/*
 * Sends a request with an optional JSON body; prints the server's Warning headers. On a
 * response, returns 0 with *code and *out (the parsed body, or NULL if not JSON; caller
 * frees). When no response came, prints why ("cannot connect to the server at ...") and
 * returns the negative errno.
 */
int ctl_call(struct ctl *c, const char *method, const char *path, const json_t *body,
	     const char *content_type, long *code, json_t **out);
/* Appends "?key=escaped(val)" or "&key=..." to buf; nothing when val is NULL. */
int ctl_query(char *buf, size_t len, const char *key, const char *val);
/* A copy of a list item with apiVersion and kind first (list items may lack them). */
json_t *ctl_with_type(const struct api_kind *k, const json_t *obj);
/* Prints "Error from server (Reason): message" for a failed call. */
void ctl_print_server_error(long code, const json_t *body);
/* "deployment.apps/web" or "service/web" into buf. */
const char *ctl_ref(const struct api_kind *k, const char *name, char *buf, size_t len);
/* "deployments.apps" or "services", as kubectl names a resource in messages. */
const char *ctl_resource_name(const struct api_kind *k, char *buf, size_t len);
/* Splits "KIND/NAME" or takes "KIND NAME..." from args; sets *k and the names. */
int ctl_kind_and_names(struct ctl *c, const struct api_kind **k, char ***names, int *nnames,
		       bool need_name);

/* ---- ctl_manifest.c ---- */

/* Reads the manifests of -f arguments (files, directories of *.yaml|*.yml|*.json, "-" for
 * stdin) into an array of objects; "kind: List" documents are expanded into their items.
 * Returns NULL and a message naming the file, line and column in err. */
json_t *ctl_read_manifests(const char *const *files, int nfiles, char *err, size_t errlen);

/* ---- ctl_print.c: printers ---- */

/* kubectl's human duration: "45s", "3m12s", "15m", "5h3m", "2d", "3y". */
void ctl_age(long long seconds, char *buf, size_t len);
/* Seconds since an RFC 3339 timestamp; -1 when it cannot be parsed. */
long long ctl_since(const char *rfc3339, time_t now);
/* The value at a dotted path ("spec.ports[0].port", "metadata.labels.app"), or NULL. */
const json_t *ctl_json_path(const json_t *obj, const char *path);
/* One table cell: the column's format function, or its path's value (AGE: age of it),
 * "<none>" when absent. */
void ctl_cell(const struct api_column *col, const json_t *obj, time_t now, char *buf,
	      size_t len);
/* Prints objects (a JSON array) as out: table, wide, json, yaml or name. */
enum {
	CTL_PRINT_NS = 1u << 0,		 /* a NAMESPACE column first */
	CTL_PRINT_NO_HEADER = 1u << 1,	 /* rows only (watch events); YAML: "---" first */
	CTL_PRINT_KIND_PREFIX = 1u << 2, /* NAME as "deployment.apps/web" (several kinds) */
};
int ctl_print_objects(FILE *f, const struct api_kind *k, const json_t *items,
		      enum ctl_output out, unsigned flags, time_t now);
/* Prints one object as JSON or YAML. */
int ctl_print_doc(FILE *f, const json_t *obj, enum ctl_output out);

/* ctl_print_objects() into a table kept by the caller: tables printed through the same
 * ctl_table line up with the ones before (get -w: the watch's rows under the list's). */
int ctl_print_objects_in(FILE *f, const struct api_kind *k, const json_t *items,
			 enum ctl_output out, unsigned flags, time_t now, struct ctl_table *table);

/* ---- ctl_apply.c ---- */

/* The object a client-side apply writes: live with given applied over it, dropping what the
 * previous apply (last, may be NULL) set and given no longer has. Lists of objects with a
 * "name" (or "port", "containerPort") key are merged item by item, as kubectl's strategic
 * merge does for containers and ports; other lists are replaced. */
json_t *ctl_apply_merge(const json_t *live, const json_t *last, const json_t *given);
/* JSON equality where 3 and 3.0 are equal. */
bool ctl_json_same(const json_t *a, const json_t *b);

/* ---- verbs ---- */
int ctl_apply(struct ctl *c);
int ctl_get(struct ctl *c);
int ctl_watch(struct ctl *c, const struct api_kind *k, const char *name, const char *rv,
	      bool print_header);
int ctl_describe(struct ctl *c);
int ctl_delete(struct ctl *c);
int ctl_scale(struct ctl *c);
int ctl_rollout(struct ctl *c);
int ctl_logs(struct ctl *c);
int ctl_dp(struct ctl *c);

/* ---- ctl_logs.c: the agents' endpoints ---- */

/* A client for the HTTP endpoint of node's agent (the Node's shoal.io/agent-endpoint
 * annotation), with shoalctl's token and TLS settings. Prints why and returns NULL when
 * there is none. */
struct httpc *ctl_agent_client(struct ctl *c, const char *node);

#endif
