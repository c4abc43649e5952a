#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Workloads end to end on a lab of three nodes (scripts/lab: shoald and one shoal-agent per
# node): a Deployment of echo servers (each answers with its pod's name and version) behind a
# ClusterIP Service, and a DaemonSet of client pods, one per node. Every request is made from
# inside a client pod (its network namespace and its cgroup, where the node's socket load
# balancer applies), one connection per request, and every answer is checked:
#   - the VIP answers from a pod on every node, each replica in turn;
#   - pod statuses settle: once the pods are Ready the agents write nothing but usage samples;
#   - scaling 3 -> 6 -> 1: the EndpointSlice and every node's data plane follow, and once a
#     node's data plane has dropped a backend no answer comes from it (a removed pod still
#     serves for a moment in its preStop hook, so an answer from it would be seen);
#   - a rolling update (maxUnavailable 0) under a steady client: zero failed requests;
#   - a container's process killed: it is restarted (restartCount + 1) and its endpoint is
#     not ready meanwhile; a failing liveness probe restarts it too;
#   - an agent restarted during traffic: zero failed requests, no pod restarted (same
#     container pids, same restartCount).
# The lab's proxy is the BPF one; SHOAL_E2E_PROXY=nftables runs the same cases on the nftables
# proxy. The cases build on each other, in order: run the file whole. The lab has a prefix of its
# own and is removed on exit, also on failure; every loop is bounded in count and in time.
. "$(dirname "$0")/../lib/lib.sh"

cd "$SHOAL_ROOT" || exit 1
LAB=scripts/lab
RUN=/run/shoal/$P
BIN=$SHOAL_ROOT/build/bin
CG2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
MARK=$RUN/marks # a file sick-POD here makes POD's liveness probe fail
PROXY=${SHOAL_E2E_PROXY:-bpf} # the lab's --proxy: bpf, or nftables
export SHOAL_SERVER=unix:$RUN/api.sock
t_cleanup "$LAB down --prefix $P -q"
# (background jobs still running at exit: the request loops and watches this file started;
# what they run inside pods goes with the lab's cgroups)
t_cleanup 'for p in $(jobs -p); do kill -KILL "$p"; done'

ctl() { "$BIN/shoalctl" "$@"; }

