package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

// actionsConfig is withRoles' approvers with a cluster in dev and one in
// prd, and a rule promoting payments images from dev to prd.
func actionsConfig() *config.Config {
	cfg := withRoles(approversConfig())
	cfg.Clusters = []config.Cluster{
		{Name: "dev-docker", Environment: "dev", Type: config.ClusterDocker},
		{Name: "prd-swarm", Environment: "prd", Type: config.ClusterSwarm},
	}
	cfg.Promotions = []config.Promotion{{Name: "dev-to-prd", From: "dev", To: "prd", Repositories: []string{"payments/**"}}}
	return cfg
}

// act posts an action with a bearer token and an Idempotency-Key (none if
// empty), and returns the status and the raw body.
func act(t *testing.T, url, token, action, key, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/actions/"+action, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	code, raw, _ := send(t, req)
	return code, raw
}

// actionEvents returns the action.requested events stored.
func actionEvents(t *testing.T, a *approvalRig) []events.Event {
	t.Helper()
	var out []events.Event
	for _, e := range storedEvents(t, a.stream) {
		if e.Type() == string(events.TypeActionRequested) {
			out = append(out, e)
		}
	}
	return out
}

// accepted posts an action that must be accepted, and returns its id.
func accepted(t *testing.T, url, token, action, key, body string) string {
	t.Helper()
	code, raw := act(t, url, token, action, key, body)
	return acceptedID(t, code, raw)
}

// acceptedID returns the actionId of a 202.
func acceptedID(t *testing.T, code int, raw []byte) string {
	t.Helper()
	var out struct {
		ActionID string `json:"actionId"`
	}
	if code != http.StatusAccepted || json.Unmarshal(raw, &out) != nil || out.ActionID == "" {
		t.Fatalf("%d %s, want 202 with an actionId", code, raw)
	}
	return out.ActionID
}

func TestActionWithoutOperateIsForbidden(t *testing.T) {
	a := newApprovalRigWith(t, actionsConfig())
	for _, c := range []struct{ name, action, body, want string }{
		{"rollback in prd", "rollback", `{"cluster":"prd-swarm","appId":"payments-api"}`, "alice may not operate in prd"},
		// Approving in dev is not operating there.
		{"redeploy in dev", "redeploy", `{"cluster":"dev-docker","appId":"payments-api"}`, "alice may not operate in dev"},
		{"promote to prd", "promote", `{"image":"` + devHost + `/payments/api:1.4.2"}`, "alice may not operate in prd"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, raw := act(t, a.url, aliceToken, c.action, "", c.body)
			if code != http.StatusForbidden || errorOf(t, raw) != c.want {
				t.Errorf("%d %s, want 403 %q", code, raw, c.want)
			}
		})
	}
	if evs := actionEvents(t, a); len(evs) != 0 {
		t.Errorf("refused actions announced %d events", len(evs))
	}
	if logs := a.logs.String(); !strings.Contains(logs, `level=INFO msg="action refused: no operate role in the environment"`) {
		t.Errorf("the refusal is not logged at INFO:\n%s", logs)
	}
}

