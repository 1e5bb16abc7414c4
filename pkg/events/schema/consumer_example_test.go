// This file is the Go consumer shown in docs/events.md (from the package
// clause to the end marker), kept as code so that the documented example
// always compiles against the current API.

package schema_test

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
)

func consume(ctx context.Context, natsURL string) error {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	// A durable consumer keeps its place while the process is down;
	// processes that share the name share the work.
	c, err := bus.Consume(ctx, js, bus.ConsumerConfig{
		Durable: "my-consumer",
		FilterSubjects: []string{
			events.FilterSubject(events.TypeImagePushed, ""),         // slipway.image.pushed.*
			events.FilterSubject(events.TypeDeploymentFailed, "prd"), // slipway.deployment.failed.prd
		},
	}, handle)
	if err != nil {
		return err
	}
	<-ctx.Done()
	c.Stop()
	return c.Err()
}

// handle runs once per delivery, in a span that continues the producer's
// trace. Delivery is at least once, so it must tolerate an event id it has
// seen before. An error retries the event with back-off; bus.Permanent, or
// failing on the last attempt, dead-letters it.
func handle(ctx context.Context, e events.Event) error {
	switch events.Type(e.Type()) {
	case events.TypeImagePushed:
		d, err := events.DataAs[events.ImagePushed](e)
		if err != nil {
			return bus.Permanent(err) // retrying cannot fix the data
		}
		fmt.Printf("%s pushed %s to %s\n", d.Actor, e.Subject(), d.Environment)
	case events.TypeDeploymentFailed:
		d, err := events.DataAs[events.Deployment](e)
		if err != nil {
			return bus.Permanent(err)
		}
		fmt.Printf("%s on %s failed: %s (rolled back: %t)\n", d.ToImage, e.Subject(), d.Reason, d.RolledBack)
	}
	return nil
}

// end of example

// The example is compiled, never run: it needs a NATS server.
var _ = consume
