// SPDX-License-Identifier: Apache-2.0
/*
 * Reads a Pod object into the runtime's spec (rt_int.h) and validates it, field by field.
 *
 * The choice a reader must know: nothing wrong in a pod is an error of the call. A pod that
 * cannot be named (no uid, name or namespace) is refused; everything else that is wrong
 * (a missing command, a bad quantity, a probe without a handler, a field this runtime does not
 * know) is written into the spec as a reason and a message naming the field
 * ("spec.containers[1].resources.limits.memory: \"12xyz\" is not a quantity"), which the pod's
 * status then shows, as kubelet shows CreateContainerConfigError. Unknown fields of a
 * container are errors, not silently dropped: a field the runtime ignores would change what
 * the container does without anyone noticing. Kubernetes fields that cannot change what runs
 * here (imagePullPolicy, terminationMessagePath, stdin, tty, ...) are accepted and ignored.
 * Of securityContext (the pod's and the container's), runAsUser, runAsGroup and runAsNonRoot
 * are applied; the rest (capabilities, readOnlyRootFilesystem, seccompProfile, ...) is not
 * enforced: apart from its user, a container has the privileges of the agent.
 *
 * No images: `image` is a name for people, except that an image starting with "/" is a
 * directory used as the container's root filesystem (also settable for every container of a
 * pod with the annotation shoal.io/rootfs). A container therefore needs `command`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quantity.h"
#include "rt_int.h"

#define CFG_ERR	   "CreateContainerConfigError"
#define CREATE_ERR "CreateContainerError"

size_t rt_strv_len(char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

void rt_strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* Records the first error of a container (later ones would only repeat the cause). */
static void ctr_err(struct rt_ctr_spec *c, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void ctr_err(struct rt_ctr_spec *c, const char *reason, const char *fmt, ...)
{
	if (c->err_reason)
		return;
	va_list ap;
	va_start(ap, fmt);
	char *msg = NULL;
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	c->err_reason = strdup(reason);
	c->err_msg = msg ? msg : strdup("invalid container");
}

static void pod_err(struct rt_pod_spec *s, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void pod_err(struct rt_pod_spec *s, const char *reason, const char *fmt, ...)
{
	if (s->err_reason)
		return;
	va_list ap;
	va_start(ap, fmt);
	char *msg = NULL;
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	s->err_reason = strdup(reason);
	s->err_msg = msg ? msg : strdup("invalid pod");
}

static const char *str_at(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A list of strings at o[key] -> *out (NULL when absent). -1 when it is not one. */
static int strv_at(const json_t *o, const char *key, char ***out)
{
	const json_t *v = json_object_get(o, key);
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v))
		return -1;
	size_t n = json_array_size(v);
	char **r = calloc(n + 1, sizeof(*r));
	if (!r)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const json_t *e = json_array_get(v, i);
		if (!json_is_string(e) || !(r[i] = strdup(json_string_value(e)))) {
			rt_strv_free(r);
			return -1;
		}
	}
	*out = r;
	return 0;
}

static bool dns_label(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

/* Reports the first key of o not in the NULL-terminated list; NULL when all are known. */
static const char *unknown_key(const json_t *o, const char *const *known)
{
	const char *k;
	const json_t *v;
	json_object_foreach ((json_t *)o, k, v) {
		bool found = false;
		for (size_t i = 0; known[i] && !found; i++)
			found = !strcmp(k, known[i]);
		if (!found)
			return k;
	}
	return NULL;
}

/* An integer field >= min (absent: def). */
static int int_field(struct rt_ctr_spec *c, const char *where, const json_t *o, const char *key,
		     int def, int min, int *out)
{
	const json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v)) {
		*out = def;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > 1000000) {
		ctr_err(c, CFG_ERR, "%s.%s: must be an integer >= %d", where, key, min);
		return -1;
	}
	*out = (int)json_integer_value(v);
	return 0;
}

/* A port: a number 1..65535 or the name of one of the container's ports. */
static int port_field(struct rt_ctr_spec *c, const char *where, const json_t *v,
		      const json_t *ports, int *out)
{
	if (json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) <= 65535) {
		*out = (int)json_integer_value(v);
		return 0;
	}
	if (json_is_string(v)) {
		const char *name = json_string_value(v);
		char *end;
		long n = strtol(name, &end, 10);
		if (*name && !*end && n >= 1 && n <= 65535) {
			*out = (int)n;
			return 0;
		}
		size_t i;
		const json_t *p;
		json_array_foreach (ports, i, p) {
			const char *pn = str_at(p, "name");
			const json_t *cp = json_object_get(p, "containerPort");
			if (pn && !strcmp(pn, name) && json_is_integer(cp)) {
				*out = (int)json_integer_value(cp);
				return 0;
			}
		}
		ctr_err(c, CFG_ERR, "%s.port: no container port named \"%s\"", where, name);
		return -1;
	}
	ctr_err(c, CFG_ERR, "%s.port: must be 1..65535 or a port name", where);
	return -1;
}

static void handler_free(struct rt_handler *h)
{
	rt_strv_free(h->argv);
	rt_strv_free(h->headers);
	free(h->host);
	free(h->path);
	memset(h, 0, sizeof(*h));
}

