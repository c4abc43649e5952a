/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal interface of the pod runtime (rt_*.c): the parsed pod spec, the runtime's view of
 * pods and containers, and the functions the files call on each other.
 *
 * Threading: one loop thread (rt_core.c) owns every struct rt_pod and struct rt_ctr and all
 * that hangs off them; nothing else touches them, so they carry no locks. Other threads talk
 * to the loop through commands (rt->cmds) and read what the loop publishes (rt->pub), both
 * under rt->mu. IPAM has its own lock (rt_ipam_release_owner comes from any thread).
 */
#ifndef SHOAL_RT_INT_H
#define SHOAL_RT_INT_H

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "runtime.h"

/* ---- the pod spec, as parsed and validated (rt_spec.c) ---- */

enum { RT_PROBE_LIVENESS, RT_PROBE_READINESS, RT_PROBE_STARTUP, RT_N_PROBES };

enum rt_handler_kind { RT_H_NONE, RT_H_EXEC, RT_H_TCP, RT_H_HTTP };

struct rt_handler {
	enum rt_handler_kind kind;
	char **argv;	/* exec, NULL-terminated */
	int port;	/* tcp, http (a named port is resolved while parsing) */
	char *host;	/* NULL: the pod's address */
	char *path;	/* http */
	char **headers; /* http: "Name: value", NULL-terminated (may be NULL) */
};

struct rt_probe_spec {
	bool set;
	struct rt_handler h;
	int initial_delay, period, timeout, success, failure; /* seconds, counts */
	long grace;					      /* -1: the pod's */
};

enum rt_env_src { RT_ENV_VALUE, RT_ENV_FIELD, RT_ENV_RESOURCE };

struct rt_env_spec {
	char *name;
	enum rt_env_src src;
	char *value;	       /* VALUE: text with $(VAR) references; FIELD: the path; RESOURCE:
				* "limits.cpu" and the like */
	int64_t divisor_milli; /* RESOURCE */
};

struct rt_ctr_spec {
	bool init; /* an init container: runs to completion, in order, before the others */
	char *name, *image, *rootfs, *workdir;
	char **command, **args; /* NULL-terminated; NULL when absent */
	struct rt_env_spec *env;
	size_t n_env;
	/* milli-cores and bytes; -1: not set */
	int64_t cpu_limit, cpu_request, mem_limit, mem_request;
	struct rt_probe_spec probes[RT_N_PROBES];
	char **prestop;	  /* lifecycle.preStop.exec.command */
	int64_t uid, gid; /* securityContext runAsUser, runAsGroup; -1: not set (root) */
	/* When set, this container cannot be created; the reason and message are its status. */
	char *err_reason, *err_msg;
};

enum rt_restart { RT_RESTART_ALWAYS, RT_RESTART_ONFAILURE, RT_RESTART_NEVER };

struct rt_pod_spec {
	char *uid, *ns, *name, *hostname, *owner_uid;
	bool keep_address;
	enum rt_restart restart;
	long grace; /* terminationGracePeriodSeconds */
	/* spec.containers, then spec.initContainers (n_apps of the first kind) */
	struct rt_ctr_spec *ctrs;
	size_t n_ctrs, n_apps;
	/* spec.securityContext, the containers' defaults */
	int64_t run_as_user, run_as_group;
	int run_as_non_root; /* -1 unset, 0, 1 */
	/* A pod-level error: no container is created; every container shows it. */
	char *err_reason, *err_msg;
};

/* Parses pod into out. -EINVAL (with *why set) only when the pod cannot be named (no uid,
 * name or namespace); every other problem is recorded in out as a status reason. */
int rt_spec_parse(const json_t *pod, struct rt_pod_spec *out, const char **why);
void rt_spec_free(struct rt_pod_spec *s);

/* The environment (NULL-terminated "NAME=value" strings) and the argv of a container, with
 * $(VAR) references expanded as Kubernetes does. */
struct rt_env_ctx {
	const json_t *pod;
	const char *pod_ip, *host_ip, *node, *hostname;
};
char **rt_spec_env(const struct rt_ctr_spec *c, const struct rt_env_ctx *ctx);
char **rt_spec_argv(const struct rt_ctr_spec *c, char *const *env);
char **rt_strv_expand(char *const *v, char *const *env);
void rt_strv_free(char **v);
size_t rt_strv_len(char *const *v);

/* ---- cgroups (rt_cgroup.c) ---- */

