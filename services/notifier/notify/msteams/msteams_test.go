package msteams_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/notifier/notify"
	"github.com/slipway-cd/slipway/services/notifier/notify/msteams"
)

// workflows is a local Teams Workflows webhook ("When a Teams webhook request
// is received"). It checks what the trigger and the Teams card renderer
// check: a JSON body, a "message" with Adaptive Card attachments, and cards
// whose required fields and element types are valid; it answers 202
// Accepted like Workflows. Queued answers replace the next responses.
type workflows struct {
	srv *httptest.Server

	mu       sync.Mutex
	answers  []answer
	received []map[string]any // accepted cards (attachment content)
	requests int
}

type answer struct {
	status int
	header http.Header
	body   string
}

const signature = "sig=TOPSECRETSIGNATURE"

func newWorkflows(t *testing.T) *workflows {
	t.Helper()
	w := &workflows{}
	w.srv = httptest.NewServer(http.HandlerFunc(w.serve))
	t.Cleanup(w.srv.Close)
	return w
}

// url is the webhook URL with a path and signature shaped like a real one.
func (w *workflows) url() string {
	return w.srv.URL + "/workflows/0123abcd/triggers/manual/paths/invoke?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&" + signature
}

func (w *workflows) queue(a ...answer) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.answers = append(w.answers, a...)
}

func (w *workflows) cards() []map[string]any {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.received)
}

func (w *workflows) serve(rw http.ResponseWriter, r *http.Request) {
	w.mu.Lock()
	w.requests++
	var next *answer
	if len(w.answers) > 0 {
		next = &w.answers[0]
		w.answers = w.answers[1:]
	}
	w.mu.Unlock()
	if next != nil {
		for k, v := range next.header {
			rw.Header()[k] = v
		}
		rw.WriteHeader(next.status)
		_, _ = io.WriteString(rw, next.body)
		return
	}
	fail := func(code, format string, args ...any) {
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(rw).Encode(map[string]any{"error": map[string]string{"code": code, "message": fmt.Sprintf(format, args...)}})
	}
	if r.Method != http.MethodPost {
		rw.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	if !strings.Contains(r.URL.RawQuery, signature) {
		rw.WriteHeader(http.StatusUnauthorized)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		fail("TriggerRequestContentTypeInvalid", "content type %q", r.Header.Get("Content-Type"))
		return
	}
	var msg struct {
		Type        string `json:"type"`
		Attachments []struct {
			ContentType string          `json:"contentType"`
			ContentURL  any             `json:"contentUrl"`
			Content     json.RawMessage `json:"content"`
		} `json:"attachments"`
	}
	if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
		fail("InvalidRequestContent", "body is not JSON: %v", err)
		return
	}
	if msg.Type != "message" || len(msg.Attachments) == 0 {
		fail("TriggerInputSchemaMismatch", "want type message with attachments, got type %q, %d attachments", msg.Type, len(msg.Attachments))
		return
	}
	var cards []map[string]any
	for i, a := range msg.Attachments {
		if a.ContentType != "application/vnd.microsoft.card.adaptive" {
			fail("TriggerInputSchemaMismatch", "attachments[%d].contentType %q", i, a.ContentType)
			return
		}
		if a.ContentURL != nil {
			fail("TriggerInputSchemaMismatch", "attachments[%d].contentUrl must be null for an inline card", i)
			return
		}
		var card map[string]any
		if err := json.Unmarshal(a.Content, &card); err != nil {
			fail("TriggerInputSchemaMismatch", "attachments[%d].content: %v", i, err)
			return
		}
		if err := validateCard(card); err != nil {
			fail("AdaptiveCardInvalid", "attachments[%d].content: %v", i, err)
			return
		}
		cards = append(cards, card)
	}
	w.mu.Lock()
	w.received = append(w.received, cards...)
	w.mu.Unlock()
	rw.WriteHeader(http.StatusAccepted)
}

var (
	versionRE = regexp.MustCompile(`^1\.[0-5]$`) // what Teams renders
	enums     = map[string][]string{
		"weight":  {"default", "lighter", "bolder"},
		"size":    {"default", "small", "medium", "large", "extralarge"},
		"color":   {"default", "dark", "light", "accent", "good", "warning", "attention"},
		"spacing": {"default", "none", "small", "medium", "large", "extralarge", "padding"},
	}
)

