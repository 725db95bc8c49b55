#!/bin/sh
# pod-init.sh: what a go-jepsen pod node runs (in a pod that shares its
# process namespace, whose pause process reaps orphans). It authorises
# the client key given in $AUTHORIZED_KEY for root, then runs the node
# image's init: a host key of the pod's own, and sshd in the foreground.
set -eu
mkdir -p /root/.ssh
chmod 0700 /root/.ssh
printf '%s\n' "$AUTHORIZED_KEY" > /root/.ssh/authorized_keys
chmod 0600 /root/.ssh/authorized_keys
exec /usr/local/sbin/jepsen-node-init
