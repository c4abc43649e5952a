// SPDX-License-Identifier: Apache-2.0
/*
 * Unit tests of the data plane sync's translation: Service + EndpointSlices -> per-port
 * records, and those -> the BPF data plane's and the nftables proxy's records.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "dpsync_int.h"
#include "shoal_test.h"

static const struct xl_node node = { .name = "n1", .node_ip = 0x0100630a /* 10.99.0.1 */ };

static uint32_t ip4(const char *s)
{
	struct in_addr a = { 0 };

	inet_pton(AF_INET, s, &a);
	return a.s_addr;
}

static json_t *load(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);

	if (!j)
		fail_msg("fixture: %s at %d", e.text, e.position);
	return j;
}

#define SVC_WEB                                                                                    \
	"{\"metadata\":{\"namespace\":\"default\",\"name\":\"web\",\"annotations\":{\"a\":\"1\"}}" \
	","                                                                                        \
	"\"spec\":{\"type\":\"LoadBalancer\",\"clusterIP\":\"10.96.0.10\","                        \
	"\"externalIPs\":[\"192.0.2.1\",\"2001:db8::1\"],"                                         \
	"\"ports\":[{\"name\":\"http\",\"protocol\":\"TCP\",\"port\":80,\"nodePort\":30080},"      \
	"{\"name\":\"dns\",\"protocol\":\"UDP\",\"port\":53,\"nodePort\":30053},"                  \
	"{\"name\":\"sig\",\"protocol\":\"SCTP\",\"port\":99}]},"                                  \
	"\"status\":{\"loadBalancer\":{\"ingress\":[{\"ip\":\"198.51.100.7\"},{\"ip\":\"192.0.2."  \
	"1\"}]}}}"

#define SLICE_A                                                                                    \
	"{\"metadata\":{\"namespace\":\"default\",\"name\":\"web-a\"},\"addressType\":\"IPv4\","   \
	"\"ports\":[{\"name\":\"http\",\"protocol\":\"TCP\",\"port\":8080},"                       \
	"{\"name\":\"dns\",\"protocol\":\"UDP\",\"port\":5353}],"                                  \
	"\"endpoints\":[{\"addresses\":[\"10.100.1.2\"],\"nodeName\":\"n1\",\"zone\":\"a\","       \
	"\"hints\":{\"forZones\":[{\"name\":\"a\"}]}},"                                            \
	"{\"addresses\":[\"10.100.2.2\"],\"nodeName\":\"n2\",\"conditions\":{\"ready\":false}}]}"

#define SLICE_B                                                                                    \
	"{\"metadata\":{\"namespace\":\"default\",\"name\":\"web-b\"},\"addressType\":\"IPv4\","   \
	"\"ports\":[{\"name\":\"http\",\"protocol\":\"TCP\",\"port\":8080}],"                      \
	"\"endpoints\":[{\"addresses\":[\"10.100.3.2\"],\"nodeName\":\"n3\"},"                     \
	"{\"addresses\":[\"10.100.1.2\"],\"nodeName\":\"n1\"}]}"

#define SLICE_V6                                                                                   \
	"{\"metadata\":{\"namespace\":\"default\",\"name\":\"web-6\"},\"addressType\":\"IPv6\","   \
	"\"ports\":[{\"name\":\"http\",\"protocol\":\"TCP\",\"port\":8080}],"                      \
	"\"endpoints\":[{\"addresses\":[\"2001:db8::2\"]}]}"

static void translate(const char *svc, const char *const *slices, size_t n, struct xl_node nd,
		      struct xl_service *out)
{
	json_t *s = svc ? load(svc) : NULL, *sl[8];

	for (size_t i = 0; i < n; i++)
		sl[i] = load(slices[i]);
	assert_int_equal(xl_service(s, sl, n, &nd, out), 0);
	for (size_t i = 0; i < n; i++)
		json_decref(sl[i]);
	json_decref(s);
}

