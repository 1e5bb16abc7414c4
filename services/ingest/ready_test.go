package ingest_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

// TestReadyzSaysNotReadyWhileEventsCannotBeStored makes a NATS server that
// ingest does not run refuse to store (the stream at a limit that refuses
// new messages): the webhook is answered 503 and /readyz says not ready,
// with the server's reason, until a webhook is stored again.
func TestReadyzSaysNotReadyWhileEventsCannotBeStored(t *testing.T) {
	r := newRig(t)
	srv := r.serve(t, testConfig(config.Registry{}, config.Source{Name: "dev-registry", Format: "distribution", Environment: "dev", Auth: none()}))
	hook := srv.URL + "/webhooks/dev-registry"
	if code, body, _ := post(t, hook, envelope(distPush("e1", "team/web", "1")), nil); code != http.StatusAccepted {
		t.Fatalf("first push: %d %v", code, body)
	}

	info, err := r.stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	open := info.Config
	full := open
	full.MaxMsgs, full.Discard = 1, jetstream.DiscardNew
	if _, err := r.js.UpdateStream(t.Context(), full); err != nil {
		t.Fatal(err)
	}
	if code, body, _ := post(t, hook, envelope(distPush("e2", "team/web", "2")), nil); code != http.StatusServiceUnavailable {
		t.Fatalf("push to a stream that refuses: %d %v, want 503", code, body)
	}
	code, failed := testkit.Readyz(t, srv.URL+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(failed["publish"], "maximum messages exceeded") {
		t.Fatalf("/readyz while the stream refuses: %d %v, want 503 with the server's reason under publish", code, failed)
	}

	if _, err := r.js.UpdateStream(t.Context(), open); err != nil {
		t.Fatal(err)
	}
	if code, body, _ := post(t, hook, envelope(distPush("e2", "team/web", "2")), nil); code != http.StatusAccepted {
		t.Fatalf("the registry's retry: %d %v", code, body)
	}
	if code, failed := testkit.Readyz(t, srv.URL+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz once storing again: %d %v", code, failed)
	}
}