# The workload. The preStop sleep is Kubernetes' usual recipe for rollouts without errors:
# the server keeps serving while the endpoint's removal reaches every node.
manifest() {
	local version=$1
	cat <<EOF
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: client
spec:
  selector:
    matchLabels:
      app: client
  template:
    metadata:
      labels:
        app: client
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: client
        image: debian:bookworm
        command: ["sleep", "3600"]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: echo
spec:
  replicas: 3
  selector:
    matchLabels:
      app: echo
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  template:
    metadata:
      labels:
        app: echo
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: echo
        image: debian:bookworm
        command: ["socat", "TCP-LISTEN:8080,fork,reuseaddr", "SYSTEM:eval \$RESPOND"]
        env:
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: VERSION
          value: $version
        - name: MARK
          value: $MARK
        - name: RESPOND
          value: >-
            while read -r l; do [ \${#l} -le 1 ] && break; done;
            printf "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n%s %s\n" "\$POD_NAME" "\$VERSION"
        ports:
        - containerPort: 8080
        readinessProbe:
          tcpSocket:
            port: 8080
          initialDelaySeconds: 1
          periodSeconds: 1
        livenessProbe:
          exec:
            command: ["sh", "-c", "test ! -e \"\$MARK/sick-\$POD_NAME\""]
          periodSeconds: 1
          failureThreshold: 2
        lifecycle:
          preStop:
            exec:
              command: ["sleep", "2"]
        resources:
          requests:
            cpu: 20m
            memory: 16Mi
---
apiVersion: v1
kind: Service
metadata:
  name: echo
spec:
  selector:
    app: echo
  ports:
  - name: http
    port: 80
    targetPort: 8080
EOF
}

# ---- what the cluster says ---------------------------------------------------------------

# Names of the pods of label $1 that are Ready and not being deleted, sorted.
ready_pods() {
	ctl get pods -l "app=$1" -o json | jq -r '.items[] | select(.metadata.deletionTimestamp == null)
		| select(any(.status.conditions[]?; .type == "Ready" and .status == "True"))
		| .metadata.name' | sort
}

# Addresses of the Service echo's ready endpoints, sorted.
slice_ips() {
	ctl get endpointslices -l kubernetes.io/service-name=echo -o json |
		jq -r '.items[].endpoints[]? | select(.conditions.ready != false) | .addresses[0]' | sort
}

# Addresses of the backends that node $1's data plane holds ready for echo, sorted (from the
# agent's /dp, as `shoalctl dp` shows it; the BPF and the nftables proxy name the Service
# default/echo:80/tcp and default/echo/tcp/80).
dp_ips() {
	curl -sf --max-time 3 --unix-socket "$RUN/$P-n$1.sock" http://agent/dp |
		awk '/^default\/echo(:80\/tcp|\/tcp\/80) /{ s = 1; next } /^$/{ s = 0 }
		     s && $1 ~ /^[0-9.]+:[0-9]+$/ && / ready( |$)/ { split($1, a, ":"); print a[1] }' | sort
}

# The podIPs of pods, sorted.
pod_ips() {
	local p
	for p in "$@"; do ctl get pod "$p" -o json | jq -r .status.podIP; done | sort
}

# True when echo has $1 Ready pods, the EndpointSlice holds exactly their addresses, and every
# node's data plane holds exactly those as ready backends. Sets PODS (the pod names).
converged() {
	local want=$1 ips n
	PODS=$(ready_pods echo)
	[ "$(wc -w <<<"$PODS")" -eq "$want" ] || return 1
	# shellcheck disable=SC2086
	ips=$(pod_ips $PODS)
	[ "$(slice_ips)" = "$ips" ] || return 1
	for n in 1 2 3; do
		[ "$(dp_ips "$n")" = "$ips" ] || return 1
	done
}

# wait_converged N SECONDS: waits for converged N; says what differs when it does not come.
wait_converged() {
	local want=$1 secs=$2 n
	for _ in $(seq 1 $((secs * 4))); do
		converged "$want" && return 0
		sleep 0.25
	done
	echo "# not converged on $want replicas within ${secs}s:"
	echo "#   ready pods:     $(tr '\n' ' ' <<<"$PODS")"
	# shellcheck disable=SC2086
	echo "#   their IPs:      $(pod_ips $PODS | tr '\n' ' ')"
	echo "#   EndpointSlice:  $(slice_ips | tr '\n' ' ')"
	for n in 1 2 3; do echo "#   node $n dp:      $(dp_ips "$n" | tr '\n' ' ')"; done
	return 1
}

# The restartCount of container $2 of pod $1.
restarts() {
	ctl get pod "$1" -o json |
		jq -r --arg c "$2" '.status.containerStatuses[]? | select(.name == $c) | .restartCount'
}

# The pid of container $2 of pod $1.
ctr_pid() { t_ctr_pid ctl "$RUN" "$1" "$2"; }

# The client pod on node $1.
client_on() {
	ctl get pods -l app=client -o json |
		jq -r --arg n "$P-n$1" '.items[] | select(.spec.nodeName == $n) | .metadata.name' | head -n1
}

# in_pod POD CONTAINER COMMAND...: runs COMMAND in the container's network namespace and
# cgroup (the node's socket load balancer applies to it as to the container's own sockets).
in_pod() {
	local pid cg
	pid=$(ctr_pid "$1" "$2") || return 1
	[ -n "$pid" ] && [ -d "/proc/$pid" ] || { echo "# no process for $1/$2" >&2; return 1; }
	cg=$(awk -F: '$1 == "0" { print $3 }' "/proc/$pid/cgroup")
	shift 2
	sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec nsenter --net="/proc/$0/ns/net" -- "$@"' \
		"$pid" "$CG2$cg" "$@"
}

# The request loop run inside a client pod: one line per request, the answer ("POD VERSION")
# or "FAIL <curl's exit code>", until COUNT requests, SECS seconds, or the file STOP exists.
REQ_LOOP='url=$1 count=$2 secs=$3 stop=$4 pause=$5 i=0 end=$((SECONDS + secs))
while [ $i -lt "$count" ] && [ $SECONDS -lt $end ] && ! [ -e "$stop" ]; do
	if a=$(curl -sf --max-time 2 "$url"); then echo "$a"; else echo "FAIL $?"; fi
	i=$((i + 1))
	[ "$pause" = 0 ] || sleep "$pause"
done'

# ask NODE COUNT: COUNT requests to the VIP from the client pod on NODE, one answer a line.
ask() {
	local c
	c=$(client_on "$1")
	[ -n "$c" ] || { echo "FAIL no client pod on node $1"; return 0; }
	in_pod "$c" client bash -c "$REQ_LOOP" req "http://$VIP/" "$2" 60 /nonexistent 0
}

# traffic_start NODE OUT: a steady client on NODE (a request every 20 ms, at most 5000
# requests or 240 s) writing to OUT until traffic_stop OUT.
traffic_start() {
	local c
	c=$(client_on "$1")
	rm -f "$2.stop"
	in_pod "$c" client bash -c "$REQ_LOOP" req "http://$VIP/" 5000 240 "$2.stop" 0.02 >"$2" 2>&1 &
	echo $! >"$2.pid"
}

traffic_stop() {
	touch "$1.stop"
	wait "$(cat "$1.pid")" 2>/dev/null || true
}

# check_traffic OUT MIN: at least MIN requests, all answered; prints a summary.
check_traffic() {
	local out=$1 min=$2 total fails
	total=$(wc -l <"$out")
	fails=$(grep -c '^FAIL' "$out")
	echo "# $out: $total requests, $fails failed, answers by pod: $(awk '!/^FAIL/ { print $1 }' "$out" |
		sort | uniq -c | awk '{ printf "%s=%s ", $2, $1 }')"
	[ "$total" -ge "$min" ] || { echo "# expected at least $min requests, got $total"; return 1; }
	[ "$fails" -eq 0 ] || { echo "# expected no failed request, got $fails:"; grep '^FAIL' "$out" | sort | uniq -c | sed 's/^/#   /'; return 1; }
}

# ---- cases -------------------------------------------------------------------------------

case_lab_up_with_workload() {
	local out
	if ! out=$($LAB up -n 3 --prefix "$P" --proxy "$PROXY" 2>&1); then
		echo "# scripts/lab up failed:"
		sed 's/^/#   /' <<<"$out" | tail -n 30
		return 1
	fi
	mkdir -p "$MARK"
	out=$(manifest v1 | ctl apply -f - 2>&1) || { echo "# apply failed: $out"; return 1; }
	wait_for 60 "3 client pods Ready" eval '[ "$(ready_pods client | wc -l)" -eq 3 ]' || return 1
	wait_converged 3 60 || return 1
	VIP=$(ctl get service echo -o json | jq -r .spec.clusterIP)
	[[ $VIP == 10.96.* ]] || { echo "# the Service's clusterIP: expected one of 10.96.0.0/16, got '$VIP'"; return 1; }
}

case_vip_answers_from_a_pod_on_every_node() {
	local n out p missing=0
	for n in 1 2 3; do
		out=$(ask "$n" 30)
		if grep -q '^FAIL' <<<"$out"; then
			echo "# from the client pod on node $n: failed requests:"
			grep '^FAIL' <<<"$out" | sort | uniq -c | sed 's/^/#   /'
			return 1
		fi
		for p in $PODS; do
			grep -q "^$p v1$" <<<"$out" || { echo "# from node $n: no answer from $p in 30 requests"; missing=1; }
		done
		echo "# node $n: $(awk '{ print $1 }' <<<"$out" | sort | uniq -c | awk '{ printf "%s=%s ", $2, $1 }')"
	done
	[ "$missing" -eq 0 ]
}

# shoal_agent_<name>_total of node $1's agent.
agent_counter() {
	curl -sf --max-time 3 --unix-socket "$RUN/$P-n$1.sock" http://agent/metrics |
		awk -v m="shoal_agent_$2_total" '$1 ~ "^" m "[{]" { print $2 }'
}

case_status_writes_settle() {
	local n w0 u0 w1 u1 bad=0
	declare -A w u
	for n in 1 2 3; do
		w[$n]=$(agent_counter "$n" status_writes)
		u[$n]=$(agent_counter "$n" usage_writes)
	done
	sleep 3
	for n in 1 2 3; do
		w0=${w[$n]} u0=${u[$n]}
		w1=$(agent_counter "$n" status_writes)
		u1=$(agent_counter "$n" usage_writes)
		if [ -z "$w0" ] || [ -z "$w1" ]; then
			echo "# node $n: no shoal_agent_status_writes_total in the agent's metrics"
			return 1
		fi
		if [ $((w1 - w0)) -ne $((u1 - u0)) ]; then
			echo "# node $n: $((w1 - w0)) pod status writes in 3 s with nothing changing, $((u1 - u0)) of them usage samples: expected only usage samples"
			bad=1
		fi
	done
	[ "$bad" -eq 0 ]
}

# Scale to $1 and wait until the EndpointSlice and every node's data plane follow.
scale_to() {
	local out
	out=$(ctl scale deployment echo --replicas "$1" 2>&1) || { echo "# scale to $1: $out"; return 1; }
	wait_converged "$1" 90
}

case_scale_endpoints_follow() {
	local n out p before removed
	scale_to 6 || return 1
	for n in 1 2 3; do
		out=$(ask "$n" 60)
		grep -q '^FAIL' <<<"$out" && { echo "# at 6 replicas, from node $n: $(grep -c '^FAIL' <<<"$out") failed requests"; return 1; }
		for p in $PODS; do
			grep -q "^$p " <<<"$out" || { echo "# at 6 replicas, from node $n: no answer from $p in 60 requests"; return 1; }
		done
	done
	before=$PODS
	scale_to 1 || return 1
	# every node's data plane now holds only the one left: nothing may come from the others,
	# although they still serve (their preStop hook holds them for 2 s)
	removed=$(comm -23 <(tr ' ' '\n' <<<"$before" | sort) <(tr ' ' '\n' <<<"$PODS" | sort) | tr '\n' ' ')
	echo "# at 1 replica: $PODS left; $(ctl get pods -l app=echo -o json |
		jq '[.items[] | select(.metadata.deletionTimestamp != null)] | length') removed pods still terminating"
	for n in 1 2 3; do
		out=$(ask "$n" 15)
		while read -r p _; do
			[ "$p" = FAIL ] && { echo "# at 1 replica, from node $n: a failed request"; return 1; }
			[ "$p" = "$PODS" ] || {
				echo "# at 1 replica, from node $n: an answer from $p after the data plane held only $PODS (removed: $removed)"
				return 1
			}
		done <<<"$out"
	done
	scale_to 3
}

