package etcd

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/cu"
	"github.com/go-jepsen/jepsen/event"
)

// Membership changes (Jepsen's etcd member nemesis, grow and shrink): a
// member is removed from the cluster and its node wiped, and a node is
// added to the cluster as a new member and started empty, catching up
// from the others.
//
// A change is decided first (PlanRemove, PlanAdd, PlanShrink, PlanGrow,
// each from the membership the leader answers, waiting up to
// HealthTimeout for one: a change needs a leader anyway), as a
// MemberChange value that can be written down (faults.json) before
// Apply makes it, so that a run that dies in the middle leaves a record;
// but RecoverMembers needs no record: it looks at the cluster and the
// nodes as they are, and brings every node of the test back as a started,
// healthy member, whatever a change left half done.
//
// etcd's own safety check (--strict-reconfig-check, on by default)
// refuses a change that would leave fewer started members than a quorum,
// so a removal happens first (through the leader) and the member's
// process is stopped after: stopping it first could take the quorum with
// it, when another member is down. For the same reason a cluster is
// never shrunk below 2 members: from 1, etcd refuses to add any.

// Membership errors.
var (
	// ErrNoLeader: no member answered as the leader; membership cannot
	// be read or changed.
	ErrNoLeader = errors.New("etcd: no leader")
	// ErrNotMember: the node is not a member of the cluster (it was
	// removed); add it before starting it.
	ErrNotMember = errors.New("not a member of the etcd cluster")
	// ErrTooFewMembers: a removal would leave fewer than MinMembers.
	ErrTooFewMembers = errors.New("too few etcd members to remove one")
	// ErrNoNodeToAdd: every node of the test is a member already.
	ErrNoNodeToAdd = errors.New("every node is an etcd member already")
)

// MinMembers is the fewest members a removal leaves: from one member etcd
// refuses to add another (it would have one started member of two, less
// than a quorum).
const MinMembers = 2

// Membership is the cluster's membership as its leader answers it.
type Membership struct {
	// Leader is the node whose member leads, in term Term.
	Leader string
	Term   uint64
	// Answered are the nodes whose member answered a status request.
	Answered []string
	// Members are the cluster's members.
	Members []Member
	// peers maps a peer URL to its test node.
	peers map[string]string
}

// Node is the test node a member runs on (by its peer URL), or "".
func (m *Membership) Node(mem Member) string {
	for _, u := range mem.PeerURLs {
		if n, ok := m.peers[u]; ok {
			return n
		}
	}
	return ""
}

// Member is node's member, and whether it has one.
func (m *Membership) Member(node string) (Member, bool) {
	for _, mem := range m.Members {
		if m.Node(mem) == node {
			return mem, true
		}
	}
	return Member{}, false
}

// Nodes are the test nodes that are members, in the test's order.
func (m *Membership) Nodes(t *jepsen.Test) []string {
	var out []string
	for _, n := range t.Nodes {
		if _, ok := m.Member(n); ok {
			out = append(out, n)
		}
	}
	return out
}

