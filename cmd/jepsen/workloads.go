package main

import (
	"fmt"

	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/dbs/etcd"
	"github.com/go-jepsen/jepsen/dbs/postgres"
	"github.com/go-jepsen/jepsen/workload"
	"github.com/go-jepsen/jepsen/workload/txn"
)

// The workloads the CLI offers, by DB: each is the DB package's own
// workload value, made from the flags. A new workload is a line here.

var etcdWorkloads = []workloadKind{
	{name: "register", about: "reads, writes and compare-and-sets of rotating keys; linearizable (Jepsen's etcd register)",
		make: func(o *dbOpts, ro *runOpts) (*workload.Workload, error) {
			return ptr(etcd.RegisterWorkload(etcd.RegisterOptions{Serializable: o.serializable})), nil
		}},
	{name: "set", about: "adds of unique integers and reads of the set; every acknowledged add is read (Jepsen's set-full)",
		make: func(o *dbOpts, ro *runOpts) (*workload.Workload, error) {
			return ptr(etcd.SetWorkload(etcd.SetOptions{Serializable: o.serializable})), nil
		}},
	{name: "bank", about: "transfers between accounts in transactions; every read sums to the total (Jepsen's bank)",
		make: func(o *dbOpts, ro *runOpts) (*workload.Workload, error) {
			return ptr(etcd.BankWorkload(etcd.BankOptions{Serializable: o.serializable})), nil
		}},
	{name: "append", about: "Elle's list-append transactions, guarded by revisions; strict serializable (jepsen-io/etcd's append)",
		make: func(o *dbOpts, ro *runOpts) (*workload.Workload, error) {
			if o.serializable {
				return nil, fmt.Errorf("--serializable-reads: the append workload's reads are in its transactions")
			}
			return ptr(etcd.AppendWorkload(etcd.AppendOptions{})), nil
		}},
}

var postgresWorkloads = []workloadKind{
	{name: "append", about: "Elle's list-append transactions at --isolation, reads --read-from; checked for strict serializability",
		make: func(o *dbOpts, ro *runOpts) (*workload.Workload, error) {
			w, err := postgresWorkload(o)
			if err != nil {
				return nil, err
			}
			return ptr(postgres.ListAppendWorkload(w)), nil
		}},
	{name: "rw-register", about: "Elle's read-write register transactions at --isolation; checked for strict serializability",
		make: func(o *dbOpts, ro *runOpts) (*workload.Workload, error) {
			w, err := postgresWorkload(o)
			if err != nil {
				return nil, err
			}
			return ptr(postgres.RWRegisterWorkload(w)), nil
		}},
}

func postgresWorkload(o *dbOpts) (postgres.WorkloadOptions, error) {
	iso, err := postgres.ParseIsolation(o.isolation)
	if err != nil {
		return postgres.WorkloadOptions{}, usagef("--isolation: %v", err)
	}
	rf, err := postgres.ParseReadFrom(o.readFrom)
	if err != nil {
		return postgres.WorkloadOptions{}, usagef("--read-from: %v", err)
	}
	return postgres.WorkloadOptions{Options: txn.Options{}, Isolation: iso, ReadFrom: rf}, nil
}

func ptr[T any](v T) *T { return &v }

// postgresPort is what --tcpdump captures of PostgreSQL.
const postgresPort = postgres.DefaultPort

// buildPostgres makes PostgreSQL from the flags; a bad option is a usage
// error.
func buildPostgres(o *dbOpts) (db.DB, error) {
	r, err := postgres.ParseReplication(o.replication)
	if err != nil {
		return nil, usagef("--replication: %v", err)
	}
	d, err := postgres.New(postgres.Options{Replication: r})
	if err != nil {
		return nil, usagef("--db postgres: %v", err)
	}
	return d, nil
}
