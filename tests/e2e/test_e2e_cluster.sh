#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A cluster's workloads and failures, end to end, on two labs (scripts/lab) of three nodes:
#
# - the BPF-proxy lab, whose shoald gives up on a silent node after 10 s (its agents renew
#   their Lease every second): a DaemonSet runs one pod on every node; a Job of 3 completions,
#   2 at a time, completes with exactly 3 counted; a headless Service's EndpointSlices list
#   its pods; then a node is lost (its agent killed, its namespace removed): it turns
#   Ready=Unknown and is tainted unreachable:NoExecute, its pods are evicted once their
#   3-second toleration runs out and replaced on the other nodes, and the Service's VIP (from
#   every live node) and NodePort (from outside) keep answering, from live pods only; `down`
#   then removes everything, the lost node's remains included.
# - the nftables-proxy lab: the demo's path (VIP from every node, NodePort from outside), a
#   scale from 3 to 1 and back to 3 with the answers following, and `down`.
#
# The cases of a lab build on each other (each brings up what it needs when run alone, but
# the node loss is one-way): run the file whole.
. "$(dirname "$0")/../lib/lib.sh"

cd "$SHOAL_ROOT" || exit 1
LAB=scripts/lab
BIN=$SHOAL_ROOT/build/bin
CG2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
NP=${P}n # the nftables lab
GRACE_S=10
TOLERATION_S=3
t_cleanup "$LAB down --prefix $P -q"
t_cleanup "$LAB down --prefix $NP -q"
TMP=$(mktemp -d "/tmp/$P-cluster.XXXXXX")
t_cleanup "rm -rf '$TMP'"

# The lab the cases talk to (use_lab PREFIX).
use_lab() {
	LP=$1
	RUN=/run/shoal/$LP
	export SHOAL_SERVER=unix:$RUN/api.sock
}
use_lab "$P"

ctl() { "$BIN/shoalctl" "$@"; }

# Brings up the BPF lab (a no-op when it is up): lost nodes are noticed within seconds.
lab_up() {
	local out
	use_lab "$P"
	if ! out=$($LAB up -n 3 --prefix "$P" -q \
		--shoald-arg "--node-monitor-grace-period=${GRACE_S}s" \
		--agent-arg --lease-renew-interval=1 2>&1); then
		echo "# scripts/lab up failed:"
		sed 's/^/#   /' <<<"$out" | tail -n 30
		return 1
	fi
}

# Nodes (name, Ready status) as "name status" lines.
node_ready() {
	ctl get nodes -o json | jq -r '.items[] | "\(.metadata.name) \([.status.conditions[]? |
		select(.type == "Ready") | .status][0] // "none")"'
}

# Pods of selector $1, not being deleted, as "name node ip phase ready" lines.
pods_of() {
	ctl get pods -l "$1" -o json | jq -r '.items[] | select(.metadata.deletionTimestamp == null) |
		[.metadata.name, .spec.nodeName // "-", .status.podIP // "-", .status.phase // "-",
		 any(.status.conditions[]?; .type == "Ready" and .status == "True")] | map(tostring) | join(" ")'
}

# The Ready pods of selector $1 (not being deleted) as "name node ip" lines, sorted.
ready_pods() {
	ctl get pods -l "$1" -o json | jq -r '.items[] | select(.metadata.deletionTimestamp == null) |
		select(any(.status.conditions[]?; .type == "Ready" and .status == "True")) |
		"\(.metadata.name) \(.spec.nodeName) \(.status.podIP)"' | sort
}

# The ready endpoint addresses of Service $1, sorted, one a line.
ready_endpoints() {
	ctl get endpointslices -l "kubernetes.io/service-name=$1" -o json |
		jq -r '.items[].endpoints[]? | select(.conditions.ready != false) | .addresses[]' | sort
}

# n_ready_is SELECTOR N: exactly N Ready pods.
n_ready_is() { [ "$(ready_pods "$1" | wc -l)" -eq "$2" ]; }

# endpoints_are SERVICE SELECTOR: the Service's ready endpoints are exactly the Ready pods.
endpoints_are() {
	local want
	want=$(ready_pods "$2" | awk '{print $3}' | sort)
	[ -n "$want" ] && [ "$(ready_endpoints "$1")" = "$want" ]
}

