#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Federation across two clusters, end to end: two labs (scripts/lab) of two nodes each, with
# address plans of their own (--net 1 and --net 2), their fabrics joined through a router
# namespace (scripts/lab join), and a federation shoald whose Clusters a and b are the two
# labs' APIs.
#
# - A FederatedDeployment "web" (pods that answer with their own name) placed by weights
#   a:0, b:1, and a NodePort FederatedService "web" on both clusters: cluster a has no pod of
#   its own, and a client pod in a, asking its Service's ClusterIP, is answered by b's pods
#   (through b's nodes' InternalIP and node port, which the federation published to a as the
#   EndpointSlice web-fed-b; a's node masquerades the pod's traffic leaving the cluster).
# - Weights a:1, b:1 and 4 replicas: a runs 2 pods of its own, and the client is answered by
#   a's pods as well as by b's.
# - Both labs, the router and the federation removed, nothing left behind.
#
# The cases build on each other: run the file whole.
. "$(dirname "$0")/../lib/lib.sh"

cd "$SHOAL_ROOT" || exit 1
LAB=scripts/lab
BIN=$SHOAL_ROOT/build/bin
CG2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
# The two labs' prefixes and address plans (the "fl" prefixes are this test's own).
ID=$(printf '%x' $(($$ % 65536)))
FA=fla$ID
FB=flb$ID
NET_A=1
NET_B=2
t_cleanup "$LAB down --prefix $FB -q"
t_cleanup "$LAB down --prefix $FA -q"
TMP=$(mktemp -d "/tmp/flfed$ID.XXXXXX")
t_cleanup "rm -rf '$TMP'"
FED_SOCK=$TMP/fed.sock
FED_PID=
t_cleanup 'fed_stop'

ctl_a() { SHOAL_SERVER=unix:/run/shoal/$FA/api.sock "$BIN/shoalctl" "$@"; }
ctl_b() { SHOAL_SERVER=unix:/run/shoal/$FB/api.sock "$BIN/shoalctl" "$@"; }
ctl_f() { SHOAL_SERVER=unix:$FED_SOCK "$BIN/shoalctl" "$@"; }

# Stops the federation shoald this test started (by its pid).
fed_stop() {
	local i
	[ -n "$FED_PID" ] || return 0
	kill -TERM "$FED_PID" 2>/dev/null || { FED_PID=; return 0; }
	for ((i = 0; i < 100; i++)); do
		kill -0 "$FED_PID" 2>/dev/null || break
		sleep 0.05
	done
	kill -KILL "$FED_PID" 2>/dev/null || true
	wait "$FED_PID" 2>/dev/null || true
	FED_PID=
}

# The Ready pods of selector $2 in cluster $1 (ctl_a or ctl_b), names sorted, one a line.
ready_pods() {
	"$1" get pods -l "$2" -o json | jq -r '.items[] | select(.metadata.deletionTimestamp == null) |
		select(any(.status.conditions[]?; .type == "Ready" and .status == "True")) |
		.metadata.name' | sort
}

n_ready_is() { [ "$(ready_pods "$1" "$2" | wc -l)" -eq "$3" ]; }

# The pods of selector $2 in cluster $1 that are not being deleted, all Ready, exactly $3.
settled_at() {
	local all
	all=$("$1" get pods -l "$2" -o json | jq '[.items[] | select(.metadata.deletionTimestamp == null)] | length')
	[ "$all" -eq "$3" ] && n_ready_is "$1" "$2" "$3"
}

# The pid of container $2 of pod $1 in cluster a.
ctr_pid_a() { t_ctr_pid ctl_a "/run/shoal/$FA" "$1" "$2"; }

