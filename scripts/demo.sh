#!/usr/bin/env bash
# The main job: the go-jepsen demo on a local sandbox cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
go build -o bin/jepsen ./cmd/jepsen
exec bin/jepsen demo "$@"
