package testkit_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/testkit"
)

const wait = 10 * time.Second

// ---------------------------------------------------------------------------
// NATS

func TestNATSRestartKeepsStreamAndClientReconnects(t *testing.T) {
	ns := testkit.NATS(t)
	if !strings.HasPrefix(ns.URL, "nats://127.0.0.1:") {
		t.Fatalf("URL = %q", ns.URL)
	}
	nc, js := ns.Connect(t)

	reconnected := make(chan struct{}, 1)
	disconnected := make(chan struct{}, 1)
	nc.SetDisconnectErrHandler(func(*nats.Conn, error) {
		select {
		case disconnected <- struct{}{}:
		default:
		}
	})
	nc.SetReconnectHandler(func(*nats.Conn) {
		select {
		case reconnected <- struct{}{}:
		default:
		}
	})

	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     "EVENTS",
		Subjects: []string{"events.>"},
		Storage:  jetstream.FileStorage,
	}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"one", "two"} {
		if _, err := js.Publish(ctx, "events.test", []byte(s)); err != nil {
			t.Fatal(err)
		}
	}

	ns.Shutdown()
	recv(t, disconnected, "disconnect")
	if nc.IsConnected() {
		t.Fatal("client still connected after Shutdown")
	}

	oldURL := ns.URL
	ns.Restart(t)
	if ns.URL != oldURL {
		t.Fatalf("URL changed across restart: %q -> %q", oldURL, ns.URL)
	}
	recv(t, reconnected, "reconnect")
	if got := nc.ConnectedUrl(); got != ns.URL {
		t.Fatalf("reconnected to %q, want %q", got, ns.URL)
	}

	// The stream and its messages survived; the old connection works.
	st, err := js.Stream(ctx, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Fatalf("stream has %d messages after restart, want 2", info.State.Msgs)
	}
	if _, err := js.Publish(ctx, "events.test", []byte("three")); err != nil {
		t.Fatal(err)
	}
	msg, err := st.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if string(msg.Data) != "one" {
		t.Fatalf("first message %q, want %q", msg.Data, "one")
	}
	if ns.Server().ClientURL() != ns.URL {
		t.Fatalf("Server().ClientURL() = %q", ns.Server().ClientURL())
	}
}

// ---------------------------------------------------------------------------
// Registry notifications

// envelope mirrors Distribution's notifications.Envelope / Event JSON.
type envelope struct {
	Events []event `json:"events"`
}

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

type event struct {
	ID        string    `json:"id"`
	Timestamp time.Time `json:"timestamp"`
	Action    string    `json:"action"`
	Target    struct {
		MediaType  string       `json:"mediaType"`
		Digest     string       `json:"digest"`
		Size       int64        `json:"size"`
		Length     int64        `json:"length"`
		Repository string       `json:"repository"`
		URL        string       `json:"url"`
		Tag        string       `json:"tag"`
		References []descriptor `json:"references"`
	} `json:"target"`
	Request struct {
		ID        string `json:"id"`
		Addr      string `json:"addr"`
		Host      string `json:"host"`
		Method    string `json:"method"`
		UserAgent string `json:"useragent"`
	} `json:"request"`
	Actor struct {
		Name string `json:"name"`
	} `json:"actor"`
	Source struct {
		Addr       string `json:"addr"`
		InstanceID string `json:"instanceID"`
	} `json:"source"`
}

// delivery is one POST received by the sink.
type delivery struct {
	header http.Header
	status int // what the sink answered
	events []event
}

// sink is a real HTTP endpoint receiving Distribution's notifications. It
// answers statuses[i] to the i-th POST (202 once they run out).
type sink struct {
	t   *testing.T
	srv *httptest.Server
	ch  chan delivery

	mu       sync.Mutex
	statuses []int
}

