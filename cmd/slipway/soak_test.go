package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

// The soak run (make soak) is a steady load on the whole system with each
// service in its own process, as operators run it, so that memory and
// goroutines can be read per service. It is skipped unless
// SLIPWAY_SOAK_DURATION is set.
const (
	soakDurationEnv = "SLIPWAY_SOAK_DURATION"
	soakRateEnv     = "SLIPWAY_SOAK_RATE" // pushes per second
	soakRepos       = 10
	soakWindow      = 3 // samples per median at start and end
)

var soakServices = []string{"ingest", "promoter", "deployer", "notifier"}

// sample is one reading of a service's /metrics.
type sample struct {
	goroutines, heapInuse, rss float64
}

func TestSoak(t *testing.T) {
	durText := os.Getenv(soakDurationEnv)
	if durText == "" {
		t.Skip("the soak run is started by make soak (" + soakDurationEnv + ")")
	}
	duration, err := time.ParseDuration(durText)
	if err != nil || duration < time.Minute {
		t.Fatalf("%s=%q: want a duration of at least 1m", soakDurationEnv, durText)
	}
	rate := 5.0
	if s := os.Getenv(soakRateEnv); s != "" {
		if rate, err = strconv.ParseFloat(s, 64); err != nil || rate <= 0 {
			t.Fatalf("%s=%q: want pushes per second > 0", soakRateEnv, s)
		}
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "slipway")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build slipway: %v\n%s", err, out)
	}

	ns := testkit.NATS(t)
	ingestAddr := testkit.FreeAddr(t)
	hook := &auditHook{secret: []byte("hook-s3cret"), got: map[string]int{}}
	hookSrv := httptest.NewServer(hook)
	t.Cleanup(hookSrv.Close)

	envs := []string{"dev", "tst", "prd"}
	reg := map[string]*testkit.Registry{}
	marathon := map[string]*marathonServer{}
	for _, env := range envs {
		reg[env] = testkit.NewRegistry(t, testkit.RegistryOptions{
			NotifyURL:     "http://" + ingestAddr + "/webhooks/" + env + "-registry",
			RootDirectory: t.TempDir(), // keeps the images off this process's heap
		})
		marathon[env] = startMarathon(t)
		var apps []string
		for r := range soakRepos {
			apps = append(apps, fmt.Sprintf(`{"id":"/%s/svc%d","instances":1,"labels":{"slipway.policy":"all"},"container":{"type":"DOCKER","docker":{"image":"%s/apps/svc%d:0.0.0"}}}`,
				env, r, reg[env].Host, r))
		}
		marathon[env].load(t, apps...)
	}

	cfgPath := filepath.Join(dir, "slipway.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(`
nats: { url: %q }
environments:
  - { name: dev, registry: { host: %q, insecure: true } }
  - { name: tst, registry: { host: %q, insecure: true } }
  - { name: prd, registry: { host: %q, insecure: true } }
ingest:
  listen: %q
  sources:
    - { name: dev-registry, format: distribution, environment: dev, auth: { none: true } }
    - { name: tst-registry, format: distribution, environment: tst, auth: { none: true } }
    - { name: prd-registry, format: distribution, environment: prd, auth: { none: true } }
promotions:
  - { name: dev-to-tst, from: dev, to: tst, repositories: ["apps/**"] }
  - { name: tst-to-prd, from: tst, to: prd, repositories: ["apps/**"] }
clusters:
  - { name: int-dev, environment: dev, marathon: { url: %q } }
  - { name: int-tst, environment: tst, marathon: { url: %q } }
  - { name: prd, environment: prd, marathon: { url: %q } }
notify:
  receivers:
    - name: audit-hook
      webhook: { url: %q, secret: hook-s3cret }
      rateLimit: 1000 # the soak measures Slipway, not a polite sender
  routes:
    - receivers: [audit-hook]
ops: { listen: "${OPS_LISTEN}" }
`, ns.URL, reg["dev"].Host, reg["tst"].Host, reg["prd"].Host, ingestAddr,
		marathon["dev"].url, marathon["tst"].url, marathon["prd"].url, hookSrv.URL))

	metricsURL := map[string]string{}
	for _, svc := range soakServices {
		ops := "off" // ingest serves /metrics on its own listener
		metricsURL[svc] = "http://" + ingestAddr + "/metrics"
		if svc != "ingest" {
			ops = testkit.FreeAddr(t)
			metricsURL[svc] = "http://" + ops + "/metrics"
		}
		startServiceProcess(t, bin, cfgPath, svc, ops, filepath.Join(dir, svc+".log"))
	}
	for _, svc := range soakServices {
		testkit.WaitReady(t, strings.TrimSuffix(metricsURL[svc], "/metrics")+"/readyz", nil)
	}

	// The load: pushes to dev, round robin over the repositories, each with
	// the next patch version, at a steady rate.
	var pushed atomic.Int64
	last := make([]string, soakRepos) // newest tag per repository
	loadCtx, stopLoad := context.WithTimeout(t.Context(), duration)
	defer stopLoad()
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-loadCtx.Done():
				return
			case <-tick.C:
			}
			r := n % soakRepos
			tag := fmt.Sprintf("1.0.%d", n/soakRepos+1)
			if _, err := pushRandom(loadCtx, fmt.Sprintf("%s/apps/svc%d:%s", reg["dev"].Host, r, tag)); err != nil {
				if loadCtx.Err() == nil {
					t.Errorf("push: %v", err)
				}
				return
			}
			last[r] = tag
			pushed.Add(1)
		}
	}()

	// Samples every soakInterval while the load runs; the first tenth of the
	// run (at least 30 s) is warm-up: caches, connection pools and the
	// runtime's heap goal settle there.
	warmUp := max(duration/10, 30*time.Second)
	samples := map[string][]sample{}
	tick := time.NewTicker(min(max(duration/60, 2*time.Second), 10*time.Second))
	defer tick.Stop()
	start := time.Now()
sampling:
	for {
		select {
		case <-loadDone:
			break sampling
		case <-tick.C:
		}
		if time.Since(start) < warmUp {
			continue
		}
		for _, svc := range soakServices {
			s, err := scrape(metricsURL[svc])
			if err != nil {
				t.Fatalf("%s: %v", svc, err)
			}
			samples[svc] = append(samples[svc], s)
		}
	}
	<-loadDone

	// Drained when every app of every stage runs its repository's newest
	// image.
	drainStart := time.Now()
	testkit.WaitFor(t, "every app on its newest image", func() bool {
		for _, env := range envs {
			for r := range soakRepos {
				if last[r] == "" {
					continue
				}
				want := fmt.Sprintf("%s/apps/svc%d:%s", reg[env].Host, r, last[r])
				if !strings.HasPrefix(marathon[env].image(t, fmt.Sprintf("/%s/svc%d", env, r)), want) {
					return false
				}
			}
		}
		return true
	})
	drain := time.Since(drainStart)
	// Every event of the stream routes to the receiver.
	_, js := ns.Connect(t)
	var stored uint64
	testkit.WaitFor(t, "every event notified", func() bool {
		st, err := js.Stream(t.Context(), bus.DefaultStream)
		if err != nil {
			return false
		}
		stored = st.CachedInfo().State.Msgs
		hook.mu.Lock()
		defer hook.mu.Unlock()
		return uint64(len(hook.got)) >= stored
	})
	notified := time.Since(drainStart)

	t.Logf("soak: %s at %.1f pushes/s: %d pushes to dev, %d events, every app on its newest image %s and every event notified %s after the load stopped",
		duration, rate, pushed.Load(), stored, drain.Round(10*time.Millisecond), notified.Round(10*time.Millisecond))
	t.Logf("| service | goroutines start → end | heap in use start → end | RSS start → end |")
	t.Logf("|---|---|---|---|")
	for _, svc := range soakServices {
		ss := samples[svc]
		if len(ss) < 2*soakWindow {
			t.Fatalf("%s: %d samples; the run is too short to compare start and end", svc, len(ss))
		}
		first, final := median(ss[:soakWindow]), median(ss[len(ss)-soakWindow:])
		t.Logf("| %s | %.0f → %.0f | %.1f → %.1f MiB | %.1f → %.1f MiB |", svc,
			first.goroutines, final.goroutines, mib(first.heapInuse), mib(final.heapInuse), mib(first.rss), mib(final.rss))
		// Growth, not noise: a leak of one goroutine or a few KiB per event
		// over thousands of events is far beyond these margins.
		if final.goroutines > first.goroutines*1.2+10 {
			t.Errorf("%s: goroutines grew from %.0f to %.0f", svc, first.goroutines, final.goroutines)
		}
		if final.heapInuse > first.heapInuse*1.25+4<<20 {
			t.Errorf("%s: heap in use grew from %.1f to %.1f MiB", svc, mib(first.heapInuse), mib(final.heapInuse))
		}
	}
	hook.mu.Lock()
	defer hook.mu.Unlock()
	for id, n := range hook.got {
		if n > 1 {
			t.Errorf("event %s notified %d times", id, n)
		}
	}
	if hook.bad > 0 {
		t.Errorf("the receiver refused %d notifications", hook.bad)
	}
}

// startServiceProcess runs `slipway run --only svc` until the test ends
// (then SIGTERM, as a scheduler stops it).
func startServiceProcess(t *testing.T, bin, cfgPath, svc, ops, logPath string) {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", cfgPath, "--only", svc)
	cmd.Env = append(os.Environ(), "OPS_LISTEN="+ops)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("%s: %v (log: %s)", svc, err, logPath)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("%s did not stop on SIGTERM (log: %s)", svc, logPath)
		}
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("%s log (last 4 KiB):\n%s", svc, b[max(0, len(b)-4096):])
			}
		}
	})
}

// scrape reads goroutines, heap in use and resident memory from a
// Prometheus endpoint.
func scrape(url string) (sample, error) {
	resp, err := http.Get(url)
	if err != nil {
		return sample{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return sample{}, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return sample{}, fmt.Errorf("parse %s: %w", url, err)
	}
	value := func(name string) float64 {
		f, ok := fams[name]
		if !ok || len(f.GetMetric()) == 0 {
			return 0
		}
		m := f.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			return g.GetValue()
		}
		return m.GetUntyped().GetValue()
	}
	return sample{
		goroutines: value("go_goroutines"),
		heapInuse:  value("go_memstats_heap_inuse_bytes"),
		rss:        value("process_resident_memory_bytes"),
	}, nil
}

// median takes each field's median on its own, so one GC cycle's timing does
// not decide the comparison.
func median(ss []sample) sample {
	pick := func(f func(sample) float64) float64 {
		v := make([]float64, len(ss))
		for i, s := range ss {
			v[i] = f(s)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return sample{
		goroutines: pick(func(s sample) float64 { return s.goroutines }),
		heapInuse:  pick(func(s sample) float64 { return s.heapInuse }),
		rss:        pick(func(s sample) float64 { return s.rss }),
	}
}

func mib(b float64) float64 { return b / (1 << 20) }
