#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# shoalctl against a real shoald: started here on a temporary state directory and a unix
# socket (the host's network is never touched), stopped by its pid on exit. Applies
# examples/web.yaml and checks what shoalctl prints and what the server stored: created,
# unchanged and configured; tables, -o json|yaml|name, selectors, -A; describe; scale; a
# watch; delete; a namespace Terminating, then gone; and that every kind of error exits
# non-zero with the server's message.
# The cases build on each other, in order: run the file whole.
. "$(dirname "$0")/../lib/lib.sh"

BIN=$SHOAL_ROOT/build/bin
# The daemon built with the sanitizers when there is one, as the other integration tests do.
SHOALD=${SHOALD_BIN:-$SHOAL_ROOT/build/san-bin/shoald}
[ -x "$SHOALD" ] || SHOALD=$BIN/shoald
EX=$SHOAL_ROOT/examples/web.yaml
DIR=$(mktemp -d "/tmp/${P}-cli.XXXXXX")
SOCK=$DIR/shoald.sock
SHOALD_PID=
t_cleanup "rm -rf '$DIR'"

SHOALD2_PID= # the one with a token file
SHOALD3_PID= # the one with TLS on TCP

stop_pid() { # stop_pid PID: SIGTERM, then SIGKILL after 5 s
	[ -n "$1" ] || return 0
	kill -TERM "$1" 2>/dev/null
	for _ in $(seq 1 50); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}
t_cleanup 'stop_pid "$SHOALD_PID"; stop_pid "$SHOALD2_PID"; stop_pid "$SHOALD3_PID"'

# shoalctl against this test's shoald; stdout in $OUT, stderr in $ERR, status in $RC.
ctl() {
	"$BIN/shoalctl" --server "unix:$SOCK" "$@" >"$DIR/out" 2>"$DIR/err"
	RC=$?
	OUT=$(cat "$DIR/out")
	ERR=$(cat "$DIR/err")
	return 0
}

# expect_rc WHAT: the last ctl call exited 0.
ok() {
	if [ "$RC" -ne 0 ]; then
		echo "# $1: exit status $RC; stderr: $ERR"
		return 1
	fi
}

# failed WHAT PATTERN: the last ctl call exited non-zero and said PATTERN on stderr.
failed() {
	if [ "$RC" -eq 0 ]; then
		echo "# $1: expected a non-zero exit, got 0; stdout: $OUT"
		return 1
	fi
	if ! grep -qE -- "$2" <<<"$ERR"; then
		echo "# $1: expected stderr to match '$2', got: $ERR"
		return 1
	fi
}

has() { # has WHAT PATTERN TEXT
	if ! grep -qE -- "$2" <<<"$3"; then
		echo "# $1: expected a line matching '$2' in:"
		sed 's/^/#   /' <<<"$3"
		return 1
	fi
}

json_field() { # json_field JQ_EXPR: reads $OUT
	jq -r "$1" <<<"$OUT"
}

# start_shoald SOCKET STATE_DIR [FLAGS...]: starts shoald, sets STARTED_PID, waits until it
# is ready (a 401 from /readyz counts: it answers).
start_shoald() {
	local sock=$1 state=$2 code
	shift 2
	"$SHOALD" --listen "unix:$sock" --state "$state" --log-level warn "$@" \
		>"$state.log" 2>&1 &
	STARTED_PID=$!
	for _ in $(seq 1 100); do
		if [ -S "$sock" ]; then
			code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
				--unix-socket "$sock" http://shoal/readyz 2>/dev/null)
			case $code in 200 | 401) return 0 ;; esac
		fi
		kill -0 "$STARTED_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "# shoald did not become ready; its log:"
	sed 's/^/#   /' "$state.log"
	return 1
}

case_apply_creates() {
	ctl apply -f "$EX"
	ok "apply" || return 1
	t_expect "apply output" $'deployment.apps/web created\nservice/web created' "$OUT"
}

