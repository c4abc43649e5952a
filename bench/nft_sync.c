// SPDX-License-Identifier: Apache-2.0
/*
 * nftables engine benchmark: full sync of N services x 10 endpoints, a no-op resync, one
 * endpoint change (by nft_service_upsert and by a full-list nft_sync, as the agent calls
 * it), one endpoint added and removed (the service's endpoint count changes), one service
 * added and deleted (the change that still makes the kernel validate the table), adoption
 * after a restart, kernel memory of the rules; and, side by side in the same run, the same
 * services as kube-proxy-style iptables rules through iptables-restore (full restore, and one
 * change as kube-proxy's partial restore writes it).
 *
 * Every size runs in a fresh network namespace the benchmark makes (unshare), so nothing
 * touches the host's rules. Kernel memory is read from this process's memory cgroup
 * (memory.kmem.usage_in_bytes, read only) before and after each full sync, once the kernel
 * has finished freeing what the previous size's namespace held.
 *
 * Usage: nft_sync [--quick] [--data FILE]   Prints the "figures" array of
 * bench/results/nft.json on stdout; with --data writes a gnuplot data file.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "nft.h"

#define EPS 10

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static char kmem_path[512];

static long long kmem_bytes(void)
{
	if (!kmem_path[0]) {
		FILE *f = fopen("/proc/self/cgroup", "r");
		char line[512];
		while (f && fgets(line, sizeof(line), f)) {
			char *p = strstr(line, ":memory:");
			if (p) {
				p += strlen(":memory:");
				p[strcspn(p, "\n")] = '\0';
				snprintf(kmem_path, sizeof(kmem_path),
					 "/sys/fs/cgroup/memory%s/memory.kmem.usage_in_bytes", p);
			}
		}
		if (f)
			fclose(f);
	}
	FILE *f = kmem_path[0] ? fopen(kmem_path, "r") : NULL;
	long long v = -1;
	if (f) {
		if (fscanf(f, "%lld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/* Kernel memory once it stops moving (a namespace is torn down in the background): at most
 * 5 s of reads 200 ms apart. */
static long long kmem_settled(void)
{
	long long prev = kmem_bytes();
	for (int i = 0; i < 25 && prev >= 0; i++) {
		usleep(200 * 1000);
		long long now = kmem_bytes();
		if (now < 0 || llabs(now - prev) < 256 * 1024)
			return now;
		prev = now;
	}
	return prev;
}

struct svcset {
	int n;
	struct nft_service *s;
	struct nft_endpoint *eps;
};

static void svcset_init(struct svcset *ss, int n)
{
	ss->n = n;
	ss->s = calloc((size_t)n, sizeof(*ss->s));
	ss->eps = calloc((size_t)n * EPS, sizeof(*ss->eps));
	if (!ss->s || !ss->eps) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	for (int i = 0; i < n; i++) {
		struct nft_service *s = &ss->s[i];
		snprintf(s->name, sizeof(s->name), "ns%d/svc%d/tcp/80", i % 50, i);
		s->protocol = IPPROTO_TCP;
		s->cluster_ip.s_addr = htonl(0x0a600000u + (uint32_t)i + 1); /* 10.96.0.0/16 */
		s->port = 80;
		s->node_port = (uint16_t)(i < 2700 ? 30000 + i : 0);
		s->endpoints = &ss->eps[i * EPS];
		s->n_endpoints = EPS;
		for (int k = 0; k < EPS; k++) {
			uint32_t a = 0x0a640000u + (uint32_t)(i * EPS + k) % 65000 + 2;
			s->endpoints[k].addr.s_addr = htonl(a); /* 10.100.0.0/16 */
			s->endpoints[k].port = 8080;
			s->endpoints[k].ready = true;
		}
	}
}

/* ---- iptables-restore, kube-proxy style ---- */

