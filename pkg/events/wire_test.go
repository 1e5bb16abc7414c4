package events_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/slipway-cd/slipway/pkg/events"
)

var update = flag.Bool("update", false, "rewrite the golden messages in testdata/wire")

// spanCtx returns ctx carrying a remote span context with fixed ids.
func spanCtx(t testing.TB, flags trace.TraceFlags, state string) context.Context {
	t.Helper()
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ts, err := trace.ParseTraceState(state)
	if err != nil {
		t.Fatal(err)
	}
	return trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: flags, TraceState: ts, Remote: true,
	}))
}

var wireTime = time.Date(2026, 11, 21, 10, 0, 0, 123456789, time.UTC)

func pushedData() events.ImagePushed {
	return events.ImagePushed{
		Environment: "dev", Registry: "r.example:5000", Repository: "apps/web", Tag: "1.4.0",
		Digest: "sha256:" + strings.Repeat("a", 64), MediaType: "application/vnd.oci.image.manifest.v1+json",
		Size: 708, Actor: "alice", Source: "dev-registry", Format: "distribution", UpstreamID: "u-1",
		PushedAt: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC),
	}
}

type wireCase struct {
	name string
	ctx  context.Context
	spec events.Spec
}

// wireCases are the messages whose bytes are pinned: an image.pushed as
// ingest publishes it (with a sampled span and a tracestate), one caused by
// another event without a span, one whose strings need escaping, data given
// as JSON or as bytes, and one of every type with its zero data and an
// unsampled span.
func wireCases(t testing.TB) []wireCase {
	pushed := pushedData()
	cases := []wireCase{
		{"image-pushed-traceparent", spanCtx(t, trace.FlagsSampled, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"), events.Spec{
			ID:   events.ID("image.pushed", "dev", pushed.Registry, pushed.Repository, pushed.Tag, pushed.Digest),
			Type: events.TypeImagePushed, Source: "/slipway/ingest/dev-registry", Environment: "dev",
			Subject: pushed.Ref().String(), Time: wireTime, Data: pushed,
		}},
		{"image-pushed-causation", context.Background(), events.Spec{
			ID: "id-1", Type: events.TypeImagePushed, Source: "/slipway/ingest/dev-registry", Environment: "dev",
			Subject: pushed.Ref().String(), CausationID: "cause-1", Time: wireTime, Data: pushed,
		}},
		{"image-pushed-escaping", spanCtx(t, trace.FlagsSampled, ""), events.Spec{
			ID: "id \"<2>\" & ü", Type: events.TypeImagePushed, Source: "/slipway/ingest/a%20b?x=<y>&z",
			Environment: "dev_1-x", Subject: "r/a<b>&c\u2028d\te\"f\\g", CausationID: "c\u00e9\x01",
			Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600)),
			Data: events.ImagePushed{Actor: "<script>&\u2028", Repository: "ü\x02"},
		}},
		{"raw-data", context.Background(), events.Spec{
			ID: "id-raw", Type: events.TypeEventDeadLettered, Source: "/slipway/test", Environment: "dev",
			Time: wireTime, Data: json.RawMessage(`{ "a": [1, 2] }`),
		}},
		{"bytes-data", context.Background(), events.Spec{
			ID: "id-bytes", Type: events.TypeEventDeadLettered, Source: "/slipway/test", Environment: "dev",
			Time: wireTime, Data: []byte("not json\x00"),
		}},
	}
	for _, tc := range events.Types {
		cases = append(cases, wireCase{"zero-" + tc.Type.Short(), spanCtx(t, 0, "k=v"), events.Spec{
			ID: "id-" + tc.Type.Short(), Type: tc.Type, Source: "/slipway/test", Environment: "prd",
			Subject: "cluster:/apps/web", CausationID: "cause-2", Time: wireTime, Data: tc.Data,
		}})
	}
	return cases
}

// wireBytes renders a message as it goes on the wire: subject, every header
// key exactly as stored (sorted) with its values, a blank line, the body.
func wireBytes(m *nats.Msg) []byte {
	var b bytes.Buffer
	b.WriteString(m.Subject + "\n")
	for _, k := range slices.Sorted(maps.Keys(m.Header)) {
		for _, v := range m.Header[k] {
			b.WriteString(k + ": " + v + "\n")
		}
	}
	b.WriteString("\n")
	b.Write(m.Data)
	return b.Bytes()
}

