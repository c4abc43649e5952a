// SPDX-License-Identifier: Apache-2.0
/*
 * Static token authentication and group authorization (see auth.h). Tokens live in a hash map
 * loaded once at start; the file is parsed as CSV with quoted fields, as Kubernetes parses it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "hashmap.h"
#include "log.h"

struct auth {
	struct hashmap *tokens; /* token -> struct auth_user * */
};

/* Splits one CSV line into at most max fields (in place); quotes group commas. */
static int csv_split(char *line, char **fields, int max)
{
	int n = 0;
	char *p = line;

	while (*p && n < max) {
		char *out = p;
		fields[n++] = p;
		bool quoted = false;
		while (*p) {
			if (*p == '"') {
				quoted = !quoted;
				p++;
				continue;
			}
			if (*p == ',' && !quoted)
				break;
			*out++ = *p++;
		}
		bool more = *p == ',';
		if (*p)
			p++;
		*out = '\0';
		if (!more)
			break;
	}
	return n;
}

static void trim(char *s)
{
	size_t n = strlen(s);
	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
}

static unsigned parse_groups(const char *s)
{
	unsigned g = 0;
	char buf[512], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", s);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		while (*t == ' ')
			t++;
		if (strcmp(t, "system:masters") == 0)
			g |= AUTH_MASTERS;
		else if (strcmp(t, "system:nodes") == 0)
			g |= AUTH_NODES;
		else if (strcmp(t, "readonly") == 0)
			g |= AUTH_READONLY;
	}
	return g;
}

void auth_free(struct auth *a)
{
	size_t it = 0;
	void *v;

	if (!a)
		return;
	while (a->tokens && hashmap_next(a->tokens, &it, NULL, &v))
		free(v);
	hashmap_free(a->tokens);
	free(a);
}

struct auth *auth_load(const char *path)
{
	struct auth *a = calloc(1, sizeof(*a));
	FILE *f = NULL;
	char line[2048];
	int lineno = 0, err = 0;

	if (!a)
		return NULL;
	a->tokens = hashmap_new(16);
	if (!a->tokens) {
		err = ENOMEM;
		goto out;
	}
	f = fopen(path, "r");
	if (!f) {
		err = errno;
		log_error("token file %s: %s", path, strerror(err));
		goto out;
	}
	while (fgets(line, sizeof(line), f)) {
		char *fields[4];
		int n;

		lineno++;
		trim(line);
		if (line[0] == '\0' || line[0] == '#')
			continue;
		n = csv_split(line, fields, 4);
		if (n < 2 || !*fields[0] || !*fields[1]) {
			log_error("token file %s:%d: want token,user[,group] or token,user,uid,groups",
				  path, lineno);
			err = EINVAL;
			goto out;
		}
		struct auth_user *u = calloc(1, sizeof(*u));
		if (!u) {
			err = ENOMEM;
			goto out;
		}
		snprintf(u->name, sizeof(u->name), "%s", fields[1]);
		u->groups = parse_groups(n == 3 ? fields[2] : n == 4 ? fields[3] : "");
		if (strncmp(u->name, "system:node:", 12) == 0)
			snprintf(u->node, sizeof(u->node), "%s", u->name + 12);
		void *old = NULL;
		if (hashmap_put(a->tokens, fields[0], u, &old)) {
			free(u);
			err = ENOMEM;
			goto out;
		}
		if (old) {
			log_warn("token file %s:%d: token given twice; the later line wins", path,
				 lineno);
			free(old);
		}
	}
	if (ferror(f)) {
		err = EIO;
		log_error("token file %s: read error", path);
	}
out:
	if (f)
		fclose(f);
	if (err) {
		auth_free(a);
		errno = err;
		return NULL;
	}
	return a;
}

int auth_authenticate(const struct auth *a, const char *authorization, struct auth_user *user)
{
	const struct auth_user *u;

	memset(user, 0, sizeof(*user));
	if (!a) {
		snprintf(user->name, sizeof(user->name), "admin");
		user->groups = AUTH_MASTERS;
		return 0;
	}
	if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
		return -EACCES;
	authorization += 7;
	while (*authorization == ' ')
		authorization++;
	u = hashmap_get(a->tokens, authorization);
	if (!u)
		return -EACCES;
	*user = *u;
	return 0;
}

static bool eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

int auth_authorize(const struct auth_user *u, const struct auth_request *r, char *why,
		   size_t whylen)
{
	if (u->groups & AUTH_MASTERS)
		return 0;
	if (!r->write && (u->groups & (AUTH_READONLY | AUTH_NODES)))
		return 0;
	if (u->groups & AUTH_NODES) {
		const char *res = r->resource;
		if (eq(res, "nodes") && eq(r->name, u->node) && !eq(r->verb, "delete"))
			return 0;
		if (eq(res, "nodes") && eq(r->verb, "create") && !r->name)
			return 0; /* the name is checked by the caller against the body */
		if (eq(res, "leases") && (eq(r->name, u->node) || (eq(r->verb, "create") && !r->name)))
			return 0;
		if (eq(res, "events") && (eq(r->verb, "create") || eq(r->verb, "patch")))
			return 0;
		if (eq(res, "pods") && eq(r->pod_node, u->node) &&
		    (eq(r->sub, "status") || eq(r->verb, "delete")))
			return 0;
		snprintf(why, whylen,
			 "User \"%s\" cannot %s %s%s%s%s%s: a node may write only its own Node, its "
			 "Lease, Events, and the status and deletion of pods bound to it",
			 u->name, r->verb, res, r->sub && *r->sub ? "/" : "", r->sub ? r->sub : "",
			 r->name ? " " : "", r->name ? r->name : "");
		return -EPERM;
	}
	snprintf(why, whylen, "User \"%s\" cannot %s %s%s%s%s%s", u->name, r->verb, r->resource,
		 r->sub && *r->sub ? "/" : "", r->sub ? r->sub : "", r->name ? " " : "",
		 r->name ? r->name : "");
	return -EPERM;
}