case_apply_unchanged() {
	ctl apply -f "$EX"
	ok "second apply" || return 1
	t_expect "second apply output" $'deployment.apps/web unchanged\nservice/web unchanged' "$OUT"
}

case_apply_configured() {
	sed 's/replicas: 3/replicas: 4/' "$EX" >"$DIR/web4.yaml"
	ctl apply -f - <"$DIR/web4.yaml"
	ok "apply from stdin" || return 1
	t_expect "apply of a change" $'deployment.apps/web configured\nservice/web unchanged' "$OUT" ||
		return 1
	ctl get deployment web -o json
	ok "get -o json" || return 1
	t_expect "stored replicas" 4 "$(json_field .spec.replicas)" || return 1
	# The server-allocated fields survive an apply that does not name them.
	ctl get service web -o json
	local ip port
	ip=$(json_field .spec.clusterIP)
	port=$(json_field '.spec.ports[0].nodePort')
	sed 's/targetPort: 8080/targetPort: 8081/' "$DIR/web4.yaml" >"$DIR/web5.yaml"
	ctl apply -f "$DIR/web5.yaml"
	t_expect "apply of a service change" $'deployment.apps/web unchanged\nservice/web configured' \
		"$OUT" || return 1
	ctl get svc web -o json
	t_expect "clusterIP kept" "$ip" "$(json_field .spec.clusterIP)" || return 1
	t_expect "nodePort kept" "$port" "$(json_field '.spec.ports[0].nodePort')" || return 1
	t_expect "targetPort changed" 8081 "$(json_field '.spec.ports[0].targetPort')"
}

case_apply_directory_and_json() {
	mkdir -p "$DIR/manifests"
	cat >"$DIR/manifests/a-ns.yaml" <<-EOF
		apiVersion: v1
		kind: Namespace
		metadata:
		  name: ${P}-ns
	EOF
	cat >"$DIR/manifests/b-deploy.json" <<-EOF
		{"apiVersion": "apps/v1", "kind": "Deployment",
		 "metadata": {"name": "api", "namespace": "${P}-ns", "labels": {"app": "api"}},
		 "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
		  "template": {"metadata": {"labels": {"app": "api"}},
		   "spec": {"containers": [{"name": "api", "image": "debian:bookworm",
		                            "command": ["sleep", "3600"]}]}}}}
	EOF
	ctl apply -f "$DIR/manifests"
	ok "apply of a directory" || return 1
	t_expect "directory apply output" \
		$'namespace/'"${P}"$'-ns created\ndeployment.apps/api created' "$OUT"
}

case_get_tables() {
	ctl get deployments
	ok "get deployments" || return 1
	has "deployment table header" '^NAME +READY +UP-TO-DATE +AVAILABLE +AGE$' "$OUT" || return 1
	has "deployment row" '^web +[0-9]+/4 +' "$OUT" || return 1
	# Short names, singular, kind and resource.group all name the same kind (AGE aside: it
	# may tick between two calls).
	local want name
	want=$(awk '{$NF=""; print}' <<<"$OUT")
	for name in deploy deployment Deployment deployments.apps; do
		ctl get "$name"
		t_expect "get $name" "$want" "$(awk '{$NF=""; print}' <<<"$OUT")" || return 1
	done
	ctl get svc web
	ok "get svc web" || return 1
	has "service header" '^NAME +TYPE +CLUSTER-IP +EXTERNAL-IP +PORT\(S\) +AGE$' "$OUT" || return 1
	has "service row" '^web +NodePort +10\.96\.[0-9]+\.[0-9]+ +<none> +80:[0-9]+/TCP +[0-9]+s$' \
		"$OUT" || return 1
	ctl get deploy -o wide
	has "wide columns" '^NAME +READY +UP-TO-DATE +AVAILABLE +AGE +CONTAINERS +IMAGES +SELECTOR$' \
		"$OUT" || return 1
	has "wide row" '^web .* web +debian:bookworm +app=web$' "$OUT"
}