static void test_agent_dpsync_xlate_frontends(void **state)
{
	const char *slices[] = { SLICE_A };
	struct xl_service xl;
	struct dp_service svc;
	struct dp_backend *be;
	size_t n;

	(void)state;
	translate(SVC_WEB, slices, 1, node, &xl);
	/* SCTP is left to nftables; TCP and UDP stay. */
	assert_int_equal(xl.n_ports, 2);
	assert_string_equal(xl.ports[0].dp_name, "default/web:80/tcp");
	assert_string_equal(xl.ports[0].nft_name, "default/web/tcp/80");
	assert_string_equal(xl.ports[1].dp_name, "default/web:53/udp");
	/* ClusterIP, the IPv4 external IP, the LB ingress IP (once), the NodePort. */
	assert_int_equal(xl_to_dp(&xl.ports[0], node.node_ip, &svc, &be, &n), 0);
	assert_int_equal(svc.n_frontends, 4);
	assert_int_equal(svc.frontends[0].addr, ip4("10.96.0.10"));
	assert_int_equal(svc.frontends[0].port, 80);
	assert_int_equal(svc.frontends[1].addr, ip4("192.0.2.1"));
	assert_int_equal(svc.frontends[2].addr, ip4("198.51.100.7"));
	assert_int_equal(svc.frontends[3].addr, node.node_ip);
	assert_int_equal(svc.frontends[3].port, 30080);
	assert_int_equal(svc.flags, SVC_F_NODEPORT | SVC_F_EXTERNAL | SVC_F_MAGLEV);
	assert_int_equal(svc.proto, IPPROTO_TCP);
	free(be);
	xl_service_free(&xl);

	/* nftables mode keeps SCTP. */
	struct xl_node sctp = node;

	sctp.sctp = true;
	translate(SVC_WEB, slices, 1, sctp, &xl);
	assert_int_equal(xl.n_ports, 3);
	assert_int_equal(xl.ports[2].proto, IPPROTO_SCTP);
	xl_service_free(&xl);
}

static void test_agent_dpsync_xlate_endpoints_from_every_slice(void **state)
{
	const char *slices[] = { SLICE_A, SLICE_B, SLICE_V6 };
	struct xl_service xl;
	const struct xl_port *http, *dns;

	(void)state;
	translate(SVC_WEB, slices, 3, node, &xl);
	http = &xl.ports[0];
	dns = &xl.ports[1];
	/* Both slices, the duplicate once (the ready copy), the IPv6 slice not at all. */
	assert_int_equal(http->n_eps, 3);
	assert_int_equal(http->eps[0].addr, ip4("10.100.1.2"));
	assert_int_equal(http->eps[0].port, 8080);
	assert_true(http->eps[0].ready && http->eps[0].local);
	assert_string_equal(http->eps[0].hint, "a");
	assert_int_equal(http->eps[1].addr, ip4("10.100.2.2"));
	assert_false(http->eps[1].ready);
	assert_false(http->eps[1].serving); /* serving defaults to ready */
	assert_false(http->eps[1].local);
	assert_int_equal(http->eps[2].addr, ip4("10.100.3.2"));
	assert_true(http->eps[2].ready); /* absent conditions: ready */
	/* The UDP port's target comes from the slice port of the same name. */
	assert_int_equal(dns->n_eps, 2);
	assert_int_equal(dns->eps[0].port, 5353);
	xl_service_free(&xl);
}

#define SVC_TERM                                                                                   \
	"{\"metadata\":{\"namespace\":\"ns\",\"name\":\"t\"},\"spec\":{\"clusterIP\":\"10.96.0."   \
	"20\","                                                                                    \
	"\"ports\":[{\"port\":80}]}}"
#define SLICE_TERM                                                                                 \
	"{\"metadata\":{\"namespace\":\"ns\",\"name\":\"t-1\"},\"addressType\":\"IPv4\","          \
	"\"ports\":[{\"port\":8080}],\"endpoints\":["                                              \
	"{\"addresses\":[\"10.0.0.1\"],\"conditions\":{\"ready\":false,\"serving\":true,"          \
	"\"terminating\":true}},"                                                                  \
	"{\"addresses\":[\"10.0.0.2\"],\"conditions\":{\"ready\":false,\"serving\":false,"         \
	"\"terminating\":true}},"                                                                  \
	"{\"addresses\":[\"10.0.0.3\"],\"conditions\":{\"ready\":false}}]}"

