// SPDX-License-Identifier: Apache-2.0
/*
 * shoal-agent's configuration: command-line options and a JSON config file with the same
 * names (`{"server": "unix:/run/shoal/shoald.sock", "node": "n1", "labels": {"rack": "r1"},
 * "taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}], "capacity": {"pods": 50}}`).
 *
 * The design choice: one setter per option takes the option's text, so the command line and
 * the file are parsed by the same code and a file value means exactly what the flag means
 * (JSON objects and arrays for labels, taints and capacity are turned into the flag's text
 * first). The file is applied first, the command line over it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "labels.h"
#include "quantity.h"
#include "strbuf.h"

#define DEFAULT_STATE_DIR   "/var/lib/shoal/agent"
#define DEFAULT_CGROUP_ROOT "/sys/fs/cgroup/shoal-pods"
#define DEFAULT_SERVER	    "unix:/run/shoal/shoald.sock"

static int cfg_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int cfg_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

void agent_config_init(struct agent_config *c)
{
	memset(c, 0, sizeof(*c));
	c->proxy = DPSYNC_BPF;
	c->lease_duration_s = 40;
	c->lease_renew_s = 10;
	c->status_interval_s = 10;
	c->usage_min_write_s = 60;
	c->eviction_memory = 0.95;
	c->eviction_grace_s = 10;
	c->workers = 2;
}

void agent_config_free(struct agent_config *c)
{
	if (!c)
		return;
	char **strs[] = { &c->server,	 &c->token_file, &c->token,	  &c->ca_file,
			  &c->node,	 &c->netns,	 &c->uplink,	  &c->node_ip,
			  &c->pod_cidr,	 &c->zone,	 &c->cgroup_root, &c->state_dir,
			  &c->listen,	 &c->advertise,	 &c->batch_class, &c->log_level,
			  &c->shim_path, &c->xdp_mode,	 &c->bpf_root };
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		free(*strs[i]);
		*strs[i] = NULL;
	}
	json_decref(c->labels);
	c->labels = NULL;
	for (size_t i = 0; i < c->ntaints; i++) {
		free(c->taints[i].key);
		free(c->taints[i].value);
		free(c->taints[i].effect);
	}
	free(c->taints);
	c->taints = NULL;
	c->ntaints = 0;
}

static int set_str(char **dst, const char *v)
{
	char *s = strdup(v);
	if (!s)
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

/* "k=v,k2=v2" (values may be empty) into a JSON object, keys and values checked as label
 * keys and values. */
int agent_parse_labels(const char *s, json_t **out, char *err, size_t errlen)
{
	json_t *obj = json_object();
	char *copy = strdup(s), *save = NULL, *item;
	const char *why;
	int ret = 0;

	if (!obj || !copy) {
		ret = -ENOMEM;
		goto out;
	}
	for (item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		if (!eq) {
			ret = cfg_err(err, errlen, "labels: \"%s\" is not key=value", item);
			goto out;
		}
		*eq = '\0';
		if ((why = label_key_invalid(item))) {
			ret = cfg_err(err, errlen, "labels: key \"%s\": %s", item, why);
			goto out;
		}
		if ((why = label_value_invalid(eq + 1))) {
			ret = cfg_err(err, errlen, "labels: value \"%s\" of %s: %s", eq + 1, item,
				      why);
			goto out;
		}
		if (json_object_set_new(obj, item, json_string(eq + 1))) {
			ret = -ENOMEM;
			goto out;
		}
	}
	*out = obj;
	obj = NULL;
out:
	json_decref(obj);
	free(copy);
	return ret;
}