// cluster is the --initial-cluster of the members: name=peerURL, a
// member named by its test node (one added but not started has no name
// yet), else by its own name, else by its ID.
func (m *Membership) cluster() string {
	var parts []string
	for _, mem := range m.Members {
		name := m.Node(mem)
		if name == "" {
			name = mem.Name
		}
		if name == "" {
			name = fmt.Sprintf("m%x", mem.ID)
		}
		for _, u := range mem.PeerURLs {
			parts = append(parts, name+"="+u)
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func newMembership(t *jepsen.Test, leader string, term uint64, members []Member) *Membership {
	m := &Membership{Leader: leader, Term: term, Members: members, peers: map[string]string{}}
	for _, n := range t.Nodes {
		m.peers[peerURL(n)] = n
	}
	return m
}

// Members asks every node which member leads, and the leader of the
// highest term for the members (etcd 3.4 answers a member list from the
// member's own state: the leader's is the one to trust). Nodes that do
// not answer are skipped; none leading is ErrNoLeader.
func (d *DB) Members(ctx context.Context, t *jepsen.Test) (*Membership, error) {
	c := NewClient(t, 2*time.Second)
	defer c.Close()
	sts, _ := control.OnNodes(ctx, t.Nodes, control.Fanout{Mode: control.WaitAll}, func(ctx context.Context, node string) (*Status, error) {
		return c.Status(ctx, node)
	})
	leader, term := "", uint64(0)
	var answered []string
	for i, st := range sts {
		if st != nil {
			answered = append(answered, t.Nodes[i])
		}
		if st == nil || !st.IsLeader() {
			continue
		}
		tm, _ := strconv.ParseUint(st.RaftTerm, 10, 64)
		if leader == "" || tm > term {
			leader, term = t.Nodes[i], tm
		}
	}
	if leader == "" {
		return nil, ErrNoLeader
	}
	l, err := c.MemberList(ctx, leader)
	if err != nil {
		return nil, fmt.Errorf("etcd member list on %s: %w", leader, err)
	}
	m := newMembership(t, leader, term, l.Members)
	m.Answered = answered
	return m, nil
}

// awaitMembers is Members, asked again until a leader answers or
// HealthTimeout passes (after a removal, or a restart, an election may
// be under way).
func (d *DB) awaitMembers(ctx context.Context, t *jepsen.Test) (*Membership, error) {
	ctx, cancel := context.WithTimeout(ctx, d.opts.HealthTimeout)
	defer cancel()
	for {
		m, err := d.Members(ctx, t)
		if err == nil {
			return m, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("etcd membership after %s: %w", d.opts.HealthTimeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Kinds of MemberChange.
const (
	MemberRemove = "remove"
	MemberAdd    = "add"
)

// MemberChange is a membership change, decided before it is made: what
// to write down (faults.json) before Apply. Its JSON is its fields'.
type MemberChange struct {
	// Op is MemberRemove or MemberAdd.
	Op string `json:"op"`
	// Node is the node whose member is removed, or that is added.
	Node string `json:"node"`
	// ID is the removed member's ID, in hex as etcdctl prints it.
	ID string `json:"id,omitempty"`
	// Members are the member nodes when the change was decided.
	Members []string `json:"members"`
}

func (c MemberChange) String() string {
	return fmt.Sprintf("etcd member %s %s (members %s)", c.Op, c.Node, strings.Join(c.Members, ","))
}

// PlanRemove decides to remove node's member: an error when node is no
// member (ErrNotMember) or when fewer than MinMembers would be left
// (ErrTooFewMembers).
func (d *DB) PlanRemove(ctx context.Context, t *jepsen.Test, node string) (MemberChange, error) {
	m, err := d.awaitMembers(ctx, t)
	if err != nil {
		return MemberChange{}, err
	}
	return planRemove(t, m, node)
}

func planRemove(t *jepsen.Test, m *Membership, node string) (MemberChange, error) {
	mem, ok := m.Member(node)
	if !ok {
		return MemberChange{}, fmt.Errorf("etcd on %s: %w", node, ErrNotMember)
	}
	if len(m.Members)-1 < MinMembers {
		return MemberChange{}, fmt.Errorf("etcd members %s: %w", strings.Join(m.Nodes(t), ","), ErrTooFewMembers)
	}
	return MemberChange{Op: MemberRemove, Node: node, ID: strconv.FormatUint(mem.ID, 16), Members: m.Nodes(t)}, nil
}

// PlanAdd decides to add node: an error when it is no node of the test,
// or a member already.
func (d *DB) PlanAdd(ctx context.Context, t *jepsen.Test, node string) (MemberChange, error) {
	if !t.Has(node) {
		return MemberChange{}, fmt.Errorf("etcd add %s: no node of the test", node)
	}
	m, err := d.awaitMembers(ctx, t)
	if err != nil {
		return MemberChange{}, err
	}
	if _, ok := m.Member(node); ok {
		return MemberChange{}, fmt.Errorf("etcd add %s: a member already", node)
	}
	return MemberChange{Op: MemberAdd, Node: node, Members: m.Nodes(t)}, nil
}

// PlanShrink decides to remove a member drawn from r (nil: at random):
// ErrTooFewMembers when fewer than MinMembers would be left.
func (d *DB) PlanShrink(ctx context.Context, t *jepsen.Test, r *rand.Rand) (MemberChange, error) {
	m, err := d.awaitMembers(ctx, t)
	if err != nil {
		return MemberChange{}, err
	}
	nodes := m.Nodes(t)
	if len(nodes) == 0 {
		return MemberChange{}, fmt.Errorf("etcd members: none is a node of the test: %w", ErrTooFewMembers)
	}
	return planRemove(t, m, nodes[intN(r, len(nodes))])
}

// PlanGrow decides to add a node of the test that is no member, drawn
// from r (nil: at random): ErrNoNodeToAdd when all are members.
func (d *DB) PlanGrow(ctx context.Context, t *jepsen.Test, r *rand.Rand) (MemberChange, error) {
	m, err := d.awaitMembers(ctx, t)
	if err != nil {
		return MemberChange{}, err
	}
	var out []string
	for _, n := range t.Nodes {
		if _, ok := m.Member(n); !ok {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return MemberChange{}, ErrNoNodeToAdd
	}
	return MemberChange{Op: MemberAdd, Node: out[intN(r, len(out))], Members: m.Nodes(t)}, nil
}

func intN(r *rand.Rand, n int) int {
	if r == nil {
		return rand.IntN(n)
	}
	return r.IntN(n)
}

// Apply makes the change c, against the cluster as it is now (c.Members
// is the record, not a precondition). A removal asks the leader (another
// member when the leader is the one removed) to remove the node's
// member, then stops its process and wipes its data
// (the member's identity is gone: it could never rejoin from it). An
// addition stops whatever runs on the node and wipes its data, asks the
// leader to add it, starts it with --initial-cluster-state existing and
// the members as they are, and waits (HealthTimeout) until it is
// healthy. Both are idempotent: removing a node that is no member only
// stops and wipes it; adding a node already added (not started) only
// starts it, already started does nothing. Each step is recorded in the
// context's journal (event.RecordStep) on the node. One change at a
// time: Apply must not run beside another Apply or RecoverMembers.
func (d *DB) Apply(ctx context.Context, t *jepsen.Test, c MemberChange) error {
	if !t.Has(c.Node) {
		return fmt.Errorf("%s: no node of the test", c)
	}
	switch c.Op {
	case MemberRemove:
		return d.removeMember(ctx, t, c.Node)
	case MemberAdd:
		return d.addMember(ctx, t, c.Node)
	}
	return fmt.Errorf("%s: unknown op %q (want %q or %q)", c, c.Op, MemberRemove, MemberAdd)
}

// removeMember removes node's member through the leader, then stops and
// wipes the node.
func (d *DB) removeMember(ctx context.Context, t *jepsen.Test, node string) error {
	start := time.Now()
	removed := false
	err := d.reconfigure(ctx, t, func(ctx context.Context, c *Client, m *Membership) error {
		mem, ok := m.Member(node)
		if !ok {
			return nil
		}
		removed = true
		via := m.via(node)
		if _, err := c.MemberRemove(ctx, via, mem.ID); err != nil {
			return fmt.Errorf("etcd member remove %s (%x) through %s: %w", node, mem.ID, via, err)
		}
		return nil
	})
	if removed || err != nil {
		if err := event.RecordStep(ctx, node, "member-remove", start, err); err != nil {
			return err
		}
	}
	return d.stopAndWipe(ctx, t, node)
}

// via is the node to ask for the removal of node's member: the leader,
// unless it is that member (a leader that removes itself stops before it
// answers: "server stopped", though the removal is made), then another
// member that answers, which hands the change to the leader.
func (m *Membership) via(node string) string {
	if m.Leader != node {
		return m.Leader
	}
	for _, n := range m.Answered {
		if mem, ok := m.Member(n); ok && n != node && mem.Name != "" {
			return n
		}
	}
	return m.Leader
}

// reconfigureRequest bounds one membership request: without a quorum
// etcd holds it until its own timeout.
const reconfigureRequest = 5 * time.Second

// reconfigure runs change against the membership as the leader has it,
// again (with the membership read again) while etcd refuses it for now,
// up to HealthTimeout: "unhealthy cluster" (etcd 3.4 refuses to remove a
// member while fewer than a quorum of the others have been connected for
// its health interval, 5 s: a cluster just started, a member just
// added), "not enough started members" (a member starting), no leader
// (an election). change decides from the membership whether anything is
// left to do, so that a request that took effect is never made twice:
// after any other error (a timeout, a member that stopped as it
// answered: the change may have been made) it is given one more chance
// on the membership read again; a second such error ends it.
func (d *DB) reconfigure(ctx context.Context, t *jepsen.Test, change func(ctx context.Context, c *Client, m *Membership) error) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.HealthTimeout)
	defer cancel()
	c := NewClient(t, reconfigureRequest)
	defer c.Close()
	failures := 0
	for {
		m, err := d.Members(ctx, t)
		if err == nil {
			if err = change(ctx, c, m); err == nil {
				return nil
			}
			if !refusedForNow(err) {
				if failures++; failures == 2 {
					return err
				}
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("etcd membership change refused for %s: %w", d.opts.HealthTimeout, err)
			}
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// refusedForNow reports whether etcd refused a membership change for a
// reason that passes (see reconfigure).
func refusedForNow(err error) bool {
	if errors.Is(err, ErrNoLeader) {
		return true
	}
	he, ok := errors.AsType[*HTTPError](err)
	if !ok {
		return false
	}
	for _, s := range []string{"etcdserver: unhealthy cluster", "not enough started members", "etcdserver: no leader", "etcdserver: leader changed"} {
		if strings.Contains(he.Body, s) {
			return true
		}
	}
	return false
}

// stopAndWipe kills the node's member, if it runs, and removes its data.
func (d *DB) stopAndWipe(ctx context.Context, t *jepsen.Test, node string) error {
	s := t.Session(node).Su()
	start := time.Now()
	if err := event.RecordStep(ctx, node, "kill", start, cu.StopDaemon(ctx, s, Pidfile, cu.StopOpts{Signal: "KILL"})); err != nil {
		return err
	}
	start = time.Now()
	// The member directory, not the data directory: that may be a mount
	// point (Options.LazyFS, DiskSize).
	_, err := s.Exec(ctx, "rm", "-rf", DataDir+"/member")
	return event.RecordStep(ctx, node, "wipe", start, err)
}

// addMember adds node to the cluster and starts it empty.
func (d *DB) addMember(ctx context.Context, t *jepsen.Test, node string) error {
	m, err := d.awaitMembers(ctx, t)
	if err != nil {
		return err
	}
	mem, listed := m.Member(node)
	if listed && mem.Name != "" {
		return nil // a started member already
	}
	if err := d.stopAndWipe(ctx, t, node); err != nil {
		return err
	}
	if !listed {
		start := time.Now()
		err := d.reconfigure(ctx, t, func(ctx context.Context, c *Client, m *Membership) error {
			if _, ok := m.Member(node); ok {
				return nil
			}
			if _, _, err := c.MemberAdd(ctx, m.Leader, []string{peerURL(node)}); err != nil {
				return fmt.Errorf("etcd member add %s through %s: %w", node, m.Leader, err)
			}
			return nil
		})
		if err := event.RecordStep(ctx, node, "member-add", start, err); err != nil {
			return err
		}
		if m, err = d.awaitMembers(ctx, t); err != nil {
			return err
		}
	}
	return d.startJoined(ctx, t, node, m)
}

// startJoined starts node's member, listed in m and without data, as a
// member joining the cluster m describes, and waits until it is healthy.
func (d *DB) startJoined(ctx context.Context, t *jepsen.Test, node string, m *Membership) error {
	start := time.Now()
	if err := event.RecordStep(ctx, node, "start", start, d.startWith(ctx, t, node, "existing", m.cluster())); err != nil {
		return err
	}
	start = time.Now()
	hctx, cancel := context.WithTimeout(ctx, d.opts.HealthTimeout)
	defer cancel()
	err := awaitHealthy(hctx, t, node)
	if err != nil && ctx.Err() == nil {
		err = fmt.Errorf("etcd on %s not healthy %s after joining: %w", node, d.opts.HealthTimeout, err)
	}
	return event.RecordStep(ctx, node, "healthy", start, err)
}

// join starts a node without data: as a joining member when the cluster
// lists it, else ErrNotMember. It waits for a leader (HealthTimeout).
func (d *DB) join(ctx context.Context, t *jepsen.Test, node string) error {
	m, err := d.awaitMembers(ctx, t)
	if err != nil {
		return fmt.Errorf("etcd on %s has no data, and the cluster's members are unknown: %w", node, err)
	}
	if _, ok := m.Member(node); !ok {
		return fmt.Errorf("etcd on %s (no data; members %s): %w", node, strings.Join(m.Nodes(t), ","), ErrNotMember)
	}
	return d.startWith(ctx, t, node, "existing", m.cluster())
}

// hasData reports whether the node's member has data (a member
// directory).
func hasData(ctx context.Context, t *jepsen.Test, node string) (bool, error) {
	return cu.Exists(ctx, t.Session(node).Su(), DataDir+"/member")
}

// nodeState is what RecoverMembers sees of a node.
type nodeState struct {
	Running bool
	HasData bool
}

// Recovery actions.
const (
	recStart   = "start"   // a member with data, not running: start it
	recRemove  = "remove"  // remove the member (foreign, or lost its data)
	recAdd     = "add"     // stop, wipe, add, start joining
	recJoin    = "join"    // listed, never started: stop, wipe, start joining
	recAwait   = "await"   // listed, never started, running: let it join
	recStopped = "stopped" // no member, not running: nothing yet (added later)
)

// recoveryStep is one thing RecoverMembers does.
type recoveryStep struct {
	Action string
	Node   string // "" for a foreign member
	ID     uint64 // recRemove
}

// planRecovery decides how to bring every node back as a started member,
// from the membership and what runs where: first start the members that
// have data (a quorum may need them), then remove members of no test
// node and members that lost their data, then join the members added and
// never started, then add the nodes that are no members, one at a time.
// A member added and never started that runs is left to join, unless
// patient is false (an earlier attempt waited for it in vain).
func planRecovery(nodes []string, m *Membership, st map[string]nodeState, patient bool) []recoveryStep {
	var starts, removes, joins, adds []recoveryStep
	for _, mem := range m.Members {
		if m.Node(mem) == "" {
			removes = append(removes, recoveryStep{Action: recRemove, ID: mem.ID})
		}
	}
	for _, n := range nodes {
		mem, listed := m.Member(n)
		s := st[n]
		switch {
		case !listed:
			adds = append(adds, recoveryStep{Action: recAdd, Node: n})
		case mem.Name == "" && s.Running && patient:
			joins = append(joins, recoveryStep{Action: recAwait, Node: n})
		case mem.Name == "":
			joins = append(joins, recoveryStep{Action: recJoin, Node: n})
		case !s.HasData:
			// It lost its identity: it can only come back as a new member.
			removes = append(removes, recoveryStep{Action: recRemove, Node: n, ID: mem.ID})
			adds = append(adds, recoveryStep{Action: recAdd, Node: n})
		case !s.Running:
			starts = append(starts, recoveryStep{Action: recStart, Node: n})
		}
	}
	return slices.Concat(starts, removes, joins, adds)
}

// RecoverMembers brings every node of the test back as a started member
// of the cluster, and waits until each is healthy: whatever membership
// changes left half done (a member removed and not added back, added and
// not started, stopped and wiped and still listed, a process still
// running after its removal), and whatever record there is of them. It
// resumes paused members and starts stopped ones that have data first,
// so that the cluster has its quorum; it then needs a leader (a cluster
// that lost its quorum for good, which these changes never cause, it
// cannot mend). It tries up to three times, each bounded by
// HealthTimeout per step, and returns the last error.
func (d *DB) RecoverMembers(ctx context.Context, t *jepsen.Test) error {
	var err error
	for attempt := range 3 {
		if err = d.recoverOnce(ctx, t, attempt == 0); err == nil || ctx.Err() != nil {
			return err
		}
		t.Logger().Warn("etcd membership recovery: trying again", "attempt", attempt+1, "err", err)
	}
	return err
}

func (d *DB) recoverOnce(ctx context.Context, t *jepsen.Test, patient bool) error {
	sts, err := control.OnNodes(ctx, t.Nodes, control.Fanout{Mode: control.WaitAll}, func(ctx context.Context, node string) (nodeState, error) {
		s := t.Session(node).Su()
		if err := cu.Resume(ctx, s, Pidfile); err != nil {
			return nodeState{}, err
		}
		running, err := cu.DaemonRunning(ctx, s, Pidfile)
		if err != nil {
			return nodeState{}, err
		}
		has, err := hasData(ctx, t, node)
		return nodeState{Running: running, HasData: has}, err
	})
	if err != nil {
		return err
	}
	st := map[string]nodeState{}
	for i, n := range t.Nodes {
		st[n] = sts[i]
	}
	// Members with data start first: without them there may be no quorum,
	// hence no leader to ask. A removed member with data starts too, and
	// stops on learning it was removed; it is added back below.
	var starts []string
	for _, n := range t.Nodes {
		if st[n].HasData && !st[n].Running {
			starts = append(starts, n)
		}
	}
	if _, err := control.OnNodes(ctx, starts, control.Fanout{Mode: control.WaitAll}, func(ctx context.Context, node string) (struct{}, error) {
		step := time.Now()
		return struct{}{}, event.RecordStep(ctx, node, "start", step, d.startWith(ctx, t, node, "new", initialCluster(t)))
	}); err != nil {
		return err
	}
	for _, n := range starts {
		s := st[n]
		s.Running = true
		st[n] = s
	}
	m, err := d.awaitMembers(ctx, t)
	if err != nil {
		return err
	}
	steps := planRecovery(t.Nodes, m, st, patient)
	for _, s := range steps {
		switch s.Action {
		case recRemove:
			err := d.reconfigure(ctx, t, func(ctx context.Context, c *Client, m *Membership) error {
				if !slices.ContainsFunc(m.Members, func(mem Member) bool { return mem.ID == s.ID }) {
					return nil
				}
				_, err := c.MemberRemove(ctx, m.via(s.Node), s.ID)
				return err
			})
			if err != nil {
				return fmt.Errorf("etcd recovery: member remove %x (%s): %w", s.ID, s.Node, err)
			}
			if s.Node != "" {
				if err := d.stopAndWipe(ctx, t, s.Node); err != nil {
					return err
				}
			}
		case recAdd:
			if err := d.addMember(ctx, t, s.Node); err != nil {
				return fmt.Errorf("etcd recovery: %w", err)
			}
		case recJoin:
			if err := d.stopAndWipe(ctx, t, s.Node); err != nil {
				return err
			}
			if m, err = d.awaitMembers(ctx, t); err != nil {
				return err
			}
			if err := d.startJoined(ctx, t, s.Node, m); err != nil {
				return fmt.Errorf("etcd recovery: %w", err)
			}
		}
	}
	if err := AwaitHealthy(ctx, t, d.opts.HealthTimeout); err != nil {
		return err
	}
	if m, err = d.awaitMembers(ctx, t); err != nil {
		return err
	}
	var missing []string
	for _, n := range t.Nodes {
		if mem, ok := m.Member(n); !ok || mem.Name == "" {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 || len(m.Members) != len(t.Nodes) {
		return fmt.Errorf("etcd recovery: members %s of %d, not started or missing: %s", strings.Join(m.Nodes(t), ","), len(m.Members), strings.Join(missing, ","))
	}
	return nil
}
