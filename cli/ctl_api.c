// SPDX-License-Identifier: Apache-2.0
/*
 * shoalctl's side of the API: naming kinds, building paths, sending requests and turning
 * failures into messages. Every request goes through ctl_call(), so Warning headers and
 * "the server is down" read the same for every verb.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "errors.h"

const struct api_kind *ctl_kind(const char *name)
{
	const struct api_kind *k = api_kind_lookup(name);
	if (!k)
		fprintf(stderr, "error: the server doesn't have a resource type \"%s\"\n", name);
	return k;
}

int ctl_path(const struct api_kind *k, const char *ns, const char *name, const char *sub,
	     char *buf, size_t len)
{
	int n;
	if (k->group && *k->group)
		n = snprintf(buf, len, "/apis/%s/%s", k->group, k->version);
	else
		n = snprintf(buf, len, "/api/%s", k->version);
	if (k->namespaced && ns)
		n += snprintf(buf + n, (size_t)n < len ? len - (size_t)n : 0, "/namespaces/%s", ns);
	n += snprintf(buf + n, (size_t)n < len ? len - (size_t)n : 0, "/%s", k->resource);
	if (name)
		n += snprintf(buf + n, (size_t)n < len ? len - (size_t)n : 0, "/%s", name);
	if (name && sub)
		n += snprintf(buf + n, (size_t)n < len ? len - (size_t)n : 0, "/%s", sub);
	return (size_t)n < len ? 0 : -ENAMETOOLONG;
}

int ctl_object_ns(struct ctl *c, const struct api_kind *k, const json_t *obj, const char **ns)
{
	const char *own = json_string_value(ctl_json_path(obj, "metadata.namespace"));

	*ns = NULL;
	if (!k->namespaced)
		return 0;
	if (own && *own && c->o->ns_given && strcmp(own, c->o->ns) != 0) {
		fprintf(stderr,
			"error: the namespace from the provided object \"%s\" does not match the "
			"namespace \"%s\"; pass -n %s to use it\n",
			own, c->o->ns, own);
		return -EINVAL;
	}
	*ns = own && *own ? own : c->o->ns;
	return 0;
}

/* "299 - \"unknown field spec.foo\"" -> unknown field spec.foo */
static void ctl_print_warning(const char *h)
{
	const char *p = h, *q;
	size_t n;
	if (strncmp(p, "299 ", 4) == 0) {
		p += 4;
		q = strchr(p, ' ');
		if (q)
			p = q + 1;
	}
	n = strlen(p);
	if (n >= 2 && p[0] == '"' && p[n - 1] == '"') {
		p++;
		n -= 2;
	}
	/* A quoted-string: backslash escapes the next character. */
	fputs("Warning: ", stderr);
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\\' && i + 1 < n)
			i++;
		fputc(p[i], stderr);
	}
	fputc('\n', stderr);
}

int ctl_call(struct ctl *c, const char *method, const char *path, const json_t *body,
	     const char *content_type, long *code, json_t **out)
{
	struct httpc_resp resp;
	char *text = NULL;
	int rc;

	*code = 0;
	if (out)
		*out = NULL;
	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		if (!text)
			return -ENOMEM;
	}
	rc = httpc_request(c->http, method, path, text, text ? strlen(text) : 0, content_type,
			   &resp);
	free(text);
	if (rc) {
		const char *why = httpc_error(c->http);
		if (rc == -ECONNREFUSED)
			fprintf(stderr,
				"error: cannot connect to the server at %s: %s (is shoald running?)\n",
				httpc_server(c->http), why && *why ? why : shoal_strerror(rc));
		else
			fprintf(stderr, "error: %s %s on %s: %s\n", method, path,
				httpc_server(c->http), why && *why ? why : shoal_strerror(rc));
		return rc;
	}
	for (size_t i = 0; i < resp.nheaders; i++)
		if (strncasecmp(resp.headers[i], "Warning:", 8) == 0)
			ctl_print_warning(resp.headers[i] + 8 + strspn(resp.headers[i] + 8, " "));
	*code = resp.code;
	if (out && resp.body && resp.len) {
		*out = json_loadb(resp.body, resp.len, 0, NULL);
		if (!*out && (resp.code < 200 || resp.code >= 300)) {
			/* Not a Status: keep the text as the message. */
			*out = json_pack("{s:s, s:s#}", "kind", "Status", "message", resp.body,
					 resp.len > 300 ? (size_t)300 : resp.len);
		}
	}
	httpc_resp_free(&resp);
	return 0;
}