/* "key=value:Effect,key:Effect" into taints. */
int agent_parse_taints(const char *s, struct agent_taint **out, size_t *n, char *err, size_t errlen)
{
	static const char *const effects[] = { "NoSchedule", "PreferNoSchedule", "NoExecute" };
	struct agent_taint *t = NULL;
	size_t nt = 0;
	char *copy = strdup(s), *save = NULL, *item;
	const char *why;
	int ret = 0;

	if (!copy)
		return -ENOMEM;
	for (item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *colon = strrchr(item, ':'), *eq;
		bool known = false;
		if (!colon) {
			ret = cfg_err(err, errlen, "taints: \"%s\" is not key[=value]:Effect",
				      item);
			goto out;
		}
		*colon = '\0';
		for (size_t i = 0; i < 3; i++)
			known |= strcmp(colon + 1, effects[i]) == 0;
		if (!known) {
			ret = cfg_err(err, errlen,
				      "taints: effect \"%s\" of %s: want NoSchedule, "
				      "PreferNoSchedule or NoExecute",
				      colon + 1, item);
			goto out;
		}
		eq = strchr(item, '=');
		if (eq)
			*eq = '\0';
		if ((why = label_key_invalid(item))) {
			ret = cfg_err(err, errlen, "taints: key \"%s\": %s", item, why);
			goto out;
		}
		if (eq && (why = label_value_invalid(eq + 1))) {
			ret = cfg_err(err, errlen, "taints: value \"%s\" of %s: %s", eq + 1, item,
				      why);
			goto out;
		}
		struct agent_taint *nt2 = realloc(t, (nt + 1) * sizeof(*t));
		if (!nt2) {
			ret = -ENOMEM;
			goto out;
		}
		t = nt2;
		t[nt].key = strdup(item);
		t[nt].value = strdup(eq ? eq + 1 : "");
		t[nt].effect = strdup(colon + 1);
		nt++;
		if (!t[nt - 1].key || !t[nt - 1].value || !t[nt - 1].effect) {
			ret = -ENOMEM;
			goto out;
		}
	}
out:
	free(copy);
	if (ret) {
		for (size_t i = 0; i < nt; i++) {
			free(t[i].key);
			free(t[i].value);
			free(t[i].effect);
		}
		free(t);
		return ret;
	}
	*out = t;
	*n = nt;
	return 0;
}

/* "cpu=4,memory=8Gi,pods=110" (any subset). */
int agent_parse_capacity(const char *s, struct agent_config *c, char *err, size_t errlen)
{
	char *copy = strdup(s), *save = NULL, *item;
	int ret = 0;

	if (!copy)
		return -ENOMEM;
	for (item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		int64_t m;
		if (!eq) {
			ret = cfg_err(err, errlen, "capacity: \"%s\" is not resource=quantity",
				      item);
			goto out;
		}
		*eq = '\0';
		if (quantity_parse_milli(eq + 1, &m) || m <= 0) {
			ret = cfg_err(err, errlen,
				      "capacity: %s: \"%s\" is not a positive quantity", item,
				      eq + 1);
			goto out;
		}
		if (strcmp(item, "cpu") == 0) {
			c->cap_cpu_milli = m;
		} else if (strcmp(item, "memory") == 0) {
			c->cap_memory = quantity_milli_to_units(m);
		} else if (strcmp(item, "pods") == 0) {
			c->cap_pods = quantity_milli_to_units(m);
		} else {
			ret = cfg_err(err, errlen,
				      "capacity: unknown resource \"%s\" (cpu, memory, pods)",
				      item);
			goto out;
		}
	}
out:
	free(copy);
	return ret;
}

static int parse_int(const char *name, const char *v, long min, long max, int *out, char *err,
		     size_t errlen)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || end == v || (*end && strcmp(end, "s") != 0) || n < min || n > max)
		return cfg_err(err, errlen, "%s: want an integer in %ld..%ld, got \"%s\"", name,
			       min, max, v);
	*out = (int)n;
	return 0;
}

