package ingest_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/approval"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/health"
	"github.com/slipway-cd/slipway/services/ingest"
)

// Approvers of the approval tests, and their tokens.
const (
	aliceToken = "tok-alice-0123456789"
	bobToken   = "tok-bob-0123456789"
	carolToken = "tok-carol-0123456789"
)

func approversConfig() *config.Config {
	cfg := testConfig(config.Registry{})
	cfg.Approvers = []config.Approver{
		{Name: "alice", Token: aliceToken},
		{Name: "bob", Token: bobToken},
		{Name: "carol", Token: carolToken},
	}
	return cfg
}

// approvalRig is ingest with approvers, and the approvals bucket.
type approvalRig struct {
	*rig
	url   string
	store *approval.Store
	logs  *syncBuffer
}

func newApprovalRig(t *testing.T) *approvalRig {
	t.Helper()
	return newApprovalRigWith(t, approversConfig())
}

// newApprovalRigWith is newApprovalRig serving cfg.
func newApprovalRigWith(t *testing.T, cfg *config.Config) *approvalRig {
	t.Helper()
	r := newRig(t)
	logs := &syncBuffer{}
	r.log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := r.serve(t, cfg)
	// Ingest opened (created) the bucket; the promoter would Open it too.
	store, err := approval.Bind(t.Context(), r.js)
	if err != nil {
		t.Fatalf("ingest did not create the approvals bucket: %v", err)
	}
	return &approvalRig{rig: r, url: srv.URL, store: store, logs: logs}
}

func (a *approvalRig) create(t *testing.T, r approval.Record) approval.Record {
	t.Helper()
	if created, err := a.store.Create(t.Context(), r); err != nil || !created {
		t.Fatalf("create %s: %t %v", r.ID, created, err)
	}
	return r
}

// noTokensLogged fails if any token made it into the service's log.
func (a *approvalRig) noTokensLogged(t *testing.T) {
	t.Helper()
	logs := a.logs.String()
	for _, tok := range []string{aliceToken, bobToken, carolToken, "wrong-token"} {
		if strings.Contains(logs, tok) {
			t.Errorf("a token is in the log:\n%s", logs)
		}
	}
}

// pendingRecord is a pending approval of tst-to-prd requested now, for
// approvers (empty: any).
func pendingRecord(id string, approvers ...string) approval.Record {
	now := time.Now().UTC().Truncate(time.Second)
	return approval.Record{
		ID:        id,
		Promotion: "tst-to-prd",
		From:      events.ImageRef{Environment: "dev", Registry: devHost, Repository: "payments/api", Tag: "1.4.2", Digest: digestOf("payments/api:1.4.2")},
		To:        events.ImageRef{Environment: "prd", Registry: "registry.prd.example", Repository: "payments/api", Tag: "1.4.2", Digest: digestOf("payments/api:1.4.2")},
		Approvers: approvers, RequestedAt: now, ExpiresAt: now.Add(72 * time.Hour),
		State: approval.Pending, CauseID: events.ID("push", id), Environment: "prd",
	}
}

// call sends a request with a bearer token (none if empty) and returns the
// status, the raw body and the headers.
func call(t *testing.T, method, url, token, body string) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return send(t, req)
}

// send sends req and returns the status, the raw body and the headers.
func send(t *testing.T, req *http.Request) (int, []byte, http.Header) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, raw, resp.Header
}

func errorOf(t *testing.T, raw []byte) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("not an error body: %q", raw)
	}
	return e.Error
}

func recordOf(t *testing.T, raw []byte) approval.Record {
	t.Helper()
	var r approval.Record
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("not a record: %q", raw)
	}
	return r
}

func listOf(t *testing.T, raw []byte) []approval.Record {
	t.Helper()
	var rs []approval.Record
	if err := json.Unmarshal(raw, &rs); err != nil {
		t.Fatalf("not a list of records: %q", raw)
	}
	return rs
}

