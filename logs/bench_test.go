package logs_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/go-jepsen/jepsen"
	"github.com/go-jepsen/jepsen/control"
	"github.com/go-jepsen/jepsen/db"
	"github.com/go-jepsen/jepsen/logs"
	"github.com/go-jepsen/jepsen/testkit/sandboxtest"
)

// Log collection on 5 sandbox nodes with 200 MB of logs each (text, as
// logs are), beside the usual shell alternatives measured in the same
// run on the same files (%moved: the bytes that crossed, of the raw):
//
//	sudo go test ./store -run '^$' -bench . -benchtime 3x
var benv = sandboxtest.New("stb", "10.66.105.0/24", 5)

func TestMain(m *testing.M) { benv.Main(m) }

const logDir = "/var/log/benchdb"

type logDB struct{}

func (logDB) Setup(context.Context, *jepsen.Test, string) error    { return nil }
func (logDB) Teardown(context.Context, *jepsen.Test, string) error { return nil }
func (logDB) LogFiles(context.Context, *jepsen.Test, string) ([]db.LogFile, error) {
	return []db.LogFile{{Remote: logDir}}, nil
}

var once sync.Once

// prepare writes 4 files of 50 MB of varied log lines on every node.
func prepare(b *testing.B) *jepsen.Test {
	t := benv.Test(b, "bench", control.Options{})
	var err error
	once.Do(func() {
		_, err = control.OnNodes(context.Background(), t.Nodes, control.Fanout{Mode: control.WaitAll}, func(ctx context.Context, n string) (string, error) {
			return t.Session(n).Exec(ctx, control.Raw(`mkdir -p `+logDir+` && cd `+logDir+` && for f in 1 2 3 4; do
  awk -v n=$f 'BEGIN { srand(n); for (i = 0; i < 520000; i++) printf "2026-11-26T02:%02d:%02d.%06dZ INFO [raft] node n%d term %d index %d applied %d entries (%s)\n", i%60, (i*7)%60, i*13%1000000, n, i/1000, i, int(rand()*100), substr("abcdefghijklmnopqrstuvwxyz", int(rand()*20)+1, 6) }' > db-$f.log
done; du -sm .`))
		})
		// Written logs are flushed before anything is timed: writeback of
		// 1 GB would otherwise slow whichever benchmark runs first.
		if err == nil {
			err = exec.Command("sync").Run()
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	return t
}

func BenchmarkCollectLogs(b *testing.B) {
	for _, c := range []string{logs.CompressFast, logs.CompressNone, logs.CompressBest} {
		b.Run(c, func(b *testing.B) { benchCollect(b, c) })
	}
}

func benchCollect(b *testing.B, compression string) {
	t := prepare(b)
	b.SetBytes(5 * 200 << 20)
	for b.Loop() {
		dir := b.TempDir()
		m, err := logs.CollectLogs(context.Background(), t, logDB{}, dir, logs.CollectOpts{Compression: compression})
		if err != nil {
			b.Fatal(err)
		}
		if m.Nodes[4].Files[0].Size < 190<<20 {
			b.Fatalf("collected %d bytes", m.Nodes[4].Files[0].Size)
		}
		var moved, raw int64
		for _, n := range m.Nodes {
			moved += n.BytesMoved
			raw += n.Bytes
		}
		b.ReportMetric(100*float64(moved)/float64(raw), "%moved")
		os.RemoveAll(dir)
	}
}

// parallel runs one shell pipeline per node at once.
func parallel(b *testing.B, cmd func(node, dir string) string) {
	for b.Loop() {
		dir := b.TempDir()
		var wg sync.WaitGroup
		errs := make([]error, 5)
		for i := 1; i <= 5; i++ {
			wg.Go(func() {
				n := fmt.Sprintf("n%d", i)
				os.MkdirAll(filepath.Join(dir, n), 0o755)
				if out, err := exec.Command("sh", "-c", cmd(n, filepath.Join(dir, n))).CombinedOutput(); err != nil {
					errs[i-1] = fmt.Errorf("%s: %v: %s", n, err, out)
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		os.RemoveAll(dir)
	}
}

func BenchmarkParallelSCP(b *testing.B) {
	prepare(b)
	cfg := benv.Get(b).SSHConfig()
	b.SetBytes(5 * 200 << 20)
	parallel(b, func(n, dir string) string { return fmt.Sprintf("scp -q -r -F %s %s:%s %s/", cfg, n, logDir, dir) })
}

func BenchmarkParallelSCPCompressed(b *testing.B) {
	prepare(b)
	cfg := benv.Get(b).SSHConfig()
	b.SetBytes(5 * 200 << 20)
	parallel(b, func(n, dir string) string { return fmt.Sprintf("scp -C -q -r -F %s %s:%s %s/", cfg, n, logDir, dir) })
}

func BenchmarkParallelSSHTarGz(b *testing.B) {
	prepare(b)
	cfg := benv.Get(b).SSHConfig()
	b.SetBytes(5 * 200 << 20)
	parallel(b, func(n, dir string) string {
		return fmt.Sprintf("ssh -F %s %s 'tar czf - -C / %s' | tar xzf - -C %s", cfg, n, logDir[1:], dir)
	})
}

func BenchmarkParallelSSHTarZstd(b *testing.B) {
	prepare(b)
	cfg := benv.Get(b).SSHConfig()
	b.SetBytes(5 * 200 << 20)
	parallel(b, func(n, dir string) string {
		return fmt.Sprintf("ssh -F %s %s 'tar cf - -C / %s | zstd -1 -T0' | zstd -dc | tar xf - -C %s", cfg, n, logDir[1:], dir)
	})
}