# The ready backends of Service default/web in node $1's data plane (shoalctl dp, either
# proxy), addresses sorted, one a line.
dp_backends() {
	ctl dp --node "$1" | awk '/^default\/web[:\/]/ { on = 1; next } on && /^[^ ]/ { on = 0 }
		on && /^    [0-9]/ && /  ready( |$)/ { split($1, a, ":"); print a[1] }' | sort
}

# dp_holds NODE ADDRESSES: node's data plane sends web's traffic to those addresses only.
dp_holds() { [ "$(dp_backends "$1")" = "$2" ]; }

# dp_converged WHAT NODES...: waits until each node's data plane holds web's Ready pods as
# its backends, and nothing else.
dp_converged() {
	local want n
	want=$(ready_pods app=web | awk '{print $3}' | sort)
	for n in "$@"; do
		if ! wait_for 30 "$n's data plane to hold web's Ready pods ($(tr '\n' ' ' <<<"$want"))" \
			dp_holds "$n" "$want"; then
			echo "# $n holds: $(dp_backends "$n" | tr '\n' ' ')"
			return 1
		fi
	done
}

# ask NODE URL: one request from a process in node NODE's network namespace and in a cgroup
# below the node's (where the node's socket load balancer applies).
ask() {
	local node=$1 url=$2 n=${1##*-n} dir
	dir=$CG2/$LP/n$n/e2e-client
	mkdir -p "$dir" || return 0
	sh -c 'echo $$ >"$1/cgroup.procs" && exec nsenter --net="/run/netns/$2" curl -s --max-time 3 "$3"' \
		sh "$dir" "$node" "$url" 2>/dev/null || true
}

# ask_outside NODE_IP PORT: one request to a NodePort from the outside namespace.
ask_outside() {
	ip netns exec "$LP-outside" curl -s --max-time 3 "http://$1:$2/" 2>/dev/null || true
}

# answers_only_from WHAT PODS CMD...: runs CMD (one request, which prints the pod that
# answered) until every pod of PODS (names, one a line) answered, at least 10 and at most 40
# times; fails naming a request that got no answer or an answer from a pod not in PODS.
answers_only_from() {
	local what=$1 pods=$2 i a seen="" p missing
	shift 2
	for ((i = 1; i <= 40; i++)); do
		a=$("$@")
		if [ -z "$a" ]; then
			echo "# $what: request $i got no answer (pods: $(tr '\n' ' ' <<<"$pods"))"
			return 1
		fi
		if ! grep -qxF -- "$a" <<<"$pods"; then
			echo "# $what: request $i answered by '$a', which is not one of: $(tr '\n' ' ' <<<"$pods")"
			return 1
		fi
		seen="$seen $a"
		missing=0
		for p in $pods; do grep -qw -- "$p" <<<"$seen" || missing=1; done
		[ "$i" -ge 10 ] && [ "$missing" -eq 0 ] && return 0
	done
	for p in $pods; do
		grep -qw -- "$p" <<<"$seen" || { echo "# $what: pod $p never answered in 40 requests"; return 1; }
	done
}

svc_field() { ctl get service "$1" -o json | jq -r "$2"; }

# The web application: a Deployment of N replicas that answer with their pod's name, which
# tolerate an unreachable node for TOLERATION_S, a NodePort Service and a headless one.
web_manifest() {
	cat <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: $1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: $TOLERATION_S}
$(web_containers 6)
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-headless}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 8080, targetPort: 8080}]
EOF
}

# Applies the web application (3 replicas) and waits until it serves.
web_up() {
	local out
	web_manifest 3 >"$TMP/web.yaml"
	out=$(ctl apply -f "$TMP/web.yaml" 2>&1) || { echo "# apply web: $out"; return 1; }
	wait_for 90 "3 Ready web pods (have: $(ready_pods app=web | wc -l))" n_ready_is app=web 3 ||
		{ pods_of app=web | sed 's/^/#   /'; return 1; }
	wait_for 30 "the Service web to have the 3 pods as endpoints" endpoints_are web app=web ||
		{ echo "# endpoints: $(ready_endpoints web | tr '\n' ' ')"; return 1; }
}