/* exec / httpGet / tcpSocket of a probe or a lifecycle hook. */
static int parse_handler(struct rt_ctr_spec *c, const char *where, const json_t *o,
			 const json_t *ports, struct rt_handler *h)
{
	static const char *const exec_keys[] = { "command", NULL };
	static const char *const tcp_keys[] = { "port", "host", NULL };
	static const char *const http_keys[] = { "path",   "port",	  "host",
						 "scheme", "httpHeaders", NULL };
	const json_t *exec = json_object_get(o, "exec"), *tcp = json_object_get(o, "tcpSocket"),
		     *http = json_object_get(o, "httpGet");
	int n = !!exec + !!tcp + !!http;
	const char *k = NULL;

	if (json_object_get(o, "grpc")) {
		ctr_err(c, CFG_ERR, "%s.grpc: not supported (use exec, httpGet or tcpSocket)",
			where);
		return -1;
	}
	if (n != 1) {
		ctr_err(c, CFG_ERR, "%s: exactly one of exec, httpGet, tcpSocket is required",
			where);
		return -1;
	}
	if (exec) {
		if (!json_is_object(exec) || (k = unknown_key(exec, exec_keys))) {
			ctr_err(c, CFG_ERR, "%s.exec%s%s: unknown field", where, k ? "." : "",
				k ? k : "");
			return -1;
		}
		if (strv_at(exec, "command", &h->argv) < 0 || !h->argv || !h->argv[0] ||
		    !*h->argv[0]) {
			ctr_err(c, CFG_ERR,
				"%s.exec.command: a non-empty list of strings is required", where);
			return -1;
		}
		h->kind = RT_H_EXEC;
		return 0;
	}
	const json_t *s = tcp ? tcp : http;
	char w[160];
	snprintf(w, sizeof(w), "%s.%s", where, tcp ? "tcpSocket" : "httpGet");
	if (!json_is_object(s) || (k = unknown_key(s, tcp ? tcp_keys : http_keys))) {
		ctr_err(c, CFG_ERR, "%s%s%s: unknown field", w, k ? "." : "", k ? k : "");
		return -1;
	}
	if (port_field(c, w, json_object_get(s, "port"), ports, &h->port))
		return -1;
	const char *host = str_at(s, "host");
	if (host && *host && !(h->host = strdup(host)))
		return -1;
	h->kind = tcp ? RT_H_TCP : RT_H_HTTP;
	if (tcp)
		return 0;
	const char *scheme = str_at(s, "scheme");
	if (scheme && strcmp(scheme, "HTTP")) {
		ctr_err(c, CFG_ERR, "%s.scheme: \"%s\" is not supported (HTTP only)", w, scheme);
		return -1;
	}
	const char *path = str_at(s, "path");
	if (path && *path && path[0] != '/') {
		ctr_err(c, CFG_ERR, "%s.path: must start with \"/\"", w);
		return -1;
	}
	for (const char *p = path; p && *p; p++) {
		if ((unsigned char)*p <= ' ') {
			ctr_err(c, CFG_ERR,
				"%s.path: must not contain spaces or control characters", w);
			return -1;
		}
	}
	if (!(h->path = strdup(path && *path ? path : "/")))
		return -1;
	const json_t *hh = json_object_get(s, "httpHeaders");
	if (hh && !json_is_array(hh)) {
		ctr_err(c, CFG_ERR, "%s.httpHeaders: must be a list", w);
		return -1;
	}
	size_t nh = json_array_size(hh), i;
	if (nh) {
		if (!(h->headers = calloc(nh + 1, sizeof(char *))))
			return -1;
		const json_t *e;
		json_array_foreach (hh, i, e) {
			const char *name = str_at(e, "name"), *value = str_at(e, "value");
			bool bad = !name || !*name || !value;
			for (const char *p = name; !bad && *p; p++)
				bad = (unsigned char)*p <= ' ' || *p == ':';
			for (const char *p = value; !bad && *p; p++)
				bad = *p == '\r' || *p == '\n';
			if (bad) {
				ctr_err(c, CFG_ERR,
					"%s.httpHeaders[%zu]: a header name and a one-line value "
					"are required",
					w, i);
				return -1;
			}
			if (asprintf(&h->headers[i], "%s: %s", name, value) < 0) {
				h->headers[i] = NULL;
				return -1;
			}
		}
	}
	return 0;
}

