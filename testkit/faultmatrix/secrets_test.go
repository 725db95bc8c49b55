package faultmatrix

import (
	"bufio"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/control/cu"
	jssh "github.com/go-jepsen/jepsen/control/ssh"
	"github.com/go-jepsen/jepsen/store"
)

const (
	loginPW = "Login-pw-7f3a9c"
	sudoPW  = loginPW // sudo asks for the user's own password
	user    = "jfault"
)

// rules are the sudo rule of each node the secrets tests use.
var rules = map[string]string{"n4": "nopasswd", "n5": "password"}

// passwordNodes prepares n4 and n5 for an unprivileged login user with a
// password: the user, its sudo rule, and a second sshd on port 2222 that
// takes passwords. It returns a nodes file for them.
func passwordNodes(t *testing.T) string {
	t.Helper()
	info := env.Get(t)
	root := env.Test(t, "pwsetup", control.Options{})
	ctx := context.Background()
	script, _ := os.ReadFile("testdata/add-user.sh")
	cfg, _ := os.ReadFile("testdata/pw_sshd_config")
	nf := control.NodesFile{Remote: "ssh", SSH: jssh.Settings{User: user}.Raw()}
	for node, rule := range rules {
		s := root.Session(node).Su()
		if _, err := s.Exec(ctx, control.Script{Name: "add-user.sh", Text: string(script), Args: []string{user, loginPW, rule}}); err != nil {
			t.Fatal(err)
		}
		if err := cu.WriteFile(ctx, s, "/etc/ssh/pw_sshd_config", cfg, cu.WriteFileOpts{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cu.StartDaemon(ctx, s, cu.DaemonOpts{Logfile: "/var/log/pw_sshd.log", Pidfile: "/run/pw_sshd.pid"},
			"/usr/sbin/sshd", "-D", "-e", "-f", "/etc/ssh/pw_sshd_config"); err != nil {
			t.Fatal(err)
		}
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := cu.AwaitTCPPort(actx, s, 2222, cu.AwaitOpts{Pidfile: "/run/pw_sshd.pid", Logfile: "/var/log/pw_sshd.log"})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range info.Nodes {
		if _, ok := rules[n.Name]; ok {
			nf.Nodes = append(nf.Nodes, control.NodeAddr{Name: n.Name, Address: n.Addr.String(), Port: 2222})
		}
	}
	b, _ := nf.Marshal()
	path := filepath.Join(t.TempDir(), "nodes.json")
	os.WriteFile(path, b, 0o644)
	return path
}

// (6, h) The sudo password reaches sudo alone, with a NOPASSWD rule (n4)
// and with a password rule (n5): a command's stdin is its own, Upload
// under sudo works, and neither password shows in output or errors.
func TestSudoPasswordReachesSudoAlone(t *testing.T) {
	nodesFile := passwordNodes(t)
	nodes, r, err := jssh.Load(nodesFile, jssh.Config{Password: loginPW, InsecureIgnoreHostKey: true, NoAgent: true})
	if err != nil {
		t.Fatal(err)
	}
	tt, err := jepsen.New("sudo", nodes, r, control.Options{SudoPassword: sudoPW})
	if err != nil {
		t.Fatal(err)
	}
	defer tt.Close()
	ctx := context.Background()
	local := filepath.Join(t.TempDir(), "payload")
	os.WriteFile(local, []byte("payload\n"), 0o600)
	for _, node := range nodes {
		t.Run(node+"-"+rules[node], func(t *testing.T) {
			s := tt.Session(node)
			if out, err := s.Exec(ctx, "id", "-un"); err != nil || out != user {
				t.Fatalf("login: %q %v", out, err)
			}
			su := s.Su()
			if out, err := su.Exec(ctx, "id", "-un"); err != nil || out != "root" {
				t.Fatalf("sudo: %q %v", out, err)
			}
			if out, err := su.Exec(ctx, "cat"); err != nil || out != "" {
				t.Fatalf("cat with no stdin got %q (%v): the password reached the command", out, err)
			}
			if out, err := su.ExecIn(ctx, []byte("mine\n"), "cat"); err != nil || out != "mine" {
				t.Fatalf("cat got %q (%v)", out, err)
			}
			if err := su.Upload(ctx, local, "/opt/payload"); err != nil {
				t.Fatalf("upload under sudo: %v", err)
			}
			if out, err := su.Exec(ctx, "cat", "/opt/payload"); err != nil || out != "payload" {
				t.Fatalf("uploaded: %q %v", out, err)
			}
			_, err := su.ExecIn(ctx, []byte("x\n"), control.Raw("cat; echo "+loginPW+" >&2; exit 3"))
			if err == nil || strings.Contains(err.Error(), loginPW) {
				t.Fatalf("a failing command: %v", err)
			}
		})
	}
	// A wrong sudo password: refused, and no password shows.
	bad, _ := jepsen.New("sudo", nodes, r, control.Options{SudoPassword: "Wrong-pw-00"})
	defer bad.Close()
	_, err = bad.Session("n5").Su().Exec(ctx, "true")
	if err == nil || strings.Contains(err.Error(), "Wrong-pw-00") || strings.Contains(err.Error(), loginPW) {
		t.Fatalf("wrong sudo password: %v", err)
	}
}

// (h) A whole CLI run as the unprivileged user, with the login password
// and the sudo password on its command line, both sudo rules, faults, and
// one run that fails (a wrong sudo password): neither password is in
// stdout, stderr, or any file of the run directories.
func TestSecretsNeverLeak(t *testing.T) {
	nodesFile := passwordNodes(t)
	bin := filepath.Join(t.TempDir(), "jepsen")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/jepsen").CombinedOutput(); err != nil {
		t.Fatalf("build: %v: %s", err, out)
	}
	storeDir := t.TempDir()
	common := []string{"--nodes-file", nodesFile, "--username", user, "--password", loginPW, "--strict-host-key-checking=false"}
	var outputs []string
	run := func(args ...string) int {
		full := append(append([]string{args[0]}, common...), args[1:]...)
		if args[0] == "run" {
			full = append(full, "--store", storeDir)
		}
		cmd := exec.Command(bin, full...)
		out, err := cmd.CombinedOutput()
		outputs = append(outputs, string(out))
		code := 0
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			code = ee.ExitCode()
		}
		t.Logf("jepsen %s: exit %d\n%s", args[0], code, out)
		return code
	}
	if code := run("run", "--db", "etcd", "--sudo-password", sudoPW, "--time-limit", "6s", "--interval", "1500ms", "--test-name", "secrets"); code != 0 {
		logFailedEvents(t, storeDir)
		t.Fatalf("the run failed (exit %d)", code)
	}
	if code := run("run", "--db", "etcd", "--sudo-password", "Wrong-"+sudoPW, "--time-limit", "2s", "--faults", "none", "--test-name", "secrets-bad"); code == 0 {
		t.Fatal("a run with a wrong sudo password succeeded")
	}
	if code := run("exec", "--sudo-password", sudoPW, "--", "echo", "hello"); code != 0 {
		t.Fatalf("exec failed (exit %d)", code)
	}
	for i, out := range outputs {
		if strings.Contains(out, loginPW) {
			t.Errorf("output %d holds the password", i)
		}
	}
	files := 0
	filepath.WalkDir(storeDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), loginPW) {
			t.Errorf("%s holds the password", p)
		}
		return nil
	})
	if files < 10 {
		t.Fatalf("only %d files in the store", files)
	}
}

