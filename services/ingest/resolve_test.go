package ingest_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

// Docker Hub and Quay send no digest: ingest asks the environment's
// registry (here a Distribution registry with basic auth) what the tag
// points to.
func TestResolveMissingDigest(t *testing.T) {
	const user, password = "slipway", "registry-pw-7f3a9c"
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{Username: user, Password: password})
	img := testkit.PushRandomImage(t, reg.Host+"/team/app:v1")
	want := pushed{"team/app", "v1", must(img.Digest()), must(img.MediaType())}

	for _, c := range []struct {
		format, registry string
		body             func(tag string) []byte
	}{
		{"quay", "quay.io", func(tag string) []byte {
			return jsonBody(map[string]any{"repository": "team/app", "namespace": "team", "name": "app",
				"docker_url": "quay.io/team/app", "homepage": "https://quay.io/repository/team/app", "updated_tags": []string{tag}})
		}},
		{"dockerhub", "docker.io", func(tag string) []byte {
			return jsonBody(map[string]any{"callback_url": "https://registry.hub.docker.com/u/team/app/hook/x/",
				"push_data":  map[string]any{"pushed_at": 1763764534, "pusher": "ci", "tag": tag},
				"repository": map[string]any{"repo_name": "team/app", "namespace": "team", "name": "app", "is_private": true}})
		}},
	} {
		t.Run(c.format, func(t *testing.T) {
			logs := &syncBuffer{}
			r := newRig(t)
			r.log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			// The payload names the registry by its public name, an alias.
			srv := r.serve(t, testConfig(config.Registry{Host: reg.Host, Aliases: []string{c.registry}, Insecure: true, Username: user, Password: password},
				config.Source{Name: c.format + "-hook", Format: c.format, Environment: "dev", Auth: &config.Auth{URLToken: "tok"}}))
			url := srv.URL + "/webhooks/" + c.format + "-hook/tok"

			// Present: the event carries the registry's digest and is
			// content-addressed.
			if code, got, _ := post(t, url, c.body("v1"), nil); code != http.StatusAccepted || got["accepted"] != 1.0 {
				t.Fatalf("%d %v", code, got)
			}
			// Missing: published without a digest.
			if code, got, _ := post(t, url, c.body("v404"), nil); code != http.StatusAccepted || got["accepted"] != 1.0 {
				t.Fatalf("%d %v", code, got)
			}
			evs := storedEvents(t, r.stream)
			if len(evs) != 2 {
				t.Fatalf("%d events, want 2", len(evs))
			}

			d := pushedData(t, evs[0])
			if d.Digest != want.digest.String() || d.MediaType != string(want.mediaType) || d.Size == 0 {
				t.Errorf("resolved: digest %q type %q size %d, want %s %s", d.Digest, d.MediaType, d.Size, want.digest, want.mediaType)
			}
			if d.Registry != reg.Host {
				t.Errorf("registry %q, want the environment's %q, not the payload's %q", d.Registry, reg.Host, c.registry)
			}
			if id := events.ID("image.pushed", "dev", reg.Host, "team/app", "v1", want.digest.String()); evs[0].ID() != id {
				t.Errorf("id %s, want the content-addressed %s", evs[0].ID(), id)
			}

			d = pushedData(t, evs[1])
			if d.Tag != "v404" || d.Digest != "" {
				t.Errorf("missing image: tag %q digest %q, want v404 without digest", d.Tag, d.Digest)
			}
			if id := events.ID("image.pushed", "dev", c.format+"-hook", d.UpstreamID); evs[1].ID() != id {
				t.Errorf("id %s, want the delivery-derived %s", evs[1].ID(), id)
			}
			if s := evs[1].Subject(); s != reg.Host+"/team/app:v404" {
				t.Errorf("subject %q", s)
			}

			out := logs.String()
			if !strings.Contains(out, "publishing without digest") || !strings.Contains(out, reg.Host+"/team/app:v404") {
				t.Errorf("no warning naming the image:\n%s", out)
			}
			if strings.Contains(out, password) || strings.Contains(out, "/tok") {
				t.Errorf("a secret in the logs:\n%s", out)
			}
		})
	}
}

// Without the environment's credentials the HEAD is refused, and the event
// goes out without a digest rather than not at all.
func TestResolveWithoutCredentials(t *testing.T) {
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{Username: "slipway", Password: "pw"})
	testkit.PushRandomImage(t, reg.Host+"/team/app:v1")
	r := newRig(t)
	srv := r.serve(t, testConfig(config.Registry{Host: reg.Host, Aliases: []string{"quay.io"}, Insecure: true, Username: "slipway", Password: "wrong"},
		config.Source{Name: "quay", Format: "quay", Environment: "dev", Auth: none()}))
	body := jsonBody(map[string]any{"repository": "team/app", "docker_url": "quay.io/team/app", "updated_tags": []string{"v1"}})
	if code, got, _ := post(t, srv.URL+"/webhooks/quay", body, nil); code != http.StatusAccepted || got["accepted"] != 1.0 {
		t.Fatalf("%d %v", code, got)
	}
	if d := pushedData(t, storedEvents(t, r.stream)[0]); d.Digest != "" {
		t.Fatalf("digest %q resolved with wrong credentials", d.Digest)
	}
}

func jsonBody(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// syncBuffer is a bytes.Buffer handlers may write to concurrently.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
