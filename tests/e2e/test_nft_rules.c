// SPDX-License-Identifier: Apache-2.0
/*
 * The nftables engine against the kernel, in a network namespace of its own: what is read
 * back equals what was asked after every change, one endpoint change among 1,000 services
 * touches only that service's objects and only map elements (no rule, so no validation of
 * the table), a batch the kernel rejects leaves the old rules, the engine adopts the table
 * after a restart and repairs a damaged one, and removing the table leaves nothing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nft.h"
#include "shoal_test.h"

static struct nft_cidr pods[1];

static int group_setup(void **state)
{
	(void)state;
	if (unshare(CLONE_NEWNET) != 0) {
		fprintf(stderr, "unshare(CLONE_NEWNET): %m (run as root)\n");
		return -1;
	}
	return nft_cidr_parse("10.100.0.0/16", &pods[0]);
}

static struct nft_engine *open_engine(bool proxy)
{
	struct nft_config cfg = {
		.pod_cidrs = pods, .n_pod_cidrs = 1, .proxy = proxy, .nodeports = true
	};
	struct nft_engine *e = nft_open(&cfg);
	assert_non_null(e);
	return e;
}

static struct in_addr ip4(const char *s)
{
	struct in_addr a;
	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a;
}

/* A service with n endpoints 10.100.B.C:8080, numbered from `first`. */
struct svc_buf {
	struct nft_service s;
	struct nft_endpoint eps[16];
	struct in_addr ext[2];
	struct nft_cidr ranges[2];
};

static void make_svc(struct svc_buf *b, int idx, int n_eps, int first)
{
	memset(b, 0, sizeof(*b));
	snprintf(b->s.name, sizeof(b->s.name), "ns%d/svc%d/tcp/80", idx % 7, idx);
	b->s.protocol = IPPROTO_TCP;
	b->s.cluster_ip.s_addr = htonl(0x0a600000u + (uint32_t)idx + 1); /* 10.96.x.y */
	b->s.port = 80;
	for (int i = 0; i < n_eps; i++) {
		b->eps[i].addr.s_addr = htonl(0x0a640000u + (uint32_t)(first + i) + 2);
		b->eps[i].port = 8080;
		b->eps[i].ready = true;
	}
	b->s.endpoints = b->eps;
	b->s.n_endpoints = (size_t)n_eps;
}

static const struct nft_service *find_svc(const struct nft_state *st, const char *name)
{
	for (size_t i = 0; i < st->n_services; i++)
		if (!strcmp(st->services[i].name, name))
			return &st->services[i];
	return NULL;
}

/* Everything asked is read back, and nothing else. */
static void assert_readback(const struct nft_service *const *want, size_t n)
{
	struct nft_state *st = NULL;
	assert_int_equal(nft_dump(NULL, &st), 0);
	assert_true(st->present);
	size_t visible = 0;
	for (size_t i = 0; i < n; i++) {
		const struct nft_service *got = find_svc(st, want[i]->name);
		if (!got) {
			fail_msg("service %s: not read back", want[i]->name);
		}
		if (!nft_service_equal(got, want[i]))
			fail_msg("service %s: read back differs (eps %zu vs %zu, aff %u vs %u, "
				 "ranges %zu vs %zu, node port %u vs %u)",
				 want[i]->name, got->n_endpoints, want[i]->n_endpoints,
				 got->affinity_timeout, want[i]->affinity_timeout,
				 got->n_source_ranges, want[i]->n_source_ranges, got->node_port,
				 want[i]->node_port);
		visible++;
	}
	assert_int_equal(st->n_services, visible);
	nft_state_free(st);
}

