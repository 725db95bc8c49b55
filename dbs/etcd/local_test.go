package etcd

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/client"
	"github.com/go-jepsen/jepsen/history"
)

// The clients against a real etcd: one member, run by the test on this
// machine (Debian's etcd-server), on ports of its own, killed by PID at
// the end. No root, no sandbox: a few seconds.

// freePort is a TCP port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// localEtcd starts a one-member etcd on 127.0.0.1 and returns a client
// of it and the node name to give the client ("127.0.0.1").
func localEtcd(t *testing.T) (*Client, string) {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("no etcd here (apt-get install etcd-server)")
	}
	dir := t.TempDir()
	cport, pport := freePort(t), freePort(t)
	cu := fmt.Sprintf("http://127.0.0.1:%d", cport)
	pu := fmt.Sprintf("http://127.0.0.1:%d", pport)
	logf, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--name", "local", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", cu, "--advertise-client-urls", cu,
		"--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu, "--initial-cluster", "local="+pu,
		"--logger", "zap", "--log-outputs", "stderr")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	c := NewClient(&jepsen.Test{Name: "local", Nodes: []string{"127.0.0.1"}}, 2*time.Second)
	c.port = cport
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for !c.Healthy(ctx, "127.0.0.1") {
		if ctx.Err() != nil {
			b, _ := os.ReadFile(filepath.Join(dir, "etcd.log"))
			t.Fatalf("local etcd not healthy in 20 s: %s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return c, "127.0.0.1"
}

// invoke performs one operation on cn and returns its completion's type,
// value and error message, as the interpreter would record them.
func invoke(t *testing.T, cn client.Conn, f history.F, key string, value any) (history.Type, string, error) {
	t.Helper()
	v, err := history.Raw(value)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := cn.Invoke(ctx, history.Op{Type: history.Invoke, F: f, Key: key, Value: v})
	if err != nil {
		return client.Outcome(ctx, err), "", err
	}
	typ := c.Type
	if typ == "" {
		typ = history.OK
	}
	out := "null"
	if len(c.Value) > 0 {
		out = string(c.Value)
	} else if typ != history.OK || f != history.Read {
		out = string(v) // a nil value repeats the invocation's
	}
	return typ, out, nil
}

type step struct {
	f     history.F
	key   string
	value any
	typ   history.Type
	out   string // the completion's value, "null" for none
}

func run(t *testing.T, cn client.Conn, steps []step) {
	t.Helper()
	for i, s := range steps {
		typ, out, err := invoke(t, cn, s.f, s.key, s.value)
		if typ != s.typ || (s.out != "" && out != s.out) {
			t.Fatalf("step %d %s(%s) %v: %s %s (%v), want %s %s", i, s.f, s.key, s.value, typ, out, err, s.typ, s.out)
		}
	}
}

func TestRegisterClientLocal(t *testing.T) {
	c, node := localEtcd(t)
	cn := registerConn{conn: conn{c: c, node: node}, o: RegisterClient{Prefix: "r/"}}
	run(t, cn, []step{
		{history.Read, "1", nil, history.OK, "null"},
		{history.CAS, "1", []any{1, 2}, history.Fail, ""},
		{history.CAS, "1", []any{nil, 3}, history.OK, ""},
		{history.CAS, "1", []any{nil, 4}, history.Fail, ""},
		{history.Read, "1", nil, history.OK, "3"},
		{history.Write, "1", 2, history.OK, "2"},
		{history.CAS, "1", []any{2, 4}, history.OK, ""},
		{history.CAS, "1", []any{2, 0}, history.Fail, ""},
		{history.Read, "1", nil, history.OK, "4"},
		{history.Read, "2", nil, history.OK, "null"},
		{history.Write, "1", "x", history.Fail, ""},
		{history.CAS, "1", []any{1}, history.Fail, ""},
		{"append", "1", 1, history.Fail, ""},
	})
	ser := registerConn{conn: conn{c: c, node: node}, o: RegisterClient{Prefix: "r/", Serializable: true}}
	run(t, ser, []step{{history.Read, "1", nil, history.OK, "4"}})
}

// A request to a port where nothing listens certainly did not happen.
func TestConnectionRefusedFails(t *testing.T) {
	c := NewClient(&jepsen.Test{Name: "local", Nodes: []string{"127.0.0.1"}}, time.Second)
	c.port = freePort(t)
	defer c.Close()
	for _, cn := range []client.Conn{
		registerConn{conn: conn{c: c, node: "127.0.0.1"}},
		bankConn{conn: conn{c: c, node: "127.0.0.1"}, o: BankClient{}.defaults()},
		appendConn{conn: conn{c: c, node: "127.0.0.1"}},
		setConn{conn: conn{c: c, node: "127.0.0.1"}, o: SetClient{Key: "s", Retries: 3}},
	} {
		for _, op := range []struct {
			f history.F
			v any
		}{{history.Write, 1}, {"transfer", Transfer{From: 0, To: 1, Amount: 1}}, {TxnF, [][]any{{"append", 1, 1}}}, {"add", 1}} {
			typ, _, err := invoke(t, cn, op.f, "k", op.v)
			if typ != history.Fail || err == nil {
				t.Errorf("%T %s: %s %v, want fail with an error", cn, op.f, typ, err)
			}
		}
	}
}

func TestSetClientLocal(t *testing.T) {
	c, node := localEtcd(t)
	for _, perElement := range []bool{false, true} {
		t.Run(fmt.Sprintf("per-element=%t", perElement), func(t *testing.T) {
			o := SetClient{Key: fmt.Sprintf("s%t", perElement), PerElement: perElement, Retries: 1000}
			open := func() setConn { return setConn{conn: conn{c: c, node: node}, o: o} }
			run(t, open(), []step{
				{history.Read, "", nil, history.OK, "[]"},
				{"add", "", 5, history.OK, ""},
				{"add", "", 5, history.OK, ""},
				{history.Read, "", nil, history.OK, "[5]"},
				{"add", "", "x", history.Fail, ""},
			})
			// Adds racing on one key: each retries until it wins.
			var wg sync.WaitGroup
			errs := make(chan error, 100)
			for w := range 4 {
				cn := open()
				wg.Go(func() {
					for i := range 10 {
						if typ, _, err := invoke(t, cn, "add", "", 100+10*w+i); typ != history.OK {
							errs <- fmt.Errorf("add %d: %s %v", 100+10*w+i, typ, err)
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			_, out, _ := invoke(t, open(), history.Read, "", nil)
			var got []int
			json.Unmarshal([]byte(out), &got)
			want := []int{5}
			for i := 100; i < 140; i++ {
				want = append(want, i)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("read %v, want %v", got, want)
			}
		})
	}
}

func TestBankClientLocal(t *testing.T) {
	c, node := localEtcd(t)
	bc := BankClient{Accounts: 3, Total: 10, Prefix: "b/"}
	cn := bankConn{conn: conn{c: c, node: node}, o: bc.defaults()}
	ctx := context.Background()
	if err := bc.Setup(ctx, nil, cn); err != nil {
		t.Fatal(err)
	}
	run(t, cn, []step{
		{history.Read, "", nil, history.OK, `{"0":4,"1":3,"2":3}`},
		{"transfer", "", Transfer{From: 1, To: 0, Amount: 3}, history.OK, ""},
		{"transfer", "", Transfer{From: 1, To: 2, Amount: 1}, history.Fail, ""},
		{"transfer", "", Transfer{From: 1, To: 1, Amount: 1}, history.Fail, ""},
		{"transfer", "", Transfer{From: 0, To: 3, Amount: 1}, history.Fail, ""},
		{"transfer", "", Transfer{From: 0, To: 2, Amount: 0}, history.Fail, ""},
		{history.Read, "", nil, history.OK, `{"0":7,"1":0,"2":3}`},
	})
	// Setup again writes nothing: the accounts exist.
	if err := bc.Setup(ctx, nil, cn); err != nil {
		t.Fatal(err)
	}
	run(t, cn, []step{{history.Read, "", nil, history.OK, `{"0":7,"1":0,"2":3}`}})
	if err := bc.Setup(ctx, nil, registerConn{}); err == nil {
		t.Fatal("setup on another client's connection")
	}
	// An account missing from a read is null; a stray key is shown.
	if err := c.Put(ctx, node, "b/bank/7", []byte("1")); err != nil {
		t.Fatal(err)
	}
	other := bankConn{conn: conn{c: c, node: node}, o: BankClient{Accounts: 4, Prefix: "b/"}.defaults()}
	run(t, other, []step{{history.Read, "", nil, history.OK, `{"0":7,"1":0,"2":3,"3":null,"7":1}`}})
}

func TestAppendClientLocal(t *testing.T) {
	c, node := localEtcd(t)
	cn := appendConn{conn: conn{c: c, node: node}, o: AppendClient{Prefix: "a/"}}
	run(t, cn, []step{
		{TxnF, "", json.RawMessage(`[["r",1,null]]`), history.OK, `[["r",1,[]]]`},
		{TxnF, "", json.RawMessage(`[["append",1,1],["r",1,null]]`), history.OK, `[["append",1,1],["r",1,[1]]]`},
		{TxnF, "", json.RawMessage(`[["r",1,null],["append",1,2],["r",1,null],["append","x",1],["append",1,3],["r",2,null],["r","x",null]]`), history.OK,
			`[["r",1,[1]],["append",1,2],["r",1,[1,2]],["append","x",1],["append",1,3],["r",2,[]],["r","x",[1]]]`},
		{TxnF, "", json.RawMessage(`[["r",1,null],["r","x",null]]`), history.OK, `[["r",1,[1,2,3]],["r","x",[1]]]`},
		{TxnF, "", json.RawMessage(`[["w",1,1]]`), history.Fail, ""},
		{TxnF, "", json.RawMessage(`[]`), history.Fail, ""},
		{"read", "", nil, history.Fail, ""},
	})
	kv, _, err := c.Get(context.Background(), node, "a/append/1", false)
	if err != nil || kv == nil || string(kv.Value) != "[1,2,3]" {
		t.Fatalf("a/append/1 holds %v (%v)", kv, err)
	}
}

// The client's calls, as the gateway answers them, on etcd's own types.
func TestClientCallsLocal(t *testing.T) {
	c, node := localEtcd(t)
	ctx := context.Background()
	for i := range 3 {
		if err := c.Put(ctx, node, "p/"+strconv.Itoa(i), []byte{byte('a' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Put(ctx, node, "q", []byte("x")); err != nil {
		t.Fatal(err)
	}
	kvs, rev, err := c.Range(ctx, node, "p/", false, false)
	if err != nil || len(kvs) != 3 || rev < 4 || string(kvs[2].Value) != "c" || kvs[2].Key != "p/2" || kvs[2].Version != 1 {
		t.Fatalf("range p/: %+v rev %d %v", kvs, rev, err)
	}
	kvs, _, err = c.Range(ctx, node, "p/", true, true)
	if err != nil || len(kvs) != 3 || kvs[0].Value != nil {
		t.Fatalf("serializable keys-only range p/: %+v %v", kvs, err)
	}
	kv, _, err := c.Get(ctx, node, "p/1", false)
	if err != nil || kv == nil || kv.ModRevision == 0 {
		t.Fatalf("get p/1: %+v %v", kv, err)
	}
	res, err := c.Txn(ctx, node, []Cmp{CmpModRevision("p/1", kv.ModRevision), CmpModRevision("none", 0), CmpVersion("p/1", 1)},
		[]TxnOp{OpPut("p/1", []byte("B")), OpGet("p/1"), OpGet("none")})
	if err != nil || !res.Succeeded || len(res.Gets) != 3 || string(res.Gets[1][0].Value) != "B" || len(res.Gets[2]) != 0 {
		t.Fatalf("txn: %+v %v", res, err)
	}
	res, err = c.Txn(ctx, node, []Cmp{CmpModRevision("p/1", kv.ModRevision)}, []TxnOp{OpPut("p/1", []byte("C"))})
	if err != nil || res.Succeeded {
		t.Fatalf("txn on a stale mod revision: %+v %v", res, err)
	}
	if _, err := c.Txn(ctx, node, nil, []TxnOp{OpPut("d", nil), OpPut("d", nil)}); err == nil || Outcome(err) != history.Fail {
		t.Fatalf("two puts of one key: %v (%s)", err, Outcome(err))
	}
	l, err := c.MemberList(ctx, node)
	if err != nil || len(l.Members) != 1 || l.Members[0].Name != "local" || l.Members[0].ID == 0 || l.Header.RaftTerm == 0 {
		t.Fatalf("member list: %+v %v", l, err)
	}
}
