package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/services/notifier"
)

// Tags the demo pushes.
const (
	demoGoodTag   = "1.4.0"
	demoBrokenTag = "1.5.0-broken"
)

// demoResult is what the scenario did, for the test.
type demoResult struct {
	// Events are all events of the stream, in stream order, up to the end
	// of the scenario.
	Events []events.Event
	// Later are the events after the scenario, until the demo stopped.
	Later []events.Event
	// Registries are the registries' hosts by environment.
	Registries map[string]string
	// GoodDigest and BrokenDigest are the digests of the two pushes.
	GoodDigest, BrokenDigest string
	// Images are the images the sample apps run at the end of the
	// scenario, by app id.
	Images map[string]string
}

// runDemo starts the stack, plays the scenario, prints what happens to out
// and, unless opts.Exit, keeps running until ctx ends.
func runDemo(ctx context.Context, out io.Writer, opts demoOptions) (*demoResult, error) {
	start := time.Now()
	con := newConsole(out, start)
	con.plain("Slipway demo: embedded NATS, three registries, two emulated DC/OS clusters (azure-int for dev and tst, vsphere-prd for prd), a Slack stand-in, ingest, promoter, deployer and notifier, all in this process.")

	stop := con.waiting("starting")
	s, err := startDemoStack(ctx, opts, con.notified)
	stop()
	if err != nil {
		return nil, err
	}
	defer s.close()

	con.plain("")
	con.plain("  console       %s  (open to anyone in the demo: console.auth.none)", s.consoleURL)
	con.plain("  NATS          %s", s.natsURL)
	con.plain("  ingest        %s", s.ingestURL)
	for _, env := range demoEnvs {
		con.plain("  %s registry  %s", env, s.registries[env].Host)
	}
	for _, a := range demoApps {
		con.plain("  %-13s %s  Marathon (emulated) for %s, running %s", a.Cluster, s.marathons[a.Cluster].URL, a.Env, a.ID)
	}
	con.plain("  promotions    dev → tst automatic, tst → prd approved by %s", demoApprover)
	con.plain("  Slack         %s (stand-in): approvals, promotions, failures and drift to %s; each app's deployments to %s (its slipway.notify label)",
		s.slack.APIURL, demoReleaseChannel, demoTeamChannel)
	con.plain("")

	log := newEventLog()
	cons, err := s.js.OrderedConsumer(ctx, bus.DefaultStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"slipway.>"},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, err
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		e, err := events.FromMsg(m.Data())
		if err != nil {
			return
		}
		log.add(e)
		con.event(e)
	})
	if err != nil {
		return nil, err
	}
	defer cc.Stop()

	res := &demoResult{Registries: map[string]string{}, Images: map[string]string{}}
	for env, r := range s.registries {
		res.Registries[env] = r.Host
	}
	// await waits for the first matching event after index from and
	// returns its index.
	await := func(what string, from int, match func(events.Event) bool) (events.Event, int, error) {
		stop := con.waiting("waiting for " + what)
		defer stop()
		wctx, cancel := context.WithTimeout(ctx, opts.StepTimeout)
		defer cancel()
		e, i, err := log.wait(wctx, from, match)
		if err != nil && ctx.Err() == nil {
			err = fmt.Errorf("%s did not happen within %s", what, opts.StepTimeout)
		}
		return e, i, err
	}
	deployed := func(typ events.Type, app demoApp, digest string) func(events.Event) bool {
		return func(e events.Event) bool {
			if events.Type(e.Type()) != typ {
				return false
			}
			d, err := events.DataAs[events.Deployment](e)
			return err == nil && d.Cluster == app.Cluster && d.AppID == app.ID && d.Digest == digest
		}
	}

	// 1. A release: pushed to dev, deployed, promoted to tst, deployed,
	// approved, promoted to prd, deployed.
	devRef := s.registries["dev"].Host + "/" + demoRepo
	con.say("pushing %s:%s (a new release of the sample app)", devRef, demoGoodTag)
	if res.GoodDigest, err = pushRandom(ctx, devRef+":"+demoGoodTag); err != nil {
		return nil, err
	}
	req, _, err := await("the approval request for prd", 0, func(e events.Event) bool {
		return events.Type(e.Type()) == events.TypeApprovalRequested
	})
	if err != nil {
		return nil, err
	}
	ar, err := events.DataAs[events.ApprovalRequested](req)
	if err != nil {
		return nil, err
	}
	// Whoever decides first: a person in the console during the pause, or
	// the demo in the release manager's name after it.
	decision := func(e events.Event) bool {
		t := events.Type(e.Type())
		if t != events.TypeApprovalGranted && t != events.TypeApprovalRejected {
			return false
		}
		d, err := events.DataAs[events.ApprovalDecision](e)
		return err == nil && d.ApprovalID == ar.ApprovalID
	}
	decided, ok := log.find(0, decision)
	if !ok && opts.ApprovalPause > 0 {
		con.say("approve the prd promotion in the console (%sapprovals), or the demo approves it as %s in %s", s.consoleURL, demoApprover, opts.ApprovalPause)
		cctx, cancel := context.WithCancel(ctx)
		go func() {
			if _, _, err := log.wait(cctx, 0, decision); err == nil {
				cancel()
			}
		}()
		err := con.countdown(cctx, "approving in", opts.ApprovalPause)
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil { // a decision arrived
			decided, ok = log.find(0, decision)
		}
	}
	switch {
	case ok && events.Type(decided.Type()) == events.TypeApprovalRejected:
		d, _ := events.DataAs[events.ApprovalDecision](decided)
		return nil, fmt.Errorf("the prd promotion was rejected by %s: the demo's release does not reach prd", d.By)
	case ok:
		d, _ := events.DataAs[events.ApprovalDecision](decided)
		con.say("the prd promotion was approved by %s (via %s)", d.By, orDash(d.Via))
	default:
		con.say("approving the prd promotion as %s (a person would press Approve in the console or in Slack)", demoApprover)
		if err := approve(ctx, s.ingestURL, ar.ApprovalID); err != nil {
			return nil, err
		}
	}
	for _, a := range demoApps {
		if _, _, err := await(fmt.Sprintf("the deployment of %s on %s", a.ID, a.Cluster), 0,
			deployed(events.TypeDeploymentSucceeded, a, res.GoodDigest)); err != nil {
			return nil, err
		}
	}
	con.say("%s:%s runs in dev, tst and prd", demoRepo, demoGoodTag)

	// 2. A broken image: its tasks never become healthy, the deployer rolls
	// /dev/web back. (The promotions take only releases, >=1.0.0 without a
	// pre-release, so it stays in dev.)
	con.say("pushing %s:%s (its tasks never become healthy; /dev/web's slipway.timeout is %s)", devRef, demoBrokenTag, opts.BrokenTimeout)
	if res.BrokenDigest, err = pushRandom(ctx, devRef+":"+demoBrokenTag); err != nil {
		return nil, err
	}
	if _, _, err := await("the rollback of /dev/web", 0, deployed(events.TypeDeploymentFailed, demoApps[0], res.BrokenDigest)); err != nil {
		return nil, err
	}
	// The team hears of the rollback before the summary (and before
	// --exit stops the notifier): wait, briefly, until it has dealt with
	// every event so far.
	s.notifierDrained(ctx, 10*time.Second)
	for _, a := range demoApps {
		res.Images[a.ID] = s.marathons[a.Cluster].Image(a.ID)
	}
	res.Events = log.all()
	con.say("scenario done; the apps run:")
	for _, a := range demoApps {
		con.plain("           %-9s on %-13s %s", a.ID, a.Cluster, longDigest.ReplaceAllString(res.Images[a.ID], "$1"))
	}
	if opts.Exit {
		return res, nil
	}

	scenario := len(res.Events)
	con.plain("%s", demoHints(s))
	<-ctx.Done()
	con.plain("")
	con.say("stopping")
	res.Later = log.all()[scenario:]
	return res, nil
}

