/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Authentication by bearer token from a static token file, and authorization by group, as
 * DESIGN.md "The API" says. A line of the file is `token,user,group` or Kubernetes' own
 * `token,user,uid,"group1,group2"`; blank lines and lines starting with '#' are skipped.
 *
 * Groups: system:masters may do everything; system:nodes (user system:node:NAME) may read
 * everything and write only its own Node, its Lease, the status of pods bound to it, the
 * deletion of pods bound to it and Events; readonly may only read and watch.
 */
#ifndef SHOAL_AUTH_H
#define SHOAL_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#define AUTH_MASTERS 0x1
#define AUTH_NODES 0x2
#define AUTH_READONLY 0x4

struct auth;

struct auth_user {
	char name[128];
	unsigned groups;
	char node[128]; /* for system:node:NAME */
};

/* Loads a token file. NULL and errno on failure; the line at fault is logged. */
struct auth *auth_load(const char *path);
void auth_free(struct auth *a);

/* Checks an Authorization header value ("Bearer TOKEN"). Returns 0 and fills user, or
 * -EACCES for a missing or unknown token. With a NULL auth every request is a master. */
int auth_authenticate(const struct auth *a, const char *authorization, struct auth_user *user);

/* What a request wants to do, for authorization. */
struct auth_request {
	bool write;	      /* any verb but get, list and watch */
	const char *verb;     /* "create", "update", "patch", "delete", ... */
	const char *resource; /* "pods", "nodes", ... */
	const char *ns;
	const char *name;
	const char *sub;       /* "", "status", "binding", "scale" */
	const char *pod_node;  /* for pods: spec.nodeName of the stored pod, or NULL */
};

/* Returns 0 when allowed, or -EPERM with a reason in why. */
int auth_authorize(const struct auth_user *u, const struct auth_request *r, char *why,
		   size_t whylen);

#endif