case_get_outputs() {
	ctl get deploy web -o json
	ok "get -o json" || return 1
	t_expect "json kind" Deployment "$(json_field .kind)" || return 1
	t_expect "json apiVersion" apps/v1 "$(json_field .apiVersion)" || return 1
	t_expect "json name" web "$(json_field .metadata.name)" || return 1
	ctl get deploy -o json
	t_expect "json list kind" List "$(json_field .kind)" || return 1
	t_expect "json list item kind" Deployment "$(json_field '.items[0].kind')" || return 1
	ctl get deploy web -o yaml
	ok "get -o yaml" || return 1
	has "yaml kind" '^kind: Deployment$' "$OUT" || return 1
	has "yaml replicas" '^  replicas: 4$' "$OUT" || return 1
	ctl get deploy -o name
	t_expect "-o name" "deployment.apps/web" "$OUT"
}

case_get_selectors_and_namespaces() {
	ctl get deploy -l app=web -o name
	t_expect "label selector" "deployment.apps/web" "$OUT" || return 1
	ctl get deploy -l 'app in (nope)'
	ok "empty selection" || return 1
	t_expect "no rows" "" "$OUT" || return 1
	has "empty message" '^No resources found in default namespace\.$' "$ERR" || return 1
	ctl get deploy --field-selector metadata.name=web -o name
	t_expect "field selector" "deployment.apps/web" "$OUT" || return 1
	ctl get deploy -n "${P}-ns" -o name
	t_expect "-n" "deployment.apps/api" "$OUT" || return 1
	ctl get deploy -A
	ok "get -A" || return 1
	has "-A header" '^NAMESPACE +NAME +READY' "$OUT" || return 1
	has "-A row default" '^default +web ' "$OUT" || return 1
	has "-A row other" "^${P}-ns +api " "$OUT" || return 1
	ctl get namespaces
	has "namespace header" '^NAME +STATUS +AGE$' "$OUT" || return 1
	has "cluster-scoped kind" "^${P}-ns +Active +" "$OUT"
}

case_describe() {
	ctl describe deploy web
	ok "describe" || return 1
	has "describe name" '^Name: +web$' "$OUT" || return 1
	has "describe namespace" '^Namespace: +default$' "$OUT" || return 1
	has "describe labels" '^Labels: +app=web$' "$OUT" || return 1
	has "describe spec" '^  replicas: 4$' "$OUT" || return 1
	has "describe events" '^Events:' "$OUT" || return 1
	ctl describe deploy nope
	failed "describe of a missing object" 'NotFound.*nope'
}

case_scale() {
	ctl scale deploy web --replicas 6
	ok "scale" || return 1
	t_expect "scale output" "deployment.apps/web scaled" "$OUT" || return 1
	ctl get deploy/web -o json
	t_expect "scaled replicas" 6 "$(json_field .spec.replicas)" || return 1
	ctl scale svc web --replicas 2
	failed "scale of a service" 'cannot be scaled' || return 1
	ctl scale deploy nope --replicas 2
	failed "scale of a missing object" 'NotFound' || return 1
	# the controller's Events, as kubectl describe shows them
	for _ in $(seq 1 100); do
		ctl describe deploy web
		grep -qE 'Normal +ScalingReplicaSet +.* +shoald +Scaled up replica set web-[a-z0-9]+ from 4 to 6$' <<<"$OUT" && break
		sleep 0.1
	done
	has "describe shows the scaling event" \
		'Normal +ScalingReplicaSet +.* +shoald +Scaled up replica set web-[a-z0-9]+ from 4 to 6$' "$OUT"
}

case_watch() {
	"$BIN/shoalctl" --server "unix:$SOCK" get deploy web -w --request-timeout 4 \
		>"$DIR/watch.out" 2>"$DIR/watch.err" &
	local wpid=$!
	sleep 1
	ctl scale deploy web --replicas 2
	ok "scale during watch" || return 1
	wait "$wpid"
	local wrc=$?
	t_expect "watch exit status after its timeout" 0 "$wrc" || return 1
	local w
	w=$(cat "$DIR/watch.out")
	has "watch header and first row" '^NAME +READY' "$w" || return 1
	has "watch saw the change" '^web +[0-9]+/2 ' "$w"
}

