package checker

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/go-jepsen/jepsen/history"
)

// porcupineDir finds porcupine's module in the module cache: its
// test_data/jepsen holds 102 real Jepsen etcd histories (MIT licensed,
// from github.com/ahorn/linearizability-checker), and its tests say which
// are linearizable.
func porcupineDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/anishathalye/porcupine").Output()
	if err != nil {
		t.Fatalf("finding porcupine's module: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		t.Fatal("porcupine's module is not in the module cache (go mod download)")
	}
	return dir
}

// Every Jepsen etcd history porcupine ships gets porcupine's own
// expected verdict through the same path `jepsen check` takes.
func TestPorcupineJepsenHistories(t *testing.T) {
	dir := porcupineDir(t)
	src, err := os.ReadFile(filepath.Join(dir, "porcupine_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]bool{}
	for _, m := range regexp.MustCompile(`checkJepsen\(t, (\d+), (true|false)\)`).FindAllStringSubmatch(string(src), -1) {
		n, _ := strconv.Atoi(m[1])
		want[n] = m[2] == "true"
	}
	if len(want) < 100 {
		t.Fatalf("found %d expected verdicts in porcupine's tests", len(want))
	}
	valid, invalid := 0, 0
	for n, ok := range want {
		path := filepath.Join(dir, "test_data", "jepsen", "etcd_"+strconv.FormatInt(int64(1000+n), 10)[1:]+".log")
		res, err := CheckFile(context.Background(), path, Linearizable{Model: CASRegister}, Options{})
		if err != nil {
			t.Errorf("etcd_%03d: %v", n, err)
			continue
		}
		got := res.Valid == Valid
		if res.Valid == Unknown || got != ok {
			t.Errorf("etcd_%03d: %s (%s), porcupine says linearizable=%t", n, res.Valid, res.Summary, ok)
		}
		if ok {
			valid++
		} else {
			invalid++
		}
	}
	t.Logf("%d histories: %d linearizable, %d not, as porcupine says", len(want), valid, invalid)
	if _, f, err := history.ReadAny(filepath.Join(dir, "test_data", "jepsen", "etcd_000.log")); err != nil || f != history.JepsenLog {
		t.Fatalf("format %s, %v", f, err)
	}
}
