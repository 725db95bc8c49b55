#!/usr/bin/env bash
# Installs what go-jepsen needs on a Debian 12 box, only where missing.
# Sourced by demo.sh and test.sh; safe to run again.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
	echo "go-jepsen: the sandbox needs root; run this as root (for example: sudo $0)" >&2
	exit 1
fi

# Go: the one on PATH, else the usual install location.
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
if ! command -v go >/dev/null; then
	echo "go-jepsen: Go 1.26 is needed (https://go.dev/doc/install) and was not found" >&2
	exit 1
fi

# Debian packages for the sandbox nodes, the control layer's tests and the
# example databases (etcd; PostgreSQL, whose servers dbs/postgres runs on
# the nodes from /usr/lib/postgresql/15/bin). Installed on the host, because nodes share the host's
# /usr (read-only inside a node); debootstrap builds the container nodes'
# image (the Docker engine itself is the machine's own); containerd, runc
# and containernetworking-plugins run the one-node Kubernetes of `jepsen
# k8s up` (its etcd is etcd-server's); redis-server is the database of the
# guide's example (examples/redis), which its tests run on control/local.
pkgs=(openssh-server openssh-client iproute2 iptables tcpdump etcd-server etcd-client
	iputils-ping netcat-openbsd psmisc procps sudo util-linux mount tar gzip coreutils curl wget unzip
	shellcheck debootstrap zstd chromium pssh containerd runc containernetworking-plugins postgresql redis-server)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	echo "go-jepsen: installing ${missing[*]}" >&2
	# Installing openssh-server or etcd-server would start a host sshd and
	# etcd; a policy-rc.d that forbids starting services prevents that. An
	# existing one is left as it is; ours is removed afterwards.
	created_policy=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		created_policy=1
	fi
	cleanup_policy() { if [ "$created_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi; }
	trap cleanup_policy EXIT
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	cleanup_policy
	trap - EXIT
fi

# Debian's postgresql makes a "main" cluster when it is installed (not
# started, thanks to the policy-rc.d above, but a boot would start it).
# The nodes run their own servers (dbs/postgres) and the host needs none:
# a main cluster that is down and never ran (no postmaster.opts, which
# every start writes) holds nothing and is dropped. Any other cluster is
# left alone.
if command -v pg_lsclusters >/dev/null; then
	pg_lsclusters --no-header 2>/dev/null | while read -r ver name _ status _ data _; do
		if [ "$name" = main ] && [ "$status" = down ] && [ -d "$data" ] && [ ! -e "$data/postmaster.opts" ]; then
			echo "go-jepsen: dropping PostgreSQL $ver's unused main cluster (Debian's install made it; the nodes run their own servers)" >&2
			pg_dropcluster "$ver" "$name"
		fi
	done
fi
