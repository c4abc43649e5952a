// SPDX-License-Identifier: Apache-2.0
/*
 * The API verbs: get, list (from the watch cache, or from the store at one revision when
 * paginated), create, update, patch, delete, and the status, binding and scale
 * sub-resources. Every write is checked whole (schema, defaults, validation, allocation)
 * before anything is submitted, and is one store transaction guarded by the object's mod
 * revision, so a write either lands whole or not at all. A write whose transaction lost a
 * race it can retry (a patch, an unconditional update, a generated name, an allocated
 * address) is run again from the start against the newer object.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_internal.h"
#include "json_merge.h"
#include "log.h"
#include "strbuf.h"

#define MAX_ATTEMPTS 8

/* ---- small helpers ---------------------------------------------------------------------- */

static const char *kind_group_name(const struct api_kind *k, char *buf, size_t len)
{
	if (*k->group)
		snprintf(buf, len, "%s.%s", k->resource, k->group);
	else
		snprintf(buf, len, "%s", k->resource);
	return buf;
}

static int not_found(struct api_req *r)
{
	char kg[96];
	return api_respond_status(r, 404, "NotFound", "%s \"%s\" not found",
				  kind_group_name(r->kind, kg, sizeof(kg)), r->name);
}

static int conflict(struct api_req *r)
{
	char kg[96];
	return api_respond_status(r, 409, "Conflict",
				  "Operation cannot be fulfilled on %s \"%s\": the object has been "
				  "modified; please apply your changes to the latest version and try "
				  "again",
				  kind_group_name(r->kind, kg, sizeof(kg)), r->name);
}

static int respond_obj(struct api_req *r, int code, const struct wc_obj *o)
{
	return api_respond_json(r, code, o->json, o->len);
}

static json_t *meta_of(json_t *obj)
{
	json_t *m = json_object_get(obj, "metadata");
	if (!json_is_object(m)) {
		m = json_object();
		if (!m || json_object_set_new(obj, "metadata", m))
			return NULL;
	}
	return m;
}

static const char *str_at(const json_t *obj, const char *a, const char *b)
{
	const json_t *x = json_object_get(obj, a);
	if (b)
		x = json_object_get(x, b);
	return json_string_value(x);
}

static bool is_kind(const struct api_req *r, const char *kind)
{
	return strcmp(r->kind->kind, kind) == 0;
}

static json_t *parse_obj(const char *s, size_t len)
{
	json_error_t e;
	return json_loadb(s, len, 0, &e);
}

/* Parses the request body into a JSON object; answers 400 and returns NULL when it cannot. */
static json_t *parse_body(struct api_req *r, int *ret)
{
	json_error_t e;
	json_t *obj;

	if (!r->body || r->body_len == 0) {
		*ret = api_respond_status(r, 400, "BadRequest", "request body is empty: want a JSON "
								"object");
		return NULL;
	}
	if (api_json_depth(r->body, r->body_len) > API_MAX_DEPTH) {
		*ret = api_respond_status(r, 400, "BadRequest",
					  "request body is nested deeper than %d levels",
					  API_MAX_DEPTH);
		return NULL;
	}
	obj = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &e);
	if (!obj) {
		*ret = api_respond_status(r, 400, "BadRequest",
					  "malformed JSON at line %d, column %d: %s", e.line,
					  e.column, e.text);
		return NULL;
	}
	if (!json_is_object(obj)) {
		json_decref(obj);
		*ret = api_respond_status(r, 400, "BadRequest", "request body must be a JSON "
								"object");
		return NULL;
	}
	return obj;
}

static bool strict(struct api_req *r)
{
	const char *fv = api_query(r, "fieldValidation");
	return fv && strcmp(fv, "Strict") == 0;
}

/* The identity, schema, defaults and validation every object written goes through. Answers
 * and returns non-zero (the MHD result in *ret) when the object is not acceptable. */
static int check_object(struct api_req *r, json_t *obj, const json_t *old, bool status_only,
			int *ret)
{
	struct api_errors errs = { 0 };
	char av[64], msg[8192];
	const char *v;

	api_kind_api_version(r->kind, av, sizeof(av));
	v = str_at(obj, "apiVersion", NULL);
	if (v && strcmp(v, av) != 0) {
		*ret = api_respond_status(r, 400, "BadRequest",
					  "apiVersion: the API version in the data (%s) does not "
					  "match the expected API version (%s)",
					  v, av);
		return -1;
	}
	v = str_at(obj, "kind", NULL);
	if (v && strcmp(v, r->kind->kind) != 0) {
		*ret = api_respond_status(r, 400, "BadRequest",
					  "kind: the kind in the data (%s) does not match the "
					  "expected kind (%s)",
					  v, r->kind->kind);
		return -1;
	}
	if (json_object_set_new(obj, "apiVersion", json_string(av)) ||
	    json_object_set_new(obj, "kind", json_string(r->kind->kind))) {
		*ret = api_respond_status(r, 500, NULL, "out of memory");
		return -1;
	}
	json_t *meta = json_object_get(obj, "metadata");
	if (meta && !json_is_object(meta)) {
		*ret = api_respond_status(r, 400, "BadRequest", "metadata: must be an object");
		return -1;
	}
	meta = meta_of(obj);
	v = str_at(obj, "metadata", "namespace");
	if (r->kind->namespaced) {
		if (v && *v && strcmp(v, r->ns) != 0) {
			*ret = api_respond_status(r, 400, "BadRequest",
						  "metadata.namespace: the namespace of the provided "
						  "object (%s) does not match the namespace sent on the "
						  "request (%s)",
						  v, r->ns);
			return -1;
		}
		json_object_set_new(meta, "namespace", json_string(r->ns));
	} else {
		json_object_del(meta, "namespace");
	}

	json_decref(r->unknown);
	r->unknown = json_array();
	api_schema_check(r->kind, obj, r->unknown, &errs);
	if (json_array_size(r->unknown) && strict(r)) {
		size_t n = 0, i;
		json_t *u;
		n += snprintf(msg, sizeof(msg), "strict decoding error:");
		json_array_foreach(r->unknown, i, u)
		{
			if (n < sizeof(msg) - 300)
				n += snprintf(msg + n, sizeof(msg) - n, "%s unknown field \"%s\"",
					      i ? "," : "", json_string_value(u));
		}
		*ret = api_respond_status(r, 400, "BadRequest", "%s", msg);
		return -1;
	}
	if (errs.n == 0) {
		if (r->kind->defaults && !status_only)
			r->kind->defaults(obj);
		api_validate_meta(r->kind, obj, &errs);
		if (r->kind->validate)
			r->kind->validate(obj, old, &errs);
	}
	if (errs.n) {
		const char *name = str_at(obj, "metadata", "name");
		api_errors_format(&errs, msg, sizeof(msg));
		*ret = api_respond_status(r, 422, "Invalid", "%s \"%s\" is invalid: %s", r->kind->kind,
					  name ? name : str_at(obj, "metadata", "generateName")
							   ? str_at(obj, "metadata", "generateName")
							   : "",
					  msg);
		return -1;
	}
	return 0;
}

/* ---- submitting writes ------------------------------------------------------------------- */

static void kv_copy(struct store_kv *dst, const struct store_kv *src)
{
	memset(dst, 0, sizeof(*dst));
	if (!src->key)
		return;
	dst->key = strdup(src->key);
	dst->value = malloc(src->value_len + 1);
	if (dst->value) {
		memcpy(dst->value, src->value, src->value_len);
		dst->value[src->value_len] = '\0';
	}
	dst->value_len = src->value_len;
	dst->create_rev = src->create_rev;
	dst->mod_rev = src->mod_rev;
	dst->version = src->version;
}

struct write_plan {
	struct store_op ops[20];
	size_t n;
	char key[768];	    /* the object's key (ops[0]); store_txn_async copies it */
	char keys[20][96];  /* allocation keys (ops[1..]) */
	bool retry_conflict; /* an unconditional write: run again on a lost race */
	bool retry_name;     /* a generated name: run again when it is taken */
	bool retry_exists;   /* an allocated value: run again on EEXIST */
	bool user_alloc;     /* the user chose the ClusterIP / nodePort */
};

void api_req_release_alloc(struct api_req *r, bool committed)
{
	struct req_alloc *a = &r->alloc;
	if (!committed) {
		for (int i = 0; i < a->nips; i++)
			alloc_ip_release(r->srv->alloc, a->ips[i]);
		for (int i = 0; i < a->nports; i++)
			alloc_port_release(r->srv->alloc, a->ports[i]);
	} else {
		for (int i = 0; i < a->nrelease_ips; i++)
			alloc_ip_release(r->srv->alloc, a->release_ips[i]);
		for (int i = 0; i < a->nrelease_ports; i++)
			alloc_port_release(r->srv->alloc, a->release_ports[i]);
	}
	memset(a, 0, sizeof(*a));
}