static int parse_probe(struct rt_ctr_spec *c, const char *where, const json_t *o,
		       const json_t *ports, int kind, struct rt_probe_spec *p)
{
	static const char *const keys[] = { "exec",
					    "httpGet",
					    "tcpSocket",
					    "grpc",
					    "initialDelaySeconds",
					    "periodSeconds",
					    "timeoutSeconds",
					    "successThreshold",
					    "failureThreshold",
					    "terminationGracePeriodSeconds",
					    NULL };
	if (!o || json_is_null(o))
		return 0;
	const char *k;
	if (!json_is_object(o)) {
		ctr_err(c, CFG_ERR, "%s: must be an object", where);
		return -1;
	}
	if ((k = unknown_key(o, keys))) {
		ctr_err(c, CFG_ERR, "%s.%s: unknown field", where, k);
		return -1;
	}
	if (parse_handler(c, where, o, ports, &p->h) ||
	    int_field(c, where, o, "initialDelaySeconds", 0, 0, &p->initial_delay) ||
	    int_field(c, where, o, "periodSeconds", 10, 1, &p->period) ||
	    int_field(c, where, o, "timeoutSeconds", 1, 1, &p->timeout) ||
	    int_field(c, where, o, "successThreshold", 1, 1, &p->success) ||
	    int_field(c, where, o, "failureThreshold", 3, 1, &p->failure))
		return -1;
	if (kind != RT_PROBE_READINESS && p->success != 1) {
		ctr_err(c, CFG_ERR,
			"%s.successThreshold: must be 1 for liveness and startup probes", where);
		return -1;
	}
	int grace;
	if (int_field(c, where, o, "terminationGracePeriodSeconds", -1, 1, &grace))
		return -1;
	p->grace = grace;
	p->set = true;
	return 0;
}

static int parse_quantity(struct rt_ctr_spec *c, const char *where, const json_t *v, int64_t *milli)
{
	char buf[64];
	const char *s;
	if (json_is_string(v)) {
		s = json_string_value(v);
	} else if (json_is_integer(v)) {
		snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
		s = buf;
	} else if (json_is_real(v)) {
		snprintf(buf, sizeof(buf), "%.6f", json_real_value(v));
		s = buf;
	} else {
		ctr_err(c, CFG_ERR, "%s: must be a quantity", where);
		return -1;
	}
	int err = quantity_parse_milli(s, milli);
	if (err || *milli < 0) {
		ctr_err(c, CFG_ERR, "%s: \"%s\" is %s", where, s,
			err == -ERANGE ? "too large" : "not a valid quantity");
		return -1;
	}
	return 0;
}

static int parse_resources(struct rt_ctr_spec *c, const char *where, const json_t *r)
{
	static const char *const keys[] = { "limits", "requests", "claims", NULL };
	const char *k;
	c->cpu_limit = c->cpu_request = c->mem_limit = c->mem_request = -1;
	if (!r || json_is_null(r))
		return 0;
	if (!json_is_object(r)) {
		ctr_err(c, CFG_ERR, "%s: must be an object", where);
		return -1;
	}
	if ((k = unknown_key(r, keys))) {
		ctr_err(c, CFG_ERR, "%s.%s: unknown field", where, k);
		return -1;
	}
	for (int req = 0; req < 2; req++) {
		const char *what = req ? "requests" : "limits";
		const json_t *m = json_object_get(r, what), *v;
		if (!m || json_is_null(m))
			continue;
		if (!json_is_object(m)) {
			ctr_err(c, CFG_ERR, "%s.%s: must be an object", where, what);
			return -1;
		}
		json_object_foreach ((json_t *)m, k, v) {
			char w[192];
			int64_t milli;
			snprintf(w, sizeof(w), "%s.%s.%s", where, what, k);
			if (parse_quantity(c, w, v, &milli))
				return -1;
			if (!strcmp(k, "cpu"))
				*(req ? &c->cpu_request : &c->cpu_limit) = milli;
			else if (!strcmp(k, "memory"))
				*(req ? &c->mem_request : &c->mem_limit) =
					quantity_milli_to_units(milli);
		}
	}
	/* As Kubernetes defaults it: a limit without a request requests the limit. */
	if (c->cpu_request < 0 && c->cpu_limit >= 0)
		c->cpu_request = c->cpu_limit;
	if (c->mem_request < 0 && c->mem_limit >= 0)
		c->mem_request = c->mem_limit;
	if (c->cpu_limit >= 0 && c->cpu_request > c->cpu_limit) {
		ctr_err(c, CFG_ERR, "%s.requests.cpu: must be less than or equal to the cpu limit",
			where);
		return -1;
	}
	if (c->mem_limit >= 0 && c->mem_request > c->mem_limit) {
		ctr_err(c, CFG_ERR,
			"%s.requests.memory: must be less than or equal to the memory limit",
			where);
		return -1;
	}
	return 0;
}

static bool field_path_ok(const char *p)
{
	static const char *const plain[] = { "metadata.name",
					     "metadata.namespace",
					     "metadata.uid",
					     "spec.nodeName",
					     "spec.serviceAccountName",
					     "status.hostIP",
					     "status.hostIPs",
					     "status.podIP",
					     "status.podIPs",
					     NULL };
	for (size_t i = 0; plain[i]; i++)
		if (!strcmp(p, plain[i]))
			return true;
	const char *rest = NULL;
	if (!strncmp(p, "metadata.labels['", 17))
		rest = p + 17;
	else if (!strncmp(p, "metadata.annotations['", 22))
		rest = p + 22;
	if (!rest)
		return false;
	size_t n = strlen(rest);
	return n > 2 && !strcmp(rest + n - 2, "']") && !memchr(rest, '\'', n - 2);
}

