package notifier_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/health"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/notifier"
	"github.com/slipway-cd/slipway/services/notifier/notify/webhook"
)

// deadline bounds how long a test waits for a service to stop.
const deadline = 30 * time.Second

// hookSecret signs every test receiver's requests.
const hookSecret = "hook-secret"

// hook is a webhook receiver as a user would write one: it rejects
// requests that are not POSTed structured CloudEvents with a valid, fresh
// signature (webhook.Verify), and answers the others as the test says.
type hook struct {
	t   *testing.T
	srv *httptest.Server

	mu sync.Mutex
	// requests are the valid requests, in arrival order.
	requests []request
	// invalid counts requests the receiver rejected: a test expects none.
	invalid int
	// answer decides the status of the n-th (1-based) valid request.
	answer func(w http.ResponseWriter, n int, e events.Event) int
}

type request struct {
	body   []byte
	event  events.Event
	status int
}

func newHook(t *testing.T, answer func(w http.ResponseWriter, n int, e events.Event) int) *hook {
	t.Helper()
	h := &hook{t: t, answer: answer}
	if h.answer == nil {
		h.answer = func(http.ResponseWriter, int, events.Event) int { return http.StatusOK }
	}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) reject(w http.ResponseWriter, status int, why string) {
	h.mu.Lock()
	h.invalid++
	h.mu.Unlock()
	h.t.Errorf("webhook receiver rejected a request: %s", why)
	http.Error(w, why, status)
}

func (h *hook) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	switch {
	case err != nil:
		h.reject(w, http.StatusBadRequest, err.Error())
		return
	case r.Method != http.MethodPost:
		h.reject(w, http.StatusMethodNotAllowed, r.Method)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != events.ContentType {
		h.reject(w, http.StatusUnsupportedMediaType, "content type "+r.Header.Get("Content-Type"))
		return
	}
	if err := webhook.Verify([]byte(hookSecret), r.Header.Get(webhook.SignatureHeader), body, time.Now(), time.Minute); err != nil {
		h.reject(w, http.StatusUnauthorized, err.Error())
		return
	}
	e, err := events.FromMsg(body)
	if err != nil {
		h.reject(w, http.StatusBadRequest, err.Error())
		return
	}
	h.mu.Lock()
	n := len(h.requests) + 1
	h.requests = append(h.requests, request{body: body, event: e})
	h.mu.Unlock()
	status := h.answer(w, n, e)
	h.mu.Lock()
	h.requests[n-1].status = status
	h.mu.Unlock()
	w.WriteHeader(status)
}

// all returns the valid requests so far.
func (h *hook) all() []request {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]request, len(h.requests))
	copy(out, h.requests)
	return out
}

// delivered returns the ids of the events accepted (2xx), in order.
func (h *hook) delivered() []string {
	var ids []string
	for _, r := range h.all() {
		if r.status >= 200 && r.status < 300 {
			ids = append(ids, r.event.ID())
		}
	}
	return ids
}

// env is NATS with the stream, and the configuration of a notifier.
type env struct {
	t       *testing.T
	js      jetstream.JetStream
	cfg     *config.Config
	pub     *bus.Publisher
	metrics *prometheus.Registry
}

