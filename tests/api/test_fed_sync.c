// SPDX-License-Identifier: Apache-2.0
/*
 * Federation against real daemons: three member shoalds and a federation shoald on unix
 * sockets. Placement by weights (10 over 1:2:2 is 2/4/4, 11 moves one replica, new weights
 * move as few as possible), by available capacity, min and max; deletion cleans the members;
 * an object the federation does not own is never touched; a bad Cluster gets a clear error or
 * condition; a member answering 409, 500 or nothing (through a fault-injecting proxy on
 * 127.0.0.1) is retried; the federation restarting resumes with no duplicate member objects.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "fed_helpers.h"

static int setup(void **state)
{
	(void)state;
	/* a, b and c take 4, 8 and 12 pods of one core */
	static const char *const cpu[NMEM] = { "4", "8", "12" };
	return fed_start_all(cpu);
}

static int teardown(void **state)
{
	(void)state;
	return fed_stop_all();
}

static json_t *get_fd(const char *name)
{
	return req(-1, "GET", fmt(FD_PATH "/%s", name), NULL, 200);
}

/* The size of status.placement (the status is written after the members). */
static size_t placement_size(const char *name)
{
	json_t *fd = get_fd(name);
	size_t n = json_array_size(json_object_get(json_object_get(fd, "status"), "placement"));
	json_decref(fd);
	return n;
}

static long long unplaced(const char *name)
{
	json_t *fd = get_fd(name);
	long long n = jint(fd, "status.unplacedReplicas");
	json_decref(fd);
	return n;
}

static void test_fed_weights_place_scale_and_reweigh(void **state)
{
	(void)state;
	req0(-1, "POST", FD_PATH, fd_json("w", 10, weights3(1, 2, 2), "", ""), 201);
	WAIT_FOR(15000, replicas_are("w", 2, 4, 4), "10 by 1:2:2: want 2/4/4, have %lld/%lld/%lld",
		 member_replicas(0, "w"), member_replicas(1, "w"), member_replicas(2, "w"));
	json_t *d = req(1, "GET", DEP_PATH "/w", NULL, 200);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(json_object_get(d, "metadata"), "labels"),
				    "federation.shoal.io/managed-by")),
			    "fedtest");
	json_decref(d);
	WAIT_FOR(15000, placement_size("w") == 3, "status.placement: %zu clusters",
		 placement_size("w"));
	json_t *fd = get_fd("w");
	json_t *pl = json_object_get(json_object_get(fd, "status"), "placement");
	assert_int_equal(json_array_size(pl), 3);
	assert_string_equal(jstr(json_array_get(pl, 0), "cluster"), "a");
	assert_int_equal(jint(json_array_get(pl, 0), "replicas"), 2);
	json_decref(fd);

	long long before[NMEM], after[NMEM], moved = 0;
	for (int i = 0; i < NMEM; i++)
		before[i] = member_replicas(i, "w");
	req0(-1, "PATCH", fmt(FD_PATH "/%s", "w"), "{\"spec\":{\"replicas\":11}}", 200);
	WAIT_FOR(15000,
		 member_replicas(0, "w") + member_replicas(1, "w") + member_replicas(2, "w") == 11,
		 "scaled to 11, members hold %lld",
		 member_replicas(0, "w") + member_replicas(1, "w") + member_replicas(2, "w"));
	for (int i = 0; i < NMEM; i++) {
		after[i] = member_replicas(i, "w");
		assert_true(after[i] >= before[i]);
		moved += after[i] - before[i];
	}
	assert_int_equal(moved, 1);

	/* 1:2:2 -> 1:2:3 with 11: Webster gives 2/4/5 from 2/5/4 or 2/4/5 */
	req0(-1, "PATCH", fmt(FD_PATH "/%s", "w"),
	     fmt("{\"spec\":{\"placement\":{\"replicaScheduling\":{\"weights\":%s}}}}",
		 weights3(1, 2, 3)),
	     200);
	WAIT_FOR(15000, replicas_are("w", 2, 4, 5), "11 by 1:2:3: want 2/4/5, have %lld/%lld/%lld",
		 member_replicas(0, "w"), member_replicas(1, "w"), member_replicas(2, "w"));
	moved = 0;
	for (int i = 0; i < NMEM; i++)
		moved += llabs(member_replicas(i, "w") - after[i]);
	assert_true(moved <= 2); /* one replica moved: -1 here, +1 there */
}

