#!/bin/sh
# init.sh NODE_DIR HOSTNAME STATE_DIR
# PID 1 of a sandbox node, run inside the node's network namespace and
# fresh mount, UTS, IPC and PID namespaces: it configures the node's
# network, builds its private filesystem view and execs sshd. Order
# matters (see the sandbox recipe): /run/netns is unmounted first so the
# node does not pin other nodes' namespaces; /run, which holds the state
# directory by default, is covered last (see nodeFstab). Every exec costs
# milliseconds and 50 nodes start at once, so the network is one
# `ip -batch` and the mounts one `mount -a`.
set -eu
D=$1
echo "$2" > /proc/sys/kernel/hostname
mount --make-rprivate /
umount -R /run/netns 2>/dev/null || true
mount -t proc -o nosuid,nodev,noexec proc /proc
echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6
echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6
ip -batch "$D/ip.batch"
# /dev/shm is a tmpfs on the host already, which mount -a would take as
# done.
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mount -a -T "$D/fstab"
# When the state dir is outside /run it is still visible here; hide it so
# a node cannot read its neighbours' data.
if [ -d "$3" ]; then mount -t tmpfs -o size=64k,mode=0755 tmpfs "$3"; fi
mount -o remount,bind,ro /
# No node may move the shared clock or load kernel modules.
exec setpriv --bounding-set -sys_time,-sys_module -- /usr/sbin/sshd -D -e -f /etc/ssh/jepsen_sshd_config