# ask URL: one request from inside the client pod of cluster a (its network namespace and
# its cgroup, where the node's socket load balancer applies), printing the answer.
ask() {
	local pid cg
	pid=$(ctr_pid_a client client) || return 0
	[ -n "$pid" ] && [ -d "/proc/$pid" ] || return 0
	cg=$(awk -F: '$1 == "0" { print $3 }' "/proc/$pid/cgroup")
	sh -c 'echo $$ >"$1/cgroup.procs" && exec nsenter --net="/proc/$0/ns/net" curl -s --max-time 3 "$2"' \
		"$pid" "$CG2$cg" "$1" 2>/dev/null || true
}

# answers_from WHAT ALLOWED MUST URL: asks URL from the client pod N_ASK (60) times, each a
# new connection; every request must be answered, by a pod in ALLOWED, and every pod of MUST
# (names, one a line) must have answered (fails naming the request or the pod).
N_ASK=60
answers_from() {
	local what=$1 allowed=$2 must=$3 url=$4 i a seen="" p
	for ((i = 1; i <= N_ASK; i++)); do
		a=$(ask "$url")
		if [ -z "$a" ]; then
			echo "# $what: request $i got no answer (every request must be answered)"
			return 1
		fi
		if ! grep -qxF -- "$a" <<<"$allowed"; then
			echo "# $what: request $i answered by '$a', which is not one of: $(tr '\n' ' ' <<<"$allowed")"
			return 1
		fi
		seen="$seen $a"
	done
	for p in $must; do
		grep -qw -- "$p" <<<"$seen" || { echo "# $what: pod $p never answered in $N_ASK requests"; return 1; }
	done
}

# The first answer of URL from the client pod is not empty.
answers() { [ -n "$(ask "$1")" ]; }

lab_up() {
	local out
	if ! out=$($LAB up -n 2 --prefix "$1" --net "$2" -q --agent-arg --lease-renew-interval=2 \
		--agent-arg --status-interval=2 2>&1); then
		echo "# scripts/lab up --prefix $1 --net $2 failed:"
		sed 's/^/#   /' <<<"$out" | tail -n 30
		return 1
	fi
}

case_labs_up_and_joined() {
	local out k a
	lab_up "$FA" "$NET_A" && lab_up "$FB" "$NET_B" || return 1
	# the address plans: node addresses and pod CIDRs of their own, another ClusterIP range
	a=$(ctl_b get nodes -o json | jq -r '[.items[] | .spec.podCIDR] | sort | join(" ")')
	t_expect "b's pod CIDRs" "10.102.1.0/24 10.102.2.0/24" "$a" || return 1
	a=$(ctl_b get service kubernetes -o json 2>/dev/null | jq -r '.spec.clusterIP // empty')
	[ -z "$a" ] || [[ $a == 10.97.32.* ]] || { echo "# b's kubernetes Service has $a, not from 10.97.32.0/20"; return 1; }
	if ! out=$($LAB join --prefix "$FA" --with "$FB" 2>&1); then
		echo "# scripts/lab join failed:"
		sed 's/^/#   /' <<<"$out"
		return 1
	fi
	# a second join of the same labs changes nothing; joining a lab with itself is refused
	$LAB join --prefix "$FA" --with "$FB" -q || { echo "# a second join failed"; return 1; }
	if $LAB join --prefix "$FA" --with "$FA" -q 2>/dev/null; then
		echo "# joining a lab with itself succeeded"
		return 1
	fi
	# each node reaches the other lab's nodes through the router, and only those routes
	for k in 1 2; do
		ip netns exec "$FA-n$k" ping -c1 -W2 "10.99.$NET_B.$k" >/dev/null ||
			{ echo "# $FA-n$k does not reach 10.99.$NET_B.$k"; return 1; }
		ip netns exec "$FB-n$k" ping -c1 -W2 "10.99.$NET_A.$k" >/dev/null ||
			{ echo "# $FB-n$k does not reach 10.99.$NET_A.$k"; return 1; }
	done
	a=$(ip -n "$FA-n1" route show "10.99.$NET_B.0/24")
	[[ $a == *"via 10.99.$NET_A.254"* ]] || { echo "# $FA-n1's route to b's fabric: '$a'"; return 1; }
}

