// SPDX-License-Identifier: Apache-2.0
/*
 * The pod runtime against the kernel: pods in network namespaces answering TCP from the node,
 * HOSTNAME and env fieldRefs, cgroup limits, restarts with back-off and CrashLoopBackOff,
 * liveness/readiness/startup probes (exec, tcpSocket, httpGet), graceful termination,
 * re-adoption after the runtime is closed and opened again, kept addresses, a root filesystem,
 * usage, log rotation, and bad pods becoming statuses.
 *
 * The run has a node of its own: a network namespace (NL_NETNS_DIR/<prefix>-node) that the
 * test thread enters before rt_open, a cgroup under the cgroup2 root, a state directory in
 * /tmp; all of it, every pod namespace and every process, is removed at the end, also when a
 * test fails. Run as root.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nl.h"
#include "nslab.h"
#include "runtime.h"
#include "shoal_test.h"

#define POD_CIDR "10.100.7.0/24"
#define NODE_IP	 "10.99.0.7"

static char node[32], node_ns[48], cgroot[512], state[256], shim[PATH_MAX];
static int orig_ns = -1;
static struct rt *rt;
static struct rt_config cfg;
static unsigned uid_seq;

/* ---- what the runtime reported ---- */

struct seen {
	char uid[64];
	json_t *st;
	int restarts_seen; /* highest containerStatuses[0].restartCount */
	uint64_t restart_ms[8];
	bool crashloop;
	bool done;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct seen seen[128];
static size_t n_seen;

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Under mu. */
static struct seen *seen_get(const char *uid)
{
	for (size_t i = 0; i < n_seen; i++)
		if (!strcmp(seen[i].uid, uid))
			return &seen[i];
	if (n_seen == sizeof(seen) / sizeof(seen[0]))
		return NULL;
	struct seen *s = &seen[n_seen++];
	memset(s, 0, sizeof(*s));
	snprintf(s->uid, sizeof(s->uid), "%s", uid);
	return s;
}

static void on_status(void *arg, const char *uid, const char *ns, const char *name, json_t *st)
{
	(void)arg;
	(void)ns;
	(void)name;
	pthread_mutex_lock(&mu);
	struct seen *s = seen_get(uid);
	if (s) {
		json_decref(s->st);
		s->st = json_deep_copy(st);
		size_t i;
		json_t *c;
		json_array_foreach (json_object_get(st, "containerStatuses"), i, c) {
			const char *r = json_string_value(json_object_get(
				json_object_get(json_object_get(c, "state"), "waiting"), "reason"));
			if (r && !strcmp(r, "CrashLoopBackOff"))
				s->crashloop = true;
		}
		int rc = (int)json_integer_value(
			json_object_get(json_array_get(json_object_get(st, "containerStatuses"), 0),
					"restartCount"));
		while (s->restarts_seen < rc) {
			s->restarts_seen++;
			if (s->restarts_seen < 8)
				s->restart_ms[s->restarts_seen] = now_ms();
		}
	}
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static void on_done(void *arg, const char *uid)
{
	(void)arg;
	pthread_mutex_lock(&mu);
	struct seen *s = seen_get(uid);
	if (s)
		s->done = true;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

/* ---- reading statuses: "a.b.0.c" paths; a name in an array picks the element whose
 * "type" or "name" is that name (conditions.Ready, containerStatuses.web) ---- */

static json_t *jpath(json_t *o, const char *path)
{
	char buf[256], *save = NULL;
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *t = strtok_r(buf, ".", &save); t && o; t = strtok_r(NULL, ".", &save)) {
		if (json_is_array(o)) {
			char *end;
			long i = strtol(t, &end, 10);
			if (!*end) {
				o = json_array_get(o, (size_t)i);
				continue;
			}
			size_t k;
			json_t *e, *found = NULL;
			json_array_foreach (o, k, e) {
				const char *ty = json_string_value(json_object_get(e, "type"));
				const char *nm = json_string_value(json_object_get(e, "name"));
				if ((ty && !strcmp(ty, t)) || (nm && !strcmp(nm, t)))
					found = e;
			}
			o = found;
		} else {
			o = json_object_get(o, t);
		}
	}
	return o;
}

/* "path=value", "path>=N", "path~substring", "path?" (present), "path!" (absent). */
static bool check1(json_t *st, const char *spec)
{
	char path[256];
	const char *op = strpbrk(spec, "=>~?!");
	if (!op)
		return false;
	snprintf(path, sizeof(path), "%.*s", (int)(op - spec), spec);
	json_t *v = jpath(st, path);
	if (*op == '?')
		return v != NULL;
	if (*op == '!')
		return v == NULL;
	if (!v)
		return false;
	char text[512];
	if (json_is_string(v))
		snprintf(text, sizeof(text), "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(text, sizeof(text), "%lld", (long long)json_integer_value(v));
	else if (json_is_boolean(v))
		snprintf(text, sizeof(text), "%s", json_is_true(v) ? "true" : "false");
	else
		return false;
	if (op[0] == '>' && op[1] == '=')
		return json_is_integer(v) && json_integer_value(v) >= atoll(op + 2);
	if (*op == '~')
		return strstr(text, op + 1) != NULL;
	return !strcmp(text, op + 1);
}

/* Waits until every spec holds for pod uid's reported status; returns a copy of it. */
static json_t *wait_for(const char *uid, int ms, ...)
{
	const char *specs[16];
	size_t n = 0;
	va_list ap;
	va_start(ap, ms);
	for (const char *s; n < 16 && (s = va_arg(ap, const char *));)
		specs[n++] = s;
	va_end(ap);

	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&mu);
	for (;;) {
		struct seen *s = seen_get(uid);
		bool ok = s && s->st;
		for (size_t i = 0; ok && i < n; i++)
			ok = check1(s->st, specs[i]);
		if (ok) {
			json_t *r = json_deep_copy(s->st);
			pthread_mutex_unlock(&mu);
			return r;
		}
		if (pthread_cond_timedwait(&cv, &mu, &until) == ETIMEDOUT) {
			char *dump = s && s->st ? json_dumps(s->st, JSON_INDENT(1)) : NULL;
			fprintf(stderr, "pod %s: waited %d ms for:", uid, ms);
			for (size_t i = 0; i < n; i++)
				fprintf(stderr, " %s", specs[i]);
			fprintf(stderr, "\nlast status: %s\n", dump ? dump : "(none)");
			free(dump);
			pthread_mutex_unlock(&mu);
			return NULL;
		}
	}
}

#define WAIT(uid, ms, ...)                                                                         \
	({                                                                                         \
		json_t *st_ = wait_for(uid, ms, __VA_ARGS__, NULL);                                \
		if (!st_)                                                                          \
			fail_msg("pod %s did not reach the expected status", uid);                 \
		st_;                                                                               \
	})

static bool wait_done(const char *uid, int ms)
{
	uint64_t until = now_ms() + (uint64_t)ms;
	pthread_mutex_lock(&mu);
	for (;;) {
		struct seen *s = seen_get(uid);
		if (s && s->done) {
			pthread_mutex_unlock(&mu);
			return true;
		}
		uint64_t now = now_ms();
		if (now >= until) {
			pthread_mutex_unlock(&mu);
			return false;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&cv, &mu, &ts);
	}
}

/* ---- pods ---- */

static void new_uid(char *out, size_t len)
{
	uid_seq++;
	snprintf(out, len, "%08x-%04x-4000-8000-%012u", (unsigned)getpid(), uid_seq, uid_seq);
}

/* A pod from JSON written with ' for " and ` for ' (shell quotes). */
static json_t *mkpod(const char *fmt, ...)
{
	char text[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	for (char *p = text; *p; p++)
		*p = *p == '\'' ? '"' : *p == '`' ? '\'' : *p;
	json_error_t err;
	json_t *o = json_loads(text, 0, &err);
	if (!o)
		fail_msg("test pod JSON: %s at %d: %s", err.text, err.position, text);
	return o;
}

static void sync_pod(json_t *pod)
{
	int err = rt_pod_sync(rt, pod);
	json_decref(pod);
	assert_int_equal(err, 0);
}

static void kill_pod(const char *uid, long grace)
{
	assert_int_equal(rt_pod_kill(rt, uid, grace, on_done, NULL), 0);
	if (!wait_done(uid, 15000))
		fail_msg("pod %s was not torn down within 15 s", uid);
}

static char *read_log(const char *name, const char *container, bool previous)
{
	char *path = rt_log_path(rt, "default", name, container, previous);
	if (!path)
		fail_msg("no log for %s/%s: %s", name, container, strerror(errno));
	FILE *f = fopen(path, "r");
	free(path);
	if (!f)
		fail_msg("open log: %s", strerror(errno));
	static char buf[1 << 16];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* The log of a container's current instance once it holds a whole line (up to 10 s: a busy
 * host may run the container's first command well after it started). */
static char *read_log_line(const char *name, const char *container)
{
	char *log = read_log(name, container, false);
	for (int i = 0; i < 200 && !strchr(log, '\n'); i++) {
		usleep(50 * 1000);
		log = read_log(name, container, false);
	}
	return log;
}

/* Connects from the node's namespace (this thread's) and reads what the server says. */
static int tcp_get(const char *ip, int port, char *buf, size_t len)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = 3 };
	inet_pton(AF_INET, ip, &sa.sin_addr);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	const char *req = "GET / HTTP/1.0\r\n\r\n";
	if (write(fd, req, strlen(req)) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	size_t got = 0;
	ssize_t n;
	while (got < len - 1 && (n = read(fd, buf + got, len - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	close(fd);
	return 0;
}

/* ---- the node ---- */

static int enter_node(void)
{
	int fd = nl_netns_open(node_ns);
	if (fd < 0)
		return fd;
	int err = setns(fd, CLONE_NEWNET) < 0 ? -errno : 0;
	close(fd);
	return err;
}

static int open_rt(void)
{
	memset(&cfg, 0, sizeof(cfg));
	cfg.node = node;
	cfg.state_dir = state;
	cfg.cgroup_root = cgroot;
	cfg.pod_cidr = POD_CIDR;
	cfg.host_ip = NODE_IP;
	cfg.status_changed = on_status;
	cfg.shim_path = shim;
	cfg.backoff_base_ms = 100;
	cfg.backoff_max_ms = 2000;
	cfg.log_max_bytes = 64 * 1024;
	rt = rt_open(&cfg);
	return rt ? 0 : -errno;
}

static int group_setup(void **state_)
{
	(void)state_;
	char exe[PATH_MAX - 64];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return -1;
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	/* build/test/agent/ -> build/bin/shoal-shim */
	snprintf(shim, sizeof(shim), "%s/../../bin/shoal-shim", exe);
	if (access(shim, X_OK) < 0) {
		fprintf(stderr, "%s: %s (run make)\n", shim, strerror(errno));
		return -1;
	}
	snprintf(node, sizeof(node), "rtt%d", (int)getpid());
	snprintf(node_ns, sizeof(node_ns), "%s-node", node);
	if (!*nslab_cgroup2_root()) {
		fprintf(stderr, "no cgroup2 mount\n");
		return -1;
	}
	snprintf(cgroot, sizeof(cgroot), "%s/shoal-%s", nslab_cgroup2_root(), node);
	snprintf(state, sizeof(state), "/tmp/shoal-%s", node);
	orig_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (mkdir(cgroot, 0755) < 0 || mkdir(state, 0755) < 0) {
		fprintf(stderr, "mkdir: %s\n", strerror(errno));
		return -1;
	}
	int err = nl_netns_create(node_ns);
	if (err || (err = enter_node())) {
		fprintf(stderr, "node namespace %s: %s\n", node_ns, strerror(-err));
		return -1;
	}
	/* lo, and an address for the node (the source of its connections to pods; a lab node
	 * has it on its uplink). */
	if (nslab_sh("ip link set lo up && ip addr add %s/32 dev lo", NODE_IP) != 0)
		return -1;
	if ((err = open_rt())) {
		fprintf(stderr, "rt_open: %s\n", strerror(-err));
		return -1;
	}
	return 0;
}

/* rmdir of a cgroup tree, deepest first, after killing what is in it. */
static void cg_rmtree(const char *dir)
{
	char path[PATH_MAX + 300];
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		cg_rmtree(path);
	}
	closedir(d);
	snprintf(path, sizeof(path), "%s/cgroup.kill", dir);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "1", 1) < 0)
			fprintf(stderr, "kill %s: %s\n", dir, strerror(errno));
		close(fd);
	}
	for (int i = 0; i < 50 && rmdir(dir) < 0 && errno == EBUSY; i++)
		usleep(20000);
}

/* Kills every pod the runtime holds and waits for each to be gone. */
static void kill_all_pods(void)
{
	char **uids = NULL;
	size_t n = 0;
	int err = rt_pods(rt, &uids, &n);
	if (err) {
		fprintf(stderr, "list the runtime's pods: %s\n", strerror(-err));
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if ((err = rt_pod_kill(rt, uids[i], 0, on_done, NULL)))
			fprintf(stderr, "kill pod %s: %s\n", uids[i], strerror(-err));
		else if (!wait_done(uids[i], 15000))
			fprintf(stderr, "pod %s was not torn down within 15 s\n", uids[i]);
		free(uids[i]);
	}
	free(uids);
}

/* After each case: what a failed case left (its pods; a closed runtime) is removed, so that
 * the next case starts on an empty node, as the cases expect (they count the node's pods and
 * veths). */
static int case_teardown(void **state_)
{
	(void)state_;
	int err;
	if (!rt && (err = open_rt())) {
		fprintf(stderr, "rt_open: %s\n", strerror(-err));
		return -1;
	}
	kill_all_pods();
	return 0;
}

static int group_teardown(void **state_)
{
	(void)state_;
	if (rt) {
		kill_all_pods();
		rt_close(rt);
		rt = NULL;
	}
	cg_rmtree(cgroot);
	/* v1 mirrors of the node's cgroup (hybrid hosts), if anything was left in them */
	char line[512];
	FILE *f = fopen("/proc/self/cgroup", "r");
	while (f && fgets(line, sizeof(line), f)) {
		char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
		if (!b)
			continue;
		*b = '\0';
		b[1 + strcspn(b + 1, "\n")] = '\0';
		char dir[PATH_MAX];
		if (!strcmp(a + 1, "cpu") || !strcmp(a + 1, "memory")) {
			snprintf(dir, sizeof(dir), "/sys/fs/cgroup/%s%s/shoal-%s", a + 1,
				 strcmp(b + 1, "/") ? b + 1 : "", node);
			cg_rmtree(dir);
		}
	}
	if (f)
		fclose(f);
	/* pod namespaces left by a failed test */
	DIR *d = opendir(NL_NETNS_DIR);
	struct dirent *de;
	size_t nl = strlen(node);
	while (d && (de = readdir(d)))
		if (!strncmp(de->d_name, node, nl) && de->d_name[nl] == '-' &&
		    strcmp(de->d_name, node_ns))
			nl_netns_delete(de->d_name);
	if (d)
		closedir(d);
	if (orig_ns >= 0 && setns(orig_ns, CLONE_NEWNET) < 0)
		fprintf(stderr, "leave the node namespace: %s\n", strerror(errno));
	nl_netns_delete(node_ns);
	int err = nl_netns_dir_release();
	if (err && err != -ENOTEMPTY)
		fprintf(stderr, "release %s: %s\n", NL_NETNS_DIR, strerror(-err));
	nslab_sh("rm -rf %s", state);
	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < n_seen; i++)
		json_decref(seen[i].st);
	n_seen = 0;
	pthread_mutex_unlock(&mu);
	return 0;
}

/* ---- tests ---- */

/* The shell that answers one HTTP request for socat's SYSTEM address (kept in the container's
 * environment, so that socat's address syntax never sees it): it reads the request up to its
 * empty line before it answers. A responder that answers without reading races with the
 * client: when the request arrives after the responder exited, socat's write of it to the
 * responder fails (EPIPE) and socat drops the connection, the answer with it. */
#define RESPOND(status, body)                                                                      \
	"while read -r l; do [ ${#l} -le 1 ] && break; done; echo HTTP/1.0 " status                \
	"; echo; echo " body

/* A web server pod: an address from the CIDR, TCP from the node, $HOSTNAME, and probes of
 * every kind (startup exec in the container's UTS namespace, readiness httpGet, liveness
 * tcpSocket on a named port). */
static void test_agent_runtime_web_pod_answers(void **s)
{
	(void)s;
	char uid[64], buf[512];
	new_uid(uid, sizeof(uid));
	sync_pod(mkpod(
		"{'metadata':{'name':'web-1','namespace':'default','uid':'%s'},"
		"'spec':{'nodeName':'%s','containers':[{'name':'web','image':'debian:bookworm',"
		"'command':['/bin/sh','-c'],"
		"'args':['exec socat TCP-LISTEN:8080,fork,reuseaddr `SYSTEM:eval $RESPOND`'],"
		"'env':[{'name':'RESPOND','value':'%s'}],"
		"'ports':[{'name':'http','containerPort':8080}],"
		"'startupProbe':{'exec':{'command':['/bin/sh','-c','test $(hostname) = "
		"web-1']},'periodSeconds':1},"
		"'readinessProbe':{'httpGet':{'path':'/','port':8080},'periodSeconds':1},"
		"'livenessProbe':{'tcpSocket':{'port':'http'},'periodSeconds':1,'failureThreshold':"
		"2},"
		"'resources':{'requests':{'cpu':'50m','memory':'16Mi'},'limits':{'cpu':'200m','"
		"memory':'64Mi'}}}]}}",
		uid, node, RESPOND("200 OK", "$HOSTNAME")));
	json_t *st =
		WAIT(uid, 15000, "phase=Running", "conditions.Ready.status=True",
		     "conditions.ContainersReady.status=True", "containerStatuses.web.ready=true",
		     "containerStatuses.web.started=true", "containerStatuses.web.state.running?");
	const char *ip = json_string_value(json_object_get(st, "podIP"));
	assert_non_null(ip);
	assert_true(!strncmp(ip, "10.100.7.", 9));
	assert_string_not_equal(ip, "10.100.7.0");
	assert_string_not_equal(ip, "10.100.7.1");
	assert_string_equal(json_string_value(json_object_get(st, "hostIP")), NODE_IP);
	assert_string_equal(json_string_value(json_object_get(st, "qosClass")), "Burstable");
	assert_int_equal(json_integer_value(jpath(st, "containerStatuses.web.restartCount")), 0);
	char **uids = NULL;
	size_t n = 0;
	assert_int_equal(rt_pods(rt, &uids, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(uids[0], uid);
	free(uids[0]);
	free(uids);
	int err = tcp_get(ip, 8080, buf, sizeof(buf));
	if (err)
		fail_msg("connect to %s:8080 from the node: %s", ip, strerror(-err));
	if (!strstr(buf, "200 OK") || !strstr(buf, "web-1"))
		fail_msg("the pod answered \"%s\", expected a 200 naming web-1", buf);
	json_decref(st);
	kill_pod(uid, 0);
	assert_null(rt_pod_status(rt, uid));
}

/* Environment (fieldRef, resourceFieldRef, $(VAR)), HOSTNAME and hostname, workingDir, the
 * limits in the container's cgroup, and a clean exit: Succeeded. */
static void test_agent_runtime_env_limits_exit(void **s)
{
	(void)s;
	char uid[64], path[PATH_MAX + 64];
	new_uid(uid, sizeof(uid));
	sync_pod(mkpod(
		"{'metadata':{'name':'env-1','namespace':'default','uid':'%s','labels':{'app':'env'"
		"}},"
		"'spec':{'restartPolicy':'Never','containers':[{'name':'c','workingDir':'/tmp',"
		"'command':['/bin/sh','-c','echo host=$(hostname) env=$HOSTNAME name=$MY_NAME "
		"ns=$MY_NS uid=$MY_UID ip=$MY_IP node=$MY_NODE hostip=$MY_HOST app=$MY_APP "
		"mem=$MEM greet=$GREET pwd=$(pwd); cat /proc/self/cgroup'],"
		"'env':[{'name':'MY_NAME','valueFrom':{'fieldRef':{'fieldPath':'metadata.name'}}},"
		"{'name':'MY_NS','valueFrom':{'fieldRef':{'fieldPath':'metadata.namespace'}}},"
		"{'name':'MY_UID','valueFrom':{'fieldRef':{'fieldPath':'metadata.uid'}}},"
		"{'name':'MY_IP','valueFrom':{'fieldRef':{'fieldPath':'status.podIP'}}},"
		"{'name':'MY_NODE','valueFrom':{'fieldRef':{'fieldPath':'spec.nodeName'}}},"
		"{'name':'MY_HOST','valueFrom':{'fieldRef':{'fieldPath':'status.hostIP'}}},"
		"{'name':'MY_APP','valueFrom':{'fieldRef':{'fieldPath':'metadata.labels[`app`]'}}},"
		"{'name':'MEM','valueFrom':{'resourceFieldRef':{'resource':'limits.memory','"
		"divisor':'1Mi'}}},"
		"{'name':'GREET','value':'hi-$(MY_NAME)'}],"
		"'resources':{'limits':{'cpu':'250m','memory':'48Mi'}}}]}}",
		uid));
	json_t *st = WAIT(uid, 10000, "phase=Succeeded",
			  "containerStatuses.c.state.terminated.exitCode=0",
			  "containerStatuses.c.state.terminated.reason=Completed",
			  "conditions.Ready.reason=PodCompleted");
	const char *ip = json_string_value(json_object_get(st, "podIP"));
	char want[512];
	snprintf(want, sizeof(want),
		 "host=env-1 env=env-1 name=env-1 ns=default uid=%s ip=%s node=%s hostip=%s "
		 "app=env mem=48 greet=hi-env-1 pwd=/tmp\n",
		 uid, ip, node, NODE_IP);
	char *log = read_log("env-1", "c", false);
	if (strncmp(log, want, strlen(want)))
		fail_msg("the container said:\n%s\nexpected first:\n%s", log, want);

	/* The container's own view of its cgroups: the limits are where it runs. */
	bool mem_ok = false, cpu_ok = false;
	for (char *line = strtok(log + strlen(want), "\n"); line; line = strtok(NULL, "\n")) {
		char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
		if (!b)
			continue;
		*b = '\0';
		char *val = NULL;
		if (!strcmp(a + 1, "memory")) {
			snprintf(path, sizeof(path),
				 "/sys/fs/cgroup/memory%s/memory.limit_in_bytes", b + 1);
			val = NULL;
			FILE *f = fopen(path, "r");
			char v[64] = "";
			if (f && fgets(v, sizeof(v), f))
				mem_ok = atoll(v) == 48 << 20;
			if (f)
				fclose(f);
		} else if (!strcmp(a + 1, "cpu")) {
			snprintf(path, sizeof(path), "/sys/fs/cgroup/cpu%s/cpu.cfs_quota_us",
				 b + 1);
			FILE *f = fopen(path, "r");
			char v[64] = "";
			if (f && fgets(v, sizeof(v), f))
				cpu_ok = atoll(v) == 25000;
			if (f)
				fclose(f);
		} else if (!*(a + 1)) {
			snprintf(path, sizeof(path), "%s%s/memory.max", nslab_cgroup2_root(),
				 b + 1);
			FILE *f = fopen(path, "r");
			char v[64] = "";
			if (f && fgets(v, sizeof(v), f))
				mem_ok |= atoll(v) == 48 << 20;
			if (f)
				fclose(f);
			snprintf(path, sizeof(path), "%s%s/cpu.max", nslab_cgroup2_root(), b + 1);
			f = fopen(path, "r");
			if (f && fgets(v, sizeof(v), f))
				cpu_ok |= !strncmp(v, "25000 100000", 12);
			if (f)
				fclose(f);
			if (!strstr(b + 1, node))
				fail_msg("the container runs in cgroup %s, not below the node's",
					 b + 1);
		}
		(void)val;
	}
	assert_true(mem_ok);
	assert_true(cpu_ok);
	json_decref(st);
	kill_pod(uid, 0);
}

/* Exit codes, restarts with a growing back-off, CrashLoopBackOff, the previous log; and the
 * policies that do not restart. */
static void test_agent_runtime_restart_backoff(void **s)
{
	(void)s;
	char uid[64], uid2[64], uid3[64];
	new_uid(uid, sizeof(uid));
	sync_pod(mkpod("{'metadata':{'name':'crash-1','uid':'%s'},'spec':{'containers':[{"
		       "'name':'c','command':['/bin/sh','-c','echo run; exit 3']}]}}",
		       uid));
	json_t *st = WAIT(uid, 15000, "containerStatuses.c.restartCount>=3",
			  "containerStatuses.c.lastState.terminated.exitCode=3",
			  "containerStatuses.c.lastState.terminated.reason=Error");
	json_decref(st);
	pthread_mutex_lock(&mu);
	struct seen sn = *seen_get(uid);
	pthread_mutex_unlock(&mu);
	assert_true(sn.crashloop);
	/* restart 1 at once, then back-offs of 100 and 200 ms before restarts 2 and 3 */
	uint64_t g12 = sn.restart_ms[2] - sn.restart_ms[1],
		 g23 = sn.restart_ms[3] - sn.restart_ms[2];
	if (g12 < 90 || g23 < 190)
		fail_msg("restarts came too early: restart 2 %llu ms after restart 1, restart 3 "
			 "%llu ms after restart 2",
			 (unsigned long long)g12, (unsigned long long)g23);
	st = WAIT(uid, 5000, "containerStatuses.c.state.waiting.reason=CrashLoopBackOff",
		  "containerStatuses.c.state.waiting.message~back-off", "phase=Running");
	json_decref(st);
	char *log = read_log("crash-1", "", true);
	assert_string_equal(log, "run\n");
	kill_pod(uid, 0);

	/* OnFailure and a clean exit: done; Never and a failure: Failed. */
	new_uid(uid2, sizeof(uid2));
	new_uid(uid3, sizeof(uid3));
	sync_pod(mkpod("{'metadata':{'name':'once-1','uid':'%s'},'spec':{'restartPolicy':"
		       "'OnFailure','containers':[{'name':'c','command':['/bin/true']}]}}",
		       uid2));
	sync_pod(mkpod("{'metadata':{'name':'fail-1','uid':'%s'},'spec':{'restartPolicy':"
		       "'Never','containers':[{'name':'c','command':['/bin/sh','-c','exit 5']}]}}",
		       uid3));
	st = WAIT(uid2, 10000, "phase=Succeeded", "containerStatuses.c.restartCount=0");
	json_decref(st);
	st = WAIT(uid3, 10000, "phase=Failed", "containerStatuses.c.state.terminated.exitCode=5",
		  "containerStatuses.c.restartCount=0");
	json_decref(st);
	kill_pod(uid2, 0);
	kill_pod(uid3, 0);
}

/* Init containers run one after the other to success before the containers start; a failing
 * one is retried, or with restartPolicy Never fails the pod. */
static void test_agent_runtime_init_containers(void **s)
{
	(void)s;
	char u1[64], u2[64], u3[64], file[PATH_MAX];
	new_uid(u1, sizeof(u1));
	new_uid(u2, sizeof(u2));
	new_uid(u3, sizeof(u3));
	snprintf(file, sizeof(file), "%s/init-ran", state);
	sync_pod(mkpod("{'metadata':{'name':'init-1','uid':'%s'},'spec':{'initContainers':["
		       "{'name':'prep','command':['/bin/sh','-c','sleep 0.2; echo prepared > %s']},"
		       "{'name':'check','command':['/bin/sh','-c','test -e %s']}],"
		       "'containers':[{'name':'main','command':['/bin/sh','-c',"
		       "'cat %s; exec sleep 30']}]}}",
		       u1, file, file, file));
	json_t *st = WAIT(u1, 5000, "phase=Pending", "conditions.Initialized.status=False",
			  "containerStatuses.main.state.waiting.reason=PodInitializing");
	json_decref(st);
	st = WAIT(u1, 8000, "phase=Running", "conditions.Initialized.status=True",
		  "initContainerStatuses.prep.state.terminated.reason=Completed",
		  "initContainerStatuses.check.state.terminated.exitCode=0",
		  "initContainerStatuses.check.ready=true",
		  "containerStatuses.main.state.running?");
	json_decref(st);
	assert_string_equal(read_log_line("init-1", ""), "prepared\n");

	sync_pod(mkpod("{'metadata':{'name':'init-2','uid':'%s'},'spec':{'restartPolicy':'Never',"
		       "'initContainers':[{'name':'fails','command':['/bin/sh','-c','exit 4']}],"
		       "'containers':[{'name':'main','command':['/bin/sleep','30']}]}}",
		       u2));
	sync_pod(mkpod("{'metadata':{'name':'init-3','uid':'%s'},'spec':{"
		       "'initContainers':[{'name':'fails','command':['/bin/sh','-c','exit 4']}],"
		       "'containers':[{'name':'main','command':['/bin/sleep','30']}]}}",
		       u3));
	st = WAIT(u2, 5000, "phase=Failed", "conditions.Initialized.status=False",
		  "initContainerStatuses.fails.state.terminated.exitCode=4",
		  "containerStatuses.main.state.waiting.reason=PodInitializing");
	json_decref(st);
	st = WAIT(u3, 5000, "phase=Pending", "initContainerStatuses.fails.restartCount>=2",
		  "initContainerStatuses.fails.lastState.terminated.exitCode=4",
		  "containerStatuses.main.state.waiting.reason=PodInitializing");
	json_decref(st);
	kill_pod(u1, 0);
	kill_pod(u2, 0);
	kill_pod(u3, 0);
}

/* securityContext: the pod's runAsUser for every container, a container's own user and
 * group, exec probes as that user too. */
static void test_agent_runtime_run_as_user(void **s)
{
	(void)s;
	char uid[64];
	new_uid(uid, sizeof(uid));
	sync_pod(mkpod(
		"{'metadata':{'name':'user-1','uid':'%s'},'spec':{'securityContext':"
		"{'runAsUser':1234,'runAsNonRoot':true},'containers':["
		"{'name':'a','command':['/bin/sh','-c','echo $(id -u):$(id -g):$(id -G); exec "
		"sleep 30']},"
		"{'name':'b','command':['/bin/sleep','30'],'securityContext':"
		"{'runAsUser':65534,'runAsGroup':65534},"
		"'readinessProbe':{'exec':{'command':['/bin/sh','-c','test $(id -u) = 65534']},"
		"'periodSeconds':1}}]}}",
		uid));
	json_t *st = WAIT(uid, 8000, "containerStatuses.a.state.running?",
			  "containerStatuses.b.ready=true");
	json_decref(st);
	assert_string_equal(read_log_line("user-1", "a"), "1234:0:0\n");
	kill_pod(uid, 0);
}

/* A failing liveness probe stops the container (SIGTERM) and it restarts. */
static void test_agent_runtime_liveness_restarts(void **s)
{
	(void)s;
	char uid[64];
	new_uid(uid, sizeof(uid));
	sync_pod(mkpod("{'metadata':{'name':'live-1','uid':'%s'},'spec':{"
		       "'terminationGracePeriodSeconds':2,'containers':[{'name':'c',"
		       "'command':['/bin/sleep','30'],'livenessProbe':{'exec':{'command':"
		       "['/bin/false']},'periodSeconds':1,'failureThreshold':1}}]}}",
		       uid));
	json_t *st = WAIT(uid, 10000, "containerStatuses.c.restartCount>=1",
			  "containerStatuses.c.lastState.terminated.exitCode=143",
			  "containerStatuses.c.lastState.terminated.message~liveness probe failed");
	json_decref(st);
	kill_pod(uid, 0);
}

/* Readiness follows an exec probe both ways; the container keeps running. */
static void test_agent_runtime_readiness_toggles(void **s)
{
	(void)s;
	char uid[64], flag[PATH_MAX];
	new_uid(uid, sizeof(uid));
	snprintf(flag, sizeof(flag), "%s/ready-flag", state);
	sync_pod(mkpod("{'metadata':{'name':'ready-1','uid':'%s'},'spec':{'containers':[{"
		       "'name':'c','command':['/bin/sleep','30'],'readinessProbe':{'exec':{"
		       "'command':['/bin/sh','-c','test -e %s']},'periodSeconds':1,"
		       "'failureThreshold':1}}]}}",
		       uid, flag));
	json_t *st =
		WAIT(uid, 5000, "phase=Running", "containerStatuses.c.state.running?",
		     "conditions.Ready.status=False", "conditions.Ready.reason=ContainersNotReady");
	json_decref(st);
	FILE *f = fopen(flag, "w");
	assert_non_null(f);
	fclose(f);
	st = WAIT(uid, 5000, "conditions.Ready.status=True", "containerStatuses.c.ready=true");
	json_decref(st);
	unlink(flag);
	st = WAIT(uid, 5000, "conditions.Ready.status=False", "containerStatuses.c.ready=false",
		  "containerStatuses.c.restartCount=0");
	json_decref(st);
	kill_pod(uid, 0);
}

/* Failing httpGet (a 500) and tcpSocket (nothing listening) probes keep their containers
 * unready while another container of the pod is ready. */
static void test_agent_runtime_probe_failures(void **s)
{
	(void)s;
	char uid[64];
	new_uid(uid, sizeof(uid));
	sync_pod(mkpod(
		"{'metadata':{'name':'probe-1','uid':'%s'},'spec':{'containers':["
		"{'name':'err','command':['socat','TCP-LISTEN:8081,fork,reuseaddr',"
		"'SYSTEM:eval $RESPOND'],'env':[{'name':'RESPOND','value':'%s'}],"
		"'readinessProbe':{'httpGet':{'port':8081,'path':'/health'},'periodSeconds':1}},"
		"{'name':'deaf','command':['/bin/sleep','30'],"
		"'readinessProbe':{'tcpSocket':{'port':8082},'periodSeconds':1}},"
		"{'name':'ok','command':['socat','TCP-LISTEN:8083,fork,reuseaddr',"
		"'SYSTEM:eval $RESPOND'],'env':[{'name':'RESPOND','value':'%s'}],"
		"'readinessProbe':{'httpGet':{'port':8083,'httpHeaders':[{'name':'X-Probe','value':"
		"'1'}]},'periodSeconds':1}}]}}",
		uid, RESPOND("500 Oops", ""), RESPOND("204 Fine", "")));
	json_t *st = WAIT(uid, 8000, "containerStatuses.ok.ready=true");
	json_decref(st);
	usleep(1500 * 1000);
	st = WAIT(uid, 1000, "containerStatuses.ok.ready=true", "containerStatuses.err.ready=false",
		  "containerStatuses.deaf.ready=false", "conditions.ContainersReady.status=False",
		  "conditions.ContainersReady.message~err deaf",
		  "containerStatuses.err.state.running?", "containerStatuses.deaf.state.running?");
	json_decref(st);
	kill_pod(uid, 0);
}

static bool link_exists(const char *name)
{
	struct nl_conn *nl = nl_open();
	struct nl_link_info li;
	bool r = nl && nl_link_get(nl, name, &li) == 0;
	nl_close(nl);
	return r;
}

/* The pod-side links of the node (veths named sh + 8 hex digits): how many, and one name. */
static int node_veths(char *name, size_t len)
{
	char line[512];
	int n = 0;
	FILE *f = popen("ip -o link show type veth", "r");
	while (f && fgets(line, sizeof(line), f)) {
		char *p = strstr(line, ": sh");
		char *at = p ? strchr(p, '@') : NULL;
		if (!at || at - (p + 2) != 10)
			continue;
		snprintf(name, len, "%.*s", 10, p + 2);
		n++;
	}
	if (f)
		pclose(f);
	return n;
}

/* SIGTERM, then SIGKILL after the grace period for a process that ignores SIGTERM; the preStop
 * hook runs first; then nothing of the pod is left. */
static void test_agent_runtime_graceful_kill(void **s)
{
	(void)s;
	char uid[64], hook[PATH_MAX], path[PATH_MAX + 64];
	new_uid(uid, sizeof(uid));
	snprintf(hook, sizeof(hook), "%s/prestop-ran", state);
	sync_pod(mkpod("{'metadata':{'name':'stop-1','uid':'%s'},'spec':{"
		       "'terminationGracePeriodSeconds':1,'containers':["
		       "{'name':'stubborn','command':['/bin/sh','-c','trap `` TERM; while :; do "
		       "sleep 0.2; done']},"
		       "{'name':'polite','command':['/bin/sleep','30'],'lifecycle':{'preStop':{"
		       "'exec':{'command':['/bin/sh','-c','echo $HOSTNAME > %s']}}}}]}}",
		       uid, hook));
	json_t *st =
		WAIT(uid, 5000, "containerStatuses.stubborn.state.running?",
		     "containerStatuses.polite.state.running?", "conditions.Ready.status=True");
	json_decref(st);
	/* what the pod owns on the node */
	char netns[96], veth[16] = "";
	snprintf(netns, sizeof(netns), "%s/%s-%.8s", NL_NETNS_DIR, node, uid);
	assert_int_equal(access(netns, F_OK), 0);
	assert_int_equal(node_veths(veth, sizeof(veth)), 1);
	snprintf(path, sizeof(path), "%s/pod%s", cgroot, uid);
	assert_int_equal(access(path, F_OK), 0);

	/* The stubborn process, watched from here: its end is the SIGKILL. */
	snprintf(path, sizeof(path), "%s/pods/%s/c/stubborn/0/pid.json", state, uid);
	json_t *pj = json_load_file(path, 0, NULL);
	pid_t stubborn = (pid_t)json_integer_value(json_object_get(pj, "pid"));
	json_decref(pj);
	if (stubborn <= 0)
		fail_msg("no pid for the stubborn container in %s", path);
	int pidfd = pidfd_open(stubborn, 0);
	if (pidfd < 0)
		fail_msg("pidfd_open %d: %s", (int)stubborn, strerror(errno));

	uint64_t t0 = now_ms();
	assert_int_equal(rt_pod_kill(rt, uid, -1, on_done, NULL), 0);
	struct pollfd pfd = { .fd = pidfd, .events = POLLIN };
	int r = poll(&pfd, 1, 10000);
	uint64_t killed = now_ms() - t0;
	close(pidfd);
	if (r != 1)
		fail_msg("the stubborn container still ran 10 s after the kill (poll: %s)",
			 r < 0 ? strerror(errno) : "timed out");
	/* Not before the grace period (it ignores SIGTERM), and at its end, give or take the
	 * latency of a loaded machine. */
	if (killed < 900 || killed > 4000)
		fail_msg(
			"the container ignoring SIGTERM ended %llu ms after the kill; expected the "
			"1 s grace period, then SIGKILL",
			(unsigned long long)killed);
	/* Then the teardown: namespaces, links and cgroups may take a while on a busy host. */
	if (!wait_done(uid, 15000))
		fail_msg("pod not torn down within 15 s of the kill");
	FILE *f = fopen(hook, "r");
	char line[64] = "";
	if (!f || !fgets(line, sizeof(line), f))
		fail_msg("the preStop hook did not run");
	fclose(f);
	assert_string_equal(line, "stop-1\n");
	assert_int_not_equal(access(netns, F_OK), 0);
	assert_false(link_exists(veth));
	assert_int_not_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/pods/%s", state, uid);
	assert_int_not_equal(access(path, F_OK), 0);
	assert_null(rt_pod_status(rt, uid));
}

/* A preStop hook that overruns the grace period is not cut off there: as in Kubernetes it runs
 * on while the container gets SIGTERM and 2 s more before SIGKILL. */
static void test_agent_runtime_prestop_outlives_grace(void **s)
{
	(void)s;
	char uid[64], mark[PATH_MAX];
	new_uid(uid, sizeof(uid));
	snprintf(mark, sizeof(mark), "%s/prestop-late-%s", state, uid);
	sync_pod(mkpod("{'metadata':{'name':'stop-2','uid':'%s'},'spec':{"
		       "'terminationGracePeriodSeconds':1,'containers':["
		       "{'name':'stubborn','command':['/bin/sh','-c','trap `` TERM; while :; do "
		       "sleep 0.2; done'],'lifecycle':{'preStop':{'exec':{'command':["
		       "'/bin/sh','-c','trap `` TERM; sleep 1.5; echo late > %s']}}}}]}}",
		       uid, mark));
	json_t *st = WAIT(uid, 5000, "containerStatuses.stubborn.state.running?");
	json_decref(st);
	uint64_t t0 = now_ms();
	assert_int_equal(rt_pod_kill(rt, uid, -1, on_done, NULL), 0);
	if (!wait_done(uid, 15000))
		fail_msg("pod not torn down within 15 s of the kill");
	uint64_t took = now_ms() - t0;
	FILE *f = fopen(mark, "r");
	char line[16] = "";
	if (!f || !fgets(line, sizeof(line), f))
		fail_msg("the preStop hook was cut off at the grace period (1 s; it needed 1.5 s); "
			 "the pod ended %llu ms after the kill",
			 (unsigned long long)took);
	fclose(f);
	assert_string_equal(line, "late\n");
	/* The container ignored SIGTERM: SIGKILL came 2 s after the grace period, not before. */
	if (took < 2900)
		fail_msg("the pod ended %llu ms after the kill; expected the 1 s grace period and "
			 "the 2 s extension first",
			 (unsigned long long)took);
	unlink(mark);
}

/* The pid a container printed first thing ("pid=N"), waiting up to 10 s for it to say so. */
static pid_t log_pid(const char *pod, const char *ctr)
{
	char *log = read_log(pod, ctr, false), *p = NULL;
	for (int i = 0; i < 200 && !(p = strstr(log, "pid=")); i++) {
		usleep(50 * 1000);
		log = read_log(pod, ctr, false);
	}
	if (!p)
		fprintf(stderr, "log of %s/%s after 10 s: \"%s\"\n", pod, ctr, log);
	return p ? (pid_t)atoi(p + 4) : -1;
}

/* rt_close leaves pods running; rt_open takes them up again, pids unchanged, and reports an
 * exit that happened while the runtime was closed. */
static void test_agent_runtime_readopt(void **s)
{
	(void)s;
	char uid[64], quit[PATH_MAX], path[PATH_MAX + 64];
	new_uid(uid, sizeof(uid));
	snprintf(quit, sizeof(quit), "%s/quit-flag", state);
	sync_pod(mkpod("{'metadata':{'name':'adopt-1','uid':'%s'},'spec':{'containers':["
		       "{'name':'steady','command':['/bin/sh','-c','echo pid=$$$$; exec sleep 30'],"
		       "'readinessProbe':{'tcpSocket':{'port':9999},'periodSeconds':1}},"
		       "{'name':'quitter','command':['/bin/sh','-c','echo pid=$$$$; while [ ! -e "
		       "%s ]; do sleep 0.05; done; exit 7']}]}}",
		       uid, quit));
	json_t *st = WAIT(uid, 5000, "containerStatuses.steady.state.running?",
			  "containerStatuses.quitter.state.running?");
	char started[64];
	snprintf(started, sizeof(started), "%s",
		 json_string_value(jpath(st, "containerStatuses.steady.state.running.startedAt")));
	char ip[32];
	snprintf(ip, sizeof(ip), "%s", json_string_value(json_object_get(st, "podIP")));
	json_decref(st);
	pid_t steady = log_pid("adopt-1", "steady"), quitter = log_pid("adopt-1", "quitter");
	assert_true(steady > 0 && quitter > 0);

	rt_close(rt);
	rt = NULL;
	pthread_mutex_lock(&mu);
	json_decref(seen_get(uid)->st);
	seen_get(uid)->st = NULL;
	pthread_mutex_unlock(&mu);
	assert_int_equal(kill(steady, 0), 0);
	FILE *f = fopen(quit, "w");
	assert_non_null(f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/pods/%s/c/quitter/0/exit.json", state, uid);
	for (int i = 0; i < 100 && access(path, F_OK) < 0; i++)
		usleep(50 * 1000);
	assert_int_equal(access(path, F_OK), 0);

	assert_int_equal(open_rt(), 0);
	st = WAIT(uid, 5000, "containerStatuses.quitter.restartCount>=1",
		  "containerStatuses.quitter.lastState.terminated.exitCode=7",
		  "containerStatuses.steady.restartCount=0",
		  "containerStatuses.steady.state.running?");
	assert_string_equal(
		json_string_value(jpath(st, "containerStatuses.steady.state.running.startedAt")),
		started);
	assert_string_equal(json_string_value(json_object_get(st, "podIP")), ip);
	json_decref(st);
	assert_int_equal(kill(steady, 0), 0);
	assert_int_equal(log_pid("adopt-1", "steady"), steady);
	unlink(quit);
	kill_pod(uid, 0);
	assert_int_not_equal(kill(steady, 0), 0);
}

/* A shim killed under its container: the container is killed too, reported as Unknown (255),
 * and started again. */
static void test_agent_runtime_shim_killed(void **s)
{
	(void)s;
	char uid[64], path[PATH_MAX + 64];
	new_uid(uid, sizeof(uid));
	/* The orphaned container comes to this process, which collects it below (PID 1 of a
	 * test machine may not). */
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	sync_pod(mkpod("{'metadata':{'name':'orphan-1','uid':'%s'},'spec':{'containers':[{"
		       "'name':'c','command':['/bin/sleep','30']}]}}",
		       uid));
	json_t *st = WAIT(uid, 5000, "containerStatuses.c.state.running?");
	json_decref(st);
	snprintf(path, sizeof(path), "%s/pods/%s/c/c/0/pid.json", state, uid);
	json_t *pj = json_load_file(path, 0, NULL);
	assert_non_null(pj);
	pid_t shim_pid = (pid_t)json_integer_value(json_object_get(pj, "shimPid"));
	pid_t ctr = (pid_t)json_integer_value(json_object_get(pj, "pid"));
	json_decref(pj);
	assert_true(shim_pid > 0 && ctr > 0);
	assert_int_equal(kill(shim_pid, SIGKILL), 0);
	st = WAIT(uid, 5000, "containerStatuses.c.restartCount>=1",
		  "containerStatuses.c.lastState.terminated.reason=Unknown",
		  "containerStatuses.c.lastState.terminated.exitCode=255",
		  "containerStatuses.c.state.running?");
	json_decref(st);
	int status = 0;
	assert_int_equal(waitpid(ctr, &status, 0), ctr);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
	kill_pod(uid, 0);
}

static bool ipam_has(const char *ip)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/ipam.json", state);
	json_t *o = json_load_file(path, 0, NULL);
	size_t i;
	json_t *e;
	bool found = false;
	json_array_foreach (json_object_get(o, "addresses"), i, e) {
		const char *a = json_string_value(json_object_get(e, "ip"));
		found |= a && !strcmp(a, ip);
	}
	json_decref(o);
	return found;
}

static json_t *db_pod(const char *uid, const char *name, const char *owner)
{
	return mkpod("{'metadata':{'name':'%s','uid':'%s'%s%s%s},'spec':{'containers':[{"
		     "'name':'c','command':['/bin/sleep','30']}]}}",
		     name, uid,
		     owner ? ",'annotations':{'shoal.io/keep-address':'true'},"
			     "'ownerReferences':[{'kind':'StatefulSet','name':'db','uid':'"
			   : "",
		     owner ? owner : "", owner ? "','controller':true}]" : "");
}

/* An owner's kept address comes back to its replacement pod and to no one else, until the
 * owner is released. */
static void test_agent_runtime_ipam_keep_address(void **s)
{
	(void)s;
	char u1[64], u2[64], u3[64], owner[64], kept[32];
	new_uid(u1, sizeof(u1));
	new_uid(u2, sizeof(u2));
	new_uid(u3, sizeof(u3));
	new_uid(owner, sizeof(owner));
	sync_pod(db_pod(u1, "db-0", owner));
	json_t *st = WAIT(u1, 5000, "podIP?", "phase=Running");
	snprintf(kept, sizeof(kept), "%s", json_string_value(json_object_get(st, "podIP")));
	json_decref(st);
	kill_pod(u1, 0);
	assert_true(ipam_has(kept));

	sync_pod(db_pod(u2, "other", NULL));
	st = WAIT(u2, 5000, "podIP?");
	assert_string_not_equal(json_string_value(json_object_get(st, "podIP")), kept);
	json_decref(st);

	sync_pod(db_pod(u3, "db-0", owner));
	st = WAIT(u3, 5000, "podIP?");
	assert_string_equal(json_string_value(json_object_get(st, "podIP")), kept);
	json_decref(st);
	kill_pod(u3, 0);
	assert_true(ipam_has(kept));
	assert_int_equal(rt_ipam_release_owner(rt, owner), 0);
	assert_false(ipam_has(kept));
	kill_pod(u2, 0);
}

/* Containers in a root filesystem of their own (pivot_root, /proc, hostname), and an exec
 * probe that runs inside it. */
static void test_agent_runtime_rootfs(void **s)
{
	(void)s;
	char uid[64], root[PATH_MAX];
	new_uid(uid, sizeof(uid));
	snprintf(root, sizeof(root), "%s/rootfs", state);
	/* /bin/sh, /bin/sleep and the libraries they need, nothing else. */
	if (nslab_sh("mkdir -p %s/bin %s/proc %s/dev && cp -L /bin/sh /bin/sleep %s/bin/ && "
		     "for l in $(ldd /bin/sh /bin/sleep | grep -o '/[^ ]*'); do "
		     "mkdir -p %s$(dirname $l) && cp -L $l %s$l; done && echo yes > %s/marker",
		     root, root, root, root, root, root, root) != 0)
		fail_msg("building a root filesystem failed");
	sync_pod(mkpod(
		"{'metadata':{'name':'rootfs-1','uid':'%s'},'spec':{'containers':["
		"{'name':'c','image':'%s','command':['/bin/sh','-c',"
		"'read m < /marker; read h < /proc/sys/kernel/hostname; read c < /proc/self/comm; "
		"test -e /etc/passwd && echo host-root-visible; echo marker=$m host=$h "
		"comm=$c; exec sleep 30']},"
		"{'name':'probed','image':'%s','command':['/bin/sleep','30'],"
		"'readinessProbe':{'exec':{'command':['/bin/sh','-c','read m < /marker && "
		"test ! -e /etc/passwd']},'periodSeconds':1}}]}}",
		uid, root, root));
	json_t *st = WAIT(uid, 10000, "containerStatuses.c.state.running?",
			  "containerStatuses.probed.ready=true");
	json_decref(st);
	assert_string_equal(read_log_line("rootfs-1", "c"), "marker=yes host=rootfs-1 comm=sh\n");
	kill_pod(uid, 0);
}

/* Usage from the pod's cgroup and the node's /proc; a log past the cap rotates. */
static void test_agent_runtime_usage_and_log_rotation(void **s)
{
	(void)s;
	char uid[64];
	new_uid(uid, sizeof(uid));
	sync_pod(mkpod(
		"{'metadata':{'name':'busy-1','uid':'%s'},'spec':{'containers':["
		"{'name':'spin','command':['/bin/sh','-c','while :; do :; done'],"
		"'resources':{'limits':{'cpu':'200m','memory':'32Mi'}}},"
		"{'name':'chatty','command':['/bin/sh','-c','i=0; while [ $i -lt 2500 ]; do echo "
		"line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done; exec sleep 30']}]}}",
		uid));
	json_t *st = WAIT(uid, 5000, "containerStatuses.spin.state.running?",
			  "containerStatuses.chatty.state.running?");
	json_decref(st);
	struct rt_usage u;
	assert_int_equal(rt_pod_usage(rt, uid, &u), 0);
	usleep(1500 * 1000);
	assert_int_equal(rt_pod_usage(rt, uid, &u), 0);
	if (u.cpu_cores < 0.05 || u.cpu_cores > 0.4)
		fail_msg("a spinning container limited to 200m used %.3f cores", u.cpu_cores);
	assert_true(u.memory_bytes > 0);
	assert_int_equal(rt_node_usage(rt, &u), 0);
	assert_true(u.cpu_cores >= 0 && u.memory_bytes > 0);
	assert_int_equal(rt_pod_usage(rt, "no-such-pod", &u), -ENOENT);

	char *path = rt_log_path(rt, "default", "busy-1", "chatty", false);
	assert_non_null(path);
	char rotated[PATH_MAX + 8];
	snprintf(rotated, sizeof(rotated), "%s.1", path);
	struct stat a, b;
	assert_int_equal(stat(path, &a), 0);
	assert_int_equal(stat(rotated, &b), 0);
	assert_true(a.st_size <= 64 * 1024 && b.st_size <= 64 * 1024);
	assert_true(a.st_size + b.st_size > 64 * 1024);
	free(path);
	kill_pod(uid, 0);
}

/* Bad pods become statuses with a reason and a message naming the field; none is an error of
 * the call, none crashes anything. */
static void test_agent_runtime_bad_input(void **s)
{
	(void)s;
	static const struct {
		const char *ctr, *spec, *path, *want;
	} cases[] = {
		{ "{'name':'c'}", "",
		  "containerStatuses.c.state.waiting.reason=CreateContainerError",
		  "containerStatuses.c.state.waiting.message~command" },
		{ "{'name':'c','command':['/bin/sleep'],'resources':{'limits':{'memory':'12xyz'}}}",
		  "", "containerStatuses.c.state.waiting.reason=CreateContainerConfigError",
		  "containerStatuses.c.state.waiting.message~resources.limits.memory" },
		{ "{'name':'c','command':['/bin/sleep'],'readinessProbe':{'periodSeconds':1}}", "",
		  "containerStatuses.c.state.waiting.reason=CreateContainerConfigError",
		  "containerStatuses.c.state.waiting.message~readinessProbe" },
		{ "{'name':'c','command':['/bin/sleep'],'colour':'red'}", "",
		  "containerStatuses.c.state.waiting.reason=CreateContainerConfigError",
		  "containerStatuses.c.state.waiting.message~colour: unknown field" },
		{ "{'name':'c','command':['/bin/"
		  "sleep'],'env':[{'name':'X','valueFrom':{'fieldRef':{'fieldPath':'spec.secret'}}}"
		  "]}",
		  "", "containerStatuses.c.state.waiting.reason=CreateContainerConfigError",
		  "containerStatuses.c.state.waiting.message~fieldPath" },
		{ "{'name':'c','command':['/bin/sleep']}", ",'restartPolicy':'Sometimes'",
		  "containerStatuses.c.state.waiting.reason=CreateContainerConfigError",
		  "containerStatuses.c.state.waiting.message~spec.restartPolicy" },
		{ "{'name':'c','command':['/nonexistent/bin']}", ",'restartPolicy':'Never'",
		  "containerStatuses.c.state.terminated.reason=StartError",
		  "containerStatuses.c.state.terminated.message~/nonexistent/bin" },
		{ "{'name':'c','command':['no-such-command-anywhere']}", "",
		  "containerStatuses.c.state.waiting.reason=RunContainerError",
		  "containerStatuses.c.state.waiting.message~not found" },
		{ "{'name':'c','command':['/bin/true'],'securityContext':{'runAsNonRoot':true}}",
		  "", "containerStatuses.c.state.waiting.reason=CreateContainerConfigError",
		  "containerStatuses.c.state.waiting.message~runAsNonRoot" },
		{ "{'name':'c','command':['/bin/true'],'workingDir':'/no/such/dir'}", "",
		  "containerStatuses.c.state.waiting.reason=RunContainerError",
		  "containerStatuses.c.state.waiting.message~workingDir" },
	};
	char uids[sizeof(cases) / sizeof(cases[0])][64];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		new_uid(uids[i], sizeof(uids[i]));
		sync_pod(mkpod("{'metadata':{'name':'bad-%zu','uid':'%s'},'spec':{"
			       "'containers':[%s]%s}}",
			       i, uids[i], cases[i].ctr, cases[i].spec));
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *st = wait_for(uids[i], 5000, cases[i].path, cases[i].want, NULL);
		if (!st)
			fail_msg("bad pod %zu (%s): no status %s / %s", i, cases[i].ctr,
				 cases[i].path, cases[i].want);
		json_decref(st);
	}
	/* A pod that cannot even be named is refused by the call. */
	json_t *nameless = mkpod("{'metadata':{'name':'x'},'spec':{'containers':[]}}");
	assert_int_equal(rt_pod_sync(rt, nameless), -EINVAL);
	json_decref(nameless);
	json_t *elsewhere =
		mkpod("{'metadata':{'name':'x','uid':'u-else'},'spec':{'nodeName':"
		      "'another-node','containers':[{'name':'c','command':['/bin/true']}]}}");
	assert_int_equal(rt_pod_sync(rt, elsewhere), -EINVAL);
	json_decref(elsewhere);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		kill_pod(uids[i], 0);
	/* an unknown pod: done at once */
	pthread_mutex_lock(&mu);
	seen_get("no-such-uid")->done = false;
	pthread_mutex_unlock(&mu);
	assert_int_equal(rt_pod_kill(rt, "no-such-uid", 0, on_done, NULL), 0);
	assert_true(wait_done("no-such-uid", 1));
}

SHOAL_TEST_MAIN_SETUP(
	group_setup, group_teardown,
	cmocka_unit_test_teardown(test_agent_runtime_web_pod_answers, case_teardown),
	cmocka_unit_test_teardown(test_agent_runtime_env_limits_exit, case_teardown),
	cmocka_unit_test_teardown(test_agent_runtime_restart_backoff, case_teardown),
	cmocka_unit_test_teardown(test_agent_runtime_init_containers, case_teardown),
	cmocka_unit_test_teardown(test_agent_runtime_run_as_user, case_teardown),
	cmocka_unit_test_teardown(test_agent_runtime_liveness_restarts, case_teardown),
	cmocka_unit_test_teardown(test_agent_runtime_readiness_toggles, case_teardown),
	cmocka_unit_test_teardown(test_agent_runtime_probe_failures, case_teardown),
	cmocka_unit_test_teardown(test_agent_runtime_graceful_kill, case_teardown),
	cmocka_unit_test_teardown(test_agent_runtime_prestop_outlives_grace, case_teardown),
	cmocka_unit_test_teardown(test_agent_runtime_readopt, case_teardown),
	cmocka_unit_test_teardown(test_agent_runtime_shim_killed, case_teardown),
	cmocka_unit_test_teardown(test_agent_runtime_ipam_keep_address, case_teardown),
	cmocka_unit_test_teardown(test_agent_runtime_rootfs, case_teardown),
	cmocka_unit_test_teardown(test_agent_runtime_usage_and_log_rotation, case_teardown),
	cmocka_unit_test_teardown(test_agent_runtime_bad_input, case_teardown))
