package webhook_test

import (
	"io"
	"net/http"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/services/notifier/notify/webhook"
)

// A receiver of Slipway's webhooks checks the signature on the raw body
// before it trusts the event (docs/notifications.md).
func ExampleVerify() {
	secret := []byte("the receiver's secret")
	http.HandleFunc("POST /slipway", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body", http.StatusBadRequest)
			return
		}
		if err := webhook.Verify(secret, r.Header.Get("X-Slipway-Signature"), body, time.Now(), 5*time.Minute); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		e, err := events.FromMsg(body)
		if err != nil {
			http.Error(w, "not a CloudEvent", http.StatusBadRequest)
			return
		}
		_ = e // … handle e, de-duplicating on e.ID() …
		w.WriteHeader(http.StatusNoContent)
	})
}
