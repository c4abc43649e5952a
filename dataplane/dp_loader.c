// SPDX-License-Identifier: Apache-2.0
/*
 * Loading, adopting and attaching. The three skeletons (lb_xdp, lb_tc, lb_sock) share one set
 * of maps, pinned by name under /sys/fs/bpf/shoal/<node>/, and their programs are pinned
 * beside them (prog_<name>). shoal_meta records the ABI version and a hash of the program
 * build, its configuration and the map sizes, so that a restarted loader can tell what it
 * finds:
 *   same hash          adopt: open the pins, load nothing, attach nothing that is attached;
 *   maps compatible    load the new programs over the pinned maps, swap them in on attach;
 *   maps incompatible  move the directory aside, start afresh, carry the attachments over so
 *                      that the next attach swaps them in place, then drop the old pins.
 * Attachments outlive the loader: XDP and tc go through netlink, cgroup hooks through links
 * pinned beside the maps, and every attached interface is recorded in shoal_attach so that
 * dp_uninstall() finds it all again.
 *
 * The tc programs come in two builds in one object: the portable one, and a _kc one that
 * reads the skb through the bpf_cast_to_kern_ctx kfunc (Linux 6.2+). The kernel's BTF says
 * whether the kfunc is there; the other pair's autoload is turned off, so a kernel without it
 * never sees a call to it. Either pair is pinned under the role's name (prog_lb_tc_pod, ...).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "dp_internal.h"
#include "fsutil.h"
#include "lb_sock.skel.h"
#include "lb_tc.skel.h"
#include "lb_xdp.skel.h"
#include "log.h"

#define TC_HANDLE 0x5ea1
#define TC_PRIO	  1

static const char *const map_names[DP_MAP_N] = {
	[DP_MAP_SVC] = SHOAL_MAP_SVC,
	[DP_MAP_SLOT] = SHOAL_MAP_SLOT,
	[DP_MAP_BE] = SHOAL_MAP_BACKEND,
	[DP_MAP_MAGLEV] = SHOAL_MAP_MAGLEV,
	[DP_MAP_CT] = SHOAL_MAP_CT,
	[DP_MAP_REVNAT] = SHOAL_MAP_REVNAT,
	[DP_MAP_AFFIN] = SHOAL_MAP_AFFINITY,
	[DP_MAP_SVC_STATS] = SHOAL_MAP_SVC_STATS,
	[DP_MAP_BE_STATS] = SHOAL_MAP_BE_STATS,
	[DP_MAP_DROPS] = SHOAL_MAP_DROPS,
	[DP_MAP_SK] = SHOAL_MAP_SOCK,
	[DP_MAP_NAMES] = SHOAL_MAP_NAMES,
	[DP_MAP_ATTACH] = SHOAL_MAP_ATTACH,
	[DP_MAP_META] = SHOAL_MAP_META,
};

static const struct {
	const char *name;
	enum bpf_attach_type cg_type; /* socket hooks: where on the cgroup */
	const char *cg_tag;	      /* socket hooks: link pin suffix */
	const char *kc;		      /* tc: the variant that reads the skb through the kfunc */
} progs[DP_PROG_N] = {
	[DP_PROG_XDP] = { "lb_xdp" },
	[DP_PROG_TC_POD] = { "lb_tc_pod", .kc = "lb_tc_pod_kc" },
	[DP_PROG_TC_UPLINK] = { "lb_tc_uplink", .kc = "lb_tc_uplink_kc" },
	[DP_PROG_CONNECT4] = { "lb_connect4", BPF_CGROUP_INET4_CONNECT, "connect4" },
	[DP_PROG_SENDMSG4] = { "lb_sendmsg4", BPF_CGROUP_UDP4_SENDMSG, "sendmsg4" },
	[DP_PROG_RECVMSG4] = { "lb_recvmsg4", BPF_CGROUP_UDP4_RECVMSG, "recvmsg4" },
	[DP_PROG_GETPEERNAME4] = { "lb_getpeername4", BPF_CGROUP_INET4_GETPEERNAME,
				   "getpeername4" },
};

/* The three objects while dp_open() needs them (never after). */
struct skels {
	struct lb_xdp *xdp;
	struct lb_tc *tc;
	struct lb_sock *sock;
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
	if (!o->hairpin_addr)
		inet_pton(AF_INET, DP_HAIRPIN_DEFAULT, &o->hairpin_addr);
}

