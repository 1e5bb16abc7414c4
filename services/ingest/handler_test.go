package ingest_test

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/ingest"
)

func TestAcceptedCountsAndDuplicates(t *testing.T) {
	r := newRig(t)
	srv := r.serve(t, testConfig(config.Registry{}, config.Source{Name: "dev-registry", Format: "distribution", Environment: "dev", Auth: none()}))
	url := srv.URL + "/webhooks/dev-registry"

	body := envelope(
		distPush("e1", "team/web", "1.0.0"),
		distPush("e2", "team/api", "2.0.0"),
		distEvent("e3", "push", "application/octet-stream", "team/web", "", digestOf("blob")), // a layer
		distEvent("e4", "pull", manifestType, "team/web", "1.0.0", digestOf("team/web:1.0.0")),
	)
	code, got, _ := post(t, url, body, nil)
	if code != http.StatusAccepted || !reflect.DeepEqual(got, counts(2, 0, 2)) {
		t.Fatalf("first delivery: %d %v, want 202 %v", code, got, counts(2, 0, 2))
	}
	// The registry's retry of the same delivery.
	code, got, _ = post(t, url, body, nil)
	if code != http.StatusAccepted || !reflect.DeepEqual(got, counts(0, 2, 2)) {
		t.Fatalf("retry: %d %v, want 202 %v", code, got, counts(0, 2, 2))
	}
	// The same tag pushed again with the same content: a new upstream
	// event id, the same content-addressed event id.
	code, got, _ = post(t, url, envelope(distPush("e5", "team/web", "1.0.0")), nil)
	if code != http.StatusAccepted || !reflect.DeepEqual(got, counts(0, 1, 0)) {
		t.Fatalf("re-push: %d %v, want 202 %v", code, got, counts(0, 1, 0))
	}

	stored := storedEvents(t, r.stream)
	if len(stored) != 2 {
		t.Fatalf("%d events stored, want 2", len(stored))
	}
	// One delivery's events are published concurrently: find team/web.
	e := stored[0]
	if pushedData(t, e).Repository != "team/web" {
		e = stored[1]
	}
	if e.Type() != string(events.TypeImagePushed) || e.Source() != "/slipway/ingest/dev-registry" {
		t.Errorf("type %s source %s", e.Type(), e.Source())
	}
	wantDigest := digestOf("team/web:1.0.0")
	if want := devHost + "/team/web:1.0.0@" + wantDigest; e.Subject() != want {
		t.Errorf("subject %q, want %q", e.Subject(), want)
	}
	if want := events.ID("image.pushed", "dev", devHost, "team/web", "1.0.0", wantDigest); e.ID() != want {
		t.Errorf("id %s, want the content-addressed %s", e.ID(), want)
	}
	d := pushedData(t, e)
	want := events.ImagePushed{
		Environment: "dev", Registry: devHost, Repository: "team/web", Tag: "1.0.0", Digest: wantDigest,
		MediaType: manifestType, Size: 423, Actor: "ci-bot", Source: "dev-registry", Format: "distribution",
		UpstreamID: "e1", PushedAt: d.PushedAt,
	}
	if d != want {
		t.Errorf("data\n got %+v\nwant %+v", d, want)
	}
	if d.PushedAt.IsZero() {
		t.Error("pushedAt is zero")
	}
}

// A source's registry may only be a name of its environment's registry;
// the event always names the environment's host.
func TestSourceRegistryMustNameTheEnvironmentsRegistry(t *testing.T) {
	r := newRig(t)
	_, err := ingest.NewHandler(r.deps(testConfig(config.Registry{},
		config.Source{Name: "dev-registry", Format: "distribution", Environment: "dev", Registry: "registry.public.example", Auth: none()})))
	if err == nil || !strings.Contains(err.Error(), "ingest.sources[0].registry") || !strings.Contains(err.Error(), "aliases") {
		t.Fatalf("error %v, want one naming ingest.sources[0].registry and aliases", err)
	}

	srv := r.serve(t, testConfig(config.Registry{Aliases: []string{"registry.public.example"}},
		config.Source{Name: "dev-registry", Format: "distribution", Environment: "dev", Registry: "registry.public.example", Auth: none()}))
	if code, _, _ := post(t, srv.URL+"/webhooks/dev-registry", envelope(distPush("e1", "team/web", "1.0.0")), nil); code != http.StatusAccepted {
		t.Fatalf("status %d", code)
	}
	if d := pushedData(t, storedEvents(t, r.stream)[0]); d.Registry != devHost {
		t.Fatalf("registry %q, want the environment's %q", d.Registry, devHost)
	}
}

