package postgres

import (
	"github.com/go-jepsen/jepsen/checker/ellecheck"
	"github.com/go-jepsen/jepsen/workload"
	"github.com/go-jepsen/jepsen/workload/txn"
)

// WorkloadOptions configure the workloads: Elle's generator options
// (txn.Options) and the clients' (isolation, where reads go).
type WorkloadOptions struct {
	txn.Options
	Isolation Isolation
	ReadFrom  ReadFrom
}

// ListAppendWorkload is Elle's list-append workload on PostgreSQL
// (ListAppendClient), checked for strict serializability unless
// o.ConsistencyModels names other models, whatever the isolation level:
// a weaker level's history is then invalid, and the verdict names the
// anomalies found and the strongest model they leave (at repeatable
// read, write skew: snapshot-isolation). To hold a level to its own
// promise, ask for Isolation.Model.
func ListAppendWorkload(o WorkloadOptions) workload.Workload {
	return txn.ListAppend(ListAppendClient{Isolation: o.Isolation, ReadFrom: o.ReadFrom}, o.Options)
}

// RWRegisterWorkload is Elle's rw-register workload on PostgreSQL
// (RWRegisterClient), checked as ListAppendWorkload, with the version
// orders Elle may infer from one primary: writes follow reads within a
// transaction (WFRKeys: a transaction that writes runs on the primary,
// and its write of a key comes after the version it read), and, when
// every transaction runs on the primary (ReadFrom primary), each key is
// linearizable (LinearizableKeys; a replica's stale reads are not).
// Without them Elle orders little beyond each key's initial state, and
// misses most of the write skew repeatable read shows.
func RWRegisterWorkload(o WorkloadOptions) workload.Workload {
	w := txn.RWRegister(RWRegisterClient{Isolation: o.Isolation, ReadFrom: o.ReadFrom}, o.Options)
	rf, err := ParseReadFrom(string(o.ReadFrom))
	w.Checker = ellecheck.RWRegister{ConsistencyModels: o.ConsistencyModels, WFRKeys: true,
		LinearizableKeys: err == nil && rf == ReadPrimary}
	return w
}
