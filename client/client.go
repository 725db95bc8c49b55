// Package client is Jepsen's client protocol (jepsen.client): how a test
// talks to the database under test. A Client opens a connection (a Conn)
// to one node for one worker; the worker invokes operations on it, one at
// a time, and each returns its completion. The interpreter (package
// interpreter) records every invocation and completion in the history.
//
// How an operation ends is the client's to say, in the terms of Jepsen's
// history:
//   - ok: it happened. Return the completion with no error (its Value is
//     what the operation observed, a read's value, say; a nil Value
//     repeats the invocation's).
//   - fail: it certainly did not happen (refused before it was sent, a
//     compare-and-set whose comparison failed). Return a completion whose
//     Type is history.Fail, or an error marked with Fail.
//   - info: it may or may not have happened (a timeout, a lost
//     connection). Return any other error. A context that ended (the
//     operation's timeout) is always info, whatever the error says: the
//     request may be in flight. After info the worker goes on as a new
//     process with a new connection, as in Jepsen.
//
// A worker whose operation returned an error backs off before its next
// one (a node that is down fails fast, and the worker must not race
// through operations against it); a fail completion returned without an
// error does not. So return an expected outcome (a compare-and-set whose
// comparison failed) as a completion of Type history.Fail, and an error
// when something went wrong.
package client

import (
	"context"
	"errors"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/history"
)

// Client describes how to talk to the database. One value serves a whole
// run; it must be safe for concurrent use (Open is called from several
// workers at once).
type Client interface {
	// Open returns a connection to node for one worker. It is called once
	// per worker, and again after an operation whose outcome is unknown
	// (the old connection may still be busy with it). ctx bounds the
	// opening only.
	Open(ctx context.Context, t *jepsen.Test, node string) (Conn, error)
}

// Conn performs one worker's operations, one at a time: it is never used
// from two goroutines at once.
type Conn interface {
	// Invoke performs op, an invocation (its F, Key and Value say what
	// to do), within ctx (the operation's timeout), and returns its
	// completion; see the package doc for how the completion's type is
	// decided. The completion's Index, Process, Node, Time and F are the
	// interpreter's to fill; Invoke sets Type (OK or Fail; zero is OK),
	// Value and Error.
	Invoke(ctx context.Context, op history.Op) (history.Op, error)
	// Close releases the connection. It may be called while an Invoke
	// that timed out is still running.
	Close() error
}

// Setupper is a Client with one-time setup (Jepsen's setup!: create a
// table, seed accounts), run once before the workload on a connection to
// the first node.
type Setupper interface {
	Setup(ctx context.Context, t *jepsen.Test, c Conn) error
}

// Teardowner is a Client with one-time teardown, run once after the
// workload (unless the DB is left running), on a connection to the first
// node.
type Teardowner interface {
	Teardown(ctx context.Context, t *jepsen.Test, c Conn) error
}

// errFail marks an error as certain: the operation did not happen.
type failError struct{ err error }

func (e *failError) Error() string { return e.err.Error() }
func (e *failError) Unwrap() error { return e.err }

// Fail marks err as certain: the operation it ended certainly did not
// take effect, so Invoke's caller records it as "fail", not "info". Fail
// of nil is nil.
func Fail(err error) error {
	if err == nil {
		return nil
	}
	return &failError{err}
}

// IsFail reports whether err was marked with Fail.
func IsFail(err error) bool {
	_, ok := errors.AsType[*failError](err)
	return ok
}

// Outcome is the type a completion gets: OK for no error, Fail for an
// error marked with Fail (unless ctx ended: a timed-out operation may
// still happen), Info for any other error.
func Outcome(ctx context.Context, err error) history.Type {
	switch {
	case err == nil:
		return history.OK
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return history.Info
	case IsFail(err):
		return history.Fail
	}
	return history.Info
}