func TestActionIsAnnouncedWithActorViaAndTarget(t *testing.T) {
	a := newApprovalRigWith(t, actionsConfig())
	id := accepted(t, a.url, bobToken, "rollback", "", `{"cluster":"prd-swarm","appId":"payments-api","reason":"1.4.2 leaks memory"}`)
	evs := actionEvents(t, a)
	if len(evs) != 1 || evs[0].ID() != id {
		t.Fatalf("%d action events, want exactly the one with id %s", len(evs), id)
	}
	d, err := events.DataAs[events.ActionRequested](evs[0])
	if err != nil {
		t.Fatal(err)
	}
	want := events.ActionTarget{Environment: "prd", Cluster: "prd-swarm", AppID: "payments-api"}
	if d.Action != events.ActionRollback || d.Actor != "bob" || d.Via != events.ViaAPI || d.Target != want || d.Reason != "1.4.2 leaks memory" {
		t.Errorf("action %+v, want a rollback by bob via api of %+v", d, want)
	}
	if got := events.EnvironmentOf(evs[0]); got != "prd" {
		t.Errorf("the event's environment is %q, want prd", got)
	}

	// A promote names the rule that takes the image from its environment,
	// and its target environment.
	image := devHost + "/payments/api:1.4.2@" + digestOf("payments/api:1.4.2")
	id = accepted(t, a.url, bobToken, "promote", "", `{"image":"`+image+`"}`)
	evs = actionEvents(t, a)
	if len(evs) != 2 || evs[1].ID() != id {
		t.Fatalf("%d action events, want 2", len(evs))
	}
	p, _ := events.DataAs[events.ActionRequested](evs[1])
	if p.Action != events.ActionPromote || p.Actor != "bob" || p.Target.Environment != "prd" || p.Target.Promotion != "dev-to-prd" || p.Target.Image != image {
		t.Errorf("promote %+v", p)
	}
}

func TestSameIdempotencyKeyIsAnnouncedOnce(t *testing.T) {
	a := newApprovalRigWith(t, actionsConfig())
	const body = `{"cluster":"dev-docker","appId":"payments-api"}`
	first := accepted(t, a.url, bobToken, "redeploy", "deploy-42", body)
	again := accepted(t, a.url, bobToken, "redeploy", "deploy-42", body)
	if first != again {
		t.Errorf("the same key gave actions %s and %s", first, again)
	}
	if evs := actionEvents(t, a); len(evs) != 1 {
		t.Fatalf("%d action events for one key, want 1", len(evs))
	}
	// Another key, or none, is another action.
	accepted(t, a.url, bobToken, "redeploy", "deploy-43", body)
	accepted(t, a.url, bobToken, "redeploy", "", body)
	if evs := actionEvents(t, a); len(evs) != 3 {
		t.Errorf("%d action events, want 3", len(evs))
	}
}

func TestActionRequestsThatNameNothingKnown(t *testing.T) {
	a := newApprovalRigWith(t, actionsConfig())
	for _, c := range []struct {
		name, token, action, key, body string
		code                           int
		want                           string
	}{
		{"no token", "", "rollback", "", `{"cluster":"prd-swarm","appId":"x"}`, http.StatusUnauthorized, "unauthorized"},
		{"unknown token", "wrong-token", "rollback", "", `{"cluster":"prd-swarm","appId":"x"}`, http.StatusUnauthorized, "unauthorized"},
		{"unknown action", bobToken, "restart", "", `{}`, http.StatusNotFound, `no action "restart" (one of rollback, redeploy, promote, redrive)`},
		{"unknown cluster", bobToken, "rollback", "", `{"cluster":"nope","appId":"x"}`, http.StatusNotFound, `no cluster "nope"`},
		{"unknown rule", bobToken, "promote", "", `{"image":"` + devHost + `/payments/api:1.4.2","promotion":"nope"}`, http.StatusNotFound, `no promotion rule "nope"`},
		{"no rule takes the image", bobToken, "promote", "", `{"image":"` + devHost + `/billing/api:1.0.0"}`, http.StatusBadRequest, "no promotion rule promotes billing/api:1.0.0"},
		{"no workload", bobToken, "redeploy", "", `{"cluster":"prd-swarm"}`, http.StatusBadRequest, "name the workload"},
		{"no dead letter", bobToken, "redrive", "", `{"sequence":7}`, http.StatusNotFound, "no dead letter 7"},
		{"unknown field", bobToken, "rollback", "", `{"cluster":"prd-swarm","app":"x"}`, http.StatusBadRequest, `unknown field "app"`},
		{"key with a space", bobToken, "rollback", "a b", `{"cluster":"prd-swarm","appId":"x"}`, http.StatusBadRequest, "Idempotency-Key must be"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, raw := act(t, a.url, c.token, c.action, c.key, c.body)
			if code != c.code || !strings.Contains(errorOf(t, raw), c.want) {
				t.Errorf("%d %s, want %d containing %q", code, raw, c.code, c.want)
			}
		})
	}
	if evs := actionEvents(t, a); len(evs) != 0 {
		t.Errorf("refused requests announced %d events", len(evs))
	}
	a.noTokensLogged(t)
}