static void test_agent_dpsync_xlate_terminating_fallback(void **state)
{
	const char *slices[] = { SLICE_TERM };
	struct xl_service xl;
	struct dp_service svc;
	struct nft_service ns;
	struct dp_backend *be;
	size_t n;

	(void)state;
	translate(SVC_TERM, slices, 1, node, &xl);
	assert_int_equal(xl.n_ports, 1);
	/* Unnamed ports match unnamed slice ports; a Service without a type is ClusterIP. */
	assert_int_equal(xl.ports[0].n_eps, 3);
	assert_int_equal(xl_to_dp(&xl.ports[0], node.node_ip, &svc, &be, &n), 0);
	assert_int_equal(svc.n_frontends, 1);
	assert_int_equal(svc.flags, 0);
	assert_int_equal(n, 3);
	/* serving + terminating: a terminating backend; not serving: listed, not used */
	assert_int_equal(be[0].flags, BE_F_TERMINATING);
	assert_int_equal(be[0].ready, 1);
	assert_int_equal(be[1].ready, 0);
	assert_int_equal(be[2].ready, 0);
	assert_int_equal(be[2].flags, 0);
	free(be);
	/* nftables gets the conditions as they are; its engine applies the fallback. */
	assert_int_equal(xl_to_nft(&xl.ports[0], &ns), 0);
	assert_int_equal(ns.n_endpoints, 3);
	assert_false(ns.endpoints[0].ready);
	assert_true(ns.endpoints[0].serving);
	assert_true(ns.endpoints[0].terminating);
	assert_false(ns.endpoints[1].ready);
	assert_false(ns.endpoints[2].ready);
	assert_false(ns.endpoints[2].serving);
	nft_service_free_arrays(&ns);
	xl_service_free(&xl);
}

#define SVC_POLICY                                                                                 \
	"{\"metadata\":{\"namespace\":\"ns\",\"name\":\"p\"},\"spec\":{\"type\":\"NodePort\","     \
	"\"clusterIP\":\"10.96.0.30\",\"externalTrafficPolicy\":\"Local\","                        \
	"\"internalTrafficPolicy\":\"Local\",\"sessionAffinity\":\"ClientIP\","                    \
	"\"sessionAffinityConfig\":{\"clientIP\":{\"timeoutSeconds\":600}},"                       \
	"\"ports\":[{\"port\":80,\"nodePort\":31000}]}}"

static void test_agent_dpsync_xlate_policies_and_affinity(void **state)
{
	struct xl_service xl;
	struct dp_service svc;
	struct nft_service ns;
	struct dp_backend *be;
	size_t n;

	(void)state;
	translate(SVC_POLICY, NULL, 0, node, &xl);
	assert_int_equal(xl_to_dp(&xl.ports[0], node.node_ip, &svc, &be, &n), 0);
	assert_int_equal(svc.flags, SVC_F_NODEPORT | SVC_F_AFFINITY | SVC_F_ETP_LOCAL |
					    SVC_F_ITP_LOCAL | SVC_F_MAGLEV);
	assert_int_equal(svc.affinity_timeout, 600);
	assert_int_equal(n, 0);
	free(be);
	assert_int_equal(xl_to_nft(&xl.ports[0], &ns), 0);
	assert_int_equal(ns.affinity_timeout, 600);
	assert_int_equal(ns.node_port, 31000);
	nft_service_free_arrays(&ns);
	/* Without a node address there is no NodePort frontend. */
	assert_int_equal(xl_to_dp(&xl.ports[0], 0, &svc, &be, &n), 0);
	assert_int_equal(svc.n_frontends, 1);
	assert_int_equal(svc.flags & SVC_F_NODEPORT, 0);
	free(be);
	xl_service_free(&xl);
}

static void test_agent_dpsync_xlate_headless_and_external_name(void **state)
{
	struct xl_service xl;
	struct dp_service svc;
	struct nft_service ns;
	struct dp_backend *be;
	size_t n;

	(void)state;
	translate("{\"metadata\":{\"namespace\":\"ns\",\"name\":\"h\"},\"spec\":{\"clusterIP\":"
		  "\"None\",\"ports\":[{\"port\":80}]}}",
		  NULL, 0, node, &xl);
	assert_int_equal(xl.n_ports, 1);
	assert_int_equal(xl_to_dp(&xl.ports[0], node.node_ip, &svc, &be, &n), -ENOENT);
	assert_int_equal(xl_to_nft(&xl.ports[0], &ns), -ENOENT);
	xl_service_free(&xl);
	translate("{\"metadata\":{\"namespace\":\"ns\",\"name\":\"x\"},\"spec\":{\"type\":"
		  "\"ExternalName\",\"externalName\":\"example.com\",\"ports\":[{\"port\":80}]}}",
		  NULL, 0, node, &xl);
	assert_int_equal(xl.n_ports, 0);
	xl_service_free(&xl);
	/* A deleted Service has no ports. */
	translate(NULL, NULL, 0, node, &xl);
	assert_int_equal(xl.n_ports, 0);
	xl_service_free(&xl);
}