case_lab_options() {
	local out
	out=$($LAB --help 2>&1) || { echo "# scripts/lab --help failed: $out"; return 1; }
	grep -q -- "--shoald-arg ARG" <<<"$out" && grep -q -- "--agent-arg ARG" <<<"$out" ||
		{ echo "# --help does not describe --shoald-arg and --agent-arg:"; sed 's/^/#   /' <<<"$out"; return 1; }
	if out=$($LAB up --prefix "$P" --agent-arg 2>&1); then
		echo "# up with --agent-arg and no argument succeeded"
		return 1
	fi
	grep -q -- "--agent-arg wants an argument" <<<"$out" ||
		{ echo "# up --agent-arg without its argument said: $out"; return 1; }
	[ -z "$(t_lab_leftovers "$P")" ] || { echo "# a refused up left: $(t_lab_leftovers "$P")"; return 1; }
}

# ---- the BPF lab ------------------------------------------------------------------------

case_cluster_up() {
	local ready pid
	lab_up || return 1
	ready=$(node_ready | awk '$2 == "True"' | wc -l)
	t_expect "Ready nodes" 3 "$ready" || return 1
	# the options given to scripts/lab reached the processes
	pid=$(awk '$1 == "shoald" {print $2}' "$RUN/pids")
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--node-monitor-grace-period=${GRACE_S}s" ||
		{ echo "# shoald runs without --node-monitor-grace-period: $(tr '\0' ' ' <"/proc/$pid/cmdline")"; return 1; }
	pid=$(awk '$1 == "'"$P"'-n3" {print $2}' "$RUN/pids")
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--lease-renew-interval=1" ||
		{ echo "# agent 3 runs without --lease-renew-interval: $(tr '\0' ' ' <"/proc/$pid/cmdline")"; return 1; }
}

ds_pods_everywhere() {
	local got
	got=$(pods_of app=every | awk '$4 == "Running" {print $2}' | sort -u | tr '\n' ' ')
	[ "$got" = "$P-n1 $P-n2 $P-n3 " ] && [ "$(pods_of app=every | wc -l)" -eq 3 ]
}

case_daemonset_runs_on_every_node() {
	local out st
	lab_up || return 1
	cat >"$TMP/ds.yaml" <<EOF
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: every}
spec:
  selector: {matchLabels: {app: every}}
  template:
    metadata: {labels: {app: every}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: c, image: debian:bookworm, command: ["sleep", "3600"],
         resources: {requests: {cpu: 10m, memory: 8Mi}}}
EOF
	out=$(ctl apply -f "$TMP/ds.yaml" 2>&1) || { echo "# apply the DaemonSet: $out"; return 1; }
	if ! wait_for 60 "one Running pod of the DaemonSet on each of the 3 nodes" ds_pods_everywhere; then
		echo "# its pods (name node ip phase ready):"
		pods_of app=every | sed 's/^/#   /'
		return 1
	fi
	st=$(ctl get daemonset every -o json | jq -c '[.status.desiredNumberScheduled, .status.currentNumberScheduled]')
	t_expect "DaemonSet status [desired, current]" "[3,3]" "$st" || return 1
	# it leaves the cluster to the next cases
	out=$(ctl delete daemonset every 2>&1) || { echo "# delete the DaemonSet: $out"; return 1; }
}

job_complete() {
	[ "$(ctl get job three -o json | jq -r '[.status.conditions[]? | select(.type == "Complete")
		| .status][0] // "none"')" = True ]
}

