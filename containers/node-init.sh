#!/bin/sh
# node-init.sh: what a go-jepsen container node runs (under docker
# --init, which reaps orphans). Its first start makes the container's own
# SSH host key, so that no two containers share one and the image holds
# none; then sshd serves in the foreground.
set -eu
if [ ! -s /etc/ssh/ssh_host_ed25519_key ]; then
  ssh-keygen -q -t ed25519 -N '' -C "root@$(hostname)" -f /etc/ssh/ssh_host_ed25519_key
fi
mkdir -p /run/sshd
exec /usr/sbin/sshd -D -e -f /etc/ssh/jepsen_sshd_config
