package corrupt

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestChooseBits(t *testing.T) {
	a, err := chooseBits(BitflipOpts{Count: 50, Seed: 3}, 1000)
	if err != nil || len(a) != 50 {
		t.Fatalf("%v %v", len(a), err)
	}
	b, _ := chooseBits(BitflipOpts{Count: 50, Seed: 3}, 1000)
	c, _ := chooseBits(BitflipOpts{Count: 50, Seed: 4}, 1000)
	seen := map[int64]bool{}
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("the same seed chose other bits")
		}
		if seen[a[i]] || a[i] < 0 || a[i] >= 1000 || (i > 0 && a[i] < a[i-1]) {
			t.Fatalf("bits %v: want distinct, sorted, in range", a)
		}
		seen[a[i]] = true
	}
	if bytes.Equal(toBytes(a), toBytes(c)) {
		t.Fatal("another seed chose the same bits")
	}
	if all, _ := chooseBits(BitflipOpts{Count: 8, Seed: 1}, 8); len(all) != 8 {
		t.Fatalf("every bit: %v", all)
	}
	// Probability: about p*n flips.
	p, err := chooseBits(BitflipOpts{Probability: 0.01, Seed: 9}, 1_000_000)
	if err != nil || len(p) < 9000 || len(p) > 11000 {
		t.Fatalf("p=0.01 over 1e6 bits: %d flips, %v", len(p), err)
	}
	for i := 1; i < len(p); i++ {
		if p[i] <= p[i-1] || p[i] >= 1_000_000 {
			t.Fatalf("probability bits not increasing in range at %d", i)
		}
	}
	if one, _ := chooseBits(BitflipOpts{Probability: 1}, 16); len(one) != 16 {
		t.Fatalf("p=1: %d", len(one))
	}
	for _, o := range []BitflipOpts{{}, {Count: 9}, {Count: -1}, {Probability: 2}, {Count: MaxFlips + 1}, {Probability: 0.5}} {
		n := int64(8)
		if o.Count > MaxFlips || o.Probability == 0.5 {
			n = 1 << 40
		}
		if _, err := chooseBits(o, n); err == nil {
			t.Errorf("%+v over %d bits: no error", o, n)
		}
	}
}

func toBytes(v []int64) []byte { b, _ := json.Marshal(v); return b }

func TestBitflipUnflipTruncate(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "wal")
	data := append(bytes.Repeat([]byte("walrecord"), 100), make([]byte, 1000)...)
	os.WriteFile(f, data, 0o644)
	res, err := Bitflip(f, BitflipOpts{Count: 10, Seed: 5, Written: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.End != 900 || res.Size != 1900 || len(res.Flips) != 10 {
		t.Fatalf("%+v", res)
	}
	got, _ := os.ReadFile(f)
	diff := 0
	for i := range got {
		if got[i] != data[i] {
			diff++
		}
	}
	for _, fl := range res.Flips {
		if got[fl.Offset] != fl.New || data[fl.Offset] != fl.Old || fl.Old^fl.New != 1<<fl.Bit || fl.Offset >= 900 {
			t.Fatalf("flip %+v", fl)
		}
	}
	if diff == 0 || diff > 10 {
		t.Fatalf("%d bytes differ", diff)
	}
	n, err := Unflip(f, res.Flips)
	if err != nil || n != 10 {
		t.Fatalf("unflip %d %v", n, err)
	}
	if got, _ := os.ReadFile(f); !bytes.Equal(got, data) {
		t.Fatal("unflip did not restore")
	}
	if n, _ := Unflip(f, res.Flips); n != 0 {
		t.Fatalf("second unflip restored %d", n)
	}
	if n, err := Unflip(f, []Flip{{Offset: 5000, Bit: 1, Old: 0, New: 2}}); err != nil || n != 0 {
		t.Fatalf("a flip past the end: %d %v; want none restored", n, err)
	}
	if _, err := Unflip(f, []Flip{{Offset: 1, Bit: 1, Old: 0, New: 1}}); err == nil {
		t.Fatal("a flip that is not one bit")
	}
	// Flips that share a byte: every bit of one.
	one := filepath.Join(dir, "one")
	os.WriteFile(one, []byte{0x5a}, 0o644)
	all, err := Bitflip(one, BitflipOpts{Count: 8})
	if err != nil || len(all.Flips) != 8 {
		t.Fatalf("%+v %v", all, err)
	}
	if got, _ := os.ReadFile(one); got[0] != 0xa5 {
		t.Fatalf("eight flips of 0x5a: %#x", got[0])
	}
	if n, err := Unflip(one, all.Flips); err != nil || n != 8 {
		t.Fatalf("unflip of eight flips in one byte: %d %v", n, err)
	}
	if got, _ := os.ReadFile(one); got[0] != 0x5a {
		t.Fatalf("after unflip: %#x", got[0])
	}
	tr, err := Truncate(f, 1500)
	if err != nil || tr.OldSize != 1900 || tr.NewSize != 400 {
		t.Fatalf("%+v %v", tr, err)
	}
	if tr, _ := Truncate(f, 1<<20); tr.NewSize != 0 {
		t.Fatalf("%+v", tr)
	}
	if _, err := Truncate(f, -1); err == nil {
		t.Fatal("negative drop")
	}
	os.Symlink(f, filepath.Join(dir, "link"))
	for _, p := range []string{dir, filepath.Join(dir, "link"), filepath.Join(dir, "missing")} {
		if _, err := Bitflip(p, BitflipOpts{Count: 1}); err == nil {
			t.Errorf("bitflip %s: no error", p)
		}
	}
	os.WriteFile(f, make([]byte, 100), 0o644)
	if _, err := Bitflip(f, BitflipOpts{Count: 1, Written: true}); err == nil || !strings.Contains(err.Error(), "empty range") {
		t.Fatalf("an all-zero file with -written: %v", err)
	}
}

func TestMainCLI(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "x")
	os.WriteFile(f, bytes.Repeat([]byte{0xff}, 64), 0o644)
	var out, errb bytes.Buffer
	if err := Main([]string{"bitflip", "-file", f, "-count", "3", "-seed", "1"}, nil, &out, &errb); err != nil {
		t.Fatal(err)
	}
	var res BitflipResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || len(res.Flips) != 3 {
		t.Fatalf("%s %v", out.String(), err)
	}
	flips, _ := json.Marshal(res.Flips)
	out.Reset()
	if err := Main([]string{"unflip", "-file", f}, bytes.NewReader(flips), &out, &errb); err != nil || strings.TrimSpace(out.String()) != `{"restored":3}` {
		t.Fatalf("unflip: %s %v", out.String(), err)
	}
	for _, args := range [][]string{{"bitflip"}, {"bitflip", "-file", f}, {"nope", "-file", f}, {"truncate", "-file", f, "extra"}} {
		if err := Main(args, nil, &out, &errb); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	if err := Main([]string{"unflip", "-file", f}, strings.NewReader("not json"), &out, &errb); err == nil {
		t.Error("unflip of garbage: no error")
	}
}