// Without roles any configured approver may act, as any may decide.
func TestWithoutRolesAnyApproverMayAct(t *testing.T) {
	cfg := actionsConfig()
	cfg.Roles = nil
	a := newApprovalRigWith(t, cfg)
	accepted(t, a.url, carolToken, "redeploy", "", `{"cluster":"prd-swarm","appId":"payments-api"}`)
	if evs := actionEvents(t, a); len(evs) != 1 {
		t.Errorf("%d action events, want 1", len(evs))
	}
}

// TestRedriveIsAnnouncedThenCarriedOut: a dead letter of prd needs operate
// in prd; once announced, the redrive is attempted at once. Here the
// event stream still knows the event (its duplicate window), so the dead
// letter is kept and the answer says from when a redrive can take effect.
func TestRedriveIsAnnouncedThenCarriedOut(t *testing.T) {
	a := newApprovalRigWith(t, actionsConfig())
	seq := deadLetter(t, a, "prd")

	code, raw := act(t, a.url, aliceToken, "redrive", "", `{"sequence":`+jsonNumber(seq)+`}`)
	if code != http.StatusForbidden || errorOf(t, raw) != "alice may not operate in prd" {
		t.Fatalf("dev-only approver redriving prd's dead letter: %d %s", code, raw)
	}
	code, raw = act(t, a.url, bobToken, "redrive", "", `{"sequence":`+jsonNumber(seq)+`,"reason":"the registry is back"}`)
	id := acceptedID(t, code, raw)
	var out struct {
		Result    string    `json:"result"`
		NotBefore time.Time `json:"notBefore"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.Result != "kept" || out.NotBefore.IsZero() {
		t.Errorf("redrive answer %s, want result kept with notBefore", raw)
	}
	evs := actionEvents(t, a)
	if len(evs) != 1 || evs[0].ID() != id {
		t.Fatalf("%d action events, want 1 with id %s", len(evs), id)
	}
	d, _ := events.DataAs[events.ActionRequested](evs[0])
	if d.Action != events.ActionRedrive || d.Actor != "bob" || d.Target.Environment != "prd" || d.Target.Sequence != seq || d.Target.EventID == "" {
		t.Errorf("redrive action %+v", d)
	}
	if _, err := bus.GetDeadLetter(t.Context(), a.js, bus.DeadLetterStreamName(bus.DefaultStream), seq); err != nil {
		t.Errorf("the kept dead letter is gone: %v", err)
	}
}

// deadLetter has a real consumer give up on an event of env at once, and
// returns the dead letter's sequence.
func deadLetter(t *testing.T, a *approvalRig, env string) uint64 {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	c, err := bus.Consume(ctx, a.js, bus.ConsumerConfig{Durable: "strict",
		FilterSubjects: []string{"slipway.deployment.succeeded." + env}, Logger: testLogger()}, func(context.Context, events.Event) error {
		return bus.Permanent(errors.New("manifest unknown"))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	e, err := events.New(t.Context(), events.Spec{
		ID: events.ID("test", "dead"), Type: events.TypeDeploymentSucceeded, Source: "/slipway/test",
		Environment: env, Subject: "prd-swarm:payments-api",
		Data: events.Deployment{Cluster: "prd-swarm", Environment: env, AppID: "payments-api", ToImage: "registry.prd.example/payments/api:1.4.2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.NewPublisher(a.js, "").Publish(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	var seq uint64
	testkit.WaitFor(t, "the dead letter", func() bool {
		dls, err := bus.ListDeadLetters(t.Context(), a.js, bus.DeadLetterStreamName(bus.DefaultStream))
		if err == nil && len(dls) > 0 && dls[0].EventID == e.ID() {
			seq = dls[0].Seq
		}
		return seq != 0
	})
	return seq
}

func jsonNumber(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