void api_write_done(void *arg, int err, int64_t rev, struct store_result *res, size_t n)
{
	struct api_req *r = arg;
	bool retry = false;
	int failed_op = -1;

	for (size_t i = 0; i < n; i++)
		if (res[i].err) {
			failed_op = (int)i;
			break;
		}
	api_req_release_alloc(r, err == 0);
	r->txn_err = err;
	r->txn_rev = rev;
	store_kv_clear(&r->txn_prev);
	if (n)
		kv_copy(&r->txn_prev, &res[0].prev);
	if (r->attempts < MAX_ATTEMPTS) {
		if (err == -ECONFLICT && (r->retry & RETRY_CONFLICT))
			retry = true;
		/* A taken generated name, or a taken address that was picked (not asked for). */
		if (err == -EEXIST && (failed_op == 0 ? (r->retry & RETRY_NAME)
						      : (r->retry & RETRY_ALLOC)))
			retry = true;
	}
	/* The connection is suspended; resuming it runs on_request again, which answers. */
	api_req_resume(r, retry ? REQ_RETRY : REQ_DONE);
}

static int submit(struct api_req *r, struct write_plan *p, char *value, size_t len, int code)
{
	int err;

	free(r->written);
	r->written = value;
	r->written_len = len;
	r->success_code = code;
	r->attempts++;
	r->retry = (p->retry_conflict ? RETRY_CONFLICT : 0) | (p->retry_name ? RETRY_NAME : 0) |
		   (p->retry_exists && !p->user_alloc ? RETRY_ALLOC : 0) |
		   (p->user_alloc ? USER_ALLOC : 0);
	atomic_store(&r->state, REQ_WAITING);
	api_req_suspend(r);
	err = store_txn_async(r->srv->st, p->ops, p->n, api_write_done, r);
	if (err) {
		api_req_release_alloc(r, false);
		r->txn_err = err;
		api_req_resume(r, REQ_DONE);
	}
	return MHD_YES;
}

int api_finish_write(struct api_req *r)
{
	char kg[96];
	int err = r->txn_err;

	if (err == -ECONFLICT || (err == -ENOENT && r->respond_deleted))
		return err == -ENOENT ? not_found(r) : conflict(r);
	if (err == -EEXIST) {
		if (r->retry & USER_ALLOC)
			return api_respond_status(r, 422, "Invalid",
						  "%s \"%s\" is invalid: the requested ClusterIP or "
						  "nodePort is already allocated",
						  r->kind->kind, r->name);
		return api_respond_status(r, 409, "AlreadyExists", "%s \"%s\" already exists",
					  kind_group_name(r->kind, kg, sizeof(kg)), r->name);
	}
	if (err == -ENOENT)
		return not_found(r);
	if (err == -ENOSPC)
		return api_respond_status(r, 507, "InternalError", "the store is full: %s",
					  shoal_strerror(err));
	if (err) {
		log_error("write %s %s/%s: %s", r->kind->resource, r->ns, r->name,
			  shoal_strerror(err));
		return api_respond_status(r, 500, "InternalError", "store write failed: %s",
					  shoal_strerror(err));
	}
	/* Success: the object as written, with its new resourceVersion. */
	const char *src = r->respond_deleted ? r->txn_prev.value : r->written;
	size_t srclen = r->respond_deleted ? r->txn_prev.value_len : r->written_len;
	if (!src)
		return api_respond_status(r, 200, "", "deleted");
	size_t len;
	char *out = wc_splice_rv(src, srclen, r->txn_rev, &len);
	if (!out)
		return api_respond_status(r, 500, NULL, "out of memory");
	int ret = api_respond_json(r, r->success_code, out, len);
	free(out);
	return ret;
}

/* ---- Services: ClusterIP and NodePort allocation ------------------------------------- */

static bool needs_node_ports(const char *type)
{
	return type && (strcmp(type, "NodePort") == 0 || strcmp(type, "LoadBalancer") == 0);
}

static int add_alloc_op(struct write_plan *p, const char *key, const char *owner)
{
	if (p->n >= sizeof(p->ops) / sizeof(p->ops[0]))
		return -E2BIG;
	snprintf(p->keys[p->n], sizeof(p->keys[0]), "%s", key);
	p->ops[p->n] = (struct store_op){ .type = STORE_PUT, .key = p->keys[p->n],
					  .value = owner, .value_len = strlen(owner),
					  .expect_mod_rev = 0 };
	p->n++;
	return 0;
}

static int add_release_op(struct write_plan *p, const char *key)
{
	if (p->n >= sizeof(p->ops) / sizeof(p->ops[0]))
		return -E2BIG;
	snprintf(p->keys[p->n], sizeof(p->keys[0]), "%s", key);
	p->ops[p->n] = (struct store_op){ .type = STORE_DELETE, .key = p->keys[p->n],
					  .expect_mod_rev = STORE_ANY };
	p->n++;
	return 0;
}

/* Fills spec.clusterIP and nodePorts of svc (old: the stored Service or NULL) and adds the
 * allocation keys to the plan. Answers 422 and returns -1 for a request it cannot meet. */