static int parse_env(struct rt_ctr_spec *c, const char *where, const json_t *env)
{
	static const char *const keys[] = { "name", "value", "valueFrom", NULL };
	static const char *const from_keys[] = { "fieldRef", "resourceFieldRef", "configMapKeyRef",
						 "secretKeyRef", NULL };
	if (!env || json_is_null(env))
		return 0;
	if (!json_is_array(env)) {
		ctr_err(c, CFG_ERR, "%s: must be a list", where);
		return -1;
	}
	size_t n = json_array_size(env), i;
	if (!(c->env = calloc(n ? n : 1, sizeof(*c->env))))
		return -1;
	const json_t *e;
	json_array_foreach (env, i, e) {
		char w[160];
		const char *k;
		snprintf(w, sizeof(w), "%s[%zu]", where, i);
		if (!json_is_object(e)) {
			ctr_err(c, CFG_ERR, "%s: must be an object", w);
			return -1;
		}
		if ((k = unknown_key(e, keys))) {
			ctr_err(c, CFG_ERR, "%s.%s: unknown field", w, k);
			return -1;
		}
		const char *name = str_at(e, "name");
		if (!name || !*name || strchr(name, '=')) {
			ctr_err(c, CFG_ERR, "%s.name: a name without \"=\" is required", w);
			return -1;
		}
		struct rt_env_spec *es = &c->env[c->n_env++];
		if (!(es->name = strdup(name)))
			return -1;
		const json_t *vf = json_object_get(e, "valueFrom");
		const json_t *val = json_object_get(e, "value");
		if (vf && val) {
			ctr_err(c, CFG_ERR, "%s: value and valueFrom are mutually exclusive", w);
			return -1;
		}
		if (!vf) {
			if (val && !json_is_string(val)) {
				ctr_err(c, CFG_ERR, "%s.value: must be a string", w);
				return -1;
			}
			es->src = RT_ENV_VALUE;
			if (!(es->value = strdup(val ? json_string_value(val) : "")))
				return -1;
			continue;
		}
		if (!json_is_object(vf) || (k = unknown_key(vf, from_keys)) ||
		    json_object_size(vf) != 1) {
			ctr_err(c, CFG_ERR, "%s.valueFrom%s%s: %s", w, k ? "." : "", k ? k : "",
				k ? "unknown field" : "exactly one source is required");
			return -1;
		}
		if (json_object_get(vf, "configMapKeyRef") || json_object_get(vf, "secretKeyRef")) {
			ctr_err(c, CFG_ERR, "%s.valueFrom.%s: not supported on this node", w,
				json_object_get(vf, "secretKeyRef") ? "secretKeyRef"
								    : "configMapKeyRef");
			return -1;
		}
		const json_t *fr = json_object_get(vf, "fieldRef");
		if (fr) {
			const char *path = str_at(fr, "fieldPath");
			if (!path || !field_path_ok(path)) {
				ctr_err(c, CFG_ERR,
					"%s.valueFrom.fieldRef.fieldPath: \"%s\" is not "
					"a supported field",
					w, path ? path : "");
				return -1;
			}
			es->src = RT_ENV_FIELD;
			if (!(es->value = strdup(path)))
				return -1;
			continue;
		}
		const json_t *rr = json_object_get(vf, "resourceFieldRef");
		const char *res = str_at(rr, "resource");
		if (!res || (strcmp(res, "limits.cpu") && strcmp(res, "limits.memory") &&
			     strcmp(res, "requests.cpu") && strcmp(res, "requests.memory"))) {
			ctr_err(c, CFG_ERR,
				"%s.valueFrom.resourceFieldRef.resource: \"%s\" is not "
				"supported",
				w, res ? res : "");
			return -1;
		}
		const char *cn = str_at(rr, "containerName");
		if (cn && *cn && strcmp(cn, c->name)) {
			ctr_err(c, CFG_ERR,
				"%s.valueFrom.resourceFieldRef.containerName: only the container "
				"itself is supported",
				w);
			return -1;
		}
		es->src = RT_ENV_RESOURCE;
		es->divisor_milli = 1000;
		const json_t *div = json_object_get(rr, "divisor");
		if (div) {
			char dw[200];
			snprintf(dw, sizeof(dw), "%s.valueFrom.resourceFieldRef.divisor", w);
			if (parse_quantity(c, dw, div, &es->divisor_milli))
				return -1;
			if (es->divisor_milli <= 0) {
				ctr_err(c, CFG_ERR, "%s: must be positive", dw);
				return -1;
			}
		}
		if (!(es->value = strdup(res)))
			return -1;
	}
	return 0;
}

/* runAsUser, runAsGroup and runAsNonRoot of a securityContext (its other fields have no
 * effect here). -1 with msg set when one is malformed. */
static int parse_security(const json_t *sc, const char *where, int64_t *uid, int64_t *gid,
			  int *nonroot, char *msg, size_t len)
{
	static const char *const ids[2] = { "runAsUser", "runAsGroup" };
	int64_t *outs[2] = { uid, gid };
	if (!sc || json_is_null(sc))
		return 0;
	if (!json_is_object(sc)) {
		snprintf(msg, len, "%s: must be an object", where);
		return -1;
	}
	for (int i = 0; i < 2; i++) {
		const json_t *v = json_object_get(sc, ids[i]);
		if (!v || json_is_null(v))
			continue;
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 2147483647) {
			snprintf(msg, len, "%s.%s: must be an integer 0..2147483647", where,
				 ids[i]);
			return -1;
		}
		*outs[i] = json_integer_value(v);
	}
	const json_t *nr = json_object_get(sc, "runAsNonRoot");
	if (nr && !json_is_null(nr)) {
		if (!json_is_boolean(nr)) {
			snprintf(msg, len, "%s.runAsNonRoot: must be true or false", where);
			return -1;
		}
		*nonroot = json_is_true(nr);
	}
	return 0;
}

