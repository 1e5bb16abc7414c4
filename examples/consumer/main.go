// Command consumer is a custom Slipway consumer: one audit line on stdout for
// every deployment in production.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
)

func main() {
	url := flag.String("nats", cmp.Or(os.Getenv("NATS_URL"), nats.DefaultURL), "NATS server URL (env NATS_URL)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	nc, err := nats.Connect(*url, nats.Name("audit-prd-deployments"))
	if err == nil {
		defer nc.Close()
		err = run(ctx, nc, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(1)
	}
}

// run writes audit lines to out until ctx is cancelled or the connection closes.
func run(ctx context.Context, nc *nats.Conn, out io.Writer) error {
	js, _ := jetstream.New(nc) // fails only on invalid options
	prd := func(t events.Type) string { return events.FilterSubject(t, "prd") }
	cfg := bus.ConsumerConfig{Durable: "audit-prd-deployments", FilterSubjects: []string{
		prd(events.TypeDeploymentStarted), prd(events.TypeDeploymentSucceeded), prd(events.TypeDeploymentFailed)}}
	c, err := bus.Consume(ctx, js, cfg, func(_ context.Context, e events.Event) error {
		d, err := events.DataAs[events.Deployment](e)
		if err != nil {
			return bus.Permanent(err) // no retry can fix the payload
		}
		platform, deployment, _ := d.Rollout() // the same on Marathon, Docker hosts and Swarms
		_, err = fmt.Fprintf(out, "%s %s cluster=%s platform=%s app=%s image=%s digest=%s deployment=%s id=%s\n",
			e.Time().Format(time.RFC3339), events.Type(e.Type()).Short(), d.Cluster, platform, d.AppID, d.ToImage, d.Digest, deployment, e.ID())
		return err
	})
	if err != nil {
		return err
	}
	<-c.Done() // cancelling ctx stops the consumer
	return c.Err()
}
