// SPDX-License-Identifier: Apache-2.0
/*
 * Loading and attaching: the three skeletons (lb_xdp, lb_tc, lb_sock) share one set of maps,
 * pinned by name under /sys/fs/bpf/shoal/<node>/; the first object loaded creates them and the
 * others (and every later run) reuse them. Attachments outlive the loader: XDP and tc go
 * through netlink, cgroup hooks through links pinned beside the maps, and every attached
 * interface is recorded in shoal_attach so that dp_uninstall() finds it all again.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "dp_internal.h"
#include "log.h"
#include "lb_sock.skel.h"
#include "lb_tc.skel.h"
#include "lb_xdp.skel.h"

#define TC_HANDLE 0x5ea1
#define TC_PRIO 1

static const struct {
	enum bpf_attach_type type;
	const char *prog;
	const char *tag;
} cg_hooks[] = {
	{ BPF_CGROUP_INET4_CONNECT, "lb_connect4", "connect4" },
	{ BPF_CGROUP_UDP4_SENDMSG, "lb_sendmsg4", "sendmsg4" },
	{ BPF_CGROUP_UDP4_RECVMSG, "lb_recvmsg4", "recvmsg4" },
	{ BPF_CGROUP_INET4_GETPEERNAME, "lb_getpeername4", "getpeername4" },
};

static void opts_defaults(struct dp_opts *o)
{
	if (!o->pin_root)
		o->pin_root = DP_PIN_ROOT;
	if (!o->max_services)
		o->max_services = 10000;
	if (!o->max_frontends)
		o->max_frontends = 4 * o->max_services;
	if (!o->max_backends)
		o->max_backends = 100000;
	if (!o->max_flows)
		o->max_flows = 1000000;
	if (!o->max_maglev_services)
		o->max_maglev_services = 1024;
	if (!o->maglev_size)
		o->maglev_size = DP_MAGLEV_DEFAULT;
	if (!o->snat_port_min)
		o->snat_port_min = 61000;
	if (!o->snat_port_max)
		o->snat_port_max = 65535;
}

/* Sizes every map of an object (before load): the same in all three objects. */
static int size_maps(struct bpf_object *obj, const struct dp_opts *o)
{
	struct bpf_map *m;
	int err = 0;

	bpf_object__for_each_map(m, obj) {
		const char *n = bpf_map__name(m);
		uint32_t sz = 0;

		if (!strcmp(n, SHOAL_MAP_SVC))
			sz = o->max_frontends;
		else if (!strcmp(n, SHOAL_MAP_SLOT))
			sz = 2 * o->max_backends + 2 * o->max_services;
		else if (!strcmp(n, SHOAL_MAP_BACKEND) || !strcmp(n, SHOAL_MAP_BE_STATS))
			sz = o->max_backends + 1;
		else if (!strcmp(n, SHOAL_MAP_MAGLEV))
			sz = o->max_maglev_services;
		else if (!strcmp(n, SHOAL_MAP_CT))
			sz = 2 * o->max_flows;
		else if (!strcmp(n, SHOAL_MAP_REVNAT) || !strcmp(n, SHOAL_MAP_SVC_STATS) ||
			 !strcmp(n, SHOAL_MAP_NAMES))
			sz = o->max_services + 1;
		else if (!strcmp(n, SHOAL_MAP_AFFINITY) || !strcmp(n, SHOAL_MAP_SOCK))
			sz = o->max_flows / 4 + 1024;
		if (sz)
			err = bpf_map__set_max_entries(m, sz);
		if (err)
			return err;
	}
	return 0;
}

#define SET_RODATA(skel, o)                                                                        \
	do {                                                                                       \
		(skel)->rodata->node_addr = (o)->node_addr;                                        \
		(skel)->rodata->snat_port_min = (o)->snat_port_min;                                \
		(skel)->rodata->snat_port_max = (o)->snat_port_max;                                \
	} while (0)