// validateCard checks an Adaptive Card as the Teams renderer does: the
// required properties, known element and action types, and enum values
// (which Adaptive Cards compares case-insensitively).
func validateCard(c map[string]any) error {
	if c["type"] != "AdaptiveCard" {
		return fmt.Errorf("type %v, want AdaptiveCard", c["type"])
	}
	v, _ := c["version"].(string)
	if !versionRE.MatchString(v) {
		return fmt.Errorf("version %q is not one Teams renders", v)
	}
	body, ok := c["body"].([]any)
	if !ok || len(body) == 0 {
		return errors.New("body must be a non-empty array")
	}
	if err := validateElements(body); err != nil {
		return err
	}
	if acts, ok := c["actions"]; ok {
		list, ok := acts.([]any)
		if !ok {
			return errors.New("actions must be an array")
		}
		for i, a := range list {
			am, _ := a.(map[string]any)
			switch am["type"] {
			case "Action.OpenUrl":
				u, _ := am["url"].(string)
				if pu, err := url.Parse(u); err != nil || !pu.IsAbs() {
					return fmt.Errorf("actions[%d].url %q is not an absolute URL", i, u)
				}
			case "Action.Submit", "Action.ShowCard", "Action.ToggleVisibility", "Action.Execute":
			default:
				return fmt.Errorf("actions[%d]: unknown action type %v", i, am["type"])
			}
		}
	}
	return nil
}

func validateElements(els []any) error {
	for i, e := range els {
		em, ok := e.(map[string]any)
		if !ok {
			return fmt.Errorf("body[%d] is not an object", i)
		}
		for prop, allowed := range enums {
			if v, ok := em[prop]; ok {
				s, _ := v.(string)
				if !slices.Contains(allowed, strings.ToLower(s)) {
					return fmt.Errorf("body[%d].%s %q is not one of %v", i, prop, s, allowed)
				}
			}
		}
		switch em["type"] {
		case "TextBlock":
			if s, ok := em["text"].(string); !ok || s == "" {
				return fmt.Errorf("body[%d]: TextBlock needs a text", i)
			}
		case "FactSet":
			facts, ok := em["facts"].([]any)
			if !ok || len(facts) == 0 {
				return fmt.Errorf("body[%d]: FactSet needs facts", i)
			}
			for j, f := range facts {
				fm, _ := f.(map[string]any)
				_, okT := fm["title"].(string)
				_, okV := fm["value"].(string)
				if !okT || !okV {
					return fmt.Errorf("body[%d].facts[%d]: title and value must be strings", i, j)
				}
			}
		case "ColumnSet":
			cols, _ := em["columns"].([]any)
			for _, col := range cols {
				cm, _ := col.(map[string]any)
				items, _ := cm["items"].([]any)
				if err := validateElements(items); err != nil {
					return err
				}
			}
		case "Container":
			items, _ := em["items"].([]any)
			if err := validateElements(items); err != nil {
				return err
			}
		default:
			return fmt.Errorf("body[%d]: unknown element type %v", i, em["type"])
		}
	}
	return nil
}

