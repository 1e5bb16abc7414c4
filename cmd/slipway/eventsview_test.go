package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

// pushEvent is an image.pushed event of the image with digest, at t.
func pushEvent(t *testing.T, id, digest string, at time.Time) events.Event {
	t.Helper()
	e, err := events.New(t.Context(), events.Spec{
		ID: events.ID(id), Type: events.TypeImagePushed, Source: "/slipway/ingest/dev-registry", Environment: "dev",
		Subject: "registry.dev.example/apps/web:1.4.0@" + digest, Time: at,
		Data: events.ImagePushed{Environment: "dev", Registry: "registry.dev.example", Repository: "apps/web", Tag: "1.4.0",
			Digest: digest, Source: "dev-registry"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// eventStream is an embedded NATS server holding Slipway's event stream,
// and a connection to it.
func eventStream(t *testing.T) (*testkit.NATSServer, jetstream.JetStream) {
	t.Helper()
	ns := testkit.NATS(t)
	_, js := ns.Connect(t)
	if _, err := bus.EnsureStream(t.Context(), js, bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	return ns, js
}

// waitLine returns the first line from lines that contains want.
func waitLine(t *testing.T, lines <-chan string, want string) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("output ended before a line with %q", want)
			}
			if strings.Contains(line, want) {
				return line
			}
		case <-deadline:
			t.Fatalf("no line with %q within 30s", want)
		}
	}
}

// TestEventsTailSaysWhatItFollowsAndWhenTheConnectionIsLost: tail says
// on stderr which server (its password hidden), stream and subject it
// follows; when the server goes away it says the connection is lost, when
// the server is back that it is reconnected, and it goes on printing.
func TestEventsTailSaysWhatItFollowsAndWhenTheConnectionIsLost(t *testing.T) {
	ns := testkit.NATS(t)
	_, js := ns.Connect(t)
	if _, err := bus.EnsureStream(t.Context(), js, bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	withUser := strings.Replace(ns.URL, "nats://", "nats://watcher:s3cret@", 1)
	lines, status, stop := tailWithStatus("--nats", withUser)
	defer stop()

	host := strings.TrimPrefix(ns.URL, "nats://")
	line := waitLine(t, status, "connected to")
	want := fmt.Sprintf("slipway events tail: connected to nats://watcher:xxxxx@%s, stream SLIPWAY, subject slipway.>: new events", host)
	if !strings.HasPrefix(line, want) {
		t.Errorf("status %q, want %q", line, want)
	}

	ns.Shutdown()
	line = waitLine(t, status, "lost the connection")
	if !strings.Contains(line, "lost the connection to nats://watcher:xxxxx@"+host) || !strings.Contains(line, "reconnecting") {
		t.Errorf("status %q", line)
	}
	ns.Restart(t)
	waitLine(t, status, "reconnected to nats://watcher:xxxxx@"+host)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	digest := "sha256:" + strings.Repeat("5e", 32)
	if _, err := bus.NewPublisher(js, "").Publish(ctx, pushEvent(t, "after-restart", digest, time.Now())); err != nil {
		t.Fatal(err)
	}
	waitLine(t, lines, "image.pushed")
	if err := stop(); err != nil {
		t.Errorf("tail: %v", err)
	}
	for line := range status {
		if strings.Contains(line, "s3cret") {
			t.Errorf("the password is printed: %q", line)
		}
	}
}

// TestEventsListPrintsATimeSpanAndStops: `events list` prints the events
// stored between --since and --until and returns; an event not from
// today shows its date; digests are shortened unless --wide; output to a
// pipe has no colours.
func TestEventsListPrintsATimeSpanAndStops(t *testing.T) {
	ns, js := eventStream(t)
	ctx := t.Context()
	pub := bus.NewPublisher(js, "")
	digestA, digestB := "sha256:"+strings.Repeat("a1", 32), "sha256:"+strings.Repeat("b2", 32)
	// A was pushed three days ago (delivered late); B now.
	old := time.Now().Add(-72 * time.Hour)
	if _, err := pub.Publish(ctx, pushEvent(t, "a", digestA, old)); err != nil {
		t.Fatal(err)
	}
	between := time.Now()
	if _, err := pub.Publish(ctx, pushEvent(t, "b", digestB, time.Now())); err != nil {
		t.Fatal(err)
	}

	list := func(args ...string) []string {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		out, errOut, code := runCLI(t, ctx, append([]string{"events", "list", "--nats", ns.URL}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errOut)
		}
		if out == "" {
			return nil
		}
		return strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	}

	untilBetween := between.Format(time.RFC3339Nano)
	got := list("--since", "1h", "--until", untilBetween)
	if len(got) != 1 || !strings.Contains(got[0], "sha256:a1a1a1a1a1a1") {
		t.Fatalf("--until before B: %q, want A alone", got)
	}
	if date := old.Local().Format(time.DateOnly) + " "; !strings.HasPrefix(got[0], date) {
		t.Errorf("an event of another day: %q, want it to start with its date %q", got[0], date)
	}
	if strings.Contains(got[0], digestA) {
		t.Errorf("digest not shortened: %q", got[0])
	}

	got = list("--since", untilBetween)
	if len(got) != 1 || !strings.Contains(got[0], "sha256:b2b2b2b2b2b2") {
		t.Fatalf("--since after A: %q, want B alone", got)
	}
	if !regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{3}  image\.pushed`).MatchString(got[0]) {
		t.Errorf("an event of today: %q, want the time without the date", got[0])
	}

	got = list("--since", "1h", "--wide")
	if len(got) != 2 || !strings.Contains(got[0], digestA) || !strings.Contains(got[1], digestB) {
		t.Errorf("--wide: %q, want both with their full digests", got)
	}
	if got := list("--since", "1h", "--json"); len(got) != 2 || !strings.HasPrefix(got[0], `{`) {
		t.Errorf("--json: %q", got)
	}

	// Nothing in the span: said on stderr, and no failure.
	out, errOut, code := runCLI(t, ctx, "events", "list", "--nats", ns.URL, "--subject", "slipway.deployment.>")
	if code != 0 || out != "" || !strings.Contains(errOut, "no events on slipway.deployment.> (stream SLIPWAY)") {
		t.Errorf("empty span: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// Through a pipe: no colour codes.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		read <- string(b)
	}()
	code = cli(ctx, []string{"events", "list", "--nats", ns.URL}, w, io.Discard)
	w.Close()
	if piped := <-read; code != 0 || strings.Count(piped, "\n") != 2 || strings.Contains(piped, "\033[") {
		t.Errorf("piped: exit %d, output %q, want two lines without escape codes", code, piped)
	}
}

// TestEventLineColours: on a terminal the type shows its colour (red for
// what failed) and the time is faint; without colours the line is plain.
func TestEventLineColours(t *testing.T) {
	e, err := events.New(t.Context(), events.Spec{
		ID: events.ID("c"), Type: events.TypeDeploymentFailed, Source: "/slipway/deployer", Environment: "prd",
		Subject: "vsphere-prd:/apps/web", Data: events.Deployment{Cluster: "vsphere-prd", AppID: "/apps/web", ToImage: "r/apps/web:2.0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := &eventPrinter{now: time.Now}
	plain := p.line(e)
	p.color = true
	coloured := p.line(e)
	if strings.Contains(plain, "\033[") {
		t.Errorf("plain line has escape codes: %q", plain)
	}
	if !strings.Contains(coloured, "\033[31mdeployment.failed") || !strings.Contains(coloured, "\033[2m") {
		t.Errorf("coloured line %q, want the type in red and a faint time", coloured)
	}
	if stripped := regexp.MustCompile("\033\\[[0-9;]*m").ReplaceAllString(coloured, ""); stripped != plain {
		t.Errorf("colours change the text: %q vs %q", stripped, plain)
	}
}

// TestEventsListReadsTheNATSAddressFromTheConfigAndTakesADate: with
// --config the NATS address comes from the file, and --since takes a date
// (local midnight) as well as a duration or a time. A date after today
// leaves no span to list: a usage error.
func TestEventsListReadsTheNATSAddressFromTheConfigAndTakesADate(t *testing.T) {
	ns, js := eventStream(t)
	ctx := t.Context()
	if _, err := bus.NewPublisher(js, "").Publish(ctx, pushEvent(t, "dated", "sha256:"+strings.Repeat("d4", 32), time.Now())); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "slipway.yaml")
	writeFile(t, path, fmt.Sprintf("nats:\n  url: %q\n", ns.URL))

	yesterday := time.Now().AddDate(0, 0, -1).Format(time.DateOnly)
	out, errOut, code := runCLI(t, ctx, "events", "list", "--config", path, "--since", yesterday)
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, "sha256:d4d4d4d4d4d4") {
		t.Errorf("--since %s: exit %d, stdout %q, stderr %q", yesterday, code, out, errOut)
	}
	tomorrow := time.Now().AddDate(0, 0, 1).Format(time.DateOnly)
	_, errOut, code = runCLI(t, ctx, "events", "list", "--config", path, "--since", tomorrow)
	if code != 2 || !strings.Contains(errOut, "is not after --since") {
		t.Errorf("--since %s: exit %d, stderr %q", tomorrow, code, errOut)
	}
}
