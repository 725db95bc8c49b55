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
}

// NewClient returns a client whose every request is bounded by timeout
// (0: by the request's context only).
func NewClient(t *jepsen.Test, timeout time.Duration) *Client {
	return &Client{t: t, http: &http.Client{Timeout: timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}}}
}

// Close closes the client's idle connections. SetupPrimary polls
// Primaries every 200 ms, each with a new client: without this, every
// poll would leave connections open to every node.
func (c *Client) Close() { c.http.CloseIdleConnections() }

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
	u := "http://" + net.JoinHostPort(c.t.Addr(node), strconv.Itoa(ClientPort)) + path
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
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
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

// rangeResponse is /v3/kv/range's answer; kvs is absent for a missing key.
type rangeResponse struct {
	KVs []struct {
		Value string `json:"value"`
	} `json:"kvs"`
}

// decodeValue returns the register value of a range answer: nil when the
// key does not exist.
func decodeValue(r rangeResponse) (*int, error) {
	if len(r.KVs) == 0 {
		return nil, nil
	}
	raw, err := base64.StdEncoding.DecodeString(r.KVs[0].Value)
	if err != nil {
		return nil, fmt.Errorf("etcd value %q: %w", r.KVs[0].Value, err)
	}
	v, err := strconv.Atoi(string(raw))
	if err != nil {
		return nil, fmt.Errorf("etcd value %q is not a register value: %w", raw, err)
	}
	return &v, nil
}

// Read reads key through node: a linearizable read, or a serializable one
// (served by that member alone, possibly stale) when serializable is set.
// The result is nil when the key does not exist.
func (c *Client) Read(ctx context.Context, node, key string, serializable bool) (*int, error) {
	var out rangeResponse
	req := map[string]any{"key": b64(key)}
	if serializable {
		req["serializable"] = true
	}
	if err := c.post(ctx, node, "/v3/kv/range", req, &out); err != nil {
		return nil, err
	}
	return decodeValue(out)
}

// Write sets key to v through node.
func (c *Client) Write(ctx context.Context, node, key string, v int) error {
	var out map[string]any
	return c.post(ctx, node, "/v3/kv/put", map[string]string{"key": b64(key), "value": b64(strconv.Itoa(v))}, &out)
}

// CAS sets key to "to" if it holds old, in one etcd transaction; it
// reports whether the comparison held.
func (c *Client) CAS(ctx context.Context, node, key string, old, to int) (bool, error) {
	var out struct {
		Succeeded bool `json:"succeeded"`
	}
	req := map[string]any{
		"compare": []map[string]string{{"key": b64(key), "target": "VALUE", "result": "EQUAL", "value": b64(strconv.Itoa(old))}},
		"success": []map[string]any{{"requestPut": map[string]string{"key": b64(key), "value": b64(strconv.Itoa(to))}}},
	}
	if err := c.post(ctx, node, "/v3/kv/txn", req, &out); err != nil {
		return false, err
	}
	return out.Succeeded, nil
}

// Healthy reports whether node's member says the cluster is healthy.
func (c *Client) Healthy(ctx context.Context, node string) bool {
	u := "http://" + net.JoinHostPort(c.t.Addr(node), strconv.Itoa(ClientPort)) + "/health"
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := c.http.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return strings.Contains(string(b), `"health":"true"`)
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
