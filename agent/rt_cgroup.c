// SPDX-License-Identifier: Apache-2.0
/*
 * Pod and container cgroups: <node>/pod<uid>/<container>, limits from the pod spec, kill,
 * removal and usage.
 *
 * cgroup v2 first: the node's directory is rt_config.cgroup_root, on the cgroup2 hierarchy;
 * every process of a pod is in it (that is also where socket-LB programs attach). cpu.max
 * comes from limits.cpu (period 100 ms), cpu.weight from requests.cpu (Kubernetes' shares
 * formula mapped to weights), memory.max from limits.memory; a pod's own limits are the sums
 * of its containers' when every container has one.
 *
 * The design choice: a controller that the v2 hierarchy does not offer at the node's directory
 * (a host booted with the hybrid layout, where cpu and memory are bound to v1 hierarchies)
 * is used through its v1 hierarchy instead, per controller, best effort: cpu.cfs_quota_us /
 * cpu.cfs_period_us and cpu.shares for cpu, memory.limit_in_bytes for memory. The v1 tree
 * mirrors the v2 one below the agent's own v1 cgroup (the path of cgroup_root relative to
 * the cgroup2 mount is repeated there), so a node in a lab stays inside whatever the agent was
 * given; the mirrors are removed again on close when empty. CPU usage is
 * read from the v2 cpu.stat (present without the cpu controller), else v1 cpuacct.usage;
 * memory from memory.current or v1 memory.usage_in_bytes, minus inactive file pages (the
 * working set, as kubelet reports it).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "rt_int.h"
#include "rt_util.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

#define CPU_PERIOD_US 100000

static bool has_word(const char *list, const char *word, const char *seps)
{
	size_t n = strlen(word);
	for (const char *p = list; (p = strstr(p, word)); p += n) {
		bool start = p == list || strchr(seps, p[-1]);
		bool end = p[n] == '\0' || strchr(seps, p[n]);
		if (start && end)
			return true;
	}
	return false;
}

/* The cgroup2 mount point that holds path ("" when none). */
static void v2_mount_of(const char *path, char *out, size_t len)
{
	char line[1024], mnt[512], type[64];
	out[0] = '\0';
	FILE *f = fopen("/proc/self/mounts", "re");
	if (!f)
		return;
	size_t best = 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*s %511s %63s", mnt, type) != 2 || strcmp(type, "cgroup2"))
			continue;
		size_t n = strlen(mnt);
		if (!strncmp(path, mnt, n) && (path[n] == '/' || path[n] == '\0') && n > best) {
			best = n;
			snprintf(out, len, "%s", mnt);
		}
	}
	fclose(f);
}

/* The v1 mount of a controller and the agent's own cgroup in it. */
static int v1_find(const char *ctrl, char *mnt_out, size_t mlen, char *own, size_t olen)
{
	char line[1024], mnt[512], type[64], opts[512];
	bool found = false;
	FILE *f = fopen("/proc/self/mounts", "re");
	if (!f)
		return -errno;
	while (!found && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*s %511s %63s %511s", mnt, type, opts) != 3 ||
		    strcmp(type, "cgroup"))
			continue;
		if (has_word(opts, ctrl, ",")) {
			snprintf(mnt_out, mlen, "%s", mnt);
			found = true;
		}
	}
	fclose(f);
	if (!found)
		return -ENOENT;
	/* "N:cpu,cpuacct:/path" */
	f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return -errno;
	found = false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
		if (!b)
			continue;
		*b = '\0';
		if (!has_word(a + 1, ctrl, ","))
			continue;
		char *path = b + 1;
		path[strcspn(path, "\n")] = '\0';
		snprintf(own, olen, "%s", strcmp(path, "/") ? path : "");
		found = true;
	}
	fclose(f);
	return found ? 0 : -ENOENT;
}