static int parse_container(struct rt_pod_spec *s, size_t idx, size_t pos, bool init,
			   const json_t *o, const char *pod_rootfs, struct rt_ctr_spec *c)
{
	static const char *const keys[] = {
		"name", "image", "command", "args", "workingDir", "ports", "env", "resources",
		"livenessProbe", "readinessProbe", "startupProbe", "lifecycle",
		/* accepted, no effect here */
		"imagePullPolicy", "terminationMessagePath", "terminationMessagePolicy",
		"securityContext", "stdin", "stdinOnce", "tty", "resizePolicy",
		/* known, refused below with a reason */
		"envFrom", "volumeMounts", "volumeDevices", "restartPolicy", NULL
	};
	char where[64], w[128];
	const char *k;

	snprintf(where, sizeof(where), "spec.%s[%zu]", init ? "initContainers" : "containers", pos);
	c->init = init;
	c->cpu_limit = c->cpu_request = c->mem_limit = c->mem_request = -1;
	const char *name = str_at(o, "name");
	if (!(c->name = strdup(name ? name : "")))
		return -1;
	if (!json_is_object(o)) {
		ctr_err(c, CFG_ERR, "%s: must be an object", where);
		return 0;
	}
	if (!dns_label(name)) {
		ctr_err(c, CFG_ERR, "%s.name: \"%s\" must be a DNS label (a-z, 0-9, -)", where,
			name ? name : "");
		return 0;
	}
	for (size_t i = 0; i < idx; i++) {
		if (!strcmp(s->ctrs[i].name, name)) {
			ctr_err(c, CFG_ERR, "%s.name: \"%s\" is used by another container", where,
				name);
			return 0;
		}
	}
	if ((k = unknown_key(o, keys))) {
		ctr_err(c, CFG_ERR, "%s.%s: unknown field", where, k);
		return 0;
	}
	if (init) {
		/* Kubernetes allows neither on an init container (sidecars, with restartPolicy,
		 * are refused below). */
		static const char *const not_init[] = { "livenessProbe", "readinessProbe",
							"startupProbe", "lifecycle", NULL };
		for (size_t i = 0; not_init[i]; i++) {
			if (json_object_get(o, not_init[i])) {
				ctr_err(c, CFG_ERR, "%s.%s: not allowed in an init container",
					where, not_init[i]);
				return 0;
			}
		}
	}
	static const char *const refused[] = { "envFrom", "volumeMounts", "volumeDevices",
					       "restartPolicy", NULL };
	for (size_t i = 0; refused[i]; i++) {
		const json_t *v = json_object_get(o, refused[i]);
		if (v && !json_is_null(v) && !(json_is_array(v) && json_array_size(v) == 0)) {
			ctr_err(c, CFG_ERR, "%s.%s: not supported on this node", where, refused[i]);
			return 0;
		}
	}
	const char *image = str_at(o, "image");
	if (!(c->image = strdup(image ? image : "")))
		return -1;
	const char *rootfs = image && image[0] == '/' ? image : pod_rootfs;
	if (rootfs && *rootfs && !(c->rootfs = strdup(rootfs)))
		return -1;
	const char *wd = str_at(o, "workingDir");
	if (wd && *wd) {
		if (wd[0] != '/') {
			ctr_err(c, CFG_ERR, "%s.workingDir: \"%s\" must be an absolute path", where,
				wd);
			return 0;
		}
		if (!(c->workdir = strdup(wd)))
			return -1;
	}
	if (strv_at(o, "command", &c->command) < 0) {
		ctr_err(c, CFG_ERR, "%s.command: must be a list of strings", where);
		return 0;
	}
	if (strv_at(o, "args", &c->args) < 0) {
		ctr_err(c, CFG_ERR, "%s.args: must be a list of strings", where);
		return 0;
	}
	const json_t *ports = json_object_get(o, "ports");
	if (ports && !json_is_array(ports)) {
		ctr_err(c, CFG_ERR, "%s.ports: must be a list", where);
		return 0;
	}
	snprintf(w, sizeof(w), "%s.env", where);
	if (parse_env(c, w, json_object_get(o, "env")))
		return c->err_reason ? 0 : -1;
	snprintf(w, sizeof(w), "%s.resources", where);
	if (parse_resources(c, w, json_object_get(o, "resources")))
		return c->err_reason ? 0 : -1;
	static const char *const probe_keys[] = { "livenessProbe", "readinessProbe",
						  "startupProbe" };
	for (int i = 0; i < RT_N_PROBES; i++) {
		snprintf(w, sizeof(w), "%s.%s", where, probe_keys[i]);
		if (parse_probe(c, w, json_object_get(o, probe_keys[i]), ports, i, &c->probes[i]))
			return c->err_reason ? 0 : -1;
	}
	const json_t *lc = json_object_get(o, "lifecycle");
	if (lc && !json_is_null(lc)) {
		static const char *const lc_keys[] = { "preStop", "postStart", "stopSignal", NULL };
		if (!json_is_object(lc) || (k = unknown_key(lc, lc_keys))) {
			ctr_err(c, CFG_ERR, "%s.lifecycle%s%s: unknown field", where, k ? "." : "",
				k ? k : "");
			return 0;
		}
		if (json_object_get(lc, "postStart") || json_object_get(lc, "stopSignal")) {
			ctr_err(c, CFG_ERR, "%s.lifecycle.%s: not supported on this node", where,
				json_object_get(lc, "postStart") ? "postStart" : "stopSignal");
			return 0;
		}
		const json_t *ps = json_object_get(lc, "preStop");
		if (ps) {
			struct rt_handler h = { 0 };
			snprintf(w, sizeof(w), "%s.lifecycle.preStop", where);
			if (parse_handler(c, w, ps, ports, &h)) {
				handler_free(&h);
				return c->err_reason ? 0 : -1;
			}
			if (h.kind != RT_H_EXEC) {
				handler_free(&h);
				ctr_err(c, CFG_ERR, "%s: only exec hooks are supported", w);
				return 0;
			}
			c->prestop = h.argv;
			h.argv = NULL;
			handler_free(&h);
		}
	}
	char msg[256];
	int64_t uid = s->run_as_user, gid = s->run_as_group;
	int nonroot = s->run_as_non_root;
	snprintf(w, sizeof(w), "%s.securityContext", where);
	if (parse_security(json_object_get(o, "securityContext"), w, &uid, &gid, &nonroot, msg,
			   sizeof(msg))) {
		ctr_err(c, CFG_ERR, "%s", msg);
		return 0;
	}
	if (nonroot == 1 && uid <= 0) {
		ctr_err(c, CFG_ERR,
			"%s.runAsNonRoot: the container would run as root (no image says "
			"otherwise here: set runAsUser to a non-zero uid)",
			w);
		return 0;
	}
	c->uid = uid;
	c->gid = gid;
	/* Checked last: a config error says more than a missing command. */
	if (!c->command || !c->command[0] || !*c->command[0]) {
		ctr_err(c, CREATE_ERR,
			"%s.command: required (this node runs no images, so nothing supplies an "
			"entrypoint)",
			where);
		return 0;
	}
	if (c->rootfs) {
		struct stat st;
		if (stat(c->rootfs, &st) < 0 || !S_ISDIR(st.st_mode)) {
			ctr_err(c, CREATE_ERR, "%s.image: root filesystem %s is not a directory",
				where, c->rootfs);
			return 0;
		}
	}
	return 0;
}