/* Sizes every map of an object (before load): the same in all three objects. */
static int size_maps(struct bpf_object *obj, const struct dp_opts *o)
{
	struct bpf_map *m;
	int err = 0;

	bpf_object__for_each_map(m, obj)
	{
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

/* What the programs need to turn jiffies into their clock (bpf/lib/ct.h). */
struct dp_clock {
	uint64_t ns_per_jiffy;
	uint64_t initial_jiffies;
};

/*
 * The coarse clocks' resolution is the kernel's tick (TICK_NSEC = 1 s / HZ, rounded), and
 * jiffies start at INITIAL_JIFFIES = (unsigned int)(-300 * HZ) (include/linux/jiffies.h).
 */
static int dp_clock_read(struct dp_clock *c)
{
	struct timespec res;
	uint64_t hz;

	if (clock_getres(CLOCK_MONOTONIC_COARSE, &res)) {
		int err = -errno;

		log_warn("dp: resolution of CLOCK_MONOTONIC_COARSE: %s", strerror(-err));
		return err;
	}
	c->ns_per_jiffy = (uint64_t)res.tv_sec * 1000000000ULL + (uint64_t)res.tv_nsec;
	if (c->ns_per_jiffy < 100000 || c->ns_per_jiffy > 100000000) {
		log_warn("dp: CLOCK_MONOTONIC_COARSE resolution %llu ns is no kernel tick",
			 (unsigned long long)c->ns_per_jiffy);
		return -ERANGE;
	}
	hz = (1000000000ULL + c->ns_per_jiffy / 2) / c->ns_per_jiffy;
	c->initial_jiffies = (uint64_t)(uint32_t)(-300 * (int64_t)hz);
	return 0;
}

#define SET_RODATA(skel, o, clk)                                                                   \
	do {                                                                                       \
		(skel)->rodata->node_addr = (o)->node_addr;                                        \
		(skel)->rodata->ns_per_jiffy = (clk)->ns_per_jiffy;                                \
		(skel)->rodata->initial_jiffies = (clk)->initial_jiffies;                          \
		(skel)->rodata->snat_port_min = (o)->snat_port_min;                                \
		(skel)->rodata->snat_port_max = (o)->snat_port_max;                                \
		(skel)->rodata->hairpin_addr = (o)->hairpin_addr;                                  \
	} while (0)

static int pin_path(char *buf, size_t len, const char *dir, const char *prefix, const char *name)
{
	if ((size_t)snprintf(buf, len, "%s/%s%s", dir, prefix, name) >= len)
		return -ENAMETOOLONG;
	return 0;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * 1099511628211ULL;
	return h;
}

/* The build and configuration of the programs, and the geometry of the maps they use. */
static uint64_t programs_hash(const struct dp_opts *o, bool kctx,
			      const struct bpf_object *maps_obj)
{
	uint64_t h = 1469598103934665603ULL;
	const void *elf;
	struct bpf_map *m;
	size_t sz;

	elf = lb_xdp__elf_bytes(&sz);
	h = fnv(h, elf, sz);
	elf = lb_tc__elf_bytes(&sz);
	h = fnv(h, elf, sz);
	elf = lb_sock__elf_bytes(&sz);
	h = fnv(h, elf, sz);
	h = fnv(h, &o->node_addr, sizeof(o->node_addr));
	h = fnv(h, &o->snat_port_min, sizeof(o->snat_port_min));
	h = fnv(h, &o->snat_port_max, sizeof(o->snat_port_max));
	h = fnv(h, &o->hairpin_addr, sizeof(o->hairpin_addr));
	h = fnv(h, &kctx, sizeof(kctx));
	bpf_object__for_each_map(m, maps_obj)
	{
		uint32_t g[5] = { bpf_map__type(m), bpf_map__key_size(m), bpf_map__value_size(m),
				  bpf_map__max_entries(m), bpf_map__map_flags(m) };

		h = fnv(h, bpf_map__name(m), strlen(bpf_map__name(m)));
		h = fnv(h, g, sizeof(g));
	}
	return h ? h : 1;
}

/* Whether a pinned map has the type and sizes the object asks for (what libbpf reuses). */
static bool map_compatible(int fd, const struct bpf_map *want, char *why, size_t len)
{
	struct bpf_map_info info = {};
	__u32 il = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &il)) {
		snprintf(why, len, "%s: %s", bpf_map__name(want), strerror(errno));
		return false;
	}
	if (info.type != bpf_map__type(want) || info.key_size != bpf_map__key_size(want) ||
	    info.value_size != bpf_map__value_size(want) ||
	    info.max_entries != bpf_map__max_entries(want) ||
	    info.map_flags != bpf_map__map_flags(want)) {
		snprintf(why, len,
			 "%s: pinned type %u key %u value %u entries %u flags 0x%x, "
			 "want %u %u %u %u 0x%x",
			 bpf_map__name(want), info.type, info.key_size, info.value_size,
			 info.max_entries, info.map_flags, bpf_map__type(want),
			 bpf_map__key_size(want), bpf_map__value_size(want),
			 bpf_map__max_entries(want), bpf_map__map_flags(want));
		return false;
	}
	return true;
}

