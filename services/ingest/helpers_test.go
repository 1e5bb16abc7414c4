package ingest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
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

// waitTimeout bounds every wait on something that happens asynchronously
// (a registry's notification, a reconnect): a deadline, not a sleep.
const waitTimeout = 30 * time.Second

// devHost is the dev environment's registry host in configurations whose
// registry is not a running one.
const devHost = "registry.dev.example:5000"

// rig is ingest served by httptest on 127.0.0.1 against an embedded
// JetStream with the SLIPWAY stream.
type rig struct {
	nats    *testkit.NATSServer
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  jetstream.Stream
	metrics *prometheus.Registry
	srv     *httptest.Server
	// codes receives the status of every webhook answer, when not nil.
	codes chan int
	// log is the service's logger (default: discarded unless
	// INGEST_TEST_LOG is set).
	log *slog.Logger
	// setHandler finishes what listen started.
	setHandler func(t *testing.T, cfg *config.Config)
}

// newRig starts NATS and the stream; call serve with a configuration.
func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{nats: testkit.NATS(t), metrics: prometheus.NewRegistry(), log: testLogger()}
	r.nc, r.js = r.nats.Connect(t)
	var err error
	if r.stream, err = bus.EnsureStream(t.Context(), r.js, bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) deps(cfg *config.Config) app.Deps {
	return app.Deps{
		Config:  cfg,
		Log:     r.log,
		JS:      r.js,
		Stream:  bus.DefaultStream,
		Metrics: r.metrics,
		Health:  health.NewChecker(),
	}
}

// serve starts the ingest handler for cfg on a new httptest server. The
// server is created first so that its URL can go into a registry's
// notification endpoint before the configuration naming that registry
// exists; setHandler finishes it.
func (r *rig) serve(t *testing.T, cfg *config.Config) *httptest.Server {
	t.Helper()
	r.listen(t)
	r.setHandler(t, cfg)
	return r.srv
}

func (r *rig) listen(t *testing.T) {
	t.Helper()
	var h http.Handler = http.NotFoundHandler()
	ready := make(chan struct{})
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		<-ready
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, req)
		if r.codes != nil && strings.HasPrefix(req.URL.Path, "/webhooks/") {
			r.codes <- rec.code
		}
	}))
	t.Cleanup(r.srv.Close)
	r.setHandler = func(t *testing.T, cfg *config.Config) {
		t.Helper()
		var err error
		if h, err = ingest.NewHandler(r.deps(cfg)); err != nil {
			t.Fatal(err)
		}
		close(ready)
	}
}

// runService runs the ingest service itself (its own listener, HTTPS when
// cfg says so) on a free loopback port until the test ends. It returns the
// address and stop, which ends Run and returns what Run returned.
func (r *rig) runService(t *testing.T, cfg *config.Config) (string, func() error) {
	t.Helper()
	cfg.Ingest.Listen = "127.0.0.1:0"
	d := r.deps(cfg)
	d.Metrics = prometheus.NewRegistry() // a service's metrics register once per registry
	addr := make(chan net.Addr, 1)
	svc := ingest.New()
	svc.Listening = func(a net.Addr) { addr <- a }
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx, d) }()
	stop := sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(waitTimeout):
			return errors.New("Run did not return after cancel")
		}
	})
	t.Cleanup(func() { _ = stop() })
	select {
	case a := <-addr:
		return a.String(), stop
	case err := <-done:
		t.Fatalf("Run: %v", err)
		return "", nil
	}
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func testLogger() *slog.Logger {
	if os.Getenv("INGEST_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// config returns a configuration with the environments dev (registry
// devHost unless given) and prd, and sources.
func testConfig(devRegistry config.Registry, sources ...config.Source) *config.Config {
	if devRegistry.Host == "" {
		devRegistry.Host = devHost
	}
	return &config.Config{
		Environments: []config.Environment{
			{Name: "dev", Registry: devRegistry},
			{Name: "prd", Registry: config.Registry{Host: "registry.prd.example"}},
		},
		Ingest: config.Ingest{Sources: sources},
	}
}

func none() *config.Auth { return &config.Auth{None: true} }

// post sends body to path and returns the status and the decoded JSON body.
func post(t *testing.T, url string, body []byte, header http.Header) (int, map[string]any, http.Header) {
	t.Helper()
	return postWith(t, http.DefaultClient, url, body, header)
}

// postWith is post with a given client (TLS, client certificates).
func postWith(t *testing.T, client *http.Client, url string, body []byte, header http.Header) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/vnd.docker.distribution.events.v2+json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("answer %d is not JSON: %q", resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, m, resp.Header
}

// counts is the 202 body {"accepted":N,"duplicates":N,"ignored":N}.
func counts(accepted, duplicates, ignored int) map[string]any {
	return map[string]any{"accepted": float64(accepted), "duplicates": float64(duplicates), "ignored": float64(ignored)}
}

// digestOf is a made-up manifest digest, stable for a seed.
func digestOf(seed string) string {
	s := sha256.Sum256([]byte(seed))
	return "sha256:" + hex.EncodeToString(s[:])
}

// distEvent is one event of a Distribution notification envelope.
func distEvent(id, action, mediaType, repo, tag, digest string) map[string]any {
	target := map[string]any{
		"mediaType":  mediaType,
		"digest":     digest,
		"size":       423,
		"length":     423,
		"repository": repo,
		"url":        "http://" + devHost + "/v2/" + repo + "/manifests/" + digest,
	}
	if tag != "" {
		target["tag"] = tag
	}
	return map[string]any{
		"id":        id,
		"timestamp": "2026-11-21T22:35:34.685355418Z",
		"action":    action,
		"target":    target,
		"request":   map[string]any{"id": "req-" + id, "addr": "127.0.0.1:55768", "host": devHost, "method": "PUT", "useragent": "test"},
		"actor":     map[string]any{"name": "ci-bot"},
		"source":    map[string]any{"addr": "registry-0:5000"},
	}
}

const manifestType = "application/vnd.docker.distribution.manifest.v2+json"

// distPush is a tagged manifest push.
func distPush(id, repo, tag string) map[string]any {
	return distEvent(id, "push", manifestType, repo, tag, digestOf(repo+":"+tag))
}

func envelope(evs ...map[string]any) []byte {
	b, err := json.Marshal(map[string]any{"events": evs})
	if err != nil {
		panic(err)
	}
	return b
}

// storedEvents returns every event in the stream, in order. Ingest answers
// 202 only after the acks, so after a 202 the stream is complete.
func storedEvents(t *testing.T, s jetstream.Stream) []events.Event {
	t.Helper()
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Event
	if info.State.Msgs == 0 {
		return nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatalf("get message %d: %v", seq, err)
		}
		e, err := events.FromMsg(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func pushedData(t *testing.T, e events.Event) events.ImagePushed {
	t.Helper()
	d, err := events.DataAs[events.ImagePushed](e)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// waitConnected returns once nc is connected again after a NATS restart
// (reconnected is nc.StatusChanged(nats.CONNECTED), taken before the
// shutdown) and JetStream answers for the stream. testkit's Restart returns
// after the server recovered its streams, so one request suffices.
func waitConnected(t *testing.T, nc *nats.Conn, reconnected <-chan nats.Status, js jetstream.JetStream) {
	t.Helper()
	if !nc.IsConnected() {
		select {
		case <-reconnected:
		case <-time.After(waitTimeout):
			t.Fatal("NATS client did not reconnect")
		}
	}
	if _, err := js.Stream(t.Context(), bus.DefaultStream); err != nil {
		t.Fatalf("stream not back after restart: %v", err)
	}
}