static void test_nft_readback_equals_asked(void **state)
{
	(void)state;
	struct nft_engine *e = open_engine(true);
	struct svc_buf a, b, c, d;

	make_svc(&a, 1, 3, 0);
	make_svc(&b, 2, 2, 10);
	b.s.affinity_timeout = 10800;
	b.s.node_port = 30080;
	make_svc(&c, 3, 0, 0); /* no endpoints: rejected */
	c.s.node_port = 30081;
	c.s.affinity_timeout = 30; /* nothing to stick to yet */
	make_svc(&d, 4, 4, 20);
	d.s.protocol = IPPROTO_UDP;
	snprintf(d.s.name, sizeof(d.s.name), "ns4/dns/udp/53");
	d.s.port = 53;
	d.ext[0] = ip4("192.0.2.10");
	d.ext[1] = ip4("192.0.2.11");
	d.s.external_ips = d.ext;
	d.s.n_external_ips = 2;
	assert_int_equal(nft_cidr_parse("198.51.100.0/24", &d.ranges[0]), 0);
	assert_int_equal(nft_cidr_parse("203.0.113.7/32", &d.ranges[1]), 0);
	d.s.source_ranges = d.ranges;
	d.s.n_source_ranges = 2;

	/* externalTrafficPolicy=Local: one local endpoint ready, one local terminating, one
	 * remote ready */
	struct svc_buf f;
	make_svc(&f, 5, 3, 30);
	f.s.node_port = 30085;
	f.s.external_local = true;
	f.eps[0].local = true;
	f.eps[1] = (struct nft_endpoint){ .addr = ip4("10.100.5.5"), .port = 8080, .serving = true,
					  .terminating = true, .local = true };

	const struct nft_service *all[] = { &a.s, &b.s, &c.s, &d.s, &f.s };
	for (size_t i = 0; i < 5; i++) {
		int err = nft_service_upsert(e, all[i]);
		if (err)
			fail_msg("upsert %s: %s", all[i]->name, nft_last_error(e));
		assert_readback(all, i + 1);
	}
	/* no local endpoint ready: the local terminating one serves outside traffic */
	f.eps[0].local = false;
	assert_int_equal(nft_service_upsert(e, &f.s), 0);
	assert_readback(all, 5);
	assert_int_equal(nft_service_delete(e, f.s.name), 0);

	/* change: an endpoint goes not-ready, one is added, affinity off, ranges shrink */
	a.eps[1].ready = false;
	a.eps[3] = (struct nft_endpoint){ .addr = ip4("10.100.9.9"), .port = 9090, .ready = true };
	a.s.n_endpoints = 4;
	b.s.affinity_timeout = 0;
	d.s.n_source_ranges = 1;
	c.s.n_endpoints = 1; /* gets an endpoint: leaves the reject map */
	c.eps[0] = (struct nft_endpoint){ .addr = ip4("10.100.3.3"), .port = 80, .ready = true };
	struct nft_service arr[4] = { a.s, b.s, c.s, d.s };
	assert_int_equal(nft_sync(e, arr, 4), 0);
	assert_readback(all, 4);

	/* delete two through a sync, one directly */
	assert_int_equal(nft_sync(e, arr, 2), 0);
	assert_readback(all, 2);
	assert_int_equal(nft_service_delete(e, a.s.name), 0);
	const struct nft_service *only_b[] = { &b.s };
	assert_readback(only_b, 1);
	assert_int_equal(nft_service_delete(e, a.s.name), -ENOENT);

	assert_int_equal(nft_remove(e), 0);
	struct nft_state *st = NULL;
	assert_int_equal(nft_dump(NULL, &st), 0);
	assert_false(st->present);
	nft_state_free(st);
	nft_close(e);
}

static void test_nft_bad_service_rejected_before_kernel(void **state)
{
	(void)state;
	struct nft_engine *e = open_engine(true);
	struct svc_buf a;
	make_svc(&a, 1, 2, 0);
	a.s.protocol = 47;
	assert_int_equal(nft_service_upsert(e, &a.s), -EINVAL);
	assert_non_null(strstr(nft_last_error(e), "protocol"));
	make_svc(&a, 1, 2, 0);
	a.eps[1] = a.eps[0];
	assert_int_equal(nft_service_upsert(e, &a.s), -EINVAL);
	assert_non_null(strstr(nft_last_error(e), "duplicate"));
	make_svc(&a, 1, 2, 0);
	struct nft_service two[2] = { a.s, a.s };
	assert_int_equal(nft_sync(e, two, 2), -EINVAL);
	assert_non_null(strstr(nft_last_error(e), "twice"));
	assert_int_equal(nft_remove(e), 0);
	nft_close(e);
}

/* Snapshot of objects: kind, name, handle, text. */
static bool same_obj(const struct nft_object *x, const struct nft_object *y)
{
	return x->kind == y->kind && !strcmp(x->name, y->name) && x->handle == y->handle &&
	       ((!x->text && !y->text) || (x->text && y->text && !strcmp(x->text, y->text)));
}

