package ingest_test

import (
	"log/slog"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// A push that names a registry nobody configured is never stored: the
// promoter would copy it onward and the clusters would run it. CNCF
// Distribution retries a refused delivery for ever, blocking every push
// behind it, so it gets its 202 with the foreign push counted as ignored;
// the rest of its delivery is stored.
func TestForeignRegistryPushIsNeverStored(t *testing.T) {
	logs := &syncBuffer{}
	r := newRig(t)
	r.log = slog.New(slog.NewTextHandler(logs, nil))
	srv := r.serve(t, testConfig(config.Registry{}, config.Source{Name: "dev-registry", Format: "distribution", Environment: "dev", Auth: none()}))
	url := srv.URL + "/webhooks/dev-registry"

	foreign := distPush("e2", "team/web", "6.6.6")
	foreign["request"].(map[string]any)["host"] = "127.0.0.1:5999"
	body := envelope(distPush("e1", "team/web", "1.0.0"), foreign)
	for range 2 { // the registry's retry is answered the same way, and stores nothing more
		code, got, _ := post(t, url, body, nil)
		if code != http.StatusAccepted || !reflect.DeepEqual(got, counts(1, 0, 1)) && !reflect.DeepEqual(got, counts(0, 1, 1)) {
			t.Fatalf("%d %v, want 202 with the foreign push ignored", code, got)
		}
	}
	evs := storedEvents(t, r.stream)
	if len(evs) != 1 || pushedData(t, evs[0]).Tag != "1.0.0" {
		t.Fatalf("stored %d events, want only the push of the environment's registry", len(evs))
	}
	if d := pushedData(t, evs[0]); d.Registry != devHost {
		t.Errorf("registry %q, want %q", d.Registry, devHost)
	}
	if n := metricValue(t, r.metrics, "slipway_ingest_events_total", map[string]string{"source": "dev-registry", "outcome": "foreign_registry"}); n != 2 {
		t.Errorf("foreign_registry counted %v times, want 2", n)
	}
	// One line (they are rate-limited) naming the source, the host and the
	// host expected.
	out := logs.String()
	if n := strings.Count(out, "foreign registry"); n != 1 {
		t.Errorf("%d log lines about the foreign registry, want 1:\n%s", n, out)
	}
	for _, want := range []string{"source=dev-registry", "host=127.0.0.1:5999", "expected_host=" + devHost} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// Every format whose payload names a host: a host that is not the
// environment's registry is refused, the way its sender can bear (400, or
// 202 with the push ignored for senders that retry a refusal for ever or
// disable the webhook over it), and nothing is stored; declared as an alias,
// the same delivery is accepted and the event names the environment's host.
func TestForeignRegistryPerFormat(t *testing.T) {
	structured := http.Header{"Content-Type": {"application/cloudevents+json"}}
	github := http.Header{"X-Github-Event": {"package"}, "X-Github-Delivery": {"72d3162e-cc78-11e3-81ab-4c9367dc0958"}, "Content-Type": {"application/json"}}
	for _, c := range []struct {
		format, file, host string
		header             http.Header
		senderSees         int // for a foreign host
	}{
		{"distribution", "distribution/push-manifest-tagged.json", "127.0.0.1:5001", nil, http.StatusAccepted},
		{"gitlab", "gitlab/push-multiarch.json", "registry.gitlab.example.com", nil, http.StatusAccepted},
		{"quay", "quay/push.json", "quay.io", nil, http.StatusAccepted},
		{"gar", "gar/insert_tagged.json", "europe-west1-docker.pkg.dev", nil, http.StatusAccepted},
		{"acr", "acr/push.json", "myregistry.azurecr.io", nil, http.StatusBadRequest},
		{"dockerhub", "dockerhub/push.json", "docker.io", nil, http.StatusBadRequest},
		{"ecr", "ecr/image_push.json", "123456789012.dkr.ecr.us-west-2.amazonaws.com", nil, http.StatusBadRequest},
		{"ghcr", "ghcr/package_published.json", "ghcr.io", github, http.StatusBadRequest},
		{"harbor", "harbor/push-artifact.json", "hub.harbor.com", nil, http.StatusBadRequest},
		{"cloudevents", "cloudevents/harbor_artifact_pushed.json", "harbor.example.com", structured, http.StatusBadRequest},
	} {
		t.Run(c.format, func(t *testing.T) {
			body, err := os.ReadFile("formats/testdata/" + c.file)
			if err != nil {
				t.Fatal(err)
			}
			src := config.Source{Name: "hook", Format: c.format, Environment: "dev", Auth: none()}

			r := newRig(t)
			srv := r.serve(t, testConfig(config.Registry{}, src))
			code, got, _ := post(t, srv.URL+"/webhooks/hook", body, c.header)
			if code != c.senderSees {
				t.Fatalf("foreign host %s: %d %v, want %d", c.host, code, got, c.senderSees)
			}
			if code == http.StatusBadRequest && !strings.Contains(got["error"].(string), c.host) {
				t.Errorf("error %q does not name the host %s", got["error"], c.host)
			}
			if code == http.StatusAccepted && (got["accepted"] != 0.0 || got["ignored"].(float64) < 1) {
				t.Errorf("foreign host %s: %v, want nothing accepted and the push ignored", c.host, got)
			}
			if n := len(storedEvents(t, r.stream)); n != 0 {
				t.Fatalf("%d events stored for a foreign registry", n)
			}

			// The host in upper case with the default port is still the alias.
			r = newRig(t)
			srv = r.serve(t, testConfig(config.Registry{Aliases: []string{strings.ToUpper(c.host)}}, src))
			if code, got, _ := post(t, srv.URL+"/webhooks/hook", body, c.header); code != http.StatusAccepted || got["accepted"].(float64) < 1 {
				t.Fatalf("aliased host %s: %d %v, want accepted", c.host, code, got)
			}
			for _, e := range storedEvents(t, r.stream) {
				if d := pushedData(t, e); d.Registry != devHost || !strings.HasPrefix(e.Subject(), devHost+"/") {
					t.Errorf("event names registry %q (subject %q), want the environment's %q", d.Registry, e.Subject(), devHost)
				}
			}
		})
	}
}
