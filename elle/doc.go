// Package elle finds isolation anomalies in transactional histories: it is
// Jepsen's Elle checker (github.com/jepsen-io/elle, elle.list-append and
// elle.rw-register), in Go, meant to agree with Elle.
//
// A history is a slice of Op: invocations and completions of transactions,
// each a list of micro-operations (Mop). Two workloads are checked:
//
//   - list-append (CheckListAppend): micro-ops append a unique integer to a
//     list, or read a whole list. Reads reveal the order of appends, so the
//     version order of each key is known: the longest read, each shorter
//     read a prefix of it.
//   - rw-register (CheckRWRegister): micro-ops write a unique integer to a
//     register, or read it. Versions are ordered only by what can be
//     inferred: the initial nil precedes every value, and, as asked in
//     Options, writes follow reads within a transaction (WFRKeys), a
//     process's order (SequentialKeys), the realtime order
//     (LinearizableKeys), or a known transaction order (TransactionOrder).
//
// # Input
//
// Op.Index orders events (line order; Time never orders anything, it only
// says how far apart two events were in realtime explanations). A
// completion belongs to the latest earlier invocation of the same Process.
// An ok completion carries what the transaction read; fail and info
// completions usually repeat the invocation. In a list-append read, a nil
// List is unknown (or nil) and an empty non-nil List is an empty list; in
// an rw-register read, a nil Reg is the initial nil. Mop marshals to JSON as
// Jepsen's [f, k, v] triple. Keys are strings (Jepsen's integer keys are
// written in decimal).
//
// # What is checked, as Elle does
//
// Anomalies found without a graph: G1a (aborted read), G1b (intermediate
// read), internal (a read disagreeing with the transaction's own earlier
// reads and writes), future-read (list-append: a read of the transaction's
// own later append), dirty-update (list-append: a committed append over a
// failed one), duplicate-elements and incompatible-order (list-append),
// lost-update (two committed transactions read the same version of a key
// and both wrote it), cyclic-versions (rw-register: the inferred version
// order has a cycle; that source of inference is then left out).
//
// Then the dependency graph: ww, wr and rw edges between completions
// inferred from the version orders, plus realtime edges when a model asked
// for needs them (strict-serializable, strong snapshot isolation, ...) or
// else process edges (strong-session models). Its strongly connected
// components (iterative Tarjan) are searched, each under a budget, with
// Elle's breadth-first search for the worst cycles first: G0 (ww only),
// G1c (ww and wr), G-single-item (exactly one rw), G-nonadjacent-item
// (several rw, never two adjacent), G2-item (several rw), each also with a
// -process or -realtime suffix when the cycle needs a process or realtime
// edge. Each cycle is explained step by step in Elle's words ("T2 appended
// 2 after T1 appended 1 to x", "T1 did not observe T2's append of 3 to
// y", ...) and drawn by WriteSVG. Before searching, Elle's
// cycle-existence checks prove which models each component rules out;
// when a search runs out of budget those proofs are reported
// (<model>-cycle-exists), with a cycle-search-timeout and a fallback cycle.
//
// The Result is Elle's: valid true, false or unknown; the anomaly types
// the asked models (Options.ConsistencyModels, default
// strict-serializable, and Options.Anomalies) care about; and Not and
// AlsoNot, the weakest models the history rules out and the stronger ones
// that follow, from Elle's tables of models (consistency_model.clj:
// read-uncommitted, read-committed, cursor-stability,
// monotonic-atomic-view, repeatable-read (Adya's PL-2.99), snapshot
// isolation, update-serializable, serializable, strict-serializable, the
// strong-session and strong variants, and more; see KnownModels).
//
// # Where it differs from Elle, and why
//
//   - Predicate anomalies (G-single, G-nonadjacent, G2 without -item, and
//     their variants) are never searched: with no predicate reads there are
//     no predicate edges, and Elle's searches for them can only find -item
//     cycles, which Elle then discards. The result is the same.
//   - Which cycle is reported, and where it starts, can differ from Elle
//     when a component holds several: Elle walks vertices in hash order, we
//     in history order, so results are deterministic. The tests compare
//     cycles with Elle's up to rotation.
//   - Elle stops with an assertion when a list-append read holds an element
//     nobody appended; we report a garbage-read anomaly (not in Elle),
//     which implies G1a. Elle's other errors (an unknown model, micro-ops of
//     another kind, a value appended or written twice) give an unknown
//     Result with Error set, where Elle throws.
//   - Elle's strict-serializable and strong-serializable are one model,
//     PL-SS; reported by Elle's friendly name, strong-serializable.
//   - Budgets: Elle bounds each component's search by time only
//     (:cycle-search-timeout, 1 s). We have the same
//     (Options.CycleSearchTimeout), plus a deterministic bound on search
//     steps (MaxSearchSteps), a bound on memory (MaxSearchPaths), an
//     overall time bound (Budget, default 5 minutes, which also bounds
//     rw-register version inference) and a context. Past any of them the
//     check reports cycle-search-timeout, with the reason.
//   - rw-register version inference from process or realtime order
//     (Elle's transaction-graph->version-graphs) is computed per key over
//     the stretch of history where the key is used, and leaves out the
//     nil-to-value edges the initial-state order already has: the same
//     version orders, without Elle's memory use that grows with the number
//     of keys times the length of the history.
//   - Output: Elle writes cycles and plots to files with Graphviz; we return
//     each cycle's explanation in Anomaly.Explanation and draw it with
//     WriteSVG in pure Go. Elle's incompatible-order HTML is not produced.
//
// # Cost
//
// Building the graph is linear in the history; the cycle search is
// bounded by the budgets. A 100,000-transaction list-append history (10
// processes, 1-4 micro-ops each) checks for strict serializability in
// about 1.3 s and 260 MB on two cores; one where 5% of transactions read
// stale snapshots (hundreds of cycles found) in about 1.5-5 s and 330 MB
// (BenchmarkCheckListAppend100k, BenchmarkCheckListAppend100kAnomalous).
package elle