int rt_spec_parse(const json_t *pod, struct rt_pod_spec *s, const char **why)
{
	memset(s, 0, sizeof(*s));
	const json_t *md = json_object_get(pod, "metadata"), *spec = json_object_get(pod, "spec");
	const char *uid = str_at(md, "uid"), *name = str_at(md, "name"),
		   *ns = str_at(md, "namespace");
	if (!json_is_object(pod) || !uid || !*uid || !name || !*name) {
		*why = "metadata.uid and metadata.name are required";
		return -EINVAL;
	}
	for (const char *p = uid; *p; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.') ||
		    strlen(uid) > 128 || !strcmp(uid, ".") || !strcmp(uid, "..")) {
			*why = "metadata.uid: must be up to 128 characters of [A-Za-z0-9._-]";
			return -EINVAL;
		}
	}
	if (!(s->uid = strdup(uid)) || !(s->name = strdup(name)) ||
	    !(s->ns = strdup(ns && *ns ? ns : "default")))
		goto nomem;

	/* The controller owner, for addresses kept across replacements. */
	const json_t *refs = json_object_get(md, "ownerReferences"), *ref;
	size_t i;
	json_array_foreach (refs, i, ref) {
		if (json_is_true(json_object_get(ref, "controller")) && str_at(ref, "uid")) {
			if (!(s->owner_uid = strdup(str_at(ref, "uid"))))
				goto nomem;
			break;
		}
	}
	const json_t *ann = json_object_get(md, "annotations");
	const char *keep = str_at(ann, "shoal.io/keep-address");
	s->keep_address = keep && !strcmp(keep, "true") && s->owner_uid;
	const char *pod_rootfs = str_at(ann, "shoal.io/rootfs");

	s->grace = 30;
	s->run_as_user = s->run_as_group = -1;
	s->run_as_non_root = -1;
	char msg[256];
	if (parse_security(json_object_get(spec, "securityContext"), "spec.securityContext",
			   &s->run_as_user, &s->run_as_group, &s->run_as_non_root, msg,
			   sizeof(msg)))
		pod_err(s, CFG_ERR, "%s", msg);
	const char *hn = str_at(spec, "hostname");
	if (!(s->hostname = strndup(hn && *hn ? hn : name, 63)))
		goto nomem;
	const json_t *ctrs = json_object_get(spec, "containers"),
		     *inits = json_object_get(spec, "initContainers");
	size_t n = json_array_size(ctrs), ni = json_array_size(inits);
	if (!(s->ctrs = calloc(n + ni ? n + ni : 1, sizeof(*s->ctrs))))
		goto nomem;
	for (i = 0; i < n + ni; i++) {
		s->n_ctrs = i + 1;
		bool init = i >= n;
		const json_t *o = init ? json_array_get(inits, i - n) : json_array_get(ctrs, i);
		if (parse_container(s, i, init ? i - n : i, init, o, pod_rootfs, &s->ctrs[i]))
			goto nomem;
	}
	s->n_apps = n;

	if (!json_is_object(spec)) {
		pod_err(s, CFG_ERR, "spec: must be an object");
		return 0;
	}
	if (n == 0) {
		pod_err(s, CFG_ERR, "spec.containers: at least one container is required");
		return 0;
	}
	const char *rp = str_at(spec, "restartPolicy");
	if (!rp || !strcmp(rp, "Always"))
		s->restart = RT_RESTART_ALWAYS;
	else if (!strcmp(rp, "OnFailure"))
		s->restart = RT_RESTART_ONFAILURE;
	else if (!strcmp(rp, "Never"))
		s->restart = RT_RESTART_NEVER;
	else
		pod_err(s, CFG_ERR, "spec.restartPolicy: \"%s\" must be Always, OnFailure or Never",
			rp);
	const json_t *g = json_object_get(spec, "terminationGracePeriodSeconds");
	if (g && !json_is_null(g)) {
		if (!json_is_integer(g) || json_integer_value(g) < 0 ||
		    json_integer_value(g) > 86400 * 365)
			pod_err(s, CFG_ERR,
				"spec.terminationGracePeriodSeconds: must be an integer >= 0");
		else
			s->grace = (long)json_integer_value(g);
	}
	if (inits && !json_is_null(inits) && !json_is_array(inits))
		pod_err(s, CFG_ERR, "spec.initContainers: must be a list");
	if (json_is_true(json_object_get(spec, "hostNetwork")))
		pod_err(s, CFG_ERR, "spec.hostNetwork: not supported on this node");
	if (hn && *hn && !dns_label(hn))
		pod_err(s, CFG_ERR, "spec.hostname: \"%s\" must be a DNS label", hn);
	return 0;
