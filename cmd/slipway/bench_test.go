package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/health"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
	"github.com/slipway-cd/slipway/services/ingest"
	"github.com/slipway-cd/slipway/tools/marathon-emulator/emulator"
)

const benchRegistry = "registry.bench.example:5000"

// putWatch wraps Marathon and tells when PUTs of apps arrive.
type putWatch struct {
	next    http.Handler
	mu      sync.Mutex
	arrived map[string]chan time.Time // app path → arrival
}

func (p *putWatch) expect(appPath string) chan time.Time {
	ch := make(chan time.Time, 1)
	p.mu.Lock()
	p.arrived[appPath] = ch
	p.mu.Unlock()
	return ch
}

func (p *putWatch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut {
		now := time.Now()
		p.mu.Lock()
		ch := p.arrived[strings.TrimPrefix(r.URL.Path, "/v2/apps")]
		delete(p.arrived, strings.TrimPrefix(r.URL.Path, "/v2/apps"))
		p.mu.Unlock()
		if ch != nil {
			ch <- now
		}
	}
	p.next.ServeHTTP(w, r)
}

// pipeline is ingest and the deployer in one process, on an embedded NATS,
// in front of one emulated Marathon.
type pipeline struct {
	webhook string
	puts    *putWatch
	client  *http.Client
}

func startPipeline(b *testing.B, apps []string) *pipeline {
	ns := testkit.NATS(b)
	_, js := ns.Connect(b)
	emu := emulator.New(emulator.Options{DeployDuration: 10 * time.Millisecond})
	if err := emu.Load([]byte("[" + strings.Join(apps, ",") + "]")); err != nil {
		b.Fatal(err)
	}
	pw := &putWatch{next: emu.Handler(), arrived: map[string]chan time.Time{}}
	marathon := httptest.NewServer(pw)
	b.Cleanup(func() { marathon.Close(); emu.Close() })

	cfg, err := config.Parse([]byte(fmt.Sprintf(`
nats: { url: %q }
environments: [ { name: dev, registry: { host: %q } } ]
ingest: { sources: [ { name: dev-registry, format: distribution, environment: dev, auth: { none: true } } ] }
clusters: [ { name: bench, environment: dev, marathon: { url: %q } } ]
deployer: { reconcileInterval: 1h }
`, ns.URL, benchRegistry, marathon.URL)), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	if _, err := bus.EnsureStream(b.Context(), js, cfg.StreamConfig()); err != nil {
		b.Fatal(err)
	}
	deps := app.Deps{Config: cfg, Log: slog.New(slog.DiscardHandler), JS: js, Stream: bus.DefaultStream,
		Metrics: prometheus.NewRegistry(), Health: health.NewChecker()}
	h, err := ingest.NewHandler(deps)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- deployer.New().Run(ctx, deps) }()
	b.Cleanup(func() { cancel(); <-done })
	testkit.WaitFor(b, "the deployer's consumer", func() bool {
		_, err := js.Consumer(b.Context(), bus.DefaultStream, deployer.ConsumerName("bench"))
		return err == nil
	})
	// The first reconcile records every app in the inventory; let it finish
	// so that it does not run alongside the measurements.
	testkit.WaitFor(b, "the baseline inventory", func() bool {
		kv, err := js.KeyValue(b.Context(), inventory.Bucket)
		if err != nil {
			return false
		}
		st, err := kv.Status(b.Context())
		return err == nil && st.Values() >= uint64(len(apps))
	})
	return &pipeline{webhook: srv.URL + "/webhooks/dev-registry", puts: pw, client: &http.Client{}}
}

// push posts a Distribution notification of repo:tag.
func (p *pipeline) push(b *testing.B, repo, tag string) {
	dig := "sha256:" + fmt.Sprintf("%064x", time.Now().UnixNano())
	body := fmt.Sprintf(`{"events":[{"id":%q,"timestamp":%q,"action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":700,"repository":%q,"tag":%q},"request":{"host":%q},"actor":{"name":"bench"}}]}`,
		dig, time.Now().UTC().Format(time.RFC3339Nano), dig, repo, tag, benchRegistry)
	resp, err := p.client.Post(p.webhook, "application/vnd.docker.distribution.events.v2+json", bytes.NewBufferString(body))
	if err != nil {
		b.Fatal(err)
	}
	reply, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b.Fatalf("webhook: %d %s", resp.StatusCode, reply)
	}
}

func benchApp(id, repo string) string {
	return fmt.Sprintf(`{"id":%q,"instances":1,"labels":{"slipway.policy":"all"},"container":{"type":"DOCKER","docker":{"image":"%s/%s:1.0.0"}}}`, id, benchRegistry, repo)
}

// BenchmarkWebhookToMarathonPut measures the time from a registry's webhook
// to the PUT of the app's new image arriving at Marathon, one push at a
// time, with 50 and with 5,000 opted-in apps on the cluster: finding the
// apps is an index lookup, so the two should not differ.
//
//	go test -run='^$' -bench=WebhookToMarathonPut -benchtime=400x ./cmd/slipway/
func BenchmarkWebhookToMarathonPut(b *testing.B) {
	for _, n := range []int{50, 5000} {
		b.Run(fmt.Sprintf("apps=%d", n), func(b *testing.B) {
			apps := make([]string, n)
			for i := range apps {
				apps[i] = benchApp(fmt.Sprintf("/bench/app-%d", i), fmt.Sprintf("bench/app-%d", i))
			}
			p := startPipeline(b, apps)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				app := i % n
				arrived := p.puts.expect(fmt.Sprintf("/bench/app-%d", app))
				start := time.Now()
				p.push(b, fmt.Sprintf("bench/app-%d", app), fmt.Sprintf("1.0.%d", 1+i/n))
				select {
				case at := <-arrived:
					lat = append(lat, at.Sub(start))
				case <-time.After(30 * time.Second):
					b.Fatalf("no PUT for app %d within 30s", app)
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
			b.ReportMetric(ms(lat[min(len(lat)-1, len(lat)*99/100)]), "p99-ms")
		})
	}
}

// BenchmarkFanOut measures one push of an image that 200 apps run: the
// time until every app's PUT has reached Marathon.
//
//	go test -run='^$' -bench=FanOut -benchtime=5x ./cmd/slipway/
func BenchmarkFanOut(b *testing.B) {
	const n = 200
	apps := make([]string, n)
	for i := range apps {
		apps[i] = benchApp(fmt.Sprintf("/fan/app-%d", i), "bench/shared")
	}
	p := startPipeline(b, apps)
	var total []time.Duration
	b.ResetTimer()
	for i := range b.N {
		arrived := make([]chan time.Time, n)
		for a := range n {
			arrived[a] = p.puts.expect(fmt.Sprintf("/fan/app-%d", a))
		}
		start := time.Now()
		p.push(b, "bench/shared", fmt.Sprintf("2.0.%d", i))
		var last time.Time
		for a := range n {
			select {
			case at := <-arrived[a]:
				if at.After(last) {
					last = at
				}
			case <-time.After(60 * time.Second):
				b.Fatalf("no PUT for app %d within 60s", a)
			}
		}
		total = append(total, last.Sub(start))
	}
	b.StopTimer()
	slices.Sort(total)
	b.ReportMetric(ms(total[len(total)/2]), "all-200-puts-p50-ms")
	b.ReportMetric(ms(total[len(total)-1]), "all-200-puts-max-ms")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
