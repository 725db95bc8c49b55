#!/usr/bin/env bash
# ratios.sh RESULTS: the table of ratios from `go test -bench` output
# (scripts/bench.sh writes it): ours / baseline per row, same run, same
# nodes. Rows whose benchmarks are missing are left out.
set -euo pipefail
awk '
# "BenchmarkName-2  N  123 ns/op  4.5 unit ..." -> ns[Name], m[Name,unit]
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
	for (i = 3; i < NF; i += 2) {
		if ($(i + 1) == "ns/op") ns[name] = $i
		else m[name, $(i + 1)] = $i
	}
}
function row(what, a, b, goal,   r) {
	if (!(a in ns) || !(b in ns) || ns[b] == 0) return
	r = ns[a] / ns[b]
	printf "%-58s %7.2fx  %s\n", what, r, goal
}
function metric(what, a, ua, b, ub, goal,   r) {
	if (!((a, ua) in m) || !((b, ub) in m) || m[b, ub] == 0) return
	r = m[a, ua] / m[b, ub]
	printf "%-58s %7.2fx  %s\n", what, r, goal
}
function value(what, a, u, fmt_, goal) {
	if (!((a, u) in m)) return
	printf "%-58s " fmt_ "  %s\n", what, m[a, u], goal
}
END {
	printf "%-58s %8s  %s\n", "ours / baseline (same run, same nodes)", "ratio", "goal"
	row("logs, 5 nodes x 200 MB: default / parallel scp -r", "CollectLogs/fast", "ParallelSCP", "<= 0.8x")
	row("logs: default / tar | zstd -1 over OpenSSH", "CollectLogs/fast", "ParallelSSHTarZstd", "")
	value("logs: bytes moved, % of raw", "CollectLogs/fast", "%moved", "%7.1f%%", "<= 15%")
	metric("etcd cycle, 5 nodes, fastest of 5 / hand start", "Cycle", "fastest-ms", "HandStart", "fastest-ms", "<= 2x")
	row("one command cold, 50 nodes / pssh", "OneCold/nodes=50/ours", "OneCold/nodes=50/pssh", "<= 0.3x")
	row("one command cold, 100 nodes / pssh", "OneCold/nodes=100/ours", "OneCold/nodes=100/pssh", "")
	row("one command cold, 100 nodes / parallel ssh", "OneCold/nodes=100/ours", "OneCold/nodes=100/openssh", "")
	row("two commands cold, 100 nodes / parallel fresh ssh", "TwoCold/nodes=100/ours", "TwoCold/nodes=100/openssh", "")
	row("two commands warm, 50 nodes / ControlMaster", "TwoWarm/nodes=50/ours", "TwoWarm/nodes=50/controlmaster", "<= 0.35x")
	row("two commands warm, 100 nodes / ControlMaster", "TwoWarm/nodes=100/ours", "TwoWarm/nodes=100/controlmaster", "<= 0.35x")
	row("  the same without the agent (a channel each), 100 nodes", "TwoWarm/nodes=100/ours-channels", "TwoWarm/nodes=100/controlmaster", "")
	row("two commands warm: 100 nodes / 50 nodes", "TwoWarm/nodes=100/ours", "TwoWarm/nodes=50/ours", "<= 2.2x")
	# The switch rounds are timed against ControlMaster rounds interleaved
	# with them (metric x-controlmaster), not against a benchmark of their own.
	value("switch, 50 nodes: second round / ControlMaster", "Switch/nodes=50/second", "x-controlmaster", "%7.2fx", "<= 1.0x")
	value("switch, 100 nodes: second round / ControlMaster", "Switch/nodes=100/second", "x-controlmaster", "%7.2fx", "<= 1.0x")
	value("  third round, 100 nodes", "Switch/nodes=100/third", "x-controlmaster", "%7.2fx", "")
	value("  second round on nodes without the agent, 100 nodes", "Switch/nodes=100/second-fresh", "x-controlmaster", "%7.2fx", "")
	value("switch, 50 nodes: steady round / ControlMaster", "Switch/nodes=50/steady", "x-controlmaster", "%7.2fx", "<= 0.35x")
	value("switch, 100 nodes: steady round / ControlMaster", "Switch/nodes=100/steady", "x-controlmaster", "%7.2fx", "<= 0.35x")
	value("peak RSS of jepsen exec on 100 nodes, MB", "OneCold/nodes=100/ours", "peak-rss-MB", "%7.1f ", "<= 64")
	row("round trip on an open connection / ControlMaster", "RoundTripWarm", "OpenSSHControlMaster", "")
	row("100 MB upload / scp", "Upload100MB", "SCPUpload100MB", "")
	row("100 MB download / scp", "Download100MB", "SCPDownload100MB", "")
	row("Docker remote round trip / SSH, same containers", "RoundTrip/docker", "RoundTrip/ssh", "")
	row("Kubernetes remote round trip / SSH, same pods", "RoundTrip/k8s", "RoundTrip/pods-ssh", "")
	row("  / SSH without the agent (a channel each)", "RoundTrip/k8s", "RoundTrip/pods-ssh-channels", "")
	row("  / bare runc exec into the same container", "RoundTrip/k8s", "RoundTrip/runc-exec", "")
	row("Kubernetes remote 100 MB upload / SSH, same pods", "Transfer100MB/upload-k8s", "Transfer100MB/upload-pods-ssh", "")
	row("Kubernetes remote 100 MB download / SSH, same pods", "Transfer100MB/download-k8s", "Transfer100MB/download-pods-ssh", "")
}' "$1"
