package db_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/dbs/localdb"
	"github.com/go-jepsen/jepsen/event"
)

// Cycle's rules, on control/local without root (dbs/localdb): the
// sandbox tests check the same on real nodes.

func steps(calls []string, step string) int {
	n := 0
	for _, c := range calls {
		if strings.HasPrefix(c, step+" ") {
			n++
		}
	}
	return n
}

func TestCycleRetryRules(t *testing.T) {
	boom := errors.New("disk on fire")
	tests := []struct {
		name      string
		hook      func(step, node string, setups int32) error
		wantTries int
		wantErr   func(error) bool
		kept      int // OnFailedTry calls
	}{
		{"works", nil, 1, func(err error) bool { return err == nil }, 0},
		{"setup failed twice, then works", func(step, node string, setups int32) error {
			if step == "setup" && node == "n2" && setups <= 2 {
				return db.SetupFailed("no quorum")
			}
			return nil
		}, 3, func(err error) bool { return err == nil }, 2},
		{"setup failed every time", func(step, node string, _ int32) error {
			if step == "setup" && node == "n3" {
				return db.SetupFailed("no quorum")
			}
			return nil
		}, 3, func(err error) bool {
			ce, ok := errors.AsType[*db.CycleError](err)
			return ok && errors.Is(err, db.ErrSetupFailed) && ce.Try == 3 && len(ce.Earlier) == 2 && ce.Phase == event.Setup
		}, 2},
		{"setup-primary failed once", func(step, node string, n int32) error {
			if step == "setup-primary" && n == 1 {
				return db.SetupFailed("no leader yet")
			}
			return nil
		}, 2, func(err error) bool { return err == nil }, 1},
		{"another error is not retried", func(step, node string, _ int32) error {
			if step == "setup" && node == "n1" {
				return boom
			}
			return nil
		}, 1, func(err error) bool { return errors.Is(err, boom) && strings.Contains(err.Error(), "n1") }, 0},
		{"a teardown error is not retried", func(step, node string, _ int32) error {
			if step == "teardown" && node == "n3" {
				return db.SetupFailed("even this")
			}
			return nil
		}, 1, func(err error) bool {
			ce, ok := errors.AsType[*db.CycleError](err)
			return ok && ce.Phase == event.Teardown && strings.Contains(err.Error(), "n3")
		}, 0},
		{"a panic is that node's error, not retried", func(step, node string, _ int32) error {
			if step == "setup" && node == "n2" {
				panic("setup bug")
			}
			return nil
		}, 1, func(err error) bool {
			_, ok := errors.AsType[*control.PanicError](err)
			return ok && strings.Contains(err.Error(), "n2")
		}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := localdb.New(t.TempDir())
			tt := localdb.Test("cycle", "n1", "n2", "n3")
			// The hook sees how many times this step ran on n2 (setup) or
			// at all (setup-primary).
			var setups, primaries atomic.Int32
			if tc.hook != nil {
				d.Hook = func(ctx context.Context, step, node string) error {
					n := int32(0)
					switch {
					case step == "setup" && node == "n2":
						n = setups.Add(1)
					case step == "setup-primary":
						n = primaries.Add(1)
					}
					return tc.hook(step, node, n)
				}
			}
			tries, kept := 0, 0
			err := db.CycleWith(context.Background(), tt, localdb.Primary{DB: d}, db.CycleOptions{
				Recorder: event.Func(func(e event.Event) {
					if e.Kind == event.CycleTry {
						tries++
					}
				}),
				OnFailedTry: func(ctx context.Context, try int, cause error) error { kept++; return nil },
			})
			defer func() {
				for _, n := range tt.Nodes {
					d.Teardown(context.Background(), tt, n)
				}
			}()
			if !tc.wantErr(err) {
				t.Fatalf("err %v", err)
			}
			if tries != tc.wantTries || kept != tc.kept {
				t.Fatalf("%d tries, %d kept; want %d and %d: %v", tries, kept, tc.wantTries, tc.kept, d.Calls())
			}
			calls := d.Calls()
			// A full teardown before every try.
			if steps(calls, "teardown") != 3*tries {
				t.Fatalf("teardowns %d for %d tries: %v", steps(calls, "teardown"), tries, calls)
			}
			if err == nil && (calls[len(calls)-1] != "setup-primary n1" || slices.ContainsFunc(calls, func(c string) bool {
				return strings.HasPrefix(c, "setup-primary") && c != "setup-primary n1"
			})) {
				t.Fatalf("setup-primary must run last, on n1 only: %v", calls)
			}
		})
	}
}

// A node list with a node twice is refused before anything runs.
func TestCycleRefusesDuplicateNodes(t *testing.T) {
	d := localdb.New(t.TempDir())
	tt := localdb.Test("cycle", "n1", "n2")
	tt.Nodes = append(tt.Nodes, "n1")
	if err := db.Cycle(context.Background(), tt, d); !errors.Is(err, control.ErrInvalidNode) || len(d.Calls()) != 0 {
		t.Fatalf("got %v after %v", err, d.Calls())
	}
}