// newEnv parses the notify part of the configuration (YAML, indented as
// under "notify:").
func newEnv(t *testing.T, notify string) *env {
	t.Helper()
	ns := testkit.NATS(t)
	_, js := ns.Connect(t)
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
nats: { url: %q }
environments: [ { name: dev, registry: { host: "registry.dev.example" } }, { name: prd, registry: { host: "registry.prd.example" } } ]
notify:
%s`, ns.URL, notify)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.EnsureStream(t.Context(), js, cfg.StreamConfig()); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, js: js, cfg: cfg, pub: bus.NewPublisher(js, bus.DefaultStream), metrics: prometheus.NewRegistry()}
}

// start runs svc until the returned stop is called (or the test ends), once
// the consumers of every receiver exist.
func (e *env) start(svc *notifier.Service) (stop func()) {
	e.t.Helper()
	return e.startWith(svc, appDeps(e))
}

// startWith is start with the process's dependencies given (a test's own
// logger, say).
func (e *env) startWith(svc *notifier.Service, d app.Deps) (stop func()) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx, d) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					e.t.Errorf("notifier: %v", err)
				}
			case <-time.After(deadline):
				e.t.Error("notifier did not stop")
			}
		})
	}
	e.t.Cleanup(stop)
	for _, r := range e.cfg.Notify.Receivers {
		testkit.WaitFor(e.t, "consumer of receiver "+r.Name, func() bool {
			select {
			case err := <-done:
				e.t.Fatalf("notifier stopped: %v", err)
			default:
			}
			_, err := e.js.Consumer(e.t.Context(), bus.DefaultStream, notifier.ConsumerName(r.Name))
			return err == nil
		})
	}
	return stop
}

// appDeps is what the process would hand the notifier.
func appDeps(e *env) app.Deps {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("NOTIFIER_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return app.Deps{Config: e.cfg, Log: log, JS: e.js, Stream: bus.DefaultStream, Metrics: e.metrics, Health: health.NewChecker()}
}

// publish stores events and returns them.
func (e *env) publish(evs ...events.Event) []events.Event {
	e.t.Helper()
	for _, ev := range evs {
		if _, err := e.pub.Publish(e.t.Context(), ev); err != nil {
			e.t.Fatal(err)
		}
	}
	return evs
}

// drained waits until every receiver's consumer has settled every event
// of the stream.
func (e *env) drained() {
	e.t.Helper()
	testkit.WaitFor(e.t, "every receiver to settle every event", func() bool {
		s, err := e.js.Stream(e.t.Context(), bus.DefaultStream)
		if err != nil {
			return false
		}
		last := s.CachedInfo().State.LastSeq
		for _, r := range e.cfg.Notify.Receivers {
			c, err := e.js.Consumer(e.t.Context(), bus.DefaultStream, notifier.ConsumerName(r.Name))
			if err != nil {
				return false
			}
			ci := c.CachedInfo()
			if ci.NumPending != 0 || ci.NumAckPending != 0 || ci.AckFloor.Stream < last {
				return false
			}
		}
		return true
	})
}

// messages returns every message of a stream on subjects matching filter.
func messages(t *testing.T, js jetstream.JetStream, stream, filter string) []jetstream.Msg {
	t.Helper()
	c, err := js.OrderedConsumer(t.Context(), stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.Msg
	for {
		batch, err := c.FetchNoWait(100)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			out = append(out, m)
			n++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			t.Fatal(err)
		}
		if n == 0 {
			return out
		}
	}
}

// stored returns the bodies of the stream's events by id.
func stored(t *testing.T, js jetstream.JetStream) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, m := range messages(t, js, bus.DefaultStream, events.SubjectPrefix+".>") {
		e, err := events.FromMsg(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		out[e.ID()] = m.Data()
	}
	return out
}

const digest = "sha256:3f4ab9c1d2e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2"

func newEvent(t *testing.T, typ events.Type, env, subject string, data any) events.Event {
	t.Helper()
	e, err := events.New(context.Background(), events.Spec{
		ID: events.ID(t.Name(), string(typ), env, subject, fmt.Sprint(data)), Type: typ, Source: "/test",
		Environment: env, Subject: subject, Data: data,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func pushedEvent(t *testing.T, env, tag string) events.Event {
	d := events.ImagePushed{Environment: env, Registry: "registry." + env + ".example", Repository: "apps/web", Tag: tag, Digest: digest, Actor: "ci"}
	return newEvent(t, events.TypeImagePushed, env, d.Ref().String(), d)
}

func deploymentEvent(t *testing.T, typ events.Type, env, cluster, tag string) events.Event {
	d := events.Deployment{Cluster: cluster, Environment: env, AppID: "/" + env + "/web",
		ToImage: "registry." + env + ".example/apps/web:" + tag + "@" + digest, Digest: digest, DurationMs: 38_000}
	return newEvent(t, typ, env, cluster+":"+d.AppID, d)
}

func ids(evs []events.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID()
	}
	return out
}

// metric returns the value of a counter, or the sample count of a
// histogram, of the notifier's metrics with these label pairs; 0 if absent.
func (e *env) metric(name string, labels ...string) float64 {
	e.t.Helper()
	mfs, err := e.metrics.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