static void test_fed_divided_by_capacity(void **state)
{
	(void)state;
	/* pods of one core into 4, 8 and 12 free cores: 10 is 2/3/5 */
	req0(-1, "POST", FD_PATH,
	     fd_json("cap", 10, NULL, ",\"replicaScheduling\":{\"divideBy\":\"AvailableCapacity\"}",
		     ""),
	     201);
	WAIT_FOR(15000, replicas_are("cap", 2, 3, 5),
		 "by capacity: want 2/3/5, have %lld/%lld/%lld", member_replicas(0, "cap"),
		 member_replicas(1, "cap"), member_replicas(2, "cap"));
	/* one more goes where the claim (free room plus what it runs) is highest; nothing moves */
	long long before[NMEM], moved = 0;
	for (int i = 0; i < NMEM; i++)
		before[i] = member_replicas(i, "cap");
	req0(-1, "PATCH", FD_PATH "/cap", "{\"spec\":{\"replicas\":11}}", 200);
	WAIT_FOR(15000,
		 member_replicas(0, "cap") + member_replicas(1, "cap") +
				 member_replicas(2, "cap") ==
			 11,
		 "scaled to 11");
	for (int i = 0; i < NMEM; i++) {
		assert_true(member_replicas(i, "cap") >= before[i]);
		moved += member_replicas(i, "cap") - before[i];
	}
	assert_int_equal(moved, 1);
	req0(-1, "DELETE", FD_PATH "/cap", NULL, 200);
}

static void test_fed_min_and_max(void **state)
{
	(void)state;
	req0(-1, "POST", FD_PATH,
	     fd_json("mm", 9, NULL,
		     ",\"clusterReplicas\":[{\"cluster\":\"a\",\"minReplicas\":4},{\"cluster\":"
		     "\"b\","
		     "\"maxReplicas\":1}]",
		     ""),
	     201);
	WAIT_FOR(15000,
		 member_replicas(0, "mm") >= 4 && member_replicas(1, "mm") == 1 &&
			 member_replicas(0, "mm") + member_replicas(2, "mm") == 8,
		 "min 4 on a, max 1 on b: have %lld/%lld/%lld", member_replicas(0, "mm"),
		 member_replicas(1, "mm"), member_replicas(2, "mm"));
	/* an override pins b's count and sets its env */
	req0(-1, "PATCH", FD_PATH "/mm",
	     "{\"spec\":{\"overrides\":[{\"cluster\":\"b\",\"replicas\":3,\"env\":[{\"name\":"
	     "\"ZONE\",\"value\":\"b\"}],\"labels\":{\"tier\":\"edge\"}}]}}",
	     200);
	WAIT_FOR(15000, member_replicas(1, "mm") == 3, "override: b has %lld",
		 member_replicas(1, "mm"));
	json_t *d = req(1, "GET", DEP_PATH "/mm", NULL, 200);
	json_t *tspec =
		json_object_get(json_object_get(json_object_get(d, "spec"), "template"), "spec");
	json_t *c0 = json_array_get(json_object_get(tspec, "containers"), 0);
	assert_string_equal(jstr(json_array_get(json_object_get(c0, "env"), 0), "value"), "b");
	assert_string_equal(jstr(json_object_get(json_object_get(d, "metadata"), "labels"), "tier"),
			    "edge");
	json_decref(d);
	/* an image in an override is refused, naming the field */
	json_t *e = req(-1, "PATCH", FD_PATH "/mm",
			"{\"spec\":{\"overrides\":[{\"cluster\":\"b\",\"image\":\"evil\"}]}}", 422);
	assert_non_null(strstr(jstr(e, "message"), "spec.overrides[0].image"));
	json_decref(e);
	req0(-1, "DELETE", FD_PATH "/mm", NULL, 200);

	/* every cluster at its max: what is left is reported, not forced */
	req0(-1, "POST", FD_PATH,
	     fd_json("full", 5, NULL,
		     ",\"clusterReplicas\":[{\"cluster\":\"a\",\"maxReplicas\":1},{\"cluster\":"
		     "\"b\","
		     "\"maxReplicas\":1},{\"cluster\":\"c\",\"maxReplicas\":1}]",
		     ""),
	     201);
	WAIT_FOR(15000, replicas_are("full", 1, 1, 1), "max 1 each: have %lld/%lld/%lld",
		 member_replicas(0, "full"), member_replicas(1, "full"),
		 member_replicas(2, "full"));
	WAIT_FOR(15000, unplaced("full") == 2, "status.unplacedReplicas: %lld, want 2",
		 unplaced("full"));
	req0(-1, "DELETE", FD_PATH "/full", NULL, 200);
}