static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

static int find_fd(struct bpf_object *obj, const char *name)
{
	struct bpf_map *m = bpf_object__find_map_by_name(obj, name);

	return m ? bpf_map__fd(m) : -ENOENT;
}

struct dp *dp_open(const struct dp_opts *opts)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo);
	bool created = false;
	struct dp *dp;
	int err;

	if (!opts || !opts->node || !*opts->node || strchr(opts->node, '/')) {
		errno = EINVAL;
		return NULL;
	}
	dp = calloc(1, sizeof(*dp));
	if (!dp) {
		errno = ENOMEM;
		return NULL;
	}
	dp->opts = *opts;
	opts_defaults(&dp->opts);
	if ((size_t)snprintf(dp->root, sizeof(dp->root), "%s", dp->opts.pin_root) >=
		    sizeof(dp->root) ||
	    (size_t)snprintf(dp->dir, sizeof(dp->dir), "%s/%s", dp->root, dp->opts.node) >=
		    sizeof(dp->dir)) {
		err = -ENAMETOOLONG;
		goto err;
	}
	created = access(dp->dir, F_OK) != 0;
	err = mkdir_p(dp->dir);
	if (err) {
		log_warn("dp: create %s: %s", dp->dir, strerror(-err));
		goto err;
	}
	oo.pin_root_path = dp->dir;

	/* open -> set rodata / size maps -> load; the maps are filled and attached later */
	dp->xdp = lb_xdp__open_opts(&oo);
	dp->tc = lb_tc__open_opts(&oo);
	dp->sock = lb_sock__open_opts(&oo);
	if (!dp->xdp || !dp->tc || !dp->sock) {
		err = -errno;
		log_warn("dp: open programs: %s", strerror(-err));
		goto err;
	}
	SET_RODATA(dp->xdp, &dp->opts);
	SET_RODATA(dp->tc, &dp->opts);
	SET_RODATA(dp->sock, &dp->opts);
	err = size_maps(dp->xdp->obj, &dp->opts);
	if (!err)
		err = size_maps(dp->tc->obj, &dp->opts);
	if (!err)
		err = size_maps(dp->sock->obj, &dp->opts);
	if (err)
		goto err;
	err = lb_xdp__load(dp->xdp);
	if (err) {
		log_warn("dp: load lb_xdp: %s", strerror(-err));
		goto err;
	}
	err = lb_tc__load(dp->tc);
	if (err) {
		log_warn("dp: load lb_tc: %s", strerror(-err));
		goto err;
	}
	err = lb_sock__load(dp->sock);
	if (err) {
		log_warn("dp: load lb_sock: %s", strerror(-err));
		goto err;
	}

	dp->fd_svc = find_fd(dp->xdp->obj, SHOAL_MAP_SVC);
	dp->fd_slot = find_fd(dp->xdp->obj, SHOAL_MAP_SLOT);
	dp->fd_be = find_fd(dp->xdp->obj, SHOAL_MAP_BACKEND);
	dp->fd_maglev = find_fd(dp->xdp->obj, SHOAL_MAP_MAGLEV);
	dp->fd_ct = find_fd(dp->xdp->obj, SHOAL_MAP_CT);
	dp->fd_revnat = find_fd(dp->xdp->obj, SHOAL_MAP_REVNAT);
	dp->fd_affin = find_fd(dp->xdp->obj, SHOAL_MAP_AFFINITY);
	dp->fd_svc_stats = find_fd(dp->xdp->obj, SHOAL_MAP_SVC_STATS);
	dp->fd_be_stats = find_fd(dp->xdp->obj, SHOAL_MAP_BE_STATS);
	dp->fd_drops = find_fd(dp->xdp->obj, SHOAL_MAP_DROPS);
	dp->fd_sk = find_fd(dp->xdp->obj, SHOAL_MAP_SOCK);
	dp->fd_names = find_fd(dp->xdp->obj, SHOAL_MAP_NAMES);
	dp->fd_attach = find_fd(dp->xdp->obj, SHOAL_MAP_ATTACH);
	dp->ncpus = libbpf_num_possible_cpus();
	if (dp->ncpus <= 0) {
		err = dp->ncpus ? dp->ncpus : -EINVAL;
		goto err;
	}
	err = dp_state_load(dp);
	if (err) {
		log_warn("dp: read pinned state in %s: %s", dp->dir, strerror(-err));
		goto err;
	}
	return dp;
