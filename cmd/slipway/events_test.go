package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

// TestEventsTailJSONWritesOnlyJSONLines puts messages that are no
// CloudEvent (plain text over two lines, JSON that is no event, bytes that
// are not UTF-8) on the stream around a good event, and runs
// `slipway events tail --json`: every line it writes must be one JSON value,
// the event as itself and each other message as an object that says what
// it is, with its subject and its body.
func TestEventsTailJSONWritesOnlyJSONLines(t *testing.T) {
	ns := testkit.NATS(t)
	nc, js := ns.Connect(t)
	ctx := t.Context()
	if _, err := bus.EnsureStream(ctx, js, bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	raw := []struct{ subject, body string }{
		{"slipway.image.pushed.dev", "hello\nworld"},
		{"slipway.image.pushed.dev", `{"not": "an event"}`},
		{"slipway.image.pushed.dev", "\xff\xfe not UTF-8"},
	}
	for _, m := range raw[:2] {
		if _, err := js.Publish(ctx, m.subject, []byte(m.body)); err != nil {
			t.Fatal(err)
		}
	}
	e, err := events.New(ctx, events.Spec{
		ID: events.ID("tail-json"), Type: events.TypeDriftDetected, Source: "/slipway/deployer", Environment: "dev",
		Subject: "azure-int:/apps/web",
		Data:    events.DriftDetected{Cluster: "azure-int", AppID: "/apps/web", ExpectedImage: "r/apps/web:1", ActualImage: "r/apps/web:2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.NewPublisher(js, "").Publish(ctx, e); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, raw[2].subject, []byte(raw[2].body)); err != nil {
		t.Fatal(err)
	}
	nc.Close()

	lines, stop := tail("--nats", ns.URL, "--all", "--json")
	var got []map[string]any
	deadline := time.After(30 * time.Second)
	for len(got) < 4 {
		select {
		case line := <-lines:
			var v map[string]any
			if err := json.Unmarshal([]byte(line), &v); err != nil {
				t.Fatalf("line %d is not a JSON object: %q: %v", len(got)+1, line, err)
			}
			got = append(got, v)
		case <-deadline:
			t.Fatalf("%d of 4 lines within 30s", len(got))
		}
	}
	if err := stop(); err != nil {
		t.Errorf("tail: %v", err)
	}

	notEvent := func(v map[string]any, subject string) {
		t.Helper()
		if v["notCloudEvent"] != true || v["subject"] != subject || v["error"] == "" {
			t.Errorf("not flagged as no CloudEvent with its subject and reason: %v", v)
		}
	}
	notEvent(got[0], raw[0].subject)
	if got[0]["data"] != raw[0].body {
		t.Errorf("data = %q, want %q", got[0]["data"], raw[0].body)
	}
	notEvent(got[1], raw[1].subject)
	if got[1]["data"] != raw[1].body {
		t.Errorf("data = %q, want %q", got[1]["data"], raw[1].body)
	}
	if got[2]["id"] != e.ID() || got[2]["type"] != e.Type() || got[2]["notCloudEvent"] != nil {
		t.Errorf("the event is not printed as itself: %v", got[2])
	}
	notEvent(got[3], raw[2].subject)
	if got[3]["dataBase64"] != base64.StdEncoding.EncodeToString([]byte(raw[2].body)) {
		t.Errorf("a body that is not UTF-8 must come whole, in base64: %v", got[3])
	}
}

// tail runs `slipway events tail` with args and returns the lines it
// writes; stop ends it and returns its error.
func tail(args ...string) (lines <-chan string, stop func() error) {
	lines, status, stop := tailWithStatus(args...)
	go func() {
		for range status {
		}
	}()
	return lines, stop
}

// tailWithStatus is tail that also returns the lines it writes on stderr,
// where it says what it follows and how its connection fares.
func tailWithStatus(args ...string) (lines, status <-chan string, stop func() error) {
	pr, pw := io.Pipe()
	er, ew := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		cmd := rootCmd()
		cmd.SetArgs(append([]string{"events", "tail"}, args...))
		cmd.SetOut(pw)
		cmd.SetErr(ew)
		done <- cmd.ExecuteContext(ctx)
		pw.Close()
		ew.Close()
	}()
	// Buffered, so that a test may read stderr after stop.
	scan := func(r io.Reader) <-chan string {
		out := make(chan string, 100)
		go func() {
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				out <- sc.Text()
			}
			close(out)
		}()
		return out
	}
	out, errOut := scan(pr), scan(er)
	return out, errOut, sync.OnceValue(func() error {
		cancel()
		go func() {
			for range out {
			}
		}()
		return <-done
	})
}
