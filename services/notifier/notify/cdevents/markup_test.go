package cdevents_test

import (
	"testing"

	cdeventsv05 "github.com/cdevents/sdk-go/pkg/api/v05"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/services/notifier/render/rendertest"
)

// TestPayloadMarkupArrivesAsJSONData: a CDEvent is JSON for machines; a
// hostile actor is data in it, valid for the CDEvents schema, and arrives
// unchanged (escaping it for a display is the consumer's job).
func TestPayloadMarkupArrivesAsJSONData(t *testing.T) {
	s := newSink(t)
	r := newReceiver(t, s.srv.URL)
	e := event(t, events.TypeImagePushed, "dev", "127.0.0.1:5001/apps/web:1.4.0@"+digest, events.ImagePushed{
		Environment: "dev", Registry: "127.0.0.1:5001", Repository: "apps/web", Tag: "1.4.0", Digest: digest,
		Actor: rendertest.Hostile, Source: "dev-registry", Format: "distribution", UpstreamID: "u1", PushedAt: eventTime,
	})
	got := send(t, s, r, e)
	ev, ok := got.cd.(*cdeventsv05.ArtifactPublishedEvent)
	if !ok {
		t.Fatalf("CDEvent %T", got.cd)
	}
	if ev.Subject.Content.User != rendertest.Hostile {
		t.Errorf("user %q, want the actor unchanged", ev.Subject.Content.User)
	}
}