int rt_cg_init(struct rt_cgroot *r, const char *root)
{
	char v2mnt[512], line[PATH_MAX + 32];
	memset(r, 0, sizeof(*r));
	if (!root || root[0] != '/') {
		log_error("runtime: cgroup_root must be an absolute path");
		return -EINVAL;
	}
	size_t rl = strlen(root);
	while (rl > 1 && root[rl - 1] == '/')
		rl--;
	char clean[PATH_MAX];
	snprintf(clean, sizeof(clean), "%.*s", (int)rl, root);

	const char *rel = NULL;
	struct statfs sf;
	v2_mount_of(clean, v2mnt, sizeof(v2mnt));
	if (*v2mnt) {
		int err = fs_mkdir_p(clean, 0755);
		if (err) {
			log_error("runtime: cgroup %s: %s", clean, strerror(-err));
			return err;
		}
		if (statfs(clean, &sf) < 0 || sf.f_type != CGROUP2_SUPER_MAGIC) {
			log_error("runtime: cgroup %s is not on the cgroup2 hierarchy", clean);
			return -EINVAL;
		}
		if (!(r->node.v2 = strdup(clean)))
			return -ENOMEM;
		rel = clean + strlen(v2mnt);
		snprintf(line, sizeof(line), "%s/cgroup.controllers", clean);
		char *ctrls = rt_read_file(line, 4096, NULL);
		snprintf(line, sizeof(line), "%s/cgroup.subtree_control", clean);
		if (ctrls && has_word(ctrls, "cpu", " \n"))
			r->v2_cpu = rt_write_str(line, "+cpu") == 0;
		if (ctrls && has_word(ctrls, "memory", " \n"))
			r->v2_mem = rt_write_str(line, "+memory") == 0;
		free(ctrls);
	} else {
		/* No cgroup2 at all: the path names the node below each v1 hierarchy. */
		rel = !strncmp(clean, "/sys/fs/cgroup/", 15) ? clean + 14 : clean;
	}
	while (*rel == '/')
		rel++;

	static const char *const ctrl[2] = { "cpu", "memory" };
	bool need[2] = { !r->v2_cpu, !r->v2_mem };
	for (int i = 0; i < 2; i++) {
		char mnt[512], own[512], dir[PATH_MAX];
		if (!need[i] || v1_find(ctrl[i], mnt, sizeof(mnt), own, sizeof(own)))
			continue;
		if (snprintf(dir, sizeof(dir), "%s%s/%s", mnt, own, rel) >= (int)sizeof(dir))
			continue;
		int err = fs_mkdir_p(dir, 0755);
		if (err) {
			log_warn("runtime: cgroup v1 %s %s: %s (no %s limits)", ctrl[i], dir,
				 strerror(-err), ctrl[i]);
			continue;
		}
		char **slot = i == 0 ? &r->node.cpu : &r->node.mem;
		free(r->v1_base[i]);
		r->v1_base[i] = NULL;
		if (!(*slot = strdup(dir)) || asprintf(&r->v1_base[i], "%s%s", mnt, own) < 0) {
			r->v1_base[i] = NULL;
			return -ENOMEM;
		}
	}
	if (!r->v2_cpu && !r->node.cpu)
		log_warn("runtime: no cpu controller for %s: cpu limits are not enforced", clean);
	if (!r->v2_mem && !r->node.mem)
		log_warn("runtime: no memory controller for %s: memory limits are not enforced",
			 clean);
	log_info("runtime: cgroups: %s%s%s%s%s%s%s", r->node.v2 ? r->node.v2 : "(no v2)",
		 r->v2_cpu ? " cpu:v2" : "", r->v2_mem ? " memory:v2" : "",
		 r->node.cpu ? " cpu:v1 " : "", r->node.cpu ? r->node.cpu : "",
		 r->node.mem ? " memory:v1 " : "", r->node.mem ? r->node.mem : "");
	return 0;
}

void rt_cg_fini(struct rt_cgroot *r)
{
	/* The v1 mirrors go again when nothing is left in them (rmdir fails otherwise), up to
	 * the agent's own v1 cgroup. */
	char *dirs[2] = { r->node.cpu, r->node.mem };
	for (int i = 0; i < 2; i++) {
		char *base = r->v1_base[i];
		if (dirs[i] && base) {
			char tmp[PATH_MAX];
			snprintf(tmp, sizeof(tmp), "%s", dirs[i]);
			size_t bl = strlen(base);
			while (strlen(tmp) > bl && !strncmp(tmp, base, bl) && rmdir(tmp) == 0) {
				char *s = strrchr(tmp, '/');
				if (!s)
					break;
				*s = '\0';
			}
		}
		free(base);
		r->v1_base[i] = NULL;
	}
	rt_cg_free(&r->node);
}

void rt_cg_free(struct rt_cg *cg)
{
	if (!cg)
		return;
	free(cg->v2);
	free(cg->cpu);
	free(cg->mem);
	cg->v2 = cg->cpu = cg->mem = NULL;
}

int rt_cg_copy(struct rt_cg *dst, const struct rt_cg *src)
{
	memset(dst, 0, sizeof(*dst));
	if ((src->v2 && !(dst->v2 = strdup(src->v2))) ||
	    (src->cpu && !(dst->cpu = strdup(src->cpu))) ||
	    (src->mem && !(dst->mem = strdup(src->mem)))) {
		rt_cg_free(dst);
		return -ENOMEM;
	}
	return 0;
}