/* Where a cgroup lives: the v2 directory and the v1 cpu and memory directories, each NULL
 * when not used. */
struct rt_cg {
	char *v2, *cpu, *mem;
};

struct rt_cgroot {
	struct rt_cg node;   /* the node's directories */
	bool v2_cpu, v2_mem; /* the controllers are enabled below the v2 node directory */
	char *v1_base[2];    /* the agent's own v1 cpu, memory cgroups: the mirrors are below */
};

struct rt_limits {
	int64_t cpu_limit, cpu_request, mem_limit; /* milli-cores, bytes; -1 none */
};

int rt_cg_init(struct rt_cgroot *r, const char *cgroup_root);
void rt_cg_fini(struct rt_cgroot *r);
/* Creates (or finds) parent/name with limits; err says what failed. */
int rt_cg_create(const struct rt_cgroot *r, const struct rt_cg *parent, const char *name,
		 const struct rt_limits *lim, struct rt_cg *out, char *err, size_t len);
/* rmdir of each directory; -EBUSY while processes remain. Missing directories are fine. */
int rt_cg_remove(const struct rt_cg *cg);
/* SIGKILL to every process in the cgroup (cgroup.kill, else its process list). */
void rt_cg_kill(const struct rt_cg *cg);
/* True when no process is left. */
bool rt_cg_empty(const struct rt_cg *cg);
/* CPU time (µs) and working-set memory (bytes). */
int rt_cg_usage(const struct rt_cg *cg, uint64_t *cpu_usec, uint64_t *mem_bytes);
/* The OOM-kill counter (memory.events oom_kill, v1 memory.oom_control oom_kill); 0 when
 * unknown. */
uint64_t rt_cg_oom_kills(const struct rt_cg *cg);
/* The directories the shim joins (NULL-terminated list in out, at most 4). */
void rt_cg_dirs(const struct rt_cg *cg, const char **out);
void rt_cg_free(struct rt_cg *cg);
int rt_cg_copy(struct rt_cg *dst, const struct rt_cg *src);

/* ---- IPAM (rt_ipam.c) ---- */

struct rt_ipam;
struct rt_ipam *rt_ipam_open(const char *state_dir, const char *cidr);
void rt_ipam_close(struct rt_ipam *ipam);
/* The address of pod uid: its existing one, a kept one of (owner, name) or of owner, or a free
 * one. -ENOSPC when the CIDR is full. out: dotted quad. */
int rt_ipam_alloc(struct rt_ipam *ipam, const char *uid, const char *ns, const char *name,
		  const char *owner, bool keep, char *out, size_t len);
/* Returns uid's address to the pool (or keeps it for its owner). */
int rt_ipam_release(struct rt_ipam *ipam, const char *uid);
int rt_ipam_owner_release(struct rt_ipam *ipam, const char *owner);
/* Releases every allocation whose pod is not in live (uids, n). */
int rt_ipam_gc(struct rt_ipam *ipam, char *const *live, size_t n);

/* ---- the pod's runtime state (rt_pod.c) ---- */

enum rt_watch_kind { RT_W_WAKE, RT_W_SHIM, RT_W_PROBE, RT_W_HOOK };

struct rt_ctr;
struct rt_pod;

/* One file descriptor in the loop's epoll set. Freed only after the loop iteration that
 * marked it dead, so an event already fetched for it is recognised and skipped. */
struct rt_watch {
	int fd;
	enum rt_watch_kind kind;
	struct rt_ctr *c;
	int probe;
	bool dead;
	struct rt_watch *next_dead;
};

struct rt_term {
	bool set;
	int exit_code, signal;
	char reason[32];
	char msg[512];
	int64_t started, finished; /* CLOCK_REALTIME ns */
	char id[96];
};

struct rt_probe_run {
	int succ, fail;
	bool ok;	  /* the derived result */
	uint64_t next_at; /* monotonic ms of the next run; 0: not scheduled */
	/* one run in flight */
	struct rt_watch *w; /* socket (tcp, http) or pidfd (exec) */
	uint64_t deadline;
	pid_t pid;
	int outfd; /* exec: memfd holding the command's output */
	bool sent; /* http: request written */
	char buf[1024];
	size_t len;
	char msg[256]; /* the last failure */
};

enum rt_cstate { RT_C_WAITING, RT_C_RUNNING, RT_C_TERMINATED };
enum rt_stop { RT_STOP_NONE, RT_STOP_HOOK, RT_STOP_TERM, RT_STOP_KILL };

