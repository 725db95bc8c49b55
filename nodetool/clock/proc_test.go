package clock

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	// A child the tests move the clock of: a Go program reading
	// time.Now as etcd does.
	if os.Getenv("CLOCK_TEST_PROBE") != "" {
		for {
			fmt.Println(time.Now().UnixNano())
			time.Sleep(10 * time.Millisecond)
		}
	}
	if os.Getenv("CLOCK_TEST_BENCH") != "" {
		// Times time.Now (clock_gettime REALTIME and MONOTONIC) when
		// told to on stdin, and prints ns per call.
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			const n = 2_000_000
			start := time.Now()
			for range n {
				_ = time.Now()
			}
			fmt.Println(float64(time.Since(start).Nanoseconds()) / n)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		in    string
		comm  string
		start uint64
		bad   bool
	}{
		{"1234 (etcd) S 1 1234 1234 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 12 0 98765 0 0", "etcd", 98765, false},
		{"7 (a b) c)) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 42 1 2", "a b) c)", 42, false},
		{"7 (x) R 1 2", "", 0, true},
		{"no parens", "", 0, true},
		{"7 (x) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 -5 1", "", 0, true},
	} {
		comm, start, err := parseStat([]byte(tc.in))
		if (err != nil) != tc.bad || comm != tc.comm || start != tc.start {
			t.Errorf("parseStat(%q) = %q, %d, %v", tc.in, comm, start, err)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1234 (etcd) S 1 1234 1234 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 12 0 98765 0 0"))
	f.Add([]byte("(()"))
	f.Fuzz(func(t *testing.T, b []byte) {
		comm, _, err := parseStat(b)
		if err == nil && strings.Contains(string(b), "("+comm+")") == false {
			t.Fatalf("comm %q is not in %q", comm, b)
		}
	})
}

func TestFindVDSO(t *testing.T) {
	maps := `55d0c0a00000-55d0c0a02000 r--p 00000000 08:01 1 /usr/bin/cat
7ffd1a5f1000-7ffd1a612000 rw-p 00000000 00:00 0                          [stack]
7ffd1a7ad000-7ffd1a7b1000 r--p 00000000 00:00 0                          [vvar]
7ffd1a7b1000-7ffd1a7b3000 r-xp 00000000 00:00 0                          [vdso]
`
	s, e, ok, err := findVDSO(strings.NewReader(maps))
	if err != nil || !ok || s != 0x7ffd1a7b1000 || e != 0x7ffd1a7b3000 {
		t.Fatalf("%x %x %v %v", s, e, ok, err)
	}
	if _, _, ok, err := findVDSO(strings.NewReader("00400000-00401000 r-xp 0 0:0 0 /bin/x\n")); ok || err != nil {
		t.Fatalf("no vdso: %v %v", ok, err)
	}
	for _, bad := range []string{"zz-10 r-xp 0 0:0 0 [vdso]\n", "10-5 r-xp 0 0:0 0 [vdso]\n", "10 r-xp 0 0:0 0 [vdso]\n", "0-ffffffff r-xp 0 0:0 0 [vdso]\n"} {
		if _, _, _, err := findVDSO(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func FuzzFindVDSO(f *testing.F) {
	f.Add("7ffd1a7b1000-7ffd1a7b3000 r-xp 00000000 00:00 0 [vdso]\n")
	f.Add("a-b [vdso]\n")
	f.Fuzz(func(t *testing.T, s string) {
		start, end, ok, err := findVDSO(strings.NewReader(s))
		if ok && (err != nil || end <= start || end-start > vdsoLimit) {
			t.Fatalf("%q: %x-%x %v", s, start, end, err)
		}
	})
}

func TestParsePIDs(t *testing.T) {
	ts, err := parsePIDs("12, 34")
	if err != nil || len(ts) != 2 || ts[0].pid != 12 || ts[1].pid != 34 {
		t.Fatalf("%+v %v", ts, err)
	}
	for _, bad := range []string{"", "x", "1,,2", "-3", "0"} {
		if _, err := parsePIDs(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestReadPidfile(t *testing.T) {
	dir := t.TempDir()
	pf := dir + "/pid"
	os.WriteFile(pf, []byte("123\n"), 0o644)
	os.WriteFile(pf+".start", []byte("456\n"), 0o644)
	tg, err := readPidfile(pf)
	if err != nil || tg.pid != 123 || tg.start != 456 {
		t.Fatalf("%+v %v", tg, err)
	}
	os.WriteFile(pf, []byte("abc"), 0o644)
	if _, err := readPidfile(pf); !errors.Is(err, ErrRefused) {
		t.Fatalf("garbage pidfile: %v", err)
	}
	if _, err := readPidfile(dir + "/missing"); !errors.Is(err, ErrRefused) {
		t.Fatalf("missing pidfile: %v", err)
	}
}

// startProbe runs this test binary as a probe and returns it and a
// channel of the times it prints.
func startProbe(t *testing.T) (*exec.Cmd, <-chan time.Time) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CLOCK_TEST_PROBE=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ch := make(chan time.Time, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			ns, _ := strconv.ParseInt(sc.Text(), 10, 64)
			select {
			case <-ch:
			default:
			}
			ch <- time.Unix(0, ns)
		}
	}()
	return cmd, ch
}

// skew is how far ahead the probe's next line is of this process's
// clock.
func skew(ch <-chan time.Time) time.Duration {
	<-ch // a line printed before the change, perhaps
	return time.Until(<-ch)
}

// The whole mechanism on a child process of this test (ptrace needs no
// root for one's own child): bump, read back, bump again, reset, heal;
// this process's clock never moves.
func TestMoveChildClock(t *testing.T) {
	if why := supported(); why != "" {
		t.Skip(why)
	}
	cmd, ch := startProbe(t)
	pid := cmd.Process.Pid
	c := Clock{StateDir: t.TempDir()}
	if d := skew(ch); d > time.Second || d < -time.Second {
		t.Fatalf("before: %s", d)
	}
	before, after, err := c.Bump(pid, 0, 30*time.Second)
	if errors.Is(err, ErrRefused) && strings.Contains(err.Error(), "ptrace not permitted") {
		t.Skipf("ptrace is not permitted here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if before.Hooked || !after.Hooked || after.Offset != int64(30*time.Second) {
		t.Fatalf("bump: %+v -> %+v", before, after)
	}
	if d := skew(ch); d < 29*time.Second || d > 31*time.Second {
		t.Fatalf("after +30s the child is %s ahead", d)
	}
	if _, err := os.Stat(c.recordPath(pid)); err != nil {
		t.Fatalf("no record: %v", err)
	}
	if _, after, err = c.Bump(pid, 0, -45*time.Second); err != nil || after.Offset != int64(-15*time.Second) {
		t.Fatalf("second bump: %+v %v", after, err)
	}
	if d := skew(ch); d < -16*time.Second || d > -14*time.Second {
		t.Fatalf("after +30s-45s the child is %s ahead", d)
	}
	st, err := c.Get(pid, 0)
	if err != nil || !st.Hooked || st.Offset != int64(-15*time.Second) {
		t.Fatalf("get: %+v %v", st, err)
	}
	if st, err = c.Reset(pid, 0); err != nil || st.Hooked {
		t.Fatalf("reset: %+v %v", st, err)
	}
	if d := skew(ch); d > time.Second || d < -time.Second {
		t.Fatalf("after reset: %s", d)
	}
	if _, err := os.Stat(c.recordPath(pid)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the record is left: %v", err)
	}
	// Hook again (the blob is in place), then heal from its record.
	if _, _, err := c.Set(pid, 0, time.Hour); err != nil {
		t.Fatal(err)
	}
	if d := skew(ch); d < 59*time.Minute {
		t.Fatalf("after set 1h: %s", d)
	}
	healed, err := c.Heal()
	if err != nil || len(healed) != 1 || healed[0].PID != pid {
		t.Fatalf("heal: %+v %v", healed, err)
	}
	if d := skew(ch); d > time.Second || d < -time.Second {
		t.Fatalf("after heal: %s", d)
	}
	// Heal also finds a hooked process without a record.
	if _, _, err := c.Bump(pid, 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	os.Remove(c.recordPath(pid))
	healed, err = c.Heal()
	if err != nil || len(healed) == 0 {
		t.Fatalf("heal by scan: %+v %v", healed, err)
	}
	if st, _ := c.Get(pid, 0); st.Hooked {
		t.Fatal("the scan did not reset the child")
	}
	if _, _, err := c.Bump(pid, 1, time.Second); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "not the process recorded") {
		t.Fatalf("a wrong start time: %v", err)
	}
	if _, _, err := c.Bump(os.Getpid(), 0, time.Second); !errors.Is(err, ErrRefused) {
		t.Fatalf("this process: %v", err)
	}
}

// BenchmarkTimeNow measures time.Now in a child process with its real
// vDSO (the baseline) and then hooked (offset 1 s), in the same child:
// the hook calls the original clock_gettime through its moved prologue.
func BenchmarkTimeNow(b *testing.B) {
	if why := supported(); why != "" {
		b.Skip(why)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), "CLOCK_TEST_BENCH=1")
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { in.Close(); cmd.Wait() }()
	sc := bufio.NewScanner(out)
	measure := func() float64 {
		fmt.Fprintln(in, "go")
		if !sc.Scan() {
			b.Fatal("the child died")
		}
		v, _ := strconv.ParseFloat(sc.Text(), 64)
		return v
	}
	c := Clock{StateDir: b.TempDir()}
	var real, hooked float64
	for range b.N {
		real += measure()
		if _, _, err := c.Set(cmd.Process.Pid, 0, time.Second); err != nil {
			b.Fatal(err)
		}
		hooked += measure()
		if _, err := c.Reset(cmd.Process.Pid, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(real/float64(b.N), "real-ns/now")
	b.ReportMetric(hooked/float64(b.N), "hooked-ns/now")
}