static void test_agent_dpsync_xlate_hash_sees_only_what_matters(void **state)
{
	const char *slices[] = { SLICE_A };
	const char *slices2[] = { SLICE_A, SLICE_B };
	struct xl_service a, b;
	char *other = strdup(SVC_WEB);

	(void)state;
	translate(SVC_WEB, slices, 1, node, &a);
	/* An annotation changes nothing the data plane uses. */
	memcpy(strstr(other, "\"a\":\"1\""), "\"a\":\"2\"", 7);
	translate(other, slices, 1, node, &b);
	assert_true(a.hash == b.hash);
	xl_service_free(&b);
	/* Another endpoint does. */
	translate(SVC_WEB, slices2, 2, node, &b);
	assert_true(a.hash != b.hash);
	xl_service_free(&b);
	/* So does the node: locality is part of it. */
	struct xl_node n2 = node;

	n2.name = "n2";
	translate(SVC_WEB, slices, 1, n2, &b);
	assert_true(a.hash != b.hash);
	xl_service_free(&b);
	xl_service_free(&a);
	free(other);
}

static void test_agent_dpsync_xlate_long_names_fit(void **state)
{
	char svc[512], ns[64], name[64];
	struct xl_service xl;

	(void)state;
	memset(ns, 'n', 63);
	ns[63] = '\0';
	memset(name, 's', 63);
	name[63] = '\0';
	snprintf(svc, sizeof(svc),
		 "{\"metadata\":{\"namespace\":\"%s\",\"name\":\"%s\"},\"spec\":{\"clusterIP\":"
		 "\"10.96.0.40\",\"ports\":[{\"port\":65535,\"protocol\":\"UDP\"}]}}",
		 ns, name);
	translate(svc, NULL, 0, node, &xl);
	assert_int_equal(xl.n_ports, 1);
	assert_true(strlen(xl.ports[0].dp_name) < SHOAL_SVC_NAME_LEN);
	assert_true(strlen(xl.ports[0].nft_name) < NFT_SVC_NAME_MAX);
	/* The end that tells ports apart is kept. */
	assert_non_null(strstr(xl.ports[0].dp_name, ":65535/udp"));
	assert_non_null(strstr(xl.ports[0].nft_name, "/udp/65535"));
	assert_non_null(strchr(xl.ports[0].nft_name, '~'));
	xl_service_free(&xl);
}

#define SLICE_FED                                                                                  \
	"{\"metadata\":{\"namespace\":\"default\",\"name\":\"web-fed-b\",\"labels\":{"             \
	"\"kubernetes.io/service-name\":\"web\",\"federation.shoal.io/source-cluster\":\"b\"}},"    \
	"\"addressType\":\"IPv4\",\"ports\":[{\"name\":\"http\",\"protocol\":\"TCP\",\"port\":31000}],"  \
	"\"endpoints\":[{\"addresses\":[\"10.99.2.1\"]},{\"addresses\":[\"10.99.2.2\"]}]}"

/* Another cluster's endpoints serve the ClusterIP only; the node port and external IPs get a
 * record of their own with this cluster's endpoints. */