case_federation_up() {
	local i c
	"$BIN/shoald" --federation --federation-id "fl$ID" --listen "unix:$FED_SOCK" \
		--state "$TMP/state" --cluster-probe-interval 1s --log-level info \
		>"$TMP/fed.log" 2>&1 &
	FED_PID=$!
	for ((i = 0; i < 100; i++)); do
		curl -sf --max-time 2 --unix-socket "$FED_SOCK" http://fed/readyz >/dev/null 2>&1 && break
		kill -0 "$FED_PID" 2>/dev/null || { echo "# the federation shoald exited:"; tail -n 20 "$TMP/fed.log" | sed 's/^/#   /'; return 1; }
		sleep 0.1
	done
	cat >"$TMP/clusters.yaml" <<EOF
apiVersion: federation.shoal.io/v1
kind: Cluster
metadata: {name: a, labels: {topology.kubernetes.io/region: lab-a}}
spec: {apiEndpoint: "unix:/run/shoal/$FA/api.sock"}
---
apiVersion: federation.shoal.io/v1
kind: Cluster
metadata: {name: b, labels: {topology.kubernetes.io/region: lab-b}}
spec: {apiEndpoint: "unix:/run/shoal/$FB/api.sock"}
EOF
	c=$(ctl_f apply -f "$TMP/clusters.yaml" 2>&1) || { echo "# apply the Clusters: $c"; return 1; }
	for c in a b; do
		wait_for 30 "Cluster $c to be Ready" eval "ctl_f get cluster $c -o json |
			jq -e '.status.conditions[]? | select(.type == \"Ready\" and .status == \"True\")'" ||
			{ ctl_f get cluster "$c" -o json | jq -c .status | sed 's/^/#   /'; return 1; }
	done
}

# The federated web application: N replicas by weights a:WA, b:WB.
fed_manifest() {
	cat <<EOF
apiVersion: federation.shoal.io/v1
kind: FederatedDeployment
metadata: {name: web}
spec:
  replicas: $1
  template:
    metadata: {labels: {app: web}}
    spec:
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec:
          terminationGracePeriodSeconds: 2
$(web_containers 10)
  placement:
    clusters: [a, b]
    replicaScheduling:
      type: Divided
      weights: [{cluster: a, weight: $2}, {cluster: b, weight: $3}]
---
apiVersion: federation.shoal.io/v1
kind: FederatedService
metadata: {name: web}
spec:
  template:
    metadata: {labels: {app: web}}
    spec:
      type: NodePort
      selector: {app: web}
      ports: [{name: http, port: 80, targetPort: 8080}]
  placement:
    clusters: [a, b]
EOF
}

# The addresses ("IP:PORT") of cluster a's EndpointSlice web-fed-b, sorted, space-separated.
slice_fed_b() {
	ctl_a get endpointslice web-fed-b -o json 2>/dev/null |
		jq -r '[.endpoints[].addresses[0] + ":" + (.ports // [] | .[0].port | tostring)] | sort | join(" ")' 2>/dev/null
}

# b's node port of web, and what a should hold for b: b's node addresses at it.
b_addresses() {
	local np
	np=$(ctl_b get service web -o json | jq -r '.spec.ports[0].nodePort')
	echo "10.99.$NET_B.1:$np 10.99.$NET_B.2:$np"
}
slice_is_b() { [ "$(slice_fed_b)" = "$(b_addresses)" ]; }

case_remote_backends_answer() {
	local out vip bpods
	fed_manifest 2 0 1 >"$TMP/web.yaml"
	out=$(ctl_f apply -f "$TMP/web.yaml" 2>&1) || { echo "# apply web: $out"; return 1; }
	cat >"$TMP/client.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: client}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: client, image: debian:bookworm, command: ["sleep", "3600"],
     resources: {requests: {cpu: 10m, memory: 8Mi}}}