static void ipt_svc_chains(FILE *f, const struct svcset *ss, int i, bool decl)
{
	const struct nft_service *s = &ss->s[i];
	char vip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &s->cluster_ip, vip, sizeof(vip));
	if (decl) {
		fprintf(f, ":KUBE-SVC-%08X%08X - [0:0]\n", (unsigned)i, (unsigned)i * 2654435761u);
		for (int k = 0; k < EPS; k++) {
			char ep[INET_ADDRSTRLEN];
			inet_ntop(AF_INET, &s->endpoints[k].addr, ep, sizeof(ep));
			fprintf(f, ":KUBE-SEP-%08X%08X - [0:0]\n", (unsigned)i,
				ntohl(s->endpoints[k].addr.s_addr));
		}
		return;
	}
	fprintf(f,
		"-A KUBE-SVC-%08X%08X -m comment --comment \"%s cluster IP\" ! -s 10.100.0.0/16 "
		"-d %s/32 -p tcp -m tcp --dport 80 -j KUBE-MARK-MASQ\n",
		(unsigned)i, (unsigned)i * 2654435761u, s->name, vip);
	for (int k = 0; k < EPS; k++) {
		char ep[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &s->endpoints[k].addr, ep, sizeof(ep));
		fprintf(f, "-A KUBE-SVC-%08X%08X -m comment --comment \"%s -> %s:8080\"",
			(unsigned)i, (unsigned)i * 2654435761u, s->name, ep);
		if (k < EPS - 1)
			fprintf(f, " -m statistic --mode random --probability %.11f",
				1.0 / (double)(EPS - k));
		fprintf(f, " -j KUBE-SEP-%08X%08X\n", (unsigned)i,
			ntohl(s->endpoints[k].addr.s_addr));
		fprintf(f,
			"-A KUBE-SEP-%08X%08X -m comment --comment \"%s\" -s %s/32 -j "
			"KUBE-MARK-MASQ\n",
			(unsigned)i, ntohl(s->endpoints[k].addr.s_addr), s->name, ep);
		fprintf(f,
			"-A KUBE-SEP-%08X%08X -m comment --comment \"%s\" -p tcp -m tcp -j DNAT "
			"--to-destination %s:8080\n",
			(unsigned)i, ntohl(s->endpoints[k].addr.s_addr), s->name, ep);
	}
}

static void ipt_services_chain(FILE *f, const struct svcset *ss)
{
	for (int i = 0; i < ss->n; i++) {
		char vip[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &ss->s[i].cluster_ip, vip, sizeof(vip));
		fprintf(f,
			"-A KUBE-SERVICES -m comment --comment \"%s cluster IP\" -d %s/32 -p tcp "
			"-m "
			"tcp --dport 80 -j KUBE-SVC-%08X%08X\n",
			ss->s[i].name, vip, (unsigned)i, (unsigned)i * 2654435761u);
	}
	fprintf(f, "-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n");
}

static void ipt_full(FILE *f, const struct svcset *ss)
{
	fprintf(f, "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
		   ":POSTROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n"
		   ":KUBE-MARK-MASQ - [0:0]\n:KUBE-POSTROUTING - [0:0]\n");
	for (int i = 0; i < ss->n; i++)
		ipt_svc_chains(f, ss, i, true);
	fprintf(f, "-A PREROUTING -j KUBE-SERVICES\n-A OUTPUT -j KUBE-SERVICES\n"
		   "-A POSTROUTING -j KUBE-POSTROUTING\n"
		   "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000\n"
		   "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n"
		   "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0\n"
		   "-A KUBE-POSTROUTING -j MASQUERADE --random-fully\n");
	ipt_services_chain(f, ss);
	for (int i = 0; i < ss->n; i++)
		ipt_svc_chains(f, ss, i, false);
	fprintf(f, "COMMIT\n");
}

/* kube-proxy's partial restore: KUBE-SERVICES rewritten, the changed service's chains
 * rewritten, the old endpoint chain deleted. */
static void ipt_change(FILE *f, const struct svcset *ss, int i, uint32_t old_ep)
{
	fprintf(f, "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SEP-%08X%08X - [0:0]\n", (unsigned)i,
		old_ep);
	ipt_svc_chains(f, ss, i, true);
	ipt_services_chain(f, ss);
	ipt_svc_chains(f, ss, i, false);
	fprintf(f, "-X KUBE-SEP-%08X%08X\nCOMMIT\n", (unsigned)i, old_ep);
}

static double ipt_limit_ms = 300000;

/* Runs iptables-restore [--noflush] on the file; returns milliseconds, -1 on failure, -2 when
 * it did not finish within ipt_limit_ms (it is then stopped). */
static double ipt_restore(const char *path, bool noflush)
{
	double t0 = now_ms();
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(path, O_RDONLY);
		if (fd < 0 || dup2(fd, 0) < 0)
			_exit(127);
		if (noflush)
			execlp("iptables-restore", "iptables-restore", "--noflush", "-w",
			       (char *)NULL);
		else
			execlp("iptables-restore", "iptables-restore", "-w", (char *)NULL);
		_exit(127);
	}
	int st = 0;
	if (pid < 0)
		return -1;
	for (;;) {
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid)
			break;
		if (w < 0)
			return -1;
		if (now_ms() - t0 > ipt_limit_ms) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			fprintf(stderr, "iptables-restore: stopped after %.0f s\n",
				ipt_limit_ms / 1000);
			return -2;
		}
		usleep(2000);
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "iptables-restore %s failed (status %d)\n", path, st);
		return -1;
	}
	return now_ms() - t0;
}

