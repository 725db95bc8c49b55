#!/usr/bin/env bash
# The whole test suite: go.mod tidy, formatting, vet, shellcheck on every
# shell script, unit tests, fuzz seeds, and integration tests on real
# sandbox nodes (which need root; CI runs as root).
#
#   scripts/test.sh            the suite once
#   scripts/test.sh --ci       what CI runs: the suite twice in a row with a
#                              CPU hog beside it (a flaky test fails one of
#                              the two), then the logic tests as nobody
#   scripts/test.sh -short     the logic tests alone (no nodes, no root)
#
# Other arguments go to go test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

ci=0 short=0 args=()
for a in "$@"; do
	case "$a" in
	--ci) ci=1 ;;
	-short) short=1 args+=("$a") ;;
	*) args+=("$a") ;;
	esac
done

go mod tidy -diff || { echo "go.mod or go.sum is not tidy: run go mod tidy"; exit 1; }
test -z "$(gofmt -l .)" || { echo "gofmt needed on:"; gofmt -l .; exit 1; }
go vet ./...
# Every shell script in the repository, including those go:embed puts in
# the binary; -x follows the lib.sh they source.
mapfile -t scripts < <(git ls-files '*.sh' 2>/dev/null || find . -name '*.sh' -not -path './store/*/*')
shellcheck -x --source-path=SCRIPTDIR "${scripts[@]}"

if [ "$short" = 1 ]; then
	go test -count=1 "${args[@]}" ./...
	exit 0
fi

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

if [ "$ci" = 1 ]; then
	# A loaded machine: a busy loop on one core, at the lowest priority,
	# beside everything that follows.
	nice -n 19 sh -c 'while :; do :; done' &
	pids+=($!)
fi

# The Kubernetes binaries the k8s package's tests run: built once per
# machine into ~/.cache/go-jepsen/k8s (about 13 minutes on two cores,
# under nice), beside the other packages' tests, which mostly wait on
# their nodes; found in the cache in a second after that.
go run ./cmd/jepsen k8s build >/tmp/go-jepsen-k8s-build.log 2>&1 &
build=$!
pids+=("$build")

# Test packages run three at a time: most of their time is spent waiting
# on nodes, not on the CPU.
mapfile -t others < <(go list ./... | grep -v '/k8s$')
pass() {
	echo "== go test, pass $1"
	local start=$SECONDS
	if [ "$1" = 1 ]; then
		go test -count=1 -p 3 -timeout 20m "${args[@]}" "${others[@]}"
		echo "== waiting for the Kubernetes build"
		wait "$build" || { cat /tmp/go-jepsen-k8s-build.log; exit 1; }
		go test -count=1 -timeout 20m "${args[@]}" ./k8s
	else
		go test -count=1 -p 3 -timeout 20m "${args[@]}" ./...
	fi
	echo "== pass $1: $((SECONDS - start)) s"
}
pass 1
if [ "$ci" = 1 ]; then
	pass 2
	# The logic tests as an unprivileged user, as the README promises.
	bash scripts/test-unprivileged.sh
fi
# The parsers' fuzz targets, a few seconds each.
bash scripts/fuzz.sh