case_errors() {
	ctl get frobnicators
	failed "unknown kind on the command line" "doesn't have a resource type \"frobnicators\"" ||
		return 1
	printf 'apiVersion: example.com/v1\nkind: Frob\nmetadata:\n  name: x\n' >"$DIR/frob.yaml"
	ctl apply -f "$DIR/frob.yaml"
	failed "unknown kind in a manifest" 'unknown kind "Frob"' || return 1
	sed -e 's/replicas: 3/replicas: -1/' -e 's/name: web/name: neg/' "$EX" >"$DIR/neg.yaml"
	ctl apply -f "$DIR/neg.yaml"
	failed "invalid object" 'Invalid.*spec\.replicas' || return 1
	printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n labels: y\n' >"$DIR/bad.yaml"
	ctl apply -f "$DIR/bad.yaml"
	failed "bad YAML" 'bad\.yaml: line 5, column 2' || return 1
	ctl apply -f "$DIR/missing.yaml"
	failed "missing file" 'missing\.yaml: No such file' || return 1
	ctl get deploy nope
	failed "get of a missing object" 'Error from server \(NotFound\)' || return 1
	ctl get pods -o table
	failed "bad output format" 'unknown output format' || return 1
	"$BIN/shoalctl" --server "unix:$DIR/nothing.sock" get pods >/dev/null 2>"$DIR/err"
	RC=$? ERR=$(cat "$DIR/err")
	failed "server down" 'cannot connect to the server at unix:.*nothing\.sock' || return 1
	"$BIN/shoalctl" --server "http://127.0.0.1:1" get pods >/dev/null 2>"$DIR/err"
	RC=$? ERR=$(cat "$DIR/err")
	failed "server down over TCP" 'cannot connect to the server at http://127\.0\.0\.1:1'
}

case_unknown_field_warning() {
	cat >"$DIR/warn.yaml" <<-EOF
		apiVersion: v1
		kind: Service
		metadata:
		  name: warned
		spec:
		  selector: {app: warned}
		  ports: [{port: 80}]
		  bogusField: 1
	EOF
	ctl apply -f "$DIR/warn.yaml"
	ok "apply with an unknown field" || return 1
	has "warning printed" '^Warning: .*bogusField' "$ERR"
}

case_concurrent_applies() {
	local i pids=() fails=0
	for i in 1 2 3 4 5 6; do
		sed "0,/app: web\$/s//app: web\n    writer: w$i/" "$EX" >"$DIR/c$i.yaml"
		"$BIN/shoalctl" --server "unix:$SOCK" apply -f "$DIR/c$i.yaml" \
			>"$DIR/c$i.out" 2>&1 &
		pids+=($!)
	done
	for i in "${pids[@]}"; do
		wait "$i" || fails=$((fails + 1))
	done
	if [ "$fails" -ne 0 ]; then
		echo "# $fails of 6 concurrent applies failed:"
		cat "$DIR"/c*.out | sed 's/^/#   /'
		return 1
	fi
	ctl get deploy web -o json
	has "one writer's label won" '^w[1-6]$' "$(json_field .metadata.labels.writer)"
}

case_delete() {
	ctl delete deploy web
	ok "delete" || return 1
	t_expect "delete output" 'deployment.apps "web" deleted' "$OUT" || return 1
	ctl get deploy web
	failed "get after delete" 'NotFound' || return 1
	ctl delete deploy web
	failed "second delete" 'NotFound' || return 1
	ctl delete deploy web --ignore-not-found
	ok "delete --ignore-not-found" || return 1
	ctl delete -f "$EX"
	failed "delete -f with the deployment gone" 'NotFound' || return 1
	has "delete -f removed the service" '^service "web" deleted$' "$OUT" || return 1
	# The namespace goes first; its controller may delete the deployment in it before the
	# next request comes (as with kubectl), so its NotFound is no failure here.
	ctl delete -f "$DIR/manifests" --grace-period 0 --ignore-not-found
	ok "delete -f of a directory" || return 1
	has "delete -f removed the namespace" "^namespace \"${P}-ns\" deleted$" "$OUT" || return 1
	ctl get svc web
	failed "service gone" 'NotFound'
}

