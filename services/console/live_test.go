package console

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

// waitTimeout bounds every wait on something asynchronous: a deadline,
// never a sleep.
const waitTimeout = 30 * time.Second

// natsRig is an embedded JetStream with the Slipway stream.
type natsRig struct {
	nats *testkit.NATSServer
	js   jetstream.JetStream
	pub  *bus.Publisher
}

func newNATSRig(t testing.TB) *natsRig {
	t.Helper()
	r := &natsRig{nats: testkit.NATS(t)}
	_, r.js = r.nats.Connect(t)
	if _, err := bus.EnsureStream(t.Context(), r.js, bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	r.pub = bus.NewPublisher(r.js, "")
	return r
}

// push publishes an image.pushed event of repo:tag@digest in env.
func (r *natsRig) push(t testing.TB, env, repo, tag, digest string) events.Event {
	t.Helper()
	d := events.ImagePushed{Environment: env, Registry: "registry." + env, Repository: repo, Tag: tag, Digest: digest,
		Source: env + "-registry", Format: "distribution", UpstreamID: repo + tag + digest, PushedAt: time.Now().UTC()}
	return r.publish(t, events.Spec{
		ID: events.ID("test-push", env, repo, tag, digest), Type: events.TypeImagePushed, Source: "/test",
		Environment: env, Subject: d.Ref().String(), Data: d,
	})
}

func (r *natsRig) publish(t testing.TB, spec events.Spec) events.Event {
	t.Helper()
	e, err := events.New(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.pub.Publish(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	return e
}

// digestOf is a valid-looking digest for n.
func digestOf(n int) string { return fmt.Sprintf("sha256:%064x", n) }

// eventually waits for cond, failing with what it says once the deadline
// passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", waitTimeout, what)
		}
		<-tick.C
	}
}