EOF
	out=$(ctl_a apply -f "$TMP/client.yaml" 2>&1) || { echo "# apply the client pod in a: $out"; return 1; }
	wait_for 60 "2 Ready web pods in cluster b" settled_at ctl_b app=web 2 ||
		{ ctl_f get fdeploy web -o json | jq -c .status | sed 's/^/#   /'; return 1; }
	n_ready_is ctl_a app=web 0 || { echo "# cluster a runs web pods: $(ready_pods ctl_a app=web | tr '\n' ' ')"; return 1; }
	wait_for 60 "the client pod in a to be Ready" n_ready_is ctl_a app=client 1 || return 1
	wait_for 30 "cluster a's Service web" ctl_a get service web || return 1
	if ! wait_for 45 "a's EndpointSlice web-fed-b to hold b's nodes at the node port ($(b_addresses))" slice_is_b; then
		echo "# a's web-fed-b: '$(slice_fed_b)'"
		ctl_f get fsvc web -o json | jq -c .status | sed 's/^/#   /'
		return 1
	fi
	vip=$(ctl_a get service web -o json | jq -r .spec.clusterIP)
	bpods=$(ready_pods ctl_b app=web)
	wait_for 30 "a first answer through a's VIP $vip" answers "http://$vip/" ||
		{ ctl_a dp --node "$FA-n1" | sed 's/^/#   /'; return 1; }
	answers_from "a's VIP $vip, a without pods" "$bpods" "$bpods" "http://$vip/" || return 1
}

case_local_and_remote_answer() {
	local out vip apods bpods
	[ -n "$FED_PID" ] || { echo "# no federation (run the file whole)"; return 1; }
	fed_manifest 4 1 1 >"$TMP/web.yaml"
	out=$(ctl_f apply -f "$TMP/web.yaml" 2>&1) || { echo "# apply web 4 a:1 b:1: $out"; return 1; }
	wait_for 60 "2 Ready web pods in cluster a" settled_at ctl_a app=web 2 || return 1
	wait_for 60 "2 Ready web pods in cluster b" settled_at ctl_b app=web 2 || return 1
	vip=$(ctl_a get service web -o json | jq -r .spec.clusterIP)
	apods=$(ready_pods ctl_a app=web)
	bpods=$(ready_pods ctl_b app=web)
	# every one of a's pods answers, and nobody but a's and b's pods
	answers_from "a's VIP $vip, a with 2 pods" "$(printf '%s\n%s\n' "$apods" "$bpods")" \
		"$apods" "http://$vip/" || return 1
}

case_everything_removed() {
	local left p
	fed_stop
	$LAB down --prefix "$FB" -q || { echo "# down $FB failed"; return 1; }
	# b's down removed the router and a's routes to b
	if ip netns list | awk '{print $1}' | grep -qx "$FA-router"; then
		echo "# $FA-router outlived lab $FB"
		return 1
	fi
	left=$(ip -n "$FA-n1" route show "10.99.$NET_B.0/24" 2>&1)
	[ -z "$left" ] || { echo "# $FA-n1 still routes to b's fabric: $left"; return 1; }
	$LAB down --prefix "$FA" -q || { echo "# down $FA failed"; return 1; }
	for p in "$FA" "$FB"; do
		left=$(t_lab_leftovers "$p")
		[ -z "$left" ] || { echo "# lab $p left:"; sed 's/^/#   /' <<<"$left"; return 1; }
	done
}

if t_lab_can_run fed jq socat; then
	t_case labs_up_and_joined case_labs_up_and_joined
	t_case federation_up case_federation_up
	t_case remote_backends_answer case_remote_backends_answer
	t_case local_and_remote_answer case_local_and_remote_answer
	t_case everything_removed case_everything_removed
fi
t_done
