#!/bin/sh
# Build kube-apiserver and kubelet VERSION from source through the Go module
# proxy. k8s.io/kubernetes cannot be built with `go install` (its go.mod
# replaces the k8s.io staging modules with ./staging/...), so this makes a
# module that requires it and replaces every staging module with its
# published v0.MINOR.PATCH. The binaries appear in BINDIR only when both
# built (written to BINDIR.tmp, then renamed), so a cut build is never
# taken for a cached one.
# Usage: build.sh VERSION BUILDDIR BINDIR   (VERSION like v1.34.4)
set -eu
V=$1 D=$2 BIN=$3
STAGING=v0.${V#v1.}
mkdir -p "$D"
cd "$D"
echo "k8s build: downloading k8s.io/kubernetes@$V"
KDIR=$(go mod download -json "k8s.io/kubernetes@$V" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
[ -f "$KDIR/go.mod" ] || { echo "k8s build: no go.mod for k8s.io/kubernetes@$V" >&2; exit 1; }
mods=$(sed -n '/^replace (/,/^)/p' "$KDIR/go.mod" | awk '/=>/{print $1}')
{
  echo 'module go-jepsen.local/k8sbuild'
  echo
  echo 'go 1.24.0'
  echo
  echo "require k8s.io/kubernetes $V"
  echo
  echo 'replace ('
  for m in $mods; do printf '\t%s => %s %s\n' "$m" "$m" "$STAGING"; done
  echo ')'
} > go.mod
printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver"\n\t_ "k8s.io/kubernetes/cmd/kubelet"\n)\n' > tools.go
echo "k8s build: go mod tidy"
go mod tidy
rm -rf "$BIN.tmp"
mkdir -p "$BIN.tmp"
echo "k8s build: go build kube-apiserver kubelet (about 13 min cold on 2 cores)"
go build -ldflags='-s -w' -o "$BIN.tmp/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubelet
rm -rf "$BIN"
mv "$BIN.tmp" "$BIN"
echo "k8s build: done"
