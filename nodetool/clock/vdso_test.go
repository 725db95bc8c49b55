package clock

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// ownVDSO is this process's pristine vDSO and its layout; the test
// skips where clock faults do not work.
func ownVDSO(t *testing.T) ([]byte, layout) {
	t.Helper()
	if why := supported(); why != "" {
		t.Skip(why)
	}
	img, l, err := pure()
	if err != nil {
		t.Fatal(err)
	}
	return img, l
}

func TestParseLayoutOwnVDSO(t *testing.T) {
	img, l := ownVDSO(t)
	if l.ClockGettime.Size < jmpLen || l.Blob < 0x100 || l.Blob+blobLen > len(img) || l.Blob%16 != 0 {
		t.Fatalf("layout %+v of a %d-byte vDSO", l, len(img))
	}
	if len(l.hooks()) != 3 {
		t.Errorf("hooks %+v: want clock_gettime, time and gettimeofday", l.hooks())
	}
	t.Logf("vDSO %d bytes: clock_gettime %+v, time %+v, gettimeofday %+v, blob at %#x, %d bytes displaced",
		len(img), l.ClockGettime, l.Time, l.Gettimeofday, l.Blob, l.Displaced)
}

func TestParseLayoutRefuses(t *testing.T) {
	img, l := ownVDSO(t)
	for _, tc := range []struct {
		name string
		img  []byte
		want string
	}{
		{"not ELF", []byte("hello"), "not an ELF image"},
		{"too big", make([]byte, vdsoLimit+1), "more than"},
		{"no room", img[:l.Blob+10], "free bytes"},
		{"tail not free", func() []byte { b := bytes.Clone(img); b[l.Blob+3] = 1; return b }(), "not free"},
	} {
		_, err := parseLayout(tc.img)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want %q", tc.name, err, tc.want)
		}
	}
}

func TestDisplaceable(t *testing.T) {
	for _, tc := range []struct {
		code []byte
		want int
	}{
		{[]byte{0x55, 0x48, 0x89, 0xe5, 0x41, 0x56, 0x53}, 6},       // push rbp; mov rbp,rsp; push r14
		{[]byte{0xf3, 0x0f, 0x1e, 0xfa, 0x55, 0x48}, 5},             // endbr64; push rbp
		{[]byte{0x48, 0x83, 0xec, 0x28, 0x53}, 5},                   // sub rsp,0x28; push rbx
		{[]byte{0x55, 0x4c, 0x8d, 0x15, 0xc8, 0x97, 0xff, 0xff}, 0}, // push rbp; lea r10,[rip+...]
		{[]byte{0x81, 0x3d, 0x1a, 0x95, 0xff, 0xff}, 0},             // cmp [rip+...]
		{[]byte{0x55, 0x55}, 0},                                     // too short
	} {
		if got := displaceable(tc.code); got != tc.want {
			t.Errorf("displaceable(% x) = %d, want %d", tc.code, got, tc.want)
		}
	}
}

func TestJmp(t *testing.T) {
	if got := jmp(0x100, 0x200); !bytes.Equal(got, []byte{0xe9, 0xfb, 0x00, 0x00, 0x00}) {
		t.Errorf("forward: % x", got)
	}
	if got := jmp(0x200, 0x100); !bytes.Equal(got, []byte{0xe9, 0xfb, 0xfe, 0xff, 0xff}) {
		t.Errorf("backward: % x", got)
	}
}

// hookImage does to a copy of img what hook does to a process.
func hookImage(l layout, img []byte, offset int64) []byte {
	b := bytes.Clone(img)
	copy(b[l.Blob:], l.blob(img, offset))
	for _, h := range l.hooks() {
		copy(b[h.Off:], l.entry(h))
	}
	return b
}