static int plan_service(struct api_req *r, json_t *svc, const json_t *old, struct write_plan *p,
			const char *owner, int *ret)
{
	json_t *spec = json_object_get(svc, "spec");
	const json_t *ospec = json_object_get(old, "spec");
	const char *type = str_at(svc, "spec", "type");
	const char *ip = json_string_value(json_object_get(spec, "clusterIP"));
	const char *oip = json_string_value(json_object_get(ospec, "clusterIP"));
	char key[96], buf[32];
	uint32_t a;
	int err;

	if (!spec)
		return 0;
	if (type && strcmp(type, "ExternalName") == 0)
		return 0;
	/* ClusterIP: immutable once set. */
	if (old) {
		if ((!ip || !*ip) && oip) {
			json_object_set_new(spec, "clusterIP", json_string(oip));
			ip = oip;
		} else if (oip && ip && strcmp(ip, oip) != 0) {
			*ret = api_respond_status(r, 422, "Invalid",
						  "Service \"%s\" is invalid: spec.clusterIP: Invalid "
						  "value: \"%s\": field is immutable",
						  r->name, ip);
			return -1;
		}
	} else if (!ip || !*ip) {
		err = alloc_ip_pick(r->srv->alloc, &a);
		if (err) {
			*ret = api_respond_status(r, 422, "Invalid",
						  "Service \"%s\" is invalid: spec.clusterIP: no free "
						  "address left in the service range %s",
						  r->name, alloc_cidr(r->srv->alloc));
			return -1;
		}
		r->alloc.ips[r->alloc.nips++] = a;
		snprintf(buf, sizeof(buf), "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255,
			 a & 255);
		json_object_set_new(spec, "clusterIP", json_string(buf));
		json_object_set_new(spec, "clusterIPs", json_pack("[s]", buf));
		alloc_ip_key(a, key, sizeof(key));
		if (add_alloc_op(p, key, owner))
			goto too_many;
		p->retry_exists = true;
	} else if (strcmp(ip, "None") != 0) {
		if (alloc_parse_ipv4(ip, &a)) {
			*ret = api_respond_status(r, 422, "Invalid",
						  "Service \"%s\" is invalid: spec.clusterIP: Invalid "
						  "value: \"%s\": must be a valid IPv4 address or None",
						  r->name, ip);
			return -1;
		}
		err = alloc_ip_claim(r->srv->alloc, a);
		if (err) {
			*ret = api_respond_status(
				r, 422, "Invalid",
				"Service \"%s\" is invalid: spec.clusterIP: Invalid value: \"%s\": %s",
				r->name, ip,
				err == -ERANGE ? "provided IP is not in the valid range of the "
						 "service CIDR"
					       : "provided IP is already allocated");
			if (err == -ERANGE)
				return -1;
			return -1;
		}
		r->alloc.ips[r->alloc.nips++] = a;
		if (!json_object_get(spec, "clusterIPs"))
			json_object_set_new(spec, "clusterIPs", json_pack("[s]", ip));
		alloc_ip_key(a, key, sizeof(key));
		if (add_alloc_op(p, key, owner))
			goto too_many;
		p->user_alloc = true;
		p->retry_exists = true;
	}

	/* NodePorts: kept when unchanged, claimed when given, picked when needed. */
	json_t *ports = json_object_get(spec, "ports"), *port;
	const json_t *oports = json_object_get(ospec, "ports");
	int keep[64], nkeep = 0;
	size_t i, j;
	json_array_foreach(ports, i, port)
	{
		json_int_t np = json_integer_value(json_object_get(port, "nodePort"));
		if (!needs_node_ports(type)) {
			json_object_del(port, "nodePort");
			continue;
		}
		json_int_t oldnp = 0;
		const json_t *op;
		json_array_foreach(oports, j, op)
		{
			json_int_t onp = json_integer_value(json_object_get(op, "nodePort"));
			if (!onp)
				continue;
			if ((np && onp == np) ||
			    (!np && json_integer_value(json_object_get(op, "port")) ==
					    json_integer_value(json_object_get(port, "port"))))
				oldnp = onp;
		}
		if (oldnp && (!np || np == oldnp)) {
			json_object_set_new(port, "nodePort", json_integer(oldnp));
			if (nkeep < 64)
				keep[nkeep++] = (int)oldnp;
			continue;
		}
		int chosen;
		if (np) {
			err = alloc_port_claim(r->srv->alloc, (int)np);
			if (err) {
				int lo, hi;
				alloc_port_range(r->srv->alloc, &lo, &hi);
				if (err == -ERANGE)
					*ret = api_respond_status(
						r, 422, "Invalid",
						"Service \"%s\" is invalid: spec.ports[%zu].nodePort: "
						"Invalid value: %lld: provided port is not in the "
						"valid range. The range of valid ports is %d-%d",
						r->name, i, (long long)np, lo, hi);
				else
					*ret = api_respond_status(
						r, 422, "Invalid",
						"Service \"%s\" is invalid: spec.ports[%zu].nodePort: "
						"Invalid value: %lld: provided port is already "
						"allocated",
						r->name, i, (long long)np);
				return -1;
			}
			chosen = (int)np;
			p->user_alloc = true;
		} else {
			err = alloc_port_pick(r->srv->alloc, &chosen);
			if (err) {
				*ret = api_respond_status(r, 422, "Invalid",
							  "Service \"%s\" is invalid: "
							  "spec.ports[%zu].nodePort: no free node port "
							  "left",
							  r->name, i);
				return -1;
			}
			json_object_set_new(port, "nodePort", json_integer(chosen));
		}
		if (r->alloc.nports < 16)
			r->alloc.ports[r->alloc.nports++] = chosen;
		alloc_port_key(chosen, key, sizeof(key));
		if (add_alloc_op(p, key, owner))
			goto too_many;
		p->retry_exists = true;
		if (nkeep < 64)
			keep[nkeep++] = chosen;
	}
	/* Old node ports no longer used are released with the write. */
	json_array_foreach(oports, j, port)
	{
		int onp = (int)json_integer_value(json_object_get(port, "nodePort"));
		bool kept = false;
		for (int k = 0; k < nkeep; k++)
			kept |= keep[k] == onp;
		if (!onp || kept)
			continue;
		alloc_port_key(onp, key, sizeof(key));
		if (add_release_op(p, key))
			goto too_many;
		if (r->alloc.nrelease_ports < 16)
			r->alloc.release_ports[r->alloc.nrelease_ports++] = onp;
	}
	return 0;
too_many:
	*ret = api_respond_status(r, 422, "Invalid", "Service \"%s\" is invalid: spec.ports: too "
						     "many node ports",
				  r->name);
	return -1;
}

/* The keys a Service holds, deleted with it. */
static int plan_service_release(struct api_req *r, const json_t *svc, struct write_plan *p)
{
	const char *ip = str_at(svc, "spec", "clusterIP");
	const json_t *port;
	char key[96];
	uint32_t a;
	size_t i;

	if (ip && alloc_parse_ipv4(ip, &a) == 0) {
		alloc_ip_key(a, key, sizeof(key));
		if (add_release_op(p, key))
			return -E2BIG;
		r->alloc.release_ips[r->alloc.nrelease_ips++] = a;
	}
	json_array_foreach(json_object_get(json_object_get(svc, "spec"), "ports"), i, port)
	{
		int np = (int)json_integer_value(json_object_get(port, "nodePort"));
		if (!np)
			continue;
		alloc_port_key(np, key, sizeof(key));
		if (add_release_op(p, key))
			return -E2BIG;
		if (r->alloc.nrelease_ports < 16)
			r->alloc.release_ports[r->alloc.nrelease_ports++] = np;
	}
	return 0;
}

/* ---- reads ------------------------------------------------------------------------------ */

static int handle_get(struct api_req *r)
{
	char key[768];
	struct wc_obj *o;
	int ret;

	api_key(r->kind, r->ns, r->name, key, sizeof(key));
	o = wc_get(r->srv->wc, key);
	if (!o)
		return not_found(r);
	ret = respond_obj(r, 200, o);
	wc_obj_unref(o);
	return ret;
}

int api_parse_selectors(struct api_req *r, struct selector **lsel,
			   struct field_selector **fsel, int *ret)
{
	const char *ls = api_query(r, "labelSelector"), *fs = api_query(r, "fieldSelector");
	const char *paths[16] = { "metadata.name", "metadata.namespace" };
	const char *const *extra = wc_field_paths(r->kind);
	char err[256];
	int np = 2;

	*lsel = NULL;
	*fsel = NULL;
	for (; extra && *extra && np < 15; extra++)
		paths[np++] = *extra;
	paths[np] = NULL;
	if (ls && *ls) {
		*lsel = selector_parse(ls, err, sizeof(err));
		if (!*lsel) {
			*ret = api_respond_status(r, 400, "BadRequest",
						  "unable to parse requirement: labelSelector: %s",
						  err);
			return -1;
		}
	}
	if (fs && *fs) {
		*fsel = field_selector_parse(fs, paths, err, sizeof(err));
		if (!*fsel) {
			selector_free(*lsel);
			*lsel = NULL;
			*ret = api_respond_status(r, 400, "BadRequest", "fieldSelector: %s", err);
			return -1;
		}
	}
	return 0;
}

static int list_head(struct strbuf *b, const struct api_kind *k, int64_t rev, const char *cont)
{
	char av[64];
	api_kind_api_version(k, av, sizeof(av));
	return strbuf_printf(b, "{\"kind\":\"%sList\",\"apiVersion\":\"%s\",\"metadata\":{"
			    "\"resourceVersion\":\"%lld\"%s%s%s},\"items\":[",
			 k->kind, av, (long long)rev, cont ? ",\"continue\":\"" : "",
			 cont ? cont : "", cont ? "\"" : "");
}

/* Continue tokens: base64url of {"rv":N,"start":"KEY"}. */
static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *b64_encode(const char *s, size_t n)
{
	char *out = malloc(n * 4 / 3 + 5), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (unsigned char)s[i] << 16;
		if (i + 1 < n)
			v |= (unsigned char)s[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)s[i + 2];
		*o++ = b64[(v >> 18) & 63];
		*o++ = b64[(v >> 12) & 63];
		if (i + 1 < n)
			*o++ = b64[(v >> 6) & 63];
		if (i + 2 < n)
			*o++ = b64[v & 63];
	}
	*o = '\0';
	return out;
}

static char *b64_decode(const char *s, size_t *outlen)
{
	size_t n = strlen(s);
	char *out = malloc(n * 3 / 4 + 4);
	uint32_t v = 0;
	int bits = 0;
	size_t o = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const char *p = strchr(b64, s[i]);
		if (!p || !s[i]) {
			free(out);
			return NULL;
		}
		v = (v << 6) | (uint32_t)(p - b64);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((v >> bits) & 0xff);
		}
	}
	out[o] = '\0';
	*outlen = o;
	return out;
}

static char *make_continue(int64_t rev, const char *start)
{
	json_t *t = json_pack("{s:I, s:s}", "rv", (json_int_t)rev, "start", start);
	char *s = t ? json_dumps(t, JSON_COMPACT) : NULL, *out = NULL;
	if (s)
		out = b64_encode(s, strlen(s));
	free(s);
	json_decref(t);
	return out;
}

static int parse_continue(const char *tok, const char *prefix, int64_t *rev, char *start,
			  size_t len)
{
	size_t n;
	char *s = b64_decode(tok, &n);
	json_t *t = s ? parse_obj(s, n) : NULL;
	const char *st = json_string_value(json_object_get(t, "start"));
	int err = -EINVAL;

	if (t && st && json_is_integer(json_object_get(t, "rv")) &&
	    strncmp(st, prefix, strlen(prefix)) == 0 && strlen(st) < len) {
		*rev = json_integer_value(json_object_get(t, "rv"));
		strcpy(start, st);
		err = *rev > 0 ? 0 : -EINVAL;
	}
	json_decref(t);
	free(s);
	return err;
}