err:
	if (created) {
		/* Leave no half-made pin directory behind. */
		DIR *d = opendir(dp->dir);
		struct dirent *de;
		char path[PATH_MAX];

		while (d && (de = readdir(d)))
			if (de->d_name[0] != '.' &&
			    (size_t)snprintf(path, sizeof(path), "%s/%s", dp->dir, de->d_name) <
				    sizeof(path))
				unlink(path);
		if (d)
			closedir(d);
		rmdir(dp->dir);
		rmdir(dp->root);
	}
	dp_close(dp);
	errno = -err;
	return NULL;
}

void dp_close(struct dp *dp)
{
	if (!dp)
		return;
	dp_state_free(dp);
	lb_sock__destroy(dp->sock);
	lb_tc__destroy(dp->tc);
	lb_xdp__destroy(dp->xdp);
	free(dp);
}

int dp_map_fd(struct dp *dp, const char *name)
{
	return dp ? find_fd(dp->xdp->obj, name) : -EINVAL;
}

int dp_prog_fd(struct dp *dp, const char *name)
{
	struct bpf_object *objs[3];
	struct bpf_program *p;

	if (!dp || !name)
		return -EINVAL;
	objs[0] = dp->xdp->obj;
	objs[1] = dp->tc->obj;
	objs[2] = dp->sock->obj;
	for (int i = 0; i < 3; i++) {
		p = bpf_object__find_program_by_name(objs[i], name);
		if (p)
			return bpf_program__fd(p);
	}
	return -ENOENT;
}

static int attach_note(struct dp *dp, int ifindex, uint32_t set, uint32_t clear)
{
	uint32_t key = (uint32_t)ifindex, val = 0;

	if (bpf_map_lookup_elem(dp->fd_attach, &key, &val) && errno != ENOENT)
		return -errno;
	val = (val & ~clear) | set;
	if (!val)
		return bpf_map_delete_elem(dp->fd_attach, &key) && errno != ENOENT ? -errno : 0;
	return bpf_map_update_elem(dp->fd_attach, &key, &val, BPF_ANY) ? -errno : 0;
}

int dp_attach_xdp(struct dp *dp, int ifindex, enum dp_xdp_mode mode)
{
	int fd = bpf_program__fd(dp->xdp->progs.lb_xdp);
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	int err = -EINVAL;

	if (ifindex <= 0)
		return -EINVAL;
	/* Replacing an attached program must keep its mode. */
	if (mode == DP_XDP_AUTO && !bpf_xdp_query(ifindex, 0, &q)) {
		if (q.attach_mode == XDP_ATTACHED_SKB)
			mode = DP_XDP_GENERIC;
		else if (q.attach_mode == XDP_ATTACHED_DRV)
			mode = DP_XDP_NATIVE;
	}
	if (mode != DP_XDP_GENERIC) {
		err = bpf_xdp_attach(ifindex, fd, XDP_FLAGS_DRV_MODE, NULL);
		if (!err) {
			log_info("attached xdp to ifindex %d (native)", ifindex);
			return attach_note(dp, ifindex, ATTACH_XDP, ATTACH_XDP_GENERIC);
		}
		if (mode == DP_XDP_NATIVE) {
			log_warn("attach xdp to ifindex %d: %s", ifindex, strerror(-err));
			return err;
		}
		log_info("attach xdp to ifindex %d natively: %s; using generic mode", ifindex,
			 strerror(-err));
	}
	err = bpf_xdp_attach(ifindex, fd, XDP_FLAGS_SKB_MODE, NULL);
	if (err) {
		log_warn("attach xdp to ifindex %d: %s", ifindex, strerror(-err));
		return err;
	}
	log_info("attached xdp to ifindex %d (generic)", ifindex);
	return attach_note(dp, ifindex, ATTACH_XDP | ATTACH_XDP_GENERIC, 0);
}

