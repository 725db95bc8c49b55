// Package corrupt damages a database's files on the node, as Jepsen's
// nemesis/file.clj does: it flips random bits in a file (a given count,
// or each bit with a probability), or cuts bytes off its end, and says
// exactly what it changed (offsets, bits, sizes), so that the change can
// be recorded before it matters and a checker's finding traced to it.
// Changes are synced (fsync) before the tool returns: on a lazyfs mount
// they survive a later loss of unsynced writes.
//
// It runs as `jepsen-node file bitflip|truncate` (cmd/jepsen-node);
// package diskfault calls it from the control node.
package corrupt

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"syscall"
)

// MaxFlips bounds one bitflip: its record lists every flip.
const MaxFlips = 100_000

// Flip is one flipped bit: the byte's offset, the bit (0 is the least
// significant), and the byte before and after.
type Flip struct {
	Offset int64 `json:"offset"`
	Bit    uint8 `json:"bit"`
	Old    byte  `json:"old"`
	New    byte  `json:"new"`
}

// BitflipOpts say which bits to flip.
type BitflipOpts struct {
	// Count flips exactly this many distinct bits, chosen uniformly.
	Count int
	// Probability flips each bit with this probability (Jepsen's
	// :probability) when Count is 0.
	Probability float64
	// Seed makes the choice repeatable.
	Seed uint64
	// Start and End bound the bytes that may change, [Start, End); End
	// 0 means the end of the file.
	Start, End int64
	// Written, when set, ends the range at the last non-zero byte: a
	// preallocated file (etcd's WAL segments are 64 MB of zeros at
	// first) is then damaged where data was written.
	Written bool
}

// BitflipResult is what Bitflip did.
type BitflipResult struct {
	File  string `json:"file"`
	Size  int64  `json:"size"`
	Start int64  `json:"start"`
	End   int64  `json:"end"`
	Seed  uint64 `json:"seed"`
	Flips []Flip `json:"flips"`
}

// TruncateResult is what Truncate did.
type TruncateResult struct {
	File    string `json:"file"`
	OldSize int64  `json:"old_size"`
	NewSize int64  `json:"new_size"`
}

// openRegular opens path for reading and writing, refusing anything but
// a regular file.
func openRegular(path string) (*os.File, int64, error) {
	if fi, err := os.Lstat(path); err != nil {
		return nil, 0, err
	} else if !fi.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("%s is not a regular file (%s)", path, fi.Mode().Type())
	}
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%s is not a regular file (%s)", path, fi.Mode().Type())
	}
	return f, fi.Size(), nil
}

// lastNonZero returns the offset after the last non-zero byte of f in
// [0, size).
func lastNonZero(f *os.File, size int64) (int64, error) {
	buf := make([]byte, 1<<20)
	for end := size; end > 0; {
		start := max(end-int64(len(buf)), 0)
		b := buf[:end-start]
		if _, err := f.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		for j := len(b) - 1; j >= 0; j-- {
			if b[j] != 0 {
				return start + int64(j) + 1, nil
			}
		}
		end = start
	}
	return 0, nil
}

// chooseBits picks the bit positions in [0, nbits) to flip, sorted.
func chooseBits(o BitflipOpts, nbits int64) ([]int64, error) {
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))
	switch {
	case o.Count < 0 || o.Probability < 0 || o.Probability > 1 || math.IsNaN(o.Probability):
		return nil, fmt.Errorf("bitflip: count %d, probability %v: out of range", o.Count, o.Probability)
	case o.Count > 0:
		if int64(o.Count) > nbits {
			return nil, fmt.Errorf("bitflip: %d flips asked, the range holds %d bits", o.Count, nbits)
		}
		if o.Count > MaxFlips {
			return nil, fmt.Errorf("bitflip: %d flips asked, at most %d", o.Count, MaxFlips)
		}
		seen := map[int64]bool{}
		var out []int64
		for len(out) < o.Count {
			b := rng.Int64N(nbits)
			if !seen[b] {
				seen[b] = true
				out = append(out, b)
			}
		}
		slices.Sort(out)
		return out, nil
	case o.Probability > 0:
		if expect := o.Probability * float64(nbits); expect > MaxFlips {
			return nil, fmt.Errorf("bitflip: probability %v over %d bits expects %.0f flips, at most %d", o.Probability, nbits, expect, MaxFlips)
		}
		var out []int64
		if o.Probability == 1 {
			for b := int64(0); b < nbits && len(out) <= MaxFlips; b++ {
				out = append(out, b)
			}
		} else {
			// Gaps between flips are geometric: one draw per flip,
			// not per bit.
			l := math.Log1p(-o.Probability)
			for b := int64(-1); ; {
				gap := int64(math.Floor(math.Log(1-rng.Float64())/l)) + 1
				if gap <= 0 || b > nbits-gap {
					break
				}
				b += gap
				out = append(out, b)
			}
		}
		if len(out) > MaxFlips {
			return nil, fmt.Errorf("bitflip: %d flips drawn, at most %d", len(out), MaxFlips)
		}
		return out, nil
	}
	return nil, errors.New("bitflip: give a count or a probability")
}

