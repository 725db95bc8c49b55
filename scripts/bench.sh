#!/usr/bin/env bash
# Benchmarks: sandbox up and down for 5 and 50 nodes; then, each beside
# its baseline measured in the same run on the same sandbox nodes: the control layer against OpenSSH ssh (fresh and
# ControlMaster) and scp; log collection against parallel scp -r and
# ssh 'tar cz' | tar xz; the Docker remote beside SSH on the same
# container nodes; the linearizability check. Results go to
# bench-results.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
{
	go test ./sandbox -run '^$' -bench UpDown -benchtime 3x
	go test ./control/ssh -run '^$' -bench . -benchtime 2s
	go test ./store -run '^$' -bench . -benchtime 2x
	go test ./containers -run '^$' -bench . -benchtime 2s
	go test ./checker -run '^$' -bench .
} 2>&1 | tee bench-results.txt