// demoHints says how to go on. Every command works as printed, in sh and
// bash alike, from the repository's root.
func demoHints(s *demoStack) string {
	prd := demoApps[len(demoApps)-1]
	return fmt.Sprintf(`
Slipway keeps running. Push your own image to the dev registry (plain HTTP; crane:
go install github.com/google/go-containerregistry/cmd/crane@latest; docker accepts
127.0.0.1 as an insecure registry, Docker Desktop may need "insecure-registries"):

  tar -cf - README.md | crane append --insecure -f - -t %[1]s/%[2]s:1.6.0
  docker tag <your image> %[1]s/%[2]s:1.6.0 && docker push %[1]s/%[2]s:1.6.0

It is deployed on /dev/web, promoted to tst and deployed there, then waits for approval:

  go run ./cmd/slipway approvals list --url %[3]s --token %[4]s
  go run ./cmd/slipway approvals approve <id> --url %[3]s --token %[4]s

A tag containing "broken" never becomes healthy and is rolled back. Change an app by
hand, as someone with access to Marathon might, and the deployer reports the drift
within seconds (deployer.reconcileInterval is %[6]s here, 5m by default):

  curl -sS -X PUT %[7]s/v2/apps%[8]s -H 'Content-Type: application/json' -d '{"container":{"type":"DOCKER","docker":{"image":"%[9]s/%[2]s:1.3.0"}}}'

Watch:

  go run ./cmd/slipway events tail --nats %[5]s
  go run ./cmd/slipway status --nats %[5]s

Ctrl-C stops everything.`, s.registries["dev"].Host, demoRepo, s.ingestURL, demoApproverToken, s.natsURL,
		demoReconcile, s.marathons[prd.Cluster].URL, prd.ID, s.registries[prd.Env].Host)
}

// pushRandom pushes a small random image and returns its digest.
func pushRandom(ctx context.Context, ref string) (string, error) {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return "", err
	}
	img, err := random.Image(2048, 2)
	if err != nil {
		return "", err
	}
	if err := remote.Write(r, img, remote.WithContext(ctx)); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

// approve grants an approval through ingest's API, as the demo approver.
func approve(ctx context.Context, base, id string) error {
	body, _ := json.Marshal(map[string]string{"reason": "approved by slipway demo"})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/approvals/"+id+"/approve", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+demoApproverToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("approve %s: %s: %s", id, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// notifierDrained waits up to limit until the demo's Slack receiver has
// handled every event it was given (nothing pending, nothing unacked). A
// slow notifier does not hold the demo up for longer than that.
func (s *demoStack) notifierDrained(ctx context.Context, limit time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if c, err := s.js.Consumer(ctx, bus.DefaultStream, notifier.ConsumerName("slack")); err == nil {
			if info, err := c.Info(ctx); err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
