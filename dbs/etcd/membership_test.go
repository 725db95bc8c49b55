package etcd

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/nemesis"
)

var three = &jepsen.Test{Name: "m", Nodes: []string{"n1", "n2", "n3"}}

func member(id uint64, node string, started bool) Member {
	m := Member{ID: id, PeerURLs: []string{peerURL(node)}}
	if started {
		m.Name = node
	}
	return m
}

func TestPlanRecovery(t *testing.T) {
	all := []Member{member(1, "n1", true), member(2, "n2", true), member(3, "n3", true)}
	up := nodeState{Running: true, HasData: true}
	tests := []struct {
		name    string
		members []Member
		st      map[string]nodeState
		patient bool
		want    string
	}{
		{"healthy", all, map[string]nodeState{"n1": up, "n2": up, "n3": up}, true, ""},
		{"a member stopped", all, map[string]nodeState{"n1": up, "n2": {HasData: true}, "n3": up}, true, "start n2"},
		{"removed, not added back", all[:2], map[string]nodeState{"n1": up, "n2": up, "n3": {}}, true, "add n3"},
		{"removed, still running with its data", all[:2], map[string]nodeState{"n1": up, "n2": up, "n3": up}, true, "add n3"},
		{"added, not started", []Member{all[0], all[1], member(4, "n3", false)}, map[string]nodeState{"n1": up, "n2": up, "n3": {}}, true, "join n3"},
		{"added, starting", []Member{all[0], all[1], member(4, "n3", false)}, map[string]nodeState{"n1": up, "n2": up, "n3": {Running: true}}, true, "await n3"},
		{"added, started in vain", []Member{all[0], all[1], member(4, "n3", false)}, map[string]nodeState{"n1": up, "n2": up, "n3": {Running: true}}, false, "join n3"},
		{"stopped and wiped, still listed", all, map[string]nodeState{"n1": up, "n2": up, "n3": {}}, true, "remove n3 3, add n3"},
		{"a foreign member, and one stopped", append(slices.Clone(all), Member{ID: 9, PeerURLs: []string{"http://n9:2380"}}),
			map[string]nodeState{"n1": up, "n2": {HasData: true}, "n3": up}, true, "start n2, remove  9"},
		{"shrunk to two, one of them stopped", all[1:], map[string]nodeState{"n1": {}, "n2": up, "n3": {HasData: true}}, true, "start n3, add n1"},
	}
	for _, tc := range tests {
		m := newMembership(three, "n1", 2, tc.members)
		var got []string
		for _, s := range planRecovery(three.Nodes, m, tc.st, tc.patient) {
			g := s.Action + " " + s.Node
			if s.Action == recRemove {
				g += fmt.Sprintf(" %d", s.ID)
			}
			got = append(got, g)
		}
		if g := strings.Join(got, ", "); g != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, g, tc.want)
		}
	}
}

func TestMembershipViews(t *testing.T) {
	m := newMembership(three, "n2", 4, []Member{member(0xa, "n1", true), member(0xb, "n2", true), member(0xc, "n3", false),
		{ID: 0xd, Name: "x", PeerURLs: []string{"http://x:2380"}}, {ID: 0xe, PeerURLs: []string{"http://y:2380"}}})
	if got, want := m.cluster(), "me=http://y:2380,n1=http://n1:2380,n2=http://n2:2380,n3=http://n3:2380,x=http://x:2380"; got != want {
		t.Fatalf("cluster %s, want %s", got, want)
	}
	if got := m.Nodes(three); !slices.Equal(got, []string{"n1", "n2", "n3"}) {
		t.Fatalf("nodes %v", got)
	}
	c, err := planRemove(three, m, "n3")
	if err != nil || c.Op != MemberRemove || c.ID != "c" || c.Node != "n3" {
		t.Fatalf("remove n3: %+v %v", c, err)
	}
	b, _ := json.Marshal(c)
	if string(b) != `{"op":"remove","node":"n3","id":"c","members":["n1","n2","n3"]}` {
		t.Fatalf("json %s", b)
	}
	two := newMembership(three, "n1", 4, []Member{member(1, "n1", true), member(2, "n2", true)})
	if _, err := planRemove(three, two, "n1"); !errors.Is(err, ErrTooFewMembers) {
		t.Fatalf("remove from two: %v", err)
	}
	if _, err := planRemove(three, two, "n3"); !errors.Is(err, ErrNotMember) {
		t.Fatalf("remove a non-member: %v", err)
	}
}