nomem:
	rt_spec_free(s);
	*why = "out of memory";
	return -ENOMEM;
}

void rt_spec_free(struct rt_pod_spec *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_ctrs; i++) {
		struct rt_ctr_spec *c = &s->ctrs[i];
		free(c->name);
		free(c->image);
		free(c->rootfs);
		free(c->workdir);
		rt_strv_free(c->command);
		rt_strv_free(c->args);
		for (size_t j = 0; j < c->n_env; j++) {
			free(c->env[j].name);
			free(c->env[j].value);
		}
		free(c->env);
		for (int j = 0; j < RT_N_PROBES; j++)
			handler_free(&c->probes[j].h);
		rt_strv_free(c->prestop);
		free(c->err_reason);
		free(c->err_msg);
	}
	free(s->ctrs);
	free(s->uid);
	free(s->ns);
	free(s->name);
	free(s->hostname);
	free(s->owner_uid);
	free(s->err_reason);
	free(s->err_msg);
	memset(s, 0, sizeof(*s));
}

/* ---- environment and $(VAR) expansion ---- */

/* The value of NAME in env ("NAME=value" strings), or NULL. */
static const char *env_get(char *const *env, const char *name, size_t nlen)
{
	for (size_t i = 0; env && env[i]; i++)
		if (!strncmp(env[i], name, nlen) && env[i][nlen] == '=')
			return env[i] + nlen + 1;
	return NULL;
}

/* Kubernetes' expansion: $(VAR) is VAR's value when defined (else left as written), $$ is $. */
static char *expand(const char *s, char *const *env)
{
	size_t cap = strlen(s) + 1, len = 0;
	char *out = malloc(cap);
	if (!out)
		return NULL;
	for (const char *p = s; *p;) {
		const char *add = p;
		size_t alen = 1, skip = 1;
		if (p[0] == '$' && p[1] == '$') {
			skip = 2;
		} else if (p[0] == '$' && p[1] == '(') {
			const char *close = strchr(p + 2, ')');
			if (close) {
				const char *v = env_get(env, p + 2, (size_t)(close - p - 2));
				skip = (size_t)(close - p) + 1;
				if (v) {
					add = v;
					alen = strlen(v);
				} else {
					alen = skip;
				}
			}
		}
		if (len + alen + 1 > cap) {
			cap = (len + alen + 1) * 2;
			char *n = realloc(out, cap);
			if (!n) {
				free(out);
				return NULL;
			}
			out = n;
		}
		memcpy(out + len, add, alen);
		len += alen;
		p += skip;
	}
	out[len] = '\0';
	return out;
}

char **rt_strv_expand(char *const *v, char *const *env)
{
	size_t n = rt_strv_len(v);
	char **r = calloc(n + 1, sizeof(*r));
	if (!r)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (!(r[i] = expand(v[i], env))) {
			rt_strv_free(r);
			return NULL;
		}
	}
	return r;
}

