package control

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Mode says how OnNodes treats a failure.
type Mode int

const (
	// FailFast cancels the other nodes' work at the first failure and
	// reports the root cause: the cancellations it caused are left out.
	// For setup, where one failure dooms the whole.
	FailFast Mode = iota
	// WaitAll lets every node finish and reports every node's error. For
	// teardown, log collection and fault recovery, where one node's
	// failure must not cost the others their turn.
	WaitAll
)

// Fanout configures OnNodes.
type Fanout struct {
	Mode Mode
	// Limit bounds how many nodes run at once; 0 means all at once.
	Limit int
}

// OnNodes runs f for every node concurrently and returns the results in
// node order. On failure the error is a *NodesError naming each failed
// node (in node order), and results of nodes that succeeded are kept. In
// FailFast mode the context given to f is cancelled at the first failure;
// nodes that then fail only because of that cancellation are not
// reported. When ctx itself ends, nodes that did not finish report its
// error.
//
// A panic in f becomes that node's error (a *PanicError with the stack),
// and the other nodes go on. A node listed twice would run f twice at
// once on one node: that list is refused (ErrInvalidNode) before f runs.
func OnNodes[T any](ctx context.Context, nodes []string, fan Fanout, f func(ctx context.Context, node string) (T, error)) ([]T, error) {
	if err := distinct(nodes); err != nil {
		return make([]T, len(nodes)), err
	}
	results := make([]T, len(nodes))
	errs := make([]error, len(nodes))
	inner, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var firstMu sync.Mutex
	first := -1
	limit := fan.Limit
	if limit <= 0 || limit > len(nodes) {
		limit = len(nodes)
	}
	sem := make(chan struct{}, max(limit, 1))
	var wg sync.WaitGroup
	for i, node := range nodes {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-inner.Done():
				errs[i] = context.Cause(inner)
				return
			}
			defer func() { <-sem }()
			if inner.Err() != nil {
				errs[i] = context.Cause(inner)
				return
			}
			var r T
			err := CatchPanic("", func() error {
				var err error
				r, err = f(inner, node)
				return err
			})
			results[i] = r
			if err == nil {
				return
			}
			errs[i] = err
			if fan.Mode == FailFast {
				firstMu.Lock()
				if first < 0 {
					first = i
					cancel(errFanoutCanceled)
				}
				firstMu.Unlock()
			}
		})
	}
	wg.Wait()
	var out []*NodeError
	for i, err := range errs {
		if err == nil {
			continue
		}
		if fan.Mode == FailFast && i != first && ctx.Err() == nil && causedByCancel(err) {
			continue
		}
		out = append(out, &NodeError{Node: nodes[i], Err: err})
	}
	if len(out) == 0 {
		return results, nil
	}
	return results, &NodesError{Errs: out}
}

var errFanoutCanceled = errors.New("canceled: another node failed")

// causedByCancel reports whether err is the fan-out's own cancellation
// showing through.
func causedByCancel(err error) bool {
	return errors.Is(err, errFanoutCanceled) || errors.Is(err, context.Canceled)
}

// Each runs f for every node concurrently, as OnNodes, for work that
// returns nothing but an error.
func Each(ctx context.Context, nodes []string, fan Fanout, f func(ctx context.Context, node string) error) error {
	_, err := OnNodes(ctx, nodes, fan, func(ctx context.Context, node string) (struct{}, error) {
		return struct{}{}, f(ctx, node)
	})
	return err
}

// distinct refuses a node list that names a node twice.
func distinct(nodes []string) error {
	seen := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		if seen[n] {
			return fmt.Errorf("%w: %q is listed twice in %v", ErrInvalidNode, n, nodes)
		}
		seen[n] = true
	}
	return nil
}