case_rolling_update_no_failed_requests() {
	local out old p t1 t2
	old=$PODS
	t1=$RUN/traffic-rollout-1
	t2=$RUN/traffic-rollout-2
	traffic_start 1 "$t1"
	traffic_start 3 "$t2"
	sleep 1
	out=$(manifest v2 | ctl apply -f - 2>&1) || { traffic_stop "$t1"; traffic_stop "$t2"; echo "# apply v2: $out"; return 1; }
	if ! out=$(ctl rollout status deployment/echo --timeout 120s 2>&1); then
		traffic_stop "$t1"
		traffic_stop "$t2"
		echo "# the rollout did not finish: $out"
		return 1
	fi
	wait_converged 3 60 || { traffic_stop "$t1"; traffic_stop "$t2"; return 1; }
	sleep 2
	traffic_stop "$t1"
	traffic_stop "$t2"
	check_traffic "$t1" 20 || return 1
	check_traffic "$t2" 20 || return 1
	# the update happened: three new pods, answering v2, and none of the old ones left
	for p in $old; do
		grep -qx "$p" <<<"$PODS" && { echo "# old pod $p still Ready after the rollout"; return 1; }
	done
	for p in $PODS; do
		grep -q "^$p v2$" "$t1" "$t2" || { echo "# no answer 'v2' from the new pod $p"; return 1; }
	done
	return 0
}