enum opt_id {
	O_CONFIG = 256,
	O_SERVER,
	O_TOKEN_FILE,
	O_CA,
	O_INSECURE,
	O_NODE,
	O_NETNS,
	O_UPLINK,
	O_NODE_IP,
	O_POD_CIDR,
	O_ZONE,
	O_LABELS,
	O_TAINTS,
	O_CAPACITY,
	O_CGROUP_ROOT,
	O_STATE_DIR,
	O_PROXY,
	O_LISTEN,
	O_ADVERTISE,
	O_LEASE_DURATION,
	O_LEASE_RENEW,
	O_STATUS_INTERVAL,
	O_USAGE_MIN_WRITE,
	O_EVICTION_MEMORY,
	O_EVICTION_GRACE,
	O_BATCH_CLASS,
	O_WORKERS,
	O_LOG_LEVEL,
	O_SHIM,
	O_XDP_MODE,
	O_BPF_ROOT,
	O_HELP,
};

static const struct option long_opts[] = {
	{ "config", required_argument, NULL, O_CONFIG },
	{ "server", required_argument, NULL, O_SERVER },
	{ "token-file", required_argument, NULL, O_TOKEN_FILE },
	{ "certificate-authority", required_argument, NULL, O_CA },
	{ "insecure-skip-tls-verify", no_argument, NULL, O_INSECURE },
	{ "node", required_argument, NULL, O_NODE },
	{ "netns", required_argument, NULL, O_NETNS },
	{ "uplink", required_argument, NULL, O_UPLINK },
	{ "node-ip", required_argument, NULL, O_NODE_IP },
	{ "pod-cidr", required_argument, NULL, O_POD_CIDR },
	{ "zone", required_argument, NULL, O_ZONE },
	{ "labels", required_argument, NULL, O_LABELS },
	{ "taints", required_argument, NULL, O_TAINTS },
	{ "capacity", required_argument, NULL, O_CAPACITY },
	{ "cgroup-root", required_argument, NULL, O_CGROUP_ROOT },
	{ "state-dir", required_argument, NULL, O_STATE_DIR },
	{ "proxy", required_argument, NULL, O_PROXY },
	{ "listen", required_argument, NULL, O_LISTEN },
	{ "advertise-endpoint", required_argument, NULL, O_ADVERTISE },
	{ "lease-duration", required_argument, NULL, O_LEASE_DURATION },
	{ "lease-renew-interval", required_argument, NULL, O_LEASE_RENEW },
	{ "status-interval", required_argument, NULL, O_STATUS_INTERVAL },
	{ "usage-min-write-interval", required_argument, NULL, O_USAGE_MIN_WRITE },
	{ "eviction-memory-threshold", required_argument, NULL, O_EVICTION_MEMORY },
	{ "eviction-max-grace", required_argument, NULL, O_EVICTION_GRACE },
	{ "batch-priority-class", required_argument, NULL, O_BATCH_CLASS },
	{ "workers", required_argument, NULL, O_WORKERS },
	{ "log-level", required_argument, NULL, O_LOG_LEVEL },
	{ "shim", required_argument, NULL, O_SHIM },
	{ "xdp-mode", required_argument, NULL, O_XDP_MODE },
	{ "bpf-root", required_argument, NULL, O_BPF_ROOT },
	{ "help", no_argument, NULL, O_HELP },
	{ NULL, 0, NULL, 0 },
};

