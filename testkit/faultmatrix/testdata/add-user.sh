#!/bin/sh
# add-user.sh USER PASSWORD RULE: makes USER with PASSWORD and a sudo rule,
# "nopasswd" (NOPASSWD: ALL) or "password" (ALL, asking for USER's own
# password). Run as root on a sandbox node.
set -eu
user=$1 pw=$2 rule=$3
id "$user" >/dev/null 2>&1 || useradd -m -s /bin/sh "$user"
printf '%s:%s\n' "$user" "$pw" | chpasswd
case $rule in
nopasswd) echo "$user ALL=(ALL) NOPASSWD: ALL" > "/etc/sudoers.d/$user" ;;
password) echo "$user ALL=(ALL) ALL" > "/etc/sudoers.d/$user" ;;
esac
chmod 440 "/etc/sudoers.d/$user"