// The encoding of an event is the contract with every consumer and the
// input of JetStream's de-duplication: a change of bytes, even one that
// decodes to the same event, must be a deliberate one.
func TestMessageBytesArePinned(t *testing.T) {
	for _, tc := range wireCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			e, err := events.New(tc.ctx, tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			m, err := events.ToMsg(e)
			if err != nil {
				t.Fatal(err)
			}
			got := wireBytes(m)
			path := filepath.Join("testdata", "wire", tc.name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("message bytes changed\n got: %s\nwant: %s", got, want)
			}
		})
	}
}

// BenchmarkNewToMsg is ingest's share of the event work per webhook: build an
// image.pushed in a sampled span and encode it as a message.
func BenchmarkNewToMsg(b *testing.B) {
	ctx, spec := benchSpec(b)
	b.ReportAllocs()
	for b.Loop() {
		e, err := events.New(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := events.ToMsg(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNew(b *testing.B) {
	ctx, spec := benchSpec(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := events.New(ctx, spec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkToMsg(b *testing.B) {
	ctx, spec := benchSpec(b)
	e, err := events.New(ctx, spec)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := events.ToMsg(e); err != nil {
			b.Fatal(err)
		}
	}
}

func benchSpec(b *testing.B) (context.Context, events.Spec) {
	pushed := pushedData()
	return spanCtx(b, trace.FlagsSampled, ""), events.Spec{
		ID:   events.ID("image.pushed", "dev", pushed.Registry, pushed.Repository, pushed.Tag, pushed.Digest),
		Type: events.TypeImagePushed, Source: "/slipway/ingest/dev-registry", Environment: "dev",
		Subject: pushed.Ref().String(), Data: pushed,
	}
}

// InjectTrace formats the trace context itself; what it writes must be what
// the W3C propagator writes, for every kind of span context.
func TestInjectTraceWritesWhatTheW3CPropagatorWrites(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	for _, tc := range []struct {
		name  string
		flags trace.TraceFlags
		state string
		tid   trace.TraceID
		sid   trace.SpanID
	}{
		{"sampled", trace.FlagsSampled, "", tid, sid},
		{"unsampled", 0, "", tid, sid},
		{"random", trace.FlagsRandom, "", tid, sid},
		{"undefined flags dropped", 0xff, "", tid, sid},
		{"sampled with tracestate", trace.FlagsSampled, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", tid, sid},
		{"unsampled with tracestate", 0, "k=v", tid, sid},
		{"no trace id", trace.FlagsSampled, "k=v", trace.TraceID{}, sid},
		{"no span id", trace.FlagsSampled, "", tid, trace.SpanID{}},
		{"high bytes", trace.FlagsSampled, "", trace.TraceID{0xff, 0xfe, 0x0a, 0xa0}, trace.SpanID{0x10, 0, 0, 0, 0, 0, 0, 0xff}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, err := trace.ParseTraceState(tc.state)
			if err != nil {
				t.Fatal(err)
			}
			ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
				TraceID: tc.tid, SpanID: tc.sid, TraceFlags: tc.flags, TraceState: ts,
			}))
			want := propagation.MapCarrier{}
			propagation.TraceContext{}.Inject(ctx, want)

			e := cloudevents.New()
			events.InjectTrace(ctx, &e)
			got := map[string]string{}
			for k, v := range e.Extensions() {
				got[k] = v.(string)
			}
			if !maps.Equal(got, map[string]string(want)) {
				t.Errorf("extensions %v, the propagator writes %v", got, want)
			}
		})
	}
}

// Without a span, InjectTrace leaves the trace an event already carries;
// with one, it replaces the traceparent, and the tracestate only when the
// span has one.
func TestInjectTraceKeepsOrReplacesTheEventsTrace(t *testing.T) {
	e := cloudevents.New()
	events.InjectTrace(spanCtx(t, trace.FlagsSampled, "k=v"), &e)
	events.InjectTrace(context.Background(), &e)
	if tp := e.Extensions()[events.ExtTraceParent]; tp != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Errorf("traceparent = %v after an injection without span", tp)
	}
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	events.InjectTrace(trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid,
	})), &e)
	want := map[string]any{
		events.ExtTraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
		events.ExtTraceState:  "k=v",
	}
	if got := e.Extensions(); !maps.Equal(got, want) {
		t.Errorf("extensions %v, want %v", got, want)
	}
}

