package elle

import (
	"testing"
)

// benchHistory is a 100,000-transaction list-append history from the
// simulated store: 10 concurrent processes, transactions of 1-4 reads and
// appends over 10 rotating keys (each retired after 32 appends), with a few
// failed and crashed transactions. It is strict-serializable.
func benchHistory(b *testing.B, n int) []Op {
	b.Helper()
	return newSim(1, 10, 10, false).run(n)
}

// BenchmarkCheckListAppend100k checks the 100k history for
// strict-serializability (Elle's default: ww, wr, rw and realtime edges).
func BenchmarkCheckListAppend100k(b *testing.B) {
	h := benchHistory(b, 100_000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := CheckListAppend(h, Options{})
		if r.Valid != Valid {
			b.Fatalf("valid = %v", r.Valid)
		}
	}
	b.ReportMetric(float64(len(h)/2), "txns")
}

// BenchmarkCheckRWRegister100k is the same with registers.
func BenchmarkCheckRWRegister100k(b *testing.B) {
	h := newSim(1, 10, 10, true).run(100_000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := CheckRWRegister(h, Options{})
		if r.Valid != Valid {
			b.Fatalf("valid = %v", r.Valid)
		}
	}
}

// BenchmarkCheckListAppend100kAnomalous checks a 100k history where 5% of
// transactions read a stale snapshot: thousands of components to search,
// each under the default budgets.
func BenchmarkCheckListAppend100kAnomalous(b *testing.B) {
	s := newSim(2, 10, 10, false)
	s.stale = 0.05
	h := s.run(100_000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := CheckListAppend(h, Options{})
		if r.Valid != Invalid {
			b.Fatalf("valid = %v", r.Valid)
		}
		b.ReportMetric(float64(len(r.AnomalyTypes)), "types")
	}
}

// BenchmarkCheckRWRegister100kInferred infers versions from writes-follow-
// reads, process order and realtime order too.
func BenchmarkCheckRWRegister100kInferred(b *testing.B) {
	h := newSim(1, 10, 10, true).run(100_000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := CheckRWRegister(h, Options{WFRKeys: true, SequentialKeys: true, LinearizableKeys: true})
		if r.Valid != Valid {
			b.Fatalf("valid = %v", r.Valid)
		}
	}
}
