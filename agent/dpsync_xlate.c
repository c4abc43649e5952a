// SPDX-License-Identifier: Apache-2.0
/*
 * Service + EndpointSlices -> per-port data plane records, as kube-proxy reads them: a port's
 * endpoints come from every slice of the Service whose port of the same name and protocol
 * is listed (the slice's port number is the target); an endpoint uses its first address;
 * absent conditions mean ready (and serving as ready, not terminating). The frontends are
 * the ClusterIP, every external IP and loadBalancer ingress IP, and for NodePort and
 * LoadBalancer Services the node's address at the nodePort.
 *
 * Endpoints another cluster published (a federation's EndpointSlices, labelled
 * DPSYNC_REMOTE_LABEL: that cluster's node addresses at its node port) serve this cluster's
 * own clients only, through the ClusterIP. Traffic that reaches this cluster from outside,
 * at a node port or an external IP, goes to this cluster's endpoints: two clusters that
 * publish to each other never hand a connection back and forth, and a client in another
 * cluster that was sent here is served here. Such a port is programmed as two records (the
 * second named "<name>/external").
 *
 * The design choice: the translation is a pure function of the objects and a digest of its
 * result (xl_service.hash) is what says "changed", so an update that touches nothing the
 * data plane uses (a status write, an annotation) costs no map write.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpsync_int.h"
#include "log.h"

static const char *jstr(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool jbool(const json_t *o, const char *k, bool dflt)
{
	const json_t *v = json_object_get(o, k);

	return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static long jint(const json_t *o, const char *k, long dflt)
{
	const json_t *v = json_object_get(o, k);

	return json_is_integer(v) ? (long)json_integer_value(v) : dflt;
}

/* An IPv4 address in dotted form (IPv6 and garbage: false). */
static bool ip4(const char *s, uint32_t *out)
{
	struct in_addr a;

	if (!s || inet_pton(AF_INET, s, &a) != 1 || !a.s_addr)
		return false;
	*out = a.s_addr;
	return true;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * 1099511628211ULL;
	return h;
}

/* prefix + suffix, the prefix shortened with a digest of itself when the whole is too long. */
static void fit_name(char *buf, size_t size, const char *prefix, const char *suffix)
{
	size_t pl = strlen(prefix), sl = strlen(suffix);

	uint32_t h;
	size_t keep;

	if (pl + sl < size) {
		memcpy(buf, prefix, pl);
		memcpy(buf + pl, suffix, sl + 1);
		return;
	}
	/* "prefix~hash8suffix", cut to fit */
	h = (uint32_t)fnv(1469598103934665603ULL, prefix, pl);
	keep = size > sl + 10 ? size - sl - 10 : 0;
	memcpy(buf, prefix, keep);
	snprintf(buf + keep, size - keep, "~%08x", h);
	memcpy(buf + keep + 9, suffix, sl + 1 <= size - keep - 9 ? sl + 1 : 0);
	buf[size - 1] = '\0';
}

static uint8_t proto_num(const char *p, bool sctp)
{
	if (!p || !strcmp(p, "TCP"))
		return IPPROTO_TCP;
	if (!strcmp(p, "UDP"))
		return IPPROTO_UDP;
	if (!strcmp(p, "SCTP") && sctp)
		return IPPROTO_SCTP;
	return 0;
}

static const char *proto_lower(uint8_t p)
{
	return p == IPPROTO_UDP ? "udp" : p == IPPROTO_SCTP ? "sctp" : "tcp";
}

static int ep_cmp(const void *a, const void *b)
{
	const struct xl_endpoint *x = a, *y = b;

	if (x->addr != y->addr)
		return ntohl(x->addr) < ntohl(y->addr) ? -1 : 1;
	if (x->port != y->port)
		return x->port < y->port ? -1 : 1;
	/* The most serving copy first: duplicates keep it. */
	return (int)(y->ready * 2 + y->serving) - (int)(x->ready * 2 + x->serving);
}

static int add_u32(uint32_t **v, size_t *n, uint32_t x)
{
	uint32_t *t;

	for (size_t i = 0; i < *n; i++)
		if ((*v)[i] == x)
			return 0;
	t = realloc(*v, (*n + 1) * sizeof(**v));
	if (!t)
		return -ENOMEM;
	*v = t;
	t[(*n)++] = x;
	return 0;
}

