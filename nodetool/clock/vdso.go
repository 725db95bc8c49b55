package clock

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
)

// The blob written after the vDSO image: 64 bytes of data, then the
// code (stubCode), then the original clock_gettime (origCode).
const (
	magic     = "JPCLOCK1"
	offMagic  = 0
	offSeq    = 8  // seqlock sequence: one byte, so that its writes are atomic
	offSlots  = 16 // two int64 offsets in ns; slot seq&1 is current
	dataLen   = 64
	offCG     = dataLen + 0x00 // hook of __vdso_clock_gettime
	offTime   = dataLen + 0x75 // hook of __vdso_time
	offGTOD   = dataLen + 0x9e // hook of __vdso_gettimeofday
	offOrig   = dataLen + 0x100
	maxOrig   = 32 // displaced instructions (at most 15) + a jump back
	blobLen   = offOrig + maxOrig
	jmpLen    = 5 // e9 rel32
	vdsoLimit = 1 << 16
)

// stubCode is testdata/stub.gas from "cg" to "orig", assembled.
var stubCode = []byte{
	0x85, 0xff, 0x74, 0x14, 0x83, 0xff, 0x05, 0x74, 0x0f, 0x83, 0xff, 0x08,
	0x74, 0x0a, 0x83, 0xff, 0x0b, 0x74, 0x05, 0xe9, 0xe8, 0x00, 0x00, 0x00,
	0x56, 0xe8, 0xe2, 0x00, 0x00, 0x00, 0x5e, 0x85, 0xc0, 0x75, 0x2c, 0xe8,
	0x28, 0x00, 0x00, 0x00, 0x48, 0x8b, 0x46, 0x08, 0x4c, 0x01, 0xd0, 0x48,
	0x99, 0x48, 0xc7, 0xc1, 0x00, 0xca, 0x9a, 0x3b, 0x48, 0xf7, 0xf9, 0x48,
	0x85, 0xd2, 0x79, 0x06, 0x48, 0x01, 0xca, 0x48, 0xff, 0xc8, 0x48, 0x01,
	0x06, 0x48, 0x89, 0x56, 0x08, 0x31, 0xc0, 0xc3, 0x0f, 0xb6, 0x0d, 0x71,
	0xff, 0xff, 0xff, 0x41, 0x89, 0xc8, 0x83, 0xe1, 0x01, 0x4c, 0x8d, 0x0d,
	0x6c, 0xff, 0xff, 0xff, 0x4d, 0x8b, 0x14, 0xc9, 0x0f, 0xb6, 0x0d, 0x59,
	0xff, 0xff, 0xff, 0x44, 0x39, 0xc1, 0x75, 0xdc, 0xc3, 0x48, 0x83, 0xec,
	0x18, 0x48, 0x89, 0x7c, 0x24, 0x10, 0x31, 0xff, 0x48, 0x89, 0xe6, 0xe8,
	0x78, 0xff, 0xff, 0xff, 0x48, 0x8b, 0x04, 0x24, 0x48, 0x8b, 0x7c, 0x24,
	0x10, 0x48, 0x85, 0xff, 0x74, 0x03, 0x48, 0x89, 0x07, 0x48, 0x83, 0xc4,
	0x18, 0xc3, 0x48, 0x83, 0xec, 0x28, 0x48, 0x89, 0x7c, 0x24, 0x10, 0x48,
	0x85, 0xf6, 0x74, 0x0d, 0x31, 0xff, 0xb8, 0x60, 0x00, 0x00, 0x00, 0x0f,
	0x05, 0x85, 0xc0, 0x75, 0x3b, 0x31, 0xc0, 0x48, 0x8b, 0x7c, 0x24, 0x10,
	0x48, 0x85, 0xff, 0x74, 0x2f, 0x31, 0xff, 0x48, 0x89, 0xe6, 0xe8, 0x31,
	0xff, 0xff, 0xff, 0x85, 0xc0, 0x75, 0x21, 0x48, 0x8b, 0x7c, 0x24, 0x10,
	0x48, 0x8b, 0x04, 0x24, 0x48, 0x89, 0x07, 0x48, 0x8b, 0x44, 0x24, 0x08,
	0x31, 0xd2, 0xb9, 0xe8, 0x03, 0x00, 0x00, 0x48, 0xf7, 0xf1, 0x48, 0x89,
	0x47, 0x08, 0x31, 0xc0, 0x48, 0x83, 0xc4, 0x28, 0xc3, 0xcc, 0xcc, 0xcc,
	0xcc, 0xcc, 0xcc, 0xcc,
}

// syscallOrig is the original clock_gettime when its first
// instructions cannot be moved: mov eax, 228 (SYS_clock_gettime);
// syscall; ret. Correct for every clock, at a system call's cost.
var syscallOrig = []byte{0xb8, 0xe4, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xc3}