enum pin_state { PINS_NONE, PINS_COMPATIBLE, PINS_INCOMPATIBLE };

/*
 * Opens what the pin directory holds into dp->map_fd[] and says whether it fits the maps of
 * obj (already sized); *meta gets the pinned record (zero when there is none).
 */
static enum pin_state pins_inspect(struct dp *dp, struct bpf_object *obj, struct shoal_meta *meta,
				   char *why, size_t len)
{
	char path[PATH_MAX];
	size_t present = 0;
	uint32_t zero = 0;

	memset(meta, 0, sizeof(*meta));
	for (int i = 0; i < DP_MAP_N; i++) {
		const struct bpf_map *want = bpf_object__find_map_by_name(obj, map_names[i]);

		if (!want || pin_path(path, sizeof(path), dp->dir, "", map_names[i]))
			continue;
		dp->map_fd[i] = bpf_obj_get(path);
		if (dp->map_fd[i] < 0) {
			dp->map_fd[i] = -1;
			continue;
		}
		present++;
		if (!map_compatible(dp->map_fd[i], want, why, len))
			return PINS_INCOMPATIBLE;
	}
	if (!present)
		return PINS_NONE;
	if (dp->map_fd[DP_MAP_META] >= 0 &&
	    !bpf_map_lookup_elem(dp->map_fd[DP_MAP_META], &zero, meta) && meta->abi_version &&
	    meta->abi_version != SHOAL_ABI_VERSION) {
		snprintf(why, len, "maps of ABI version %u, this loader has %u", meta->abi_version,
			 SHOAL_ABI_VERSION);
		return PINS_INCOMPATIBLE;
	}
	return PINS_COMPATIBLE;
}

static void fds_close(struct dp *dp)
{
	for (int i = 0; i < DP_MAP_N; i++) {
		if (dp->map_fd[i] >= 0)
			close(dp->map_fd[i]);
		dp->map_fd[i] = -1;
	}
	for (int i = 0; i < DP_PROG_N; i++) {
		if (dp->prog_fd[i] >= 0)
			close(dp->prog_fd[i]);
		dp->prog_fd[i] = -1;
	}
}

/* The pinned programs, when every one of them is there. */
static int progs_adopt(struct dp *dp)
{
	char path[PATH_MAX];
	int err;

	for (int i = 0; i < DP_PROG_N; i++) {
		err = pin_path(path, sizeof(path), dp->dir, "prog_", progs[i].name);
		if (err)
			return err;
		dp->prog_fd[i] = bpf_obj_get(path);
		if (dp->prog_fd[i] < 0) {
			err = dp->prog_fd[i];
			dp->prog_fd[i] = -1;
			for (int j = 0; j < i; j++) {
				close(dp->prog_fd[j]);
				dp->prog_fd[j] = -1;
			}
			return err;
		}
	}
	return 0;
}

/* The kfunc the _kc tc programs call: present in the kernel's BTF from Linux 6.2. */
#define DP_KFUNC_KCTX "bpf_cast_to_kern_ctx"

static bool kernel_has_kfunc(const char *name)
{
	struct btf *btf = btf__load_vmlinux_btf();
	bool has;

	if (!btf) {
		log_warn("dp: read the kernel's BTF: %s; tc programs without kfuncs",
			 strerror(errno));
		return false;
	}
	has = btf__find_by_name_kind(btf, name, BTF_KIND_FUNC) > 0;
	btf__free(btf);
	return has;
}

/* Turns off the autoload of the tc variants not chosen (dp->kctx). */
static int tc_variants_choose(struct dp *dp, struct bpf_object *tc)
{
	for (int i = 0; i < DP_PROG_N; i++) {
		const char *off = dp->kctx ? progs[i].name : progs[i].kc;
		struct bpf_program *p;
		int err;

		if (!progs[i].kc)
			continue;
		p = bpf_object__find_program_by_name(tc, off);
		if (!p) {
			log_warn("dp: program %s missing from lb_tc", off);
			return -ENOENT;
		}
		err = bpf_program__set_autoload(p, false);
		if (err) {
			log_warn("dp: autoload of %s: %s", off, strerror(-err));
			return err;
		}
	}
	return 0;
}

