#!/bin/sh
# netfault.sh probe | check SELF PEER... | wait-ready READY PIDFILE LOG | heal | ours
# The node side of go-jepsen's packet faults (package netfault). Every
# name here is go-jepsen's own, and heal removes exactly these:
#   iptables chain jepsen-pkt, hooked first in OUTPUT (and the probe's
#     unhooked chain jepsen-pkt-probe);
#   nft table inet jepsen_pkt (and the probe's inet jepsen_pkt_probe);
#   every root qdisc with handle 7e57: (the qdiscs, classes and filters
#     under it go with it);
#   the probe's veth jpkt-probe0 (only where no namespace could be made);
#   the files of /tmp/jepsen/netfault but the consumer's pidfile, which
#     cu.StopDaemon removes when it has stopped the consumer (the queue,
#     32343, goes with the consumer).
# Commands:
#   probe        prints KEY=VALUE lines: what tc, iptables, nft and the
#                kernel can do, tried on things of our own only
#   check S P..  prints "self yes|no", "route PEER DEV|local|none" per
#                peer and "root DEV KIND HANDLE" per egress device
#   wait-ready   waits until the consumer wrote READY (exit 0), or died
#                (exit 3, with its log's end), at most 10 s (exit 4)
#   heal         removes everything listed above; idempotent
#   ours         lists what of ours is in place (for tests and people)
set -u
CHAIN=jepsen-pkt
PCHAIN=jepsen-pkt-probe
TABLE=jepsen_pkt
PTABLE=jepsen_pkt_probe
HANDLE=7e57:
QUEUE=32343 # 0x7e57
PROBE_DEV=jpkt-probe0
PROBE_PEER=jpkt-probe1
DIR=/tmp/jepsen/netfault
TEST_ADDR=192.0.2.1 # TEST-NET-1: rules that are never hooked name it

has() { command -v "$1" >/dev/null 2>&1; }
ipt() { iptables -w 5 "$@"; }
yes_no() { if "$@" >/dev/null 2>&1; then echo 1; else echo 0; fi; }

# probe_tc: tries each qdisc and filter on a device nobody uses: lo in a
# network namespace of its own when we may make one, else a temporary
# veth of ours.
probe_tc() {
	holder="" dev=""
	if has unshare && has nsenter && unshare -n true 2>/dev/null; then
		unshare -n sleep 30 >/dev/null 2>&1 &
		holder=$!
		i=0
		while [ "$(readlink "/proc/$holder/ns/net")" = "$(readlink /proc/self/ns/net)" ] && [ $i -lt 200 ]; do
			sleep 0.01
			i=$((i + 1))
		done
		dev=lo
		echo "note=tc probed in a private network namespace"
	elif ip link add "$PROBE_DEV" type veth peer name "$PROBE_PEER" 2>/dev/null; then
		dev=$PROBE_DEV
		echo "note=tc probed on a temporary veth $PROBE_DEV (no private network namespace)"
	else
		echo "note=tc not probed: neither a private network namespace nor a temporary veth could be made"
		return 0
	fi
	run() { if [ -n "$holder" ]; then nsenter -t "$holder" -n "$@"; else "$@"; fi; }
	for q in netem htb tbf prio; do
		case $q in
		netem) set -- netem delay 1ms ;;
		tbf) set -- tbf rate 1mbit burst 16384 limit 65536 ;;
		*) set -- "$q" ;;
		esac
		if run tc qdisc add dev "$dev" root handle 1: "$@" 2>/dev/null; then
			echo "$q=1"
			run tc qdisc del dev "$dev" root 2>/dev/null
		else
			echo "$q=0"
		fi
	done
	if run tc qdisc add dev "$dev" root handle 1: htb 2>/dev/null; then
		echo "u32=$(yes_no run tc filter add dev "$dev" parent 1: protocol ip prio 1 u32 match ip dst "$TEST_ADDR/32" flowid 1:1)"
		echo "flower=$(yes_no run tc filter add dev "$dev" parent 1: protocol ip prio 2 flower dst_ip "$TEST_ADDR" classid 1:1)"
		run tc qdisc del dev "$dev" root 2>/dev/null
	fi
	if [ -n "$holder" ]; then
		kill "$holder" 2>/dev/null
		wait "$holder" 2>/dev/null
	else
		ip link del "$PROBE_DEV" 2>/dev/null
	fi
	return 0
}