case_job_runs_to_completion() {
	local out i st active max=0 succeeded finished
	lab_up || return 1
	cat >"$TMP/job.yaml" <<EOF
apiVersion: batch/v1
kind: Job
metadata: {name: three}
spec:
  completions: 3
  parallelism: 2
  template:
    metadata: {labels: {app: three}}
    spec:
      restartPolicy: Never
      containers:
      - {name: c, image: debian:bookworm, command: ["sleep", "2"],
         resources: {requests: {cpu: 10m, memory: 8Mi}}}
EOF
	out=$(ctl apply -f "$TMP/job.yaml" 2>&1) || { echo "# apply the Job: $out"; return 1; }
	# while it runs: never more than 2 pods at once, never more than 3 counted
	for ((i = 0; i < 180; i++)); do
		st=$(ctl get job three -o json 2>/dev/null) || { sleep 0.5; continue; }
		active=$(ctl get pods -l app=three -o json | jq '[.items[] | select(.metadata.deletionTimestamp
			== null) | select(.status.phase != "Succeeded" and .status.phase != "Failed")] | length')
		[ "$active" -gt "$max" ] && max=$active
		succeeded=$(jq '.status.succeeded // 0' <<<"$st")
		[ "$succeeded" -le 3 ] || { echo "# status.succeeded is $succeeded, more than the 3 completions"; return 1; }
		job_complete && break
		sleep 0.5
	done
	job_complete || { echo "# the Job did not complete in 90 s: $(jq -c .status <<<"$st")"; return 1; }
	[ "$max" -le 2 ] || { echo "# $max pods ran at once, parallelism is 2"; return 1; }
	# counted exactly once each, also a while later
	sleep 2
	st=$(ctl get job three -o json)
	t_expect "status.succeeded" 3 "$(jq '.status.succeeded' <<<"$st")" || return 1
	t_expect "status.failed" 0 "$(jq '.status.failed // 0' <<<"$st")" || return 1
	t_expect "status.active" 0 "$(jq '.status.active // 0' <<<"$st")" || return 1
	finished=$(ctl get pods -l app=three -o json | jq '[.items[] | select(.status.phase == "Succeeded")] | length')
	t_expect "pods that succeeded" 3 "$finished" || return 1
	jq -e '.status.completionTime' <<<"$st" >/dev/null || { echo "# no status.completionTime"; return 1; }
}

case_headless_service_lists_pods() {
	local want got cip slices
	lab_up && web_up || return 1
	cip=$(svc_field web-headless .spec.clusterIP)
	t_expect "the headless Service's clusterIP" None "$cip" || return 1
	want=$(ready_pods app=web | awk '{print $3}' | sort)
	if ! wait_for 30 "the headless Service's EndpointSlices to list the 3 pods" \
		endpoints_are web-headless app=web; then
		echo "# want $(tr '\n' ' ' <<<"$want"), have $(ready_endpoints web-headless | tr '\n' ' ')"
		return 1
	fi
	# each endpoint names its pod and node
	slices=$(ctl get endpointslices -l kubernetes.io/service-name=web-headless -o json)
	got=$(jq -r '.items[].endpoints[] | "\(.targetRef.name) \(.nodeName) \(.addresses[0])"' <<<"$slices" | sort)
	t_expect "endpoints (pod node address)" "$(ready_pods app=web)" "$got" || return 1
	got=$(jq -r '[.items[].ports[]? | "\(.name)/\(.port)"] | unique | join(",")' <<<"$slices")
	t_expect "the headless slices' ports" "http/8080" "$got" || return 1
}

# The node the lost-node cases take down: the one of web's pods on n2, else of the first pod.
victim() {
	local v
	if [ -f "$TMP/victim" ]; then
		cat "$TMP/victim"
		return
	fi
	v=$(ready_pods app=web | awk -v n="$P-n2" '$2 == n {print $2; exit}')
	[ -n "$v" ] || v=$(ready_pods app=web | awk 'NR == 1 {print $2}')
	echo "$v" >"$TMP/victim"
	echo "$v"
}

node_lost() {
	local n=$1 j
	j=$(ctl get node "$n" -o json)
	jq -e '[.status.conditions[]? | select(.type == "Ready") | .status][0] == "Unknown"' <<<"$j" &&
		jq -e 'any(.spec.taints[]?; .key == "node.kubernetes.io/unreachable" and .effect == "NoExecute")' <<<"$j"
}