/* The endpoints slice `sl` gives port (name, proto); appended to p->eps. */
static int slice_endpoints(const json_t *sl, const char *pname, uint8_t proto,
			   const struct xl_node *node, struct xl_port *p, size_t *cap)
{
	const json_t *ports = json_object_get(sl, "ports"), *sp, *e;
	long target = 0;
	size_t i;
	const char *at = jstr(sl, "addressType");
	bool remote = json_object_get(json_object_get(json_object_get(sl, "metadata"), "labels"),
				      DPSYNC_REMOTE_LABEL) != NULL;

	if (!at || strcmp(at, "IPv4"))
		return 0;
	json_array_foreach (ports, i, sp) {
		const char *n = jstr(sp, "name");

		if (strcmp(n ? n : "", pname) || proto_num(jstr(sp, "protocol"), true) != proto)
			continue;
		target = jint(sp, "port", 0);
		break;
	}
	if (target < 1 || target > 65535)
		return 0;
	json_array_foreach (json_object_get(sl, "endpoints"), i, e) {
		const json_t *cond = json_object_get(e, "conditions");
		const json_t *fz = json_object_get(json_object_get(e, "hints"), "forZones");
		const char *nn = jstr(e, "nodeName"), *zone = jstr(e, "zone"), *hint;
		struct xl_endpoint *x;
		uint32_t addr;

		if (!ip4(json_string_value(json_array_get(json_object_get(e, "addresses"), 0)),
			 &addr))
			continue;
		if (p->n_eps == *cap) {
			size_t nc = *cap ? 2 * *cap : 16;
			struct xl_endpoint *t = realloc(p->eps, nc * sizeof(*t));

			if (!t)
				return -ENOMEM;
			p->eps = t;
			*cap = nc;
		}
		x = &p->eps[p->n_eps++];
		memset(x, 0, sizeof(*x));
		x->addr = addr;
		x->port = (uint16_t)target;
		x->ready = jbool(cond, "ready", true);
		x->serving = jbool(cond, "serving", x->ready);
		x->terminating = jbool(cond, "terminating", false);
		x->remote = remote;
		x->local = !remote && nn && node->name && !strcmp(nn, node->name);
		snprintf(x->node, sizeof(x->node), "%s", nn ? nn : "");
		snprintf(x->zone, sizeof(x->zone), "%s", zone ? zone : "");
		hint = jstr(json_array_get(fz, 0), "name");
		snprintf(x->hint, sizeof(x->hint), "%s", hint ? hint : "");
	}
	return 0;
}

static uint64_t port_hash(uint64_t h, const struct xl_port *p)
{
	h = fnv(h, p->dp_name, strlen(p->dp_name) + 1);
	h = fnv(h, p->nft_name, strlen(p->nft_name) + 1);
	h = fnv(h, &p->proto, sizeof(p->proto));
	h = fnv(h, &p->port, sizeof(p->port));
	h = fnv(h, &p->node_port, sizeof(p->node_port));
	h = fnv(h, &p->cluster_ip, sizeof(p->cluster_ip));
	h = fnv(h, p->ext, p->n_ext * sizeof(*p->ext));
	h = fnv(h, &p->n_ext, sizeof(p->n_ext));
	h = fnv(h, &p->affinity_timeout, sizeof(p->affinity_timeout));
	h = fnv(h, &p->etp_local, sizeof(p->etp_local));
	h = fnv(h, &p->itp_local, sizeof(p->itp_local));
	for (size_t i = 0; i < p->n_source_ranges; i++) {
		h = fnv(h, &p->source_ranges[i].addr, sizeof(p->source_ranges[i].addr));
		h = fnv(h, &p->source_ranges[i].prefix, sizeof(p->source_ranges[i].prefix));
	}
	for (size_t i = 0; i < p->n_eps; i++) {
		const struct xl_endpoint *e = &p->eps[i];
		uint8_t bits =
			(uint8_t)(e->ready | e->serving << 1 | e->terminating << 2 | e->local << 3 |
				  e->remote << 4);

		h = fnv(h, &e->addr, sizeof(e->addr));
		h = fnv(h, &e->port, sizeof(e->port));
		h = fnv(h, &bits, 1);
		h = fnv(h, e->node, strlen(e->node) + 1);
		h = fnv(h, e->zone, strlen(e->zone) + 1);
		h = fnv(h, e->hint, strlen(e->hint) + 1);
	}
	return h;
}

static void port_free(struct xl_port *p)
{
	free(p->ext);
	free(p->source_ranges);
	free(p->eps);
}

/*
 * Port p has endpoints in other clusters: its node port and external IPs move to q, a record
 * of their own with this cluster's endpoints only; p keeps the ClusterIP and every endpoint.
 */
