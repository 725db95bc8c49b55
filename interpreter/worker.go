package interpreter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/go-jepsen/jepsen/client"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/generator"
	"github.com/go-jepsen/jepsen/history"
)

// Workers perform operations, one goroutine per thread; only the loop
// (interpreter.go) touches the generator and decides what is recorded.

// task is an operation handed to a worker.
type task struct {
	seq  uint64
	kind kind
	op   history.Op // the recorded invocation (the generator's op for a sleep)
}

// result is a worker's report of how a task ended.
type result struct {
	thread int // index in runner.threads
	seq    uint64
	typ    history.Type
	value  json.RawMessage
	err    error // the client's error, if any
	errMsg string
}

// worker is one goroutine performing a thread's operations; a thread
// gets a new worker when its operation is abandoned.
type worker struct {
	in     chan task
	exited chan struct{} // closed when its goroutine returns

	mu        sync.Mutex
	conn      client.Conn
	abandoned bool
}

// spawn starts a worker for thread i.
func (r *runner) spawn(i int) {
	w := &worker{in: make(chan task, 1), exited: make(chan struct{})}
	r.threads[i].w = w
	go func() {
		defer close(w.exited)
		r.work(i, w)
	}()
}

// giveUp leaves t's worker to its operation: it will not report, and its
// connection is closed without waiting.
func (r *runner) giveUp(t *thread) {
	w := t.w
	w.mu.Lock()
	w.abandoned = true
	conn := w.conn
	w.conn = nil
	w.mu.Unlock()
	if conn != nil {
		go r.closeConn(t.node, conn)
	}
}

// closeConn closes a connection; an error is only logged: the run goes
// on without it.
func (r *runner) closeConn(node string, conn client.Conn) {
	if err := control.CatchPanic("client close", conn.Close); err != nil {
		r.log.Debug("closing a client connection", "node", node, "err", err)
	}
}

// work is a worker's goroutine: it performs thread i's tasks until its
// channel closes, then closes its connection.
func (r *runner) work(i int, w *worker) {
	t := r.threads[i]
	node := t.node
	for tk := range w.in {
		res := result{thread: i, seq: tk.seq}
		switch tk.kind {
		case kindSleep:
			d, _, _ := tk.op.Int()
			timer := time.NewTimer(time.Duration(d))
			select {
			case <-timer.C:
			case <-r.runCtx.Done():
			}
			timer.Stop()
			res.typ = generator.TypeSleep
		case kindNemesis:
			res = r.nemesisOp(i, tk)
		case kindClient:
			res = r.clientOp(i, node, w, tk)
		}
		w.mu.Lock()
		gone := w.abandoned
		w.mu.Unlock()
		if gone {
			return
		}
		select {
		case r.done <- res:
		case <-r.ended:
			return
		}
	}
	w.mu.Lock()
	conn := w.conn
	w.conn = nil
	w.mu.Unlock()
	if conn != nil && r.idx(generator.NemesisThread) != i {
		r.closeConn(node, conn)
	}
}

func (r *runner) nemesisOp(i int, tk task) result {
	res := result{thread: i, seq: tk.seq, typ: history.Info}
	ctx := r.runCtx
	if r.o.NemesisTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.o.NemesisTimeout)
		defer cancel()
	}
	var comp history.Op
	err := control.CatchPanic("nemesis", func() (err error) {
		comp, err = r.o.Nemesis.Invoke(ctx, tk.op)
		return err
	})
	res.value = r.checkValue(comp.Value, &err)
	res.err = err
	switch {
	case err != nil:
		res.errMsg = err.Error()
	default:
		res.errMsg = comp.Error
	}
	return res
}

// checkValue returns v when it is JSON, else nil and an error in *err.
func (r *runner) checkValue(v json.RawMessage, err *error) json.RawMessage {
	if len(v) == 0 || json.Valid(v) {
		return v
	}
	if *err == nil {
		*err = errors.New("the client returned a value that is not JSON")
	}
	return nil
}

func (r *runner) clientOp(i int, node string, w *worker, tk task) result {
	res := result{thread: i, seq: tk.seq}
	ctx, cancel := context.WithTimeout(r.runCtx, r.o.Timeout)
	defer cancel()
	w.mu.Lock()
	conn := w.conn
	w.mu.Unlock()
	if conn == nil {
		err := control.CatchPanic("client open", func() (err error) {
			conn, err = r.o.Client.Open(ctx, r.o.Test, node)
			return err
		})
		if err == nil && conn == nil {
			err = errors.New("Open returned no connection")
		}
		if err != nil {
			// Certainly not sent: fail.
			level := slog.LevelDebug
			if !r.threads[i].openWarn.Swap(true) {
				level = slog.LevelWarn
			}
			r.log.Log(context.Background(), level, "client open failed", "node", node, "err", err)
			res.typ, res.err = history.Fail, err
			res.errMsg = "open: " + err.Error()
			return res
		}
		w.mu.Lock()
		if w.abandoned {
			w.mu.Unlock()
			go r.closeConn(node, conn)
			return res
		}
		w.conn = conn
		w.mu.Unlock()
	}
	var comp history.Op
	err := control.CatchPanic("client invoke", func() (err error) {
		comp, err = conn.Invoke(ctx, tk.op)
		return err
	})
	var pe *control.PanicError
	if errors.As(err, &pe) {
		r.log.Error("client panicked", "node", node, "f", tk.op.F, "panic", pe.Value, "stack", string(pe.Stack))
	}
	res.typ = client.Outcome(ctx, err)
	if err == nil {
		switch comp.Type {
		case "", history.OK:
		case history.Fail, history.Info:
			res.typ = comp.Type
		default:
			res.typ = history.Info
			err = fmt.Errorf("the client completed with type %q", comp.Type)
		}
	}
	res.value = r.checkValue(comp.Value, &err)
	if err != nil && res.typ == history.OK {
		res.typ = history.Info // a value that is not JSON
	}
	res.err = err
	if err != nil {
		res.errMsg = err.Error()
	} else {
		res.errMsg = comp.Error
	}
	if res.typ == history.Info {
		// The operation may still be running on the connection: a new
		// process gets a new one, opened when needed.
		w.mu.Lock()
		if w.conn == conn && !w.abandoned {
			w.conn = nil
			go r.closeConn(node, conn)
		}
		w.mu.Unlock()
	}
	return res
}
