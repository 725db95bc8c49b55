#!/usr/bin/env bash
# The whole test suite: formatting, vet, shellcheck on every shell script,
# unit tests, fuzz seeds, and integration tests on real sandbox nodes
# (which need root; CI runs as root).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
test -z "$(gofmt -l .)" || { echo "gofmt needed on:"; gofmt -l .; exit 1; }
go vet ./...
# Every shell script in the repository, including those go:embed puts in
# the binary; -x follows the lib.sh they source.
mapfile -t scripts < <(git ls-files '*.sh' 2>/dev/null || find . -name '*.sh' -not -path './store/*/*')
shellcheck -x --source-path=SCRIPTDIR "${scripts[@]}"
# The Kubernetes binaries the k8s package's tests run: built once per
# machine into ~/.cache/go-jepsen/k8s (about 13 minutes on two cores),
# here rather than inside go test's per-package timeout; found in the
# cache in a second after that. -short skips those tests.
case " $* " in
*" -short "*) ;;
*) go run ./cmd/jepsen k8s build ;;
esac
go test -count=1 -timeout 20m "$@" ./...
# The parsers' fuzz targets, a few seconds each.
bash scripts/fuzz.sh
