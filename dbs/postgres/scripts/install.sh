#!/bin/sh
# install.sh VERSION BINDIR MAY_INSTALL
# Makes sure PostgreSQL VERSION's server programs are in BINDIR on this
# node. Prints "present" when they are; otherwise, when MAY_INSTALL is
# "yes" and /usr is writable, installs Debian's postgresql-VERSION with
# apt-get without starting any service (a policy-rc.d that forbids it,
# removed afterwards when it was ours), drops the "main" cluster the
# package made (it never ran), and prints "installed".
# Exit statuses: 90 missing and installing is off, 91 missing and /usr is
# read-only (a sandbox node: install on the host), 92 apt-get failed.
set -eu
version=$1 bindir=$2 may=$3
present() {
  for p in postgres initdb pg_basebackup pg_isready psql; do
    [ -x "$bindir/$p" ] || return 1
  done
}
if present; then echo present; exit 0; fi
if [ "$may" != yes ]; then
  echo "PostgreSQL $version is not installed ($bindir/postgres is missing) and installing is off: install Debian's postgresql-$version on the node" >&2
  exit 90
fi
opts=$(findmnt -n -o OPTIONS --target /usr 2>/dev/null || true)
case ",$opts," in
*,ro,*)
  echo "PostgreSQL $version is not installed ($bindir/postgres is missing) and /usr is read-only here (a sandbox node shares the host's /usr): install Debian's postgresql-$version on the host (scripts/setup.sh does) before the sandbox comes up" >&2
  exit 91
  ;;
esac
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
created=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  created=1
fi
trap 'if [ "$created" = 1 ]; then rm -f "$policy"; fi' EXIT
had_main=0
if [ -e "/etc/postgresql/$version/main" ]; then had_main=1; fi
log=$(mktemp)
if ! apt-get install -y -q --no-install-recommends "postgresql-$version" >"$log" 2>&1; then
  if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "postgresql-$version"; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    exit 92
  fi
fi
rm -f "$log"
if [ "$had_main" = 0 ] && [ -e "/etc/postgresql/$version/main" ]; then
  pg_dropcluster --stop "$version" main >&2 || true
fi
present || { echo "apt-get installed postgresql-$version but $bindir lacks its programs" >&2; exit 92; }
echo installed