static size_t count_missing(const struct nft_state *from, const struct nft_state *in,
			    const char *must_mention, size_t *foreign)
{
	size_t missing = 0;
	/* objects are listed in a stable order per kind; match by a linear merge over names */
	for (size_t i = 0, j = 0; i < from->n_objects; i++) {
		const struct nft_object *x = &from->objects[i];
		bool found = false;
		for (size_t k = 0; k < in->n_objects && !found; k++) {
			size_t idx = (j + k) % in->n_objects;
			if (same_obj(x, &in->objects[idx])) {
				found = true;
				j = idx + 1;
			}
		}
		if (!found) {
			missing++;
			bool mine = strstr(x->name, must_mention) ||
				    (x->text && strstr(x->text, must_mention));
			if (!mine) {
				(*foreign)++;
				fprintf(stderr, "# changed object not of %s: %s %s %s\n",
					must_mention, x->kind == NFT_OBJ_RULE ? "rule" : "obj",
					x->name, x->text ? x->text : "");
			}
		}
	}
	return missing;
}

/* Every object that changed between two dumps is a set or map element. */
static size_t count_changed_rules_and_chains(const struct nft_state *a, const struct nft_state *b)
{
	size_t n = 0;
	for (int pass = 0; pass < 2; pass++) {
		const struct nft_state *from = pass ? b : a, *in = pass ? a : b;
		/* objects keep their order: search on from the last match */
		for (size_t i = 0, j = 0; i < from->n_objects; i++) {
			const struct nft_object *x = &from->objects[i];
			if (x->kind == NFT_OBJ_ELEM)
				continue;
			bool found = false;
			for (size_t k = 0; k < in->n_objects && !found; k++) {
				size_t idx = (j + k) % in->n_objects;
				if (same_obj(x, &in->objects[idx])) {
					found = true;
					j = idx + 1;
				}
			}
			if (!found) {
				fprintf(stderr, "# changed: %s %s\n", x->name,
					x->text ? x->text : "");
				n++;
			}
		}
	}
	return n;
}

static void test_nft_one_endpoint_change_touches_one_service(void **state)
{
	(void)state;
	enum { N = 1000 };
	struct nft_engine *e = open_engine(true);
	struct svc_buf *bufs = calloc(N, sizeof(*bufs));
	struct nft_service *svcs = calloc(N, sizeof(*svcs));
	assert_non_null(bufs);
	assert_non_null(svcs);
	for (int i = 0; i < N; i++) {
		make_svc(&bufs[i], i, 10, i * 10);
		if (i % 3 == 0)
			bufs[i].s.affinity_timeout = 600;
		svcs[i] = bufs[i].s;
	}
	int err = nft_sync(e, svcs, N);
	if (err)
		fail_msg("sync: %s", nft_last_error(e));
	struct nft_state *before = NULL, *after = NULL;
	assert_int_equal(nft_dump(NULL, &before), 0);
	assert_int_equal(before->n_services, N);

	/* a second sync of the same services sends nothing */
	uint32_t g0, g1;
	assert_int_equal(nft_genid(&g0), 0);
	assert_int_equal(nft_sync(e, svcs, N), 0);
	assert_int_equal(nft_genid(&g1), 0);
	assert_int_equal(g1, g0);

	/* one endpoint of service 500 changes */
	struct svc_buf *t = &bufs[500];
	t->eps[4].addr = ip4("10.100.250.250");
	svcs[500] = t->s;
	assert_int_equal(nft_sync(e, svcs, N), 0);
	struct nft_batch_stats bs;
	nft_last_batch(e, &bs);
	assert_int_equal(nft_genid(&g1), 0);
	assert_int_equal(g1, g0 + 1); /* exactly one commit */
	assert_true(bs.messages > 0 && bs.messages < 16);
	assert_int_equal(bs.acks, bs.messages);
	assert_int_equal(nft_dump(NULL, &after), 0);

	/* every object that disappeared or appeared belongs to service 500 */
	char mention[64];
	snprintf(mention, sizeof(mention), "%s", t->s.name);
	size_t foreign = 0;
	size_t gone = count_missing(before, after, mention, &foreign);
	size_t added = count_missing(after, before, mention, &foreign);
	assert_int_equal(foreign, 0);
	assert_true(gone > 0 && gone < 8); /* its endpoint's interval and hairpin element */
	assert_true(added > 0 && added < 8);
	assert_int_equal(count_changed_rules_and_chains(before, after), 0);
	assert_int_equal(after->n_services, N);
	for (int i = 0; i < N; i++) {
		const struct nft_service *got = find_svc(after, svcs[i].name);
		assert_non_null(got);
		assert_true(nft_service_equal(got, &svcs[i]));
	}

	/* scaling up, down, to none and back changes elements only, of that service */
	int counts[] = { 12, 3, 0, 10 };
	for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
		nft_state_free(before);
		before = after;
		for (int k = 10; k < counts[c]; k++)
			t->eps[k] = (struct nft_endpoint){ .addr.s_addr =
								   htonl(0x0a65f000u + (uint32_t)k),
							   .port = 8080,
							   .ready = true };
		t->s.n_endpoints = (size_t)counts[c];
		svcs[500] = t->s;
		int err = nft_sync(e, svcs, N);
		if (err)
			fail_msg("sync with %d endpoints: %s", counts[c], nft_last_error(e));
		assert_int_equal(nft_dump(NULL, &after), 0);
		foreign = 0;
		count_missing(before, after, mention, &foreign);
		count_missing(after, before, mention, &foreign);
		assert_int_equal(foreign, 0);
		assert_int_equal(count_changed_rules_and_chains(before, after), 0);
		assert_true(nft_service_equal(find_svc(after, t->s.name), &t->s));
	}
	nft_state_free(before);
	nft_state_free(after);
	assert_int_equal(nft_remove(e), 0);
	nft_close(e);
	free(bufs);
	free(svcs);
}