// Bitflip flips bits of path as o says, syncs it, and returns every
// flip. The file keeps its size.
func Bitflip(path string, o BitflipOpts) (BitflipResult, error) {
	res := BitflipResult{File: path, Seed: o.Seed, Flips: []Flip{}}
	f, size, err := openRegular(path)
	if err != nil {
		return res, err
	}
	defer f.Close()
	res.Size = size
	end := o.End
	if end <= 0 || end > size {
		end = size
	}
	if o.Written {
		if end, err = lastNonZero(f, end); err != nil {
			return res, err
		}
	}
	if o.Start < 0 || o.Start >= end {
		return res, fmt.Errorf("bitflip %s: empty range [%d, %d) of a %d-byte file", path, o.Start, end, size)
	}
	res.Start, res.End = o.Start, end
	bits, err := chooseBits(o, (end-o.Start)*8)
	if err != nil {
		return res, err
	}
	var b [1]byte
	for _, bit := range bits {
		off, k := o.Start+bit/8, uint8(bit%8)
		if _, err := f.ReadAt(b[:], off); err != nil {
			return res, err
		}
		fl := Flip{Offset: off, Bit: k, Old: b[0], New: b[0] ^ (1 << k)}
		if _, err := f.WriteAt([]byte{fl.New}, off); err != nil {
			return res, err
		}
		res.Flips = append(res.Flips, fl)
	}
	return res, f.Sync()
}

// Truncate cuts drop bytes off the end of path (all of it when drop is
// larger), syncs it, and returns the sizes.
func Truncate(path string, drop int64) (TruncateResult, error) {
	res := TruncateResult{File: path}
	if drop < 0 {
		return res, fmt.Errorf("truncate %s: drop %d bytes: must not be negative", path, drop)
	}
	f, size, err := openRegular(path)
	if err != nil {
		return res, err
	}
	defer f.Close()
	res.OldSize, res.NewSize = size, max(size-drop, 0)
	if err := f.Truncate(res.NewSize); err != nil {
		return res, err
	}
	return res, f.Sync()
}

// Unflip puts back the bits of flips (a Bitflip's record) that still
// differ from what they were before the flip, syncs the file, and
// returns how many it restored: a bit rewritten since is left alone, so
// it is idempotent, and a bit past the file's end now (the DB cut the
// file: etcd's WAL repair does) is gone. It works bit by bit, since two
// flips may hit one byte.
func Unflip(path string, flips []Flip) (int, error) {
	f, size, err := openRegular(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	var b [1]byte
	for _, fl := range flips {
		if fl.Offset < 0 || fl.Bit > 7 || fl.Old^fl.New != 1<<fl.Bit {
			return n, fmt.Errorf("unflip %s: %+v is not a flip", path, fl)
		}
		if fl.Offset >= size {
			continue
		}
		if _, err := f.ReadAt(b[:], fl.Offset); err != nil {
			return n, err
		}
		mask := byte(1) << fl.Bit
		if (b[0]^fl.Old)&mask == 0 {
			continue
		}
		if _, err := f.WriteAt([]byte{b[0] ^ mask}, fl.Offset); err != nil {
			return n, err
		}
		n++
	}
	return n, f.Sync()
}

// maxUnflipInput bounds the flips unflip reads from stdin.
const maxUnflipInput = 16 << 20

const usage = `usage: jepsen-node file COMMAND -file PATH [flags]
  bitflip  (-count N | -probability P) [-seed S] [-start A] [-end B] [-written]
  unflip   (reads a bitflip's "flips" JSON array on stdin)
  truncate -drop N
Results are JSON on stdout.`

// Main runs `jepsen-node file ARGS...`.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "help" {
		fmt.Fprintln(stderr, usage)
		return flag.ErrHelp
	}
	cmd := args[0]
	fl := flag.NewFlagSet("file "+cmd, flag.ContinueOnError)
	fl.SetOutput(stderr)
	file := fl.String("file", "", "the file to damage")
	var o BitflipOpts
	fl.IntVar(&o.Count, "count", 0, "bitflip: how many bits")
	fl.Float64Var(&o.Probability, "probability", 0, "bitflip: each bit's probability")
	fl.Uint64Var(&o.Seed, "seed", 0, "bitflip: the random seed")
	fl.Int64Var(&o.Start, "start", 0, "bitflip: first byte that may change")
	fl.Int64Var(&o.End, "end", 0, "bitflip: end of the range (0: the file's end)")
	fl.BoolVar(&o.Written, "written", false, "bitflip: end the range at the last non-zero byte")
	drop := fl.Int64("drop", 0, "truncate: bytes to cut off the end")
	if err := fl.Parse(args[1:]); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fl.Args())
	}
	if *file == "" {
		return errors.New("-file is required")
	}
	enc := json.NewEncoder(stdout)
	switch cmd {
	case "bitflip":
		res, err := Bitflip(*file, o)
		if err != nil {
			return err
		}
		return enc.Encode(res)
	case "unflip":
		b, err := io.ReadAll(io.LimitReader(stdin, maxUnflipInput+1))
		if err != nil {
			return err
		}
		if len(b) > maxUnflipInput {
			return fmt.Errorf("unflip: more than %d bytes of flips on stdin", maxUnflipInput)
		}
		var flips []Flip
		if err := json.Unmarshal(b, &flips); err != nil {
			return fmt.Errorf("unflip: stdin is not a JSON array of flips: %w", err)
		}
		n, err := Unflip(*file, flips)
		if err != nil {
			return err
		}
		return enc.Encode(map[string]int{"restored": n})
	case "truncate":
		res, err := Truncate(*file, *drop)
		if err != nil {
			return err
		}
		return enc.Encode(res)
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}