/* The object's name of the program that plays role i. */
static const char *prog_obj_name(const struct dp *dp, int i)
{
	return dp->kctx && progs[i].kc ? progs[i].kc : progs[i].name;
}

static struct bpf_program *skels_prog(struct skels *k, const char *name)
{
	struct bpf_object *objs[3] = { k->xdp->obj, k->tc->obj, k->sock->obj };

	for (int i = 0; i < 3; i++) {
		struct bpf_program *p = bpf_object__find_program_by_name(objs[i], name);

		if (p)
			return p;
	}
	return NULL;
}

/* Loads the three objects over the pinned maps (libbpf reuses or creates and pins them), pins
 * the programs and takes fds of everything. */
static int progs_load(struct dp *dp, struct skels *k, uint64_t hash)
{
	struct shoal_meta meta = { .abi_version = SHOAL_ABI_VERSION };
	char path[PATH_MAX];
	uint32_t zero = 0;
	int err;

	/* An interrupted load must not be adopted later: forget the old build first. */
	if (dp->map_fd[DP_MAP_META] >= 0 &&
	    bpf_map_update_elem(dp->map_fd[DP_MAP_META], &zero, &meta, BPF_ANY)) {
		err = -errno;
		log_warn("dp: reset %s/%s: %s", dp->dir, SHOAL_MAP_META, strerror(-err));
		return err;
	}
	err = lb_xdp__load(k->xdp);
	if (err) {
		log_warn("dp: load lb_xdp: %s", strerror(-err));
		return err;
	}
	err = lb_tc__load(k->tc);
	if (err) {
		log_warn("dp: load lb_tc: %s", strerror(-err));
		return err;
	}
	err = lb_sock__load(k->sock);
	if (err) {
		log_warn("dp: load lb_sock: %s", strerror(-err));
		return err;
	}
	for (int i = 0; i < DP_MAP_N; i++) {
		const struct bpf_map *m = bpf_object__find_map_by_name(k->xdp->obj, map_names[i]);

		if (dp->map_fd[i] >= 0)
			close(dp->map_fd[i]);
		dp->map_fd[i] = m ? dup(bpf_map__fd(m)) : -1;
		if (dp->map_fd[i] < 0) {
			err = m ? -errno : -ENOENT;
			log_warn("dp: map %s: %s", map_names[i], strerror(-err));
			return err;
		}
	}
	for (int i = 0; i < DP_PROG_N; i++) {
		struct bpf_program *p = skels_prog(k, prog_obj_name(dp, i));

		err = p ? pin_path(path, sizeof(path), dp->dir, "prog_", progs[i].name) : -ENOENT;
		if (err)
			return err;
		if (unlink(path) && errno != ENOENT) {
			err = -errno;
			log_warn("dp: remove %s: %s", path, strerror(-err));
			return err;
		}
		dp->prog_fd[i] = dup(bpf_program__fd(p));
		if (dp->prog_fd[i] < 0)
			return -errno;
		err = bpf_obj_pin(dp->prog_fd[i], path);
		if (err) {
			log_warn("dp: pin %s: %s", path, strerror(-err));
			return err;
		}
	}
	meta.programs = hash;
	if (bpf_map_update_elem(dp->map_fd[DP_MAP_META], &zero, &meta, BPF_ANY)) {
		err = -errno;
		log_warn("dp: write %s/%s: %s", dp->dir, SHOAL_MAP_META, strerror(-err));
		return err;
	}
	return 0;
}

/* Removes a directory's pins: links first (that detaches their cgroup hooks). */
static int dir_remove(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *de;
	int err = 0, e;
	DIR *d = opendir(dir);

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (pin_path(path, sizeof(path), dir, "", de->d_name))
			continue;
		e = unlink(path) ? -errno : 0;
		if (e && !err)
			err = e;
	}
	closedir(d);
	if (rmdir(dir) && errno != ENOENT && !err)
		err = -errno;
	return err;
}

/* ifindex -> ATTACH_* of an attach map, read whole. */
struct attach_rec {
	uint32_t ifindex, bits;
};

