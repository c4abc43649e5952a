// SPDX-License-Identifier: Apache-2.0
/*
 * shoal-agent: the node agent. Parses its options, enters the node's network namespace
 * (--netns) before any thread exists (setns() changes only the calling thread, and every
 * thread started later inherits it), fills the defaults that depend on the machine, and runs
 * one agent (agent.h) until SIGTERM or SIGINT (exit 0), or until the agent gives up (exit 1:
 * the API refuses it for good, e.g. the Node has another pod CIDR). On stop, pods and the
 * data plane stay as they are: a restarted agent re-adopts them.
 *
 * The namespace is entered with setns() on the given file rather than through `ip netns
 * exec`, which would also remount /sys and hide bpffs and the cgroup tree the agent needs.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"

static int enter_netns(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int err = -errno;
		fprintf(stderr, "shoal-agent: --netns %s: %s\n", path, strerror(-err));
		return err;
	}
	if (setns(fd, CLONE_NEWNET)) {
		int err = -errno;
		fprintf(stderr, "shoal-agent: --netns %s: setns: %s\n", path, strerror(-err));
		close(fd);
		return err;
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct agent_config cfg;
	char err[1024];
	sigset_t sigs;
	int ret, sig;

	log_init("shoal-agent", LOG_LVL_INFO);
	agent_config_init(&cfg);
	ret = agent_config_parse(&cfg, argc, argv, err, sizeof(err));
	if (ret == 1) {
		agent_config_free(&cfg);
		return 0;
	}
	if (ret) {
		fprintf(stderr, "shoal-agent: %s\nrun 'shoal-agent --help' for usage\n", err);
		agent_config_free(&cfg);
		return 2;
	}
	if (cfg.netns && enter_netns(cfg.netns)) {
		agent_config_free(&cfg);
		return 1;
	}
	if (cfg.log_level) {
		enum log_level lvl;
		if (log_parse_level(cfg.log_level, &lvl) == 0)
			log_init("shoal-agent", lvl);
	}
	ret = agent_config_finish(&cfg, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "shoal-agent: %s\n", ret == -ENOMEM ? "out of memory" : err);
		agent_config_free(&cfg);
		return 2;
	}

	/* Signals go to this thread only, through sigwait(). */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	log_info("node %s: starting (server %s, node IP %s, pod CIDR %s, proxy %s)", cfg.node,
		 cfg.server, cfg.node_ip, cfg.pod_cidr,
		 cfg.no_dataplane	   ? "none"
		 : cfg.proxy == DPSYNC_BPF ? "bpf"
					   : "nftables");
	struct agent *a = agent_start(&cfg);
	if (!a) {
		fprintf(stderr, "shoal-agent: cannot start: %s\n", strerror(errno));
		agent_config_free(&cfg);
		return 1;
	}
	/* Until a signal, or until the agent gives up. */
	int rc = 0;
	for (;;) {
		struct timespec ts = { 1, 0 };
		sig = sigtimedwait(&sigs, NULL, &ts);
		if (sig > 0) {
			log_info("node %s: %s: stopping (pods keep running)", cfg.node,
				 strsignal(sig));
			break;
		}
		if (agent_failed(a)) {
			rc = 1;
			break;
		}
	}
	agent_stop(a);
	agent_config_free(&cfg);
	return rc;
}
