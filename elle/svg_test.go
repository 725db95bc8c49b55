package elle

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
)

// TestWriteSVG draws a cycle and checks the picture is well-formed XML
// holding every transaction, every step's label and sentence, and Elle's
// colours. ELLE_SVG_OUT=dir keeps the pictures for a person to look at.
func TestWriteSVG(t *testing.T) {
	cases := map[string]*Result{
		"G-nonadjacent-item": laCheck(pairs(okOp(la("ax1")), okOp(la("rx1ry")), okOp(la("ay1")), okOp(la("ry1rx"))), nil),
		"G2-item":            laCheck(hist(okOp(la("ax1ry")), okOp(la("ay1rx"))), nil),
		"G-single-item-realtime": laCheck([]Op{
			{Index: 0, Process: 0, Type: Invoke, Txn: Txn(Append("x", 1))},
			{Index: 1, Process: 0, Type: OK, Txn: Txn(Append("x", 1))},
			{Index: 2, Process: 1, Type: Invoke, Txn: Txn(Append("x", 2))},
			{Index: 3, Process: 1, Type: OK, Txn: Txn(Append("x", 2))},
			{Index: 4, Process: 2, Type: Invoke, Txn: Txn(ReadUnknown("x"))},
			{Index: 5, Process: 2, Type: OK, Txn: Txn(ReadList("x", 1))},
			{Index: 6, Process: 3, Type: Invoke, Txn: Txn(ReadUnknown("x"))},
			{Index: 7, Process: 3, Type: OK, Txn: Txn(ReadList("x", 1, 2))},
		}, nil),
	}
	for typ, r := range cases {
		t.Run(typ, func(t *testing.T) {
			as := r.Anomalies[typ]
			if len(as) == 0 {
				t.Fatalf("no %s in %s", typ, dump(r))
			}
			var buf bytes.Buffer
			if err := WriteSVG(&buf, as[0]); err != nil {
				t.Fatal(err)
			}
			svg := buf.String()
			d := xml.NewDecoder(strings.NewReader(svg))
			for {
				_, err := d.Token()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("not well-formed: %v\n%s", err, svg)
				}
			}
			for i, s := range as[0].Steps {
				if !strings.Contains(svg, cycleName(i)) || !strings.Contains(svg, escape(s.Text)) || !strings.Contains(svg, colourOf(s.Type)) {
					t.Errorf("step %d (%s) missing from the picture", i, s.Text)
				}
			}
			for _, op := range as[0].Cycle {
				for _, m := range op.Txn {
					if !strings.Contains(svg, escape(m.String())) {
						t.Errorf("mop %s missing", m)
					}
				}
			}
			if dir := os.Getenv("ELLE_SVG_OUT"); dir != "" {
				if err := os.WriteFile(dir+"/"+typ+".svg", buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	if err := WriteSVG(io.Discard, Anomaly{Type: "G1a"}); !errors.Is(err, ErrNoCycle) {
		t.Errorf("non-cycle: err = %v, want ErrNoCycle", err)
	}
}

func escape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return strings.ReplaceAll(b.String(), "&#39;", "&#39;")
}
