package cdevents_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	cdapi "github.com/cdevents/sdk-go/pkg/api"
	cdeventsv05 "github.com/cdevents/sdk-go/pkg/api/v05"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	ceclient "github.com/cloudevents/sdk-go/v2/client"
	"github.com/cloudevents/sdk-go/v2/protocol"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	purl "github.com/package-url/packageurl-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/notifier/notify"
	"github.com/slipway-cd/slipway/services/notifier/notify/cdevents"
)

// sink is a CDEvents consumer: the CloudEvents SDK's HTTP receiver, which
// parses every incoming CloudEvent, then the CDEvents SDK, which parses and
// validates the CDEvent against the spec's schema. Invalid events get 400.
// Queued answers replace the next responses (before any parsing).
type sink struct {
	srv *httptest.Server

	mu       sync.Mutex
	answers  []answer
	received []received
	headers  []http.Header
}

type answer struct {
	status int
	header http.Header
}

type received struct {
	ce cloudevents.Event
	cd cdapi.CDEventV04
}

// parseMu serialises cdeventsv05.NewFromJsonBytes, which decodes into
// shared per-type instances.
var parseMu sync.Mutex

func newSink(t *testing.T) *sink {
	t.Helper()
	s := &sink{}
	p, err := cehttp.New()
	if err != nil {
		t.Fatal(err)
	}
	h, err := ceclient.NewHTTPReceiveHandler(context.Background(), p, s.receive)
	if err != nil {
		t.Fatal(err)
	}
	s.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.headers = append(s.headers, r.Header.Clone())
		var next *answer
		if len(s.answers) > 0 {
			next = &s.answers[0]
			s.answers = s.answers[1:]
		}
		s.mu.Unlock()
		if next != nil {
			for k, v := range next.header {
				rw.Header()[k] = v
			}
			rw.WriteHeader(next.status)
			return
		}
		h.ServeHTTP(rw, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) receive(_ context.Context, ce cloudevents.Event) protocol.Result {
	reject := func(format string, args ...any) protocol.Result {
		return cehttp.NewResult(http.StatusBadRequest, format, args...)
	}
	if err := ce.Validate(); err != nil {
		return reject("invalid CloudEvent: %v", err)
	}
	// Parse as a CDEvents consumer does: the SDK picks the type from the
	// context and checks it is one it knows, in a compatible version.
	parseMu.Lock()
	parsed, err := cdeventsv05.NewFromJsonBytes(ce.Data())
	var typ cdapi.CDEventType
	if err == nil {
		typ = parsed.GetType()
	}
	parseMu.Unlock()
	if err != nil {
		return reject("not a CDEvent: %v", err)
	}
	// Decode again into a fresh event of that type, so nothing of an
	// earlier event survives, and validate it against the schema.
	fresh, err := cdeventsv05.NewCDEvent(typ.String(), cdeventsv05.SpecVersion)
	if err != nil {
		return reject("unknown CDEvent type %s: %v", typ, err)
	}
	cd, ok := fresh.(cdapi.CDEventV04)
	if !ok {
		return reject("%s is not a v0.4+ event", typ)
	}
	if err := json.Unmarshal(ce.Data(), cd); err != nil {
		return reject("decode %s: %v", typ, err)
	}
	if err := cdapi.Validate(cd); err != nil {
		return reject("invalid CDEvent: %v", err)
	}
	// Validate checks the decoded struct; check the document as sent too
	// (unknown properties are dropped by decoding, the schema forbids
	// them).
	_, schema, err := cd.GetSchema()
	if err != nil {
		return reject("no schema for %s: %v", typ, err)
	}
	var doc any
	if err := json.Unmarshal(ce.Data(), &doc); err != nil {
		return reject("decode %s: %v", typ, err)
	}
	if err := schema.Validate(doc); err != nil {
		return reject("invalid CDEvent: %v", err)
	}
	if cd.GetVersion() != "0.5.0" {
		return reject("CDEvents spec version %q, want 0.5.0", cd.GetVersion())
	}
	// The CloudEvents binding for CDEvents.
	switch {
	case ce.SpecVersion() != "1.0":
		return reject("CloudEvents specversion %q", ce.SpecVersion())
	case ce.ID() != cd.GetId():
		return reject("ce id %q, CDEvent id %q", ce.ID(), cd.GetId())
	case ce.Source() != cd.GetSource():
		return reject("ce source %q, CDEvent source %q", ce.Source(), cd.GetSource())
	case ce.Type() != cd.GetType().String():
		return reject("ce type %q, CDEvent type %q", ce.Type(), cd.GetType())
	case ce.Subject() != cd.GetSubjectId():
		return reject("ce subject %q, CDEvent subject id %q", ce.Subject(), cd.GetSubjectId())
	case !ce.Time().Equal(cd.GetTimestamp()):
		return reject("ce time %v, CDEvent timestamp %v", ce.Time(), cd.GetTimestamp())
	}
	s.mu.Lock()
	s.received = append(s.received, received{ce: ce, cd: cd})
	s.mu.Unlock()
	return cehttp.NewResult(http.StatusAccepted, "")
}

func (s *sink) queue(a ...answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers = append(s.answers, a...)
}

func (s *sink) events() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.received...)
}

