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
	"github.com/nats-io/nats.go/jetstream"
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
	js, srv, client := benchServer(b, testConfig(config.Registry{}, config.Source{
		Name: "dev-registry", Format: "distribution", Environment: "dev",
		Auth: &config.Auth{Header: &config.HeaderAuth{Name: "Authorization", Value: notifyToken}},
	}))
	url := srv.URL + "/webhooks/dev-registry"

	// Everything a phase sends is built before the clock runs.
	run := strconv.FormatInt(time.Now().UnixNano(), 36) // unique across b.N rounds on one stream
	bodies := make([][]byte, b.N)
	msgs := make([]*nats.Msg, b.N)
	for i := range b.N {
		bodies[i] = envelope(distPush(fmt.Sprintf("ingest-%s-%d", run, i), "team/bench", fmt.Sprintf("i-%s-%d", run, i)))
		msgs[i] = rawMsg(b, fmt.Sprintf("raw-%s-%d", run, i), "team/bench", fmt.Sprintf("r-%s-%d", run, i))
	}

	// The floor HTTP itself puts under ingest on this machine: the same
	// client, concurrency and body size against a handler that only reads
	// the body and answers 202.
	floor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"accepted":1,"duplicates":0,"ignored":0}` + "\n"))
	}))
	b.Cleanup(floor.Close)

	b.ResetTimer()
	_, floorDur := load(b, b.N, func(ctx context.Context, i int) error {
		return postAccepted(ctx, client, floor.URL, bodies[i])
	})
	rawLat, rawDur := load(b, b.N, func(ctx context.Context, i int) error {
		ack, err := js.PublishMsg(ctx, msgs[i])
		if err == nil && ack.Duplicate {
			err = fmt.Errorf("raw event %d is a duplicate", i)
		}
		return err
	})
	inLat, inDur := load(b, b.N, func(ctx context.Context, i int) error {
		return postAccepted(ctx, client, url, bodies[i])
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
	b.ReportMetric(float64(b.N)/floorDur.Seconds(), "http-floor-msgs/s")
}

// floodSenders is how many goroutines send bad deliveries at once in
// BenchmarkGoodWebhookUnderFlood.
const floodSenders = 8

// BenchmarkGoodWebhookUnderFlood measures what a flood of bad deliveries
// costs the good ones: b.N good webhooks (header auth, benchClients at
// once) on a quiet server, then b.N more while floodSenders goroutines send,
// as fast as they are answered, wrong HMAC signatures (401 after reading
// the body), deliveries without credentials (401 before reading it) and
// bodies over ingest.maxBodyBytes (413 on Content-Length). Same server,
// same stream, same run.
//
//	go test -run '^$' -bench GoodWebhookUnderFlood -benchtime 3s ./services/ingest
//
// Reported: p50/p99 latency and msgs/s of the good webhooks in each phase,
// and the bad requests answered per second during the flood.
func BenchmarkGoodWebhookUnderFlood(b *testing.B) {
	_, srv, client := benchServer(b, floodConfig())
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	bodies := make([][]byte, 2*b.N)
	for i := range bodies {
		bodies[i] = envelope(distPush(fmt.Sprintf("good-%s-%d", run, i), "team/bench", fmt.Sprintf("g-%s-%d", run, i)))
	}
	good := func(offset int) func(ctx context.Context, i int) error {
		return func(ctx context.Context, i int) error {
			return postAccepted(ctx, client, srv.URL+"/webhooks/header", bodies[offset+i])
		}
	}

	b.ResetTimer()
	quietLat, quietDur := load(b, b.N, good(0))

	ctx, cancel := context.WithCancel(b.Context())
	var floodWG sync.WaitGroup
	var answered, failed, unexpected atomic.Int64
	badBody := envelope(distPush("bad", "team/bench", "bad"))
	oversized := bytes.Repeat([]byte("x"), floodMaxBody+1)
	flood := []struct {
		source string
		body   []byte
		header http.Header
		want   int
	}{
		{"signed", badBody, http.Header{"X-Hub-Signature-256": {signHMAC(append(slices.Clone(badBody), ' '))}}, http.StatusUnauthorized},
		{"header", badBody, nil, http.StatusUnauthorized},
		{"header", oversized, http.Header{"Authorization": {notifyToken}}, http.StatusRequestEntityTooLarge},
	}
	floodClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: floodSenders}}
	b.Cleanup(floodClient.CloseIdleConnections)
	floodStart := time.Now()
	for s := range floodSenders {
		floodWG.Go(func() {
			for i := s; ctx.Err() == nil; i++ {
				f := flood[i%len(flood)]
				code, _, err := postCode(ctx, floodClient, srv.URL+"/webhooks/"+f.source, f.body, f.header)
				switch {
				case ctx.Err() != nil:
				case err != nil:
					// A sender still writing a refused body may see the
					// connection close under it.
					failed.Add(1)
				case code != f.want:
					unexpected.Add(1)
				default:
					answered.Add(1)
				}
			}
		})
	}
	floodLat, floodDur := load(b, b.N, good(b.N))
	cancel()
	floodWG.Wait()
	floodElapsed := time.Since(floodStart)
	b.StopTimer()
	if n := unexpected.Load(); n > 0 {
		b.Fatalf("%d bad deliveries got another answer than 401/413", n)
	}

	b.ReportMetric(ms(percentile(quietLat, 50)), "quiet-p50-ms")
	b.ReportMetric(ms(percentile(quietLat, 99)), "quiet-p99-ms")
	b.ReportMetric(float64(b.N)/quietDur.Seconds(), "quiet-msgs/s")
	b.ReportMetric(ms(percentile(floodLat, 50)), "flood-p50-ms")
	b.ReportMetric(ms(percentile(floodLat, 99)), "flood-p99-ms")
	b.ReportMetric(float64(b.N)/floodDur.Seconds(), "flood-msgs/s")
	b.ReportMetric(float64(answered.Load())/floodElapsed.Seconds(), "bad-req/s")
	b.ReportMetric(float64(failed.Load()), "bad-conn-errors")
}

// benchServer serves ingest for cfg on httptest against an embedded
// JetStream, with a client for benchClients senders at once.
func benchServer(b *testing.B, cfg *config.Config) (jetstream.JetStream, *httptest.Server, *http.Client) {
	ns := testkit.NATS(b)
	_, js := ns.Connect(b)
	if _, err := bus.EnsureStream(b.Context(), js, bus.StreamConfig{}); err != nil {
		b.Fatal(err)
	}
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
	return js, srv, client
}

// postAccepted sends one Distribution notification and expects it accepted.
func postAccepted(ctx context.Context, client *http.Client, url string, body []byte) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Authorization", notifyToken)
	req.Header.Set("Content-Type", "application/vnd.docker.distribution.events.v2+json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted || !strings.Contains(string(reply), `"accepted":1`) {
		return fmt.Errorf("webhook: %d %s", resp.StatusCode, reply)
	}
	return nil
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

// peakRSSKiB reads a process's peak resident set (VmHWM) on Linux.
func peakRSSKiB(pid int) (int64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
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