void agent_config_usage(FILE *f)
{
	fputs("usage: shoal-agent [options]\n"
	      "  --config FILE            a JSON object of these options (without the dashes);\n"
	      "                           the command line wins over it\n"
	      "  --server URL             shoald: unix:/PATH, http://H:P or https://H:P\n"
	      "                           (default " DEFAULT_SERVER ")\n"
	      "  --token-file FILE        this node's bearer token (system:nodes)\n"
	      "  --certificate-authority FILE, --insecure-skip-tls-verify   for https\n"
	      "  --node NAME              the Node's name (default: the host name)\n"
	      "  --netns PATH             enter this network namespace before anything else\n"
	      "  --uplink IF              the node's uplink (default eth0)\n"
	      "  --node-ip IP             default: the uplink's first IPv4 address\n"
	      "  --pod-cidr CIDR          this node's pod addresses, e.g. 10.100.1.0/24\n"
	      "  --zone ZONE              topology.kubernetes.io/zone\n"
	      "  --labels k=v,...         labels of the Node\n"
	      "  --taints k=v:Effect,...  taints of the Node (added when missing; others stay)\n"
	      "  --capacity cpu=4,memory=8Gi,pods=110   default: the machine (or cgroup limits)\n"
	      "  --cgroup-root DIR        the node's cgroup (default " DEFAULT_CGROUP_ROOT ")\n"
	      "  --state-dir DIR          pod state and logs (default " DEFAULT_STATE_DIR ")\n"
	      "  --proxy bpf|nftables|none   the Service proxy (default bpf)\n"
	      "  --listen ADDR            the agent's HTTP endpoint: unix:PATH or HOST:PORT\n"
	      "  --advertise-endpoint URL the endpoint written to the Node (default: from "
	      "--listen)\n"
	      "  --lease-duration S       (default 40)   --lease-renew-interval S (default 10)\n"
	      "  --status-interval S      heartbeat, usage and eviction period (default 10)\n"
	      "  --usage-min-write-interval S   rewrite an unchanged pod usage after S (60)\n"
	      "  --eviction-memory-threshold F  evict (batch pods first) when the machine's "
	      "memory\n"
	      "                           use passes F of its memory, or the pods' use F of the\n"
	      "                           node's allocatable (0.95, or 95%; 0: never)\n"
	      "  --eviction-max-grace S   the most grace an evicted pod gets (default 10)\n"
	      "  --batch-priority-class NAME    priorityClassName of batch pods (default batch)\n"
	      "  --workers N              pod sync workers (default 2)\n"
	      "  --shim PATH              the container supervisor (default: shoal-shim beside\n"
	      "                           shoal-agent)\n"
	      "  --xdp-mode native|generic   XDP on the uplink (default: native, generic on a "
	      "veth)\n"
	      "  --bpf-root DIR           BPF pins (default /sys/fs/bpf/shoal)\n"
	      "  --log-level LEVEL        error, warn, info or debug\n",
	      f);
}

