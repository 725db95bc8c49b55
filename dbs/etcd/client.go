package etcd

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/history"
)

// Client talks to etcd's JSON gateway (/v3/...) over plain net/http: no
// gRPC dependency. It is safe for concurrent use.
type Client struct {
	t    *jepsen.Test
	http *http.Client
	port int // ClientPort; tests of this package run etcd elsewhere
}

// NewClient returns a client whose every request is bounded by timeout
// (0: by the request's context only).
func NewClient(t *jepsen.Test, timeout time.Duration) *Client {
	return &Client{t: t, port: ClientPort, http: &http.Client{Timeout: timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}}}
}

// Close closes the client's idle connections. SetupPrimary polls
// Primaries every 200 ms, each with a new client: without this, every
// poll would leave connections open to every node.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// MaxAnswer bounds an answer of the gateway the client reads: a range of
// many keys (a set stored one key per element) is about 100 bytes a key.
const MaxAnswer = 64 << 20

// HTTPError is an answer other than 200 OK from the gateway.
type HTTPError struct {
	Node   string
	Path   string
	Status int
	Body   string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("etcd %s on %s: HTTP %d: %s", e.Path, e.Node, e.Status, e.Body)
}

func (c *Client) post(ctx context.Context, node, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	u := "http://" + net.JoinHostPort(c.t.Addr(node), strconv.Itoa(c.port)) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer+1))
	if err != nil {
		return err
	}
	if len(body) > MaxAnswer {
		return fmt.Errorf("etcd %s on %s: an answer over %d bytes", path, node, MaxAnswer)
	}
	if resp.StatusCode != http.StatusOK {
		return &HTTPError{Node: node, Path: path, Status: resp.StatusCode, Body: strings.TrimSpace(string(body))}
	}
	return json.Unmarshal(body, out)
}