static void test_nft_rejected_batch_keeps_old_rules(void **state)
{
	(void)state;
	struct nft_engine *e = open_engine(true);
	struct svc_buf a, b;
	make_svc(&a, 1, 3, 0);
	assert_int_equal(nft_service_upsert(e, &a.s), 0);
	struct nft_state *before = NULL, *after = NULL;

	/* Someone else holds the element service b needs (same key, another verdict): the
	 * kernel refuses b's batch, which also changes a's endpoints in the same batch. */
	make_svc(&b, 2, 2, 10);
	assert_int_equal(system("nft add element inet shoal service-ips "
				"'{ 10.96.0.3 . tcp . 80 : goto mark-for-masquerade }'"),
			 0);
	assert_int_equal(nft_dump(NULL, &before), 0);
	a.eps[0].ready = false;
	struct nft_service both[2] = { a.s, b.s };
	uint32_t g0, g1;
	assert_int_equal(nft_genid(&g0), 0);
	int err = nft_sync(e, both, 2);
	assert_true(err < 0);
	const char *msg = nft_last_error(e);
	fprintf(stderr, "# kernel said: %s\n", msg);
	assert_non_null(strstr(msg, "service-ips"));
	assert_non_null(strstr(msg, "10.96.0.3 . tcp . 80"));
	assert_int_equal(nft_genid(&g1), 0);
	assert_int_equal(g1, g0);
	assert_int_equal(nft_dump(NULL, &after), 0);
	assert_int_equal(after->n_objects, before->n_objects);
	size_t foreign = 0;
	assert_int_equal(count_missing(before, after, "\x01", &foreign), 0);
	assert_int_equal(count_missing(after, before, "\x01", &foreign), 0);
	nft_state_free(before);
	nft_state_free(after);

	/* the engine still works: once the foreign element is gone, the same change applies */
	assert_int_equal(system("nft delete element inet shoal service-ips "
				"'{ 10.96.0.3 . tcp . 80 }'"),
			 0);
	assert_int_equal(nft_sync(e, both, 2), 0);
	const struct nft_service *want[] = { &a.s, &b.s };
	assert_readback(want, 2);
	assert_int_equal(nft_remove(e), 0);
	nft_close(e);
}