static int xdp_detach_any(int ifindex)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	uint32_t flags = 0;
	int err;

	err = bpf_xdp_query(ifindex, 0, &q);
	if (err)
		return err;
	if (q.attach_mode == XDP_ATTACHED_NONE)
		return 0;
	if (q.attach_mode == XDP_ATTACHED_SKB)
		flags = XDP_FLAGS_SKB_MODE;
	else if (q.attach_mode == XDP_ATTACHED_DRV)
		flags = XDP_FLAGS_DRV_MODE;
	return bpf_xdp_detach(ifindex, flags, NULL);
}

int dp_detach_xdp(struct dp *dp, int ifindex)
{
	int err = xdp_detach_any(ifindex);

	if (err && err != -ENODEV) {
		log_warn("detach xdp from ifindex %d: %s", ifindex, strerror(-err));
		return err;
	}
	return attach_note(dp, ifindex, 0, ATTACH_XDP | ATTACH_XDP_GENERIC);
}

int dp_attach_tc(struct dp *dp, int ifindex, bool uplink)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, to, .handle = TC_HANDLE, .priority = TC_PRIO,
		    .flags = BPF_TC_F_REPLACE);
	struct bpf_program *prog = uplink ? dp->tc->progs.lb_tc_uplink : dp->tc->progs.lb_tc_pod;
	int err;

	if (ifindex <= 0)
		return -EINVAL;
	to.prog_fd = bpf_program__fd(prog);
	/* Replace in place where clsact is there already (a restart); else create it first. */
	err = bpf_tc_attach(&hook, &to);
	if (err) {
		err = bpf_tc_hook_create(&hook);
		if (err && err != -EEXIST) {
			log_warn("create clsact on ifindex %d: %s", ifindex, strerror(-err));
			return err;
		}
		to.prog_id = 0;
		err = bpf_tc_attach(&hook, &to);
	}
	if (err) {
		log_warn("attach tc to ifindex %d: %s", ifindex, strerror(-err));
		return err;
	}
	return attach_note(dp, ifindex, uplink ? ATTACH_TC_UPLINK : ATTACH_TC_POD,
			   uplink ? ATTACH_TC_POD : ATTACH_TC_UPLINK);
}

int dp_detach_tc(struct dp *dp, int ifindex)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, to, .handle = TC_HANDLE, .priority = TC_PRIO);
	int err = bpf_tc_detach(&hook, &to);

	if (err && err != -ENOENT && err != -ENODEV && err != -EINVAL) {
		log_warn("detach tc from ifindex %d: %s", ifindex, strerror(-err));
		return err;
	}
	return attach_note(dp, ifindex, 0, ATTACH_TC_POD | ATTACH_TC_UPLINK);
}

static int cg_link_path(struct dp *dp, const char *cgroup_path, const char *tag, char *buf,
			size_t len)
{
	struct stat st;

	if (stat(cgroup_path, &st))
		return -errno;
	if ((size_t)snprintf(buf, len, "%s/link_cg_%llu_%s", dp->dir,
			     (unsigned long long)st.st_ino, tag) >= len)
		return -ENAMETOOLONG;
	return 0;
}

