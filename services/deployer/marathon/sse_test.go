package marathon

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// chunkReader returns its chunks one Read at a time, so tests choose where
// the network splits the stream.
type chunkReader struct{ chunks []string }

func (r *chunkReader) Read(b []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(b, r.chunks[0])
	if n == len(r.chunks[0]) {
		r.chunks = r.chunks[1:]
	} else {
		r.chunks[0] = r.chunks[0][n:]
	}
	return n, nil
}

func parseAll(t *testing.T, r io.Reader) []Event {
	t.Helper()
	p := newSSEParser(r)
	var out []Event
	for {
		ev, err := p.next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if errors.Is(err, errEventTooLarge) {
			out = append(out, Event{Type: "TOO LARGE"})
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
}

const marathonStream = "event: event_stream_attached\r\ndata: {\"remoteAddress\":\"10.0.0.1\",\"eventType\":\"event_stream_attached\",\"timestamp\":\"2024-05-01T10:00:00.000Z\"}\r\n\r\n" +
	"\r\n" + // heartbeat
	": keep-alive comment\n\n" +
	"event: deployment_success\n" +
	"data: {\"id\":\"d1\",\n" +
	"data:  \"plan\":{\"id\":\"d1\",\"version\":\"v1\",\"steps\":[{\"actions\":[{\"action\":\"RestartApplication\",\"app\":\"/dev/a\"}]}]},\"eventType\":\"deployment_success\",\"timestamp\":\"t\"}\n" +
	"\n" +
	"event: no_data\n\n" +
	"data:\n\n" +
	"data\n\n" +
	"id: 7\rretry: 10\revent: deployment_failed\rdata:{\"id\":\"d2\",\"plan\":{\"id\":\"d2\"},\"reason\":\"The upgrade has been cancelled\"}\r\r" +
	"data: untyped\n\n" +
	"event: cut_off\ndata: {\"never\":\"finished\"}\n"

func wantStream(t *testing.T, got []Event) {
	t.Helper()
	want := []Event{
		{Type: "event_stream_attached", Data: []byte(`{"remoteAddress":"10.0.0.1","eventType":"event_stream_attached","timestamp":"2024-05-01T10:00:00.000Z"}`)},
		{Type: "deployment_success", Data: []byte("{\"id\":\"d1\",\n \"plan\":{\"id\":\"d1\",\"version\":\"v1\",\"steps\":[{\"actions\":[{\"action\":\"RestartApplication\",\"app\":\"/dev/a\"}]}]},\"eventType\":\"deployment_success\",\"timestamp\":\"t\"}")},
		{Type: "deployment_failed", Data: []byte(`{"id":"d2","plan":{"id":"d2"},"reason":"The upgrade has been cancelled"}`)},
		{Type: "message", Data: []byte("untyped")},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d: %q", len(got), len(want), got)
	}
	for i := range want {
		if got[i].Type != want[i].Type || string(got[i].Data) != string(want[i].Data) {
			t.Errorf("event %d = %s %q, want %s %q", i, got[i].Type, got[i].Data, want[i].Type, want[i].Data)
		}
	}
}

func TestSSEParsesLineEndingsCommentsAndMultiLineData(t *testing.T) {
	wantStream(t, parseAll(t, strings.NewReader(marathonStream)))
}

func TestSSEEventsSplitAcrossReads(t *testing.T) {
	wantStream(t, parseAll(t, iotest.OneByteReader(strings.NewReader(marathonStream))))
	wantStream(t, parseAll(t, iotest.HalfReader(strings.NewReader(marathonStream))))
	// Every split point, including between the "\r" and "\n" of one line end.
	for i := 1; i < len(marathonStream); i++ {
		got := parseAll(t, &chunkReader{chunks: []string{marathonStream[:i], marathonStream[i:]}})
		if len(got) != 4 {
			t.Fatalf("split at %d: %d events", i, len(got))
		}
	}
}

func TestSSEDropsOversizeEvents(t *testing.T) {
	big := strings.Repeat("x", maxEventBytes/4)
	stream := "event: huge\n" + strings.Repeat("data: "+big+"\n", 5) + "\n" +
		"event: long_line\ndata: " + strings.Repeat("y", maxEventBytes+10) + "\n\n" +
		"event: after\ndata: {}\n\n"
	got := parseAll(t, strings.NewReader(stream))
	if len(got) != 3 || got[0].Type != "TOO LARGE" || got[1].Type != "TOO LARGE" || got[2].Type != "after" {
		types := []string{}
		for _, e := range got {
			types = append(types, e.Type)
		}
		t.Fatalf("events = %v", types)
	}
}

func TestDeploymentEvent(t *testing.T) {
	ev := Event{Type: "deployment_failed", Data: []byte(`{"id":"d2","plan":{"id":"d2","version":"2024-05-01T10:00:00.000Z",
		"steps":[{"actions":[{"action":"RestartApplication","app":"/dev/a"},{"action":"ScaleApplication","app":"/dev/b"}]},{"actions":[{"app":"/dev/a"}]}]},
		"reason":"The upgrade has been cancelled","eventType":"deployment_failed","timestamp":"2024-05-01T10:00:01.000Z"}`)}
	d, err := ev.Deployment()
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != "d2" || d.Plan.ID != "d2" || d.Plan.Version != "2024-05-01T10:00:00.000Z" || d.Reason != "The upgrade has been cancelled" ||
		d.Timestamp != "2024-05-01T10:00:01.000Z" {
		t.Errorf("event = %+v", d)
	}
	if apps := d.AffectedApps(); len(apps) != 2 || apps[0] != "/dev/a" || apps[1] != "/dev/b" {
		t.Errorf("affected apps = %v", apps)
	}
	// deployment_info has no own id.
	info, err := Event{Type: "deployment_info", Data: []byte(`{"plan":{"id":"d3"},"currentStep":{"actions":[]}}`)}.Deployment()
	if err != nil || info.ID != "d3" {
		t.Errorf("info = %+v, %v", info, err)
	}
	for _, bad := range []Event{
		{Type: "status_update_event", Data: []byte(`{"id":"x"}`)},
		{Type: "deployment_success", Data: []byte(`not json`)},
		{Type: "deployment_success", Data: []byte(`{"plan":{}}`)},
	} {
		if _, err := bad.Deployment(); err == nil {
			t.Errorf("Deployment(%s %s) succeeded", bad.Type, bad.Data)
		}
	}
}