static int attach_read(int fd, struct attach_rec **out, size_t *n)
{
	uint32_t key, next, *prev = NULL, val;
	struct attach_rec *r = NULL, *t;
	size_t cap = 0;

	*out = NULL;
	*n = 0;
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &val))
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			t = realloc(r, cap * sizeof(*r));
			if (!t) {
				free(r);
				return -ENOMEM;
			}
			r = t;
		}
		r[(*n)++] = (struct attach_rec){ key, val };
	}
	*out = r;
	return 0;
}

/* XDP and tc wherever an attach map says (cgroup links go with their pins). */
static int attach_undo(const struct attach_rec *r, size_t n);

/*
 * Incompatible maps: the directory is moved aside (programs attached keep the maps they
 * use), its cgroup link pins and attach records come along into a fresh directory, so that
 * the next dp_attach_*() swaps the new programs in place. Falls back to removing everything.
 */
static int dir_replace(struct dp *dp, char *stale, size_t len, struct attach_rec **recs,
		       size_t *n_recs)
{
	char from[PATH_MAX], to[PATH_MAX];
	struct dirent *de;
	int err = 0;
	DIR *d;

	*recs = NULL;
	*n_recs = 0;
	stale[0] = '\0';
	if (dp->map_fd[DP_MAP_ATTACH] >= 0) {
		struct bpf_map_info info = {};
		__u32 il = sizeof(info);

		if (!bpf_obj_get_info_by_fd(dp->map_fd[DP_MAP_ATTACH], &info, &il) &&
		    info.key_size == 4 && info.value_size == 4)
			err = attach_read(dp->map_fd[DP_MAP_ATTACH], recs, n_recs);
		if (err)
			return err;
	}
	fds_close(dp);
	/* Upper case: no node's directory can be called that (bpffs forbids dots). */
	if ((size_t)snprintf(stale, len, "%s-OLD-%d", dp->dir, (int)getpid()) >= len)
		return -ENAMETOOLONG;
	if (rename(dp->dir, stale)) {
		err = -errno;
		log_warn("dp: move %s aside: %s; removing it instead (traffic stops until the new "
			 "programs are attached)",
			 dp->dir, strerror(-err));
		stale[0] = '\0';
		err = attach_undo(*recs, *n_recs);
		if (err)
			log_warn("dp: detach the old programs: %s", strerror(-err));
		free(*recs);
		*recs = NULL;
		*n_recs = 0;
		err = dir_remove(dp->dir);
		return err ? err : fs_mkdir_p(dp->dir, 0700);
	}
	err = fs_mkdir_p(dp->dir, 0700);
	if (err)
		return err;
	d = opendir(stale);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "link_", 5))
			continue;
		if (pin_path(from, sizeof(from), stale, "", de->d_name) ||
		    pin_path(to, sizeof(to), dp->dir, "", de->d_name))
			continue;
		if (rename(from, to)) {
			err = -errno;
			log_warn("dp: move %s: %s", from, strerror(-err));
			break;
		}
	}
	closedir(d);
	return err;
}

int dp_pin_dir(const char *pin_root, const char *node, char *buf, size_t len)
{
	size_t root;

	if (!pin_root)
		pin_root = DP_PIN_ROOT;
	root = strlen(pin_root);
	if ((size_t)snprintf(buf, len, "%s/%s", pin_root, node) >= len)
		return -ENAMETOOLONG;
	/* bpffs refuses names with dots, and node names are often FQDNs: dots become '_'. */
	for (char *c = buf + root + 1; *c; c++)
		if (*c == '.')
			*c = '_';
	return 0;
}