static int split_external(struct xl_port *p, struct xl_port *q, const char *prefix)
{
	char suffix[48];
	size_t n = 0;

	memset(q, 0, sizeof(*q));
	q->eps = malloc((p->n_eps ? p->n_eps : 1) * sizeof(*q->eps));
	if (!q->eps)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_eps; i++)
		if (!p->eps[i].remote)
			q->eps[n++] = p->eps[i];
	q->n_eps = n;
	q->proto = p->proto;
	q->port = p->port;
	q->node_port = p->node_port;
	q->affinity_timeout = p->affinity_timeout;
	q->etp_local = p->etp_local;
	q->itp_local = p->itp_local;
	q->ext = p->ext;
	q->n_ext = p->n_ext;
	q->source_ranges = p->source_ranges;
	q->n_source_ranges = p->n_source_ranges;
	snprintf(suffix, sizeof(suffix), ":%u/%s/external", p->port, proto_lower(p->proto));
	fit_name(q->dp_name, sizeof(q->dp_name), prefix, suffix);
	snprintf(suffix, sizeof(suffix), "/%s/%u/external", proto_lower(p->proto), p->port);
	fit_name(q->nft_name, sizeof(q->nft_name), prefix, suffix);
	p->node_port = 0;
	p->ext = NULL;
	p->n_ext = 0;
	p->source_ranges = NULL;
	p->n_source_ranges = 0;
	return 0;
}

static bool has_remote(const struct xl_port *p)
{
	for (size_t i = 0; i < p->n_eps; i++)
		if (p->eps[i].remote)
			return true;
	return false;
}

