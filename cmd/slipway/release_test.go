package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/services/notifier"
	"github.com/slipway-cd/slipway/services/notifier/notify/webhook"
	"github.com/slipway-cd/slipway/services/promoter"
)

// auditHook is a webhook receiver that checks Slipway's signature as a
// real one would, and counts what it gets.
type auditHook struct {
	secret []byte
	mu     sync.Mutex
	got    map[string]int // event id → deliveries
	bad    int
}

func (h *auditHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := webhook.Verify(h.secret, r.Header.Get("X-Slipway-Signature"), body, time.Now(), 5*time.Minute); err != nil {
		h.bad++
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	e, err := events.FromMsg(body)
	if err != nil {
		h.bad++
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.got[e.ID()]++
	w.WriteHeader(http.StatusNoContent)
}

// TestFullRelease is a release from push to production, as a team sees it:
// pushed to dev, deployed on the integration cluster, promoted to tst,
// approved in Slack by the release manager, promoted to prd, deployed on the
// production cluster — one Slack thread with the replies in the order the
// events happened, and every event once at the audit webhook.
func TestFullRelease(t *testing.T) {
	ns := testkit.NATS(t)
	slack := testkit.NewSlack(t, "xoxb-slipway", "#deploys")
	hook := &auditHook{secret: []byte("hook-s3cret"), got: map[string]int{}}
	hookSrv := httptest.NewServer(hook)
	t.Cleanup(hookSrv.Close)
	azure, vsphere := startMarathon(t), startMarathon(t)
	relay := testkit.NewSMTP(t, "slipway", "mail-pw")

	common := fmt.Sprintf(`
approvers:
  - { name: release-manager, token: rm-t0ken, slackUserId: U0RM }
notify:
  receivers:
    - name: team-slack
      slack: { token: xoxb-slipway, channel: "#deploys", apiUrl: %q, signingSecret: slack-s1gning }
    - name: audit-hook
      webhook: { url: %q, secret: hook-s3cret }
    - name: release-mail
      email: { smtp: %q, username: slipway, password: mail-pw, from: slipway@example.com, to: [releases@example.com], caFile: %q }
  routes:
    - match: { types: ["deployment.*"], environments: [prd] }
      receivers: [release-mail]
      continue: true
    - match: { types: ["image.pushed"], environments: [dev] }
      receivers: [team-slack]
      continue: true
    - match: { types: ["deployment.succeeded", "deployment.failed", "image.promoted", "approval.*"] }
      receivers: [team-slack]
      continue: true
    - receivers: [audit-hook]
ops: { listen: "off" }
deployer: { pollInterval: 100ms }
`, slack.APIURL, hookSrv.URL, relay.Addr, relay.CAFile)
	sources := `
ingest:
  listen: "127.0.0.1:0"
  sources:
    - { name: dev-registry, format: distribution, environment: dev, auth: { none: true } }
    - { name: tst-registry, format: distribution, environment: tst, auth: { none: true } }
    - { name: prd-registry, format: distribution, environment: prd, auth: { none: true } }
`
	parse := func(doc string) *config.Config {
		t.Helper()
		cfg, err := config.Parse([]byte(doc), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	// The registries need ingest's address, and ingest their hosts (it
	// refuses pushes of any other registry): take the address first.
	addr := testkit.FreeAddr(t)
	reg := map[string]*testkit.Registry{}
	for _, env := range []string{"dev", "tst", "prd"} {
		reg[env] = testkit.NewRegistry(t, testkit.RegistryOptions{NotifyURL: "http://" + addr + "/webhooks/" + env + "-registry"})
	}
	ingestCfg := parse(fmt.Sprintf(`
nats: { url: %q }
environments:
  - { name: dev, registry: { host: %q, insecure: true } }
  - { name: tst, registry: { host: %q, insecure: true } }
  - { name: prd, registry: { host: %q, insecure: true } }
%s%s`, ns.URL, reg["dev"].Host, reg["tst"].Host, reg["prd"].Host, sources, common))
	ingestCfg.Ingest.Listen = addr
	_, js := ns.Connect(t)
	if _, err := bus.EnsureStream(t.Context(), js, ingestCfg.StreamConfig()); err != nil {
		t.Fatal(err)
	}
	stream := testkit.Record(t, js, "slipway.>")
	startIngest(t, ingestCfg)

	app := func(id, host string) string {
		return fmt.Sprintf(`{"id":%q,"instances":1,"labels":{"slipway.policy":"all"},"container":{"type":"DOCKER","docker":{"image":"%s/apps/web:1.3.0"}}}`, id, host)
	}
	azure.load(t, app("/dev/web", reg["dev"].Host))
	vsphere.load(t, app("/prd/web", reg["prd"].Host))
	cfg := parse(fmt.Sprintf(`
nats: { url: %q }
environments:
  - { name: dev, registry: { host: %q, insecure: true } }
  - { name: tst, registry: { host: %q, insecure: true } }
  - { name: prd, registry: { host: %q, insecure: true } }
promotions:
  - { name: dev-to-tst, from: dev, to: tst, repositories: ["apps/**"] }
  - { name: tst-to-prd, from: tst, to: prd, repositories: ["apps/**"], approval: { required: true, approvers: [release-manager] } }
clusters:
  - { name: azure-int, environment: dev, marathon: { url: %q } }
  - { name: vsphere-prd, environment: prd, marathon: { url: %q } }
%s%s`, ns.URL, reg["dev"].Host, reg["tst"].Host, reg["prd"].Host, azure.url, vsphere.url, sources, common))
	runService(t, cfg, promoter.New(), deployer.New(), notifier.New())
	for _, c := range []string{promoter.ConsumerName, deployer.ConsumerName("azure-int"), deployer.ConsumerName("vsphere-prd"),
		notifier.ConsumerName("team-slack"), notifier.ConsumerName("audit-hook"), notifier.ConsumerName("release-mail")} {
		testkit.WaitFor(t, "consumer "+c, func() bool {
			_, err := js.Consumer(t.Context(), bus.DefaultStream, c)
			return err == nil
		})
	}

	testkit.PushRandomImage(t, reg["dev"].Host+"/apps/web:1.4.0")
	digest := testkit.Digest(t, reg["dev"].Host+"/apps/web:1.4.0")

	// The release manager presses Approve on the approval message.
	stream.Wait(t, events.TypeApprovalRequested, 1)
	var approvalMsg testkit.SlackMessage
	testkit.WaitFor(t, "the approval message in Slack", func() bool {
		for _, m := range slack.Messages("#deploys") {
			for _, b := range m.Buttons() {
				if b.ActionID == "slipway_approve" {
					approvalMsg = m
					return true
				}
			}
		}
		return false
	})
	var approvalID string
	for _, b := range approvalMsg.Buttons() {
		if b.ActionID == "slipway_approve" {
			approvalID = b.Value
		}
	}
	if code, body := slack.Interact(t, "http://"+addr+"/slack/interactions", "slack-s1gning", "U0RM", "slipway_approve", approvalID, approvalMsg); code != http.StatusOK {
		t.Fatalf("interaction: %d %s", code, body)
	}

	succeeded := stream.Wait(t, events.TypeDeploymentSucceeded, 2)
	prd := map[string]bool{}
	for _, e := range succeeded {
		d, _ := events.DataAs[events.Deployment](e)
		prd[d.Cluster] = d.Digest == digest
	}
	if !prd["azure-int"] || !prd["vsphere-prd"] {
		t.Fatalf("deployments: %v", prd)
	}

	// The Slack thread: one parent, a reply per routed event, in stream order.
	routed := func(e events.Event) bool {
		switch events.Type(e.Type()) {
		case events.TypeImagePushed:
			return events.EnvironmentOf(e) == "dev"
		case events.TypeDeploymentSucceeded, events.TypeDeploymentFailed, events.TypeImagePromoted,
			events.TypeApprovalRequested, events.TypeApprovalGranted, events.TypeApprovalRejected:
			return true
		}
		return false
	}
	var want []string // the routed events, in stream order
	for _, e := range stream.All() {
		if routed(e) {
			want = append(want, e.Type())
		}
	}
	if len(want) != 7 {
		t.Fatalf("%d routed events, want 7 (pushed, 2 deployed, 2 promoted, approval requested and granted): %v", len(want), want)
	}
	testkit.WaitFor(t, "every reply in Slack", func() bool {
		parents := slack.Parents("#deploys")
		return len(parents) == 1 && len(slack.Replies("#deploys", parents[0].TS)) == len(want)
	})
	parent := slack.Parents("#deploys")[0]
	replies := slack.Replies("#deploys", parent.TS)
	words := map[string]string{
		"dev.slipway.image.pushed.v1": "pushed", "dev.slipway.deployment.succeeded.v1": "deployed",
		"dev.slipway.image.promoted.v1": "promoted", "dev.slipway.approval.requested.v1": "approval",
		"dev.slipway.approval.granted.v1": "approved",
	}
	for i, typ := range want {
		if !strings.Contains(strings.ToLower(replies[i].Content()), words[typ]) {
			t.Errorf("reply %d is %q, want the %s event (%q)", i, replies[i].Content(), typ, words[typ])
		}
	}
	if !strings.Contains(strings.ToLower(parent.Content()), "vsphere-prd") {
		t.Errorf("the parent shows %q, want the latest state (deployed on vsphere-prd)", parent.Content())
	}
	// The approval message now says who decided, without its buttons.
	if m, _ := slack.Message(approvalMsg.Channel, approvalMsg.TS); len(m.Buttons()) != 0 || !strings.Contains(m.Content(), "release-manager") {
		t.Errorf("approval message after the decision: %q, buttons %v", m.Content(), m.Buttons())
	}

	// The release mail: prd's deployment.started and .succeeded, once each,
	// over TLS.
	var prdDeployments []string
	for _, e := range stream.All() {
		if strings.HasPrefix(e.Type(), "dev.slipway.deployment.") && events.EnvironmentOf(e) == "prd" {
			prdDeployments = append(prdDeployments, e.ID())
		}
	}
	testkit.WaitFor(t, "the release mails", func() bool { return len(relay.Mails()) >= len(prdDeployments) })
	mailed := map[string]int{}
	for _, m := range relay.Mails() {
		if !m.TLS {
			t.Error("a mail was sent without TLS")
		}
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		mailed[msg.Header.Get("X-Slipway-Event-Id")]++
	}
	for _, id := range prdDeployments {
		if mailed[id] != 1 {
			t.Errorf("event %s mailed %d times, want once", id, mailed[id])
		}
	}
	if len(relay.Mails()) != len(prdDeployments) {
		t.Errorf("%d mails, want %d", len(relay.Mails()), len(prdDeployments))
	}

	// The audit webhook: every event once, all signed.
	all := stream.All()
	ids := make([]string, len(all))
	for i, e := range all {
		ids[i] = e.ID()
	}
	testkit.WaitFor(t, "every event at the audit webhook", func() bool {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		for _, id := range ids {
			if hook.got[id] == 0 {
				return false
			}
		}
		return true
	})
	hook.mu.Lock()
	defer hook.mu.Unlock()
	for id, n := range hook.got {
		if n != 1 {
			t.Errorf("event %s reached the webhook %d times", id, n)
		}
	}
	if hook.bad != 0 {
		t.Errorf("%d deliveries failed the signature or shape check", hook.bad)
	}
}
