#!/usr/bin/env bash
# The fast loop as an unprivileged user: `go test -short` of the logic
# packages, run as nobody from a copy of the checkout, with the module
# cache shared read-only (hard links) and a build cache of its own. It
# checks that the logic tests need neither root nor nodes, as the README
# promises. Run as root; PKGS overrides the packages (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=${PKGS:-./...}
work=$(mktemp -d /tmp/go-jepsen-nobody.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
mkdir -p "$work/src" "$work/home" "$work/cache"
git ls-files -z | tar --null -cf - -T - | tar -xf - -C "$work/src"
# The module cache is read-only by design (0444 files, 0555 directories):
# links to it are enough, and cost no copy.
cp -al "$(go env GOMODCACHE)" "$work/mod"
chown -R nobody "$work/src" "$work/home" "$work/cache"
cd "$work/src"
# go test -json, each package's line shown as go test prints it, then the
# count of tests (and subtests) that ran and that skipped.
status=0
# shellcheck disable=SC2086 # pkgs is a list of patterns
runuser -u nobody -- env -i PATH="$PATH" HOME="$work/home" TMPDIR="$work/home" \
	GOCACHE="$work/cache" GOMODCACHE="$work/mod" GOFLAGS=-mod=readonly GOPROXY=off GOTOOLCHAIN=local \
	go test -short -count=1 -json $pkgs >"$work/test.json" || status=$?
grep -o '"Action":"output","Package":"[^"]*","Output":"\(ok\|FAIL\|---\|panic\)[^"]*' "$work/test.json" |
	sed 's/.*"Output":"//; s/\\t/\t/g; s/\\n$//' || true
passed=$(grep -c '"Action":"pass","Package":"[^"]*","Test":' "$work/test.json" || true)
skipped=$(grep -c '"Action":"skip","Package":"[^"]*","Test":' "$work/test.json" || true)
failed=$(grep -c '"Action":"fail","Package":"[^"]*","Test":' "$work/test.json" || true)
echo "as nobody, go test -short: $passed tests passed, $failed failed, $skipped skipped (tests and subtests)"
exit "$status"