int xl_service(const json_t *svc, json_t *const *slices, size_t n_slices,
	       const struct xl_node *node, struct xl_service *out)
{
	const json_t *meta, *spec, *sp, *v;
	const char *ns, *name, *type, *s;
	char prefix[160], suffix[32];
	uint32_t cip = 0, *ext = NULL, affinity = 0;
	size_t n_ext = 0, i;
	bool etp, itp, nodeports;
	int err = 0;

	memset(out, 0, sizeof(*out));
	out->hash = 1469598103934665603ULL;
	if (!svc)
		return 0;
	meta = json_object_get(svc, "metadata");
	spec = json_object_get(svc, "spec");
	ns = jstr(meta, "namespace");
	name = jstr(meta, "name");
	type = jstr(spec, "type");
	if (!ns || !name || !json_is_object(spec))
		return 0;
	if (type && !strcmp(type, "ExternalName"))
		return 0;
	nodeports = type && (!strcmp(type, "NodePort") || !strcmp(type, "LoadBalancer"));
	if (!ip4(jstr(spec, "clusterIP"), &cip)) {
		json_array_foreach (json_object_get(spec, "clusterIPs"), i, v)
			if (ip4(json_string_value(v), &cip))
				break;
	}
	json_array_foreach (json_object_get(spec, "externalIPs"), i, v) {
		uint32_t a;

		if (ip4(json_string_value(v), &a) && (err = add_u32(&ext, &n_ext, a)))
			goto fail;
	}
	json_array_foreach (
		json_object_get(json_object_get(json_object_get(svc, "status"), "loadBalancer"),
				"ingress"),
		i, v) {
		uint32_t a;

		if (ip4(jstr(v, "ip"), &a) && (err = add_u32(&ext, &n_ext, a)))
			goto fail;
	}
	s = jstr(spec, "sessionAffinity");
	if (s && !strcmp(s, "ClientIP")) {
		long t = jint(
			json_object_get(json_object_get(spec, "sessionAffinityConfig"), "clientIP"),
			"timeoutSeconds", 10800);

		affinity = t > 0 ? (uint32_t)t : 10800;
	}
	s = jstr(spec, "externalTrafficPolicy");
	etp = s && !strcmp(s, "Local");
	s = jstr(spec, "internalTrafficPolicy");
	itp = s && !strcmp(s, "Local");

	/* room for an external record beside every port */
	out->ports = calloc(2 * json_array_size(json_object_get(spec, "ports")) + 1,
			    sizeof(*out->ports));
	if (!out->ports) {
		err = -ENOMEM;
		goto fail;
	}
	snprintf(prefix, sizeof(prefix), "%s/%s", ns, name);
	json_array_foreach (json_object_get(spec, "ports"), i, sp) {
		const char *pn = jstr(sp, "name");
		uint8_t proto = proto_num(jstr(sp, "protocol"), node->sctp);
		long port = jint(sp, "port", 0), np = jint(sp, "nodePort", 0);
		struct xl_port *p = &out->ports[out->n_ports];
		size_t cap = 0, k;

		if (!proto || port < 1 || port > 65535) {
			log_debug("dpsync: service %s port %zu: protocol %s not programmed", prefix,
				  i, jstr(sp, "protocol"));
			continue;
		}
		p->proto = proto;
		p->port = (uint16_t)port;
		p->node_port = nodeports && np > 0 && np <= 65535 ? (uint16_t)np : 0;
		p->cluster_ip = cip;
		p->affinity_timeout = affinity;
		p->etp_local = etp;
		p->itp_local = itp;
		snprintf(suffix, sizeof(suffix), ":%ld/%s", port, proto_lower(proto));
		fit_name(p->dp_name, sizeof(p->dp_name), prefix, suffix);
		snprintf(suffix, sizeof(suffix), "/%s/%ld", proto_lower(proto), port);
		fit_name(p->nft_name, sizeof(p->nft_name), prefix, suffix);
		if (n_ext) {
			p->ext = malloc(n_ext * sizeof(*p->ext));
			if (!p->ext) {
				err = -ENOMEM;
				goto fail;
			}
			memcpy(p->ext, ext, n_ext * sizeof(*ext));
			p->n_ext = n_ext;
		}
		json_array_foreach (json_object_get(spec, "loadBalancerSourceRanges"), k, v) {
			struct nft_cidr c, *t;

			if (!json_is_string(v) || nft_cidr_parse(json_string_value(v), &c))
				continue;
			t = realloc(p->source_ranges, (p->n_source_ranges + 1) * sizeof(*t));
			if (!t) {
				err = -ENOMEM;
				goto fail;
			}
			p->source_ranges = t;
			t[p->n_source_ranges++] = c;
		}
		out->n_ports++;
		for (k = 0; k < n_slices; k++) {
			err = slice_endpoints(slices[k], pn ? pn : "", proto, node, p, &cap);
			if (err)
				goto fail;
		}
		if (p->n_eps) {
			size_t w = 1;

			qsort(p->eps, p->n_eps, sizeof(*p->eps), ep_cmp);
			for (k = 1; k < p->n_eps; k++)
				if (p->eps[k].addr != p->eps[w - 1].addr ||
				    p->eps[k].port != p->eps[w - 1].port)
					p->eps[w++] = p->eps[k];
			p->n_eps = w;
		}
		if ((p->node_port || p->n_ext) && has_remote(p)) {
			err = split_external(p, &out->ports[out->n_ports], prefix);
			if (err)
				goto fail;
			out->hash = port_hash(out->hash, p);
			p = &out->ports[out->n_ports++];
		}
		out->hash = port_hash(out->hash, p);
	}
	free(ext);
	return 0;
fail:
	free(ext);
	xl_service_free(out);
	return err;
}

void xl_service_free(struct xl_service *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_ports; i++)
		port_free(&s->ports[i]);
	free(s->ports);
	s->ports = NULL;
	s->n_ports = 0;
}

int xl_to_dp(const struct xl_port *p, uint32_t node_ip, struct dp_service *svc,
	     struct dp_backend **be, size_t *n_be)
{
	struct dp_backend *b;
	size_t n = 0;