static void test_nft_adopts_table_after_restart(void **state)
{
	(void)state;
	struct nft_engine *e = open_engine(true);
	struct svc_buf a, b;
	make_svc(&a, 1, 3, 0);
	make_svc(&b, 2, 2, 10);
	b.s.affinity_timeout = 60;
	b.s.node_port = 31000;
	struct nft_service both[2] = { a.s, b.s };
	assert_int_equal(nft_sync(e, both, 2), 0);
	nft_close(e); /* the rules stay */

	uint32_t g0, g1;
	assert_int_equal(nft_genid(&g0), 0);
	e = open_engine(true);
	assert_int_equal(nft_service_count(e), 2);
	assert_int_equal(nft_sync(e, both, 2), 0); /* nothing to do */
	assert_int_equal(nft_genid(&g1), 0);
	assert_int_equal(g1, g0);
	nft_close(e);

	/* a damaged table (rules deleted by hand, an endpoint's interval deleted by hand) is
	 * replaced in one batch at the next sync */
	const char *damage[] = {
		"nft flush chain inet shoal 'svc-ns1/svc1/tcp/80'",
		"nft delete element inet shoal endpoints-0 '{ 21845-43689 }'",
	};
	const struct nft_service *want[] = { &a.s, &b.s };
	for (size_t d = 0; d < 2; d++) {
		assert_int_equal(nft_genid(&g0), 0);
		assert_int_equal(system(damage[d]), 0);
		e = open_engine(true);
		assert_int_equal(nft_service_count(e), 0); /* not adopted */
		assert_int_equal(nft_sync(e, both, 2), 0);
		assert_int_equal(nft_genid(&g1), 0);
		assert_int_equal(g1, g0 + 2);
		assert_readback(want, 2);
		struct nft_state *st = NULL;
		assert_int_equal(nft_dump(NULL, &st), 0);
		size_t svc_rules = 0, intervals = 0;
		for (size_t i = 0; i < st->n_objects; i++) {
			svc_rules += st->objects[i].kind == NFT_OBJ_RULE &&
				     !strcmp(st->objects[i].name, "svc-ns1/svc1/tcp/80");
			intervals += st->objects[i].kind == NFT_OBJ_ELEM &&
				     !strcmp(st->objects[i].name, "endpoints-0");
		}
		assert_int_equal(svc_rules, 3);	 /* mark, dnat, reject */
		assert_int_equal(intervals, 6); /* three endpoints, start and end each */
		nft_state_free(st);
		nft_close(e);
		e = open_engine(true);
		assert_int_equal(nft_service_count(e), 2); /* adopted again */
		if (d == 0)
			nft_close(e);
	}

	/* another configuration: the table is replaced too */
	nft_close(e);
	e = open_engine(false);
	assert_int_equal(nft_sync(e, both, 2), 0);
	assert_int_equal(nft_remove(e), 0);
	nft_close(e);
}

/* Written, read back as asked, adopted after a restart without a change. */
static void roundtrip(const struct nft_config *cfg, const struct nft_service *svcs, size_t n)
{
	struct nft_engine *e = nft_open(cfg);
	assert_non_null(e);
	int err = nft_sync(e, svcs, n);
	if (err)
		fail_msg("sync: %s", nft_last_error(e));
	const struct nft_service *want[4];
	for (size_t i = 0; i < n && i < 4; i++)
		want[i] = &svcs[i];
	assert_readback(want, n);
	nft_close(e);
	uint32_t g0, g1;
	assert_int_equal(nft_genid(&g0), 0);
	e = nft_open(cfg);
	assert_non_null(e);
	assert_int_equal(nft_service_count(e), n);
	assert_int_equal(nft_sync(e, svcs, n), 0);
	assert_int_equal(nft_genid(&g1), 0);
	assert_int_equal(g1, g0);
	assert_int_equal(nft_remove(e), 0);
	nft_close(e);
}

/* Two pod CIDRs: the service chains jump to mark-from-outside, the Local ext chain has a rule
 * per CIDR. Without the proxy (BPF serves the addresses): only what has no endpoint is in the
 * table, in the no-endpoint sets. */
static void test_nft_other_configurations(void **state)
{
	(void)state;
	struct nft_cidr two[2];
	assert_int_equal(nft_cidr_parse("10.100.0.0/16", &two[0]), 0);
	assert_int_equal(nft_cidr_parse("10.200.0.0/16", &two[1]), 0);
	struct svc_buf a, b;
	make_svc(&a, 1, 3, 0);
	a.s.node_port = 30001;
	a.s.external_local = true;
	a.eps[1].local = true;
	a.ext[0] = ip4("192.0.2.1");
	a.s.external_ips = a.ext;
	a.s.n_external_ips = 1;
	a.s.affinity_timeout = 100;
	struct nft_config proxy = {
		.pod_cidrs = two, .n_pod_cidrs = 2, .proxy = true, .nodeports = true
	};
	roundtrip(&proxy, &a.s, 1);

	make_svc(&b, 2, 0, 0);
	b.s.node_port = 30002;
	b.ext[0] = ip4("192.0.2.2");
	b.s.external_ips = b.ext;
	b.s.n_external_ips = 1;
	struct nft_config bpf = { .pod_cidrs = two, .n_pod_cidrs = 1 };
	roundtrip(&bpf, &b.s, 1);
}

SHOAL_TEST_MAIN_SETUP(group_setup, NULL, cmocka_unit_test(test_nft_readback_equals_asked),
		      cmocka_unit_test(test_nft_bad_service_rejected_before_kernel),
		      cmocka_unit_test(test_nft_one_endpoint_change_touches_one_service),
		      cmocka_unit_test(test_nft_rejected_batch_keeps_old_rules),
		      cmocka_unit_test(test_nft_adopts_table_after_restart),
		      cmocka_unit_test(test_nft_other_configurations))
