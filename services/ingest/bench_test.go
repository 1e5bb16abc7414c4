package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/health"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/ingest"
)

// benchClients is how many senders post at once, like several registries
// (or one Distribution per replica) notifying together.
const benchClients = 32

// BenchmarkIngestVsJetStream measures ingest end to end (HTTP POST of a
// Distribution notification → auth → parse → event → JetStream publish and
// ack → 202) against the floor under it: publishing the same event bodies
// straight to JetStream with PublishMsg and waiting for the ack, at the same
// concurrency, in the same run and on the same embedded server (file
// storage). Each phase sends b.N events, each with a unique id and tag.
//
//	go test -run='^$' -bench=. -benchtime=20000x ./services/ingest/
//
// Reported: msgs/s and p50/p99 latency of each, the throughput ratio
// ingest/raw, and the process's peak RSS (VmHWM; it includes the embedded
// NATS server and both phases).
func BenchmarkIngestVsJetStream(b *testing.B) {
	ns := testkit.NATS(b)
	_, js := ns.Connect(b)
	if _, err := bus.EnsureStream(b.Context(), js, bus.StreamConfig{}); err != nil {
		b.Fatal(err)
	}
	cfg := testConfig(config.Registry{}, config.Source{
		Name: "dev-registry", Format: "distribution", Environment: "dev",
		Auth: &config.Auth{Header: &config.HeaderAuth{Name: "Authorization", Value: notifyToken}},
	})
	h, err := ingest.NewHandler(app.Deps{
		Config: cfg, Log: slog.New(slog.DiscardHandler), JS: js, Stream: bus.DefaultStream,
		Metrics: prometheus.NewRegistry(), Health: health.NewChecker(),
	})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchClients, MaxConnsPerHost: benchClients}}
	b.Cleanup(client.CloseIdleConnections)
	url := srv.URL + "/webhooks/dev-registry"

	// Everything a phase sends is built before the clock runs.
	run := strconv.FormatInt(time.Now().UnixNano(), 36) // unique across b.N rounds on one stream
	bodies := make([][]byte, b.N)
	msgs := make([]*nats.Msg, b.N)
	for i := range b.N {
		bodies[i] = envelope(distPush(fmt.Sprintf("ingest-%s-%d", run, i), "team/bench", fmt.Sprintf("i-%s-%d", run, i)))
		msgs[i] = rawMsg(b, fmt.Sprintf("raw-%s-%d", run, i), "team/bench", fmt.Sprintf("r-%s-%d", run, i))
	}

	b.ResetTimer()
	rawLat, rawDur := load(b, b.N, func(ctx context.Context, i int) error {
		ack, err := js.PublishMsg(ctx, msgs[i])
		if err == nil && ack.Duplicate {
			err = fmt.Errorf("raw event %d is a duplicate", i)
		}
		return err
	})
	inLat, inDur := load(b, b.N, func(ctx context.Context, i int) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(bodies[i]))
		req.Header.Set("Authorization", notifyToken)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusAccepted || !strings.Contains(string(body), `"accepted":1`) {
			return fmt.Errorf("webhook %d: %d %s", i, resp.StatusCode, body)
		}
		return nil
	})
	b.StopTimer()

	inRate := float64(b.N) / inDur.Seconds()
	rawRate := float64(b.N) / rawDur.Seconds()
	b.ReportMetric(inRate, "ingest-msgs/s")
	b.ReportMetric(ms(percentile(inLat, 50)), "ingest-p50-ms")
	b.ReportMetric(ms(percentile(inLat, 99)), "ingest-p99-ms")
	b.ReportMetric(rawRate, "raw-msgs/s")
	b.ReportMetric(ms(percentile(rawLat, 50)), "raw-p50-ms")
	b.ReportMetric(ms(percentile(rawLat, 99)), "raw-p99-ms")
	b.ReportMetric(inRate/rawRate, "ingest/raw")
	if kb, ok := peakRSSKiB(); ok {
		b.ReportMetric(float64(kb)/1024, "peak-RSS-MiB")
	}
}

// rawMsg is the message ingest would store for the same push.
func rawMsg(b *testing.B, upstreamID, repo, tag string) *nats.Msg {
	digest := digestOf(repo + ":" + tag)
	now := time.Now().UTC()
	e, err := events.New(context.Background(), events.Spec{
		ID:          events.ID("image.pushed", "dev", devHost, repo, tag, digest),
		Type:        events.TypeImagePushed,
		Source:      "/slipway/ingest/dev-registry",
		Environment: "dev",
		Subject:     events.ImageReference(devHost, repo, tag, digest),
		Time:        now,
		Data: events.ImagePushed{Environment: "dev", Registry: devHost, Repository: repo, Tag: tag, Digest: digest,
			MediaType: manifestType, Size: 423, Actor: "ci-bot", Source: "dev-registry", Format: "distribution",
			UpstreamID: upstreamID, PushedAt: now},
	})
	if err != nil {
		b.Fatal(err)
	}
	m, err := events.ToMsg(e)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// load runs send for 0..n-1 on benchClients goroutines and returns each
// call's latency and the wall time of the whole.
func load(b *testing.B, n int, send func(ctx context.Context, i int) error) ([]time.Duration, time.Duration) {
	ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
	defer cancel()
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	start := time.Now()
	for range benchClients {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || failed.Load() != nil {
					return
				}
				t0 := time.Now()
				if err := send(ctx, i); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	return lat, elapsed
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// peakRSSKiB reads the process's peak resident set (VmHWM) on Linux.
func peakRSSKiB() (int64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb, err == nil
		}
	}
	return 0, false
}
