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
// (embedded in the benchmark's process, file storage), three processes
// under the same load: Distribution notifications (one push each, unique
// ids) from benchClients senders at once.
//
//  1. bridge: internal/minbridge, the least an honest webhook-to-JetStream
//     bridge does (header check, bounded read, decode, one small JSON event,
//     publish with Nats-Msg-Id, wait for the ack, 202);
//  2. ingest: the ingest binary, configured as in production with header
//     auth and no trace exporter;
//  3. ingest-otlp: the same, exporting its spans over OTLP/HTTP to a
//     receiver in the benchmark's process that decodes every request.
//
// All three run from the start; each gets benchWarmup webhooks, then the
// measured ones (SLIPWAY_BENCH_WEBHOOKS, 20,000 by default, whatever b.N)
// in benchRounds blocks taken in turn, in a rotating order, so that a
// machine that slows down or speeds up during the run (a shared virtual
// machine does) weighs on each alike. Reported per process: msgs/s (webhooks
// over the time its blocks took), p50/p99 latency, peak RSS (VmHWM), CPU
// time per webhook (user and system, from /proc), its throughput over the
// bridge's, and for ingest the mean wait for JetStream's ack (from its
// /metrics); and the CPU per webhook of the benchmark's own process
// (senders and NATS), which they all share the two cores with.
//
//	go test -run='^$' -bench=IngestVsBridge -benchtime=1x ./services/ingest/
//
// SLIPWAY_BENCH_PPROF=DIR also writes each process's CPU profile, taken
// over SLIPWAY_BENCH_PPROF_SECONDS (3 by default) of extra load after the
// measured blocks, its allocation profile and its heap statistics into DIR
// (ops.pprof on). SLIPWAY_BENCH_INGEST_BASELINE=BINARY adds a fourth
// process, another ingest binary (built from an earlier commit, say), for a
// before and after in the same run.
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
	n := benchWebhooks(b)

	var spans atomic.Int64
	receiver := httptest.NewServer(otlpReceiver(b, &spans))
	b.Cleanup(receiver.Close)

	ingest := func(name, bin string, env ...string) *benchProc {
		addr := testkit.FreeAddr(b)
		cfg := filepath.Join(dir, name+".yaml")
		writeIngestConfig(b, cfg, ns.URL, addr, profileDir != "")
		cmd := exec.Command(bin, "--config", cfg)
		cmd.Env = append(os.Environ(), env...)
		return &benchProc{name: name, addr: addr, path: "/webhooks/dev-registry", cmd: cmd}
	}
	subject, _ := events.Subject(events.TypeImagePushed, "dev")
	bridgeAddr := testkit.FreeAddr(b)
	procs := []*benchProc{
		{name: "bridge", addr: bridgeAddr, path: "/webhook",
			cmd: exec.Command(bridgeBin, "-listen", bridgeAddr, "-nats", ns.URL, "-subject", subject, "-token", notifyToken)},
		ingest("ingest", ingestBin, "OTEL_TRACES_EXPORTER=none"),
		ingest("ingest-otlp", ingestBin, "OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="+receiver.URL+"/v1/traces"),
	}
	if baseline := os.Getenv("SLIPWAY_BENCH_INGEST_BASELINE"); baseline != "" {
		procs = append(procs, ingest("ingest-baseline", baseline, "OTEL_TRACES_EXPORTER=none"))
	}
	for _, p := range procs {
		p.start(b)
		p.send(b, benchWarmup, "warm")
	}

	self0 := cpuTime(b, os.Getpid())
	b.ResetTimer()
	for round := range benchRounds {
		for i := range procs {
			p := procs[(round+i)%len(procs)]
			p.measure(b, n/benchRounds)
		}
	}
	b.StopTimer()
	// The benchmark's own process over the measured blocks: what the bridge
	// or ingest shares the two cores with.
	self := cpuTime(b, os.Getpid()) - self0

	bridge := procs[0]
	for _, p := range procs {
		b.ReportMetric(p.rate(), p.name+"-msgs/s")
		b.ReportMetric(ms(percentile(p.lat, 50)), p.name+"-p50-ms")
		b.ReportMetric(ms(percentile(p.lat, 99)), p.name+"-p99-ms")
		b.ReportMetric(p.cpuPerWebhook(), p.name+"-CPU-us/webhook")
		if p != bridge {
			b.ReportMetric(p.rate()/bridge.rate(), p.name+"/bridge")
		}
	}
	b.ReportMetric(float64(self.Microseconds())/float64(len(procs)*n), "senders+nats-CPU-us/webhook")
	for _, p := range procs {
		if wait, ok := p.meanAckWait(b); ok {
			b.ReportMetric(ms(wait), p.name+"-ack-wait-ms")
		}
	}
	// The spans the receiver got: a server and a producer span per webhook
	// when none is dropped (the batch processor drops what its queue cannot
	// hold, and the last batch may still be in flight).
	b.ReportMetric(float64(spans.Load())/float64(n+benchWarmup), "spans/webhook")

	for _, p := range procs {
		if kb, ok := peakRSSKiB(p.cmd.Process.Pid); ok {
			b.ReportMetric(float64(kb)/1024, p.name+"-RSS-MiB")
		}
	}
	if profileDir != "" {
		for _, p := range procs {
			p.profile(b, profileDir)
		}
	}
}

