package webhook_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/slipway-cd/slipway/services/notifier/render/rendertest"
)

// TestPayloadMarkupArrivesAsJSONData: a webhook carries the event itself,
// JSON-encoded: hostile text in it is data, not markup, and arrives
// byte for byte (escaping it for a display is the receiver's job).
func TestPayloadMarkupArrivesAsJSONData(t *testing.T) {
	h := newHookServer(t, func(w http.ResponseWriter, _ int) { w.WriteHeader(http.StatusNoContent) })
	r := receiver(t, h.srv.URL, string(secret))
	n := rendertest.Notifications(t)[0] // image.pushed
	if err := r.Notify(t.Context(), n); err != nil {
		t.Fatal(err)
	}
	if len(h.bodies) != 1 {
		t.Fatalf("%d requests", len(h.bodies))
	}
	var ce struct {
		Data struct{ Actor, Repository, Tag string }
	}
	if err := json.Unmarshal(h.bodies[0], &ce); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	if ce.Data.Actor != rendertest.Hostile || ce.Data.Repository != "apps/"+rendertest.SlackPing || ce.Data.Tag != rendertest.MarkdownLink {
		t.Errorf("data = %+v, want the event's values unchanged", ce.Data)
	}
}