struct dp *dp_open(const struct dp_opts *opts)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo);
	char why[256] = "", stale[PATH_MAX] = "";
	struct attach_rec *recs = NULL;
	struct skels k = { 0 };
	struct dp_clock clk = { 0 };
	struct shoal_meta meta;
	enum pin_state st;
	size_t n_recs = 0;
	bool created = false;
	uint64_t hash;
	struct dp *dp;
	int err;

	if (!opts || !opts->node || !*opts->node || strchr(opts->node, '/') ||
	    !strcmp(opts->node, ".") || !strcmp(opts->node, "..")) {
		errno = EINVAL;
		return NULL;
	}
	dp = calloc(1, sizeof(*dp));
	if (!dp) {
		errno = ENOMEM;
		return NULL;
	}
	for (int i = 0; i < DP_MAP_N; i++)
		dp->map_fd[i] = -1;
	for (int i = 0; i < DP_PROG_N; i++)
		dp->prog_fd[i] = -1;
	dp->opts = *opts;
	opts_defaults(&dp->opts);
	if ((size_t)snprintf(dp->root, sizeof(dp->root), "%s", dp->opts.pin_root) >=
		    sizeof(dp->root) ||
	    dp_pin_dir(dp->root, dp->opts.node, dp->dir, sizeof(dp->dir))) {
		err = -ENAMETOOLONG;
		goto err;
	}
	created = access(dp->dir, F_OK) != 0;
	err = fs_mkdir_p(dp->dir, 0700);
	if (err) {
		log_warn("dp: create %s: %s", dp->dir, strerror(-err));
		goto err;
	}
	oo.pin_root_path = dp->dir;

	/* open -> set rodata / size maps; loaded only when the pins cannot be adopted */
	k.xdp = lb_xdp__open_opts(&oo);
	k.tc = lb_tc__open_opts(&oo);
	k.sock = lb_sock__open_opts(&oo);
	if (!k.xdp || !k.tc || !k.sock) {
		err = -errno;
		log_warn("dp: open programs: %s", strerror(-err));
		goto err;
	}
	err = dp_clock_read(&clk);
	if (err)
		goto err;
	SET_RODATA(k.xdp, &dp->opts, &clk);
	SET_RODATA(k.tc, &dp->opts, &clk);
	SET_RODATA(k.sock, &dp->opts, &clk);
	err = size_maps(k.xdp->obj, &dp->opts);
	if (!err)
		err = size_maps(k.tc->obj, &dp->opts);
	if (!err)
		err = size_maps(k.sock->obj, &dp->opts);
	if (err)
		goto err;
	dp->kctx = !dp->opts.no_kfuncs && kernel_has_kfunc(DP_KFUNC_KCTX);
	err = tc_variants_choose(dp, k.tc->obj);
	if (err)
		goto err;
	hash = programs_hash(&dp->opts, dp->kctx, k.xdp->obj);

	st = pins_inspect(dp, k.xdp->obj, &meta, why, sizeof(why));
	if (st == PINS_INCOMPATIBLE) {
		log_warn("dp: %s holds an incompatible data plane (%s): replacing it", dp->dir,
			 why);
		err = dir_replace(dp, stale, sizeof(stale), &recs, &n_recs);
		if (err) {
			log_warn("dp: replace %s: %s", dp->dir, strerror(-err));
			goto err;
		}
	}
	if (st == PINS_COMPATIBLE && meta.programs == hash && !progs_adopt(dp)) {
		dp->adopted = true;
		for (int i = 0; i < DP_MAP_N; i++) {
			if (dp->map_fd[i] < 0) {
				err = -ENOENT;
				log_warn("dp: %s/%s: missing", dp->dir, map_names[i]);
				goto err;
			}
		}
		log_info("dp: adopted the data plane pinned in %s", dp->dir);
	} else {
		for (int i = 0; i < DP_PROG_N; i++) {
			if (dp->prog_fd[i] >= 0)
				close(dp->prog_fd[i]);
			dp->prog_fd[i] = -1;
		}
		err = progs_load(dp, &k, hash);
		if (err)
			goto err;
		if (st == PINS_COMPATIBLE)
			log_info("dp: loaded new programs over the maps pinned in %s", dp->dir);
	}
	for (int i = 0; i < DP_PROG_N; i++) {
		struct bpf_prog_info info = {};
		__u32 il = sizeof(info);

		if (bpf_obj_get_info_by_fd(dp->prog_fd[i], &info, &il)) {
			err = -errno;
			goto err;
		}
		dp->prog_id[i] = info.id;
	}
	/* The old directory's attachments are ours to swap or remove now; then it goes. */
	for (size_t i = 0; i < n_recs; i++) {
		if (bpf_map_update_elem(dp->map_fd[DP_MAP_ATTACH], &recs[i].ifindex, &recs[i].bits,
					BPF_ANY)) {
			err = -errno;
			log_warn("dp: carry attachment of ifindex %u over: %s", recs[i].ifindex,
				 strerror(-err));
			goto err;
		}
	}
	if (stale[0]) {
		err = dir_remove(stale);
		if (err)
			log_warn("dp: remove %s: %s", stale, strerror(-err));
		stale[0] = '\0';
	}
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
	lb_sock__destroy(k.sock);
	lb_tc__destroy(k.tc);
	lb_xdp__destroy(k.xdp);
	free(recs);
	return dp;
