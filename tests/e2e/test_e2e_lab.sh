#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The lab and the demo, end to end: `scripts/lab up` makes a 3-node cluster of namespaces
# (shoald, one shoal-agent per node, an outside namespace) whose nodes register Ready; `up`
# again changes nothing; the demo's path holds (the web Deployment's replicas answer through
# the Service's ClusterIP from every node and through its NodePort from outside); `down`
# leaves nothing behind; and an `up` that fails half-way removes what it made. The cases
# build on each other, in order: run the file whole.
. "$(dirname "$0")/../lib/lib.sh"

cd "$SHOAL_ROOT"
LAB=scripts/lab
RUN=/run/shoal/$P
BIN=$SHOAL_ROOT/build/bin
CG2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
export SHOAL_SERVER=unix:$RUN/api.sock
t_cleanup "$LAB down --prefix $P -q"
t_cleanup "$LAB down --prefix ${P}f -q"

case_lab_up() {
	local out n ready
	if ! out=$($LAB up -n 3 --prefix "$P" 2>&1); then
		echo "# scripts/lab up failed:"
		sed 's/^/#   /' <<<"$out"
		return 1
	fi
	grep -q "export SHOAL_SERVER=unix:$RUN/api.sock" <<<"$out" ||
		{ echo "# up did not say how to reach the API; it said:"; sed 's/^/#   /' <<<"$out"; return 1; }
	ready=$("$BIN/shoalctl" get nodes -o json | jq '[.items[] | select(any(.status.conditions[]?;
		.type == "Ready" and .status == "True"))] | length')
	t_expect "Ready nodes" 3 "$ready" || return 1
	for n in 1 2 3; do
		t_expect "node $n address" "10.99.0.$n" "$("$BIN/shoalctl" get node "$P-n$n" -o json |
			jq -r '.status.addresses[] | select(.type == "InternalIP") | .address')" || return 1
		t_expect "node $n pod CIDR" "10.100.$n.0/24" \
			"$("$BIN/shoalctl" get node "$P-n$n" -o json | jq -r .spec.podCIDR)" || return 1
		[ -d "$CG2/$P/n$n" ] || { echo "# no cgroup $CG2/$P/n$n"; return 1; }
		t_expect "node $n agent /healthz" ok \
			"$(curl -s --unix-socket "$RUN/$P-n$n.sock" http://agent/healthz)" || return 1
	done
	# the outside namespace reaches the nodes over the fabric
	ip netns exec "$P-outside" ping -c1 -W2 10.99.0.2 >/dev/null ||
		{ echo "# the outside namespace cannot reach node 2 at 10.99.0.2"; return 1; }
	# the host's root namespace got nothing: no 10.99 address, no route
	if ip -4 addr | grep -q "10\.99\.0\." || ip route | grep -q "10\.100\."; then
		echo "# the lab touched the root namespace:"; ip -4 addr | grep 10.99; ip route | grep 10.100
		return 1
	fi
}

case_lab_up_again_changes_nothing() {
	local before after out
	before=$(cat "$RUN/pids")
	out=$($LAB up -n 3 --prefix "$P" 2>&1) || { echo "# second up failed: $out"; return 1; }
	grep -q "already up" <<<"$out" || { echo "# second up did not say 'already up': $out"; return 1; }
	after=$(cat "$RUN/pids")
	t_expect "processes after a second up" "$before" "$after"
}

case_lab_status() {
	local out
	out=$($LAB status --prefix "$P" 2>&1) || { echo "# status failed: $out"; return 1; }
	grep -qE "^  $P-n3 +pid [0-9]+ +running" <<<"$out" ||
		{ echo "# status does not show node 3 running:"; sed 's/^/#   /' <<<"$out"; return 1; }
}