static int set_option(struct agent_config *c, int id, const char *name, const char *v, char *err,
		      size_t errlen)
{
	int ret = 0;

	switch (id) {
	case O_SERVER:
		return set_str(&c->server, v);
	case O_TOKEN_FILE:
		return set_str(&c->token_file, v);
	case O_CA:
		return set_str(&c->ca_file, v);
	case O_INSECURE:
		c->insecure = strcmp(v, "false") != 0;
		return 0;
	case O_NODE: {
		const char *why = label_value_invalid(v);
		if (!*v || why)
			return cfg_err(err, errlen, "%s: \"%s\" is not a valid node name%s%s", name,
				       v, why ? ": " : "", why ? why : "");
		return set_str(&c->node, v);
	}
	case O_NETNS:
		return set_str(&c->netns, v);
	case O_UPLINK:
		if (!*v || strlen(v) >= IFNAMSIZ)
			return cfg_err(err, errlen, "%s: \"%s\" is not an interface name", name, v);
		return set_str(&c->uplink, v);
	case O_NODE_IP: {
		struct in_addr ia;
		if (inet_pton(AF_INET, v, &ia) != 1)
			return cfg_err(err, errlen, "%s: \"%s\" is not an IPv4 address", name, v);
		return set_str(&c->node_ip, v);
	}
	case O_POD_CIDR: {
		char ip[64];
		const char *slash = strchr(v, '/');
		struct in_addr ia;
		char *end;
		long len = slash ? strtol(slash + 1, &end, 10) : -1;
		if (!slash || (size_t)(slash - v) >= sizeof(ip) || *end || len < 8 || len > 30)
			return cfg_err(err, errlen, "%s: \"%s\" is not an IPv4 CIDR (/8 to /30)",
				       name, v);
		memcpy(ip, v, (size_t)(slash - v));
		ip[slash - v] = '\0';
		if (inet_pton(AF_INET, ip, &ia) != 1)
			return cfg_err(err, errlen, "%s: \"%s\" is not an IPv4 CIDR", name, v);
		return set_str(&c->pod_cidr, v);
	}
	case O_ZONE: {
		const char *why = label_value_invalid(v);
		if (why)
			return cfg_err(err, errlen, "%s: \"%s\": %s", name, v, why);
		return set_str(&c->zone, v);
	}
	case O_LABELS: {
		json_t *l = NULL;
		ret = agent_parse_labels(v, &l, err, errlen);
		if (ret)
			return ret;
		if (!c->labels) {
			c->labels = l;
			return 0;
		}
		ret = json_object_update(c->labels, l) ? -ENOMEM : 0;
		json_decref(l);
		return ret;
	}
	case O_TAINTS: {
		struct agent_taint *t;
		size_t n;
		ret = agent_parse_taints(v, &t, &n, err, errlen);
		if (ret)
			return ret;
		for (size_t i = 0; i < c->ntaints; i++) {
			free(c->taints[i].key);
			free(c->taints[i].value);
			free(c->taints[i].effect);
		}
		free(c->taints);
		c->taints = t;
		c->ntaints = n;
		return 0;
	}
	case O_CAPACITY:
		return agent_parse_capacity(v, c, err, errlen);
	case O_CGROUP_ROOT:
		if (v[0] != '/')
			return cfg_err(err, errlen, "%s: \"%s\" is not an absolute path", name, v);
		return set_str(&c->cgroup_root, v);
	case O_STATE_DIR:
		if (v[0] != '/')
			return cfg_err(err, errlen, "%s: \"%s\" is not an absolute path", name, v);
		return set_str(&c->state_dir, v);
	case O_PROXY:
		if (strcmp(v, "bpf") == 0) {
			c->proxy = DPSYNC_BPF;
			c->no_dataplane = false;
		} else if (strcmp(v, "nftables") == 0) {
			c->proxy = DPSYNC_NFTABLES;
			c->no_dataplane = false;
		} else if (strcmp(v, "none") == 0) {
			c->no_dataplane = true;
		} else {
			return cfg_err(err, errlen, "%s: want bpf, nftables or none, got \"%s\"",
				       name, v);
		}
		return 0;
	case O_LISTEN:
		if (strncmp(v, "unix:", 5) != 0 && !strrchr(v, ':'))
			return cfg_err(err, errlen, "%s: want unix:PATH or HOST:PORT, got \"%s\"",
				       name, v);
		return set_str(&c->listen, v);
	case O_ADVERTISE:
		return set_str(&c->advertise, v);
	case O_LEASE_DURATION:
		return parse_int(name, v, 1, 3600, &c->lease_duration_s, err, errlen);
	case O_LEASE_RENEW:
		return parse_int(name, v, 1, 3600, &c->lease_renew_s, err, errlen);
	case O_STATUS_INTERVAL:
		return parse_int(name, v, 1, 3600, &c->status_interval_s, err, errlen);
	case O_USAGE_MIN_WRITE:
		return parse_int(name, v, 0, 86400, &c->usage_min_write_s, err, errlen);
	case O_EVICTION_MEMORY: {
		char *end;
		errno = 0;
		double f = strtod(v, &end);
		if (!errno && end != v && strcmp(end, "%") == 0) {
			f /= 100;
			end++;
		}
		if (errno || end == v || *end || f < 0 || f > 1)
			return cfg_err(err, errlen,
				       "%s: want a fraction 0..1 or a percentage, got \"%s\"", name,
				       v);
		c->eviction_memory = f;
		return 0;
	}
	case O_EVICTION_GRACE:
		return parse_int(name, v, 0, 3600, &c->eviction_grace_s, err, errlen);
	case O_BATCH_CLASS:
		return set_str(&c->batch_class, v);
	case O_WORKERS:
		return parse_int(name, v, 1, 64, &c->workers, err, errlen);
	case O_SHIM:
		if (!*v)
			return cfg_err(err, errlen, "%s: needs a path", name);
		return set_str(&c->shim_path, v);
	case O_XDP_MODE:
		if (strcmp(v, "native") && strcmp(v, "generic"))
			return cfg_err(err, errlen, "%s: want native or generic, got \"%s\"", name,
				       v);
		return set_str(&c->xdp_mode, v);
	case O_BPF_ROOT:
		if (v[0] != '/')
			return cfg_err(err, errlen, "%s: \"%s\" is not an absolute path", name, v);
		return set_str(&c->bpf_root, v);
	case O_LOG_LEVEL:
		if (strcmp(v, "error") && strcmp(v, "warn") && strcmp(v, "info") &&
		    strcmp(v, "debug"))
			return cfg_err(err, errlen,
				       "%s: want error, warn, info or debug, got \"%s\"", name, v);
		return set_str(&c->log_level, v);
	}
	return cfg_err(err, errlen, "unknown option %s", name);
}