/* ---- output ---- */

static bool first_fig = true;

static void fig(const char *name, double value, const char *unit, double target, const char *better,
		const char *reference)
{
	printf("%s\n  {\"name\": \"%s\", \"value\": %.3f, \"unit\": \"%s\"", first_fig ? "" : ",",
	       name, value, unit);
	if (target > 0)
		printf(", \"target\": %g", target);
	printf(", \"better\": \"%s\"", better);
	if (reference)
		printf(", \"reference\": \"%s\"", reference);
	printf("}");
	first_fig = false;
	fflush(stdout);
}

static const char *size_name(int n, char *buf, size_t len)
{
	if (n % 1000 == 0)
		snprintf(buf, len, "%dk", n / 1000);
	else
		snprintf(buf, len, "%d", n);
	return buf;
}

struct result {
	int n;
	double nft_full, nft_change, nft_change_sync, ipt_full, ipt_change;
	double nft_kmem, ipt_kmem;
};

static int run_size(int n, int changes, struct result *res)
{
	char sz[16], name[96];
	size_name(n, sz, sizeof(sz));
	if (unshare(CLONE_NEWNET) != 0) {
		perror("unshare(CLONE_NEWNET)");
		return -1;
	}
	struct svcset ss;
	svcset_init(&ss, n);
	struct nft_cidr pods;
	nft_cidr_parse("10.100.0.0/16", &pods);
	struct nft_config cfg = {
		.pod_cidrs = &pods, .n_pod_cidrs = 1, .proxy = true, .nodeports = true
	};
	struct nft_engine *e = nft_open(&cfg);
	if (!e) {
		perror("nft_open");
		return -1;
	}

	/* full sync */
	long long k0 = kmem_settled();
	double t0 = now_ms();
	int err = nft_sync(e, ss.s, (size_t)n);
	double full = now_ms() - t0;
	long long k1 = kmem_bytes();
	if (err) {
		fprintf(stderr, "sync: %s\n", nft_last_error(e));
		return -1;
	}
	struct nft_batch_stats bs;
	nft_last_batch(e, &bs);
	res->n = n;
	res->nft_full = full;
	res->nft_kmem = (k0 >= 0 && k1 >= 0) ? (double)(k1 - k0) / (1024.0 * 1024.0) : -1;
	snprintf(name, sizeof(name), "nft_full_sync_ms_%s_svc", sz);
	fig(name, full, "ms", n >= 10000 ? 2000 : 0, "lower",
	    "kube-proxy nftables mode is reported taking minutes at 10k services");
	snprintf(name, sizeof(name), "nft_full_sync_batch_mib_%s_svc", sz);
	fig(name, (double)bs.bytes / (1024.0 * 1024.0), "MiB", 0, "lower", NULL);
	snprintf(name, sizeof(name), "nft_full_sync_messages_%s_svc", sz);
	fig(name, bs.messages, "messages", 0, "lower", NULL);
	if (res->nft_kmem >= 0) {
		snprintf(name, sizeof(name), "nft_kernel_mem_mib_%s_svc", sz);
		fig(name, res->nft_kmem, "MiB", 0, "lower", "memory cgroup kmem delta of the sync");
	}

	/* no-op resync */
	t0 = now_ms();
	err = nft_sync(e, ss.s, (size_t)n);
	snprintf(name, sizeof(name), "nft_noop_resync_ms_%s_svc", sz);
	fig(name, now_ms() - t0, "ms", 0, "lower", "nothing is sent when in sync");

	/* one endpoint change: upsert, and full-list sync */
	double *up = calloc((size_t)changes, sizeof(double));
	double *sy = calloc((size_t)changes, sizeof(double));
	for (int c = 0; c < changes && !err; c++) {
		int i = (int)((long)c * n / changes + c) % n;
		struct nft_endpoint *ep = &ss.s[i].endpoints[c % EPS];
		ep->addr.s_addr = htonl(0x0a650000u + (uint32_t)c + 2); /* 10.101.x.y */
		t0 = now_ms();
		err = nft_service_upsert(e, &ss.s[i]);
		up[c] = now_ms() - t0;
		ep->addr.s_addr = htonl(0x0a660000u + (uint32_t)c + 2);
		t0 = now_ms();
		if (!err)
			err = nft_sync(e, ss.s, (size_t)n);
		sy[c] = now_ms() - t0;
	}
	if (err) {
		fprintf(stderr, "change: %s\n", nft_last_error(e));
		return -1;
	}
	res->nft_change = median(up, changes);
	res->nft_change_sync = median(sy, changes);
	snprintf(name, sizeof(name), "nft_one_endpoint_change_ms_%s_svc", sz);
	fig(name, res->nft_change, "ms", 50, "lower", "median of nft_service_upsert, one batch");
	snprintf(name, sizeof(name), "nft_one_endpoint_change_by_full_list_sync_ms_%s_svc", sz);
	fig(name, res->nft_change_sync, "ms", 50, "lower",
	    "median of nft_sync over all services with one changed");

	/* one endpoint added, then removed again: the endpoint count changes */
	struct nft_endpoint more[EPS + 1];
	for (int c = 0; c < changes && !err; c++) {
		int i = (int)((long)c * n / changes + 2 * c + 1) % n;
		struct nft_service s = ss.s[i];
		memcpy(more, s.endpoints, EPS * sizeof(*more));
		more[EPS] =
			(struct nft_endpoint){ .addr.s_addr = htonl(0x0a680000u + (uint32_t)c + 2),
					       .port = 8080,
					       .ready = true };
		s.endpoints = more;
		s.n_endpoints = EPS + 1;
		t0 = now_ms();
		err = nft_service_upsert(e, &s);
		up[c] = now_ms() - t0;
		t0 = now_ms();
		if (!err)
			err = nft_service_upsert(e, &ss.s[i]);
		sy[c] = now_ms() - t0;
	}
	if (err) {
		fprintf(stderr, "endpoint count change: %s\n", nft_last_error(e));
		return -1;
	}
	snprintf(name, sizeof(name), "nft_endpoint_added_ms_%s_svc", sz);
	fig(name, median(up, changes), "ms", 50, "lower",
	    "median of nft_service_upsert with an 11th endpoint");
	snprintf(name, sizeof(name), "nft_endpoint_removed_ms_%s_svc", sz);
	fig(name, median(sy, changes), "ms", 50, "lower",
	    "median of nft_service_upsert back to 10 endpoints");

	/* one service added, then deleted: a new chain, so the kernel validates the table */
	for (int c = 0; c < changes && !err; c++) {
		struct nft_service s = ss.s[c % n];
		snprintf(s.name, sizeof(s.name), "bench/added%d/tcp/80", c);
		s.cluster_ip.s_addr = htonl(0x0a610000u + (uint32_t)c + 1); /* 10.97.x.y */
		s.node_port = 0;
		t0 = now_ms();
		err = nft_service_upsert(e, &s);
		up[c] = now_ms() - t0;
		t0 = now_ms();
		if (!err)
			err = nft_service_delete(e, s.name);
		sy[c] = now_ms() - t0;
	}
	if (err) {
		fprintf(stderr, "service add: %s\n", nft_last_error(e));
		return -1;
	}
	snprintf(name, sizeof(name), "nft_service_added_ms_%s_svc", sz);
	fig(name, median(up, changes), "ms", 0, "lower",
	    "median of nft_service_upsert of a new service (the kernel validates the table)");
	snprintf(name, sizeof(name), "nft_service_deleted_ms_%s_svc", sz);
	fig(name, median(sy, changes), "ms", 0, "lower", "median of nft_service_delete");
	free(up);
	free(sy);

	/* adoption after a restart: read back, decode, verify */
	nft_close(e);
	t0 = now_ms();
	e = nft_open(&cfg);
	double adopt = now_ms() - t0;
	if (!e || nft_service_count(e) != (size_t)n) {
		fprintf(stderr, "adopt: %zu services\n", e ? nft_service_count(e) : 0);
		return -1;
	}
	snprintf(name, sizeof(name), "nft_adopt_after_restart_ms_%s_svc", sz);
	fig(name, adopt, "ms", 0, "lower", "nft_open: dump, decode and verify the table");
	if (nft_remove(e)) {
		fprintf(stderr, "remove: %s\n", nft_last_error(e));
		return -1;
	}
	nft_close(e);

	/* iptables-restore, kube-proxy style, same services */
	char path[] = "/tmp/shoal-bench-ipt-XXXXXX";
	int fd = mkstemp(path);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f)
		return -1;
	ipt_full(f, &ss);
	fclose(f);
	k0 = kmem_bytes();
	res->ipt_full = ipt_restore(path, true);
	k1 = kmem_bytes();
	res->ipt_kmem = (k0 >= 0 && k1 >= 0) ? (double)(k1 - k0) / (1024.0 * 1024.0) : -1;
	if (res->ipt_full == -2) {
		unlink(path);
		snprintf(name, sizeof(name), "iptables_full_restore_ms_%s_svc", sz);
		fig(name, ipt_limit_ms, "ms", 0, "lower",
		    "did not finish: stopped at this limit (a lower bound)");
		snprintf(name, sizeof(name), "ratio_iptables_over_nft_full_sync_%s_svc", sz);
		fig(name, ipt_limit_ms / res->nft_full, "x", 0, "higher",
		    "lower bound: iptables-restore was stopped");
		res->ipt_full = ipt_limit_ms;
		res->ipt_change = -1;
		res->ipt_kmem = -1;
		free(ss.s);
		free(ss.eps);
		return 0;
	}
	int ic = changes < 5 ? changes : 5;
	if (ic > 3 && n >= 10000)
		ic = 3;
	double *ich = calloc((size_t)ic, sizeof(double));
	for (int c = 0; c < ic && res->ipt_full >= 0; c++) {
		int i = (c * 7919 + 13) % n;
		uint32_t old = ntohl(ss.s[i].endpoints[0].addr.s_addr);
		ss.s[i].endpoints[0].addr.s_addr = htonl(0x0a670000u + (uint32_t)c + 2);
		f = fopen(path, "w");
		if (!f)
			return -1;
		ipt_change(f, &ss, i, old);
		fclose(f);
		ich[c] = ipt_restore(path, true);
	}
	unlink(path);
	if (res->ipt_full < 0)
		return -1;
	res->ipt_change = median(ich, ic);
	free(ich);
	snprintf(name, sizeof(name), "iptables_full_restore_ms_%s_svc", sz);
	fig(name, res->ipt_full, "ms", 0, "lower", "iptables-restore (Debian, nf_tables backend)");
	snprintf(name, sizeof(name), "iptables_one_endpoint_change_ms_%s_svc", sz);
	fig(name, res->ipt_change, "ms", 0, "lower",
	    "kube-proxy partial restore: KUBE-SERVICES and the changed service's chains");
	if (res->ipt_kmem >= 0) {
		snprintf(name, sizeof(name), "iptables_kernel_mem_mib_%s_svc", sz);
		fig(name, res->ipt_kmem, "MiB", 0, "lower",
		    "memory cgroup kmem delta of the restore");
	}
	snprintf(name, sizeof(name), "ratio_iptables_over_nft_full_sync_%s_svc", sz);
	fig(name, res->ipt_full / res->nft_full, "x", 0, "higher", "iptables-restore time / shoal");
	snprintf(name, sizeof(name), "ratio_iptables_over_nft_one_change_%s_svc", sz);
	fig(name, res->ipt_change / res->nft_change, "x", 0, "higher",
	    "iptables partial restore time / shoal upsert");
	free(ss.s);
	free(ss.eps);
	return 0;
}