case_node_loss_marks_node_unknown() {
	local v pid others before out
	lab_up && web_up || return 1
	v=$(victim)
	[ -n "$v" ] || { echo "# no web pod runs anywhere"; return 1; }
	before=$(ready_pods app=web | awk -v n="$v" '$2 == n' | wc -l)
	echo "# losing node $v, which runs $before of web's pods"
	pid=$(awk -v n="$v" '$1 == n {print $2}' "$RUN/pids")
	[ -n "$pid" ] || { echo "# no pid of $v's agent in $RUN/pids"; return 1; }
	# (the lab started it: only that process, by pid, after checking it is that agent)
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "shoal-agent .*--node $v " ||
		{ echo "# pid $pid is not $v's agent"; return 1; }
	kill -KILL "$pid" || { echo "# could not stop $v's agent"; return 1; }
	ip netns del "$v" || { echo "# could not remove namespace $v"; return 1; }
	if ! wait_for $((GRACE_S + 30)) "node $v to be Ready=Unknown and tainted unreachable:NoExecute" node_lost "$v"; then
		ctl get node "$v" -o json | jq -c '{conditions: .status.conditions, taints: .spec.taints}' | sed 's/^/#   /'
		return 1
	fi
	# the other nodes stay Ready
	others=$(node_ready | awk -v n="$v" '$1 != n && $2 == "True"' | wc -l)
	t_expect "Ready nodes besides $v" 2 "$others" || return 1
	# its pods stop taking traffic: none of them is Ready (or they are on their way out)
	out=$(ready_pods app=web | awk -v n="$v" '$2 == n')
	[ -z "$out" ] || { echo "# pods of the lost node $v still Ready: $out"; return 1; }
}

# No pod of web on node $1 is left without a deletionTimestamp, and 3 are Ready elsewhere.
moved_off() {
	[ "$(ready_pods app=web | awk -v n="$1" '$2 != n' | wc -l)" -eq 3 ] &&
		[ "$(pods_of app=web | awk -v n="$1" '$2 == n' | wc -l)" -eq 0 ]
}

case_node_loss_moves_pods() {
	local v evicted
	v=$(victim)
	[ -n "$v" ] && node_lost "$v" >/dev/null 2>&1 || { echo "# no lost node (run the file whole)"; return 1; }
	if ! wait_for $((TOLERATION_S + 60)) "web's pods to leave $v and 3 to be Ready on the others" moved_off "$v"; then
		echo "# web's pods (name node ip phase ready):"
		pods_of app=web | sed 's/^/#   /'
		return 1
	fi
	# the pods that were on it were evicted (deleted after their toleration), not left running
	evicted=$(ctl get pods -l app=web -o json | jq --arg n "$v" '[.items[] | select(.spec.nodeName == $n)
		| select(.metadata.deletionTimestamp == null)] | length')
	t_expect "pods of web on $v not being deleted" 0 "$evicted" || return 1
}

case_service_answers_from_live_pods() {
	local v live vip port n node ip
	v=$(victim)
	[ -n "$v" ] && node_lost "$v" >/dev/null 2>&1 || { echo "# no lost node (run the file whole)"; return 1; }
	live=$(ready_pods app=web | awk -v n="$v" '$2 != n {print $1}')
	if ! wait_for 30 "web's endpoints to be its live pods only" endpoints_are web app=web; then
		echo "# endpoints $(ready_endpoints web | tr '\n' ' '), live pods: $(ready_pods app=web | tr '\n' ' ')"
		return 1
	fi
	# shellcheck disable=SC2046 # one node a word
	dp_converged $(node_ready | awk -v n="$v" '$1 != n {print $1}') || return 1
	vip=$(svc_field web .spec.clusterIP)
	port=$(svc_field web '.spec.ports[0].nodePort')
	for n in 1 2 3; do
		node=$P-n$n
		[ "$node" = "$v" ] && continue
		answers_only_from "the VIP $vip from $node" "$live" ask "$node" "http://$vip/" || return 1
		ip=10.99.0.$n
		answers_only_from "the NodePort $ip:$port from outside" "$live" ask_outside "$ip" "$port" ||
			return 1
	done
}

case_lab_down_after_node_loss() {
	local left
	$LAB down --prefix "$P" -q || { echo "# down failed"; return 1; }
	left=$(t_lab_leftovers "$P")
	if [ -n "$left" ]; then
		echo "# lab down after a node loss left:"
		sed 's/^/#   /' <<<"$left"
		return 1
	fi
}

# ---- the nftables lab -------------------------------------------------------------------