func TestIgnoredOnly(t *testing.T) {
	r := newRig(t)
	srv := r.serve(t, testConfig(config.Registry{}, config.Source{Name: "dev-registry", Format: "distribution", Environment: "dev", Auth: none()}))
	body := envelope(distEvent("e1", "pull", manifestType, "team/web", "1.0.0", digestOf("x")))
	code, got, _ := post(t, srv.URL+"/webhooks/dev-registry", body, nil)
	if code != http.StatusAccepted || !reflect.DeepEqual(got, counts(0, 0, 1)) {
		t.Fatalf("%d %v, want 202 %v", code, got, counts(0, 0, 1))
	}
	if n := len(storedEvents(t, r.stream)); n != 0 {
		t.Fatalf("%d events stored for a pull", n)
	}
}

func TestMalformed(t *testing.T) {
	r := newRig(t)
	srv := r.serve(t, testConfig(config.Registry{}, config.Source{Name: "dev-registry", Format: "distribution", Environment: "dev", Auth: none()}))
	for name, body := range map[string][]byte{
		"not json":         []byte(`{"events": [`),
		"no repository":    envelope(distEvent("e1", "push", manifestType, "", "1.0.0", digestOf("x"))),
		"bad digest":       envelope(distEvent("e1", "push", manifestType, "team/web", "1.0.0", "sha256:zz")),
		"events not array": []byte(`{"events": {"id": "x"}}`),
	} {
		t.Run(name, func(t *testing.T) {
			code, got, _ := post(t, srv.URL+"/webhooks/dev-registry", body, nil)
			msg, _ := got["error"].(string)
			if code != http.StatusBadRequest || !strings.HasPrefix(msg, "distribution: ") || len(msg) <= len("distribution: ") {
				t.Fatalf("%d %v, want 400 with an error naming the problem after \"distribution: \"", code, got)
			}
			if strings.HasPrefix(msg, "distribution: distribution:") {
				t.Fatalf("format named twice: %q", msg)
			}
			t.Logf("%s", msg)
		})
	}
	if n := len(storedEvents(t, r.stream)); n != 0 {
		t.Fatalf("%d events stored from malformed deliveries", n)
	}
}

func TestUnknownSourceAndMethod(t *testing.T) {
	r := newRig(t)
	srv := r.serve(t, testConfig(config.Registry{}, config.Source{Name: "dev-registry", Format: "distribution", Environment: "dev", Auth: none()}))
	body := envelope(distPush("e1", "team/web", "1.0.0"))
	if code, got, _ := post(t, srv.URL+"/webhooks/nope", body, nil); code != http.StatusNotFound || got["error"] == nil {
		t.Errorf("unknown source: %d %v, want 404 with an error", code, got)
	}
	if code, _, _ := post(t, srv.URL+"/webhooks/nope/token", body, nil); code != http.StatusNotFound {
		t.Errorf("unknown source with token: %d, want 404", code)
	}
	resp, err := http.Get(srv.URL + "/webhooks/dev-registry")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", resp.StatusCode)
	}
}

