# SPDX-License-Identifier: Apache-2.0
# Helpers for the shell tests under tests/: TAP output, the name filter from tests/run, a
# unique per-run prefix for namespaces, links and pin paths, and cleanup on exit.
#
#   . "$(dirname "$0")/../lib/lib.sh"
#   t_cleanup 'ip netns del "${P}c" 2>/dev/null'     # runs on exit, also on failure
#   t_case test_vip_answers case_vip_answers          # runs the function if the filter allows
#   t_done                                            # prints the plan; exit status
set -u

SHOAL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Short and unique: interface names are limited to 15 characters.
P="s$(printf '%x' $(($$ % 4096)))$(head -c2 /dev/urandom | od -An -tx1 | tr -d ' \n')"
T_N=0
T_FAILED=0
T_CLEANUP=()

t_cleanup() { T_CLEANUP+=("$1"); }
t_run_cleanup() {
	local i
	for ((i = ${#T_CLEANUP[@]} - 1; i >= 0; i--)); do
		eval "${T_CLEANUP[$i]}" >/dev/null 2>&1 || true
	done
	T_CLEANUP=()
}
trap t_run_cleanup EXIT
trap 'exit 130' INT TERM

# t_case NAME FUNCTION: runs FUNCTION as one test case; it fails when FUNCTION returns
# non-zero. A message explaining a failure goes to stdout before the return.
t_case() {
	local name=$1 fn=$2
	if [ -n "${SHOAL_TEST_FILTER:-}" ]; then
		# shellcheck disable=SC2053
		[[ "$name" == $SHOAL_TEST_FILTER ]] || return 0
	fi
	T_N=$((T_N + 1))
	if "$fn"; then
		echo "ok $T_N - $name"
	else
		echo "not ok $T_N - $name"
		T_FAILED=$((T_FAILED + 1))
	fi
}

t_skip() { T_N=$((T_N + 1)); echo "ok $T_N # SKIP $1: $2"; }

# t_expect WHAT EXPECTED GOT: prints a message and fails when they differ.
t_expect() {
	if [ "$2" != "$3" ]; then
		echo "# $1: expected '$2', got '$3'"
		return 1
	fi
}

# wait_for SECONDS WHAT COMMAND...: runs COMMAND (quietly) every half second until it succeeds;
# after SECONDS says what it waited for and fails.
wait_for() {
	local secs=$1 what=$2 i
	shift 2
	for ((i = 0; i < secs * 2; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	"$@" >/dev/null 2>&1 && return 0
	echo "# waited ${secs} s for $what"
	return 1
}

# t_lab_can_run NAME COMMAND...: whether a lab test can run here: as root, with the agent built
# ($BIN/shoal-agent) and each COMMAND installed. When not, reports NAME skipped, says why and
# fails.
t_lab_can_run() {
	local name=$1 c
	shift
	if [ "$(id -u)" -ne 0 ]; then
		t_skip "$name" "needs root (namespaces, cgroups, BPF)"
		return 1
	fi
	if [ ! -x "$BIN/shoal-agent" ]; then
		t_skip "$name" "build/bin/shoal-agent is not built"
		return 1
	fi
	for c in "$@"; do
		if ! command -v "$c" >/dev/null; then
			t_skip "$name" "needs $* (scripts/setup installs them)"
			return 1
		fi
	done
}

# t_ctr_pid CTL RUN POD CONTAINER: the pid of CONTAINER of POD, from the runtime's record of
# its current instance (RUN/NODE/pods/UID/c/NAME/RESTARTCOUNT/pid.json, RUN: the lab's run
# directory); CTL is the command that asks the cluster (a shoalctl wrapper).
t_ctr_pid() {
	local ctl=$1 run=$2 j node uid rc
	j=$("$ctl" get pod "$3" -o json) || return 1
	node=$(jq -r .spec.nodeName <<<"$j")
	uid=$(jq -r .metadata.uid <<<"$j")
	rc=$(jq -r --arg c "$4" '.status.containerStatuses[]? | select(.name == $c) | .restartCount' <<<"$j")
	jq -r .pid "$run/$node/pods/$uid/c/$4/$rc/pid.json" 2>/dev/null
}

# web_containers INDENT: the "containers:" block of the e2e manifests' web pods, indented by
# INDENT spaces. Its one container answers an HTTP request on port 8080 with its pod's name.
web_containers() {
	local pad
	pad=$(printf '%*s' "$1" '')
	sed "s/^/$pad/" <<'YAML'
containers:
- name: web
  image: debian:bookworm
  command: ["socat", "TCP-LISTEN:8080,fork,reuseaddr", "SYSTEM:eval $RESPOND"]
  env:
  - name: POD_NAME
    valueFrom: {fieldRef: {fieldPath: metadata.name}}
  - name: RESPOND
    value: >-
      while read -r l; do [ ${#l} -le 1 ] && break; done;
      printf "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n%s\n" "$POD_NAME"
  ports: [{name: http, containerPort: 8080}]
  readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
  resources: {requests: {cpu: 20m, memory: 16Mi}}
YAML
}

# t_lab_leftovers PREFIX: what a lab of that prefix (scripts/lab) left on the machine, one line
# per thing; empty when nothing.
t_lab_leftovers() {
	local p=$1 pid cg2
	cg2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
	ip netns list | awk '{print $1}' | grep -E "^$p-" | sed 's/^/netns /'
	[ -e "/run/shoal/$p" ] && echo "dir /run/shoal/$p"
	[ -n "$cg2" ] && [ -e "$cg2/$p" ] && echo "cgroup $cg2/$p"
	ls -d /sys/fs/bpf/shoal/"$p"-* 2>/dev/null | sed 's/^/pins /'
	ls -d /run/shoal/netns/"$p"-* 2>/dev/null | sed 's/^/pod-netns /'
	# (the bracket keeps grep itself out)
	for pid in $(grep -la -- "[/]run/shoal/$p/" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
		echo "process $pid: $(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")"
	done
	return 0
}

t_done() {
	echo "1..$T_N"
	[ "$T_FAILED" -eq 0 ]
}