func newSink(t *testing.T, statuses ...int) *sink {
	s := &sink{t: t, ch: make(chan delivery, 1000), statuses: statuses}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil || r.Method != http.MethodPost {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	status := http.StatusAccepted
	if len(s.statuses) > 0 {
		status, s.statuses = s.statuses[0], s.statuses[1:]
	}
	s.mu.Unlock()
	s.ch <- delivery{header: r.Header.Clone(), status: status, events: env.Events}
	w.WriteHeader(status)
}

// next returns the next delivery, failing the test after a deadline.
func (s *sink) next() delivery {
	s.t.Helper()
	return recvValue(s.t, s.ch, "notification")
}

// until collects accepted events (in delivery order) up to and including the
// first one for which stop returns true.
func (s *sink) until(stop func(event) bool) []event {
	s.t.Helper()
	var evs []event
	for {
		d := s.next()
		if d.status >= 300 {
			continue
		}
		for _, e := range d.events {
			evs = append(evs, e)
			if stop(e) {
				return evs
			}
		}
	}
}

// barrier pushes a marker image and returns every accepted event delivered
// before the marker's manifest push. Distribution delivers the events of
// one endpoint in order through a single queue, so once the marker's push
// arrives, all earlier events have been delivered too.
func (s *sink) barrier(reg *testkit.Registry) []event {
	s.t.Helper()
	const repo = "testkit/barrier"
	testkit.PushRandomImage(s.t, reg.Host+"/"+repo+":latest")
	var before []event
	for _, e := range s.until(func(e event) bool {
		return e.Action == "push" && e.Target.Repository == repo && e.Target.Tag == "latest"
	}) {
		if e.Target.Repository != repo {
			before = append(before, e)
		}
	}
	return before
}

func filter(evs []event, keep func(event) bool) []event {
	var out []event
	for _, e := range evs {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

func isManifestPush(e event) bool {
	return e.Action == "push" && strings.Contains(e.Target.MediaType, "manifest") ||
		e.Action == "push" && strings.Contains(e.Target.MediaType, "index")
}

func TestRegistryImagePushNotifies(t *testing.T) {
	snk := newSink(t)
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{
		NotifyURL:     snk.srv.URL + "/hook",
		NotifyHeaders: map[string][]string{"Authorization": {"Bearer s3cret"}},
	})
	if !strings.HasPrefix(reg.Host, "127.0.0.1:") || reg.URL != "http://"+reg.Host {
		t.Fatalf("Host %q URL %q", reg.Host, reg.URL)
	}

	ref := reg.Host + "/apps/web:1.0.0"
	img := testkit.PushRandomImage(t, ref)
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}

	var deliveries []delivery
	var evs []event
	for {
		d := snk.next()
		deliveries = append(deliveries, d)
		if len(d.events) != 1 {
			t.Fatalf("delivery with %d events, want exactly 1 per POST", len(d.events))
		}
		evs = append(evs, d.events...)
		if isManifestPush(d.events[0]) {
			break
		}
	}

	for _, d := range deliveries {
		if ct := d.header.Get("Content-Type"); ct != "application/vnd.docker.distribution.events.v2+json" {
			t.Errorf("Content-Type = %q", ct)
		}
		if a := d.header.Get("Authorization"); a != "Bearer s3cret" {
			t.Errorf("Authorization = %q", a)
		}
	}

	// Before the manifest: one blob push per layer and one for the config.
	blobs := evs[:len(evs)-1]
	wantBlobs := map[string]bool{manifest.Config.Digest.String(): true}
	for _, l := range manifest.Layers {
		wantBlobs[l.Digest.String()] = true
	}
	if len(blobs) != len(wantBlobs) {
		t.Fatalf("%d blob events before the manifest, want %d: %+v", len(blobs), len(wantBlobs), blobs)
	}
	for _, b := range blobs {
		if b.Action != "push" || !wantBlobs[b.Target.Digest] || b.Target.Tag != "" || b.Target.Repository != "apps/web" {
			t.Errorf("unexpected blob event %+v", b)
		}
		if b.Target.MediaType != "application/octet-stream" {
			t.Logf("blob push media type %q", b.Target.MediaType)
		}
	}

	m := evs[len(evs)-1]
	if m.Target.Digest != want.String() {
		t.Errorf("manifest digest %s, want %s", m.Target.Digest, want)
	}
	if m.Target.Tag != "1.0.0" || m.Target.Repository != "apps/web" {
		t.Errorf("manifest target repo %q tag %q", m.Target.Repository, m.Target.Tag)
	}
	if m.Target.MediaType != "application/vnd.docker.distribution.manifest.v2+json" {
		t.Errorf("manifest media type %q", m.Target.MediaType)
	}
	if m.Target.URL != reg.URL+"/v2/apps/web/manifests/"+want.String() {
		t.Errorf("target.url %q", m.Target.URL)
	}
	if m.Request.Method != http.MethodPut || m.Request.Host != reg.Host || m.Request.ID == "" {
		t.Errorf("request %+v", m.Request)
	}
	if m.ID == "" || m.Timestamp.IsZero() || m.Source.InstanceID != reg.InstanceID || m.Source.Addr == "" {
		t.Errorf("id %q timestamp %v source %+v", m.ID, m.Timestamp, m.Source)
	}
	if m.Actor.Name != "" {
		t.Errorf("actor %q without auth", m.Actor.Name)
	}
	// events.includereferences: config + layers.
	if len(m.Target.References) != 1+len(manifest.Layers) {
		t.Errorf("references %+v", m.Target.References)
	}
	if got := testkit.Digest(t, ref); got != want.String() {
		t.Errorf("Digest = %s, want %s", got, want)
	}

	// The HEAD done by Digest is reported as a "pull" of the manifest.
	rest := snk.barrier(reg)
	if len(rest) != 1 || rest[0].Action != "pull" || rest[0].Target.Digest != want.String() || rest[0].Request.Method != http.MethodHead {
		t.Errorf("events after push (HEAD by Digest): %+v", rest)
	} else {
		t.Logf("HEAD manifest by tag -> action %q, tag %q", rest[0].Action, rest[0].Target.Tag)
	}
}

func TestRegistryIndexPushNotifies(t *testing.T) {
	snk := newSink(t)
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{NotifyURL: snk.srv.URL})

	ref := reg.Host + "/apps/multi:2.0.0"
	idx := testkit.PushRandomIndex(t, ref, 3)
	want, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 3 || im.Manifests[1].Platform.Architecture != "arm64" {
		t.Fatalf("index manifest %+v", im.Manifests)
	}

	evs := snk.until(func(e event) bool { return e.Target.Digest == want.String() })
	manifests := filter(evs, isManifestPush)
	if len(manifests) != 4 {
		t.Fatalf("%d manifest pushes, want 3 children + 1 index: %+v", len(manifests), manifests)
	}
	children := map[string]bool{}
	for _, d := range im.Manifests {
		children[d.Digest.String()] = true
	}
	for _, c := range manifests[:3] {
		if !children[c.Target.Digest] || c.Target.Tag != "" || c.Target.MediaType != "application/vnd.oci.image.manifest.v1+json" {
			t.Errorf("child push %+v", c.Target)
		}
		delete(children, c.Target.Digest)
	}
	top := manifests[3]
	if top.Target.Tag != "2.0.0" || top.Target.MediaType != "application/vnd.oci.image.index.v1+json" || top.Target.Repository != "apps/multi" {
		t.Errorf("index push %+v", top.Target)
	}
	if len(top.Target.References) != 3 {
		t.Errorf("index references %+v", top.Target.References)
	}
	if blobs := filter(evs, func(e event) bool { return !isManifestPush(e) }); len(blobs) != 3*3 {
		t.Errorf("%d blob pushes, want 9 (3 children x (config + 2 layers))", len(blobs))
	}
	if got := testkit.Digest(t, ref); got != want.String() {
		t.Errorf("Digest = %s, want %s", got, want)
	}
}