case_namespace_terminating() {
	cat >"$DIR/term.yaml" <<-EOF
		apiVersion: v1
		kind: Namespace
		metadata:
		  name: ${P}-term
		---
		apiVersion: coordination.k8s.io/v1
		kind: Lease
		metadata:
		  name: held
		  namespace: ${P}-term
		  finalizers: [example.com/hold]
		spec:
		  holderIdentity: a
	EOF
	ctl apply -f "$DIR/term.yaml"
	ok "apply a namespace and a held lease" || return 1
	ctl delete namespace "${P}-term"
	ok "delete namespace" || return 1
	t_expect "delete namespace output" "namespace \"${P}-term\" deleted" "$OUT" || return 1
	ctl get namespace "${P}-term"
	has "get ns shows Terminating" "^${P}-term +Terminating +" "$OUT" || return 1
	ctl delete namespace "${P}-term"
	failed "second delete" 'Conflict.*ensuring all content is removed' || return 1
	ctl delete namespace kube-system
	failed "protected namespace" 'Forbidden.*may not be deleted' || return 1
	curl -s -o /dev/null --max-time 5 --unix-socket "$SOCK" -X PATCH \
		-H 'Content-Type: application/merge-patch+json' -d '{"metadata":{"finalizers":null}}' \
		"http://localhost/apis/coordination.k8s.io/v1/namespaces/${P}-term/leases/held"
	for _ in $(seq 1 100); do
		ctl get namespace "${P}-term"
		[ "$RC" -ne 0 ] && break
		sleep 0.1
	done
	failed "the namespace goes with the lease's finalizer" 'NotFound'
}

case_tokens() {
	local sock2=$DIR/auth.sock
	printf 'admintok,admin,system:masters\nrotok,viewer,readonly\n' >"$DIR/tokens"
	start_shoald "$sock2" "$DIR/state2" --token-file "$DIR/tokens" || return 1
	SHOALD2_PID=$STARTED_PID
	local c=("$BIN/shoalctl" --server "unix:$sock2")
	"${c[@]}" get deploy >/dev/null 2>"$DIR/err"
	RC=$? ERR=$(cat "$DIR/err")
	failed "no token" 'Unauthorized' || return 1
	"${c[@]}" --token wrong get deploy >/dev/null 2>"$DIR/err"
	RC=$? ERR=$(cat "$DIR/err")
	failed "wrong token" 'Unauthorized' || return 1
	SHOAL_TOKEN=admintok "${c[@]}" apply -f "$EX" >"$DIR/out" 2>"$DIR/err"
	RC=$? ERR=$(cat "$DIR/err")
	ok "token from SHOAL_TOKEN" || return 1
	"${c[@]}" --token rotok get deploy web -o name >"$DIR/out" 2>"$DIR/err"
	RC=$? ERR=$(cat "$DIR/err")
	ok "readonly token reads" || return 1
	t_expect "readonly get" "deployment.apps/web" "$(cat "$DIR/out")" || return 1
	"${c[@]}" --token rotok scale deploy web --replicas 1 >/dev/null 2>"$DIR/err"
	RC=$? ERR=$(cat "$DIR/err")
	failed "readonly token cannot write" 'Forbidden' || return 1
	stop_pid "$SHOALD2_PID"
	SHOALD2_PID=
}