/* The first page of a paged list, from the watch cache (its indexes serve a field selector
 * on spec.nodeName without reading every pod): the cache at revision N is the store at N, so
 * the continue token it hands out reads the next pages from the store at that revision. */
static int list_first_page(struct api_req *r, long limit, struct selector *lsel,
			   struct field_selector *fsel)
{
	struct wc_obj **objs;
	struct strbuf b = { 0 };
	char *next = NULL;
	size_t n, shown;
	int64_t rev;
	int err = wc_list(r->srv->wc, r->kind, r->kind->namespaced ? r->ns : NULL, lsel, fsel,
			  &objs, &n, &rev);

	if (err)
		return api_respond_status(r, 500, NULL, "list: %s", shoal_strerror(err));
	shown = n > (size_t)limit ? (size_t)limit : n;
	if (shown < n) {
		next = make_continue(rev, objs[shown]->key);
		if (!next)
			err = -ENOMEM;
	}
	if (!err)
		err = list_head(&b, r->kind, rev, next);
	for (size_t i = 0; i < shown && !err; i++)
		err = (i && strbuf_add(&b, ",", 1)) || strbuf_add(&b, objs[i]->json, objs[i]->len)
			      ? -ENOMEM
			      : 0;
	if (!err)
		err = strbuf_add(&b, "]}", 2);
	wc_list_free(objs, n);
	free(next);
	if (err) {
		free(b.s);
		return api_respond_status(r, 500, NULL, "list: %s", shoal_strerror(err));
	}
	return api_respond_json_take(r, 200, b.s, b.len);
}

/* A page read from the store at one revision, so that every page of a list is the same
 * snapshot whatever is written meanwhile. */
static int list_paged(struct api_req *r, long limit, const char *cont, struct selector *lsel,
		      struct field_selector *fsel)
{
	char prefix[512], start[1024];
	struct strbuf b = { 0 };
	int64_t rev = 0;
	size_t found = 0;
	char *next = NULL;
	int ret, err = 0;

	if (r->kind->namespaced && *r->ns)
		snprintf(prefix, sizeof(prefix), "/registry/%s/%s/", r->kind->resource, r->ns);
	else
		snprintf(prefix, sizeof(prefix), "/registry/%s/", r->kind->resource);
	snprintf(start, sizeof(start), "%s", prefix);
	if (cont && *cont) {
		if (parse_continue(cont, prefix, &rev, start, sizeof(start)))
			return api_respond_status(r, 400, "BadRequest",
						  "continue: the continue token is not valid for "
						  "this list");
	} else {
		rev = wc_revision(r->srv->wc);
	}
	struct strbuf items = { 0 };
	for (;;) {
		struct store_range_req q = { .prefix = prefix, .start_key = start,
					     .limit = (size_t)limit + 1 > 256 ? (size_t)limit + 1
									      : 256,
					     .at_rev = rev };
		struct store_range_resp resp = { 0 };
		err = store_range(r->srv->st, &q, &resp);
		if (err)
			break;
		size_t i;
		for (i = 0; i < resp.n; i++) {
			struct store_kv *kv = &resp.kvs[i];
			if (found == (size_t)limit) {
				next = make_continue(rev, kv->key);
				break;
			}
			struct wc_obj *o = wc_obj_from_stored(r->kind, kv->key, kv->value,
							      kv->value_len, kv->mod_rev);
			if (!o)
				continue;
			if (wc_obj_matches(o, NULL, lsel, fsel)) {
				if ((found && strbuf_add(&items, ",", 1)) || strbuf_add(&items, o->json, o->len))
					err = -ENOMEM;
				found++;
			}
			wc_obj_unref(o);
		}
		bool more = resp.more;
		if (resp.n && i == resp.n)
			snprintf(start, sizeof(start), "%s%c", resp.kvs[resp.n - 1].key, 1);
		store_range_resp_free(&resp);
		if (next || !more || err)
			break;
	}
	if (err == -ECOMPACTED) {
		free(items.s);
		return api_respond_status(r, 410, "Expired",
					  "The provided continue parameter is too old to display a "
					  "consistent list result. You can start a new list without "
					  "the continue parameter.");
	}
	if (err || list_head(&b, r->kind, rev, next) || (items.len && strbuf_add(&b, items.s, items.len)) ||
	    strbuf_add(&b, "]}", 2)) {
		free(items.s);
		free(b.s);
		free(next);
		return api_respond_status(r, 500, NULL, "list: %s", shoal_strerror(err ? err : -ENOMEM));
	}
	ret = api_respond_json(r, 200, b.s, b.len);
	free(items.s);
	free(b.s);
	free(next);
	return ret;
}

static int handle_list(struct api_req *r)
{
	struct selector *lsel;
	struct field_selector *fsel;
	const char *lim = api_query(r, "limit"), *cont = api_query(r, "continue");
	long limit = 0;
	int ret;

	if (api_parse_selectors(r, &lsel, &fsel, &ret))
		return ret;
	if (lim && *lim) {
		char *end;
		limit = strtol(lim, &end, 10);
		if (*end || limit < 0) {
			selector_free(lsel);
			field_selector_free(fsel);
			return api_respond_status(r, 400, "BadRequest",
						  "limit: must be a non-negative integer, got \"%s\"",
						  lim);
		}
	}
	if (limit > 0 || (cont && *cont)) {
		if (limit <= 0)
			limit = 500;
		ret = cont && *cont ? list_paged(r, limit, cont, lsel, fsel)
				    : list_first_page(r, limit, lsel, fsel);
		selector_free(lsel);
		field_selector_free(fsel);
		return ret;
	}

	struct wc_obj **objs;
	size_t n;
	int64_t rev;
	struct strbuf b = { 0 };
	int err = wc_list(r->srv->wc, r->kind, r->kind->namespaced ? r->ns : NULL, lsel, fsel,
			  &objs, &n, &rev);
	selector_free(lsel);
	field_selector_free(fsel);
	if (err)
		return api_respond_status(r, 500, NULL, "list: %s", shoal_strerror(err));
	size_t total = 64;
	for (size_t i = 0; i < n; i++)
		total += objs[i]->len + 1;
	err = strbuf_reserve(&b, total + 256);
	if (!err)
		err = list_head(&b, r->kind, rev, NULL);
	for (size_t i = 0; i < n && !err; i++)
		err = (i && strbuf_add(&b, ",", 1)) || strbuf_add(&b, objs[i]->json, objs[i]->len);
	if (!err)
		err = strbuf_add(&b, "]}", 2);
	wc_list_free(objs, n);
	if (err) {
		free(b.s);
		return api_respond_status(r, 500, NULL, "out of memory");
	}
	return api_respond_json_take(r, 200, b.s, b.len);
}

/* ---- writes ------------------------------------------------------------------------------ */

/* A client does not set status on create (Pods start Pending; defaults may fill the rest),
 * except for the kinds whose writer is also the status' owner (a node registering itself). */
static int reset_status_on_create(struct api_req *r, json_t *obj)
{
	if (!r->kind->has_status || is_kind(r, "Node") || is_kind(r, "Lease") ||
	    is_kind(r, "Event"))
		return 0;
	if (is_kind(r, "Pod"))
		return json_object_set_new(obj, "status", json_pack("{s:s}", "phase", "Pending"));
	return json_object_del(obj, "status") == 0 || !json_object_get(obj, "status") ? 0 : -1;
}

/* A new Namespace holds the "kubernetes" finalizer, which the namespace controller removes
 * (through /finalize) once the namespace is empty. Only at creation, as Kubernetes does: it
 * is not put back after it has been removed. */
static int ns_add_kubernetes_finalizer(json_t *obj)
{
	json_t *spec = json_object_get(obj, "spec"), *fins, *f;
	size_t i;

	if (!json_is_object(spec)) {
		spec = json_object();
		if (!spec || json_object_set_new(obj, "spec", spec))
			return -ENOMEM;
	}
	fins = json_object_get(spec, "finalizers");
	if (!json_is_array(fins)) {
		fins = json_array();
		if (!fins || json_object_set_new(spec, "finalizers", fins))
			return -ENOMEM;
	}
	json_array_foreach (fins, i, f)
		if (json_is_string(f) && strcmp(json_string_value(f), API_NS_FINALIZER) == 0)
			return 0;
	return json_array_append_new(fins, json_string(API_NS_FINALIZER)) ? -ENOMEM : 0;
}

