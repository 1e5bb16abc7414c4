package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/notifier/notify"
	"github.com/slipway-cd/slipway/services/notifier/notify/webhook"
)

var secret = []byte("s3cret")

func TestSignVerify(t *testing.T) {
	body := []byte(`{"specversion":"1.0","id":"x"}`)
	now := time.Unix(1_750_000_000, 0)
	h := webhook.Sign(secret, now, body)
	if !strings.HasPrefix(h, "t=1750000000,v1=") || len(h) != len("t=1750000000,v1=")+64 {
		t.Fatalf("header %q", h)
	}
	if err := webhook.Verify(secret, h, body, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatalf("valid signature rejected: %v", err)
	}
	other := webhook.Sign([]byte("old"), now, body)
	_, oldSig, _ := strings.Cut(other, ",")
	for _, tc := range []struct {
		name   string
		secret []byte
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"tampered body", secret, h, []byte(`{"specversion":"1.0","id":"y"}`), now, webhook.ErrBadSignature},
		{"wrong secret", []byte("nope"), h, body, now, webhook.ErrBadSignature},
		{"replayed later", secret, h, body, now.Add(6 * time.Minute), webhook.ErrTimestamp},
		{"from the future", secret, h, body, now.Add(-6 * time.Minute), webhook.ErrTimestamp},
		{"no header", secret, "", body, now, webhook.ErrNoSignature},
		{"no v1", secret, "t=1750000000", body, now, webhook.ErrNoSignature},
		{"no t", secret, strings.SplitN(h, ",", 2)[1], body, now, webhook.ErrNoSignature},
		{"bad hex", secret, "t=1750000000,v1=zz", body, now, webhook.ErrNoSignature},
		{"two timestamps", secret, "t=1,t=1750000000," + strings.SplitN(h, ",", 2)[1], body, now, webhook.ErrNoSignature},
		{"timestamp swapped", secret, "t=1750000001," + strings.SplitN(h, ",", 2)[1], body, now, webhook.ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := webhook.Verify(tc.secret, tc.header, tc.body, tc.now, 5*time.Minute)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
	// Rotation: an old and a new signature, either secret verifies.
	both := h + "," + oldSig
	for _, s := range [][]byte{secret, []byte("old")} {
		if err := webhook.Verify(s, both, body, now, 0); err != nil {
			t.Errorf("rotation with %q: %v", s, err)
		}
	}
}

// hookServer is a receiver as a user would write one: it checks the
// signature with Verify, the media type and the CloudEvent, and answers with
// the status the test chooses.
type hookServer struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	// respond writes the answer to the n-th (1-based) valid request.
	respond func(w http.ResponseWriter, n int)
}

func newHookServer(t *testing.T, respond func(w http.ResponseWriter, n int)) *hookServer {
	h := &hookServer{t: t, respond: respond}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookServer) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "method", http.StatusMethodNotAllowed)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/cloudevents+json" {
		http.Error(w, "not a structured CloudEvent", http.StatusUnsupportedMediaType)
		return
	}
	if err := webhook.Verify(secret, r.Header.Get(webhook.SignatureHeader), body, time.Now(), time.Minute); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if _, err := events.FromMsg(body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.bodies = append(h.bodies, body)
	n := len(h.bodies)
	h.mu.Unlock()
	h.respond(w, n)
}

