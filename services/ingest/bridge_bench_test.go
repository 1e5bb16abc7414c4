package ingest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

// BenchmarkIngestVsBridge runs, in one run and against one NATS server
// (embedded in the benchmark's process, file storage), three processes one
// after the other under the same load: b.N Distribution notifications (one
// push each, unique ids) from benchClients senders at once.
//
//  1. bridge: internal/minbridge, the least an honest webhook-to-JetStream
//     bridge does (header check, bounded read, decode, one small JSON event,
//     publish with Nats-Msg-Id, wait for the ack, 202);
//  2. ingest: the ingest binary, configured as in production with header
//     auth and no trace exporter;
//  3. ingest-otlp: the same, exporting its spans over OTLP/HTTP to a
//     receiver in the benchmark's process that decodes every request.
//
// Each process gets benchWarmup webhooks first (connections, lazily built
// state), then the measured b.N. Reported per process: msgs/s, p50/p99
// latency, peak RSS (VmHWM), CPU time per webhook (user and system, from
// /proc), and its throughput over the bridge's; and the CPU per webhook of
// the benchmark's own process (senders and NATS), which all share the two
// cores with.
//
//	go test -run='^$' -bench=IngestVsBridge -benchtime=20000x ./services/ingest/
//
// SLIPWAY_BENCH_PPROF=DIR also writes each process's CPU profile of the
// measured phase (SLIPWAY_BENCH_PPROF_SECONDS long, 3 by default), its
// allocation profile and its heap statistics into DIR (ops.pprof on).
// SLIPWAY_BENCH_INGEST_BASELINE=BINARY adds a fourth phase with another
// ingest binary (built from an earlier commit), for a before and after.
func BenchmarkIngestVsBridge(b *testing.B) {
	ns := testkit.NATS(b)
	_, js := ns.Connect(b)
	if _, err := bus.EnsureStream(b.Context(), js, bus.StreamConfig{}); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	ingestBin := buildBinary(b, dir, "ingest", "./cmd/ingest")
	bridgeBin := buildBinary(b, dir, "minbridge", "./internal/minbridge")
	profileDir := os.Getenv("SLIPWAY_BENCH_PPROF")

	var spans atomic.Int64
	receiver := httptest.NewServer(otlpReceiver(b, &spans))
	b.Cleanup(receiver.Close)

	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	type result struct {
		rate     float64
		p50, p99 time.Duration
		rssMiB   float64
		cpuUS    float64 // the process's CPU time (user+system) per webhook
	}
	phase := func(name string, start func(addr string) *exec.Cmd, path string) result {
		addr := testkit.FreeAddr(b)
		cmd := start(addr)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}()
		base := "http://" + addr
		waitListening(b, base)
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchClients, MaxConnsPerHost: benchClients}}
		defer client.CloseIdleConnections()
		bodies := func(n int, kind string) [][]byte {
			out := make([][]byte, n)
			for i := range out {
				id := fmt.Sprintf("%s-%s-%s-%d", name, kind, run, i)
				out[i] = envelope(distPush(id, "team/bench", id))
			}
			return out
		}
		warm, measured := bodies(benchWarmup, "warm"), bodies(b.N, "n")
		send := func(set [][]byte) func(ctx context.Context, i int) error {
			return func(ctx context.Context, i int) error { return postAccepted(ctx, client, base+path, set[i]) }
		}
		if profileDir != "" {
			fetchProfile(b, base+"/debug/pprof/heap?debug=1", filepath.Join(profileDir, name+".idle.heap.txt"))
		}
		load(b, len(warm), send(warm))

		profiled := make(chan struct{})
		if profileDir != "" {
			go func() {
				defer close(profiled)
				fetchProfile(b, base+"/debug/pprof/profile?seconds="+profileSeconds(), filepath.Join(profileDir, name+".cpu.pprof"))
			}()
		} else {
			close(profiled)
		}
		cpu0 := cpuTime(b, cmd.Process.Pid)
		lat, dur := load(b, b.N, send(measured))
		cpu := cpuTime(b, cmd.Process.Pid) - cpu0
		<-profiled
		if profileDir != "" {
			fetchProfile(b, base+"/debug/pprof/allocs", filepath.Join(profileDir, name+".allocs.pprof"))
			fetchProfile(b, base+"/debug/pprof/heap?debug=1", filepath.Join(profileDir, name+".heap.txt"))
		}
		r := result{rate: float64(b.N) / dur.Seconds(), p50: percentile(lat, 50), p99: percentile(lat, 99),
			cpuUS: float64(cpu.Microseconds()) / float64(b.N)}
		if kb, ok := peakRSSKiB(cmd.Process.Pid); ok {
			r.rssMiB = float64(kb) / 1024
		}
		return r
	}

	ingestCmd := func(bin string, env ...string) func(addr string) *exec.Cmd {
		return func(addr string) *exec.Cmd {
			cfg := filepath.Join(dir, "slipway-"+strconv.Itoa(len(env))+".yaml")
			writeIngestConfig(b, cfg, ns.URL, addr, profileDir != "")
			cmd := exec.Command(bin, "--config", cfg)
			cmd.Env = append(os.Environ(), env...)
			return cmd
		}
	}
	subject, _ := events.Subject(events.TypeImagePushed, "dev")
	phases := []struct {
		name  string
		start func(addr string) *exec.Cmd
		path  string
	}{
		{"bridge", func(addr string) *exec.Cmd {
			return exec.Command(bridgeBin, "-listen", addr, "-nats", ns.URL, "-subject", subject, "-token", notifyToken)
		}, "/webhook"},
		{"ingest", ingestCmd(ingestBin, "OTEL_TRACES_EXPORTER=none"), "/webhooks/dev-registry"},
		{"ingest-otlp", ingestCmd(ingestBin,
			"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="+receiver.URL+"/v1/traces"), "/webhooks/dev-registry"},
	}
	// SLIPWAY_BENCH_INGEST_BASELINE=BINARY adds an ingest binary built from
	// another commit, for a before-and-after in the same run.
	if baseline := os.Getenv("SLIPWAY_BENCH_INGEST_BASELINE"); baseline != "" {
		phases = append(phases, struct {
			name  string
			start func(addr string) *exec.Cmd
			path  string
		}{"ingest-baseline", ingestCmd(baseline, "OTEL_TRACES_EXPORTER=none"), "/webhooks/dev-registry"})
	}

	results := map[string]result{}
	self0 := cpuTime(b, os.Getpid())
	b.ResetTimer()
	for _, ph := range phases {
		results[ph.name] = phase(ph.name, ph.start, ph.path)
	}
	b.StopTimer()
	// The benchmark's own process (senders and the NATS server) over all
	// phases, warm-ups included: what the bridge or ingest shares the two
	// cores with.
	self := cpuTime(b, os.Getpid()) - self0

	bridge := results["bridge"]
	for _, ph := range phases {
		r := results[ph.name]
		b.ReportMetric(r.rate, ph.name+"-msgs/s")
		b.ReportMetric(ms(r.p50), ph.name+"-p50-ms")
		b.ReportMetric(ms(r.p99), ph.name+"-p99-ms")
		b.ReportMetric(r.rssMiB, ph.name+"-RSS-MiB")
		b.ReportMetric(r.cpuUS, ph.name+"-CPU-us/webhook")
		if ph.name != "bridge" {
			b.ReportMetric(r.rate/bridge.rate, ph.name+"/bridge")
		}
	}
	b.ReportMetric(float64(self.Microseconds())/float64(len(phases)*(b.N+benchWarmup)), "senders+nats-CPU-us/webhook")
	// The spans the receiver got: a server and a producer span per webhook
	// when none is dropped (the batch processor drops what its queue cannot
	// hold, and the last batch may still be in flight at the end).
	b.ReportMetric(float64(spans.Load())/float64(b.N+benchWarmup), "spans/webhook")
}