static int handle_create(struct api_req *r)
{
	struct write_plan p = { 0 };
	char uid[37], now[32], owner[600];
	json_t *obj, *meta;
	const char *name, *gen;
	int ret = MHD_YES;

	obj = parse_body(r, &ret);
	if (!obj)
		return ret;
	if (reset_status_on_create(r, obj)) {
		ret = api_respond_status(r, 500, NULL, "out of memory");
		goto out;
	}
	if (check_object(r, obj, NULL, false, &ret))
		goto out;
	if (is_kind(r, "Namespace") && ns_add_kubernetes_finalizer(obj)) {
		ret = api_respond_status(r, 500, NULL, "out of memory");
		goto out;
	}
	meta = meta_of(obj);
	name = str_at(obj, "metadata", "name");
	gen = str_at(obj, "metadata", "generateName");
	if ((!name || !*name) && gen && *gen) {
		char gname[256];
		api_generate_name(gen, gname, sizeof(gname));
		json_object_set_new(meta, "name", json_string(gname));
		name = str_at(obj, "metadata", "name");
		p.retry_name = true;
	}
	if (!name || !*name) {
		ret = api_respond_status(r, 422, "Invalid",
					 "%s is invalid: metadata.name: Required value: name or "
					 "generateName is required",
					 r->kind->kind);
		goto out;
	}
	snprintf(r->name, sizeof(r->name), "%s", name);
	if (r->user.groups == AUTH_NODES && (is_kind(r, "Node") || is_kind(r, "Lease")) &&
	    strcmp(name, r->user.node) != 0) {
		ret = api_respond_status(r, 403, "Forbidden",
					 "User \"%s\" cannot create %s \"%s\": a node may create only "
					 "its own",
					 r->user.name, r->kind->resource, name);
		goto out;
	}
	if (r->kind->namespaced) {
		char nskey[320];
		snprintf(nskey, sizeof(nskey), "/registry/namespaces/%s", r->ns);
		struct wc_obj *ns = wc_get(r->srv->wc, nskey);
		if (!ns) {
			ret = api_respond_status(r, 404, "NotFound", "namespaces \"%s\" not found",
						 r->ns);
			goto out;
		}
		bool terminating = strstr(ns->json, "\"deletionTimestamp\"") != NULL;
		wc_obj_unref(ns);
		if (terminating) {
			ret = api_respond_status(r, 403, "Forbidden",
						 "%s \"%s\" is forbidden: unable to create new content "
						 "in namespace %s because it is being terminated",
						 r->kind->resource, name, r->ns);
			goto out;
		}
	}
	api_new_uid(uid);
	api_now(now);
	json_object_set_new(meta, "uid", json_string(uid));
	json_object_set_new(meta, "creationTimestamp", json_string(now));
	json_object_set_new(meta, "generation", json_integer(1));
	json_object_del(meta, "resourceVersion");
	json_object_del(meta, "deletionTimestamp");
	json_object_del(meta, "deletionGracePeriodSeconds");
	api_key(r->kind, r->ns, name, p.key, sizeof(p.key));
	p.n = 1;
	snprintf(owner, sizeof(owner), "%s/%s", r->ns, name);
	if (is_kind(r, "Service") && plan_service(r, obj, NULL, &p, owner, &ret)) {
		api_req_release_alloc(r, false);
		goto out;
	}
	size_t len;
	char *value = api_obj_dump(obj, &len);
	if (!value) {
		api_req_release_alloc(r, false);
		ret = api_respond_status(r, 500, NULL, "out of memory");
		goto out;
	}
	p.ops[0] = (struct store_op){ .type = STORE_PUT, .key = p.key, .value = value,
				      .value_len = len, .expect_mod_rev = 0 };
	ret = submit(r, &p, value, len, 201);
out:
	json_decref(obj);
	return ret;
}

/* Compares two JSON values for equality (key order ignored). */
static bool same(const json_t *a, const json_t *b)
{
	return json_merge_equal(a, b);
}

/*
 * Takes over obj (the caller's reference) and writes it as the new version of cur (an update, a patch, a status write, a scale, a
 * graceful deletion). expect: the mod revision the write is conditional on. unconditional:
 * the client named no resourceVersion, so a lost race is retried.
 */
static int write_update(struct api_req *r, json_t *obj, struct wc_obj *cur, int64_t expect,
			bool unconditional, bool status_only, int code)
{
	struct write_plan p = { 0 };
	json_t *old = parse_obj(cur->json, cur->len);
	json_t *meta, *ometa;
	char owner[600];
	int ret = MHD_YES;

	if (!old)
		return api_respond_status(r, 500, NULL, "stored object unreadable");
	ometa = json_object_get(old, "metadata");
	if (status_only) {
		/* /status: only status changes; everything else stays as stored. */
		json_t *st = json_object_get(obj, "status");
		json_t *merged = json_deep_copy(old);
		if (!merged) {
			ret = api_respond_status(r, 500, NULL, "out of memory");
			goto out;
		}
		if (st)
			json_object_set(merged, "status", st);
		else
			json_object_del(merged, "status");
		if (json_object_get(json_object_get(obj, "metadata"), "resourceVersion"))
			json_object_set(json_object_get(merged, "metadata"), "resourceVersion",
					json_object_get(json_object_get(obj, "metadata"),
							"resourceVersion"));
		json_decref(obj);
		obj = merged;
	}
	if (check_object(r, obj, old, status_only, &ret))
		goto out_obj;
	meta = meta_of(obj);
	const char *name = str_at(obj, "metadata", "name");
	if (name && strcmp(name, r->name) != 0) {
		ret = api_respond_status(r, 400, "BadRequest",
					 "metadata.name: the name of the object (%s) does not match "
					 "the name on the URL (%s)",
					 name, r->name);
		goto out_obj;
	}
	json_object_set_new(meta, "name", json_string(r->name));
	/* What the server owns is kept from the stored object. */
	static const char *const kept[] = { "uid", "creationTimestamp", "deletionTimestamp",
					    "deletionGracePeriodSeconds", "generation", NULL };
	for (const char *const *k = kept; *k; k++) {
		json_t *v = json_object_get(ometa, *k);
		if (v)
			json_object_set(meta, *k, v);
		else
			json_object_del(meta, *k);
	}
	json_object_del(meta, "resourceVersion");
	/* A Namespace's spec.finalizers change only through /finalize. */
	if (is_kind(r, "Namespace") && strcmp(r->sub, "finalize") != 0) {
		json_t *ofin = json_object_get(json_object_get(old, "spec"), "finalizers");
		json_t *spec = json_object_get(obj, "spec");
		if (!json_is_object(spec)) {
			spec = json_object();
			if (!spec || json_object_set_new(obj, "spec", spec)) {
				ret = api_respond_status(r, 500, NULL, "out of memory");
				goto out_obj;
			}
		}
		if (!ofin)
			json_object_del(spec, "finalizers");
		else if (json_object_set(spec, "finalizers", ofin)) {
			ret = api_respond_status(r, 500, NULL, "out of memory");
			goto out_obj;
		}
	}
	if (r->kind->has_status && !status_only) {
		json_t *ost = json_object_get(old, "status");
		if (ost)
			json_object_set(obj, "status", ost);
		else
			json_object_del(obj, "status");
	}
	/* generation moves with the spec only. */
	if (!same(json_object_get(obj, "spec"), json_object_get(old, "spec"))) {
		json_int_t g = json_integer_value(json_object_get(ometa, "generation"));
		json_object_set_new(meta, "generation", json_integer(g + 1));
	}
	if (is_kind(r, "Pod") && !status_only) {
		const char *onode = str_at(json_object_get(old, "spec"), "nodeName", NULL);
		const char *nnode = str_at(json_object_get(obj, "spec"), "nodeName", NULL);
		if (onode && *onode && (!nnode || strcmp(onode, nnode) != 0)) {
			ret = api_respond_status(r, 422, "Invalid",
						 "Pod \"%s\" is invalid: spec.nodeName: Forbidden: "
						 "field is immutable once the pod is bound",
						 r->name);
			goto out_obj;
		}
	}
	/* A write that changes nothing is not written, as Kubernetes does: no new
	 * resourceVersion, no watch event; the stored object is the answer. */
	json_object_del(ometa, "resourceVersion");
	if (json_equal(obj, old)) {
		ret = respond_obj(r, code, cur);
		goto out_obj;
	}
	api_key(r->kind, r->ns, r->name, p.key, sizeof(p.key));
	p.n = 1;
	p.retry_conflict = unconditional;
	snprintf(owner, sizeof(owner), "%s/%s", r->ns, r->name);
	if (is_kind(r, "Service") && !status_only && plan_service(r, obj, old, &p, owner, &ret)) {
		api_req_release_alloc(r, false);
		goto out_obj;
	}
	/* An object being deleted whose last finalizer goes is deleted now. (Only then: a
	 * terminating pod without finalizers takes status writes until its node confirms.) */
	json_t *fin = json_object_get(meta, "finalizers");
	bool ns_held = is_kind(r, "Namespace") &&
		       json_array_size(json_object_get(json_object_get(obj, "spec"), "finalizers"));
	if (json_object_get(meta, "deletionTimestamp") && json_array_size(fin) == 0 &&
	    json_array_size(json_object_get(ometa, "finalizers")) > 0 && !ns_held) {
		p.ops[0] = (struct store_op){ .type = STORE_DELETE, .key = p.key,
					      .expect_mod_rev = expect };
		r->respond_deleted = true;
		if (is_kind(r, "Service") && plan_service_release(r, old, &p)) {
			ret = api_respond_status(r, 500, NULL, "too many allocations");
			goto out_obj;
		}
		ret = submit(r, &p, NULL, 0, 200);
		goto out_obj;
	}
	size_t len;
	char *value = api_obj_dump(obj, &len);
	if (!value) {
		api_req_release_alloc(r, false);
		ret = api_respond_status(r, 500, NULL, "out of memory");
		goto out_obj;
	}
	p.ops[0] = (struct store_op){ .type = STORE_PUT, .key = p.key, .value = value,
				      .value_len = len, .expect_mod_rev = expect };
	ret = submit(r, &p, value, len, code);
out_obj:
	json_decref(obj);
out:
	json_decref(old);
	return ret;
}