# shoalctl over TCP with TLS on loopback: a self-signed certificate for IP 127.0.0.1, verified
# with --certificate-authority; refused without it; accepted with --insecure-skip-tls-verify.
case_tls_tcp() {
	local cert=$DIR/tls.crt key=$DIR/tls.key port= try code
	if ! openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
		-addext subjectAltName=IP:127.0.0.1 -keyout "$key" -out "$cert" >/dev/null 2>&1; then
		echo "# openssl could not make a certificate"
		return 1
	fi
	for try in 1 2 3 4 5; do
		port=$((20000 + ($$ * 7 + try * 131 + RANDOM) % 9000))
		"$SHOALD" --listen "127.0.0.1:$port" --state "$DIR/state3" --log-level warn \
			--tls-cert "$cert" --tls-key "$key" >"$DIR/state3.log" 2>&1 &
		SHOALD3_PID=$!
		for _ in $(seq 1 50); do
			code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 --cacert "$cert" \
				"https://127.0.0.1:$port/readyz" 2>/dev/null)
			[ "$code" = 200 ] && break
			kill -0 "$SHOALD3_PID" 2>/dev/null || break
			sleep 0.1
		done
		[ "$code" = 200 ] && break
		stop_pid "$SHOALD3_PID"
		SHOALD3_PID=
	done
	if [ -z "$SHOALD3_PID" ]; then
		echo "# shoald with TLS did not start; its log:"
		sed 's/^/#   /' "$DIR/state3.log"
		return 1
	fi
	local c=("$BIN/shoalctl" --server "https://127.0.0.1:$port")
	"${c[@]}" --certificate-authority "$cert" get namespace default -o name >"$DIR/out" 2>"$DIR/err"
	RC=$? ERR=$(cat "$DIR/err")
	ok "https with the CA" || return 1
	t_expect "https get" "namespace/default" "$(cat "$DIR/out")" || return 1
	"${c[@]}" get namespace default -o name >/dev/null 2>"$DIR/err"
	RC=$? ERR=$(cat "$DIR/err")
	failed "https without the CA" 'certificate' || return 1
	"${c[@]}" --insecure-skip-tls-verify get namespace default -o name >"$DIR/out" 2>"$DIR/err"
	RC=$? ERR=$(cat "$DIR/err")
	ok "https without verification" || return 1
	stop_pid "$SHOALD3_PID"
	SHOALD3_PID=
}

# After all of the above, shoald stops cleanly on SIGTERM with nothing from the sanitizers.
case_shoald_clean_exit() {
	local st
	kill -TERM "$SHOALD_PID"
	wait "$SHOALD_PID"
	st=$?
	SHOALD_PID=
	t_expect "shoald exit status on SIGTERM" 0 "$st" || return 1
	if grep -qE 'Sanitizer|runtime error' "$DIR/state.log"; then
		echo "# shoald's log has a sanitizer report:"
		grep -A20 -E 'Sanitizer|runtime error' "$DIR/state.log" | head -40 | sed 's/^/#   /'
		return 1
	fi
}

if [ ! -x "$SHOALD" ] || [ ! -x "$BIN/shoalctl" ]; then
	t_skip api_cli "shoald and shoalctl are not built"
elif start_shoald "$SOCK" "$DIR/state" && SHOALD_PID=$STARTED_PID; then
	t_case api_cli_apply_creates case_apply_creates
	t_case api_cli_apply_unchanged case_apply_unchanged
	t_case api_cli_apply_configured case_apply_configured
	t_case api_cli_apply_directory_and_json case_apply_directory_and_json
	t_case api_cli_get_tables case_get_tables
	t_case api_cli_get_outputs case_get_outputs
	t_case api_cli_get_selectors_and_namespaces case_get_selectors_and_namespaces
	t_case api_cli_describe case_describe
	t_case api_cli_scale case_scale
	t_case api_cli_watch case_watch
	t_case api_cli_errors case_errors
	t_case api_cli_unknown_field_warning case_unknown_field_warning
	t_case api_cli_concurrent_applies case_concurrent_applies
	t_case api_cli_delete case_delete
	t_case api_cli_namespace_terminating case_namespace_terminating
	t_case api_cli_tokens case_tokens
	t_case api_cli_tls_tcp case_tls_tcp
	t_case api_cli_shoald_clean_exit case_shoald_clean_exit
else
	t_case api_cli_shoald_starts false
fi
t_done
