#!/usr/bin/env bash
# Benchmarks, each beside its baseline measured in the same run on the
# same nodes, then one table of ratios (ours / baseline; below 1 is
# faster): log collection against parallel scp -r and tar | zstd over
# OpenSSH; the etcd cycle against etcd members started by hand; commands
# on 50 and 100 nodes against pssh, parallel ssh and ControlMaster; the
# control layer's round trip and transfers against OpenSSH; the Docker
# remote against SSH on the same containers, and the Kubernetes remote
# against SSH on the same pods; sandbox up/down and the
# linearizability check as absolute numbers. Raw results go to
# bench-results.txt. Needs root (sandbox nodes) and about 10 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
{
	go test ./logs -run '^$' -bench . -benchtime 3x
	go test ./dbs/etcd -run '^$' -bench 'Cycle|HandStart' -benchtime 5x
	go test ./testkit/fanbench -run '^$' -bench . -benchtime 5x -timeout 30m
	go test ./control/ssh -run '^$' -bench . -benchtime 2s
	go test ./containers -run '^$' -bench . -benchtime 2s
	go test ./k8s -run '^$' -bench . -benchtime 2s
	go test ./sandbox -run '^$' -bench UpDown -benchtime 3x
	go test ./checker -run '^$' -bench .
} 2>&1 | tee bench-results.txt
echo
scripts/ratios.sh bench-results.txt