int dp_attach_cgroup(struct dp *dp, const char *cgroup_path)
{
	char pin[PATH_MAX];
	int cg, err = 0;

	cg = open(cgroup_path, O_RDONLY | O_DIRECTORY);
	if (cg < 0) {
		err = -errno;
		log_warn("open cgroup %s: %s", cgroup_path, strerror(-err));
		return err;
	}
	for (size_t i = 0; i < sizeof(cg_hooks) / sizeof(cg_hooks[0]) && !err; i++) {
		struct bpf_program *prog =
			bpf_object__find_program_by_name(dp->sock->obj, cg_hooks[i].prog);
		struct bpf_link *link;

		err = cg_link_path(dp, cgroup_path, cg_hooks[i].tag, pin, sizeof(pin));
		if (err)
			break;
		link = access(pin, F_OK) ? NULL : bpf_link__open(pin);
		if (link) {
			/* A previous run's link: swap its program in place, no gap. */
			err = bpf_link__update_program(link, prog);
			bpf_link__disconnect(link);
			bpf_link__destroy(link);
			continue;
		}
		link = bpf_program__attach_cgroup(prog, cg);
		if (!link) {
			err = -errno;
			break;
		}
		err = bpf_link__pin(link, pin);
		bpf_link__disconnect(link);
		bpf_link__destroy(link);
	}
	close(cg);
	if (err)
		log_warn("attach socket hooks to %s: %s", cgroup_path, strerror(-err));
	return err;
}

static int cg_unlink_pin(const char *pin)
{
	struct bpf_link *link;
	int err;

	if (access(pin, F_OK))
		return 0;
	link = bpf_link__open(pin);
	if (!link)
		return -errno;
	/* Without its pin and its last fd, the link goes and the program is detached. */
	err = bpf_link__unpin(link);
	bpf_link__destroy(link);
	return err;
}

int dp_detach_cgroup(struct dp *dp, const char *cgroup_path)
{
	char pin[PATH_MAX];
	int err = 0, e;

	for (size_t i = 0; i < sizeof(cg_hooks) / sizeof(cg_hooks[0]); i++) {
		e = cg_link_path(dp, cgroup_path, cg_hooks[i].tag, pin, sizeof(pin));
		if (!e)
			e = cg_unlink_pin(pin);
		if (e && !err)
			err = e;
	}
	return err;
}

int dp_uninstall(struct dp *dp)
{
	uint32_t key, next, *prev = NULL, val;
	char path[PATH_MAX];
	struct dirent *de;
	int err = 0, e;
	DIR *d;

	if (!dp)
		return -EINVAL;
	while (!bpf_map_get_next_key(dp->fd_attach, prev, &next)) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(dp->fd_attach, &key, &val))
			continue;
		if (val & ATTACH_XDP) {
			e = xdp_detach_any((int)key);
			if (e && e != -ENODEV && !err)
				err = e;
		}
		if (val & (ATTACH_TC_POD | ATTACH_TC_UPLINK)) {
			LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = (int)key,
				    .attach_point = BPF_TC_INGRESS);
			LIBBPF_OPTS(bpf_tc_opts, to, .handle = TC_HANDLE, .priority = TC_PRIO);

			e = bpf_tc_detach(&hook, &to);
			if (e && e != -ENOENT && e != -ENODEV && e != -EINVAL && !err)
				err = e;
		}
	}
	d = opendir(dp->dir);
	if (d) {
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", dp->dir, de->d_name);
			if (!strncmp(de->d_name, "link_", 5))
				e = cg_unlink_pin(path);
			else
				e = unlink(path) ? -errno : 0;
			if (e && !err)
				err = e;
		}
		closedir(d);
	}
	if (rmdir(dp->dir) && errno != ENOENT && !err)
		err = -errno;
	/* The root goes too when no other node uses it. */
	if (rmdir(dp->root) && errno != ENOTEMPTY && errno != EEXIST && errno != ENOENT)
		log_debug("remove %s: %s", dp->root, strerror(errno));
	if (err)
		log_warn("dp: uninstall %s: %s", dp->dir, strerror(-err));
	return err;
}