probe() {
	if has tc; then
		echo tc=1
		probe_tc
	fi
	if has iptables; then
		case $(iptables -V 2>/dev/null) in
		*nf_tables*) echo iptables=nf_tables ;;
		*) echo iptables=legacy ;;
		esac
		echo "iptables-restore=$(yes_no has iptables-restore)"
		ipt -N "$PCHAIN" 2>/dev/null || ipt -F "$PCHAIN" 2>/dev/null
		echo "statistic=$(yes_no ipt -A "$PCHAIN" -d "$TEST_ADDR" -m statistic --mode random --probability 0.5 -j DROP)"
		echo "nfqueue-target=$(yes_no ipt -A "$PCHAIN" -d "$TEST_ADDR" -j NFQUEUE --queue-num 1 --queue-bypass)"
		echo "mark=$(yes_no ipt -A "$PCHAIN" -m mark --mark 1 -j RETURN)"
		ipt -F "$PCHAIN" 2>/dev/null
		ipt -X "$PCHAIN" 2>/dev/null
	fi
	if has nft; then
		echo nft=1
		if nft add table inet "$PTABLE" 2>/dev/null && nft add chain inet "$PTABLE" c 2>/dev/null; then
			echo "nft-numgen=$(yes_no nft add rule inet "$PTABLE" c ip daddr "$TEST_ADDR" numgen random mod 100 '<' 50 drop)"
			echo "nft-queue=$(yes_no nft add rule inet "$PTABLE" c ip daddr "$TEST_ADDR" queue num 1 bypass)"
		fi
		nft delete table inet "$PTABLE" 2>/dev/null
	fi
	if [ -e /proc/net/netfilter/nfnetlink_queue ]; then
		echo nfnetlink-queue=1
	elif has modinfo && modinfo nfnetlink_queue >/dev/null 2>&1; then
		echo nfnetlink-queue=1
		echo "note=nfnetlink_queue is a module the kernel loads on first use"
	else
		echo nfnetlink-queue=0
	fi
	for f in /usr/lib/tc/normal.dist /usr/lib/*/tc/normal.dist; do
		if [ -e "$f" ]; then
			echo normal-dist=1
			break
		fi
	done
	return 0
}

# check SELF PEER...: where each peer's packets leave, and each of those
# devices' root qdisc.
check() {
	self=$1
	shift
	if ip -o -4 addr show | grep -qF " inet $self/"; then echo "self yes"; else echo "self no"; fi
	devs=
	for p in "$@"; do
		r=$(ip -o route get "$p" 2>/dev/null) || {
			echo "route $p none"
			continue
		}
		case $r in local*)
			echo "route $p local"
			continue
			;;
		esac
		# shellcheck disable=SC2086 # split the route into words on purpose
		set -- $r
		d=
		while [ $# -gt 1 ]; do
			if [ "$1" = dev ]; then d=$2; fi
			shift
		done
		echo "route $p ${d:-none}"
		case " $devs " in *" $d "*) ;; *) devs="$devs $d" ;; esac
	done
	for d in $devs; do
		# "qdisc KIND HANDLE dev DEV root ..."
		# shellcheck disable=SC2046 # split the line into words on purpose
		set -- $(tc qdisc show dev "$d" root 2>/dev/null | head -n 1)
		echo "root $d ${2:-none} ${3:-none}"
	done
}

wait_ready() {
	ready=$1 pidf=$2 log=$3 i=0
	while [ $i -lt 1000 ]; do
		[ -s "$ready" ] && return 0
		pid=$(cat "$pidf" 2>/dev/null) || pid=
		if [ -n "$pid" ]; then
			st=$(cat "/proc/$pid/stat" 2>/dev/null) || st=
			case ${st##*) } in "" | Z* | X*)
				tail -n 20 "$log" >&2
				exit 3
				;;
			esac
		fi
		sleep 0.01
		i=$((i + 1))
	done
	tail -n 20 "$log" >&2
	exit 4
}

heal() {
	if has iptables; then
		while ipt -D OUTPUT -j "$CHAIN" 2>/dev/null; do :; done
		for c in "$CHAIN" "$PCHAIN"; do
			ipt -F "$c" 2>/dev/null
			ipt -X "$c" 2>/dev/null
		done
	fi
	if has nft; then
		for t in "$TABLE" "$PTABLE"; do nft delete table inet "$t" 2>/dev/null; done
	fi
	if has tc; then
		tc qdisc show 2>/dev/null | while read -r _ _ handle _ dev where _; do
			if [ "$handle" = "$HANDLE" ] && [ "$where" = root ]; then tc qdisc del dev "$dev" root; fi
		done
	fi
	ip link del "$PROBE_DEV" 2>/dev/null
	rm -f "$DIR/ready"
	return 0
}

ours() {
	if has iptables; then ipt -S 2>/dev/null | grep -e "$CHAIN"; fi
	if has nft; then nft list table inet "$TABLE" 2>/dev/null; fi
	if has tc; then tc qdisc show 2>/dev/null | grep -e " $HANDLE "; fi
	ip -o link show "$PROBE_DEV" 2>/dev/null
	if [ -r /proc/net/netfilter/nfnetlink_queue ]; then
		while read -r q rest; do
			if [ "$q" = "$QUEUE" ]; then echo "nfqueue $q $rest"; fi
		done </proc/net/netfilter/nfnetlink_queue
	fi
	return 0
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
probe) probe ;;
check) check "$@" ;;
wait-ready) wait_ready "$@" ;;
heal) heal ;;
ours) ours ;;
*)
	echo "netfault.sh: unknown command '$cmd'" >&2
	exit 2
	;;
esac