const (
	// benchWarmup is how many webhooks each process gets before the clock
	// runs (connections, lazily built state).
	benchWarmup = 2000
	// benchRounds is how many blocks the measured webhooks come in.
	benchRounds = 10
)

// benchWebhooks is how many webhooks each process gets measured:
// SLIPWAY_BENCH_WEBHOOKS, 20,000 by default.
func benchWebhooks(b *testing.B) int {
	n := 20000
	if s := os.Getenv("SLIPWAY_BENCH_WEBHOOKS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < benchRounds {
			b.Fatalf("SLIPWAY_BENCH_WEBHOOKS=%q: a number of at least %d", s, benchRounds)
		}
	}
	return n
}

// benchProc is one process under load and what was measured of it.
type benchProc struct {
	name, addr, path string
	cmd              *exec.Cmd
	client           *http.Client
	sent             int // bodies built so far, for unique ids

	lat  []time.Duration // of every measured webhook
	busy time.Duration   // wall time of the measured blocks
	cpu  time.Duration   // the process's CPU time during them
}

func (p *benchProc) start(b *testing.B) {
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		_ = p.cmd.Wait()
	})
	p.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchClients, MaxConnsPerHost: benchClients}}
	b.Cleanup(p.client.CloseIdleConnections)
	waitListening(b, "http://"+p.addr)
}

// send posts count webhooks (built before the clock runs) and returns
// their latencies and the wall time they took.
func (p *benchProc) send(b *testing.B, count int, kind string) ([]time.Duration, time.Duration) {
	b.StopTimer()
	bodies := make([][]byte, count)
	for i := range bodies {
		id := fmt.Sprintf("%s-%s-%d-%d", p.name, kind, time.Now().UnixNano(), p.sent+i)
		bodies[i] = envelope(distPush(id, "team/bench", id))
	}
	p.sent += count
	b.StartTimer()
	url := "http://" + p.addr + p.path
	return load(b, count, func(ctx context.Context, i int) error { return postAccepted(ctx, p.client, url, bodies[i]) })
}

// measure sends one block of count webhooks and adds up what it cost.
func (p *benchProc) measure(b *testing.B, count int) {
	cpu0 := cpuTime(b, p.cmd.Process.Pid)
	lat, dur := p.send(b, count, "n")
	p.cpu += cpuTime(b, p.cmd.Process.Pid) - cpu0
	p.lat = append(p.lat, lat...)
	p.busy += dur
}

func (p *benchProc) rate() float64 { return float64(len(p.lat)) / p.busy.Seconds() }

func (p *benchProc) cpuPerWebhook() float64 {
	return float64(p.cpu.Microseconds()) / float64(len(p.lat))
}

// meanAckWait is how long an ingest process waited, on average, from
// publishing an event to JetStream's ack (slipway_ingest_publish_seconds,
// over every webhook it got); false for a process without that metric.
func (p *benchProc) meanAckWait(b *testing.B) (time.Duration, bool) {
	resp, err := http.Get("http://" + p.addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	var sum, count float64
	for line := range strings.Lines(string(text)) {
		if v, ok := strings.CutPrefix(line, "slipway_ingest_publish_seconds_sum "); ok {
			sum, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
		if v, ok := strings.CutPrefix(line, "slipway_ingest_publish_seconds_count "); ok {
			count, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if count == 0 {
		return 0, false
	}
	return time.Duration(sum / count * float64(time.Second)), true
}

// profile takes the process's CPU profile under more of the same load, then
// its allocation profile and heap statistics, into dir.
func (p *benchProc) profile(b *testing.B, dir string) {
	base := "http://" + p.addr
	done := make(chan struct{})
	go func() {
		defer close(done)
		fetchProfile(b, base+"/debug/pprof/profile?seconds="+profileSeconds(), filepath.Join(dir, p.name+".cpu.pprof"))
	}()
	for {
		select {
		case <-done:
			fetchProfile(b, base+"/debug/pprof/allocs", filepath.Join(dir, p.name+".allocs.pprof"))
			fetchProfile(b, base+"/debug/pprof/heap?debug=1", filepath.Join(dir, p.name+".heap.txt"))
			return
		default:
			p.send(b, 1000, "profile")
		}
	}
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
