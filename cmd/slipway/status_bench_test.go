package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
)

// inventoryRecord is the i-th of a benchmark's inventory records, as the
// deployer writes them for a fleet of many teams: 1 to 4 instances on as
// many agents, a digest, the event of the last deployment for 9 in 10 of
// them, a drift now and then.
func inventoryRecord(cluster, env string, i int) inventory.Record {
	id := fmt.Sprintf("/%s/team-%02d/svc-%04d", env, i%40, i)
	dig := "sha256:" + events.ID(cluster, id)[:8] + fmt.Sprintf("%056d", i)
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	n := 1 + i%4
	r := inventory.Record{
		Cluster: cluster, Environment: env, AppID: id, Platform: "marathon",
		Image:  fmt.Sprintf("registry.%s.example:443/team-%02d/svc-%04d:1.%d.0@%s", env, i%40, i, i%7, dig),
		Digest: dig, Policy: "minor", Revision: at.Format(time.RFC3339Nano), MarathonVersion: at.Format(time.RFC3339Nano),
		Wanted: n, Running: n, Healthy: n - i%5/4, UpdatedAt: at, PushedAt: at.Add(-time.Minute),
	}
	for a := range n {
		r.Nodes = append(r.Nodes, fmt.Sprintf("agent-%d.%s.example", (i+a)%12, cluster))
	}
	if i%10 != 0 {
		r.EventID = events.ID("image.pushed", cluster, id)
	}
	if i%97 == 0 {
		r.Drift = "docker.io/library/nginx:1.27"
	}
	return r
}

// writeInventory writes the records of 5,000 workloads on three clusters
// into the inventory bucket, as deployers would.
func writeInventory(b *testing.B, inv *inventory.Store) {
	b.Helper()
	type cl struct {
		name, env string
		n         int
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, c := range []cl{{"azure-int", "int", 1700}, {"dcos-tst", "tst", 1700}, {"dcos-prd", "prd", 1600}} {
		wg.Go(func() {
			for i := range c.n {
				if err := inv.Put(b.Context(), inventoryRecord(c.name, c.env, i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// countingWriter counts what a command prints.
type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// BenchmarkStatus5000: `slipway status` over an inventory of 5,000
// workloads on three clusters, end to end as a user runs it (dial NATS,
// read the bucket, filter, print), in each format and with a filter; in
// process (allocations per run) and as the built binary (wall time with
// the process start, peak RSS). The baselines, in the same run, read the
// 5,000 KV entries alone: one pass of a watch over the bucket (the floor),
// and a listing of the keys followed by a Get per key.
func BenchmarkStatus5000(b *testing.B) {
	ns := testkit.NATS(b)
	_, js := ns.Connect(b)
	inv, err := inventory.Open(b.Context(), js, 1)
	if err != nil {
		b.Fatal(err)
	}
	writeInventory(b, inv)
	kv, err := js.KeyValue(b.Context(), inventory.Bucket)
	if err != nil {
		b.Fatal(err)
	}

	b.Run("kv/watch-all", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if n := readAll(b, kv); n != 5000 {
				b.Fatalf("read %d entries, want 5000", n)
			}
		}
	})
	b.Run("kv/keys+get", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			lister, err := kv.ListKeys(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for key := range lister.Keys() {
				if _, err := kv.Get(b.Context(), key); err != nil {
					b.Fatal(err)
				}
				n++
			}
			if n != 5000 {
				b.Fatalf("read %d entries, want 5000", n)
			}
		}
	})
	// What `slipway status` reads the bucket with: the reading and the
	// decoding of every record.
	b.Run("kv/inventory.List", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			records, err := inv.List(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			if len(records) != 5000 {
				b.Fatalf("listed %d records, want 5000", len(records))
			}
		}
	})

	for _, v := range statusVariants() {
		b.Run("cli/"+v.name, func(b *testing.B) {
			if v.skip != "" {
				b.Skip(v.skip)
			}
			b.ReportAllocs()
			var out countingWriter
			for range b.N {
				out.n = 0
				var errOut countingWriter
				if code := cli(b.Context(), append([]string{"status", "--nats", ns.URL}, v.args...), &out, &errOut); code != 0 {
					b.Fatalf("slipway status %v: exit %d", v.args, code)
				}
			}
			b.ReportMetric(float64(out.n)/1024, "out-KiB")
		})
	}

	bin := filepath.Join(b.TempDir(), "slipway")
	if out, err := exec.CommandContext(b.Context(), "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	// The floor of a process: `slipway version` starts the binary and
	// prints a line.
	variants := append([]statusVariant{{name: "version-only", cmd: "version"}}, statusVariants()...)
	for _, v := range variants {
		b.Run("process/"+v.name, func(b *testing.B) {
			if v.skip != "" {
				b.Skip(v.skip)
			}
			var rss int64
			for range b.N {
				args := append([]string{"status", "--nats", ns.URL}, v.args...)
				if v.cmd != "" {
					args = []string{v.cmd}
				}
				kib, err := runMeasured(b.Context(), bin, args...)
				if err != nil {
					b.Fatal(err)
				}
				rss = max(rss, kib)
			}
			if rss > 0 {
				b.ReportMetric(float64(rss)/1024, "peak-RSS-MiB")
			}
		})
	}
}

// runMeasured runs the binary with args and returns its peak RSS in KiB,
// or 0 where GNU time is not installed to tell it. The rusage Go's own
// wait returns is no use here: Go starts processes with vfork, so the
// child's maximum RSS includes the parent's (this benchmark's) at the
// start. GNU time forks, and reports the child's alone.
func runMeasured(ctx context.Context, bin string, args ...string) (kib int64, err error) {
	var out countingWriter
	var errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	if gnuTime, lerr := exec.LookPath("/usr/bin/time"); lerr == nil {
		cmd = exec.CommandContext(ctx, gnuTime, append([]string{"-f", "peak-rss-kib=%M", bin}, args...)...)
	}
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("slipway %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	if _, v, ok := strings.Cut(errOut.String(), "peak-rss-kib="); ok {
		kib, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	}
	return kib, nil
}

// readAll reads every entry of the bucket once, as one watch delivers
// them, and returns how many it read.
func readAll(b *testing.B, kv jetstream.KeyValue) int {
	b.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), time.Minute)
	defer cancel()
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = w.Stop() }()
	n := 0
	for e := range w.Updates() {
		if e == nil {
			return n // the end of the values there were
		}
		n++
	}
	b.Fatal("the watch ended before delivering every entry")
	return n
}

type statusVariant struct {
	name string
	args []string
	// cmd replaces `status --nats URL ARGS` when set.
	cmd string
	// skip says why the variant cannot run: a flag it needs is not there.
	skip string
}

// statusVariants are the outputs a user asks for: the table, JSON, CSV,
// and the table of one environment.
func statusVariants() []statusVariant {
	flags := statusCmd().Flags()
	has := func(name string) string {
		if flags.Lookup(name) == nil {
			return "slipway status has no --" + name
		}
		return ""
	}
	json := statusVariant{name: "json", args: []string{"--json"}}
	if has("format") == "" {
		json.args = []string{"--format", "json"}
	}
	return []statusVariant{
		{name: "table"},
		json,
		{name: "csv", args: []string{"--format", "csv"}, skip: has("format")},
		{name: "env-prd", args: []string{"--env", "prd"}, skip: has("env")},
	}
}