// cpuTime is the CPU time (user and system) a process has used so far,
// from /proc/PID/stat, whose utime and stime are in clock ticks (100 a
// second on Linux: 10 ms steps, well below a phase's seconds of CPU).
func cpuTime(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is the first, utime the 12th, stime the 13th.
	rest := string(data[bytes.LastIndexByte(data, ')')+2:])
	f := strings.Fields(rest)
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %q", pid, rest)
	}
	const tick = 10 * time.Millisecond
	return time.Duration(utime+stime) * tick
}

// benchWarmup is how many webhooks each process gets before the clock runs.
const benchWarmup = 2000

// buildBinary builds a main package of this module into dir.
func buildBinary(b *testing.B, dir, name, pkg string) string {
	bin := filepath.Join(dir, name)
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		b.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// writeIngestConfig is the production shape of a Distribution source.
func writeIngestConfig(b *testing.B, path, natsURL, addr string, pprof bool) {
	cfg := fmt.Sprintf(`
nats: { url: %q }
environments: [ { name: dev, registry: { host: %q } } ]
ingest:
  listen: %q
  sources:
    - name: dev-registry
      format: distribution
      environment: dev
      auth: { header: { name: Authorization, value: %q } }
log: { level: info }
ops: { pprof: %t }
`, natsURL, devHost, addr, notifyToken, pprof)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
}

// waitListening waits until addr answers HTTP at all (the bridge has no
// /readyz; ingest's 404 for a GET on the webhook path is an answer too).
func waitListening(b *testing.B, base string) {
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNotFound {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s did not answer within a minute: %v", base, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fetchProfile saves a pprof endpoint's answer to path.
func fetchProfile(b *testing.B, url, path string) {
	resp, err := http.Get(url)
	if err != nil {
		b.Error(err)
		return
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		b.Errorf("%s: %d %s", url, resp.StatusCode, data)
		return
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Error(err)
	}
}

// otlpReceiver is an OTLP/HTTP trace endpoint: it decodes each export
// request (protobuf) and counts its spans, as a collector would accept them.
func otlpReceiver(b *testing.B, spans *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rd io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, "bad gzip", http.StatusBadRequest)
				return
			}
			rd = zr
		}
		body, err := io.ReadAll(rd)
		var req coltrace.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &req)
		}
		if err != nil || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			b.Errorf("OTLP receiver: %s %s %q: %v", r.Method, r.URL.Path, r.Header.Get("Content-Type"), err)
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				spans.Add(int64(len(ss.Spans)))
			}
		}
		out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	})
}

// profileSeconds is how long the CPU profile runs: SLIPWAY_BENCH_PPROF_SECONDS,
// 3 by default; keep it under the measured phase's duration.
func profileSeconds() string {
	if s := os.Getenv("SLIPWAY_BENCH_PPROF_SECONDS"); s != "" {
		return s
	}
	return "3"
}