err:
	lb_sock__destroy(k.sock);
	lb_tc__destroy(k.tc);
	lb_xdp__destroy(k.xdp);
	free(recs);
	if (created) {
		/* Leave no half-made pin directory behind. */
		int e = dir_remove(dp->dir);

		if (e)
			log_warn("dp: remove %s: %s", dp->dir, strerror(-e));
		if (rmdir(dp->root) && errno != ENOTEMPTY && errno != EEXIST)
			log_debug("dp: remove %s: %s", dp->root, strerror(errno));
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
	fds_close(dp);
	free(dp);
}

int dp_map_fd(struct dp *dp, const char *name)
{
	if (!dp || !name)
		return -EINVAL;
	for (int i = 0; i < DP_MAP_N; i++)
		if (!strcmp(map_names[i], name))
			return dp->map_fd[i];
	return -ENOENT;
}

int dp_prog_fd(struct dp *dp, const char *name)
{
	if (!dp || !name)
		return -EINVAL;
	for (int i = 0; i < DP_PROG_N; i++)
		if (!strcmp(progs[i].name, name))
			return dp->prog_fd[i];
	return -ENOENT;
}

bool dp_adopted(struct dp *dp)
{
	return dp && dp->adopted;
}

/* Records what is attached at ifindex; writes only when that changes. */
static int attach_note(struct dp *dp, int ifindex, uint32_t set, uint32_t clear)
{
	uint32_t key = (uint32_t)ifindex, old = 0, val;
	bool had;

	had = !bpf_map_lookup_elem(dp->map_fd[DP_MAP_ATTACH], &key, &old);
	if (!had && errno != ENOENT)
		return -errno;
	val = (old & ~clear) | set;
	if (had ? val == old : !val)
		return 0;
	dp->map_writes++;
	if (!val)
		return bpf_map_delete_elem(dp->map_fd[DP_MAP_ATTACH], &key) && errno != ENOENT
			       ? -errno
			       : 0;
	return bpf_map_update_elem(dp->map_fd[DP_MAP_ATTACH], &key, &val, BPF_ANY) ? -errno : 0;
}

int dp_attach_xdp(struct dp *dp, int ifindex, enum dp_xdp_mode mode)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	int fd, err = -EINVAL;
	uint32_t id;

	if (!dp || ifindex <= 0)
		return -EINVAL;
	fd = dp->prog_fd[DP_PROG_XDP];
	id = dp->prog_id[DP_PROG_XDP];
	if (!bpf_xdp_query(ifindex, 0, &q)) {
		/* Replacing an attached program must keep its mode. */
		if (mode == DP_XDP_AUTO && q.attach_mode == XDP_ATTACHED_SKB)
			mode = DP_XDP_GENERIC;
		else if (mode == DP_XDP_AUTO && q.attach_mode == XDP_ATTACHED_DRV)
			mode = DP_XDP_NATIVE;
		/* Ours already (a restart that adopted its programs): nothing to change. */
		if (q.attach_mode == XDP_ATTACHED_SKB && mode == DP_XDP_GENERIC &&
		    q.skb_prog_id == id)
			return attach_note(dp, ifindex, ATTACH_XDP | ATTACH_XDP_GENERIC, 0);
		if (q.attach_mode == XDP_ATTACHED_DRV && mode == DP_XDP_NATIVE &&
		    q.drv_prog_id == id)
			return attach_note(dp, ifindex, ATTACH_XDP, ATTACH_XDP_GENERIC);
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
	int err;

	if (!dp || ifindex <= 0)
		return -EINVAL;
	err = xdp_detach_any(ifindex);
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
	LIBBPF_OPTS(bpf_tc_opts, q, .handle = TC_HANDLE, .priority = TC_PRIO);
	enum dp_prog p = uplink ? DP_PROG_TC_UPLINK : DP_PROG_TC_POD;
	uint32_t set = uplink ? ATTACH_TC_UPLINK : ATTACH_TC_POD;
	uint32_t clear = uplink ? ATTACH_TC_POD : ATTACH_TC_UPLINK;
	int err;

	if (!dp || ifindex <= 0)
		return -EINVAL;
	/* Ours already (a restart that adopted its programs): nothing to change. */
	if (!bpf_tc_query(&hook, &q) && q.prog_id == dp->prog_id[p])
		return attach_note(dp, ifindex, set, clear);
	to.prog_fd = dp->prog_fd[p];
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
	return attach_note(dp, ifindex, set, clear);
}

static int tc_detach_any(int ifindex)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, to, .handle = TC_HANDLE, .priority = TC_PRIO);
	int err = bpf_tc_detach(&hook, &to);

	return err == -ENOENT || err == -ENODEV || err == -EINVAL ? 0 : err;
}