// vdsoSym is a function of the vDSO: its offset from the image's start
// and its size.
type vdsoSym struct {
	Off, Size uint64
}

// layout is where the hooks go in this kernel's vDSO.
type layout struct {
	Size         int     // bytes of the [vdso] mapping
	ClockGettime vdsoSym // __vdso_clock_gettime
	Time         vdsoSym // __vdso_time (Size 0: absent)
	Gettimeofday vdsoSym // __vdso_gettimeofday (Size 0: absent)
	Blob         int     // offset of the blob: the first free, zero bytes after the image
	Displaced    int     // bytes of clock_gettime moved to the blob; 0: the blob makes the system call
}

// errVDSO is wrapped by every "this vDSO cannot be patched" error.
var errVDSO = errors.New("vDSO cannot be patched")

// parseLayout finds the hooks' places in a pristine vDSO image (the
// bytes of a [vdso] mapping): a 64-bit x86 ELF with
// __vdso_clock_gettime, and room after the image for the blob.
func parseLayout(img []byte) (layout, error) {
	l := layout{Size: len(img)}
	if len(img) > vdsoLimit {
		return l, fmt.Errorf("%w: %d bytes, more than %d", errVDSO, len(img), vdsoLimit)
	}
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		return l, fmt.Errorf("%w: not an ELF image: %v", errVDSO, err)
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
		return l, fmt.Errorf("%w: a %s %s image, not x86-64", errVDSO, f.Class, f.Machine)
	}
	syms, err := f.DynamicSymbols()
	if err != nil {
		return l, fmt.Errorf("%w: no dynamic symbols: %v", errVDSO, err)
	}
	base := uint64(0)
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			base = p.Vaddr - p.Off
			break
		}
	}
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Value < base {
			continue
		}
		sym := vdsoSym{Off: s.Value - base, Size: s.Size}
		if sym.Off+sym.Size > uint64(len(img)) {
			return l, fmt.Errorf("%w: %s lies outside the image", errVDSO, s.Name)
		}
		switch s.Name {
		case "__vdso_clock_gettime":
			l.ClockGettime = sym
		case "__vdso_time":
			l.Time = sym
		case "__vdso_gettimeofday":
			l.Gettimeofday = sym
		}
	}
	if l.ClockGettime.Size < jmpLen {
		return l, fmt.Errorf("%w: no __vdso_clock_gettime of %d bytes or more", errVDSO, jmpLen)
	}
	for _, s := range []*vdsoSym{&l.Time, &l.Gettimeofday} {
		if s.Size < jmpLen {
			*s = vdsoSym{} // too small to hook: left alone
		}
	}
	// The image ends with its section headers; the rest of the
	// mapping's last page is zeros that nothing reads.
	end := uint64(0)
	var hdr struct {
		Shoff     uint64
		Shentsize uint16
		Shnum     uint16
	}
	if len(img) >= 64 {
		hdr.Shoff = binary.LittleEndian.Uint64(img[40:])
		hdr.Shentsize = binary.LittleEndian.Uint16(img[58:])
		hdr.Shnum = binary.LittleEndian.Uint16(img[60:])
	}
	end = max(end, hdr.Shoff+uint64(hdr.Shentsize)*uint64(hdr.Shnum))
	for _, p := range f.Progs {
		end = max(end, p.Off+p.Filesz)
	}
	for _, s := range f.Sections {
		if s.Type != elf.SHT_NOBITS {
			end = max(end, s.Offset+s.FileSize)
		}
	}
	blob := (end + 15) &^ 15
	if blob+blobLen > uint64(len(img)) {
		return l, fmt.Errorf("%w: %d free bytes after the image, the stub needs %d", errVDSO, uint64(len(img))-min(blob, uint64(len(img))), blobLen)
	}
	for _, b := range img[blob : blob+blobLen] {
		if b != 0 {
			return l, fmt.Errorf("%w: the bytes after the image are not free (not zero)", errVDSO)
		}
	}
	l.Blob = int(blob)
	cg := img[l.ClockGettime.Off : l.ClockGettime.Off+l.ClockGettime.Size]
	l.Displaced = displaceable(cg)
	return l, nil
}

// displaceable returns how many bytes of whole instructions at the
// start of code cover the jump that replaces them and can run anywhere
// (no RIP-relative operand, no branch), or 0. Only a function
// prologue's usual instructions are known.
func displaceable(code []byte) int {
	n := 0
	for n < jmpLen {
		k := knownInsn(code[n:])
		if k == 0 {
			return 0
		}
		n += k
	}
	return n
}