struct rt_ctr {
	struct rt_pod *pod;
	size_t idx;
	struct rt_ctr_spec *spec;
	struct rt_cg cg;
	char **envp; /* resolved when started */
	enum rt_cstate state;
	char wait_reason[40];
	char wait_msg[512];
	int instance; /* -1: never started */
	int restarts;
	int backoff;	     /* exponent of the next back-off */
	uint64_t restart_at; /* monotonic ms; 0: now */
	bool done;	     /* will not run again */
	/* the running instance */
	pid_t shim_pid, pid;
	uint64_t shim_start, pid_start;
	int pidfd;
	struct rt_watch *shim_w;
	int64_t started_at;
	uint64_t oom_before;
	char id[96];
	bool ready, started;
	struct rt_probe_run probes[RT_N_PROBES];
	/* stopping the running instance */
	enum rt_stop stop;
	uint64_t kill_at, hook_deadline;
	pid_t hook_pid;
	struct rt_watch *hook_w;
	char stop_msg[256];
	struct rt_term term; /* state, when TERMINATED */
	struct rt_term last; /* lastState */
};

enum {
	RT_COND_SCHEDULED,
	RT_COND_INITIALIZED,
	RT_COND_SANDBOX,
	RT_COND_CREADY,
	RT_COND_READY,
	RT_N_CONDS
};

struct rt_kill_cb {
	void (*done)(void *arg, const char *uid);
	void *arg;
	struct rt_kill_cb *next;
};

struct rt_pod {
	struct rt *rt;
	json_t *obj; /* the Pod as synced */
	struct rt_pod_spec spec;
	char *dir; /* <state_dir>/pods/<uid> */
	char ip[16];
	char netns[80], veth[16];
	int netns_fd;
	bool net_ready, cg_ready;
	char sandbox_msg[512];
	uint64_t sandbox_retry_at;
	int sandbox_fails;
	struct rt_cg cg;
	int64_t start_time;
	struct rt_ctr *ctrs;
	size_t n_ctrs;
	bool terminating;
	int64_t term_deadline; /* CLOCK_REALTIME ns: SIGKILL for whatever still runs */
	bool torn_down;
	uint64_t teardown_at;
	int teardown_tries;
	struct rt_kill_cb *kill_cbs;
	bool dirty, save, gone;
	json_t *reported;
	struct {
		int val; /* -1 unknown, 0 false, 1 true */
		int64_t t;
	} cond[RT_N_CONDS];
	/* CPU usage sample for rt_pod_usage (in rt->pub, under rt->mu) */
};

/* ---- the runtime (rt_core.c) ---- */

struct rt_cmd {
	enum { RT_CMD_SYNC, RT_CMD_KILL } type;
	json_t *pod;
	char *uid;
	long grace;
	void (*done)(void *arg, const char *uid);
	void *arg;
	int result;
	bool finished, waited;
	struct rt_cmd *next;
};

/* What other threads may read about a pod (under rt->mu). */
struct rt_pub {
	char *uid, *ns, *name;
	json_t *status;
	struct rt_cg cg;
	char *dir;
	size_t n;
	char **names;
	int *instances;
	int64_t created;
	uint64_t cpu_usec, cpu_ms; /* the last usage sample */
	bool cpu_have;
};

struct rt_note {
	char *uid, *ns, *name;
	json_t *status;
	void (*done)(void *arg, const char *uid);
	void *arg;
	struct rt_note *next;
};

struct rt {
	struct rt_config cfg; /* strings owned */
	char *shim;
	uint64_t backoff_base, backoff_max, log_max;
	int node_ns; /* the node's network namespace (the caller's when rt_open ran) */
	int epfd;
	struct rt_watch wake;
	pthread_t thread;
	bool thread_started;
	pthread_t loop_tid;
	struct rt_cgroot cgroot;
	struct rt_ipam *ipam;
	/* loop-owned */
	struct rt_pod **pods;
	size_t n_pods, cap_pods;
	struct rt_watch *graveyard;
	struct rt_note *notes, **notes_tail;
	/* shared, under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct rt_cmd *cmds, **cmds_tail;
	bool stopping;
	struct rt_pub **pub;
	size_t n_pub, cap_pub;
	struct {
		pid_t pid;
		uint64_t kill_at;
	} * reap;
	size_t n_reap, cap_reap;
	uint64_t node_busy, node_total; /* the last /proc/stat sample */
	bool node_have;
};