static const char *pod_field(const struct rt_env_ctx *ctx, const char *path, char *buf, size_t len)
{
	const json_t *md = json_object_get(ctx->pod, "metadata"),
		     *spec = json_object_get(ctx->pod, "spec");
	if (!strcmp(path, "metadata.name"))
		return str_at(md, "name");
	if (!strcmp(path, "metadata.namespace"))
		return str_at(md, "namespace") ? str_at(md, "namespace") : "default";
	if (!strcmp(path, "metadata.uid"))
		return str_at(md, "uid");
	if (!strcmp(path, "spec.nodeName"))
		return ctx->node;
	if (!strcmp(path, "spec.serviceAccountName"))
		return str_at(spec, "serviceAccountName") ? str_at(spec, "serviceAccountName")
							  : "default";
	if (!strcmp(path, "status.hostIP") || !strcmp(path, "status.hostIPs"))
		return ctx->host_ip;
	if (!strcmp(path, "status.podIP") || !strcmp(path, "status.podIPs"))
		return ctx->pod_ip;
	const char *key = NULL, *map = NULL;
	if (!strncmp(path, "metadata.labels['", 17)) {
		key = path + 17;
		map = "labels";
	} else if (!strncmp(path, "metadata.annotations['", 22)) {
		key = path + 22;
		map = "annotations";
	}
	if (!key)
		return NULL;
	snprintf(buf, len, "%.*s", (int)(strlen(key) - 2), key);
	return str_at(json_object_get(md, map), buf);
}

static int env_set(char ***envp, size_t *n, const char *name, const char *value)
{
	char *kv;
	if (asprintf(&kv, "%s=%s", name, value ? value : "") < 0)
		return -ENOMEM;
	size_t nlen = strlen(name);
	for (size_t i = 0; i < *n; i++) {
		if (!strncmp((*envp)[i], name, nlen) && (*envp)[i][nlen] == '=') {
			free((*envp)[i]);
			(*envp)[i] = kv;
			return 0;
		}
	}
	char **ne = realloc(*envp, (*n + 2) * sizeof(char *));
	if (!ne) {
		free(kv);
		return -ENOMEM;
	}
	*envp = ne;
	ne[(*n)++] = kv;
	ne[*n] = NULL;
	return 0;
}

static void resource_value(const struct rt_ctr_spec *c, const struct rt_env_spec *e, char *buf,
			   size_t len)
{
	int64_t milli;
	bool cpu = strstr(e->value, "cpu") != NULL;
	if (!strcmp(e->value, "limits.cpu"))
		milli = c->cpu_limit;
	else if (!strcmp(e->value, "requests.cpu"))
		milli = c->cpu_request;
	else if (!strcmp(e->value, "limits.memory"))
		milli = c->mem_limit >= 0 ? c->mem_limit * 1000 : -1;
	else
		milli = c->mem_request >= 0 ? c->mem_request * 1000 : -1;
	if (milli < 0 && !strncmp(e->value, "limits.", 7)) {
		/* No limit: the node's capacity, as Kubernetes reports allocatable. */
		if (cpu) {
			long n = sysconf(_SC_NPROCESSORS_ONLN);
			milli = (n > 0 ? n : 1) * 1000;
		} else {
			long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
			milli = (int64_t)(pages > 0 ? pages : 0) * (psz > 0 ? psz : 4096) * 1000;
		}
	}
	if (milli < 0)
		milli = 0;
	int64_t v = milli / e->divisor_milli + (milli % e->divisor_milli ? 1 : 0);
	snprintf(buf, len, "%lld", (long long)v);
}

char **rt_spec_env(const struct rt_ctr_spec *c, const struct rt_env_ctx *ctx)
{
	char **env = calloc(1, sizeof(char *)), buf[512];
	size_t n = 0;
	if (!env)
		return NULL;
	if (env_set(&env, &n, "PATH",
		    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") ||
	    env_set(&env, &n, "HOSTNAME", ctx->hostname))
		goto fail;
	for (size_t i = 0; i < c->n_env; i++) {
		const struct rt_env_spec *e = &c->env[i];
		char *v = NULL;
		const char *val = "";
		if (e->src == RT_ENV_VALUE) {
			if (!(v = expand(e->value, env)))
				goto fail;
			val = v;
		} else if (e->src == RT_ENV_FIELD) {
			val = pod_field(ctx, e->value, buf, sizeof(buf));
		} else {
			resource_value(c, e, buf, sizeof(buf));
			val = buf;
		}
		int err = env_set(&env, &n, e->name, val ? val : "");
		free(v);
		if (err)
			goto fail;
	}
	return env;
fail:
	rt_strv_free(env);
	return NULL;
}

char **rt_spec_argv(const struct rt_ctr_spec *c, char *const *env)
{
	size_t nc = rt_strv_len(c->command), na = rt_strv_len(c->args);
	char **all = calloc(nc + na + 1, sizeof(char *));
	if (!all)
		return NULL;
	memcpy(all, c->command, nc * sizeof(char *));
	if (na)
		memcpy(all + nc, c->args, na * sizeof(char *));
	char **r = rt_strv_expand(all, env);
	free(all);
	return r;
}