static int64_t body_rv(const json_t *obj, bool *given, bool *bad)
{
	const char *rv = str_at(obj, "metadata", "resourceVersion");
	char *end;
	*given = false;
	*bad = false;
	if (!rv || !*rv)
		return 0;
	*given = true;
	long long v = strtoll(rv, &end, 10);
	if (*end || v <= 0)
		*bad = true;
	return v;
}

static int handle_update(struct api_req *r, bool status_only)
{
	char key[768];
	struct wc_obj *cur;
	json_t *obj;
	bool given, bad;
	int ret = MHD_YES;

	obj = parse_body(r, &ret);
	if (!obj)
		return ret;
	api_key(r->kind, r->ns, r->name, key, sizeof(key));
	cur = wc_get(r->srv->wc, key);
	if (!cur) {
		json_decref(obj);
		return not_found(r);
	}
	int64_t rv = body_rv(obj, &given, &bad);
	if (bad) {
		ret = api_respond_status(r, 400, "BadRequest",
					 "metadata.resourceVersion: must be a positive integer");
	} else if (given && rv != cur->rev) {
		ret = conflict(r);
	} else {
		ret = write_update(r, obj, cur, given ? rv : cur->rev, !given, status_only, 200);
		obj = NULL;
	}
	json_decref(obj);
	wc_obj_unref(cur);
	return ret;
}

static int handle_patch(struct api_req *r, bool status_only)
{
	const char *ct = api_header(r, "Content-Type");
	char key[768];
	struct wc_obj *cur;
	json_t *patch, *obj;
	bool given, bad;
	int ret = MHD_YES;

	if (!ct || (strncmp(ct, "application/merge-patch+json", 28) != 0 &&
		    strncmp(ct, "application/strategic-merge-patch+json", 38) != 0))
		return api_respond_status(r, 415, "UnsupportedMediaType",
					  "the body of the request was in an unknown format - "
					  "accepted media types include: application/merge-patch+json");
	patch = parse_body(r, &ret);
	if (!patch)
		return ret;
	api_key(r->kind, r->ns, r->name, key, sizeof(key));
	cur = wc_get(r->srv->wc, key);
	if (!cur) {
		json_decref(patch);
		return not_found(r);
	}
	int64_t rv = body_rv(patch, &given, &bad);
	json_t *stored = parse_obj(cur->json, cur->len);
	obj = stored ? json_merge_patch(stored, patch) : NULL;
	json_decref(stored);
	if (bad) {
		ret = api_respond_status(r, 400, "BadRequest",
					 "metadata.resourceVersion: must be a positive integer");
	} else if (given && rv != cur->rev) {
		ret = conflict(r);
	} else if (!json_is_object(obj)) {
		ret = api_respond_status(r, 422, "Invalid", "the patch does not leave an object");
	} else {
		ret = write_update(r, obj, cur, cur->rev, !given, status_only, 200);
		obj = NULL;
	}
	json_decref(obj);
	json_decref(patch);
	wc_obj_unref(cur);
	return ret;
}

/* ---- delete ------------------------------------------------------------------------------ */

/* The namespaces the cluster itself lives in: never deleted. */
static bool ns_protected(const char *name)
{
	static const char *const names[] = { "default", "kube-system", "kube-public",
					     "kube-node-lease", NULL };
	for (const char *const *n = names; *n; n++)
		if (strcmp(name, *n) == 0)
			return true;
	return false;
}