/* A JSON value as the option's text: objects of labels or capacity as k=v lists, taints as
 * k=v:Effect lists. */
static int json_to_text(const char *key, const json_t *v, struct strbuf *b, char *err,
			size_t errlen)
{
	const char *k;
	json_t *x;
	size_t i;

	switch (json_typeof(v)) {
	case JSON_STRING:
		return strbuf_add(b, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		return strbuf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	case JSON_REAL:
		return strbuf_printf(b, "%.17g", json_real_value(v));
	case JSON_TRUE:
		return strbuf_printf(b, "true");
	case JSON_FALSE:
		return strbuf_printf(b, "false");
	case JSON_OBJECT:
		if (strcmp(key, "labels") && strcmp(key, "capacity"))
			break;
		json_object_foreach ((json_t *)v, k, x) {
			if (json_is_integer(x))
				strbuf_printf(b, "%s%s=%" JSON_INTEGER_FORMAT, b->len ? "," : "", k,
					      json_integer_value(x));
			else if (json_is_string(x))
				strbuf_printf(b, "%s%s=%s", b->len ? "," : "", k,
					      json_string_value(x));
			else
				return cfg_err(err, errlen, "%s.%s: want a string", key, k);
		}
		return b->err;
	case JSON_ARRAY:
		if (strcmp(key, "taints"))
			break;
		json_array_foreach (v, i, x) {
			const char *tk = json_string_value(json_object_get(x, "key"));
			const char *tv = json_string_value(json_object_get(x, "value"));
			const char *te = json_string_value(json_object_get(x, "effect"));
			if (!tk || !te)
				return cfg_err(err, errlen,
					       "taints[%zu]: want {\"key\", \"value\", \"effect\"}",
					       i);
			strbuf_printf(b, "%s%s%s%s:%s", b->len ? "," : "", tk, tv ? "=" : "",
				      tv ? tv : "", te);
		}
		return b->err;
	default:
		break;
	}
	return cfg_err(err, errlen, "%s: unexpected JSON type", key);
}

int agent_config_apply_json(struct agent_config *c, const json_t *obj, char *err, size_t errlen)
{
	const char *key;
	json_t *v;

	if (!json_is_object(obj))
		return cfg_err(err, errlen, "the config must be a JSON object");
	json_object_foreach ((json_t *)obj, key, v) {
		const struct option *o = NULL;
		for (const struct option *p = long_opts; p->name; p++)
			if (strcmp(p->name, key) == 0)
				o = p;
		if (!o || o->val == O_CONFIG || o->val == O_HELP)
			return cfg_err(err, errlen, "unknown key \"%s\"", key);
		struct strbuf b = { 0 };
		int ret = json_to_text(key, v, &b, err, errlen);
		if (!ret && b.err)
			ret = b.err;
		if (!ret)
			ret = set_option(c, o->val, key, b.s ? b.s : "", err, errlen);
		strbuf_free(&b);
		if (ret == -ENOMEM)
			return cfg_err(err, errlen, "out of memory");
		if (ret)
			return ret;
	}
	return 0;
}

int agent_config_parse(struct agent_config *c, int argc, char **argv, char *err, size_t errlen)
{
	int ch, ret;

	/* The config file first, wherever --config stands. */
	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1) {
		if (ch == O_HELP || ch == 'h') {
			agent_config_usage(stdout);
			return 1;
		}
		if (ch != O_CONFIG)
			continue;
		json_error_t je;
		json_t *j = json_load_file(optarg, JSON_REJECT_DUPLICATES, &je);
		if (!j)
			return cfg_err(err, errlen, "--config %s: line %d column %d: %s", optarg,
				       je.line, je.column, je.text);
		char sub[400];
		ret = agent_config_apply_json(c, j, sub, sizeof(sub));
		json_decref(j);
		if (ret)
			return cfg_err(err, errlen, "--config %s: %s", optarg, sub);
	}
	optind = 0;
	while ((ch = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1) {
		char name[64];
		switch (ch) {
		case O_CONFIG:
			continue;
		case ':':
			return cfg_err(err, errlen, "option %s needs a value", argv[optind - 1]);
		case '?':
			return cfg_err(err, errlen, "unknown option %s", argv[optind - 1]);
		}
		snprintf(name, sizeof(name), "--%s", "?");
		for (const struct option *p = long_opts; p->name; p++)
			if (p->val == ch)
				snprintf(name, sizeof(name), "--%s", p->name);
		ret = set_option(c, ch, name, optarg ? optarg : "true", err, errlen);
		if (ret == -ENOMEM)
			return cfg_err(err, errlen, "out of memory");
		if (ret)
			return ret;
	}
	if (optind < argc)
		return cfg_err(err, errlen, "unexpected argument \"%s\"", argv[optind]);
	return 0;
}

/* ---- defaults from the machine ---------------------------------------------------------- */

static int read_file_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	if (!fgets(buf, (int)len, f)) {
		int err = ferror(f) ? -EIO : -ENODATA;
		fclose(f);
		return err;
	}
	fclose(f);
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

static int uplink_ipv4(const char *ifname, char *out, size_t len)
{
	struct ifaddrs *ifa, *p;
	int ret = -EADDRNOTAVAIL;

	if (getifaddrs(&ifa))
		return -errno;
	for (p = ifa; p; p = p->ifa_next) {
		if (!p->ifa_addr || p->ifa_addr->sa_family != AF_INET ||
		    strcmp(p->ifa_name, ifname) != 0)
			continue;
		const struct sockaddr_in *sin = (const struct sockaddr_in *)p->ifa_addr;
		if (inet_ntop(AF_INET, &sin->sin_addr, out, (socklen_t)len))
			ret = 0;
		break;
	}
	freeifaddrs(ifa);
	return ret;
}

/* CPU in milli-cores: the cgroup's cpu.max quota if it has one, else the online CPUs. */
static int64_t machine_cpu_milli(const char *cgroup)
{
	char path[4200], line[128];
	long long quota, period;
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	snprintf(path, sizeof(path), "%s/cpu.max", cgroup);
	if (read_file_line(path, line, sizeof(line)) == 0 &&
	    sscanf(line, "%lld %lld", &quota, &period) == 2 && period > 0 && quota > 0)
		return quota * 1000 / period;
	return (n > 0 ? n : 1) * 1000;
}

/* MemTotal in bytes, 0 when unknown. */
static int64_t mem_total(void)
{
	char line[256];
	long long v;
	FILE *f = fopen("/proc/meminfo", "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "MemTotal: %lld kB", &v) == 1) {
			fclose(f);
			return v * 1024;
		}
	}
	fclose(f);
	return 0;
}