static void test_fed_delete_cleans_members(void **state)
{
	(void)state;
	req0(-1, "POST", FD_PATH, fd_json("gone", 3, NULL, "", ""), 201);
	WAIT_FOR(15000, replicas_are("gone", 1, 1, 1), "want 1/1/1, have %lld/%lld/%lld",
		 member_replicas(0, "gone"), member_replicas(1, "gone"),
		 member_replicas(2, "gone"));
	req0(-1, "DELETE", FD_PATH "/gone", NULL, 200);
	WAIT_FOR(15000, replicas_are("gone", -1, -1, -1),
		 "after the delete the members still hold %lld/%lld/%lld",
		 member_replicas(0, "gone"), member_replicas(1, "gone"),
		 member_replicas(2, "gone"));
}

static void test_fed_never_touches_what_it_does_not_own(void **state)
{
	(void)state;
	const char *mine =
		"{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":"
		"\"mine\",\"labels\":{\"team\":\"b\"}},\"spec\":{\"replicas\":7,\"selector\":{"
		"\"matchLabels\":{\"app\":\"mine\"}},\"template\":{\"metadata\":{\"labels\":{"
		"\"app\":\"mine\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"x\"}]}}}"
		"}";
	json_t *d = req(1, "POST", DEP_PATH, mine, 201);
	const char *uid = jstr(json_object_get(d, "metadata"), "uid");
	char uid_copy[64];
	snprintf(uid_copy, sizeof(uid_copy), "%s", uid ? uid : "");
	json_decref(d);
	req0(-1, "POST", FD_PATH, fd_json("mine", 3, NULL, "", ""), 201);
	WAIT_FOR(15000, member_replicas(0, "mine") == 1 && member_replicas(2, "mine") == 1,
		 "a and c: want 1 each, have %lld/%lld", member_replicas(0, "mine"),
		 member_replicas(2, "mine"));
	bool not_owned = false;
	for (long long until = mono_ms() + 15000; !not_owned && mono_ms() < until;) {
		json_t *fd = get_fd("mine");
		size_t i;
		json_t *c;
		json_array_foreach (json_object_get(json_object_get(fd, "status"), "conditions"), i,
				    c)
			if (!strcmp(jstr(c, "type"), "NotOwned") &&
			    !strcmp(jstr(c, "status"), "True"))
				not_owned = true;
		json_decref(fd);
		if (!not_owned)
			usleep(50000);
	}
	assert_true(not_owned);
	req0(-1, "DELETE", FD_PATH "/mine", NULL, 200);
	WAIT_FOR(15000, member_replicas(0, "mine") == -1 && member_replicas(2, "mine") == -1,
		 "a and c still hold it");
	sleep(1);
	d = req(1, "GET", DEP_PATH "/mine", NULL, 200);
	assert_int_equal(jint(d, "spec.replicas"), 7);
	assert_string_equal(jstr(json_object_get(d, "metadata"), "uid"), uid_copy);
	assert_null(json_object_get(json_object_get(json_object_get(d, "metadata"), "labels"),
				    "federation.shoal.io/managed-by"));
	json_decref(d);
	req0(1, "DELETE", DEP_PATH "/mine", NULL, 200);
}

