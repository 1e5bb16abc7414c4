package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/approval"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/health"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/ingest"
)

// approvalsAPI is a real ingest handler (httptest) on an embedded
// JetStream, with the approvers alice and bob.
type approvalsAPI struct {
	url    string
	store  *approval.Store
	stream jetstream.Stream
}

func startApprovalsAPI(t *testing.T) *approvalsAPI {
	t.Helper()
	_, js := testkit.NATS(t).Connect(t)
	stream, err := bus.EnsureStream(t.Context(), js, bus.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{
		Environments: []config.Environment{
			{Name: "tst", Registry: config.Registry{Host: "registry.tst.example"}},
			{Name: "prd", Registry: config.Registry{Host: "registry.prd.example"}},
		},
		Approvers: []config.Approver{{Name: "alice", Token: "alice-t0ken"}, {Name: "bob", Token: "bob-t0ken"}},
	}
	h, err := ingest.NewHandler(app.Deps{Config: cfg, Log: slog.New(slog.DiscardHandler), JS: js, Stream: bus.DefaultStream,
		Metrics: prometheus.NewRegistry(), Health: health.NewChecker()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	store, err := approval.Bind(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	return &approvalsAPI{url: srv.URL, store: store, stream: stream}
}

func (a *approvalsAPI) create(t *testing.T, id string, requested time.Time, approvers ...string) approval.Record {
	t.Helper()
	digest := "sha256:" + strings.Repeat("ab", 32)
	r := approval.Record{
		ID: id, Promotion: "tst-to-prd",
		From:      events.ImageRef{Environment: "tst", Registry: "registry.tst.example", Repository: "payments/api", Tag: "1.4.2", Digest: digest},
		To:        events.ImageRef{Environment: "prd", Registry: "registry.prd.example", Repository: "payments/api", Tag: "1.4.2", Digest: digest},
		Approvers: approvers, RequestedAt: requested, ExpiresAt: requested.Add(72 * time.Hour),
		State: approval.Pending, CauseID: events.ID("push", id), Environment: "prd",
	}
	if created, err := a.store.Create(t.Context(), r); err != nil || !created {
		t.Fatalf("create %s: %t %v", id, created, err)
	}
	return r
}

// events returns the decision events on the stream.
func (a *approvalsAPI) decisions(t *testing.T) []events.Event {
	t.Helper()
	info, err := a.stream.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Event
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := a.stream.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		e, err := events.FromMsg(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if t := events.Type(e.Type()); t == events.TypeApprovalGranted || t == events.TypeApprovalRejected {
			out = append(out, e)
		}
	}
	return out
}

func TestApprovalsCommands(t *testing.T) {
	api := startApprovalsAPI(t)
	now := time.Now().UTC().Truncate(time.Second)
	apr1 := api.create(t, "apr-1", now.Add(-time.Hour), "alice")
	api.create(t, "apr-2", now) // any approver
	t.Setenv(tokenEnv, "")
	ctx := context.Background()
	withURL := func(args ...string) []string { return append(args, "--url", api.url) }

	out, err := execute(t, ctx, withURL("approvals", "list", "--token", "bob-t0ken")...)
	if err != nil {
		t.Fatalf("list: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "EXPIRES/DECIDED BY") ||
		!strings.HasPrefix(lines[1], "apr-2") || !strings.HasPrefix(lines[2], "apr-1") {
		t.Fatalf("list, newest first:\n%s", out)
	}
	for _, want := range []string{"tst-to-prd", "registry.tst.example/payments/api:1.4.2 → registry.prd.example/payments/api:1.4.2", "pending", "expires " + apr1.ExpiresAt.Local().Format("2006-01-02 15:04")} {
		if !strings.Contains(lines[2], want) {
			t.Errorf("list row %q lacks %q", lines[2], want)
		}
	}

	// alice approves with a reason.
	out, err = execute(t, ctx, withURL("approvals", "approve", "apr-1", "--reason", "signed off", "--token", "alice-t0ken")...)
	if err != nil || !strings.HasPrefix(out, "granted apr-1 by alice: tst-to-prd ") {
		t.Fatalf("approve: %v\n%s", err, out)
	}
	got, _ := api.store.Get(t.Context(), "apr-1")
	if got.State != approval.Granted || got.DecidedBy != "alice" || got.Reason != "signed off" {
		t.Fatalf("stored %+v", got)
	}
	evs := api.decisions(t)
	if len(evs) != 1 || evs[0].ID() != events.CausedID("apr-1", events.TypeApprovalGranted) || events.CausationOf(evs[0]) != apr1.CauseID {
		t.Fatalf("decision events %v", evs)
	}

	// bob is not an approver of apr-1; with the token from the environment.
	t.Setenv(tokenEnv, "bob-t0ken")
	_, err = execute(t, ctx, withURL("approvals", "approve", "apr-1")...)
	if err == nil || !strings.Contains(err.Error(), "HTTP 403") || !strings.Contains(err.Error(), "not an approver") {
		t.Fatalf("bob on apr-1: %v, want 403", err)
	}
	out, err = execute(t, ctx, withURL("approvals", "reject", "apr-2", "--reason", "load test open")...)
	if err != nil || !strings.HasPrefix(out, "rejected apr-2 by bob") {
		t.Fatalf("reject: %v\n%s", err, out)
	}
	if evs := api.decisions(t); len(evs) != 2 || evs[1].Type() != string(events.TypeApprovalRejected) {
		t.Fatalf("decision events %v", evs)
	}
	_, err = execute(t, ctx, withURL("approvals", "approve", "apr-2", "--token", "alice-t0ken")...)
	if err == nil || !strings.HasPrefix(err.Error(), "approval apr-2 was already rejected by bob at ") {
		t.Fatalf("approve after reject: %v", err)
	}
	_, err = execute(t, ctx, withURL("approvals", "approve", "apr-9")...)
	if err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Fatalf("unknown id: %v", err)
	}

	out, err = execute(t, ctx, withURL("approvals", "list")...)
	if err != nil || !strings.Contains(out, "granted") || !strings.Contains(out, "by alice") || !strings.Contains(out, "by bob") {
		t.Fatalf("list after decisions: %v\n%s", err, out)
	}
	out, err = execute(t, ctx, withURL("approvals", "list", "--json", "--state", "granted")...)
	var records []approval.Record
	if err != nil || json.Unmarshal([]byte(out), &records) != nil || len(records) != 1 || records[0].ID != "apr-1" || records[0].DecidedBy != "alice" {
		t.Fatalf("list --json --state granted: %v\n%s", err, out)
	}
	out, err = execute(t, ctx, withURL("approvals", "list", "--state", "pending")...)
	if err != nil || strings.TrimSpace(out) != "no approvals" {
		t.Fatalf("no pending: %v\n%s", err, out)
	}
	if _, err := execute(t, ctx, withURL("approvals", "list", "--state", "later")...); err == nil {
		t.Fatal("an unknown state must fail")
	}

	// Wrong token, no token.
	_, err = execute(t, ctx, withURL("approvals", "list", "--token", "guess")...)
	if err == nil || !strings.Contains(err.Error(), "unauthorized") || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("wrong token: %v", err)
	}
	t.Setenv(tokenEnv, "")
	_, err = execute(t, ctx, withURL("approvals", "list")...)
	if err == nil || !strings.Contains(err.Error(), tokenEnv) {
		t.Fatalf("no token: %v", err)
	}
}

// TestApprovalsURLFromConfig: without --url, the address is ingest.listen of
// --config, an empty host meaning this machine.
func TestApprovalsURLFromConfig(t *testing.T) {
	api := startApprovalsAPI(t)
	api.create(t, "apr-1", time.Now().UTC())
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(api.url, "http://"))
	cfgPath := filepath.Join(t.TempDir(), "slipway.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(`
environments: [{ name: prd, registry: { host: registry.prd.example } }]
ingest: { listen: ":%s" }
`, port))
	out, err := execute(t, context.Background(), "approvals", "list", "--config", cfgPath, "--token", "alice-t0ken")
	if err != nil || !strings.Contains(out, "apr-1") {
		t.Fatalf("list via --config: %v\n%s", err, out)
	}
}

func TestIngestURL(t *testing.T) {
	for listen, want := range map[string]string{
		":8080":          "http://127.0.0.1:8080",
		"0.0.0.0:8080":   "http://127.0.0.1:8080",
		"[::]:8080":      "http://127.0.0.1:8080",
		"10.1.2.3:9000":  "http://10.1.2.3:9000",
		"ingest.lan:80":  "http://ingest.lan:80",
		"[fd00::1]:8080": "http://[fd00::1]:8080",
	} {
		if got, err := ingestURL(listen); err != nil || got != want {
			t.Errorf("ingestURL(%q) = %q, %v; want %q", listen, got, err, want)
		}
	}
	if _, err := ingestURL("8080"); err == nil {
		t.Error("a listen address without a port must fail")
	}
}

// TestApproveTwiceSaysWhoDecidedAndWhen: an approver repeating a decision
// is told plainly who decided and when, that nothing changed, and the
// command fails (exit status 1); the record keeps the first reason and no
// second event is published.
func TestApproveTwiceSaysWhoDecidedAndWhen(t *testing.T) {
	api := startApprovalsAPI(t)
	api.create(t, "apr-1", time.Now().UTC(), "alice")
	ctx := context.Background()
	args := []string{"approvals", "approve", "apr-1", "--url", api.url, "--token", "alice-t0ken"}

	if out, err := execute(t, ctx, append(args, "--reason", "signed off")...); err != nil {
		t.Fatalf("first approve: %v\n%s", err, out)
	}
	first, err := api.store.Get(t.Context(), "apr-1")
	if err != nil {
		t.Fatal(err)
	}
	out, err := execute(t, ctx, append(args, "--reason", "once more")...)
	want := "approval apr-1 was already approved by alice at " + first.DecidedAt.Local().Format(decidedLayout) +
		` (reason "signed off"); nothing changed`
	if err == nil || err.Error() != want || out != "" {
		t.Fatalf("second approve: %v (output %q), want the error %q", err, out, want)
	}
	if got, _ := api.store.Get(t.Context(), "apr-1"); got.Reason != "signed off" {
		t.Fatalf("stored reason %q, want the first one", got.Reason)
	}
	if n := len(api.decisions(t)); n != 1 {
		t.Fatalf("%d decision events, want 1", n)
	}

	// An expired approval says when it expired.
	old := api.create(t, "apr-old", time.Now().UTC().Add(-73*time.Hour))
	_, err = execute(t, ctx, "approvals", "reject", "apr-old", "--url", api.url, "--token", "alice-t0ken")
	if want := "approval apr-old expired at " + old.ExpiresAt.Local().Format(decidedLayout) + "; nothing changed"; err == nil || err.Error() != want {
		t.Fatalf("reject expired: %v, want %q", err, want)
	}
}