static int knob(const char *dir, const char *file, const char *val, char *err, size_t len)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	int e = rt_write_str(path, val);
	if (e)
		snprintf(err, len, "cgroup %s: write %s=%s: %s", dir, file, val, strerror(-e));
	return e;
}

/* Kubernetes: shares = milli * 1024 / 1000 (at least 2); weight = 1 + (shares - 2) * 9999 /
 * 262142. */
static uint64_t cpu_shares(int64_t milli)
{
	uint64_t s = milli > 0 ? (uint64_t)milli * 1024 / 1000 : 2;
	return s < 2 ? 2 : s > 262144 ? 262144 : s;
}

int rt_cg_create(const struct rt_cgroot *r, const struct rt_cg *parent, const char *name,
		 const struct rt_limits *lim, struct rt_cg *out, char *err, size_t len)
{
	const struct rt_cg *base = parent ? parent : &r->node;
	const char *bases[3] = { base->v2, base->cpu, base->mem };
	char **outs[3] = { &out->v2, &out->cpu, &out->mem };
	char val[64];
	int e;

	memset(out, 0, sizeof(*out));
	for (int i = 0; i < 3; i++) {
		if (!bases[i])
			continue;
		if (asprintf(outs[i], "%s/%s", bases[i], name) < 0) {
			*outs[i] = NULL;
			rt_cg_free(out);
			snprintf(err, len, "cgroup: out of memory");
			return -ENOMEM;
		}
		if (mkdir(*outs[i], 0755) < 0 && errno != EEXIST) {
			e = -errno;
			snprintf(err, len, "cgroup %s: %s", *outs[i], strerror(errno));
			rt_cg_free(out);
			return e;
		}
	}
	if (out->v2 && r->v2_cpu) {
		if (lim->cpu_limit > 0) {
			int64_t q = lim->cpu_limit * CPU_PERIOD_US / 1000;
			snprintf(val, sizeof(val), "%lld %d", (long long)(q < 1000 ? 1000 : q),
				 CPU_PERIOD_US);
		} else {
			snprintf(val, sizeof(val), "max %d", CPU_PERIOD_US);
		}
		if ((e = knob(out->v2, "cpu.max", val, err, len)))
			goto fail;
		uint64_t w = 1 + (cpu_shares(lim->cpu_request) - 2) * 9999 / 262142;
		snprintf(val, sizeof(val), "%llu", (unsigned long long)w);
		if ((e = knob(out->v2, "cpu.weight", val, err, len)))
			goto fail;
	}
	if (out->v2 && r->v2_mem) {
		if (lim->mem_limit > 0)
			snprintf(val, sizeof(val), "%lld", (long long)lim->mem_limit);
		else
			snprintf(val, sizeof(val), "max");
		if ((e = knob(out->v2, "memory.max", val, err, len)))
			goto fail;
	}
	if (out->v2 && !parent && (r->v2_cpu || r->v2_mem)) {
		snprintf(val, sizeof(val), "%s%s%s", r->v2_cpu ? "+cpu" : "",
			 r->v2_cpu && r->v2_mem ? " " : "", r->v2_mem ? "+memory" : "");
		if ((e = knob(out->v2, "cgroup.subtree_control", val, err, len)))
			goto fail;
	}
	if (out->cpu) {
		snprintf(val, sizeof(val), "%d", CPU_PERIOD_US);
		if ((e = knob(out->cpu, "cpu.cfs_period_us", val, err, len)))
			goto fail;
		int64_t q = lim->cpu_limit > 0 ? lim->cpu_limit * CPU_PERIOD_US / 1000 : -1;
		snprintf(val, sizeof(val), "%lld", (long long)(q >= 0 && q < 1000 ? 1000 : q));
		if ((e = knob(out->cpu, "cpu.cfs_quota_us", val, err, len)))
			goto fail;
		snprintf(val, sizeof(val), "%llu",
			 (unsigned long long)cpu_shares(lim->cpu_request));
		if ((e = knob(out->cpu, "cpu.shares", val, err, len)))
			goto fail;
	}
	if (out->mem) {
		snprintf(val, sizeof(val), "%lld",
			 (long long)(lim->mem_limit > 0 ? lim->mem_limit : -1));
		if ((e = knob(out->mem, "memory.limit_in_bytes", val, err, len)))
			goto fail;
	}
	return 0;
fail:
	rt_cg_remove(out);
	rt_cg_free(out);
	return e;
}