/* Memory in bytes: the cgroup's memory.max if it has one, else MemTotal. */
static int64_t machine_memory(const char *cgroup)
{
	char path[4200], line[256];
	long long v;

	snprintf(path, sizeof(path), "%s/memory.max", cgroup);
	if (read_file_line(path, line, sizeof(line)) == 0 && strcmp(line, "max") != 0 &&
	    sscanf(line, "%lld", &v) == 1 && v > 0)
		return v;
	return mem_total();
}

int agent_config_finish(struct agent_config *c, char *err, size_t errlen)
{
	char buf[512];
	int ret;

	if (!c->server && set_str(&c->server, DEFAULT_SERVER))
		return -ENOMEM;
	if (!c->uplink && set_str(&c->uplink, "eth0"))
		return -ENOMEM;
	if (!c->state_dir && set_str(&c->state_dir, DEFAULT_STATE_DIR))
		return -ENOMEM;
	if (!c->cgroup_root && set_str(&c->cgroup_root, DEFAULT_CGROUP_ROOT))
		return -ENOMEM;
	if (!c->batch_class && set_str(&c->batch_class, "batch"))
		return -ENOMEM;
	if (!c->node) {
		if (gethostname(buf, sizeof(buf)))
			return cfg_err(err, errlen,
				       "--node not given and the host name is unknown: %s",
				       strerror(errno));
		buf[sizeof(buf) - 1] = '\0';
		if (set_str(&c->node, buf))
			return -ENOMEM;
	}
	if (!c->node_ip) {
		ret = uplink_ipv4(c->uplink, buf, sizeof(buf));
		if (ret)
			return cfg_err(
				err, errlen,
				"--node-ip not given and the uplink %s has no IPv4 address: %s",
				c->uplink, strerror(-ret));
		if (set_str(&c->node_ip, buf))
			return -ENOMEM;
	}
	if (!c->pod_cidr)
		return cfg_err(err, errlen, "--pod-cidr is required (e.g. 10.100.1.0/24)");
	if (!c->cap_cpu_milli)
		c->cap_cpu_milli = machine_cpu_milli(c->cgroup_root);
	c->machine_memory = mem_total();
	if (!c->cap_memory)
		c->cap_memory = machine_memory(c->cgroup_root);
	if (!c->cap_memory)
		return cfg_err(err, errlen,
			       "the machine's memory is unknown (/proc/meminfo): give --capacity "
			       "memory=...");
	if (!c->cap_pods)
		c->cap_pods = 110;
	if (c->lease_renew_s >= c->lease_duration_s)
		return cfg_err(err, errlen,
			       "--lease-renew-interval (%d) must be shorter than --lease-duration "
			       "(%d)",
			       c->lease_renew_s, c->lease_duration_s);
	if (c->token_file && !c->token) {
		ret = read_file_line(c->token_file, buf, sizeof(buf));
		if (ret)
			return cfg_err(err, errlen, "--token-file %s: %s", c->token_file,
				       ret == -ENODATA ? "empty" : strerror(-ret));
		/* A line of a static token file (token,user,group) works as well. */
		buf[strcspn(buf, ", \t")] = '\0';
		if (!buf[0])
			return cfg_err(err, errlen, "--token-file %s: empty", c->token_file);
		if (set_str(&c->token, buf))
			return -ENOMEM;
	}
	if (!c->advertise && c->listen) {
		const char *l = c->listen;
		if (strncmp(l, "unix:", 5) == 0) {
			snprintf(buf, sizeof(buf), "%s", l);
		} else {
			const char *colon = strrchr(l, ':');
			size_t hl = (size_t)(colon - l);
			bool any = hl == 0 || (hl == 7 && strncmp(l, "0.0.0.0", 7) == 0) ||
				   (hl == 4 && strncmp(l, "[::]", 4) == 0);
			if (any)
				snprintf(buf, sizeof(buf), "http://%s%s", c->node_ip, colon);
			else
				snprintf(buf, sizeof(buf), "http://%s", l);
		}
		if (set_str(&c->advertise, buf))
			return -ENOMEM;
	}
	return 0;
}