func TestRegistryRepush(t *testing.T) {
	snk := newSink(t)
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{NotifyURL: snk.srv.URL})

	ref := reg.Host + "/apps/web:1.0.0"
	img := testkit.PushRandomImage(t, ref)
	dgst, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	first := snk.until(isManifestPush)
	firstPush := first[len(first)-1]

	t.Run("go-containerregistry same tag", func(t *testing.T) {
		// remote.Write HEADs the tag, sees the same digest and skips the
		// PUT: Distribution reports only a pull (the HEAD), no push.
		testkit.PushImage(t, ref, img)
		evs := snk.barrier(reg)
		if n := len(filter(evs, func(e event) bool { return e.Action == "push" })); n != 0 {
			t.Errorf("re-push with remote.Write sent %d push events: %+v", n, evs)
		}
		for _, e := range evs {
			t.Logf("re-push (remote.Write) -> %s %s %s tag=%q", e.Action, e.Request.Method, e.Target.MediaType, e.Target.Tag)
		}
	})

	t.Run("raw PUT of the same manifest", func(t *testing.T) {
		// A client that PUTs anyway (docker push does): Distribution sends a
		// new push event (new id) for identical content.
		raw, err := img.RawManifest()
		if err != nil {
			t.Fatal(err)
		}
		mt, err := img.MediaType()
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, reg.URL+"/v2/apps/web/manifests/1.0.0", bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", string(mt))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT status %d", resp.StatusCode)
		}
		evs := snk.barrier(reg)
		if len(evs) != 1 || !isManifestPush(evs[0]) || evs[0].Target.Digest != dgst.String() || evs[0].Target.Tag != "1.0.0" {
			t.Fatalf("events after identical PUT: %+v", evs)
		}
		if evs[0].ID == firstPush.ID {
			t.Errorf("identical PUT reused event id %s", evs[0].ID)
		}
	})

	t.Run("same image new tag", func(t *testing.T) {
		testkit.PushImage(t, reg.Host+"/apps/web:latest", img)
		evs := snk.barrier(reg)
		pushes := filter(evs, func(e event) bool { return e.Action == "push" })
		if len(pushes) != 1 || pushes[0].Target.Tag != "latest" || pushes[0].Target.Digest != dgst.String() {
			t.Errorf("events after pushing same image to new tag: %+v", evs)
		}
	})
}