case_lab_dp_through_the_node() {
	local out
	out=$("$BIN/shoalctl" dp --node "$P-n2" 2>&1) || { echo "# shoalctl dp failed: $out"; return 1; }
	grep -q "$P-n2" <<<"$out" || { echo "# shoalctl dp does not name the node:"; sed 's/^/#   /' <<<"$out"; return 1; }
	out=$("$BIN/shoalctl" dp --node "$P-nosuch" 2>&1) && { echo "# dp of a missing node succeeded"; return 1; }
	grep -q "not found" <<<"$out" || { echo "# dp of a missing node: $out"; return 1; }
}

# Whether the Deployment of examples/web.yaml gets pods (the workload controllers are in).
demo_possible() {
	local i pods
	"$BIN/shoalctl" apply -f examples/web.yaml >/dev/null 2>&1 || return 1
	for i in $(seq 1 60); do
		pods=$("$BIN/shoalctl" get pods -l app=web -o json 2>/dev/null | jq '.items | length')
		[ "${pods:-0}" -gt 0 ] && return 0
		sleep 0.5
	done
	return 1
}

case_demo_path() {
	local out
	if ! out=$(scripts/demo --prefix "$P" 2>&1); then
		echo "# scripts/demo failed; its output:"
		sed 's/^/#   /' <<<"$out" | tail -n 40
		return 1
	fi
	grep -q "Every replica answered through the ClusterIP from every node" <<<"$out" ||
		{ echo "# the demo did not report every replica answering:"; sed 's/^/#   /' <<<"$out" | tail -n 30; return 1; }
	# a replica's log, through its node's agent
	local pod
	pod=$("$BIN/shoalctl" get pods -l app=web -o name | head -n1)
	out=$("$BIN/shoalctl" logs "$pod" 2>&1) || { echo "# shoalctl logs $pod: $out"; return 1; }
}

case_lab_down_leaves_nothing() {
	local left
	$LAB down --prefix "$P" -q || { echo "# down failed"; return 1; }
	left=$(t_lab_leftovers "$P")
	if [ -n "$left" ]; then
		echo "# lab down left:"
		sed 's/^/#   /' <<<"$left"
		return 1
	fi
}

case_failed_up_removes_what_it_made() {
	local fake out left
	fake=$(mktemp -d "/tmp/$P-bin.XXXXXX")
	t_cleanup "rm -rf '$fake'"
	ln -s "$BIN/shoald" "$fake/shoald"
	ln -s "$BIN/shoalctl" "$fake/shoalctl"
	# an agent that cannot start (as a broken installation would)
	printf '#!/bin/sh\necho "shoal-agent: cannot start: injected failure" >&2\nexit 1\n' >"$fake/shoal-agent"
	chmod +x "$fake/shoal-agent"
	if out=$(SHOAL_BIN=$fake $LAB up -n 2 --prefix "${P}f" 2>&1); then
		echo "# up with a failing agent succeeded"
		return 1
	fi
	grep -q "removing what was made" <<<"$out" || { echo "# up did not say it cleaned up: $out"; return 1; }
	left=$(t_lab_leftovers "${P}f")
	if [ -n "$left" ]; then
		echo "# a failed up left:"
		sed 's/^/#   /' <<<"$left"
		return 1
	fi
}

if t_lab_can_run lab; then
	t_case lab_up case_lab_up
	t_case lab_up_again_changes_nothing case_lab_up_again_changes_nothing
	t_case lab_status case_lab_status
	t_case lab_dp_through_the_node case_lab_dp_through_the_node
	# shellcheck disable=SC2053
	if [ -z "${SHOAL_TEST_FILTER:-}" ] || [[ demo_path == $SHOAL_TEST_FILTER ]]; then
		if demo_possible; then
			t_case demo_path case_demo_path
		else
			t_skip demo_path "the web Deployment made no pods in 30 s: the workload controllers are not in this build"
		fi
	fi
	t_case lab_down_leaves_nothing case_lab_down_leaves_nothing
	t_case failed_up_removes_what_it_made case_failed_up_removes_what_it_made
fi
t_done