static void test_fed_bad_cluster_spec(void **state)
{
	(void)state;
	json_t *e =
		req(-1, "POST", CL_PATH,
		    "{\"apiVersion\":\"federation.shoal.io/v1\",\"kind\":\"Cluster\",\"metadata\":"
		    "{\"name\":\"bad\"},\"spec\":{\"apiEndpoint\":\"ftp://x\"}}",
		    422);
	assert_non_null(strstr(jstr(e, "message"), "spec.apiEndpoint"));
	json_decref(e);
	e = req(-1, "POST", CL_PATH,
		"{\"apiVersion\":\"federation.shoal.io/v1\",\"kind\":\"Cluster\",\"metadata\":"
		"{\"name\":\"bad\"},\"spec\":{\"apiEndpoint\":\"http://127.0.0.1:1\",\"tokenFile\":"
		"\"sub/../relative\"}}",
		422);
	assert_non_null(strstr(jstr(e, "message"), "spec.tokenFile"));
	json_decref(e);
	req0(-1, "POST", CL_PATH,
	     "{\"apiVersion\":\"federation.shoal.io/v1\",\"kind\":\"Cluster\",\"metadata\":"
	     "{\"name\":\"notoken\"},\"spec\":{\"apiEndpoint\":\"unix:/nonexistent/api.sock\","
	     "\"tokenFile\":\"/nonexistent/tokens\"}}",
	     201);
	bool seen = false;
	for (long long until = mono_ms() + 10000; !seen && mono_ms() < until; usleep(50000)) {
		json_t *o = req(-1, "GET", CL_PATH "/notoken", NULL, 200);
		size_t i;
		json_t *c;
		json_array_foreach (json_object_get(json_object_get(o, "status"), "conditions"), i,
				    c)
			if (!strcmp(jstr(c, "type"), "Ready") &&
			    !strcmp(jstr(c, "status"), "False") &&
			    !strcmp(jstr(c, "reason") ?: "", "CredentialsUnreadable") &&
			    strstr(jstr(c, "message") ?: "", "spec.tokenFile"))
				seen = true;
		json_decref(o);
	}
	assert_true(seen);
	req0(-1, "DELETE", CL_PATH "/notoken", NULL, 200);

	/* a token file outside the credentials directory is refused, also through a symlink
	 * inside it or "..", and never read; a bare name is a file of the directory */
	char link[300], dotdot[300];
	snprintf(link, sizeof(link), "%s/escape.tokens", tokdir);
	snprintf(dotdot, sizeof(dotdot), "%s/../../etc/hostname", tokdir);
	assert_int_equal(symlink("/etc/hostname", link), 0);
	const char *outside[] = { "/etc/hostname", link, dotdot };
	for (size_t k = 0; k < 3; k++) {
		req0(-1, "POST", CL_PATH,
		     fmt("{\"apiVersion\":\"federation.shoal.io/v1\",\"kind\":\"Cluster\","
			 "\"metadata\":{\"name\":\"outside\"},\"spec\":{\"apiEndpoint\":\"unix:%s\","
			 "\"tokenFile\":\"%s\"}}",
			 mem[0].sock, outside[k]),
		     201);
		WAIT_FOR(10000,
			 cluster_cond_msg("outside", "Ready", "False", "InvalidSpec",
					  "outside the credentials directory"),
			 "tokenFile %s: no Ready=False InvalidSpec naming the directory",
			 outside[k]);
		assert_true(cluster_cond_msg("outside", "Ready", "False", "InvalidSpec",
					     "spec.tokenFile"));
		req0(-1, "DELETE", CL_PATH "/outside", NULL, 200);
		WAIT_FOR(10000, !cluster_exists("outside"), "Cluster outside is not gone");
	}
	unlink(link);
	const char *base = strrchr(tokfile[0], '/') + 1;
	req0(-1, "POST", CL_PATH,
	     fmt("{\"apiVersion\":\"federation.shoal.io/v1\",\"kind\":\"Cluster\",\"metadata\":"
		 "{\"name\":\"byname\"},\"spec\":{\"apiEndpoint\":\"unix:%s\",\"tokenFile\":"
		 "\"%s\"}}",
		 mem[0].sock, base),
	     201);
	WAIT_FOR(10000, cluster_cond("byname", "Ready", "True"),
		 "a token file named by its name in the directory: not Ready");
	req0(-1, "DELETE", CL_PATH "/byname", NULL, 200);
	WAIT_FOR(10000, !cluster_exists("byname"), "Cluster byname is not gone");

	/* a token the member does not know: Unauthorized, and nothing is placed there */
	const char *bad = fmt("%s/bad.tokens", tokdir);
	FILE *f = fopen(bad, "w");
	assert_non_null(f);
	fprintf(f, "not-a-token\n");
	fclose(f);
	req0(-1, "POST", CL_PATH,
	     fmt("{\"apiVersion\":\"federation.shoal.io/v1\",\"kind\":\"Cluster\",\"metadata\":"
		 "{\"name\":\"badtoken\"},\"spec\":{\"apiEndpoint\":\"unix:%s\",\"tokenFile\":"
		 "\"%s\"}}",
		 mem[0].sock, bad),
	     201);
	seen = false;
	for (long long until = mono_ms() + 10000; !seen && mono_ms() < until; usleep(50000)) {
		json_t *o = req(-1, "GET", CL_PATH "/badtoken", NULL, 200);
		size_t i;
		json_t *c;
		json_array_foreach (json_object_get(json_object_get(o, "status"), "conditions"), i,
				    c)
			if (!strcmp(jstr(c, "type"), "Ready") &&
			    !strcmp(jstr(c, "status"), "False") &&
			    !strcmp(jstr(c, "reason") ?: "", "Unauthorized"))
				seen = true;
		json_decref(o);
	}
	assert_true(seen);
	req0(-1, "DELETE", CL_PATH "/badtoken", NULL, 200);
	unlink(bad);
}

