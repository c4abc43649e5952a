// SPDX-License-Identifier: Apache-2.0
/*
 * shoald: the control daemon. Opens the store, serves the API, and on SIGTERM or SIGINT stops
 * accepting, ends watch streams, lets requests in flight finish (their writes are durable
 * before they are answered) and closes the store.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api_server.h"
#include "ctrl.h"
#include "fed.h"
#include "fsutil.h"
#include "labels.h"
#include "log.h"
#include "store.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: shoald [options]\n"
		"  --listen ADDR            HOST:PORT or unix:PATH (repeatable; default\n"
		"                           unix:/run/shoal/shoald.sock)\n"
		"  --state DIR              state directory (default /var/lib/shoal); the store "
		"is\n"
		"                           lmdb:DIR/store unless --store is given\n"
		"  --store URI              lmdb:DIR\n"
		"  --token-file FILE        bearer tokens: token,user,group lines\n"
		"  --tls-cert FILE --tls-key FILE   serve TCP listeners over TLS\n"
		"  --service-cidr CIDR      ClusterIP range (default 10.96.0.0/16)\n"
		"  --service-node-port-range MIN-MAX  (default 30000-32767)\n"
		"  --history-revisions N    store history kept for watches (default 100000)\n"
		"  --history-seconds S      and at least this much time (default 300)\n"
		"  --compact-interval-ms MS how often compaction runs (default 10000)\n"
		"  --watch-cache-events N   events kept in memory for resuming watches (100000)\n"
		"  --bookmark-interval-ms MS  how often a quiet watch gets a bookmark (default 60000)\n"
		"  --threads N              HTTP threads (default 2)\n"
		"  --scheduler-config FILE  scheduler profiles, weights and prediction (JSON)\n"
		"  --disable-scheduler      leave pods to another scheduler\n"
		"  --disable-controllers    run no workload controllers (ReplicaSet, Deployment,\n"
		"                           EndpointSlice, ...)\n"
		"  --node-monitor-grace-period D   a node whose heartbeat (Lease or Ready\n"
		"                           condition) is older is marked lost and tainted (40s)\n"
		"  --node-startup-grace-period D   the same for a node's first heartbeat (60s)\n"
		"  --default-toleration-seconds N  how long pods without a toleration stay on a\n"
		"                           lost node before they are evicted (300)\n"
		"  --pod-eviction-rate QPS  pods evicted per second at most (10)\n"
		"  --job-backoff-base D     a failed Job pod is replaced after D, doubling (10s)\n"
		"  --event-ttl D            Events are deleted D after they last happened (1h)\n"
		"                           (D: a duration such as 500ms, 40s, 5m)\n"
		"  --federation             also run the federation controller (Clusters,\n"
		"                           FederatedDeployments, FederatedServices; see README\n"
		"                           \"Federation\")\n"
		"  --federation-id ID       the managed-by label value on member objects (shoal)\n"
		"  --cluster-probe-interval D   how often each member is probed (10s)\n"
		"  --cluster-grace-period D a member not ready for this long is Offline and its\n"
		"                           replicas move to the others (60s)\n"
		"  --member-timeout D       one request to a member may take this long (5s)\n"
		"  --cluster-credentials-dir DIR   the only directory Clusters' spec.tokenFile\n"
		"                           may name files in (default STATE/cluster-credentials)\n"
		"  --log-level LEVEL        error, warn, info or debug\n"
		"  --version, --help\n");
}

static int parse_long(const char *opt, const char *s, long min, long max, long *out)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*end || v < min || v > max) {
		fprintf(stderr, "shoald: %s: want an integer in %ld..%ld, got \"%s\"\n", opt, min,
			max, s);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* A duration: "500ms", "40s", "5m", "1h", or a number of seconds. */
static int parse_duration(const char *opt, const char *s, int64_t *ms)
{
	char *end;
	long long v = strtoll(s, &end, 10);
	long long mult = !*end || !strcmp(end, "s") ? 1000
			 : !strcmp(end, "ms")	    ? 1
			 : !strcmp(end, "m")	    ? 60000
			 : !strcmp(end, "h")	    ? 3600000
						    : -1;
	if (end == s || v <= 0 || mult < 0 || v > (1LL << 40) / mult) {
		fprintf(stderr,
			"shoald: %s: want a duration such as 500ms, 40s or 5m, got \"%s\"\n", opt,
			s);
		return -EINVAL;
	}
	*ms = v * mult;
	return 0;
}