func (s *sink) requests() []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]http.Header(nil), s.headers...)
}

func newReceiver(t *testing.T, url string) notify.Receiver {
	t.Helper()
	r, err := cdevents.New("cd", config.Receiver{Name: "cd", CDEvents: &config.CDEventsReceiver{URL: url}},
		notify.Options{HTTPClient: &http.Client{Timeout: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var eventTime = time.Date(2026, 5, 1, 12, 30, 0, 0, time.UTC)

const digest = "sha256:4b1c4f7c0c1a0c3f6a8f7e6d5c4b3a29181716151413121110f0e0d0c0b0a09"

func event(t *testing.T, typ events.Type, env, subject string, data any) events.Event {
	t.Helper()
	e, err := events.New(context.Background(), events.Spec{
		ID: events.ID(t.Name(), string(typ), subject), Type: typ, Source: "/slipway/test", Environment: env,
		Subject: subject, Time: eventTime, Data: data,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// send notifies and returns what the sink received for it.
func send(t *testing.T, s *sink, r notify.Receiver, e events.Event) received {
	t.Helper()
	before := len(s.events())
	if err := r.Notify(context.Background(), notify.Notification{Event: e}); err != nil {
		t.Fatalf("Notify %s: %v", e.Type(), err)
	}
	got := s.events()
	if len(got) != before+1 {
		t.Fatalf("sink received %d CDEvents for %s, want 1", len(got)-before, e.Type())
	}
	return got[len(got)-1]
}

func checkPurl(t *testing.T, id, name, version, repositoryURL, tag string) {
	t.Helper()
	p, err := purl.FromString(id)
	if err != nil {
		t.Fatalf("artifact id %q is not a purl: %v", id, err)
	}
	q := p.Qualifiers.Map()
	if p.Type != "oci" || p.Name != name || p.Version != version || q["repository_url"] != repositoryURL || q["tag"] != tag {
		t.Errorf("artifact %q = type %s name %s version %s qualifiers %v; want oci %s@%s repository_url=%s tag=%s",
			id, p.Type, p.Name, p.Version, q, name, version, repositoryURL, tag)
	}
}

func checkCommon(t *testing.T, got received, e events.Event, subject, predicate string) {
	t.Helper()
	typ := got.cd.GetType()
	if typ.Subject != subject || typ.Predicate != predicate {
		t.Errorf("type %s, want %s.%s", typ, subject, predicate)
	}
	if got.cd.GetId() != cdevents.ID(e.ID()) || got.cd.GetId() == "" {
		t.Errorf("id %q, want %q (derived from %s)", got.cd.GetId(), cdevents.ID(e.ID()), e.ID())
	}
	if !got.cd.GetTimestamp().Equal(eventTime) || got.cd.GetSource() != "/slipway/test" {
		t.Errorf("timestamp %v, source %q", got.cd.GetTimestamp(), got.cd.GetSource())
	}
	var custom cdevents.CustomData
	if err := got.cd.GetCustomDataAs(&custom); err != nil {
		t.Fatalf("customData: %v", err)
	}
	if custom.Slipway.ID != e.ID() || custom.Slipway.Type != e.Type() || len(custom.Slipway.Data) == 0 {
		t.Errorf("customData = %+v", custom)
	}
	if ct := got.ce.DataContentType(); ct != "application/cdevents+json" {
		t.Errorf("datacontenttype %q", ct)
	}
}

func TestImagePushedIsArtifactPublished(t *testing.T) {
	s := newSink(t)
	r := newReceiver(t, s.srv.URL)
	if r.Kind() != "cdevents" || r.Name() != "cd" {
		t.Fatalf("Kind, Name = %q, %q", r.Kind(), r.Name())
	}
	e := event(t, events.TypeImagePushed, "dev", "127.0.0.1:5001/apps/web:1.4.0@"+digest, events.ImagePushed{
		Environment: "dev", Registry: "127.0.0.1:5001", Repository: "apps/web", Tag: "1.4.0", Digest: digest,
		Actor: "ci-bot", Source: "dev-registry", Format: "distribution", UpstreamID: "u1", PushedAt: eventTime,
	})
	got := send(t, s, r, e)
	checkCommon(t, got, e, "artifact", "published")
	ev, ok := got.cd.(*cdeventsv05.ArtifactPublishedEvent)
	if !ok {
		t.Fatalf("CDEvent %T", got.cd)
	}
	checkPurl(t, ev.Subject.Id, "web", digest, "127.0.0.1:5001/apps/web", "1.4.0")
	if ev.Subject.Content.User != "ci-bot" {
		t.Errorf("user %q", ev.Subject.Content.User)
	}
	// Binary content mode: the context in ce-* headers, the CDEvent as body.
	h := s.requests()[0]
	if h.Get("Ce-Id") != cdevents.ID(e.ID()) || h.Get("Ce-Specversion") != "1.0" || !strings.HasPrefix(h.Get("Content-Type"), "application/cdevents+json") {
		t.Errorf("request headers %v, want binary mode", h)
	}
	// A resend is the same CDEvent.
	again := send(t, s, r, e)
	if again.cd.GetId() != got.cd.GetId() || string(again.ce.Data()) != string(got.ce.Data()) {
		t.Errorf("resend differs:\n%s\n%s", got.ce.Data(), again.ce.Data())
	}
}

func TestImagePromotedIsArtifactPublishedInTheTargetRegistry(t *testing.T) {
	s := newSink(t)
	r := newReceiver(t, s.srv.URL)
	from := events.ImageRef{Environment: "tst", Registry: "reg.tst.example", Repository: "apps/web", Tag: "1.4.0", Digest: digest}
	to := events.ImageRef{Environment: "prd", Registry: "reg.prd.example:443", Repository: "team/apps/Web", Tag: "1.4.0", Digest: digest}
	e := event(t, events.TypeImagePromoted, "prd", to.String(), events.ImagePromoted{Promotion: "tst-to-prd", From: from, To: to, BlobsCopied: 3})
	got := send(t, s, r, e)
	checkCommon(t, got, e, "artifact", "published")
	checkPurl(t, got.cd.GetSubjectId(), "web", digest, "reg.prd.example:443/team/apps/Web", "1.4.0")
}

func TestDeploymentSucceededIsServiceDeployedOrUpgraded(t *testing.T) {
	s := newSink(t)
	r := newReceiver(t, s.srv.URL)
	base := events.Deployment{
		Cluster: "azure-int", Environment: "dev", AppID: "/payments/web", ToImage: "127.0.0.1:5001/apps/web:1.4.0", Digest: digest,
		Platform: events.PlatformMarathon, DeploymentID: "d1", Revision: "2026-05-01T12:30:00.000Z",
		MarathonDeploymentID: "d1", MarathonVersion: "2026-05-01T12:30:00.000Z", DurationMs: 4200,
	}

	first := event(t, events.TypeDeploymentSucceeded, "dev", "azure-int:/payments/web", base)
	got := send(t, s, r, first)
	checkCommon(t, got, first, "service", "deployed")
	dep, ok := got.cd.(*cdeventsv05.ServiceDeployedEvent)
	if !ok {
		t.Fatalf("CDEvent %T, want service.deployed", got.cd)
	}
	if dep.Subject.Id != "azure-int/payments/web" || dep.Subject.Content.Environment == nil || dep.Subject.Content.Environment.Id != "dev" {
		t.Errorf("service %q environment %+v", dep.Subject.Id, dep.Subject.Content.Environment)
	}
	checkPurl(t, dep.Subject.Content.ArtifactId, "web", digest, "127.0.0.1:5001/apps/web", "1.4.0")

	up := base
	up.FromImage = "127.0.0.1:5001/apps/web:1.3.9"
	upgrade := event(t, events.TypeDeploymentSucceeded, "dev", "azure-int:/payments/web", up)
	got = send(t, s, r, upgrade)
	checkCommon(t, got, upgrade, "service", "upgraded")
	upg, ok := got.cd.(*cdeventsv05.ServiceUpgradedEvent)
	if !ok {
		t.Fatalf("CDEvent %T, want service.upgraded", got.cd)
	}
	if upg.Subject.Id != "azure-int/payments/web" || upg.Subject.Content.Environment.Id != "dev" {
		t.Errorf("service %q environment %+v", upg.Subject.Id, upg.Subject.Content.Environment)
	}
	checkPurl(t, upg.Subject.Content.ArtifactId, "web", digest, "127.0.0.1:5001/apps/web", "1.4.0")
}

func TestRolledBackDeploymentIsServiceRolledback(t *testing.T) {
	s := newSink(t)
	r := newReceiver(t, s.srv.URL)
	d := events.Deployment{
		Cluster: "vsphere-prd", Environment: "prd", AppID: "/shop/api", FromImage: "nginx:1.27", ToImage: "nginx:1.28", Digest: digest,
		Reason: "never became healthy", RolledBack: true,
	}
	e := event(t, events.TypeDeploymentFailed, "prd", "vsphere-prd:/shop/api", d)
	got := send(t, s, r, e)
	checkCommon(t, got, e, "service", "rolledback")
	rb, ok := got.cd.(*cdeventsv05.ServiceRolledbackEvent)
	if !ok {
		t.Fatalf("CDEvent %T", got.cd)
	}
	if rb.Subject.Id != "vsphere-prd/shop/api" || rb.Subject.Content.Environment.Id != "prd" {
		t.Errorf("service %q environment %+v", rb.Subject.Id, rb.Subject.Content.Environment)
	}
	// The artifact running again is the one from before (on Docker Hub;
	// its digest is unknown).
	checkPurl(t, rb.Subject.Content.ArtifactId, "nginx", "", "docker.io/library/nginx", "1.27")

	// A failure without a rollback has no CDEvent.
	d.RolledBack = false
	before := len(s.requests())
	if err := r.Notify(context.Background(), notify.Notification{Event: event(t, events.TypeDeploymentFailed, "prd", "vsphere-prd:/shop/api#2", d)}); err != nil {
		t.Fatal(err)
	}
	if n := len(s.requests()) - before; n != 0 {
		t.Errorf("%d requests for a failure without rollback", n)
	}
}

func TestOtherEventsAreNotSent(t *testing.T) {
	s := newSink(t)
	r := newReceiver(t, s.srv.URL)
	ref := events.ImageRef{Environment: "prd", Registry: "reg", Repository: "apps/web", Tag: "1.4.0", Digest: digest}
	for _, e := range []events.Event{
		event(t, events.TypeApprovalRequested, "prd", ref.String(), events.ApprovalRequested{ApprovalID: "a1", Promotion: "p", From: ref, To: ref, ExpiresAt: eventTime}),
		event(t, events.TypeApprovalGranted, "prd", ref.String(), events.ApprovalDecision{ApprovalID: "a1", By: "rm"}),
		event(t, events.TypePromotionFailed, "prd", ref.String(), events.PromotionFailed{Promotion: "p", From: ref, To: ref, Error: "x"}),
		event(t, events.TypeDeploymentStarted, "prd", "c:/a", events.Deployment{Cluster: "c", AppID: "/a", ToImage: "nginx:1"}),
		event(t, events.TypeDriftDetected, "prd", "c:/a", events.DriftDetected{Cluster: "c", AppID: "/a"}),
		event(t, events.TypeNotificationFailed, "prd", "", events.NotificationFailed{Receiver: "cd", EventID: "x"}),
	} {
		if err := r.Notify(context.Background(), notify.Notification{Event: e}); err != nil {
			t.Errorf("%s: %v", e.Type(), err)
		}
	}
	if n := len(s.requests()); n != 0 {
		t.Errorf("%d requests, want none", n)
	}
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

func pushed(t *testing.T) events.Event {
	return event(t, events.TypeImagePushed, "dev", "reg/apps/web:1", events.ImagePushed{
		Environment: "dev", Registry: "reg", Repository: "apps/web", Tag: "1", Digest: digest, PushedAt: eventTime,
	})
}

func TestUnavailableIsRetried(t *testing.T) {
	s := newSink(t)
	r := newReceiver(t, s.srv.URL)
	e := pushed(t)

	s.queue(answer{status: http.StatusServiceUnavailable, header: http.Header{"Retry-After": {"30"}}})
	err := r.Notify(context.Background(), notify.Notification{Event: e})
	if d, ok := retryAfter(err); !ok || d != 30*time.Second || bus.IsPermanent(err) {
		t.Errorf("503 Retry-After 30: err = %v (retry after %v, %v)", err, d, ok)
	}
	s.queue(answer{status: http.StatusTooManyRequests, header: http.Header{"Retry-After": {"5"}}})
	err = r.Notify(context.Background(), notify.Notification{Event: e})
	if d, ok := retryAfter(err); !ok || d != 5*time.Second {
		t.Errorf("429 Retry-After 5: err = %v (retry after %v, %v)", err, d, ok)
	}
	// "Retry-After: 0" is "now": the shortest back-off step.
	s.queue(answer{status: http.StatusServiceUnavailable, header: http.Header{"Retry-After": {"0"}}})
	err = r.Notify(context.Background(), notify.Notification{Event: e})
	if d, ok := retryAfter(err); !ok || d != 0 {
		t.Errorf("503 Retry-After 0: err = %v (retry after %v, %v), want a RetryAfter of 0", err, d, ok)
	}
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusInternalServerError, http.StatusBadGateway, http.StatusTooEarly, http.StatusRequestTimeout} {
		s.queue(answer{status: status})
		err := r.Notify(context.Background(), notify.Notification{Event: e})
		if err == nil || bus.IsPermanent(err) {
			t.Errorf("%d: err = %v, want retryable", status, err)
		}
		if _, ok := retryAfter(err); ok {
			t.Errorf("%d without Retry-After: a RetryAfter error", status)
		}
	}
	if len(s.events()) != 0 {
		t.Fatal("the sink accepted an event while failing")
	}
	send(t, s, r, e) // recovered
}

func TestClientErrorsArePermanent(t *testing.T) {
	s := newSink(t)
	r := newReceiver(t, s.srv.URL)
	for _, status := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound, http.StatusUnsupportedMediaType} {
		s.queue(answer{status: status})
		if err := r.Notify(context.Background(), notify.Notification{Event: pushed(t)}); !bus.IsPermanent(err) {
			t.Errorf("%d: err = %v, want permanent", status, err)
		}
	}
}

// The sink is no stub: a CloudEvent whose data is not a valid CDEvent gets
// 400, and the integration reports that as permanent.
func TestSinkRejectsInvalidCDEvents(t *testing.T) {
	s := newSink(t)
	c, err := cloudevents.NewClientHTTP(cehttp.WithTarget(s.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	valid, err := cdeventsv05.NewServiceDeployedEvent()
	if err != nil {
		t.Fatal(err)
	}
	valid.SetSource("/test")
	valid.SetSubjectId("c/app")
	valid.SetSubjectArtifactId("pkg:oci/web@" + digest)
	valid.SetSubjectEnvironment(&cdapi.Reference{Id: "dev"})
	good, err := cdapi.AsCloudEvent(valid)
	if err != nil {
		t.Fatal(err)
	}
	good.SetTime(valid.GetTimestamp())
	if res := c.Send(context.Background(), *good); !cloudevents.IsACK(res) {
		t.Fatalf("the sink refused a valid CDEvent: %v", res)
	}
	body, _ := cdapi.AsJsonBytes(valid)
	for name, tc := range map[string]struct{ data, reason string }{
		"not json":        {`{"context":`, "not a CDEvent"},
		"no environment":  {strings.Replace(string(body), `,"environment":{"id":"dev"}`, "", 1), "invalid CDEvent"},
		"unknown type":    {strings.Replace(string(body), "service.deployed", "service.exploded", 1), "unknown event type"},
		"extra field":     {strings.Replace(string(body), `"subject":{`, `"subject":{"colour":"red",`, 1), "invalid CDEvent"},
		"spec version 99": {strings.Replace(string(body), `"specversion":"0.5.0"`, `"specversion":"9.9.0"`, 1), "spec version"},
	} {
		if tc.data == string(body) {
			t.Fatalf("%s: the test did not change the event: %s", name, body)
		}
		ce := good.Clone()
		if err := ce.SetData("application/cdevents+json", []byte(tc.data)); err != nil {
			t.Fatal(err)
		}
		res := c.Send(context.Background(), ce)
		var hr *cehttp.Result
		if !cloudevents.ResultAs(res, &hr) || hr.StatusCode != http.StatusBadRequest || !strings.Contains(res.Error(), tc.reason) {
			t.Errorf("%s: result %v, want 400 %s", name, res, tc.reason)
		}
	}
	if n := len(s.events()); n != 1 {
		t.Errorf("the sink accepted %d events, want the valid one", n)
	}
}

func TestConnectionErrorIsRetriedWithoutLeakingTheURL(t *testing.T) {
	s := newSink(t)
	u := strings.Replace(s.srv.URL, "http://", "http://user:PASSWORD@", 1) + "/hook?token=TOKEN"
	s.srv.Close()
	r := newReceiver(t, u)
	err := r.Notify(context.Background(), notify.Notification{Event: pushed(t)})
	if err == nil || bus.IsPermanent(err) {
		t.Fatalf("err = %v, want retryable", err)
	}
	if strings.Contains(err.Error(), "PASSWORD") || strings.Contains(err.Error(), "TOKEN") {
		t.Errorf("error leaks the URL: %v", err)
	}
}

func TestNewRejectsBadConfiguration(t *testing.T) {
	for name, cfg := range map[string]config.Receiver{
		"no cdevents": {Name: "x"},
		"no url":      {Name: "x", CDEvents: &config.CDEventsReceiver{}},
		"relative":    {Name: "x", CDEvents: &config.CDEventsReceiver{URL: "/events"}},
		"nats":        {Name: "x", CDEvents: &config.CDEventsReceiver{URL: "nats://localhost:4222"}},
	} {
		if _, err := cdevents.New("x", cfg, notify.Options{}); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func ExampleArtifactID() {
	fmt.Println(cdevents.ArtifactID("ghcr.io", "acme/web", "1.4.0", "sha256:abc"))
	// Output: pkg:oci/web@sha256:abc?repository_url=ghcr.io%2Facme%2Fweb&tag=1.4.0
}

// The CDEvent carries the trace it was sent in as the CloudEvents
// distributed-tracing extension, which the binary HTTP binding sends as
// ce-traceparent, so that the receiver joins the trace.
func TestCDEventCarriesTraceparent(t *testing.T) {
	s := newSink(t)
	r := newReceiver(t, s.srv.URL)
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	if err := r.Notify(ctx, notify.Notification{Event: pushed(t)}); err != nil {
		t.Fatal(err)
	}
	const want = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if got := s.requests()[0].Get("Ce-Traceparent"); got != want {
		t.Errorf("ce-traceparent %q, want %q", got, want)
	}
	if got, _ := s.events()[0].ce.Extensions()["traceparent"].(string); got != want {
		t.Errorf("traceparent extension %q, want %q", got, want)
	}
}