static void test_agent_dpsync_xlate_remote_cluster_endpoints_serve_clusterip_only(void **state)
{
	const char *slices[] = { SLICE_B, SLICE_FED };
	struct xl_service xl, plain;
	struct dp_service svc;
	struct dp_backend *be;
	size_t n;

	(void)state;
	translate(SVC_WEB, slices, 2, node, &xl);
	/* http becomes two records; dns has no endpoint of another cluster and stays one */
	assert_int_equal(xl.n_ports, 3);
	assert_string_equal(xl.ports[0].dp_name, "default/web:80/tcp");
	assert_string_equal(xl.ports[1].dp_name, "default/web:80/tcp/external");
	assert_string_equal(xl.ports[1].nft_name, "default/web/tcp/80/external");
	assert_string_equal(xl.ports[2].dp_name, "default/web:53/udp");
	/* the ClusterIP: the pods of this cluster and the other cluster's nodes */
	assert_int_equal(xl_to_dp(&xl.ports[0], node.node_ip, &svc, &be, &n), 0);
	assert_int_equal(svc.n_frontends, 1);
	assert_int_equal(svc.frontends[0].addr, ip4("10.96.0.10"));
	assert_int_equal(svc.flags, 0);
	assert_int_equal(n, 4);
	assert_int_equal(be[0].addr, ip4("10.99.2.1"));
	assert_int_equal(be[0].port, 31000);
	assert_int_equal(be[0].flags, 0); /* never local, whatever its nodeName */
	assert_int_equal(be[2].addr, ip4("10.100.1.2"));
	assert_int_equal(be[2].flags, BE_F_LOCAL);
	free(be);
	/* the way in from outside: external IPs and the node port, this cluster's pods only */
	assert_int_equal(xl_to_dp(&xl.ports[1], node.node_ip, &svc, &be, &n), 0);
	assert_int_equal(svc.n_frontends, 3);
	assert_int_equal(svc.frontends[0].addr, ip4("192.0.2.1"));
	assert_int_equal(svc.frontends[2].addr, node.node_ip);
	assert_int_equal(svc.frontends[2].port, 30080);
	assert_int_equal(svc.flags, SVC_F_NODEPORT | SVC_F_EXTERNAL | SVC_F_MAGLEV);
	assert_int_equal(n, 2);
	assert_int_equal(be[0].addr, ip4("10.100.1.2"));
	assert_int_equal(be[1].addr, ip4("10.100.3.2"));
	free(be);
	/* the other cluster's endpoints changing changes the digest */
	translate(SVC_WEB, slices, 1, node, &plain);
	assert_int_equal(plain.n_ports, 2);
	assert_true(plain.hash != xl.hash);
	xl_service_free(&plain);
	xl_service_free(&xl);
}

static void test_agent_dpsync_xlate_node_addresses(void **state)
{
	struct xl_node_net nn;
	json_t *n = load("{\"metadata\":{\"name\":\"n2\"},\"spec\":{\"podCIDRs\":[\"fd00::/64\","
			 "\"10.100.2.0/24\"]},\"status\":{\"addresses\":[{\"type\":\"Hostname\","
			 "\"address\":\"n2\"},{\"type\":\"InternalIP\",\"address\":\"fd00::2\"},"
			 "{\"type\":\"InternalIP\",\"address\":\"10.99.0.2\"}]}}");

	(void)state;
	xl_node_net(n, &nn);
	assert_true(nn.has_cidr && nn.has_ip);
	assert_int_equal(nn.pod_cidr.addr.s_addr, ip4("10.100.2.0"));
	assert_int_equal(nn.pod_cidr.prefix, 24);
	assert_int_equal(nn.internal_ip, ip4("10.99.0.2"));
	json_decref(n);
	n = load("{\"metadata\":{\"name\":\"n3\"},\"spec\":{}}");
	xl_node_net(n, &nn);
	assert_false(nn.has_cidr || nn.has_ip);
	json_decref(n);
}

SHOAL_TEST_MAIN(cmocka_unit_test(test_agent_dpsync_xlate_frontends),
		cmocka_unit_test(test_agent_dpsync_xlate_endpoints_from_every_slice),
		cmocka_unit_test(test_agent_dpsync_xlate_terminating_fallback),
		cmocka_unit_test(test_agent_dpsync_xlate_policies_and_affinity),
		cmocka_unit_test(test_agent_dpsync_xlate_headless_and_external_name),
		cmocka_unit_test(test_agent_dpsync_xlate_hash_sees_only_what_matters),
		cmocka_unit_test(test_agent_dpsync_xlate_long_names_fit),
		cmocka_unit_test(test_agent_dpsync_xlate_remote_cluster_endpoints_serve_clusterip_only),
		cmocka_unit_test(test_agent_dpsync_xlate_node_addresses))