func sample(t *testing.T) events.Event {
	t.Helper()
	e, err := events.New(context.Background(), events.Spec{
		ID: events.ID("webhook-test"), Type: events.TypeImagePushed, Source: "/test", Environment: "dev",
		Subject: "r.example/apps/web:1.0", CausationID: "cause",
		Data: events.ImagePushed{Environment: "dev", Registry: "r.example", Repository: "apps/web", Tag: "1.0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func receiver(t *testing.T, url string, s string) notify.Receiver {
	t.Helper()
	r, err := webhook.New("hook", config.Receiver{Name: "hook", Webhook: &config.WebhookReceiver{URL: url, Secret: s}}, notify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Name() != "hook" || r.Kind() != "webhook" {
		t.Fatalf("name, kind = %s, %s", r.Name(), r.Kind())
	}
	return r
}

func TestNotifyPostsSignedCloudEvent(t *testing.T) {
	h := newHookServer(t, func(w http.ResponseWriter, _ int) { w.WriteHeader(http.StatusAccepted) })
	e := sample(t)
	if err := receiver(t, h.srv.URL+"/hook?token=abc", string(secret)).Notify(t.Context(), notify.Notification{Event: e}); err != nil {
		t.Fatal(err)
	}
	want, _ := events.ToMsg(e)
	if len(h.bodies) != 1 || string(h.bodies[0]) != string(want.Data) {
		t.Fatalf("received %q\nwant the stored event %q", h.bodies, want.Data)
	}
	var ce map[string]any
	if err := json.Unmarshal(h.bodies[0], &ce); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"specversion", "id", "source", "type", "subject", "time", "data", "causationid", "environment"} {
		if _, ok := ce[k]; !ok {
			t.Errorf("CloudEvent without %s: %s", k, h.bodies[0])
		}
	}
}

func TestNotifyStatuses(t *testing.T) {
	for _, tc := range []struct {
		name       string
		status     int
		retryAfter string
		permanent  bool
		wantDelay  time.Duration
	}{
		{name: "429 with Retry-After", status: 429, retryAfter: "7", wantDelay: 7 * time.Second},
		{name: "503 with Retry-After", status: 503, retryAfter: "2", wantDelay: 2 * time.Second},
		{name: "429 without Retry-After", status: 429},
		{name: "429 with a bad Retry-After", status: 429, retryAfter: "soon"},
		{name: "503 with an HTTP-date", status: 503, retryAfter: "date", wantDelay: -1},
		{name: "500", status: 500},
		{name: "502", status: 502},
		{name: "408", status: 408},
		{name: "425", status: 425},
		{name: "503 with Retry-After 0", status: 503, retryAfter: "0"},
		{name: "501", status: 501, permanent: true},
		{name: "301 not followed", status: 301, permanent: true},
		{name: "400", status: 400, permanent: true},
		{name: "404", status: 404, permanent: true},
		{name: "410", status: 410, permanent: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHookServer(t, func(w http.ResponseWriter, _ int) {
				switch tc.retryAfter {
				case "":
				case "date":
					w.Header().Set("Retry-After", time.Now().Add(time.Hour+time.Minute).UTC().Format(http.TimeFormat))
				default:
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				http.Error(w, "nope\nat all", tc.status)
			})
			err := receiver(t, h.srv.URL, string(secret)).Notify(t.Context(), notify.Notification{Event: sample(t)})
			if err == nil {
				t.Fatal("no error")
			}
			if bus.IsPermanent(err) != tc.permanent {
				t.Errorf("permanent = %v, want %v (%v)", bus.IsPermanent(err), tc.permanent, err)
			}
			var se *webhook.StatusError
			if tc.wantDelay < 0 {
				// An hour and a minute away: capped at an hour.
				tc.wantDelay = time.Hour
			}
			if !errors.As(err, &se) || se.Code != tc.status || se.RetryAfter != tc.wantDelay {
				t.Fatalf("error %v (%+v), want status %d retry after %s", err, se, tc.status, tc.wantDelay)
			}
			if !strings.Contains(err.Error(), "nope at all") {
				t.Errorf("error without the response's start: %v", err)
			}
		})
	}
}

func TestNotifyRequiresSignatureCheck(t *testing.T) {
	// Without a secret nothing is signed, and a receiver that checks says 401.
	h := newHookServer(t, func(w http.ResponseWriter, _ int) {})
	err := receiver(t, h.srv.URL, "").Notify(t.Context(), notify.Notification{Event: sample(t)})
	var se *webhook.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusUnauthorized || !bus.IsPermanent(err) {
		t.Fatalf("err = %v", err)
	}
}

func TestNotifyConnectionErrorHidesURL(t *testing.T) {
	h := newHookServer(t, func(w http.ResponseWriter, _ int) {})
	url := h.srv.URL + "/services/T000/B000/secret-token"
	h.srv.Close()
	err := receiver(t, url, string(secret)).Notify(t.Context(), notify.Notification{Event: sample(t)})
	if err == nil || bus.IsPermanent(err) {
		t.Fatalf("err = %v, want a retryable error", err)
	}
	if strings.Contains(err.Error(), "secret-token") {
		t.Errorf("error leaks the URL: %v", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := webhook.New("x", config.Receiver{Name: "x"}, notify.Options{}); err == nil {
		t.Error("accepted a receiver without webhook")
	}
	if _, err := webhook.New("x", config.Receiver{Name: "x", Webhook: &config.WebhookReceiver{URL: "ftp://x"}}, notify.Options{}); err == nil {
		t.Error("accepted an ftp URL")
	}
}