int main(int argc, char **argv)
{
	bool quick = false;
	const char *data = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = true;
		else if (!strcmp(argv[i], "--data") && i + 1 < argc)
			data = argv[++i];
	}
	log_init("bench-nft", LOG_LVL_WARN);
	int sizes_full[] = { 1000, 10000 }, sizes_quick[] = { 300, 1000 };
	if (quick)
		ipt_limit_ms = 20000;
	int *sizes = quick ? sizes_quick : sizes_full;
	struct result res[2];
	printf("[");
	for (int i = 0; i < 2; i++) {
		if (run_size(sizes[i], quick ? 5 : 20, &res[i])) {
			printf("\n]\n");
			return 1;
		}
	}
	printf("\n]\n");
	if (data) {
		FILE *f = fopen(data, "w");
		if (!f)
			return 1;
		fprintf(f, "# services nft_full_ms ipt_full_ms nft_change_ms ipt_change_ms "
			   "nft_kmem_mib ipt_kmem_mib\n");
		for (int i = 0; i < 2; i++)
			fprintf(f, "%d %.3f %.3f %.3f %.3f %.3f %.3f\n", res[i].n, res[i].nft_full,
				res[i].ipt_full, res[i].nft_change, res[i].ipt_change,
				res[i].nft_kmem, res[i].ipt_kmem);
		fclose(f);
	}
	return 0;
}
