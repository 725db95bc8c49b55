// Package faultmatrix holds go-jepsen's fault matrix: integration tests
// that each inject one fault on real sandbox nodes (real sshd, iptables
// inside a node's network namespace, SIGSTOP of a node's sshd, SIGINT in
// every phase of a run, a failing teardown, secrets with both kinds of
// sudo rule) and check the promise the README's "Under faults" section
// makes. The package has no code of its own; `go test` runs the matrix,
// as root (CI runs it).
package faultmatrix
