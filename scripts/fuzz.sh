#!/usr/bin/env bash
# Runs each parser's fuzz target for a few seconds (FUZZTIME, default 5s):
# the readers of everything a user hands go-jepsen (histories in every
# format, journals, nodes files, captures, agent frames) and the checker.
# The seed corpora also run as plain tests in `go test ./...`.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${FUZZTIME:-5s}
targets=(
	"./history FuzzDecode"
	"./history FuzzReadEDN"
	"./history/edn FuzzDecode"
	"./checker FuzzCheck"
	"./store FuzzReadJournal"
	"./control FuzzParseNodesFile"
	"./control FuzzEscape"
	"./control/agent FuzzReadFrame"
	"./pcap FuzzSummarize"
	"./db FuzzResolveLogFiles"
)
for tg in "${targets[@]}"; do
	read -r pkg name <<<"$tg"
	echo "fuzz: $pkg $name for $t"
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$t" -fuzzminimizetime 5s "$pkg" >/tmp/go-jepsen-fuzz.log 2>&1 || {
		cat /tmp/go-jepsen-fuzz.log
		exit 1
	}
done
rm -f /tmp/go-jepsen-fuzz.log
