#!/bin/sh
# hosts.sh: gives a pod node the names of its peers. Its stdin is the
# lines "ADDRESS NAME # go-jepsen k8s" to have in /etc/hosts; earlier
# lines of that form go. The file is the kubelet's, bind-mounted, so it
# is rewritten in place (sed -i would rename over the mount).
set -eu
keep=$(grep -v '# go-jepsen k8s$' /etc/hosts || true)
new=$(cat)
printf '%s\n%s\n' "$keep" "$new" > /etc/hosts