func newReceiver(t *testing.T, webhook string) notify.Receiver {
	t.Helper()
	r, err := msteams.New("team-teams", config.Receiver{Name: "team-teams", MSTeams: &config.MSTeamsReceiver{WebhookURL: webhook}},
		notify.Options{HTTPClient: &http.Client{Timeout: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func notification(t *testing.T, m notify.Message) notify.Notification {
	t.Helper()
	e, err := events.New(context.Background(), events.Spec{
		ID: events.ID("test", t.Name()), Type: events.TypeDeploymentFailed, Source: "/slipway/deployer/azure-int",
		Environment: "prd", Subject: "azure-int:/payments/web",
		Data: events.Deployment{Cluster: "azure-int", Environment: "prd", AppID: "/payments/web", ToImage: "reg.example/apps/web:1.4.0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return notify.Notification{Event: e, Message: m}
}

// retryAfter returns the delay of a bus.RetryAfter error (the type is
// unexported, so it is read by reflection).
func retryAfter(err error) (time.Duration, bool) {
	for e := err; e != nil; e = errors.Unwrap(e) {
		v := reflect.ValueOf(e)
		if v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Struct && v.Elem().Type().Name() == "retryAfterError" {
			return time.Duration(v.Elem().FieldByName("delay").Int()), true
		}
	}
	return 0, false
}

func TestPostsAdaptiveCardToWorkflowsWebhook(t *testing.T) {
	wf := newWorkflows(t)
	r := newReceiver(t, wf.url())
	if r.Kind() != "msteams" || r.Name() != "team-teams" {
		t.Fatalf("Kind, Name = %q, %q", r.Kind(), r.Name())
	}
	msg := notify.Message{
		Title:    "apps/web 1.4.0 rolled back on azure-int",
		Text:     "The deployment never became healthy.\nMarathon rolled it back.",
		Status:   "rolled back",
		Severity: notify.Danger,
		Facts:    []notify.Fact{{Name: "Cluster", Value: "azure-int"}, {Name: "App", Value: "/payments/web"}, {Name: "Image", Value: "reg.example/apps/web:1.4.0"}},
		Link:     "https://slipway.example/deployments/123",
	}
	if err := r.Notify(context.Background(), notification(t, msg)); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	cards := wf.cards()
	if len(cards) != 1 {
		t.Fatalf("workflows received %d cards, want 1", len(cards))
	}
	c := cards[0]
	if c["version"] != "1.4" || c["$schema"] != "http://adaptivecards.io/schemas/adaptive-card.json" {
		t.Errorf("version, $schema = %v, %v", c["version"], c["$schema"])
	}
	body := c["body"].([]any)
	if len(body) != 3 {
		t.Fatalf("body has %d elements, want title, text, facts: %v", len(body), body)
	}
	title := body[0].(map[string]any)
	if title["type"] != "TextBlock" || title["text"] != msg.Title || !strings.EqualFold(title["weight"].(string), "bolder") ||
		!strings.EqualFold(title["size"].(string), "medium") || !strings.EqualFold(title["color"].(string), "attention") {
		t.Errorf("title block = %v", title)
	}
	text := body[1].(map[string]any)
	if text["type"] != "TextBlock" || text["text"] != msg.Text || text["wrap"] != true {
		t.Errorf("text block = %v", text)
	}
	facts := body[2].(map[string]any)
	if facts["type"] != "FactSet" {
		t.Fatalf("third element = %v, want FactSet", facts)
	}
	var got []notify.Fact
	for _, f := range facts["facts"].([]any) {
		fm := f.(map[string]any)
		got = append(got, notify.Fact{Name: fm["title"].(string), Value: fm["value"].(string)})
	}
	if !slices.Equal(got, msg.Facts) {
		t.Errorf("facts = %v, want %v", got, msg.Facts)
	}
	actions, _ := c["actions"].([]any)
	if len(actions) != 1 {
		t.Fatalf("actions = %v, want one Action.OpenUrl", c["actions"])
	}
	if a := actions[0].(map[string]any); a["type"] != "Action.OpenUrl" || a["url"] != msg.Link {
		t.Errorf("action = %v", a)
	}
}

func TestSeverityColoursTheTitle(t *testing.T) {
	wf := newWorkflows(t)
	r := newReceiver(t, wf.url())
	want := map[string]string{notify.Good: "good", notify.Warning: "warning", notify.Danger: "attention", notify.Info: "accent", "": "accent"}
	for sev, colour := range want {
		if err := r.Notify(context.Background(), notification(t, notify.Message{Title: "t " + sev, Severity: sev})); err != nil {
			t.Fatalf("severity %q: %v", sev, err)
		}
		cards := wf.cards()
		title := cards[len(cards)-1]["body"].([]any)[0].(map[string]any)
		if !strings.EqualFold(title["color"].(string), colour) {
			t.Errorf("severity %q: colour %v, want %s", sev, title["color"], colour)
		}
	}
}

func TestMinimalMessageHasNoEmptyElements(t *testing.T) {
	wf := newWorkflows(t)
	r := newReceiver(t, wf.url())
	// Only a title: no empty TextBlock, no empty FactSet, no action (an
	// invalid link is dropped rather than rejected by Teams).
	if err := r.Notify(context.Background(), notification(t, notify.Message{Title: "apps/web 1.4.0 pushed to dev", Link: "not a url"})); err != nil {
		t.Fatal(err)
	}
	c := wf.cards()[0]
	if body := c["body"].([]any); len(body) != 1 {
		t.Errorf("body = %v, want the title only", body)
	}
	if _, ok := c["actions"]; ok {
		t.Errorf("actions = %v, want none", c["actions"])
	}
	// Not even a title: the card still has a text.
	if err := r.Notify(context.Background(), notification(t, notify.Message{Status: "drift"})); err != nil {
		t.Fatal(err)
	}
}

func TestApprovalRequestNamesTheDecisionCommands(t *testing.T) {
	wf := newWorkflows(t)
	r := newReceiver(t, wf.url())
	m := notify.Message{Title: "apps/web 1.4.0 awaits approval for prd", Approval: &notify.Approval{ID: "appr-42", Promotion: "tst-to-prd"}}
	if err := r.Notify(context.Background(), notification(t, m)); err != nil {
		t.Fatal(err)
	}
	body := wf.cards()[0]["body"].([]any)
	last := body[len(body)-1].(map[string]any)
	if s, _ := last["text"].(string); !strings.Contains(s, "slipway approvals approve appr-42") || !strings.Contains(s, "reject appr-42") {
		t.Errorf("last block = %v", last)
	}
}

func TestTooManyRequestsIsRetryAfter(t *testing.T) {
	wf := newWorkflows(t)
	r := newReceiver(t, wf.url())
	wf.queue(answer{status: http.StatusTooManyRequests, header: http.Header{"Retry-After": {"7"}}, body: `{"error":{"code":"WorkflowTriggerIsThrottled"}}`})
	err := r.Notify(context.Background(), notification(t, notify.Message{Title: "x"}))
	if err == nil {
		t.Fatal("Notify succeeded on a 429")
	}
	if d, ok := retryAfter(err); !ok || d != 7*time.Second {
		t.Errorf("retry after = %v, %v; want 7s (err %v)", d, ok, err)
	}
	if bus.IsPermanent(err) {
		t.Errorf("429 is permanent: %v", err)
	}
	// The retry goes through.
	if err := r.Notify(context.Background(), notification(t, notify.Message{Title: "x"})); err != nil {
		t.Fatal(err)
	}
	if n := len(wf.cards()); n != 1 {
		t.Errorf("cards = %d, want 1", n)
	}
}

func TestUnavailableWithRetryAfterIsRetryAfter(t *testing.T) {
	wf := newWorkflows(t)
	r := newReceiver(t, wf.url())
	wf.queue(answer{status: http.StatusServiceUnavailable, header: http.Header{"Retry-After": {"120"}}})
	err := r.Notify(context.Background(), notification(t, notify.Message{Title: "x"}))
	if d, ok := retryAfter(err); !ok || d != 2*time.Minute || bus.IsPermanent(err) {
		t.Errorf("err = %v; retry after %v, %v", err, d, ok)
	}
}

// "Retry-After: 0" is "now": the retry comes after the shortest back-off
// step (bus.RetryAfter with 0), not on the attempt's longer schedule.
func TestRetryAfterZeroIsRetryNow(t *testing.T) {
	wf := newWorkflows(t)
	r := newReceiver(t, wf.url())
	wf.queue(answer{status: http.StatusServiceUnavailable, header: http.Header{"Retry-After": {"0"}}})
	err := r.Notify(context.Background(), notification(t, notify.Message{Title: "x"}))
	if d, ok := retryAfter(err); !ok || d != 0 || bus.IsPermanent(err) {
		t.Errorf("err = %v; retry after %v, %v; want a RetryAfter of 0", err, d, ok)
	}
}

func TestClientErrorsArePermanent(t *testing.T) {
	wf := newWorkflows(t)
	r := newReceiver(t, wf.url())
	for _, status := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound, http.StatusRequestEntityTooLarge, http.StatusNotImplemented} {
		wf.queue(answer{status: status, body: `{"error":{"code":"TriggerInputSchemaMismatch"}}`})
		err := r.Notify(context.Background(), notification(t, notify.Message{Title: "x"}))
		if !bus.IsPermanent(err) {
			t.Errorf("%d: err = %v, want permanent", status, err)
		}
		if err != nil && strings.Contains(err.Error(), signature) {
			t.Errorf("%d: error leaks the webhook signature: %v", status, err)
		}
	}
}

// The local Workflows endpoint is no stub: it refuses what Workflows and
// Teams refuse.
func TestWorkflowsServerRejectsInvalidPayloads(t *testing.T) {
	wf := newWorkflows(t)
	card := func(content string) string {
		return `{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive","contentUrl":null,"content":` + content + `}]}`
	}
	for name, body := range map[string]string{
		"not json":           `{"type":`,
		"no attachments":     `{"type":"message"}`,
		"message card":       `{"@type":"MessageCard","summary":"x","text":"legacy connector format"}`,
		"wrong content type": `{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.hero","contentUrl":null,"content":{}}]}`,
		"no version":         card(`{"type":"AdaptiveCard","body":[{"type":"TextBlock","text":"a"}]}`),
		"empty body":         card(`{"type":"AdaptiveCard","version":"1.4","body":[]}`),
		"unknown element":    card(`{"type":"AdaptiveCard","version":"1.4","body":[{"type":"Marquee","text":"a"}]}`),
		"numeric fact":       card(`{"type":"AdaptiveCard","version":"1.4","body":[{"type":"FactSet","facts":[{"title":"a","value":1}]}]}`),
		"bad colour":         card(`{"type":"AdaptiveCard","version":"1.4","body":[{"type":"TextBlock","text":"a","color":"red"}]}`),
		"relative url":       card(`{"type":"AdaptiveCard","version":"1.4","body":[{"type":"TextBlock","text":"a"}],"actions":[{"type":"Action.OpenUrl","url":"/x"}]}`),
	} {
		resp, err := http.Post(wf.url(), "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", name, resp.StatusCode)
		}
	}
	resp, err := http.Post(wf.url(), "text/plain", strings.NewReader(card(`{"type":"AdaptiveCard","version":"1.4","body":[{"type":"TextBlock","text":"a"}]}`)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("text/plain: status %d, want 400", resp.StatusCode)
	}
	if n := len(wf.cards()); n != 0 {
		t.Errorf("accepted %d invalid cards", n)
	}
}

func TestServerErrorsAreRetried(t *testing.T) {
	wf := newWorkflows(t)
	r := newReceiver(t, wf.url())
	for _, a := range []answer{{status: 500}, {status: 502}, {status: 503}, {status: 429}, {status: 408}} {
		wf.queue(a)
		err := r.Notify(context.Background(), notification(t, notify.Message{Title: "x"}))
		if err == nil || bus.IsPermanent(err) {
			t.Errorf("%d: err = %v, want a retryable error", a.status, err)
		}
		if _, ok := retryAfter(err); ok {
			t.Errorf("%d without Retry-After: got a RetryAfter error", a.status)
		}
	}
}

func TestConnectionErrorIsRetriedWithoutLeakingTheURL(t *testing.T) {
	wf := newWorkflows(t)
	u := wf.url()
	wf.srv.Close()
	r := newReceiver(t, u)
	err := r.Notify(context.Background(), notification(t, notify.Message{Title: "x"}))
	if err == nil || bus.IsPermanent(err) {
		t.Fatalf("err = %v, want a retryable error", err)
	}
	if strings.Contains(err.Error(), "TOPSECRET") || strings.Contains(err.Error(), "/workflows/") {
		t.Errorf("error leaks the webhook URL: %v", err)
	}
}

func TestNewRejectsBadConfiguration(t *testing.T) {
	for name, cfg := range map[string]config.Receiver{
		"no msteams": {Name: "x"},
		"no url":     {Name: "x", MSTeams: &config.MSTeamsReceiver{}},
		"relative":   {Name: "x", MSTeams: &config.MSTeamsReceiver{WebhookURL: "/workflows/abc?" + signature}},
		"ftp":        {Name: "x", MSTeams: &config.MSTeamsReceiver{WebhookURL: "ftp://example.com/x?" + signature}},
	} {
		_, err := msteams.New("x", cfg, notify.Options{})
		if err == nil {
			t.Errorf("%s: New succeeded", name)
			continue
		}
		if strings.Contains(err.Error(), "TOPSECRET") {
			t.Errorf("%s: error leaks the URL: %v", name, err)
		}
	}
}