// ToMsg writes the body itself rather than through e.MarshalJSON; the bytes
// must be the SDK's for any event, odd strings and extensions included.
func TestMessageBodyIsTheSDKEncoding(t *testing.T) {
	odd := []string{
		"", "plain", `quote " and \ backslash`, "<html>&amp;", "tab\tnew\nline\r", "\x00\x01\x1f\x7f",
		"ü é 日本", "\u2028\u2029", "invalid \xff\xfe utf-8", "emoji 🚀", strings.Repeat("long ", 400),
	}
	for i, s := range odd {
		checkBodyIsTheSDKEncoding(t, s, odd[(i+1)%len(odd)], []byte(`{"k":"`+strings.Repeat("v", i*97)+`"}`))
	}
	// Other shapes: no data, a data schema, a time in another zone, other
	// extension types, other content types, binary data, a 0.3 event.
	shapes := map[string]func(e *events.Event){
		"no data":        func(e *events.Event) { e.DataEncoded = nil },
		"data schema":    func(e *events.Event) { e.SetDataSchema("https://example.com/schema?a=<b>") },
		"zoned time":     func(e *events.Event) { e.SetTime(time.Date(2026, 3, 4, 5, 6, 7, 8, time.FixedZone("X", -7*3600))) },
		"zero time":      func(e *events.Event) { e.SetTime(time.Time{}) },
		"int extension":  func(e *events.Event) { e.SetExtension("count", 42) },
		"bool extension": func(e *events.Event) { e.SetExtension("flag", true) },
		"uri extension":  func(e *events.Event) { e.SetExtension("link", &url.URL{Scheme: "https", Host: "x", Path: "/a b"}) },
		"many extensions": func(e *events.Event) {
			for i := range 12 {
				e.SetExtension(fmt.Sprintf("ext%d", 11-i), fmt.Sprint(i))
			}
		},
		"text json":       func(e *events.Event) { e.SetDataContentType("text/json") },
		"json params":     func(e *events.Event) { e.SetDataContentType("application/json; charset=utf-8") },
		"plain text":      func(e *events.Event) { e.SetDataContentType("text/plain") },
		"no content type": func(e *events.Event) { e.SetDataContentType("") },
		"binary data":     func(e *events.Event) { _ = e.SetData("application/octet-stream", []byte{0, 1, 2}) },
		"no subject":      func(e *events.Event) { e.SetSubject("") },
		"version 0.3":     func(e *events.Event) { e.SetSpecVersion(cloudevents.CloudEventsVersionV03) },
	}
	for name, shape := range shapes {
		t.Run(name, func(t *testing.T) {
			e := bodyEvent("id", "subject", []byte(`{"a":1}`))
			shape(&e)
			checkBody(t, e)
		})
	}
}

func FuzzMessageBodyIsTheSDKEncoding(f *testing.F) {
	f.Add("id", "r/apps/web:1.0", []byte(`{"a":1}`))
	f.Add("\u2028<\"", "\xff", []byte(`not json`))
	f.Fuzz(func(t *testing.T, s1, s2 string, data []byte) {
		checkBodyIsTheSDKEncoding(t, s1, s2, data)
	})
}

func checkBodyIsTheSDKEncoding(t *testing.T, s1, s2 string, data []byte) {
	t.Helper()
	checkBody(t, bodyEvent(s1, s2, data))
	checkBody(t, bodyEvent(s2, s1, data))
}

// bodyEvent sets every attribute ToMsg writes, strings from a and b, in the
// image.pushed type and an environment (ToMsg needs a subject).
func bodyEvent(a, b string, data []byte) events.Event {
	e := cloudevents.New()
	e.SetID(a + "x")
	e.SetType(string(events.TypeImagePushed))
	e.SetSource("/slipway/" + url.PathEscape(b))
	e.SetSubject(b)
	e.SetTime(wireTime)
	e.SetExtension("environment", "dev")
	e.SetExtension(events.ExtCausation, a)
	e.SetExtension(events.ExtTraceParent, b)
	e.SetExtension(events.ExtTraceState, a+b)
	e.SetDataContentType(cloudevents.ApplicationJSON)
	e.DataEncoded = data
	return e
}

func checkBody(t *testing.T, e events.Event) {
	t.Helper()
	want, wantErr := e.MarshalJSON()
	m, err := events.ToMsg(e)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("ToMsg error %v, MarshalJSON error %v", err, wantErr)
	}
	if err == nil && !bytes.Equal(m.Data, want) {
		t.Errorf("body differs from the SDK's encoding\n got: %q\nwant: %q", m.Data, want)
	}
}