// (c) SIGINT to the real CLI late in a run, while it kills the DB before
// collecting logs: the cleanup goes on, the result is "interrupted", the
// exit status 130, and nothing is left on the nodes.
func TestLateSIGINTIsNotSwallowed(t *testing.T) {
	info := env.Get(t)
	bin := filepath.Join(t.TempDir(), "jepsen")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/jepsen").CombinedOutput(); err != nil {
		t.Fatalf("build: %v: %s", err, out)
	}
	storeDir := t.TempDir()
	cmd := exec.Command(bin, "run", "--db", "etcd", "--nodes-file", info.NodesFile(), "--faults", "none", "--time-limit", "2s", "--store", storeDir)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(stdout)
	signalled := false
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if !signalled && strings.Contains(sc.Text(), "killing the DB before collecting logs") {
			cmd.Process.Signal(syscall.SIGINT)
			signalled = true
		}
	}
	err := cmd.Wait()
	all := strings.Join(lines, "\n")
	ee, ok := errors.AsType[*exec.ExitError](err)
	if !signalled || !ok || ee.ExitCode() != 130 {
		t.Fatalf("exit %v (signalled %t):\n%s", err, signalled, all)
	}
	for _, want := range []string{"collecting logs", "tearing down the DB", "result: FAILED (interrupted)"} {
		if !strings.Contains(all, want) {
			t.Fatalf("output lacks %q:\n%s", want, all)
		}
	}
	tt := env.Test(t, "late", control.Options{})
	for _, n := range tt.Nodes {
		out, err := tt.Session(n).Exec(context.Background(), control.Raw("ls -d /opt/etcd 2>/dev/null; pgrep -x etcd || true"))
		if err != nil || out != "" {
			t.Fatalf("%s after the interrupted run: %q %v", n, out, err)
		}
		if fi, err := os.Stat(filepath.Join(storeDir, "etcd", "latest", n, "etcd.log")); err != nil || fi.Size() == 0 {
			t.Fatalf("%s's log: %v", n, err)
		}
	}
}

// logFailedEvents logs every journal event under dir that records an
// error, so that a failed run says which step or fault failed and why.
func logFailedEvents(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != store.JournalFile {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"error":`) {
				t.Logf("%s: %s", filepath.Base(filepath.Dir(p)), sc.Text())
			}
		}
		return nil
	})
}