int main(int argc, char **argv)
{
	enum {
		O_LISTEN = 256,
		O_STATE,
		O_STORE,
		O_TOKENS,
		O_CERT,
		O_KEY,
		O_CIDR,
		O_PORTS,
		O_HREV,
		O_HSEC,
		O_COMPACT,
		O_WCE,
		O_BOOKMARK,
		O_THREADS,
		O_LOG,
		O_VERSION,
		O_SCHEDCFG,
		O_NOSCHED,
		O_NOCTRL,
		O_NODEGRACE,
		O_NODESTART,
		O_TOLSECS,
		O_EVICTQPS,
		O_JOBBACKOFF,
		O_EVENTTTL,
		O_FED,
		O_FEDID,
		O_FEDPROBE,
		O_FEDGRACE,
		O_FEDTIMEOUT,
		O_FEDCREDS
	};
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "state", required_argument, NULL, O_STATE },
		{ "store", required_argument, NULL, O_STORE },
		{ "token-file", required_argument, NULL, O_TOKENS },
		{ "tls-cert", required_argument, NULL, O_CERT },
		{ "tls-key", required_argument, NULL, O_KEY },
		{ "service-cidr", required_argument, NULL, O_CIDR },
		{ "service-node-port-range", required_argument, NULL, O_PORTS },
		{ "history-revisions", required_argument, NULL, O_HREV },
		{ "history-seconds", required_argument, NULL, O_HSEC },
		{ "compact-interval-ms", required_argument, NULL, O_COMPACT },
		{ "watch-cache-events", required_argument, NULL, O_WCE },
		{ "bookmark-interval-ms", required_argument, NULL, O_BOOKMARK },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "log-level", required_argument, NULL, O_LOG },
		{ "scheduler-config", required_argument, NULL, O_SCHEDCFG },
		{ "disable-scheduler", no_argument, NULL, O_NOSCHED },
		{ "disable-controllers", no_argument, NULL, O_NOCTRL },
		{ "node-monitor-grace-period", required_argument, NULL, O_NODEGRACE },
		{ "node-startup-grace-period", required_argument, NULL, O_NODESTART },
		{ "default-toleration-seconds", required_argument, NULL, O_TOLSECS },
		{ "pod-eviction-rate", required_argument, NULL, O_EVICTQPS },
		{ "job-backoff-base", required_argument, NULL, O_JOBBACKOFF },
		{ "event-ttl", required_argument, NULL, O_EVENTTTL },
		{ "federation", no_argument, NULL, O_FED },
		{ "federation-id", required_argument, NULL, O_FEDID },
		{ "cluster-probe-interval", required_argument, NULL, O_FEDPROBE },
		{ "cluster-grace-period", required_argument, NULL, O_FEDGRACE },
		{ "member-timeout", required_argument, NULL, O_FEDTIMEOUT },
		{ "cluster-credentials-dir", required_argument, NULL, O_FEDCREDS },
		{ "version", no_argument, NULL, O_VERSION },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct api_server_opts ao = { 0 };
	struct ctrl_config cc = { 0 };
	struct fed_config fc = { .id = "shoal" };
	bool federation = false;
	struct store_opts so = { 0 };
	const char *state = "/var/lib/shoal", *store_uri = NULL;
	enum log_level lvl = LOG_LVL_INFO;
	char uri[4200];
	int nlisten = 0, c;
	long v;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case O_LISTEN:
			if (nlisten == 4) {
				fprintf(stderr, "shoald: at most 4 --listen addresses\n");
				return 2;
			}
			ao.listen[nlisten++] = optarg;
			break;
		case O_STATE:
			state = optarg;
			break;
		case O_STORE:
			store_uri = optarg;
			break;
		case O_TOKENS:
			ao.token_file = optarg;
			break;
		case O_CERT:
			ao.tls_cert = optarg;
			break;
		case O_KEY:
			ao.tls_key = optarg;
			break;
		case O_CIDR:
			ao.service_cidr = optarg;
			break;
		case O_PORTS:
			if (sscanf(optarg, "%d-%d", &ao.node_port_min, &ao.node_port_max) != 2) {
				fprintf(stderr,
					"shoald: --service-node-port-range: want MIN-MAX\n");
				return 2;
			}
			break;
		case O_HREV:
			if (parse_long("--history-revisions", optarg, 1, 1L << 40, &v))
				return 2;
			so.history_revisions = v;
			break;
		case O_HSEC:
			if (parse_long("--history-seconds", optarg, 0, 1L << 30, &v))
				return 2;
			so.history_seconds = v;
			break;
		case O_COMPACT:
			if (parse_long("--compact-interval-ms", optarg, -1, 1L << 30, &v))
				return 2;
			so.compact_interval_ms = v;
			break;
		case O_WCE:
			if (parse_long("--watch-cache-events", optarg, 16, 1L << 26, &v))
				return 2;
			ao.watch_ring_events = (int)v;
			break;
		case O_BOOKMARK:
			if (parse_long("--bookmark-interval-ms", optarg, 10, 3600000, &v))
				return 2;
			ao.bookmark_interval_ms = (int)v;
			break;
		case O_THREADS:
			if (parse_long("--threads", optarg, 1, 64, &v))
				return 2;
			ao.threads = (int)v;
			break;
		case O_LOG:
			if (log_parse_level(optarg, &lvl)) {
				fprintf(stderr,
					"shoald: --log-level: want error, warn, info or debug\n");
				return 2;
			}
			break;
		case O_SCHEDCFG:
			ao.scheduler_config = optarg;
			break;
		case O_NOSCHED:
			ao.no_scheduler = 1;
			break;
		case O_NOCTRL:
			ao.no_controllers = 1;
			break;
		case O_NODEGRACE:
			if (parse_duration("--node-monitor-grace-period", optarg,
					   &cc.node_monitor_grace_ms))
				return 2;
			break;
		case O_NODESTART:
			if (parse_duration("--node-startup-grace-period", optarg,
					   &cc.node_startup_grace_ms))
				return 2;
			break;
		case O_JOBBACKOFF:
			if (parse_duration("--job-backoff-base", optarg, &cc.job_backoff_base_ms))
				return 2;
			break;
		case O_EVENTTTL:
			if (parse_duration("--event-ttl", optarg, &ao.event_ttl_ms))
				return 2;
			break;
		case O_TOLSECS:
			if (parse_long("--default-toleration-seconds", optarg, 0, 1L << 30, &v))
				return 2;
			cc.default_toleration_s = v;
			break;
		case O_EVICTQPS: {
			char *end;
			double q = strtod(optarg, &end);
			if (*end || !(q > 0) || q > 100000) {
				fprintf(stderr,
					"shoald: --pod-eviction-rate: want a rate of pods per "
					"second above 0, got \"%s\"\n",
					optarg);
				return 2;
			}
			cc.eviction_qps = q;
			break;
		}
		case O_FED:
			federation = true;
			break;
		case O_FEDID:
			if (!*optarg || label_value_invalid(optarg)) {
				fprintf(stderr, "shoald: --federation-id: want a label value "
						"(63 characters: letters, digits, '-', '_', '.'), "
						"got \"%s\"\n",
					optarg);
				return 2;
			}
			fc.id = optarg;
			break;
		case O_FEDPROBE:
			if (parse_duration("--cluster-probe-interval", optarg,
					   &fc.probe_interval_ms))
				return 2;
			break;
		case O_FEDGRACE:
			if (parse_duration("--cluster-grace-period", optarg, &fc.grace_ms))
				return 2;
			break;
		case O_FEDCREDS:
			fc.credentials_dir = optarg;
			break;
		case O_FEDTIMEOUT:
			if (parse_duration("--member-timeout", optarg, &fc.member_timeout_ms))
				return 2;
			break;
		case O_VERSION:
			printf("shoald 0.1.0\n");
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "shoald: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}
	log_init("shoald", lvl);
	if (!nlisten) {
		if (fs_mkdir_p("/run/shoal", 0755))
			log_warn("create /run/shoal: %s", strerror(errno));
		ao.listen[0] = "unix:/run/shoal/shoald.sock";
	}
	if (!store_uri) {
		int err = fs_mkdir_p(state, 0755);
		if (err) {
			log_error("state directory %s: %s", state, strerror(-err));
			return 1;
		}
		snprintf(uri, sizeof(uri), "lmdb:%s/store", state);
		store_uri = uri;
	}

	/* Signals are taken synchronously by this thread; every other thread blocks them. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct store *st = store_open(store_uri, &so);
	if (!st) {
		log_error("open store %s: %s", store_uri, shoal_strerror(errno));
		return 1;
	}
	char creds[4096];
	if (federation && !fc.credentials_dir) {
		snprintf(creds, sizeof(creds), "%s/cluster-credentials", state);
		int err = fs_mkdir_p(creds, 0700);
		if (err) {
			log_error("cluster credentials directory %s: %s", creds, strerror(-err));
			return 1;
		}
		fc.credentials_dir = creds;
	}
	if (federation)
		cc.fed = &fc;
	ao.controllers = &cc;
	struct api_server *srv = api_server_start(st, &ao);
	if (!srv) {
		log_error("start API server: %s", shoal_strerror(errno));
		store_close(st);
		return 1;
	}
	log_info("ready (store %s, revision %lld)", store_uri, (long long)store_revision(st));
	int sig = 0;
	if (sigwait(&set, &sig))
		log_error("sigwait failed");
	log_info("%s: draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	api_server_stop(srv, 10000);
	store_close(st);
	log_info("stopped");
	return 0;
}