static int handle_delete(struct api_req *r)
{
	struct write_plan p = { 0 };
	char key[768];
	struct wc_obj *cur;
	json_t *obj = NULL, *opts = NULL;
	const char *q;
	long long grace = -1;
	const char *policy = NULL;
	int ret = MHD_YES;

	if (r->body_len) {
		opts = parse_body(r, &ret);
		if (!opts)
			return ret;
		json_t *g = json_object_get(opts, "gracePeriodSeconds");
		if (g && !json_is_integer(g)) {
			json_decref(opts);
			return api_respond_status(r, 400, "BadRequest",
						  "gracePeriodSeconds: must be an integer");
		}
		if (g)
			grace = json_integer_value(g);
		policy = json_string_value(json_object_get(opts, "propagationPolicy"));
	}
	q = api_query(r, "gracePeriodSeconds");
	if (q) {
		char *end;
		grace = strtoll(q, &end, 10);
		if (*end || grace < 0) {
			json_decref(opts);
			return api_respond_status(r, 400, "BadRequest",
						  "gracePeriodSeconds: must be a non-negative integer");
		}
	}
	if (api_query(r, "propagationPolicy"))
		policy = api_query(r, "propagationPolicy");
	if (policy && strcmp(policy, "Foreground") && strcmp(policy, "Background") &&
	    strcmp(policy, "Orphan")) {
		ret = api_respond_status(r, 400, "BadRequest",
					 "propagationPolicy: Unsupported value: \"%s\": supported "
					 "values: \"Foreground\", \"Background\", \"Orphan\"",
					 policy);
		json_decref(opts);
		return ret;
	}
	if (is_kind(r, "Namespace") && ns_protected(r->name)) {
		json_decref(opts);
		return api_respond_status(r, 403, "Forbidden",
					  "namespaces \"%s\" is forbidden: this namespace may not be "
					  "deleted",
					  r->name);
	}
	api_key(r->kind, r->ns, r->name, key, sizeof(key));
	cur = wc_get(r->srv->wc, key);
	if (!cur) {
		json_decref(opts);
		return not_found(r);
	}
	obj = parse_obj(cur->json, cur->len);
	if (!obj) {
		ret = api_respond_status(r, 500, NULL, "stored object unreadable");
		goto out;
	}
	/* Preconditions. */
	json_t *pre = json_object_get(opts, "preconditions");
	const char *puid = json_string_value(json_object_get(pre, "uid"));
	const char *prv = json_string_value(json_object_get(pre, "resourceVersion"));
	if ((puid && strcmp(puid, str_at(obj, "metadata", "uid") ? str_at(obj, "metadata", "uid")
								 : "") != 0) ||
	    (prv && strtoll(prv, NULL, 10) != cur->rev)) {
		ret = api_respond_status(r, 409, "Conflict",
					 "Precondition failed: UID or resourceVersion in "
					 "precondition does not match the object");
		goto out;
	}
	json_t *meta = meta_of(obj);
	json_t *fin = json_object_get(meta, "finalizers");
	bool has_fin = json_array_size(fin) > 0;
	/* A pod that runs on a node is deleted gracefully: its node stops it, then confirms. */
	const char *node = str_at(json_object_get(obj, "spec"), "nodeName", NULL);
	const char *phase = str_at(obj, "status", "phase");
	bool finished = phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed"));
	bool graceful = is_kind(r, "Pod") && node && *node && !finished && grace != 0;
	bool orphan_or_fg = policy && strcmp(policy, "Background") != 0;
	/* A Namespace: the first DELETE marks it Terminating; it goes once its controller has
	 * emptied it and removed its spec.finalizers (a DELETE then deletes it). */
	bool terminating_ns = is_kind(r, "Namespace") && !json_object_get(meta, "deletionTimestamp");
	if (is_kind(r, "Namespace") && !terminating_ns &&
	    json_array_size(json_object_get(json_object_get(obj, "spec"), "finalizers"))) {
		ret = api_respond_status(r, 409, "Conflict",
					 "Operation cannot be fulfilled on namespaces \"%s\": The "
					 "system is ensuring all content is removed from this "
					 "namespace.  Upon completion, this namespace will "
					 "automatically be purged by the system.",
					 r->name);
		goto out;
	}

	if (graceful || has_fin || orphan_or_fg || terminating_ns) {
		/* Stays, marked for deletion, until its node confirms or its finalizers go. The
		 * grace period: the request's, else the pod's, else 30 s. */
		json_t *tgp = json_object_get(json_object_get(obj, "spec"),
					      "terminationGracePeriodSeconds");
		long long g = grace >= 0 ? grace : json_is_integer(tgp) ? json_integer_value(tgp) : 30;
		if (g < 0)
			g = 30;
		if (!graceful)
			g = 0;
		json_t *old_dgp = json_object_get(meta, "deletionGracePeriodSeconds");
		if (json_object_get(meta, "deletionTimestamp") &&
		    (!old_dgp || json_integer_value(old_dgp) <= g) && !orphan_or_fg) {
			/* Already being deleted, no sooner than asked: nothing to change. */
			ret = respond_obj(r, 200, cur);
			goto out;
		}
		if (api_mark_deleting(meta, g)) {
			ret = api_respond_status(r, 500, NULL, "out of memory");
			goto out;
		}
		if (orphan_or_fg) {
			const char *f = strcmp(policy, "Orphan") == 0 ? "orphan" : "foregroundDeletion";
			if (!fin) {
				fin = json_array();
				json_object_set_new(meta, "finalizers", fin);
			}
			bool present = false;
			size_t i;
			json_t *v;
			json_array_foreach(fin, i, v) present |= strcmp(json_string_value(v), f) == 0;
			if (!present)
				json_array_append_new(fin, json_string(f));
		}
		if (terminating_ns) {
			/* A namespace made before namespaces held the "kubernetes" finalizer (no
			 * spec.finalizers at all) gets it now, so that its content is deleted
			 * too; an empty list is a namespace someone finalized on purpose. */
			json_t *spec = json_object_get(obj, "spec");
			if (!json_object_get(spec, "finalizers") && ns_add_kubernetes_finalizer(obj)) {
				ret = api_respond_status(r, 500, NULL, "out of memory");
				goto out;
			}
			json_t *st = json_object_get(obj, "status");
			if (!json_is_object(st)) {
				st = json_object();
				if (!st || json_object_set_new(obj, "status", st)) {
					ret = api_respond_status(r, 500, NULL, "out of memory");
					goto out;
				}
			}
			if (json_object_set_new(st, "phase", json_string("Terminating"))) {
				ret = api_respond_status(r, 500, NULL, "out of memory");
				goto out;
			}
		}
		json_object_del(meta, "resourceVersion");
		size_t len;
		char *value = api_obj_dump(obj, &len);
		if (!value) {
			ret = api_respond_status(r, 500, NULL, "out of memory");
			goto out;
		}
		snprintf(p.key, sizeof(p.key), "%s", key);
		p.ops[0] = (struct store_op){ .type = STORE_PUT, .key = p.key, .value = value,
					      .value_len = len, .expect_mod_rev = cur->rev };
		p.n = 1;
		p.retry_conflict = true;
		ret = submit(r, &p, value, len, 200);
		goto out;
	}

	/* Deleted now. */
	snprintf(p.key, sizeof(p.key), "%s", key);
	p.ops[0] = (struct store_op){ .type = STORE_DELETE, .key = p.key,
				      .expect_mod_rev = cur->rev };
	p.n = 1;
	p.retry_conflict = true;
	if (is_kind(r, "Service") && plan_service_release(r, obj, &p)) {
		ret = api_respond_status(r, 500, NULL, "too many allocations");
		goto out;
	}
	r->respond_deleted = true;
	ret = submit(r, &p, NULL, 0, 200);
out:
	json_decref(obj);
	json_decref(opts);
	wc_obj_unref(cur);
	return ret;
}

/* ---- namespaces/NAME/finalize -------------------------------------------------------------- */

/* PUT of a Namespace whose spec.finalizers replace the stored ones; nothing else of the body
 * is taken. The body is checked as a Namespace (types, names of finalizers). */
static int handle_finalize(struct api_req *r)
{
	char key[768];
	struct wc_obj *cur;
	json_t *body, *obj = NULL, *fins;
	bool given, bad;
	int ret = MHD_YES;

	body = parse_body(r, &ret);
	if (!body)
		return ret;
	const char *name = str_at(body, "metadata", "name");
	if (name && strcmp(name, r->name) != 0) {
		ret = api_respond_status(r, 400, "BadRequest",
					 "metadata.name: the name of the object (%s) does not match "
					 "the name on the URL (%s)",
					 name, r->name);
		json_decref(body);
		return ret;
	}
	api_key(r->kind, r->ns, r->name, key, sizeof(key));
	cur = wc_get(r->srv->wc, key);
	if (!cur) {
		json_decref(body);
		return not_found(r);
	}
	json_object_set_new(meta_of(body), "name", json_string(r->name));
	int64_t rv = body_rv(body, &given, &bad);
	if (bad) {
		ret = api_respond_status(r, 400, "BadRequest",
					 "metadata.resourceVersion: must be a positive integer");
		goto out;
	}
	if (given && rv != cur->rev) {
		ret = conflict(r);
		goto out;
	}
	json_t *spec = json_object_get(body, "spec");
	if (spec && !json_is_object(spec)) {
		ret = api_respond_status(r, 422, "Invalid",
					 "Namespace \"%s\" is invalid: spec: must be an object",
					 r->name);
		goto out;
	}
	fins = json_object_get(spec, "finalizers");
	if (fins && !json_is_array(fins)) {
		ret = api_respond_status(r, 422, "Invalid",
					 "Namespace \"%s\" is invalid: spec.finalizers: must be an "
					 "array of strings",
					 r->name);
		goto out;
	}
	if (check_object(r, body, NULL, true, &ret))
		goto out;
	obj = parse_obj(cur->json, cur->len);
	json_t *ospec = obj ? json_object_get(obj, "spec") : NULL;
	if (obj && !json_is_object(ospec)) {
		ospec = json_object();
		if (ospec && json_object_set_new(obj, "spec", ospec))
			ospec = NULL;
	}
	fins = json_object_get(json_object_get(body, "spec"), "finalizers");
	if (!ospec || json_object_set_new(ospec, "finalizers",
					  fins ? json_incref(fins) : json_array())) {
		ret = api_respond_status(r, 500, NULL, "out of memory");
		goto out;
	}
	ret = write_update(r, obj, cur, cur->rev, !given, false, 200);
	obj = NULL;
out:
	json_decref(obj);
	json_decref(body);
	wc_obj_unref(cur);
	return ret;
}

/* ---- binding and scale ------------------------------------------------------------------ */

static int handle_binding(struct api_req *r)
{
	char key[768];
	struct wc_obj *cur;
	json_t *b, *pod;
	int ret = MHD_YES;

	b = parse_body(r, &ret);
	if (!b)
		return ret;
	const char *node = str_at(b, "target", "name");
	const char *bname = str_at(b, "metadata", "name");
	if (!node || !*node) {
		json_decref(b);
		return api_respond_status(r, 422, "Invalid",
					  "Binding \"%s\" is invalid: target.name: Required value",
					  r->name);
	}
	if (bname && strcmp(bname, r->name) != 0) {
		json_decref(b);
		return api_respond_status(r, 400, "BadRequest",
					  "metadata.name: the binding's name (%s) must be the "
					  "pod's (%s)",
					  bname, r->name);
	}
	api_key(r->kind, r->ns, r->name, key, sizeof(key));
	cur = wc_get(r->srv->wc, key);
	if (!cur) {
		json_decref(b);
		return not_found(r);
	}
	pod = parse_obj(cur->json, cur->len);
	const char *bound = pod ? str_at(json_object_get(pod, "spec"), "nodeName", NULL) : NULL;
	if (!pod) {
		ret = api_respond_status(r, 500, NULL, "stored object unreadable");
	} else if (bound && *bound) {
		ret = api_respond_status(r, 409, "Conflict",
					 "Operation cannot be fulfilled on pods/binding \"%s\": pod "
					 "%s is already assigned to node \"%s\"",
					 r->name, r->name, bound);
	} else if (str_at(pod, "metadata", "deletionTimestamp")) {
		ret = api_respond_status(r, 409, "Conflict",
					 "Operation cannot be fulfilled on pods/binding \"%s\": pod "
					 "%s is being deleted, cannot be assigned to a host",
					 r->name, r->name);
	} else {
		if (api_pod_set_bound(pod, node)) {
			ret = api_respond_status(r, 422, "Invalid", "Pod \"%s\" has no spec", r->name);
			goto out_bind;
		}
		struct write_plan p = { 0 };
		size_t len;
		json_object_del(meta_of(pod), "resourceVersion");
		char *value = api_obj_dump(pod, &len);
		snprintf(p.key, sizeof(p.key), "%s", key);
		if (!value) {
			ret = api_respond_status(r, 500, NULL, "out of memory");
		} else {
			p.ops[0] = (struct store_op){ .type = STORE_PUT, .key = p.key,
						      .value = value, .value_len = len,
						      .expect_mod_rev = cur->rev };
			p.n = 1;
			p.retry_conflict = true; /* run again: re-checks that it is still unbound */
			ret = submit(r, &p, value, len, 201);
		}
	}
out_bind:
	json_decref(pod);
	json_decref(b);
	wc_obj_unref(cur);
	return ret;
}