# Watches echo's EndpointSlices from now on into file $1 (for at most 60 s); sets WATCH_PID.
watch_slices() {
	local rv
	rv=$(curl -sf --max-time 5 --unix-socket "$RUN/api.sock" \
		"http://shoal/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Decho" |
		jq -r .metadata.resourceVersion)
	curl -sN --max-time 60 --unix-socket "$RUN/api.sock" \
		"http://shoal/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Decho&watch=1&resourceVersion=$rv" \
		>"$1" 2>/dev/null &
	WATCH_PID=$!
}

# The ready condition of pod $2's endpoint in each event of watch file $1, one a line.
endpoint_readiness() {
	jq -r --arg p "$2" 'select(.type == "ADDED" or .type == "MODIFIED") | .object.endpoints[]?
		| select(.targetRef.name == $p) | (if .conditions.ready == null then true else .conditions.ready end)
		| tostring' "$1" 2>/dev/null
}

# wait_restarted POD N: waits until the container echo of POD has restartCount >= N and the
# pod is Ready again.
restarted_and_ready() {
	local rc
	rc=$(restarts "$1" echo)
	[ -n "$rc" ] && [ "$rc" -ge "$2" ] && ready_pods echo | grep -qx "$1"
}

case_killed_container_restarts() {
	local pod uid node pid rc0 cg w seen st
	pod=$(head -n1 <<<"$PODS")
	rc0=$(restarts "$pod" echo)
	pid=$(ctr_pid "$pod" echo)
	uid=$(ctl get pod "$pod" -o json | jq -r .metadata.uid)
	node=$(ctl get pod "$pod" -o json | jq -r .spec.nodeName)
	cg=$CG2/$P/n${node##*-n}/pod$uid/echo
	[ -n "$pid" ] && [ -d "/proc/$pid" ] || { echo "# no running process recorded for $pod (pid '$pid')"; return 1; }
	grep -qx "$pid" "$cg/cgroup.procs" 2>/dev/null ||
		{ echo "# pid $pid of $pod is not in its cgroup $cg"; return 1; }
	w=$RUN/watch-kill
	watch_slices "$w"
	sleep 0.5
	kill -KILL "$pid"
	wait_for 30 "$pod restarted (restartCount $rc0 -> $((rc0 + 1))) and Ready" \
		restarted_and_ready "$pod" $((rc0 + 1)) || { kill "$WATCH_PID" 2>/dev/null; return 1; }
	wait_converged 3 30 || { kill "$WATCH_PID" 2>/dev/null; return 1; }
	kill "$WATCH_PID" 2>/dev/null
	wait "$WATCH_PID" 2>/dev/null
	t_expect "restartCount of $pod after its process was killed" $((rc0 + 1)) "$(restarts "$pod" echo)" || return 1
	st=$(ctl get pod "$pod" -o json | jq -c '.status.containerStatuses[0].lastState.terminated | {exitCode, signal}')
	t_expect "the last state of $pod's container" '{"exitCode":137,"signal":9}' "$st" || return 1
	[ "$(ctr_pid "$pod" echo)" != "$pid" ] || { echo "# $pod's container still has pid $pid"; return 1; }
	# its endpoint went not ready while it restarted, then ready again
	seen=$(endpoint_readiness "$w" "$pod" | tr '\n' ' ' | sed 's/ $//')
	[[ $seen == *false* ]] || { echo "# the endpoint of $pod never went not ready; its ready conditions in the watch: $seen"; return 1; }
	[[ $seen == *true ]] || { echo "# the endpoint of $pod did not end ready; its ready conditions in the watch: $seen"; return 1; }
}

case_failing_liveness_probe_restarts() {
	local pod rc0 pid rc w msg seen
	pod=$(sed -n 2p <<<"$PODS")
	rc0=$(restarts "$pod" echo)
	pid=$(ctr_pid "$pod" echo)
	w=$RUN/watch-liveness
	watch_slices "$w"
	sleep 0.5
	touch "$MARK/sick-$pod"
	wait_for 30 "$pod restarted by its liveness probe" eval '[ "$(restarts "$pod" echo)" -gt "$rc0" ]'
	rc=$?
	rm -f "$MARK/sick-$pod"
	[ "$rc" -eq 0 ] || { kill "$WATCH_PID" 2>/dev/null; return 1; }
	wait_for 30 "$pod Ready again after its restart" restarted_and_ready "$pod" $((rc0 + 1)) ||
		{ kill "$WATCH_PID" 2>/dev/null; return 1; }
	wait_converged 3 30 || { kill "$WATCH_PID" 2>/dev/null; return 1; }
	kill "$WATCH_PID" 2>/dev/null
	wait "$WATCH_PID" 2>/dev/null
	[ "$(ctr_pid "$pod" echo)" != "$pid" ] || { echo "# $pod's container still has pid $pid"; return 1; }
	# stopped for its probe (SIGTERM, within its grace period), not for anything else
	msg=$(ctl get pod "$pod" -o json | jq -r '.status.containerStatuses[0].lastState.terminated.message // ""')
	[[ $msg == "liveness probe failed"* ]] ||
		{ echo "# the last state of $pod's container: expected 'liveness probe failed...', got '$msg'"; return 1; }
	seen=$(endpoint_readiness "$w" "$pod" | tr '\n' ' ' | sed 's/ $//')
	[[ $seen == *false*true ]] ||
		{ echo "# the endpoint of $pod: expected not ready, then ready again; the watch had: $seen"; return 1; }
}

# Pod name, restartCount and container pid of every pod, one a line, sorted.
pods_state() {
	local p c
	ctl get pods -o json | jq -r '.items[] | select(.metadata.deletionTimestamp == null)
		| .metadata.name + " " + .status.containerStatuses[0].name + " "
		+ (.status.containerStatuses[0].restartCount | tostring)' | sort |
		while read -r p c rc; do echo "$p $c restarts=$rc pid=$(ctr_pid "$p" "$c")"; done
}

case_agent_restart_keeps_traffic_and_pods() {
	local before after out t0 t1 t2 apid0 apid1
	before=$(pods_state)
	apid0=$(awk -v n="$P-n1" '$1 == n { print $2 }' "$RUN/pids")
	t1=$RUN/traffic-restart-1
	t2=$RUN/traffic-restart-2
	traffic_start 1 "$t1"
	traffic_start 2 "$t2"
	sleep 2
	t0=$(date +%s%N)
	if ! out=$($LAB restart-agent 1 --prefix "$P" 2>&1); then
		traffic_stop "$t1"
		traffic_stop "$t2"
		echo "# scripts/lab restart-agent 1 failed:"
		sed 's/^/#   /' <<<"$out"
		return 1
	fi
	apid1=$(awk -v n="$P-n1" '$1 == n { print $2 }' "$RUN/pids")
	echo "# the agent of node 1: pid $apid0 stopped, pid $apid1 ready $((($(date +%s%N) - t0) / 1000000)) ms later"
	sleep 3
	traffic_stop "$t1"
	traffic_stop "$t2"
	[ -n "$apid1" ] && [ "$apid1" != "$apid0" ] ||
		{ echo "# the agent of node 1 was not restarted (pid $apid0, then '$apid1')"; return 1; }
	check_traffic "$t1" 20 || return 1
	check_traffic "$t2" 20 || return 1
	after=$(pods_state)
	if [ "$before" != "$after" ]; then
		echo "# pods changed across the agent's restart:"
		diff <(echo "$before") <(echo "$after") | sed 's/^/#   /'
		return 1
	fi
	converged 3 || { echo "# the data planes do not hold the 3 endpoints after the restart"; return 1; }
	# the restarted agent adopted its pods and then left their statuses alone
	local w0 u0 w1 u1
	w0=$(agent_counter 1 status_writes) u0=$(agent_counter 1 usage_writes)
	sleep 3
	w1=$(agent_counter 1 status_writes) u1=$(agent_counter 1 usage_writes)
	[ $((w1 - w0)) -eq $((u1 - u0)) ] || {
		echo "# the restarted agent wrote $((w1 - w0)) pod statuses in 3 s ($((u1 - u0)) usage samples): expected only usage samples"
		return 1
	}
}

if t_lab_can_run workloads socat nsenter; then
	VIP=
	PODS=
	t_case workloads_lab_up_with_workload case_lab_up_with_workload
	t_case workloads_vip_answers_from_a_pod_on_every_node case_vip_answers_from_a_pod_on_every_node
	t_case workloads_status_writes_settle case_status_writes_settle
	t_case workloads_scale_endpoints_follow case_scale_endpoints_follow
	t_case workloads_rolling_update_no_failed_requests case_rolling_update_no_failed_requests
	t_case workloads_killed_container_restarts case_killed_container_restarts
	t_case workloads_failing_liveness_probe_restarts case_failing_liveness_probe_restarts
	t_case workloads_agent_restart_keeps_traffic_and_pods case_agent_restart_keeps_traffic_and_pods
fi
t_done