	*be = NULL;
	*n_be = 0;
	memset(svc, 0, sizeof(*svc));
	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP)
		return -ENOENT;
	svc->name = p->dp_name;
	svc->proto = p->proto;
	if (p->cluster_ip) {
		svc->frontends[n].addr = p->cluster_ip;
		svc->frontends[n++].port = p->port;
	}
	for (size_t i = 0; i < p->n_ext && n < DP_MAX_FRONTENDS; i++) {
		svc->frontends[n].addr = p->ext[i];
		svc->frontends[n++].port = p->port;
		svc->flags |= SVC_F_EXTERNAL;
	}
	if (p->node_port && node_ip && n < DP_MAX_FRONTENDS) {
		svc->frontends[n].addr = node_ip;
		svc->frontends[n++].port = p->node_port;
		svc->flags |= SVC_F_NODEPORT;
	}
	if (n < (p->cluster_ip ? 1 : 0) + p->n_ext + (p->node_port && node_ip ? 1 : 0))
		log_warn("dpsync: service %s: more than %d frontends; the rest are left out",
			 p->dp_name, DP_MAX_FRONTENDS);
	if (!n)
		return -ENOENT;
	svc->n_frontends = n;
	if (p->affinity_timeout) {
		svc->flags |= SVC_F_AFFINITY;
		svc->affinity_timeout =
			p->affinity_timeout > 65535 ? 65535 : (uint16_t)p->affinity_timeout;
	}
	if (p->etp_local)
		svc->flags |= SVC_F_ETP_LOCAL;
	if (p->itp_local)
		svc->flags |= SVC_F_ITP_LOCAL;
	/* North-south traffic picks the same backend on every node. */
	if (svc->flags & (SVC_F_NODEPORT | SVC_F_EXTERNAL))
		svc->flags |= SVC_F_MAGLEV;
	b = calloc(p->n_eps + 1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_eps; i++) {
		const struct xl_endpoint *e = &p->eps[i];

		b[i].addr = e->addr;
		b[i].port = e->port;
		b[i].weight = 1;
		b[i].flags = e->local ? BE_F_LOCAL : 0;
		if (e->terminating) {
			/* Serving while terminating: used only when nothing is ready. */
			b[i].ready = e->serving;
			if (e->serving)
				b[i].flags |= BE_F_TERMINATING;
		} else {
			b[i].ready = e->ready;
		}
		snprintf(b[i].zone_hint, sizeof(b[i].zone_hint), "%s", e->hint);
	}
	*be = b;
	*n_be = p->n_eps;
	return 0;
}

int xl_to_nft(const struct xl_port *p, struct nft_service *out)
{
	memset(out, 0, sizeof(*out));
	if (!p->cluster_ip && !p->n_ext && !p->node_port)
		return -ENOENT;
	snprintf(out->name, sizeof(out->name), "%s", p->nft_name);
	out->protocol = p->proto;
	out->cluster_ip.s_addr = p->cluster_ip;
	out->port = p->port;
	out->node_port = p->node_port;
	out->affinity_timeout = p->affinity_timeout;
	if (p->n_ext) {
		out->external_ips = calloc(p->n_ext, sizeof(*out->external_ips));
		if (!out->external_ips)
			goto nomem;
		for (size_t i = 0; i < p->n_ext; i++)
			out->external_ips[i].s_addr = p->ext[i];
		out->n_external_ips = p->n_ext;
	}
	if (p->n_source_ranges) {
		out->source_ranges = calloc(p->n_source_ranges, sizeof(*out->source_ranges));
		if (!out->source_ranges)
			goto nomem;
		memcpy(out->source_ranges, p->source_ranges,
		       p->n_source_ranges * sizeof(*p->source_ranges));
		out->n_source_ranges = p->n_source_ranges;
	}
	/* The engine applies the terminating fallback and externalTrafficPolicy=Local itself. */
	out->external_local = p->etp_local;
	if (p->n_eps) {
		out->endpoints = calloc(p->n_eps, sizeof(*out->endpoints));
		if (!out->endpoints)
			goto nomem;
		for (size_t i = 0; i < p->n_eps; i++) {
			const struct xl_endpoint *e = &p->eps[i];

			out->endpoints[i].addr.s_addr = e->addr;
			out->endpoints[i].port = e->port;
			out->endpoints[i].ready = e->ready && !e->terminating;
			out->endpoints[i].serving = e->serving;
			out->endpoints[i].terminating = e->terminating;
			out->endpoints[i].local = e->local;
		}
		out->n_endpoints = p->n_eps;
	}
	return 0;
nomem:
	nft_service_free_arrays(out);
	return -ENOMEM;
}

void xl_node_net(const json_t *node, struct xl_node_net *out)
{
	const json_t *spec = json_object_get(node, "spec"), *a;
	const char *cidr = jstr(spec, "podCIDR");
	size_t i;

	memset(out, 0, sizeof(*out));
	if (!cidr || !strchr(cidr, '.') || nft_cidr_parse(cidr, &out->pod_cidr)) {
		json_array_foreach (json_object_get(spec, "podCIDRs"), i, a) {
			const char *c = json_string_value(a);

			if (c && strchr(c, '.') && !nft_cidr_parse(c, &out->pod_cidr)) {
				out->has_cidr = true;
				break;
			}
		}
	} else {
		out->has_cidr = true;
	}
	json_array_foreach (json_object_get(json_object_get(node, "status"), "addresses"), i, a) {
		const char *t = jstr(a, "type");

		if (t && !strcmp(t, "InternalIP") && ip4(jstr(a, "address"), &out->internal_ip)) {
			out->has_ip = true;
			break;
		}
	}
}
