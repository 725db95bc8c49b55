#!/bin/sh
# firewall.sh tool | drop ADDR... | clear | rules
# go-jepsen's own packet filter on a node, for partitions (see
# cu.Drop): every rule lives in a chain of its own, "jepsen" (iptables) or
# table "inet jepsen" (nft, where iptables is missing), so that healing
# and clearing touch only what go-jepsen added.
#   tool         prints iptables or nft
#   drop ADDR..  drops every packet from each ADDR (IPv4), adding to the cut
#   clear        removes the chain and its hook: nothing of go-jepsen's is left
#   rules        lists every rule of go-jepsen's: the chain, its drops, its hook
# shellcheck source=lib.sh
. ./lib.sh
set -u
cmd=$1
shift
if command -v iptables >/dev/null 2>&1; then tool=iptables
elif command -v nft >/dev/null 2>&1; then tool=nft
else echo "neither iptables nor nft is installed" >&2; exit "$E_NO_FIREWALL"; fi
ipt() { iptables -w 5 "$@"; }
hook() {
  if [ $tool = iptables ]; then
    ipt -N jepsen 2>/dev/null || true
    ipt -C INPUT -j jepsen 2>/dev/null || ipt -I INPUT -j jepsen
  else
    nft add table inet jepsen
    nft add chain inet jepsen input '{ type filter hook input priority -10; policy accept; }'
  fi
}
case $cmd in
tool) echo $tool ;;
drop)
  hook
  for a in "$@"; do
    if [ $tool = iptables ]; then
      ipt -C jepsen -s "$a" -j DROP 2>/dev/null || ipt -A jepsen -s "$a" -j DROP
    else
      nft add rule inet jepsen input ip saddr "$a" drop
    fi
  done
  ;;
clear)
  if [ $tool = iptables ]; then
    while ipt -D INPUT -j jepsen 2>/dev/null; do :; done
    ipt -F jepsen 2>/dev/null || true
    ipt -X jepsen 2>/dev/null || true
  else
    nft delete table inet jepsen 2>/dev/null || true
  fi
  ;;
rules)
  if [ $tool = iptables ]; then ipt -S 2>/dev/null | grep -e jepsen || true
  else nft list table inet jepsen 2>/dev/null || true; fi
  ;;
*) echo "firewall.sh: unknown command $cmd" >&2; exit 2 ;;
esac
