#!/bin/sh
# build-rootfs.sh DIR SUITE MIRROR PACKAGES INIT SSHD_CONFIG
# Makes a go-jepsen node's root filesystem in DIR with debootstrap (a
# minimal Debian SUITE from MIRROR with the comma-separated PACKAGES),
# puts the node's init and sshd config in it, and removes what must not be
# shared through an image (host keys) or is dead weight (apt lists, docs,
# man pages).
set -eu
dir=$1 suite=$2 mirror=$3 pkgs=$4 init=$5 sshd=$6
debootstrap --variant=minbase --include="$pkgs" "$suite" "$dir" "$mirror" >&2
install -m 0755 "$init" "$dir/usr/local/sbin/jepsen-node-init"
install -m 0644 "$sshd" "$dir/etc/ssh/jepsen_sshd_config"
rm -f "$dir"/etc/ssh/ssh_host_*
rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb \
  "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/info/*
mkdir -p "$dir/root/.ssh" "$dir/run/sshd"
chmod 0700 "$dir/root/.ssh"