func TestBodyLimit(t *testing.T) {
	r := newRig(t)
	cfg := testConfig(config.Registry{}, config.Source{Name: "dev-registry", Format: "distribution", Environment: "dev", Auth: none()})
	cfg.Ingest.MaxBodyBytes = 2048
	srv := r.serve(t, cfg)
	url := srv.URL + "/webhooks/dev-registry"

	small := envelope(distPush("e1", "team/web", "1.0.0"))
	if len(small) > 2048 {
		t.Fatalf("test payload too big: %d", len(small))
	}
	if code, _, _ := post(t, url, small, nil); code != http.StatusAccepted {
		t.Fatalf("small body: %d", code)
	}
	big := envelope(distPush("e2", "team/web", "1.0.1"), distPush("e3", "team/web", "1.0.2"), distPush("e4", "team/web", "1.0.3"),
		distPush("e5", "team/web", "1.0.4"), distPush("e6", "team/web", "1.0.5"), distPush("e7", "team/web", "1.0.6"))
	if len(big) <= 2048 {
		t.Fatalf("test payload too small: %d", len(big))
	}
	code, got, _ := post(t, url, big, nil)
	if code != http.StatusRequestEntityTooLarge || got["error"] == nil {
		t.Fatalf("big body: %d %v, want 413", code, got)
	}

	// Without Content-Length (chunked): the limit holds on what is read,
	// whatever the headers say.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, io.NopCloser(bytes.NewReader(big)))
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked big body: %d, want 413", resp.StatusCode)
	}
	// A small body without Content-Length is read whole all the same.
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodPost, url, io.NopCloser(bytes.NewReader(envelope(distPush("e8", "team/web", "1.0.7")))))
	req.ContentLength = -1
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("chunked small body: %d, want 202", resp.StatusCode)
	}
	if n := len(storedEvents(t, r.stream)); n != 2 {
		t.Fatalf("%d events stored, want the two small deliveries'", n)
	}
}

func TestNATSDown(t *testing.T) {
	r := newRig(t)
	srv := r.serve(t, testConfig(config.Registry{}, config.Source{Name: "dev-registry", Format: "distribution", Environment: "dev", Auth: none()}))
	url := srv.URL + "/webhooks/dev-registry"
	body := envelope(distPush("e1", "team/web", "1.0.0"), distPush("e2", "team/api", "1.0.0"))

	reconnected := r.nc.StatusChanged(nats.CONNECTED)
	r.nats.Shutdown()
	// Until the client has noticed, a publish waits in its reconnect buffer
	// and may be stored after the 503 (then the retry below counts
	// duplicates, which is right but not what this test is about).
	testkit.WaitFor(t, "the client to notice NATS is gone", func() bool { return !r.nc.IsConnected() })
	code, got, hdr := post(t, url, body, nil)
	if code != http.StatusServiceUnavailable || got["error"] == nil || hdr.Get("Retry-After") == "" {
		t.Fatalf("NATS down: %d %v Retry-After=%q, want 503 with an error and Retry-After", code, got, hdr.Get("Retry-After"))
	}
	// Ignored deliveries need no NATS and still get 202.
	if code, _, _ := post(t, url, envelope(distEvent("p", "pull", manifestType, "team/web", "1.0.0", digestOf("x"))), nil); code != http.StatusAccepted {
		t.Fatalf("pull while NATS down: %d, want 202", code)
	}

	r.nats.Restart(t)
	waitConnected(t, r.nc, reconnected, r.js)
	code, got, _ = post(t, url, body, nil)
	if code != http.StatusAccepted || !reflect.DeepEqual(got, counts(2, 0, 0)) {
		t.Fatalf("after restart: %d %v", code, got)
	}
}