// Member API answers recorded from etcd 3.4.23 on sandbox nodes: a list,
// an add (the new member without a name), a remove.
func TestMemberAnswersRecorded(t *testing.T) {
	read := func(name string, v any) {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	var l MemberList
	read("member-list.json", &l)
	m := newMembership(three, "n1", l.Header.RaftTerm, l.Members)
	if len(l.Members) != 3 || l.Header.RaftTerm == 0 || l.Header.MemberID == 0 || len(m.Nodes(three)) != 3 {
		t.Fatalf("list %+v", l)
	}
	for _, mem := range l.Members {
		if mem.ID == 0 || mem.Name != m.Node(mem) || len(mem.ClientURLs) != 1 {
			t.Fatalf("member %+v", mem)
		}
	}
	var add struct {
		Member  Member   `json:"member"`
		Members []Member `json:"members"`
	}
	read("member-add.json", &add)
	if add.Member.ID == 0 || add.Member.Name != "" || len(add.Members) != 3 {
		t.Fatalf("add %+v", add)
	}
	var rm struct {
		Members []Member `json:"members"`
	}
	read("member-remove.json", &rm)
	if len(rm.Members) != 2 {
		t.Fatalf("remove %+v", rm)
	}
}

// Which refusals of a membership change are worth asking again.
func TestRefusedForNow(t *testing.T) {
	body := func(name string) string {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	tests := []struct {
		err  error
		want bool
	}{
		{&HTTPError{Status: 503, Body: body("member-unhealthy.json")}, true},
		{&HTTPError{Status: 500, Body: body("member-add-refused.json")}, true},
		{fmt.Errorf("etcd member add: %w", &HTTPError{Status: 503, Body: `{"error":"etcdserver: no leader","code":14}`}), true},
		{fmt.Errorf("membership: %w", ErrNoLeader), true},
		{&HTTPError{Status: 400, Body: `{"error":"etcdserver: Peer URLs already exists","code":9}`}, false},
		{&HTTPError{Status: 503, Body: body("range-timeout-503.json")}, false},
		{errors.New("connection refused"), false},
	}
	for _, tc := range tests {
		if got := refusedForNow(tc.err); got != tc.want {
			t.Errorf("%v: %t, want %t", tc.err, got, tc.want)
		}
	}
}

// A removal goes through the leader, unless the leader is the member
// removed: then through another member that answers.
func TestMembershipVia(t *testing.T) {
	all := []Member{member(1, "n1", true), member(2, "n2", true), member(3, "n3", false)}
	tests := []struct {
		leader   string
		answered []string
		node     string
		want     string
	}{
		{"n1", []string{"n1", "n2", "n3"}, "n2", "n1"},
		{"n1", []string{"n1", "n2", "n3"}, "n1", "n2"},
		{"n1", []string{"n1", "n3"}, "n1", "n1"}, // n3 never started: no other choice
		{"n2", []string{"n2"}, "n2", "n2"},
	}
	for _, tc := range tests {
		m := newMembership(three, tc.leader, 2, all)
		m.Answered = tc.answered
		if got := m.via(tc.node); got != tc.want {
			t.Errorf("leader %s, answered %v, remove %s: via %s, want %s", tc.leader, tc.answered, tc.node, got, tc.want)
		}
	}
}

// etcd's membership changes are the nemesis's member family's.
var _ nemesis.Members = (*DB)(nil)