int dp_detach_tc(struct dp *dp, int ifindex)
{
	int err;

	if (!dp || ifindex <= 0)
		return -EINVAL;
	err = tc_detach_any(ifindex);
	if (err) {
		log_warn("detach tc from ifindex %d: %s", ifindex, strerror(-err));
		return err;
	}
	return attach_note(dp, ifindex, 0, ATTACH_TC_POD | ATTACH_TC_UPLINK);
}

static int attach_undo(const struct attach_rec *r, size_t n)
{
	int err = 0, e;

	for (size_t i = 0; i < n; i++) {
		if (r[i].bits & ATTACH_XDP) {
			e = xdp_detach_any((int)r[i].ifindex);
			if (e && e != -ENODEV && !err)
				err = e;
		}
		if (r[i].bits & (ATTACH_TC_POD | ATTACH_TC_UPLINK)) {
			e = tc_detach_any((int)r[i].ifindex);
			if (e && !err)
				err = e;
		}
	}
	return err;
}

static int cg_link_path(struct dp *dp, const char *cgroup_path, const char *tag, char *buf,
			size_t len)
{
	struct stat st;

	if (stat(cgroup_path, &st))
		return -errno;
	if ((size_t)snprintf(buf, len, "%s/link_cg_%llu_%s", dp->dir, (unsigned long long)st.st_ino,
			     tag) >= len)
		return -ENAMETOOLONG;
	return 0;
}

int dp_attach_cgroup(struct dp *dp, const char *cgroup_path)
{
	char pin[PATH_MAX];
	int cg, err = 0;

	if (!dp || !cgroup_path)
		return -EINVAL;
	cg = open(cgroup_path, O_RDONLY | O_DIRECTORY);
	if (cg < 0) {
		err = -errno;
		log_warn("open cgroup %s: %s", cgroup_path, strerror(-err));
		return err;
	}
	for (int i = 0; i < DP_PROG_N && !err; i++) {
		struct bpf_link_info li = {};
		__u32 il = sizeof(li);
		int lfd;

		if (!progs[i].cg_tag)
			continue;
		err = cg_link_path(dp, cgroup_path, progs[i].cg_tag, pin, sizeof(pin));
		if (err)
			break;
		lfd = access(pin, F_OK) ? -1 : bpf_obj_get(pin);
		if (lfd >= 0) {
			/* A previous run's link: ours already, or its program swapped in place. */
			if (bpf_obj_get_info_by_fd(lfd, &li, &il) || li.prog_id != dp->prog_id[i])
				err = bpf_link_update(lfd, dp->prog_fd[i], NULL);
			close(lfd);
			continue;
		}
		lfd = bpf_link_create(dp->prog_fd[i], cg, progs[i].cg_type, NULL);
		if (lfd < 0) {
			err = lfd;
			break;
		}
		err = bpf_obj_pin(lfd, pin);
		close(lfd);
	}
	close(cg);
	if (err)
		log_warn("attach socket hooks to %s: %s", cgroup_path, strerror(-err));
	return err;
}

/* Without its pin and its last fd, a link goes and its program is detached. */
static int cg_unlink_pin(const char *pin)
{
	if (unlink(pin) && errno != ENOENT)
		return -errno;
	return 0;
}

int dp_detach_cgroup(struct dp *dp, const char *cgroup_path)
{
	char pin[PATH_MAX];
	int err = 0, e;

	if (!dp || !cgroup_path)
		return -EINVAL;
	for (int i = 0; i < DP_PROG_N; i++) {
		if (!progs[i].cg_tag)
			continue;
		e = cg_link_path(dp, cgroup_path, progs[i].cg_tag, pin, sizeof(pin));
		if (!e)
			e = cg_unlink_pin(pin);
		if (e && !err)
			err = e;
	}
	return err;
}

int dp_uninstall(struct dp *dp)
{
	struct attach_rec *recs = NULL;
	size_t n = 0;
	int err, e;

	if (!dp)
		return -EINVAL;
	err = attach_read(dp->map_fd[DP_MAP_ATTACH], &recs, &n);
	if (!err)
		err = attach_undo(recs, n);
	free(recs);
	e = dir_remove(dp->dir);
	if (e && !err)
		err = e;
	/* The root goes too when no other node uses it. */
	if (rmdir(dp->root) && errno != ENOTEMPTY && errno != EEXIST && errno != ENOENT)
		log_debug("remove %s: %s", dp->root, strerror(errno));
	if (err)
		log_warn("dp: uninstall %s: %s", dp->dir, strerror(-err));
	return err;
}
