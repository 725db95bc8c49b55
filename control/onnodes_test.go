package control

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var nodes5 = []string{"n1", "n2", "n3", "n4", "n5"}

func TestOnNodesOrderAndLimit(t *testing.T) {
	var running, peak atomic.Int32
	res, err := OnNodes(context.Background(), nodes5, Fanout{Mode: WaitAll, Limit: 2}, func(ctx context.Context, n string) (string, error) {
		cur := running.Add(1)
		for {
			p := peak.Load()
			if cur <= p || peak.CompareAndSwap(p, cur) {
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
		running.Add(-1)
		return "r-" + n, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes5 {
		if res[i] != "r-"+n {
			t.Fatalf("results out of order: %v", res)
		}
	}
	if peak.Load() > 2 {
		t.Fatalf("limit 2 exceeded: %d at once", peak.Load())
	}
}

func TestOnNodesFailFastReportsRootCause(t *testing.T) {
	boom := errors.New("boom")
	start := time.Now()
	_, err := OnNodes(context.Background(), nodes5, Fanout{Mode: FailFast}, func(ctx context.Context, n string) (int, error) {
		if n == "n3" {
			return 0, boom
		}
		select {
		case <-ctx.Done():
			return 0, &TransportError{Node: n, Op: OpCanceled, Err: context.Cause(ctx)}
		case <-time.After(10 * time.Second):
			return 1, nil
		}
	})
	if time.Since(start) > 5*time.Second {
		t.Fatal("fail-fast did not cancel the others")
	}
	ne, ok := errors.AsType[*NodesError](err)
	if !ok || len(ne.Errs) != 1 || ne.Errs[0].Node != "n3" || !errors.Is(err, boom) {
		t.Fatalf("want only n3's boom, got %v", err)
	}
}

func TestOnNodesWaitAllReportsEveryNode(t *testing.T) {
	var finished atomic.Int32
	_, err := OnNodes(context.Background(), nodes5, Fanout{Mode: WaitAll}, func(ctx context.Context, n string) (int, error) {
		time.Sleep(5 * time.Millisecond)
		finished.Add(1)
		if n == "n2" || n == "n4" {
			return 0, fmt.Errorf("fail on %s", n)
		}
		return 0, ctx.Err()
	})
	ne, ok := errors.AsType[*NodesError](err)
	if !ok || fmt.Sprint(ne.Nodes()) != "[n2 n4]" {
		t.Fatalf("got %v", err)
	}
	if finished.Load() != 5 {
		t.Fatalf("only %d nodes finished", finished.Load())
	}
}

func TestOnNodesParentCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := OnNodes(ctx, nodes5, Fanout{Mode: FailFast, Limit: 1}, func(ctx context.Context, n string) (int, error) {
		return 0, ctx.Err()
	})
	ne, ok := errors.AsType[*NodesError](err)
	if !ok || len(ne.Errs) != 5 || !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled parent must be reported for every node, got %v", err)
	}
}

func TestNodesFile(t *testing.T) {
	nf, err := ParseNodesFile([]byte("# cluster\nn1\n  n2  \n\nn3 # last\n"), "")
	if err != nil || fmt.Sprint(nf.Names()) != "[n1 n2 n3]" {
		t.Fatalf("plain: %v %v", nf, err)
	}
	nf, err = ParseNodesFile([]byte(`{"remote":"ssh","nodes":[{"name":"n1","address":"10.0.0.1","port":22}],"ssh":{"user":"root","key_file":"id"}}`), "/state")
	if err != nil || nf.Resolve("id") != "/state/id" || nf.Resolve("/abs/kh") != "/abs/kh" || string(nf.SSH) != `{"user":"root","key_file":"id"}` {
		t.Fatalf("json: %+v %v", nf, err)
	}
	if a, ok := nf.Lookup("n1"); !ok || a.Address != "10.0.0.1" {
		t.Fatal("lookup")
	}
	bad := []string{
		`{"nodes":[{"name":"n1"}]}garbage`,
		`{"nodes":[{"name":"n1"}]} {"nodes":[]}`,
		`{"nodes":[{"name":"n1","address":"10.66.202.11; touch /tmp/x"}]}`,
		`{"nodes":[{"name":"n1","address":"-bad-.example"}]}`,
		`{"nodes":[{"name":"n1","port":"22"}]}`,
		`{"nodes":"n1"}`,
		"n1\nn1\n",
		"",
		"n1\n../etc\n",
		"n 1",
		`{"nodes":[{"name":"n1","port":70000}]}`,
		`{"nodes":[{"name":"n1"}],"bogus":1}`,
		`{"remote":"telnet","nodes":[{"name":"n1"}]}`,
		"n1;rm -rf /",
		"-n1",
	}
	for _, b := range bad {
		if _, err := ParseNodesFile([]byte(b), ""); err == nil {
			t.Errorf("accepted %q", b)
		}
	}
	// A type mismatch names the field.
	if _, err := ParseNodesFile([]byte(`{"nodes":[{"name":"n1","port":"22"}]}`), ""); err == nil || !strings.Contains(err.Error(), "field nodes.port: want a number, not a JSON string") {
		t.Fatalf("a port given as a string: %v", err)
	}
	for _, good := range []string{"10.66.202.11", "::1", "fe80::1", "node-1.example.com", "n1", "db.internal."} {
		if err := ValidateAddress(good); err != nil {
			t.Errorf("%s refused: %v", good, err)
		}
	}
	if _, err := ParseNodeList("n1, n2,n3"); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseNodeList("n1,,n1"); !errors.Is(err, ErrInvalidNode) {
		t.Fatalf("duplicate accepted: %v", err)
	}
}

func FuzzParseNodesFile(f *testing.F) {
	f.Add([]byte("n1\nn2\n"))
	f.Add([]byte(`{"nodes":[{"name":"n1","address":"10.0.0.1","port":22}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		nf, err := ParseNodesFile(data, "/d")
		if err != nil {
			return
		}
		for _, n := range nf.Names() {
			if ValidateNodeName(n) != nil {
				t.Fatalf("invalid name %q accepted", n)
			}
		}
	})
}

// A panic on one node is that node's error, with its stack; the other
// nodes finish, in both modes.
func TestOnNodesPanicIsNodeError(t *testing.T) {
	for _, mode := range []Mode{WaitAll, FailFast} {
		res, err := OnNodes(context.Background(), nodes5, Fanout{Mode: mode}, func(ctx context.Context, n string) (string, error) {
			if n == "n2" {
				var m map[string]int
				m["boom"]++ // a nil map write: a runtime panic
			}
			return "ok-" + n, nil
		})
		ne, ok := errors.AsType[*NodesError](err)
		if !ok || len(ne.Errs) != 1 || ne.Errs[0].Node != "n2" {
			t.Fatalf("mode %d: %v", mode, err)
		}
		pe, ok := errors.AsType[*PanicError](err)
		if !ok || !strings.Contains(pe.Error(), "assignment to entry in nil map") || !strings.Contains(string(pe.Stack), "onnodes_test.go") {
			t.Fatalf("mode %d: panic error %#v", mode, pe)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Fatalf("the error carries the stack: %q", err)
		}
		if mode == WaitAll && (res[0] != "ok-n1" || res[4] != "ok-n5") {
			t.Fatalf("other nodes: %v", res)
		}
	}
}

// A node listed twice would run twice at once on one node: refused
// before anything runs.
func TestOnNodesRefusesDuplicates(t *testing.T) {
	var ran atomic.Int32
	err := Each(context.Background(), []string{"n1", "n2", "n1"}, Fanout{}, func(ctx context.Context, n string) error {
		ran.Add(1)
		return nil
	})
	if !errors.Is(err, ErrInvalidNode) || !strings.Contains(err.Error(), `"n1" is listed twice`) || ran.Load() != 0 {
		t.Fatalf("got %v after %d runs", err, ran.Load())
	}
}

// Errors name their node once, whatever wraps them.
func TestNodeErrorNamesNodeOnce(t *testing.T) {
	ce := &CommandError{Node: "n3", Cmd: "cu/stop-daemon.sh /x.pid KILL", Script: "sh -c 'long\nscript' cu/stop-daemon.sh /x.pid KILL", Exit: 70, Stderr: "line one\nline two\n\nkill: nope\n"}
	wrapped := &NodeError{Node: "n3", Err: fmt.Errorf("stop daemon /x.pid: %w", ce)}
	got := wrapped.Error()
	if strings.Count(got, "n3") != 1 || strings.Contains(got, "long") || !strings.Contains(got, "exited 70") || !strings.HasSuffix(got, "line one | line two | kill: nope") {
		t.Fatalf("got %q", got)
	}
	other := &NodeError{Node: "n1", Err: errors.New("plain")}
	if other.Error() != "node n1: plain" {
		t.Fatalf("got %q", other.Error())
	}
}