/* rt_core.c */
struct rt_watch *rt_watch_add(struct rt *rt, int fd, uint32_t events, enum rt_watch_kind kind,
			      struct rt_ctr *c, int probe);
/* Removes from epoll, closes the fd, and frees the watch after this iteration. Accepts NULL. */
void rt_watch_drop(struct rt *rt, struct rt_watch *w);
void rt_note_done(struct rt *rt, const char *uid, void (*done)(void *, const char *), void *arg);
void rt_note_status(struct rt *rt, struct rt_pod *p, json_t *status);
void rt_pub_update(struct rt *rt, struct rt_pod *p);
void rt_pub_remove(struct rt *rt, const char *uid);

/* A child process given up on (a probe or hook past its time, already sent SIGTERM): the loop
 * collects it, and SIGKILLs it if it lingers. */
void rt_reap_add(struct rt *rt, pid_t pid);

/* rt_pod.c */
struct rt_pod *rt_pod_new(struct rt *rt, json_t *obj, const char **why);
int rt_pod_start(struct rt *rt, struct rt_pod *p);
struct rt_pod *rt_pod_load(struct rt *rt, const char *dir);
void rt_pod_step(struct rt *rt, struct rt_pod *p, uint64_t now);
uint64_t rt_pod_next(const struct rt_pod *p);
void rt_pod_terminate(struct rt *rt, struct rt_pod *p, long grace_s);
void rt_pod_shim_event(struct rt *rt, struct rt_ctr *c);
void rt_pod_hook_event(struct rt *rt, struct rt_ctr *c);
void rt_pod_free(struct rt_pod *p);
/* Every init container has succeeded (true when there is none). */
bool rt_pod_inits_done(const struct rt_pod *p);
/* An init container failed for good (restartPolicy Never): the pod has failed. */
bool rt_pod_init_failed(const struct rt_pod *p);
/* Stops the running instance of c (probe failure): graceful, then restart by policy. */
void rt_ctr_stop(struct rt *rt, struct rt_ctr *c, uint64_t grace_ms, const char *why);
int rt_pod_save(struct rt_pod *p);
/* Closes the runtime's hold on p's processes (rt_close): probes, hooks, watches. */
void rt_pod_detach(struct rt *rt, struct rt_pod *p);
void rt_ctr_log_path(const struct rt_pod *p, const char *name, int instance, char *out, size_t len);

/* rt_status.c */
json_t *rt_status_build(struct rt *rt, struct rt_pod *p);

/* rt_net.c */
int rt_net_setup(struct rt *rt, struct rt_pod *p, char *err, size_t len);
void rt_net_teardown(struct rt *rt, struct rt_pod *p);
int rt_net_forwarding(struct rt *rt);
/* A socket created inside the pod's network namespace. */
int rt_net_socket(struct rt *rt, struct rt_pod *p, int type);

/* rt_proc.c */
/* Starts the container through a shim. 0: running (c's pids filled); -1 with err: it could
 * not start (the reason is the container's, a StartError). */
int rt_proc_start_ctr(struct rt *rt, struct rt_ctr *c, char **argv, const char *inst_dir,
		      const char *log, char *err, size_t len);
/* Runs argv inside c's running container (shim exec); output into a memfd. */
int rt_proc_exec(struct rt *rt, struct rt_ctr *c, char *const *argv, pid_t *pid, int *pidfd,
		 int *outfd);
/* Reads DIR/exit.json. -ENOENT when absent. */
int rt_proc_read_exit(const char *inst_dir, struct rt_term *t);
/* Reads DIR/pid.json into c (shim and container identities, start time). */
int rt_proc_read_pids(const char *inst_dir, struct rt_ctr *c);
/* pidfd of pid when it is still the process that started at start; -ESRCH otherwise. */
int rt_proc_pidfd(pid_t pid, uint64_t start);
/* Collects a child of ours that exited, when pid is still the process that started at start
 * (a zombie keeps its pid and start time; a recycled pid is left alone). */
void rt_proc_reap(pid_t pid, uint64_t start);

/* rt_probe.c */
void rt_probe_begin(struct rt *rt, struct rt_ctr *c, uint64_t now);
void rt_probe_tick(struct rt *rt, struct rt_ctr *c, uint64_t now);
void rt_probe_event(struct rt *rt, struct rt_watch *w, uint32_t events);
void rt_probe_cancel(struct rt *rt, struct rt_ctr *c);
uint64_t rt_probe_next(const struct rt_ctr *c);

#endif
