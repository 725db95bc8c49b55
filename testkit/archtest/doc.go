// Package archtest checks the import rules the README states, with
// `go list`: the root package imports no transport, the nemesis does not
// import the store, and no package imports one above it.
package archtest