// newWithSetters builds an event the way the SDK's setters and validation
// do it, each attribute checked on its own: New must give the same event, or
// the same error.
func newWithSetters(ctx context.Context, spec events.Spec) (events.Event, error) {
	if spec.ID == "" {
		return events.Event{}, errors.New("event id is required")
	}
	if _, err := events.Subject(spec.Type, spec.Environment); err != nil {
		return events.Event{}, err
	}
	e := cloudevents.New(cloudevents.CloudEventsVersionV1)
	e.SetID(spec.ID)
	e.SetType(string(spec.Type))
	e.SetSource(spec.Source)
	e.SetSubject(spec.Subject)
	e.SetTime(spec.Time.UTC())
	if spec.CausationID != "" {
		e.SetExtension(events.ExtCausation, spec.CausationID)
	}
	e.SetExtension("environment", spec.Environment)
	if err := e.SetData(cloudevents.ApplicationJSON, spec.Data); err != nil {
		return events.Event{}, fmt.Errorf("encode %s data: %w", spec.Type, err)
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	if tp := c.Get(events.HeaderTraceParent); tp != "" {
		e.SetExtension(events.ExtTraceParent, tp)
		if ts := c.Get(events.HeaderTraceState); ts != "" {
			e.SetExtension(events.ExtTraceState, ts)
		}
	}
	if err := e.Validate(); err != nil {
		return events.Event{}, fmt.Errorf("invalid event: %w", err)
	}
	return e, nil
}

func TestNewBuildsWhatTheSDKSettersBuild(t *testing.T) {
	cases := wireCases(t)
	base := cases[0]
	for _, change := range []struct {
		name string
		f    func(*wireCase)
	}{
		{"blank id", func(c *wireCase) { c.spec.ID = " \t" }},
		{"padded id", func(c *wireCase) { c.spec.ID = " id " }},
		{"no source", func(c *wireCase) { c.spec.Source = "" }},
		{"blank source", func(c *wireCase) { c.spec.Source = "  " }},
		{"fragment source", func(c *wireCase) { c.spec.Source = "#" }},
		{"bad source", func(c *wireCase) { c.spec.Source = "%zz" }},
		{"control source", func(c *wireCase) { c.spec.Source = "/a\x01" }},
		{"absolute source", func(c *wireCase) { c.spec.Source = "https://ingest.example/a?b#c" }},
		{"blank subject", func(c *wireCase) { c.spec.Subject = " " }},
		{"padded subject", func(c *wireCase) { c.spec.Subject = " s\n" }},
		{"no data", func(c *wireCase) { c.spec.Data = nil }},
		{"bytes data", func(c *wireCase) { c.spec.Data = []byte{1, 2} }},
		{"unencodable data", func(c *wireCase) { c.spec.Data = func() {} }},
		{"bad environment", func(c *wireCase) { c.spec.Environment = "d.v" }},
		{"foreign type", func(c *wireCase) { c.spec.Type = "com.example.x" }},
		{"padded type", func(c *wireCase) { c.spec.Type = "dev.slipway. x.v1" }},
		{"no id", func(c *wireCase) { c.spec.ID = "" }},
		{"no span", func(c *wireCase) { c.ctx = context.Background() }},
	} {
		c := base
		c.name = change.name
		change.f(&c)
		cases = append(cases, c)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := events.New(tc.ctx, tc.spec)
			want, wantErr := newWithSetters(tc.ctx, tc.spec)
			if fmt.Sprint(err) != fmt.Sprint(wantErr) {
				t.Fatalf("error %v, want %v", err, wantErr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("event\n got: %#v\nwant: %#v", got.Context, want.Context)
			}
		})
	}
}

// ExtractTrace reads the trace context back as the W3C propagator reads it
// from the same values, valid or not.
func TestExtractTraceReadsWhatTheW3CPropagatorReads(t *testing.T) {
	valid := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct{ name, tp, ts string }{
		{"none", "", ""},
		{"sampled", valid, ""},
		{"unsampled with tracestate", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "k=v,a=b"},
		{"tracestate only", "", "k=v"},
		{"malformed", "00-xyz", "k=v"},
		{"bad tracestate", valid, "=="},
		{"future version", "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := cloudevents.New()
			want := propagation.MapCarrier{}
			if tc.tp != "" {
				e.SetExtension(events.ExtTraceParent, tc.tp)
				want.Set(events.HeaderTraceParent, tc.tp)
			}
			if tc.ts != "" {
				e.SetExtension(events.ExtTraceState, tc.ts)
				want.Set(events.HeaderTraceState, tc.ts)
			}
			got := trace.SpanContextFromContext(events.ExtractTrace(context.Background(), e))
			if w := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), want)); !got.Equal(w) {
				t.Errorf("span context %v, the propagator reads %v", got, w)
			}
		})
	}
}