void ctl_print_server_error(long code, const json_t *body)
{
	const char *reason = json_string_value(json_object_get(body, "reason"));
	const char *msg = json_string_value(json_object_get(body, "message"));
	char fallback[64];

	if (!reason || !*reason) {
		switch (code) {
		case 400: reason = "BadRequest"; break;
		case 401: reason = "Unauthorized"; break;
		case 403: reason = "Forbidden"; break;
		case 404: reason = "NotFound"; break;
		case 409: reason = "Conflict"; break;
		case 410: reason = "Gone"; break;
		case 413: reason = "RequestEntityTooLarge"; break;
		case 422: reason = "Invalid"; break;
		default:
			snprintf(fallback, sizeof(fallback), "HTTP %ld", code);
			reason = fallback;
		}
	}
	fprintf(stderr, "Error from server (%s): %s\n", reason,
		msg && *msg ? msg : "(no message)");
}

int ctl_kind_and_names(struct ctl *c, const struct api_kind **k, char ***names, int *nnames,
		       bool need_name)
{
	struct ctl_opts *o = c->o;
	char *slash;

	if (o->nargs < 1) {
		fprintf(stderr, "error: %s needs a kind (for example: %s pods)\n", o->verb,
			o->verb);
		return 2;
	}
	slash = strchr(o->args[0], '/');
	if (slash) {
		/* KIND/NAME: the name is everything after the slash. */
		*slash = '\0';
		*k = ctl_kind(o->args[0]);
		*slash = '/';
		if (!*k)
			return 1;
		if (o->nargs > 1) {
			fprintf(stderr, "error: give either KIND/NAME or KIND NAME...\n");
			return 2;
		}
		*names = &o->args[0];
		*nnames = 1;
		/* Point at the name part without copying: shift the string. */
		memmove(o->args[0], slash + 1, strlen(slash + 1) + 1);
		if (!*o->args[0]) {
			fprintf(stderr, "error: empty name in KIND/NAME\n");
			return 2;
		}
	} else {
		*k = ctl_kind(o->args[0]);
		if (!*k)
			return 1;
		*names = o->args + 1;
		*nnames = o->nargs - 1;
	}
	if (need_name && *nnames == 0) {
		fprintf(stderr, "error: %s needs a name: %s %s NAME\n", o->verb, o->verb,
			(*k)->singular);
		return 2;
	}
	return 0;
}

int ctl_query(char *buf, size_t len, const char *key, const char *val)
{
	size_t n = strlen(buf);
	char *esc;
	int w;

	if (!val)
		return 0;
	esc = httpc_escape(val);
	if (!esc)
		return -ENOMEM;
	w = snprintf(buf + n, n < len ? len - n : 0, "%c%s=%s", strchr(buf, '?') ? '&' : '?', key,
		     esc);
	free(esc);
	return w < 0 || n + (size_t)w >= len ? -ENAMETOOLONG : 0;
}

json_t *ctl_with_type(const struct api_kind *k, const json_t *obj)
{
	char av[128];
	json_t *out = json_object();
	const char *key;
	json_t *v;

	if (!out)
		return NULL;
	json_object_set_new(out, "apiVersion",
			    json_string(json_string_value(json_object_get(obj, "apiVersion")) ?:
						api_kind_api_version(k, av, sizeof(av))));
	json_object_set_new(out, "kind",
			    json_string(json_string_value(json_object_get(obj, "kind")) ?: k->kind));
	json_object_foreach((json_t *)obj, key, v)
		if (strcmp(key, "apiVersion") != 0 && strcmp(key, "kind") != 0)
			json_object_set(out, key, v);
	return out;
}