case_nft_demo_path() {
	local out pid vip
	use_lab "$NP"
	# (the agents' options may also come from the environment)
	if ! out=$(SHOAL_LAB_AGENT_ARGS="--lease-renew-interval=2 --status-interval=5" \
		scripts/demo --prefix "$NP" --proxy nftables 2>&1); then
		echo "# scripts/demo --proxy nftables failed; its output:"
		sed 's/^/#   /' <<<"$out" | tail -n 40
		return 1
	fi
	grep -q "Every replica answered through the ClusterIP from every node" <<<"$out" ||
		{ echo "# the demo did not report every replica answering:"; sed 's/^/#   /' <<<"$out" | tail -n 30; return 1; }
	# the agents run the nftables proxy (with the options from the environment), and it
	# holds the Service
	pid=$(awk -v n="$NP-n1" '$1 == n {print $2}' "$RUN/pids")
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--proxy nftables .*--lease-renew-interval=2 --status-interval=5" ||
		{ echo "# agent 1 runs as: $(tr '\0' ' ' <"/proc/$pid/cmdline")"; return 1; }
	vip=$(svc_field web .spec.clusterIP)
	ip netns exec "$NP-n1" nft list table inet shoal 2>/dev/null | grep -q -- "$vip" ||
		{ echo "# table inet shoal in $NP-n1 does not hold the VIP $vip"; return 1; }
}

# serves_from_all N: web has N Ready pods, they are its endpoints, and they (only they)
# answer through the VIP from every node and the NodePort from outside on every node.
serves_from_all() {
	local want=$1 pods vip port n
	if ! wait_for 90 "$want Ready web pods and the Service's endpoints to match" \
		eval "n_ready_is app=web $want && endpoints_are web app=web"; then
		echo "# pods: $(ready_pods app=web | tr '\n' ' '); endpoints: $(ready_endpoints web | tr '\n' ' ')"
		return 1
	fi
	dp_converged "$NP-n1" "$NP-n2" "$NP-n3" || return 1
	pods=$(ready_pods app=web | awk '{print $1}')
	vip=$(svc_field web .spec.clusterIP)
	port=$(svc_field web '.spec.ports[0].nodePort')
	for n in 1 2 3; do
		answers_only_from "the VIP $vip from $NP-n$n" "$pods" ask "$NP-n$n" "http://$vip/" || return 1
		answers_only_from "the NodePort 10.99.0.$n:$port from outside" "$pods" \
			ask_outside "10.99.0.$n" "$port" || return 1
	done
}

case_nft_scale_down_and_up() {
	local out
	use_lab "$NP"
	[ -S "$RUN/api.sock" ] || { echo "# the nftables lab is not up (run the file whole)"; return 1; }
	out=$(ctl scale deployment web --replicas 1 2>&1) || { echo "# scale to 1: $out"; return 1; }
	serves_from_all 1 || return 1
	out=$(ctl scale deployment web --replicas 3 2>&1) || { echo "# scale to 3: $out"; return 1; }
	serves_from_all 3 || return 1
}

case_nft_lab_down() {
	local left
	$LAB down --prefix "$NP" -q || { echo "# down failed"; return 1; }
	left=$(t_lab_leftovers "$NP")
	if [ -n "$left" ]; then
		echo "# lab down left:"
		sed 's/^/#   /' <<<"$left"
		return 1
	fi
}

if t_lab_can_run cluster jq socat; then
	t_case lab_options case_lab_options
	t_case cluster_up case_cluster_up
	t_case daemonset_runs_on_every_node case_daemonset_runs_on_every_node
	t_case job_runs_to_completion case_job_runs_to_completion
	t_case headless_service_lists_pods case_headless_service_lists_pods
	t_case node_loss_marks_node_unknown case_node_loss_marks_node_unknown
	t_case node_loss_moves_pods case_node_loss_moves_pods
	t_case service_answers_from_live_pods case_service_answers_from_live_pods
	t_case lab_down_after_node_loss case_lab_down_after_node_loss
	t_case nft_demo_path case_nft_demo_path
	t_case nft_scale_down_and_up case_nft_scale_down_and_up
	t_case nft_lab_down case_nft_lab_down
fi
t_done