// knownInsn is the length of the position-independent instruction at
// the start of b, or 0 when it is not one of the few known.
func knownInsn(b []byte) int {
	switch {
	case len(b) >= 1 && b[0] >= 0x50 && b[0] <= 0x57: // push r64
		return 1
	case len(b) >= 1 && b[0] == 0x90: // nop
		return 1
	case len(b) >= 2 && b[0] == 0x41 && b[1] >= 0x50 && b[1] <= 0x57: // push r8-r15
		return 2
	case len(b) >= 3 && b[0] == 0x48 && b[1] == 0x89 && b[2] == 0xe5: // mov rbp, rsp
		return 3
	case len(b) >= 4 && b[0] == 0xf3 && b[1] == 0x0f && b[2] == 0x1e && b[3] == 0xfa: // endbr64
		return 4
	case len(b) >= 4 && b[0] == 0x48 && b[1] == 0x83 && b[2] == 0xec: // sub rsp, imm8
		return 4
	case len(b) >= 7 && b[0] == 0x48 && b[1] == 0x81 && b[2] == 0xec: // sub rsp, imm32
		return 7
	}
	return 0
}

// jmp encodes a jmp rel32 at from to to (offsets in one image).
func jmp(from, to int) []byte {
	b := []byte{0xe9, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(b[1:], uint32(int32(to-(from+jmpLen))))
	return b
}

// blob returns the bytes written at l.Blob, given the pristine image
// img and the offset it starts with (in slot 0, sequence 0).
func (l layout) blob(img []byte, offset int64) []byte {
	b := make([]byte, blobLen)
	copy(b[offMagic:], magic)
	binary.LittleEndian.PutUint64(b[offSlots:], uint64(offset))
	copy(b[dataLen:], stubCode)
	orig := b[offOrig:]
	if l.Displaced > 0 {
		cg := int(l.ClockGettime.Off)
		n := copy(orig, img[cg:cg+l.Displaced])
		copy(orig[n:], jmp(l.Blob+offOrig+n, cg+l.Displaced))
	} else {
		copy(orig, syscallOrig)
	}
	return b
}

// hook is one entry of the vDSO that is replaced by a jump into the
// blob.
type hook struct {
	Off int // in the image
	To  int // offset in the blob it jumps to
}

// hooks are the entries patched, clock_gettime first.
func (l layout) hooks() []hook {
	h := []hook{{int(l.ClockGettime.Off), offCG}}
	if l.Time.Size > 0 {
		h = append(h, hook{int(l.Time.Off), offTime})
	}
	if l.Gettimeofday.Size > 0 {
		h = append(h, hook{int(l.Gettimeofday.Off), offGTOD})
	}
	return h
}

// entry is the jump that replaces the first bytes of h.
func (l layout) entry(h hook) []byte { return jmp(h.Off, l.Blob+h.To) }

// state is what a process's vDSO image says of our patch.
type state int

const (
	pristine state = iota // as the kernel made it
	hooked                // entries jump into our blob: the offset applies
	unhooked              // our blob is there, the entries are restored (after a reset)
	foreign               // changed by someone else, or not this kernel's 64-bit vDSO
)

func (s state) String() string {
	return [...]string{"pristine", "hooked", "unhooked", "foreign"}[s]
}

// classify compares a process's vDSO image with the pristine one.
func (l layout) classify(pure, img []byte) state {
	if len(img) != len(pure) {
		return foreign
	}
	if bytes.Equal(img, pure) {
		return pristine
	}
	// Outside the entries and the blob, nothing may differ.
	mask := make([]bool, len(img))
	for i := l.Blob; i < l.Blob+blobLen; i++ {
		mask[i] = true
	}
	hs := l.hooks()
	for _, h := range hs {
		for i := h.Off; i < h.Off+jmpLen; i++ {
			mask[i] = true
		}
	}
	for i := range img {
		if !mask[i] && img[i] != pure[i] {
			return foreign
		}
	}
	if string(img[l.Blob:l.Blob+len(magic)]) != magic || !bytes.Equal(img[l.Blob+dataLen:l.Blob+offOrig], stubCode) {
		return foreign
	}
	all, none := true, true
	for _, h := range hs {
		cur := img[h.Off : h.Off+jmpLen]
		switch {
		case bytes.Equal(cur, l.entry(h)):
			none = false
		case bytes.Equal(cur, pure[h.Off:h.Off+jmpLen]):
			all = false
		default:
			return foreign
		}
	}
	switch {
	case all:
		return hooked
	case none:
		return unhooked
	}
	return foreign // half hooked: not a state we leave
}

// offsetOf reads the current offset from a blob's data.
func offsetOf(data []byte) int64 {
	seq := data[offSeq]
	return int64(binary.LittleEndian.Uint64(data[offSlots+8*int(seq&1):]))
}