int rt_cg_remove(const struct rt_cg *cg)
{
	const char *dirs[3] = { cg->v2, cg->cpu, cg->mem };
	int err = 0;
	for (int i = 0; i < 3; i++) {
		if (dirs[i] && rmdir(dirs[i]) < 0 && errno != ENOENT && !err)
			err = -errno;
	}
	return err;
}

static int procs_signal(const char *dir, int sig)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	int pid, n = 0;
	while (fscanf(f, "%d", &pid) == 1) {
		if (pid > 0 && pid != getpid() && kill(pid, sig) == 0)
			n++;
	}
	fclose(f);
	return n;
}

void rt_cg_kill(const struct rt_cg *cg)
{
	char path[PATH_MAX];
	if (cg->v2) {
		snprintf(path, sizeof(path), "%s/cgroup.kill", cg->v2);
		if (rt_write_str(path, "1") == 0)
			return;
	}
	const char *dirs[3] = { cg->v2, cg->cpu, cg->mem };
	for (int i = 0; i < 3; i++)
		if (dirs[i])
			procs_signal(dirs[i], SIGKILL);
}

bool rt_cg_empty(const struct rt_cg *cg)
{
	char path[PATH_MAX];
	if (cg->v2) {
		snprintf(path, sizeof(path), "%s/cgroup.events", cg->v2);
		char *ev = rt_read_file(path, 4096, NULL);
		if (ev) {
			bool populated = strstr(ev, "populated 1") != NULL;
			free(ev);
			return !populated;
		}
	}
	const char *dirs[2] = { cg->cpu, cg->mem };
	for (int i = 0; i < 2; i++) {
		if (!dirs[i])
			continue;
		snprintf(path, sizeof(path), "%s/cgroup.procs", dirs[i]);
		char *procs = rt_read_file(path, 1 << 20, NULL);
		bool empty = !procs || !*procs;
		free(procs);
		if (!empty)
			return false;
	}
	return true;
}

/* "key value" lines: the value of key, or -1. */
static int64_t stat_key(const char *dir, const char *file, const char *key)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	char *s = rt_read_file(path, 1 << 16, NULL);
	if (!s)
		return -1;
	int64_t v = -1;
	size_t kl = strlen(key);
	for (char *line = s; line && *line;) {
		if (!strncmp(line, key, kl) && line[kl] == ' ') {
			v = strtoll(line + kl + 1, NULL, 10);
			break;
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	free(s);
	return v;
}

static int64_t read_num(const char *dir, const char *file)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	char *s = rt_read_file(path, 4096, NULL);
	if (!s)
		return -1;
	char *end;
	long long v = strtoll(s, &end, 10);
	bool ok = end != s;
	free(s);
	return ok ? v : -1;
}

int rt_cg_usage(const struct rt_cg *cg, uint64_t *cpu_usec, uint64_t *mem_bytes)
{
	int64_t cpu = -1, mem = -1;
	if (cg->v2)
		cpu = stat_key(cg->v2, "cpu.stat", "usage_usec");
	if (cpu < 0 && cg->cpu) {
		int64_t ns = read_num(cg->cpu, "cpuacct.usage");
		if (ns >= 0)
			cpu = ns / 1000;
	}
	if (cg->v2 && (mem = read_num(cg->v2, "memory.current")) >= 0) {
		int64_t inactive = stat_key(cg->v2, "memory.stat", "inactive_file");
		if (inactive > 0 && inactive < mem)
			mem -= inactive;
	} else if (cg->mem && (mem = read_num(cg->mem, "memory.usage_in_bytes")) >= 0) {
		int64_t inactive = stat_key(cg->mem, "memory.stat", "total_inactive_file");
		if (inactive > 0 && inactive < mem)
			mem -= inactive;
	}
	if (cpu < 0 && mem < 0)
		return -ENOENT;
	*cpu_usec = cpu > 0 ? (uint64_t)cpu : 0;
	*mem_bytes = mem > 0 ? (uint64_t)mem : 0;
	return 0;
}

uint64_t rt_cg_oom_kills(const struct rt_cg *cg)
{
	int64_t v = -1;
	if (cg->v2)
		v = stat_key(cg->v2, "memory.events", "oom_kill");
	if (v < 0 && cg->mem)
		v = stat_key(cg->mem, "memory.oom_control", "oom_kill");
	return v > 0 ? (uint64_t)v : 0;
}

void rt_cg_dirs(const struct rt_cg *cg, const char **out)
{
	int n = 0;
	if (cg->v2)
		out[n++] = cg->v2;
	if (cg->cpu)
		out[n++] = cg->cpu;
	if (cg->mem)
		out[n++] = cg->mem;
	out[n] = NULL;
}