func TestAuthOverHTTP(t *testing.T) {
	r := newRig(t)
	src := func(name string, a *config.Auth) config.Source {
		return config.Source{Name: name, Format: "distribution", Environment: "dev", Auth: a}
	}
	srv := r.serve(t, testConfig(config.Registry{},
		src("open", none()),
		src("header", &config.Auth{Header: &config.HeaderAuth{Name: "Authorization", Value: "Bearer s3cret"}}),
		src("hmac", &config.Auth{HMAC: &config.HMACAuth{Header: "X-Hub-Signature-256", Prefix: "sha256=", Secret: "k3y"}}),
		src("basic", &config.Auth{Basic: &config.BasicAuth{Username: "registry", Password: "pw"}}),
		src("token", &config.Auth{URLToken: "t0ken"}),
		src("odd-token", &config.Auth{URLToken: "a b/c+d%"}),
	))
	n := 0
	body := func() []byte { n++; return envelope(distPush(fmt.Sprint("e", n), "team/web", fmt.Sprint("1.", n))) }
	sig := func(b []byte, secret string) string {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(b)
		return "sha256=" + hex.EncodeToString(m.Sum(nil))
	}
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }
	h := func(kv ...string) http.Header {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}

	type tc struct {
		name, path string
		header     func(b []byte) http.Header
		want       int
	}
	for _, c := range []tc{
		{"none", "/webhooks/open", nil, 202},
		{"none with a token", "/webhooks/open/anything", nil, 401},
		{"header right", "/webhooks/header", func([]byte) http.Header { return h("Authorization", "Bearer s3cret") }, 202},
		{"header wrong", "/webhooks/header", func([]byte) http.Header { return h("Authorization", "Bearer s3cre") }, 401},
		{"header missing", "/webhooks/header", nil, 401},
		{"hmac right", "/webhooks/hmac", func(b []byte) http.Header { return h("X-Hub-Signature-256", sig(b, "k3y")) }, 202},
		{"hmac upper-case hex", "/webhooks/hmac", func(b []byte) http.Header {
			s := sig(b, "k3y")
			return h("X-Hub-Signature-256", "sha256="+strings.ToUpper(strings.TrimPrefix(s, "sha256=")))
		}, 202},
		{"hmac wrong secret", "/webhooks/hmac", func(b []byte) http.Header { return h("X-Hub-Signature-256", sig(b, "nope")) }, 401},
		{"hmac of another body", "/webhooks/hmac", func([]byte) http.Header { return h("X-Hub-Signature-256", sig([]byte("{}"), "k3y")) }, 401},
		{"hmac malformed", "/webhooks/hmac", func([]byte) http.Header { return h("X-Hub-Signature-256", "sha256=xyz") }, 401},
		{"hmac no prefix", "/webhooks/hmac", func(b []byte) http.Header {
			return h("X-Hub-Signature-256", strings.TrimPrefix(sig(b, "k3y"), "sha256="))
		}, 401},
		{"hmac missing", "/webhooks/hmac", nil, 401},
		{"basic right", "/webhooks/basic", func([]byte) http.Header { return h("Authorization", basic("registry", "pw")) }, 202},
		{"basic wrong", "/webhooks/basic", func([]byte) http.Header { return h("Authorization", basic("registry", "px")) }, 401},
		{"basic malformed", "/webhooks/basic", func([]byte) http.Header { return h("Authorization", "Basic %%%") }, 401},
		{"basic missing", "/webhooks/basic", nil, 401},
		{"token right", "/webhooks/token/t0ken", nil, 202},
		{"token wrong", "/webhooks/token/t0keN", nil, 401},
		{"token missing", "/webhooks/token", nil, 401},
		{"token in a header instead", "/webhooks/token", func([]byte) http.Header { return h("Authorization", "t0ken") }, 401},
		{"token escaped in the path", "/webhooks/odd-token/" + url.PathEscape("a b/c+d%"), nil, 202},
		{"token unescaped", "/webhooks/odd-token/a%20b/c+d%25", nil, 404}, // the "/" splits it
		{"token with a path after it", "/webhooks/token/t0ken/x", nil, 404},
		{"token on a header source", "/webhooks/header/s3cret", func([]byte) http.Header { return h("Authorization", "Bearer s3cret") }, 401},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := body()
			var hdr http.Header
			if c.header != nil {
				hdr = c.header(b)
			}
			code, got, _ := post(t, srv.URL+c.path, b, hdr)
			if code != c.want {
				t.Fatalf("%d %v, want %d", code, got, c.want)
			}
			if code == http.StatusUnauthorized && !reflect.DeepEqual(got, map[string]any{"error": "unauthorized"}) {
				t.Fatalf("401 body %v, want no detail", got)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	r := newRig(t)
	src := config.Source{Name: "dev-registry", Format: "distribution", Environment: "dev", Auth: none()}
	with := func(f func(s *config.Source)) *config.Config {
		s := src
		f(&s)
		return testConfig(config.Registry{}, config.Source{Name: "first", Format: "distribution", Environment: "dev", Auth: none()}, s)
	}
	for name, c := range map[string]struct {
		cfg  *config.Config
		want string
	}{
		"unknown format":      {with(func(s *config.Source) { s.Format = "dockerhubb" }), `ingest.sources[1].format: unknown format "dockerhubb"`},
		"unknown environment": {with(func(s *config.Source) { s.Environment = "qa" }), `ingest.sources[1].environment: unknown environment "qa"`},
		"no auth":             {with(func(s *config.Source) { s.Auth = nil }), "ingest.sources[1].auth is required; use {none: true} to accept unauthenticated webhooks"},
		"two auths":           {with(func(s *config.Source) { s.Auth = &config.Auth{None: true, URLToken: "x"} }), "ingest.sources[1].auth: exactly one of"},
		"bad hmac": {with(func(s *config.Source) {
			s.Auth = &config.Auth{HMAC: &config.HMACAuth{Header: "X", Algorithm: "md5", Secret: "s"}}
		}), `ingest.sources[1].auth: hmac.algorithm "md5"`},
		"duplicate name": {with(func(s *config.Source) { s.Name = "first" }), `ingest.sources[1].name "first" is used by another source`},
		"bad name":       {with(func(s *config.Source) { s.Name = "a/b" }), `ingest.sources[1].name "a/b"`},
		"negative max body": {func() *config.Config {
			c := testConfig(config.Registry{}, src)
			c.Ingest.MaxBodyBytes = -1
			return c
		}(), "ingest.maxBodyBytes"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ingest.NewHandler(r.deps(c.cfg))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
}

// TestArtifactoryRepositoryPath: with Artifactory's repository-path access
// method the image is <host>/<repository key>/<image>; the key, which the
// payload carries apart, becomes part of the repository.
func TestArtifactoryRepositoryPath(t *testing.T) {
	body, err := os.ReadFile("formats/testdata/artifactory/docker_pushed.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		repositoryPath bool
		want           string
	}{{false, "library/ubuntu"}, {true, "docker-local/library/ubuntu"}} {
		r := newRig(t)
		srv := r.serve(t, testConfig(config.Registry{},
			config.Source{Name: "jfrog", Format: "artifactory", Environment: "dev", RepositoryPath: tc.repositoryPath, Auth: none()}))
		if code, reply, _ := post(t, srv.URL+"/webhooks/jfrog", body, nil); code != http.StatusAccepted {
			t.Fatalf("webhook: %d %v", code, reply)
		}
		evs := storedEvents(t, r.stream)
		if len(evs) != 1 {
			t.Fatalf("%d events", len(evs))
		}
		if got := pushedData(t, evs[0]).Repository; got != tc.want {
			t.Errorf("repositoryPath %t: repository %q, want %q", tc.repositoryPath, got, tc.want)
		}
	}
}

// A body shorter than its Content-Length (the sender stopped writing) is
// refused as unreadable, and nothing is stored.
func TestBodyShorterThanContentLength(t *testing.T) {
	r := newRig(t)
	srv := r.serve(t, testConfig(config.Registry{}, config.Source{Name: "dev-registry", Format: "distribution", Environment: "dev", Auth: none()}))
	body := envelope(distPush("e1", "team/web", "1.0.0"))
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /webhooks/dev-registry HTTP/1.1\r\nHost: ingest\r\nContent-Length: %d\r\n\r\n%s", len(body)+10, body)
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(raw), "reading body") {
		t.Fatalf("short body: %d %s, want 400 reading body", resp.StatusCode, raw)
	}
	if n := len(storedEvents(t, r.stream)); n != 0 {
		t.Fatalf("%d events stored from a short body", n)
	}
}
