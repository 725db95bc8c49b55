#!/usr/bin/env bash
# The whole test suite: unit tests, fuzz seeds, and integration tests on
# real sandbox nodes (which need root; CI runs as root).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
test -z "$(gofmt -l .)" || { echo "gofmt needed on:"; gofmt -l .; exit 1; }
go vet ./...
go test -count=1 -timeout 20m "$@" ./...