// decisionEvents returns the approval.granted and .rejected events stored.
func decisionEvents(t *testing.T, s jetstream.Stream) []events.Event {
	t.Helper()
	var out []events.Event
	for _, e := range storedEvents(t, s) {
		if e.Type() == string(events.TypeApprovalGranted) || e.Type() == string(events.TypeApprovalRejected) {
			out = append(out, e)
		}
	}
	return out
}

func TestApprovalsRequireAnApproverToken(t *testing.T) {
	a := newApprovalRig(t)
	rec := a.create(t, pendingRecord("apr-1"))
	for _, c := range []struct {
		name, method, path, header string
	}{
		{"list, no token", http.MethodGet, "/approvals", ""},
		{"list, unknown token", http.MethodGet, "/approvals", "Bearer wrong-token"},
		{"list, a token's prefix", http.MethodGet, "/approvals", "Bearer " + aliceToken[:10]},
		{"list, another scheme", http.MethodGet, "/approvals", "Basic " + aliceToken},
		{"list, empty bearer", http.MethodGet, "/approvals", "Bearer "},
		{"get, no token", http.MethodGet, "/approvals/apr-1", ""},
		{"approve, no token", http.MethodPost, "/approvals/apr-1/approve", ""},
		{"approve, unknown token", http.MethodPost, "/approvals/apr-1/approve", "Bearer wrong-token"},
		{"reject, unknown token", http.MethodPost, "/approvals/apr-1/reject", "Bearer wrong-token"},
		{"approve unknown id, unknown token", http.MethodPost, "/approvals/nope/approve", "Bearer wrong-token"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), c.method, a.url+c.path, nil)
			if c.header != "" {
				req.Header.Set("Authorization", c.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || strings.TrimSpace(string(raw)) != `{"error":"unauthorized"}` {
				t.Fatalf("%d %s, want 401 {\"error\":\"unauthorized\"}", resp.StatusCode, raw)
			}
			if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	if got, _ := a.store.Get(t.Context(), rec.ID); got.State != approval.Pending {
		t.Fatalf("an unauthenticated request decided the approval: %+v", got)
	}
	if n := len(decisionEvents(t, a.stream)); n != 0 {
		t.Fatalf("%d decision events after unauthenticated requests", n)
	}
	// Any configured approver may read, and the scheme is case-insensitive.
	code, raw, _ := call(t, http.MethodGet, a.url+"/approvals", carolToken, "")
	if code != http.StatusOK || len(listOf(t, raw)) != 1 {
		t.Fatalf("list: %d %s", code, raw)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, a.url+"/approvals", nil)
	req.Header.Set("Authorization", "bearer "+bobToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("lower-case scheme: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	a.noTokensLogged(t)
}

func TestApproveByAllowedApprover(t *testing.T) {
	a := newApprovalRig(t)
	rec := a.create(t, pendingRecord("apr-1", "alice", "bob"))

	code, raw, _ := call(t, http.MethodPost, a.url+"/approvals/apr-1/approve", aliceToken, `{"reason":"signed off in the release meeting"}`)
	if code != http.StatusOK {
		t.Fatalf("approve: %d %s", code, raw)
	}
	got := recordOf(t, raw)
	if got.State != approval.Granted || got.DecidedBy != "alice" || got.Reason != "signed off in the release meeting" || got.DecidedAt.IsZero() {
		t.Fatalf("answer %+v", got)
	}
	stored, _ := a.store.Get(t.Context(), rec.ID)
	if stored.State != approval.Granted || stored.DecidedBy != "alice" {
		t.Fatalf("stored %+v", stored)
	}

	evs := decisionEvents(t, a.stream)
	if len(evs) != 1 {
		t.Fatalf("%d decision events, want 1", len(evs))
	}
	e := evs[0]
	if e.Type() != string(events.TypeApprovalGranted) || e.ID() != events.CausedID(rec.ID, events.TypeApprovalGranted) {
		t.Errorf("type %s id %s", e.Type(), e.ID())
	}
	if events.CausationOf(e) != rec.CauseID || events.EnvironmentOf(e) != "prd" || e.Subject() != rec.To.String() || e.Source() != approval.Source {
		t.Errorf("causation %s env %s subject %s source %s", events.CausationOf(e), events.EnvironmentOf(e), e.Subject(), e.Source())
	}
	d, err := events.DataAs[events.ApprovalDecision](e)
	if err != nil || d != (events.ApprovalDecision{ApprovalID: rec.ID, Promotion: "tst-to-prd", By: "alice", Reason: "signed off in the release meeting", Via: events.ViaAPI}) {
		t.Errorf("data %+v %v", d, err)
	}

	// Anyone else, alice changing her mind, or alice repeating herself:
	// 409 naming the decision.
	want := "already granted by alice at " + got.DecidedAt.UTC().Format(time.RFC3339)
	for _, c := range []struct{ path, token string }{
		{"/approvals/apr-1/approve", bobToken},
		{"/approvals/apr-1/reject", bobToken},
		{"/approvals/apr-1/reject", aliceToken},
		{"/approvals/apr-1/approve", aliceToken},
	} {
		code, raw, _ := call(t, http.MethodPost, a.url+c.path, c.token, "")
		if code != http.StatusConflict || errorOf(t, raw) != want {
			t.Errorf("%s: %d %s, want 409 %s", c.path, code, raw, want)
		}
	}
	// carol is an approver, but not of this promotion.
	code, raw, _ = call(t, http.MethodPost, a.url+"/approvals/apr-1/approve", carolToken, "")
	if code != http.StatusForbidden {
		t.Errorf("carol: %d %s, want 403", code, raw)
	}
	if n := len(decisionEvents(t, a.stream)); n != 1 {
		t.Fatalf("%d decision events, want 1", n)
	}

	// GET shows it.
	code, raw, _ = call(t, http.MethodGet, a.url+"/approvals/apr-1", carolToken, "")
	if code != http.StatusOK || recordOf(t, raw).State != approval.Granted {
		t.Fatalf("get: %d %s", code, raw)
	}
	a.noTokensLogged(t)
}

func TestApproveByNonApprover(t *testing.T) {
	a := newApprovalRig(t)
	a.create(t, pendingRecord("apr-1", "alice"))
	code, raw, _ := call(t, http.MethodPost, a.url+"/approvals/apr-1/approve", bobToken, `{"reason":"me too"}`)
	if code != http.StatusForbidden || !strings.Contains(errorOf(t, raw), "tst-to-prd") {
		t.Fatalf("%d %s, want 403", code, raw)
	}
	if got, _ := a.store.Get(t.Context(), "apr-1"); got.State != approval.Pending {
		t.Fatalf("a non-approver decided: %+v", got)
	}
	if n := len(decisionEvents(t, a.stream)); n != 0 {
		t.Fatalf("%d decision events", n)
	}
}

func TestReject(t *testing.T) {
	a := newApprovalRig(t)
	rec := a.create(t, pendingRecord("apr-1")) // any approver
	code, raw, _ := call(t, http.MethodPost, a.url+"/approvals/apr-1/reject", carolToken, `{"reason":"load test still open"}`)
	if code != http.StatusOK || recordOf(t, raw).State != approval.Rejected {
		t.Fatalf("reject: %d %s", code, raw)
	}
	evs := decisionEvents(t, a.stream)
	if len(evs) != 1 || evs[0].Type() != string(events.TypeApprovalRejected) || evs[0].ID() != events.CausedID(rec.ID, events.TypeApprovalRejected) {
		t.Fatalf("events %v", evs)
	}
	if subj, _ := events.SubjectOf(evs[0]); subj != "slipway.approval.rejected.prd" {
		t.Errorf("subject %s", subj)
	}
	if d, _ := events.DataAs[events.ApprovalDecision](evs[0]); d.By != "carol" || d.Reason != "load test still open" {
		t.Errorf("data %+v", d)
	}
	code, raw, _ = call(t, http.MethodPost, a.url+"/approvals/apr-1/approve", aliceToken, "")
	if code != http.StatusConflict || !strings.HasPrefix(errorOf(t, raw), "already rejected by carol at ") {
		t.Fatalf("approve after reject: %d %s", code, raw)
	}
}

func TestApproveExpired(t *testing.T) {
	a := newApprovalRig(t)
	rec := pendingRecord("apr-old")
	rec.RequestedAt = time.Now().Add(-73 * time.Hour).UTC().Truncate(time.Second)
	rec.ExpiresAt = rec.RequestedAt.Add(72 * time.Hour)
	a.create(t, rec)
	code, raw, _ := call(t, http.MethodPost, a.url+"/approvals/apr-old/approve", aliceToken, "")
	if want := "expired at " + rec.ExpiresAt.Format(time.RFC3339); code != http.StatusConflict || errorOf(t, raw) != want {
		t.Fatalf("%d %s, want 409 %q", code, raw, want)
	}
	if n := len(decisionEvents(t, a.stream)); n != 0 {
		t.Fatalf("%d decision events", n)
	}
	// The list reports it as expired.
	a.create(t, pendingRecord("apr-new"))
	code, raw, _ = call(t, http.MethodGet, a.url+"/approvals?state=expired", aliceToken, "")
	if rs := listOf(t, raw); code != http.StatusOK || len(rs) != 1 || rs[0].ID != "apr-old" || rs[0].State != approval.Expired {
		t.Fatalf("expired: %d %s", code, raw)
	}
	code, raw, _ = call(t, http.MethodGet, a.url+"/approvals?state=pending", aliceToken, "")
	if rs := listOf(t, raw); code != http.StatusOK || len(rs) != 1 || rs[0].ID != "apr-new" {
		t.Fatalf("pending: %d %s", code, raw)
	}
	code, raw, _ = call(t, http.MethodGet, a.url+"/approvals", aliceToken, "")
	if rs := listOf(t, raw); code != http.StatusOK || len(rs) != 2 || rs[0].ID != "apr-new" {
		t.Fatalf("all, newest first: %d %s", code, raw)
	}
	if code, raw, _ := call(t, http.MethodGet, a.url+"/approvals?state=maybe", aliceToken, ""); code != http.StatusBadRequest {
		t.Fatalf("unknown state: %d %s", code, raw)
	}
	code, raw, _ = call(t, http.MethodGet, a.url+"/approvals?state=granted", aliceToken, "")
	if code != http.StatusOK || strings.TrimSpace(string(raw)) != "[]" {
		t.Fatalf("none granted: %d %s, want []", code, raw)
	}
}

func TestApprovalUnknownIDAndBadBody(t *testing.T) {
	a := newApprovalRig(t)
	a.create(t, pendingRecord("apr-1"))
	for _, path := range []string{"/approvals/nope/approve", "/approvals/nope/reject", "/approvals/no.such.key/approve", "/approvals/nope"} {
		method := http.MethodPost
		if !strings.HasSuffix(path, "approve") && !strings.HasSuffix(path, "reject") {
			method = http.MethodGet
		}
		if code, raw, _ := call(t, method, a.url+path, aliceToken, ""); code != http.StatusNotFound || errorOf(t, raw) == "" {
			t.Errorf("%s %s: %d %s, want 404", method, path, code, raw)
		}
	}
	for _, body := range []string{`{"reason":`, `{"reasons":"typo"}`, `"ok"`} {
		if code, raw, _ := call(t, http.MethodPost, a.url+"/approvals/apr-1/approve", aliceToken, body); code != http.StatusBadRequest {
			t.Errorf("body %s: %d %s, want 400", body, code, raw)
		}
	}
	if got, _ := a.store.Get(t.Context(), "apr-1"); got.State != approval.Pending {
		t.Fatalf("a bad request decided: %+v", got)
	}
}

// TestConcurrentApprovals: two approvers press the button at the same
// moment; one gets 200, the other 409 naming the first, and one event is
// published.
func TestConcurrentApprovals(t *testing.T) {
	a := newApprovalRig(t)
	for round := range 5 {
		id := "apr-" + string(rune('a'+round))
		a.create(t, pendingRecord(id, "alice", "bob"))
		start := make(chan struct{})
		var wg sync.WaitGroup
		codes := make([]int, 2)
		bodies := make([][]byte, 2)
		for i, tok := range []string{aliceToken, bobToken} {
			action := "approve"
			if i == 1 && round%2 == 1 {
				action = "reject" // opposite decisions race too
			}
			wg.Go(func() {
				<-start
				codes[i], bodies[i], _ = call(t, http.MethodPost, a.url+"/approvals/"+id+"/"+action, tok, "")
			})
		}
		close(start)
		wg.Wait()
		win, lose := 0, 1
		if codes[1] == http.StatusOK {
			win, lose = 1, 0
		}
		if codes[win] != http.StatusOK || codes[lose] != http.StatusConflict {
			t.Fatalf("%s: answers %v (%s / %s), want one 200 and one 409", id, codes, bodies[0], bodies[1])
		}
		winner := recordOf(t, bodies[win])
		if want := "already " + string(winner.State) + " by " + winner.DecidedBy + " at " + winner.DecidedAt.UTC().Format(time.RFC3339); errorOf(t, bodies[lose]) != want {
			t.Errorf("%s: loser told %q, want %q", id, errorOf(t, bodies[lose]), want)
		}
	}
	if n := len(decisionEvents(t, a.stream)); n != 5 {
		t.Fatalf("%d decision events for 5 approvals, want 5", n)
	}
}

// TestDecisionRepublishedAfterPublishFailure: the decision is recorded but
// its event cannot be stored (503); the same request later publishes it.
func TestDecisionRepublishedAfterPublishFailure(t *testing.T) {
	a := newApprovalRig(t)
	rec := a.create(t, pendingRecord("apr-1", "alice"))

	// An ingest whose publisher expects another stream: every publish fails.
	broken, err := ingest.NewHandler(app.Deps{
		Config: approversConfig(), Log: a.log, JS: a.js, Stream: "NOT-SLIPWAY",
		Metrics: prometheus.NewRegistry(), Health: health.NewChecker(),
	})
	if err != nil {
		t.Fatal(err)
	}
	bsrv := httptest.NewServer(broken)
	defer bsrv.Close()
	code, raw, hdr := call(t, http.MethodPost, bsrv.URL+"/approvals/apr-1/approve", aliceToken, `{"reason":"go"}`)
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Fatalf("publish failure: %d %s, want 503 with Retry-After", code, raw)
	}
	if got, _ := a.store.Get(t.Context(), rec.ID); got.State != approval.Granted {
		t.Fatalf("the decision was not recorded: %+v", got)
	}
	if n := len(decisionEvents(t, a.stream)); n != 0 {
		t.Fatalf("%d decision events", n)
	}

	// The retry (against a working ingest) publishes the decision.
	code, raw, _ = call(t, http.MethodPost, a.url+"/approvals/apr-1/approve", aliceToken, `{"reason":"go"}`)
	if code != http.StatusOK {
		t.Fatalf("retry: %d %s", code, raw)
	}
	evs := decisionEvents(t, a.stream)
	if len(evs) != 1 || evs[0].ID() != events.CausedID(rec.ID, events.TypeApprovalGranted) {
		t.Fatalf("events after the retry: %v", evs)
	}
	if d, _ := events.DataAs[events.ApprovalDecision](evs[0]); d.By != "alice" || d.Reason != "go" {
		t.Errorf("data %+v", d)
	}
	// Now the decision is complete: the same request once more is 409.
	code, raw, _ = call(t, http.MethodPost, a.url+"/approvals/apr-1/approve", aliceToken, `{"reason":"go"}`)
	if code != http.StatusConflict || !strings.HasPrefix(errorOf(t, raw), "already granted by alice at ") {
		t.Fatalf("after the retry: %d %s, want 409", code, raw)
	}
}

func TestNoApproversConfigured(t *testing.T) {
	r := newRig(t)
	srv := r.serve(t, testConfig(config.Registry{}))
	if code, raw, _ := call(t, http.MethodGet, srv.URL+"/approvals", "anything", ""); code != http.StatusUnauthorized {
		t.Fatalf("%d %s, want 401", code, raw)
	}
	if _, err := r.js.KeyValue(t.Context(), approval.Bucket); err == nil {
		t.Error("ingest created the approvals bucket without approvers")
	}
}

func TestSharedApproverTokenRefused(t *testing.T) {
	r := newRig(t)
	cfg := approversConfig()
	cfg.Approvers[2].Token = aliceToken
	_, err := ingest.NewHandler(r.deps(cfg))
	if err == nil || !strings.Contains(err.Error(), "approvers[2].token") || strings.Contains(err.Error(), aliceToken) {
		t.Fatalf("err = %v, want approvers[2].token named (and no token)", err)
	}
	var p config.Problems
	ingest.New().CheckConfig(cfg, &p)
	if !strings.Contains(p.Error(), "approvers[2].token") {
		t.Fatalf("config check: %v, want approvers[2].token named", p)
	}
	p = nil
	ingest.New().CheckConfig(approversConfig(), &p)
	if err := p.Err(); err != nil {
		t.Fatalf("distinct tokens: %v", err)
	}
}

// TestRepeatedDecisionIsAConflict: the approver who decided repeats the
// same decision with another reason. The answer is 409 naming who decided
// and when; the record keeps the first reason, and nothing is published
// again (a core subscriber sees every publish, also one JetStream would
// drop as a duplicate).
func TestRepeatedDecisionIsAConflict(t *testing.T) {
	a := newApprovalRig(t)
	a.create(t, pendingRecord("apr-1", "alice"))
	published, err := a.nc.SubscribeSync("slipway.approval.>")
	if err != nil {
		t.Fatal(err)
	}
	defer published.Unsubscribe()

	code, raw, _ := call(t, http.MethodPost, a.url+"/approvals/apr-1/approve", aliceToken, `{"reason":"signed off"}`)
	if code != http.StatusOK {
		t.Fatalf("approve: %d %s", code, raw)
	}
	first := recordOf(t, raw)

	code, raw, _ = call(t, http.MethodPost, a.url+"/approvals/apr-1/approve", aliceToken, `{"reason":"signed off again"}`)
	if code != http.StatusConflict {
		t.Fatalf("repeat: %d %s, want 409", code, raw)
	}
	var c ingest.DecisionConflict
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("409 body %s: %v", raw, err)
	}
	at := first.DecidedAt.UTC().Format(time.RFC3339)
	if c.Error != "already granted by alice at "+at || c.ID != "apr-1" || c.State != approval.Granted ||
		c.DecidedBy != "alice" || !c.DecidedAt.Equal(first.DecidedAt) || c.Reason != "signed off" {
		t.Fatalf("409 body %s", raw)
	}
	if got, _ := a.store.Get(t.Context(), "apr-1"); got.Reason != "signed off" || !got.DecidedAt.Equal(first.DecidedAt) {
		t.Fatalf("stored %+v, want the first decision unchanged", got)
	}
	if n := len(decisionEvents(t, a.stream)); n != 1 {
		t.Fatalf("%d decision events, want 1", n)
	}
	// The 200 published once; the 409 published nothing. The stream
	// holds what the first answer published, so flush the connection's
	// subscription up to now before counting.
	if err := a.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := published.Pending(); n != 1 {
		t.Fatalf("%d decision publishes, want 1", n)
	}
}