func TestClassify(t *testing.T) {
	img, l := ownVDSO(t)
	if got := l.classify(img, img); got != pristine {
		t.Fatalf("the pristine image: %s", got)
	}
	h := hookImage(l, img, 42)
	if got := l.classify(img, h); got != hooked {
		t.Fatalf("hooked: %s", got)
	}
	if off := offsetOf(h[l.Blob : l.Blob+dataLen]); off != 42 {
		t.Fatalf("offset %d", off)
	}
	u := bytes.Clone(h)
	for _, hk := range l.hooks() {
		copy(u[hk.Off:], img[hk.Off:hk.Off+jmpLen])
	}
	if got := l.classify(img, u); got != unhooked {
		t.Fatalf("unhooked: %s", got)
	}
	half := bytes.Clone(h)
	copy(half[l.ClockGettime.Off:], img[l.ClockGettime.Off:l.ClockGettime.Off+jmpLen])
	if got := l.classify(img, half); got != foreign {
		t.Fatalf("half hooked: %s", got)
	}
	other := bytes.Clone(img)
	other[l.ClockGettime.Off+20] ^= 0xcc // a debugger's breakpoint
	if got := l.classify(img, other); got != foreign {
		t.Fatalf("changed by someone else: %s", got)
	}
	if got := l.classify(img, img[:len(img)-1]); got != foreign {
		t.Fatalf("another size: %s", got)
	}
}

// The seqlock: the slot written is the one not current, and the
// sequence moves after it.
func TestOffsetSlots(t *testing.T) {
	data := make([]byte, dataLen)
	binary.LittleEndian.PutUint64(data[offSlots:], 5)
	if offsetOf(data) != 5 {
		t.Fatal("slot 0 at sequence 0")
	}
	binary.LittleEndian.PutUint64(data[offSlots+8:], uint64(1<<63-1))
	data[offSeq] = 1
	if offsetOf(data) != 1<<63-1 {
		t.Fatal("slot 1 at sequence 1")
	}
	binary.LittleEndian.PutUint64(data[offSlots:], ^uint64(0)) // -1
	data[offSeq] = 254
	if offsetOf(data) != -1 {
		t.Fatal("a negative offset at an even sequence")
	}
}

// The blob's trampoline: the displaced bytes, then a jump back to the
// first instruction not moved.
func TestBlobTrampoline(t *testing.T) {
	img, l := ownVDSO(t)
	b := l.blob(img, 0)
	if string(b[:len(magic)]) != magic || !bytes.Equal(b[dataLen:offOrig], stubCode) {
		t.Fatal("blob header or code")
	}
	orig := b[offOrig:]
	if l.Displaced == 0 {
		if !bytes.Equal(orig[:len(syscallOrig)], syscallOrig) {
			t.Fatalf("orig % x", orig[:8])
		}
		return
	}
	cg := int(l.ClockGettime.Off)
	if !bytes.Equal(orig[:l.Displaced], img[cg:cg+l.Displaced]) {
		t.Fatal("displaced bytes")
	}
	back := jmp(l.Blob+offOrig+l.Displaced, cg+l.Displaced)
	if !bytes.Equal(orig[l.Displaced:l.Displaced+jmpLen], back) {
		t.Fatalf("jump back % x, want % x", orig[l.Displaced:l.Displaced+jmpLen], back)
	}
}

// stubCode is what testdata/stub.gas assembles to.
func TestStubMatchesSource(t *testing.T) {
	as, err1 := exec.LookPath("as")
	objcopy, err2 := exec.LookPath("objcopy")
	if err1 != nil || err2 != nil || runtime.GOARCH != "amd64" {
		t.Skip("needs GNU as and objcopy (binutils) for x86-64")
	}
	dir := t.TempDir()
	obj, bin := filepath.Join(dir, "stub.o"), filepath.Join(dir, "stub.bin")
	if out, err := exec.Command(as, "--64", "-o", obj, "testdata/stub.gas").CombinedOutput(); err != nil {
		t.Fatalf("as: %v: %s", err, out)
	}
	if out, err := exec.Command(objcopy, "-O", "binary", "-j", ".text", obj, bin).CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v: %s", err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != offOrig || !bytes.Equal(b[dataLen:offOrig], stubCode) || string(b[:len(magic)]) != magic {
		t.Fatalf("the assembled stub (%d bytes) differs from stubCode", len(b))
	}
}