/* ---- a member that answers 409, 500 or nothing ------------------------------------------- */

static struct shoald faulty;
static int proxy_fd = -1, proxy_port;
static pthread_t proxy_thread;
static atomic_bool proxy_stop;
static atomic_int fault_409, fault_500, fault_hang, injected, active_conns;

static void write_all(int fd, const char *b, size_t n)
{
	while (n) {
		ssize_t w = write(fd, b, n);
		if (w <= 0)
			return;
		b += w;
		n -= (size_t)w;
	}
}

static void answer(int fd, int code, const char *reason)
{
	const char *body = fmt("{\"kind\":\"Status\",\"status\":\"Failure\",\"code\":%d,"
			       "\"reason\":\"%s\",\"message\":\"injected\"}",
			       code, reason);
	const char *h = fmt("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: "
			    "%zu\r\nConnection: close\r\n\r\n%s",
			    code, reason, strlen(body), body);
	write_all(fd, h, strlen(h));
}

/* One client connection: one request, then the upstream's answer (Connection: close). */
static void *proxy_conn(void *arg)
{
	int cfd = (int)(intptr_t)arg, ufd = -1;
	char buf[65536];
	size_t n = 0;
	char *hdr_end = NULL;
	while (!hdr_end && n < sizeof(buf) - 1) {
		ssize_t r = read(cfd, buf + n, sizeof(buf) - 1 - n);
		if (r <= 0)
			goto out;
		n += (size_t)r;
		buf[n] = 0;
		hdr_end = strstr(buf, "\r\n\r\n");
	}
	if (!hdr_end)
		goto out;
	bool write_req = (!strncmp(buf, "POST ", 5) || !strncmp(buf, "PUT ", 4) ||
			  !strncmp(buf, "DELETE ", 7)) &&
			 strstr(buf, "/deployments") && strstr(buf, "/deployments") < hdr_end;
	if (write_req && atomic_load(&fault_409) > 0) {
		atomic_fetch_sub(&fault_409, 1);
		atomic_fetch_add(&injected, 1);
		answer(cfd, 409, "Conflict");
		goto out;
	}
	if (write_req && atomic_load(&fault_500) > 0) {
		atomic_fetch_sub(&fault_500, 1);
		atomic_fetch_add(&injected, 1);
		answer(cfd, 500, "InternalError");
		goto out;
	}
	if (write_req && atomic_load(&fault_hang) > 0) {
		atomic_fetch_sub(&fault_hang, 1);
		atomic_fetch_add(&injected, 1);
		for (int i = 0; i < 25 && !atomic_load(&proxy_stop); i++)
			usleep(100000); /* past the member time-out, then nothing */
		goto out;
	}
	ufd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(faulty.sock) >= sizeof(sa.sun_path))
		goto out;
	memcpy(sa.sun_path, faulty.sock, strlen(faulty.sock) + 1);
	if (ufd < 0 || connect(ufd, (struct sockaddr *)&sa, sizeof(sa)))
		goto out;
	/* one request per connection, so that every request passes here */
	char *eol = strstr(buf, "\r\n");
	write_all(ufd, buf, (size_t)(eol + 2 - buf));
	write_all(ufd, "Connection: close\r\n", 19);
	write_all(ufd, eol + 2, n - (size_t)(eol + 2 - buf));
	struct pollfd p[2] = { { .fd = cfd, .events = POLLIN }, { .fd = ufd, .events = POLLIN } };
	while (!atomic_load(&proxy_stop)) {
		int r = poll(p, 2, 200);
		if (r < 0)
			break;
		if (r == 0)
			continue;
		int from = (p[1].revents & (POLLIN | POLLHUP)) ? 1 : 0;
		if (!(p[from].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		ssize_t got = read(p[from].fd, buf, sizeof(buf));
		if (got <= 0)
			break;
		write_all(p[!from].fd, buf, (size_t)got);
	}
out:
	if (ufd >= 0)
		close(ufd);
	close(cfd);
	atomic_fetch_sub(&active_conns, 1);
	return NULL;
}

static void *proxy_accept(void *arg)
{
	(void)arg;
	while (!atomic_load(&proxy_stop)) {
		struct pollfd p = { .fd = proxy_fd, .events = POLLIN };
		if (poll(&p, 1, 200) <= 0)
			continue;
		int c = accept4(proxy_fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		pthread_t t;
		atomic_fetch_add(&active_conns, 1);
		if (pthread_create(&t, NULL, proxy_conn, (void *)(intptr_t)c)) {
			atomic_fetch_sub(&active_conns, 1);
			close(c);
			continue;
		}
		pthread_detach(t);
	}
	return NULL;
}

static int proxy_start(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = 0,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	proxy_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (proxy_fd < 0 || bind(proxy_fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(proxy_fd, 64) || getsockname(proxy_fd, (struct sockaddr *)&sa, &len))
		return -1;
	proxy_port = ntohs(sa.sin_port);
	return pthread_create(&proxy_thread, NULL, proxy_accept, NULL) ? -1 : 0;
}

static void proxy_end(void)
{
	atomic_store(&proxy_stop, true);
	pthread_join(proxy_thread, NULL);
	for (int i = 0; i < 100 && atomic_load(&active_conns) > 0; i++)
		usleep(50000);
	close(proxy_fd);
}

static long long faulty_replicas(const char *name)
{
	long code;
	json_t *d = http_json(&faulty, "GET", fmt(DEP_PATH "/%s", name), NULL, &code);
	long long n = code == 200 ? jint(d, "spec.replicas") : -1;
	json_decref(d);
	return n;
}

static void test_fed_member_faults_are_retried(void **state)
{
	(void)state;
	const char *args[] = { "--disable-scheduler", "--log-level", "warn", NULL };
	assert_int_equal(shoald_start(&faulty, args), 0);
	assert_int_equal(proxy_start(), 0);
	atomic_store(&fault_409, 2);
	atomic_store(&fault_500, 2);
	atomic_store(&fault_hang, 1);
	req0(-1, "POST", CL_PATH,
	     fmt("{\"apiVersion\":\"federation.shoal.io/v1\",\"kind\":\"Cluster\",\"metadata\":"
		 "{\"name\":\"flaky\"},\"spec\":{\"apiEndpoint\":\"http://127.0.0.1:%d\"}}",
		 proxy_port),
	     201);
	WAIT_FOR(15000, cluster_cond("flaky", "Ready", "True"), "the proxied member is not Ready");
	const char *body = fd_json("flaky", 3, NULL, "", "");
	/* placed on the flaky member only */
	char *b = strdup(body);
	char *at = strstr(b, "[\"a\",\"b\",\"c\"]");
	assert_non_null(at);
	memcpy(at, "[\"flaky\"    ]", 13);
	req0(-1, "POST", FD_PATH, b, 201);
	free(b);
	WAIT_FOR(30000, faulty_replicas("flaky") == 3,
		 "through 409, 500 and a silent answer: the member holds %lld (injected %d)",
		 faulty_replicas("flaky"), atomic_load(&injected));
	assert_int_equal(atomic_load(&injected), 5);
	/* and a scale goes through a 500 too */
	atomic_store(&fault_500, 1);
	req0(-1, "PATCH", FD_PATH "/flaky", "{\"spec\":{\"replicas\":4}}", 200);
	WAIT_FOR(20000, faulty_replicas("flaky") == 4, "scale through a 500: %lld",
		 faulty_replicas("flaky"));
	assert_int_equal(atomic_load(&injected), 6);
	req0(-1, "DELETE", FD_PATH "/flaky", NULL, 200);
	WAIT_FOR(15000, faulty_replicas("flaky") == -1, "the member still holds it");
	req0(-1, "DELETE", CL_PATH "/flaky", NULL, 200);
	proxy_end();
	assert_int_equal(shoald_stop(&faulty), 0);
	shoald_destroy(&faulty);
}

/* What shoalctl prints of it (stdout of `shoalctl --server unix:FED ARGS`), "" on failure. */
static const char *ctl(const char *args)
{
	static char out[16384];
	size_t n = 0;
	out[0] = 0;
	FILE *p = popen(fmt("build/bin/shoalctl --server unix:%s %s 2>&1", fedd.sock, args), "r");
	if (!p)
		return out;
	while (n < sizeof(out) - 1) {
		size_t r = fread(out + n, 1, sizeof(out) - 1 - n, p);
		if (!r)
			break;
		n += r;
	}
	out[n] = 0;
	pclose(p);
	return out;
}

static void test_fed_shoalctl_shows_clusters_and_placement(void **state)
{
	(void)state;
	req0(-1, "POST", FD_PATH, fd_json("ctl", 5, weights3(1, 2, 2), "", ""), 201);
	WAIT_FOR(15000, replicas_are("ctl", 1, 2, 2), "want 1/2/2, have %lld/%lld/%lld",
		 member_replicas(0, "ctl"), member_replicas(1, "ctl"), member_replicas(2, "ctl"));
	WAIT_FOR(15000, strstr(ctl("get federateddeployments ctl"), "a=") != NULL,
		 "get federateddeployments: %s", ctl("get federateddeployments ctl"));
	const char *got = ctl("get fdeploy ctl");
	assert_non_null(strstr(got, "CLUSTERS"));
	assert_non_null(strstr(got, "b=")); /* ready/placed per cluster, e.g. b=0/2 */
	assert_non_null(strstr(got, "/2"));
	got = ctl("get clusters -o wide");
	assert_non_null(strstr(got, "READY"));
	assert_non_null(strstr(got, "ESTIMATE"));
	assert_non_null(strstr(got, "r1")); /* b's region label */
	got = ctl("describe fdeploy ctl");
	assert_non_null(strstr(got, "Clusters:"));
	assert_non_null(strstr(got, "Placed"));
	assert_non_null(strstr(got, "Synced"));
	req0(-1, "DELETE", FD_PATH "/ctl", NULL, 200);
}

static void test_fed_restart_resumes_without_duplicates(void **state)
{
	(void)state;
	req0(-1, "POST", FD_PATH, fd_json("rs", 6, NULL, "", ""), 201);
	WAIT_FOR(15000, replicas_are("rs", 2, 2, 2), "want 2/2/2, have %lld/%lld/%lld",
		 member_replicas(0, "rs"), member_replicas(1, "rs"), member_replicas(2, "rs"));
	char uids[NMEM][64];
	for (int i = 0; i < NMEM; i++) {
		json_t *d = req(i, "GET", DEP_PATH "/rs", NULL, 200);
		snprintf(uids[i], sizeof(uids[i]), "%s", jstr(d, "metadata.uid"));
		json_decref(d);
	}
	assert_int_equal(shoald_stop(&fedd), 0);
	assert_int_equal(shoald_restart(&fedd), 0);
	req0(-1, "PATCH", FD_PATH "/rs", "{\"spec\":{\"replicas\":9}}", 200);
	WAIT_FOR(20000, replicas_are("rs", 3, 3, 3),
		 "after the restart: want 3/3/3, have %lld/%lld/%lld", member_replicas(0, "rs"),
		 member_replicas(1, "rs"), member_replicas(2, "rs"));
	for (int i = 0; i < NMEM; i++) {
		json_t *d = req(i, "GET", DEP_PATH "/rs", NULL, 200);
		assert_string_equal(jstr(d, "metadata.uid"), uids[i]);
		json_decref(d);
		/* one member object per FederatedDeployment and cluster */
		json_t *l = req(
			i, "GET",
			"/apis/apps/v1/deployments?labelSelector=federation.shoal.io%2Fmanaged-by"
			"%3Dfedtest,app%3Drs",
			NULL, 200);
		assert_int_equal(json_array_size(json_object_get(l, "items")), 1);
		json_decref(l);
	}
	req0(-1, "DELETE", FD_PATH "/rs", NULL, 200);
}

SHOAL_TEST_MAIN_SETUP(setup, teardown, cmocka_unit_test(test_fed_weights_place_scale_and_reweigh),
		      cmocka_unit_test(test_fed_divided_by_capacity),
		      cmocka_unit_test(test_fed_min_and_max),
		      cmocka_unit_test(test_fed_delete_cleans_members),
		      cmocka_unit_test(test_fed_never_touches_what_it_does_not_own),
		      cmocka_unit_test(test_fed_bad_cluster_spec),
		      cmocka_unit_test(test_fed_member_faults_are_retried),
		      cmocka_unit_test(test_fed_shoalctl_shows_clusters_and_placement),
		      cmocka_unit_test(test_fed_restart_resumes_without_duplicates))