// Status asks node's member for its status.
func (c *Client) Status(ctx context.Context, node string) (*Status, error) {
	var st Status
	if err := c.post(ctx, node, "/v3/maintenance/status", struct{}{}, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// Header is the header of every answer of the gateway: which member
// answered, in which raft term, at which revision of the key space.
type Header struct {
	ClusterID uint64 `json:"cluster_id,string"`
	MemberID  uint64 `json:"member_id,string"`
	Revision  int64  `json:"revision,string"`
	RaftTerm  uint64 `json:"raft_term,string"`
}

// KV is a key as etcd returns it. A key that does not exist has no KV;
// comparisons in a transaction see it with every revision and version 0.
type KV struct {
	Key            string
	Value          []byte
	CreateRevision int64
	ModRevision    int64
	Version        int64
}

// kvJSON is a KV on the wire: bytes in base64, numbers in strings, zero
// fields left out.
type kvJSON struct {
	Key            []byte `json:"key"`
	Value          []byte `json:"value"`
	CreateRevision int64  `json:"create_revision,string"`
	ModRevision    int64  `json:"mod_revision,string"`
	Version        int64  `json:"version,string"`
}

func (k kvJSON) kv() KV {
	return KV{Key: string(k.Key), Value: k.Value, CreateRevision: k.CreateRevision, ModRevision: k.ModRevision, Version: k.Version}
}

// rangeResponse is /v3/kv/range's answer (and a txn's response_range);
// kvs is absent when no key matched.
type rangeResponse struct {
	Header Header   `json:"header"`
	KVs    []kvJSON `json:"kvs"`
}

func (r rangeResponse) kvs() []KV {
	out := make([]KV, len(r.KVs))
	for i, k := range r.KVs {
		out[i] = k.kv()
	}
	return out
}

// decodeValue returns the register value of a range answer: nil when the
// key does not exist.
func decodeValue(r rangeResponse) (*int, error) {
	if len(r.KVs) == 0 {
		return nil, nil
	}
	return registerValue(r.KVs[0].Value)
}

// registerValue reads a register's value: a decimal integer.
func registerValue(raw []byte) (*int, error) {
	v, err := strconv.Atoi(string(raw))
	if err != nil {
		return nil, fmt.Errorf("etcd value %q is not a register value: %w", raw, err)
	}
	return &v, nil
}

// prefixEnd is the end of the range of keys that start with prefix (etcd's
// clientv3.GetPrefixRangeEnd): prefix with its last byte below 0xff
// incremented and what follows dropped.
func prefixEnd(prefix string) string {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return "\x00" // every key: etcd's convention for "no end"
}

// Get reads key through node: a linearizable read, or a serializable one
// (served by that member alone, possibly stale) when serializable is
// set. kv is nil when the key does not exist; rev is the revision the
// read saw.
func (c *Client) Get(ctx context.Context, node, key string, serializable bool) (kv *KV, rev int64, err error) {
	var out rangeResponse
	req := map[string]any{"key": b64(key)}
	if serializable {
		req["serializable"] = true
	}
	if err := c.post(ctx, node, "/v3/kv/range", req, &out); err != nil {
		return nil, 0, err
	}
	if len(out.KVs) == 0 {
		return nil, out.Header.Revision, nil
	}
	k := out.KVs[0].kv()
	return &k, out.Header.Revision, nil
}

// Range reads every key that starts with prefix through node, in key
// order, at one revision (a snapshot), linearizable unless serializable;
// with keysOnly the values are left out.
func (c *Client) Range(ctx context.Context, node, prefix string, serializable, keysOnly bool) ([]KV, int64, error) {
	var out rangeResponse
	req := map[string]any{"key": b64(prefix), "range_end": b64(prefixEnd(prefix))}
	if serializable {
		req["serializable"] = true
	}
	if keysOnly {
		req["keys_only"] = true
	}
	if err := c.post(ctx, node, "/v3/kv/range", req, &out); err != nil {
		return nil, 0, err
	}
	return out.kvs(), out.Header.Revision, nil
}

// Read reads a register (a decimal integer) at key through node; see Get.
// The result is nil when the key does not exist.
func (c *Client) Read(ctx context.Context, node, key string, serializable bool) (*int, error) {
	kv, _, err := c.Get(ctx, node, key, serializable)
	if err != nil || kv == nil {
		return nil, err
	}
	return registerValue(kv.Value)
}

// Put sets key to value through node.
func (c *Client) Put(ctx context.Context, node, key string, value []byte) error {
	var out map[string]any
	return c.post(ctx, node, "/v3/kv/put", map[string]string{"key": b64(key), "value": base64.StdEncoding.EncodeToString(value)}, &out)
}

// Write sets the register at key to v through node.
func (c *Client) Write(ctx context.Context, node, key string, v int) error {
	return c.Put(ctx, node, key, []byte(strconv.Itoa(v)))
}

// CAS sets the register at key to "to" if it holds old, in one etcd
// transaction; it reports whether the comparison held.
func (c *Client) CAS(ctx context.Context, node, key string, old, to int) (bool, error) {
	res, err := c.Txn(ctx, node, []Cmp{CmpValue(key, []byte(strconv.Itoa(old)))}, []TxnOp{OpPut(key, []byte(strconv.Itoa(to)))})
	if err != nil {
		return false, err
	}
	return res.Succeeded, nil
}

// Cmp is one comparison of a transaction's guard: the key's Target
// (value, mod revision, version or create revision) equal to the value
// given. A key that does not exist has revisions and version 0.
type Cmp struct {
	Key    string
	Target string // "VALUE", "MOD", "VERSION" or "CREATE"
	Value  []byte // Target VALUE
	Number int64  // the others
}

// CmpValue guards on key holding value.
func CmpValue(key string, value []byte) Cmp { return Cmp{Key: key, Target: "VALUE", Value: value} }

// CmpModRevision guards on key's last modification being at rev (0: the
// key does not exist).
func CmpModRevision(key string, rev int64) Cmp { return Cmp{Key: key, Target: "MOD", Number: rev} }

// CmpVersion guards on key's version (0: the key does not exist).
func CmpVersion(key string, version int64) Cmp {
	return Cmp{Key: key, Target: "VERSION", Number: version}
}

func (c Cmp) wire() map[string]any {
	m := map[string]any{"key": b64(c.Key), "target": c.Target, "result": "EQUAL"}
	switch c.Target {
	case "VALUE":
		m["value"] = base64.StdEncoding.EncodeToString(c.Value)
	case "MOD":
		m["mod_revision"] = strconv.FormatInt(c.Number, 10)
	case "VERSION":
		m["version"] = strconv.FormatInt(c.Number, 10)
	case "CREATE":
		m["create_revision"] = strconv.FormatInt(c.Number, 10)
	}
	return m
}

// TxnOp is one operation of a transaction: a get of one key, or a put.
type TxnOp struct {
	Key   string
	Put   bool
	Value []byte
}

// OpGet reads key in a transaction.
func OpGet(key string) TxnOp { return TxnOp{Key: key} }

// OpPut writes value at key in a transaction. etcd refuses a transaction
// that puts one key twice.
func OpPut(key string, value []byte) TxnOp { return TxnOp{Key: key, Put: true, Value: value} }

func (o TxnOp) wire() map[string]any {
	if o.Put {
		return map[string]any{"request_put": map[string]string{"key": b64(o.Key), "value": base64.StdEncoding.EncodeToString(o.Value)}}
	}
	return map[string]any{"request_range": map[string]string{"key": b64(o.Key)}}
}

// TxnResult is a transaction's outcome: whether its guard held (and so
// its operations ran), the revision, and for each operation (in order)
// the keys a get found (none for a put, or for a missing key).
type TxnResult struct {
	Succeeded bool
	Revision  int64
	Gets      [][]KV
}

// txnResponse is /v3/kv/txn's answer; succeeded and responses are absent
// when the guard failed.
type txnResponse struct {
	Header    Header `json:"header"`
	Succeeded bool   `json:"succeeded"`
	Responses []struct {
		Range *rangeResponse `json:"response_range"`
	} `json:"responses"`
}

func (r txnResponse) result() *TxnResult {
	out := &TxnResult{Succeeded: r.Succeeded, Revision: r.Header.Revision}
	for _, resp := range r.Responses {
		var kvs []KV
		if resp.Range != nil {
			kvs = resp.Range.kvs()
		}
		out.Gets = append(out.Gets, kvs)
	}
	return out
}

// Txn runs one transaction through node: if every comparison of guard
// holds, the operations of then, in order, at one revision (a get sees
// the puts before it in the transaction); otherwise nothing. An empty
// guard always holds. Gets in a transaction are linearizable.
func (c *Client) Txn(ctx context.Context, node string, guard []Cmp, then []TxnOp) (*TxnResult, error) {
	req := map[string]any{}
	if len(guard) > 0 {
		cs := make([]map[string]any, len(guard))
		for i, g := range guard {
			cs[i] = g.wire()
		}
		req["compare"] = cs
	}
	if len(then) > 0 {
		ops := make([]map[string]any, len(then))
		for i, o := range then {
			ops[i] = o.wire()
		}
		req["success"] = ops
	}
	var out txnResponse
	if err := c.post(ctx, node, "/v3/kv/txn", req, &out); err != nil {
		return nil, err
	}
	res := out.result()
	if res.Succeeded && len(res.Gets) != len(then) {
		return nil, fmt.Errorf("etcd txn on %s: %d responses for %d operations", node, len(res.Gets), len(then))
	}
	return res, nil
}

// Member is a member of the cluster as /v3/cluster/member/list says:
// its ID, its name (empty until the member has started and published it:
// one added but never started), and its URLs.
type Member struct {
	ID         uint64   `json:"ID,string"`
	Name       string   `json:"name,omitempty"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs,omitempty"`
	IsLearner  bool     `json:"isLearner,omitempty"`
}

// MemberList is a member's view of the cluster's membership. etcd 3.4
// answers it from the member's own state, without consulting the leader:
// a member cut off may answer an old list.
type MemberList struct {
	Header  Header   `json:"header"`
	Members []Member `json:"members"`
}

// MemberList asks node's member for the cluster's members.
func (c *Client) MemberList(ctx context.Context, node string) (*MemberList, error) {
	var out MemberList
	if err := c.post(ctx, node, "/v3/cluster/member/list", struct{}{}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// MemberAdd asks node's member to add a voting member with peerURLs, and
// returns the new member (without a name until it starts) and the members
// after the change. etcd refuses (HTTP 500, "not enough started members")
// when the cluster would then have fewer started members than a quorum.
func (c *Client) MemberAdd(ctx context.Context, node string, peerURLs []string) (Member, []Member, error) {
	var out struct {
		Member  Member   `json:"member"`
		Members []Member `json:"members"`
	}
	if err := c.post(ctx, node, "/v3/cluster/member/add", map[string]any{"peerURLs": peerURLs}, &out); err != nil {
		return Member{}, nil, err
	}
	return out.Member, out.Members, nil
}

// MemberRemove asks node's member to remove the member id, and returns
// the members after the change. etcd refuses when the members left would
// have fewer started members than a quorum.
func (c *Client) MemberRemove(ctx context.Context, node string, id uint64) ([]Member, error) {
	var out struct {
		Members []Member `json:"members"`
	}
	if err := c.post(ctx, node, "/v3/cluster/member/remove", map[string]string{"ID": strconv.FormatUint(id, 10)}, &out); err != nil {
		return nil, err
	}
	return out.Members, nil
}

// Healthy reports whether node's member says the cluster is healthy.
func (c *Client) Healthy(ctx context.Context, node string) bool {
	return c.health(ctx, node) == nil
}

// health is Healthy with the reason when it is not: the request's error,
// or what the member answered.
func (c *Client) health(ctx context.Context, node string) error {
	u := "http://" + net.JoinHostPort(c.t.Addr(node), strconv.Itoa(c.port)) + "/health"
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if !strings.Contains(string(b), `"health":"true"`) {
		return fmt.Errorf("%s: %q", resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// Outcome classifies a failed request for the history: Fail when it
// certainly did not take effect (the connection was refused; etcd
// rejected the request as malformed, or refused it for having no leader,
// which it does before proposing anything), Info when it may have (a
// timeout, a connection lost after the request went out, etcd's own
// "request timed out", which a later commit can still follow).
func Outcome(err error) history.Type {
	if err == nil {
		return history.OK
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return history.Fail
	}
	if ue, ok := errors.AsType[*url.Error](err); ok {
		if oe, ok := errors.AsType[*net.OpError](ue.Err); ok && oe.Op == "dial" && !oe.Timeout() {
			return history.Fail
		}
	}
	if he, ok := errors.AsType[*HTTPError](err); ok {
		if he.Status >= 400 && he.Status < 500 || strings.Contains(he.Body, "etcdserver: no leader") {
			return history.Fail
		}
	}
	return history.Info
}