func TestRegistryRetriesFailedNotifications(t *testing.T) {
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusInternalServerError, http.StatusBadRequest} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			snk := newSink(t, status)
			reg := testkit.NewRegistry(t, testkit.RegistryOptions{NotifyURL: snk.srv.URL})
			testkit.PushRandomImage(t, reg.Host+"/apps/web:1.0.0")

			d1 := snk.next()
			if d1.status != status {
				t.Fatalf("first answer %d", d1.status)
			}
			d2 := snk.next()
			if d2.status != http.StatusAccepted {
				t.Fatalf("second answer %d", d2.status)
			}
			if d1.events[0].ID != d2.events[0].ID {
				t.Fatalf("after %d the next delivery is event %s, want the same event %s again", status, d2.events[0].ID, d1.events[0].ID)
			}
			// Same event, same body, and the queue keeps its order: the
			// manifest push still comes after the retried blob push.
			if d1.events[0].Target.Digest != d2.events[0].Target.Digest || !d1.events[0].Timestamp.Equal(d2.events[0].Timestamp) {
				t.Errorf("retried event differs: %+v vs %+v", d1.events[0], d2.events[0])
			}
			snk.until(isManifestPush)
		})
	}
}

func TestRegistryAuth(t *testing.T) {
	snk := newSink(t)
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{NotifyURL: snk.srv.URL, Username: "ci", Password: "hunter2"})

	resp, err := http.Get(reg.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("anonymous /v2/: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	testkit.PushRandomImage(t, reg.Host+"/apps/web:1.0.0")
	evs := snk.until(isManifestPush)
	for _, e := range evs {
		if e.Actor.Name != "ci" {
			t.Errorf("actor %q on %s %s", e.Actor.Name, e.Action, e.Target.Digest)
		}
	}

	ref, err := name.ParseReference(reg.Host + "/apps/web:1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(ref, remote.WithContext(t.Context())); err == nil {
		t.Errorf("anonymous HEAD succeeded")
	}
}

// TestRegistryCleanupStopsNotificationGoroutines starts a registry whose
// endpoint always fails, so an event is stuck in Distribution's retry loop,
// and checks that the registry's cleanup stops the goroutines.
func TestRegistryCleanupStopsNotificationGoroutines(t *testing.T) {
	statuses := make([]int, 1_000_000)
	for i := range statuses {
		statuses[i] = http.StatusServiceUnavailable
	}
	t.Run("registry", func(t *testing.T) {
		snk := newSink(t, statuses...)
		reg := testkit.NewRegistry(t, testkit.RegistryOptions{NotifyURL: snk.srv.URL})
		testkit.PushRandomImage(t, reg.Host+"/apps/web:1.0.0")
		snk.next()
		snk.next() // retried
	})
	deadline := time.Now().Add(wait)
	for {
		var leaked []string
		for g := range strings.SplitSeq(allStacks(), "\n\n") {
			if strings.Contains(g, "notifications.(*eventQueue).run") || strings.Contains(g, "go-events.(*Broadcaster).run") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d notification goroutines still running after cleanup:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		}
		<-time.After(10 * time.Millisecond) // poll interval, bounded by deadline
	}
}

// ---------------------------------------------------------------------------
// helpers

func allStacks() string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return string(buf[:n])
		}
		buf = make([]byte, 2*len(buf))
	}
}

func recv(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	recvValue(t, ch, what)
}

func recvValue[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		t.Fatalf("no %s within %s", what, wait)
		panic("unreachable")
	}
}
