package elle

import "fmt"

// This file holds the orders Elle adds to a dependency graph when the
// consistency models asked for need them (elle.core's process-graph and
// realtime-graph), and their explanations.

// processEdges relates each ok completion to the next ok completion of the
// same process.
func processEdges(h *history) []edge {
	last := map[int]int{}
	var edges []edge
	for i, o := range h.ops {
		if o.Type != OK {
			continue
		}
		if j, ok := last[o.Process]; ok {
			edges = append(edges, edge{int32(j), int32(i), relProcess})
		}
		last[o.Process] = i
	}
	return edges
}

// realtimeEdges is Elle's transitive reduction of the realtime order: when
// an operation is invoked, every ok completion in the buffer precedes its
// completion; an ok completion enters the buffer and evicts the
// completions known to precede it. Edges go to whatever completes the
// invoked operation (ok, info, or fail), as in Elle. Positions in the
// history, never times, decide the order.
func realtimeEdges(h *history) []edge {
	buffer := map[int32]bool{}
	preds := map[int32][]int32{}
	var edges []edge
	for i, o := range h.ops {
		switch o.Type {
		case Invoke:
			c := h.completion[i]
			if c < 0 {
				continue
			}
			for b := range buffer {
				edges = append(edges, edge{b, int32(c), relRealtime})
				preds[int32(c)] = append(preds[int32(c)], b)
			}
		case OK:
			for _, p := range preds[int32(i)] {
				delete(buffer, p)
			}
			delete(preds, int32(i))
			buffer[int32(i)] = true
		}
	}
	return edges
}

// explainProcess explains a process edge a -> b, or says there is none.
func explainProcess(h *history, a, b int) (Step, bool) {
	// Positions, not indices, compare: the same when indices are distinct,
	// as they should be, and still right when they are not.
	oa, ob := h.ops[a], h.ops[b]
	if oa.Process != ob.Process || a >= b {
		return Step{}, false
	}
	p := oa.Process
	return Step{Type: "process", Process: &p}, true
}

// explainRealtime explains a realtime edge a -> b: a completed before b was
// invoked.
func explainRealtime(h *history, a, b int) (Step, bool) {
	inv := h.invocation[b]
	if inv < 0 || a >= inv {
		return Step{}, false
	}
	ai, bi := h.ops[a].Index, h.ops[inv].Index
	return Step{Type: "realtime", AIndex: &ai, BIndex: &bi, aTime: h.ops[a].Time, bTime: h.ops[inv].Time}, true
}

// renderOrderStep renders process and realtime steps in Elle's words.
func renderOrderStep(s Step, a, b string) string {
	switch s.Type {
	case "process":
		return fmt.Sprintf("process %d executed %s before %s", *s.Process, a, b)
	case "realtime":
		dt := s.bTime - s.aTime
		when := " just"
		if dt > 0 {
			when = fmt.Sprintf(" %.3f seconds", float64(dt)/1e9)
		}
		return fmt.Sprintf("%s completed at index %d,%s before the invocation of %s, at index %d",
			a, *s.AIndex, when, b, *s.BIndex)
	}
	return ""
}