static json_t *scale_of(const struct api_req *r, const struct wc_obj *o)
{
	json_t *obj = parse_obj(o->json, o->len), *out;
	char rv[32], sel[1024] = "";
	size_t n = 0;
	const char *k;
	json_t *v;

	if (!obj)
		return NULL;
	snprintf(rv, sizeof(rv), "%lld", (long long)o->rev);
	json_object_foreach(json_object_get(json_object_get(json_object_get(obj, "spec"), "selector"),
					    "matchLabels"),
			    k, v)
	{
		if (n < sizeof(sel) - 2)
			n += snprintf(sel + n, sizeof(sel) - n, "%s%s=%s", n ? "," : "", k,
				      json_string_value(v));
	}
	out = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:s, s:O*}, s:{s:I}, s:{s:I, s:s}}",
			"apiVersion", "autoscaling/v1", "kind", "Scale", "metadata", "name", o->name,
			"namespace", o->ns, "resourceVersion", rv, "uid",
			str_at(obj, "metadata", "uid") ? str_at(obj, "metadata", "uid") : "",
			"creationTimestamp", json_object_get(json_object_get(obj, "metadata"),
							     "creationTimestamp"),
			"spec", "replicas",
			(json_int_t)json_integer_value(
				json_object_get(json_object_get(obj, "spec"), "replicas")),
			"status", "replicas",
			(json_int_t)json_integer_value(
				json_object_get(json_object_get(obj, "status"), "replicas")),
			"selector", sel);
	(void)r;
	json_decref(obj);
	return out;
}

static int handle_scale(struct api_req *r)
{
	char key[768];
	struct wc_obj *cur;
	int ret = MHD_YES;

	api_key(r->kind, r->ns, r->name, key, sizeof(key));
	cur = wc_get(r->srv->wc, key);
	if (!cur)
		return not_found(r);
	if (strcmp(r->method, "GET") == 0) {
		json_t *s = scale_of(r, cur);
		char *txt = s ? json_dumps(s, JSON_COMPACT) : NULL;
		ret = txt ? api_respond_json(r, 200, txt, strlen(txt))
			  : api_respond_status(r, 500, NULL, "out of memory");
		free(txt);
		json_decref(s);
		wc_obj_unref(cur);
		return ret;
	}
	json_t *body = parse_body(r, &ret);
	if (!body) {
		wc_obj_unref(cur);
		return ret;
	}
	json_t *rep = json_object_get(json_object_get(body, "spec"), "replicas");
	bool given, bad;
	int64_t rv = body_rv(body, &given, &bad);
	if (!json_is_integer(rep) || json_integer_value(rep) < 0) {
		ret = api_respond_status(r, 422, "Invalid",
					 "Scale \"%s\" is invalid: spec.replicas: Invalid value: must "
					 "be an integer >= 0",
					 r->name);
	} else if (bad) {
		ret = api_respond_status(r, 400, "BadRequest",
					 "metadata.resourceVersion: must be a positive integer");
	} else if (given && rv != cur->rev) {
		ret = conflict(r);
	} else {
		json_t *obj = parse_obj(cur->json, cur->len);
		if (!obj) {
			ret = api_respond_status(r, 500, NULL, "stored object unreadable");
		} else {
			json_object_set(json_object_get(obj, "spec"), "replicas", rep);
			ret = write_update(r, obj, cur, cur->rev, !given, false, 200);
		}
	}
	json_decref(body);
	wc_obj_unref(cur);
	return ret;
}

/* ---- dispatch ------------------------------------------------------------------------------ */

static bool query_true(struct api_req *r, const char *name)
{
	const char *v = api_query(r, name);
	return v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
}

int api_handle(struct api_req *r)
{
	const char *m = r->method;
	bool get = strcmp(m, "GET") == 0, post = strcmp(m, "POST") == 0,
	     put = strcmp(m, "PUT") == 0, patch = strcmp(m, "PATCH") == 0,
	     del = strcmp(m, "DELETE") == 0;
	const char *sub = r->sub;
	char why[512];

	if (*sub && strcmp(sub, "status") && strcmp(sub, "binding") && strcmp(sub, "scale") &&
	    strcmp(sub, "finalize"))
		return api_respond_status(r, 404, "NotFound",
					  "the server could not find the requested resource (%s has no "
					  "sub-resource or resource \"%s\")",
					  r->kind->resource, sub);
	if ((!strcmp(sub, "status") && !r->kind->has_status) ||
	    (!strcmp(sub, "scale") && !r->kind->scale_path) ||
	    (!strcmp(sub, "binding") && !is_kind(r, "Pod")) ||
	    (!strcmp(sub, "finalize") && !is_kind(r, "Namespace")))
		return api_respond_status(r, 404, "NotFound", "%s has no \"%s\" sub-resource",
					  r->kind->resource, sub);
	if (!strcmp(sub, "finalize") && strcmp(m, "PUT") != 0)
		return api_respond_status(r, 405, "MethodNotAllowed",
					  "%s is not supported on namespaces/finalize: use PUT", m);

	if (get)
		r->verb = r->has_name ? "get" : query_true(r, "watch") ? "watch" : "list";
	else if (post)
		r->verb = !strcmp(sub, "binding") ? "bind" : "create";
	else if (put)
		r->verb = "update";
	else if (patch)
		r->verb = "patch";
	else if (del)
		r->verb = "delete";
	else
		return api_respond_status(r, 405, "MethodNotAllowed", "method %s is not supported",
					  m);
	if ((post && r->has_name && strcmp(sub, "binding")) || ((put || patch || del) && !r->has_name))
		return api_respond_status(r, 405, "MethodNotAllowed",
					  "%s is not supported on this path", m);

	/* Authorization (pods: whether the pod is bound to the node asking). */
	char pod_node[256] = "";
	struct auth_request ar = { .write = !get, .verb = r->verb, .resource = r->kind->resource,
				   .ns = r->ns, .name = r->has_name ? r->name : NULL, .sub = sub };
	if (!get && is_kind(r, "Pod") && r->has_name && (r->user.groups & AUTH_NODES)) {
		char key[768];
		api_key(r->kind, r->ns, r->name, key, sizeof(key));
		struct wc_obj *o = wc_get(r->srv->wc, key);
		if (o) {
			json_t *pod = parse_obj(o->json, o->len);
			const char *nn = pod ? str_at(json_object_get(pod, "spec"), "nodeName", NULL)
					     : NULL;
			snprintf(pod_node, sizeof(pod_node), "%s", nn ? nn : "");
			json_decref(pod);
			wc_obj_unref(o);
		}
		ar.pod_node = pod_node;
	}
	if (auth_authorize(&r->user, &ar, why, sizeof(why)))
		return api_respond_status(r, 403, "Forbidden", "%s", why);

	if (!strcmp(sub, "scale"))
		return handle_scale(r);
	if (get) {
		if (r->has_name)
			return handle_get(r);
		if (!strcmp(r->verb, "watch"))
			return api_serve_watch(r);
		return handle_list(r);
	}
	if (post)
		return *sub ? handle_binding(r) : handle_create(r);
	if (put && !strcmp(sub, "finalize"))
		return handle_finalize(r);
	if (put)
		return handle_update(r, !strcmp(sub, "status"));
	if (patch)
		return handle_patch(r, !strcmp(sub, "status"));
	return handle_delete(r);
}
