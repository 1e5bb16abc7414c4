package bus_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events/bus"
)

func TestEnsureStreamIsIdempotentAndUpdatesLimits(t *testing.T) {
	e := start(t) // has run EnsureStream with the defaults once
	s, err := bus.EnsureStream(e.ctx, e.js, bus.StreamConfig{})
	if err != nil {
		t.Fatalf("second EnsureStream: %v", err)
	}
	cfg := s.CachedInfo().Config
	if cfg.Name != bus.DefaultStream || !slices.Equal(cfg.Subjects, []string{"slipway.>"}) ||
		cfg.MaxAge != bus.DefaultMaxAge || cfg.Duplicates != bus.DefaultDuplicateWindow {
		t.Errorf("stream config %+v", cfg)
	}

	e.publish(t, deployment(t, e.ctx, "1", "prd"))
	s, err = bus.EnsureStream(e.ctx, e.js, bus.StreamConfig{MaxAge: 48 * time.Hour, DuplicateWindow: 20 * time.Minute})
	if err != nil {
		t.Fatalf("EnsureStream with new limits: %v", err)
	}
	info, err := s.Info(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxAge != 48*time.Hour || info.Config.Duplicates != 20*time.Minute {
		t.Errorf("limits not updated: maxAge %s, duplicates %s", info.Config.MaxAge, info.Config.Duplicates)
	}
	if info.State.Msgs != 1 {
		t.Errorf("update lost events: %d messages, want 1", info.State.Msgs)
	}

	dlq, err := e.js.Stream(e.ctx, bus.DeadLetterStreamName(bus.DefaultStream))
	if err != nil {
		t.Fatalf("dead-letter stream: %v", err)
	}
	dcfg := dlq.CachedInfo().Config
	if !slices.Equal(dcfg.Subjects, []string{bus.DeadLetterSubjectPrefix + ".>"}) || dcfg.MaxAge != 48*time.Hour {
		t.Errorf("dead-letter stream config: subjects %v, maxAge %s", dcfg.Subjects, dcfg.MaxAge)
	}
}

func TestEnsureStreamRejectsBadConfig(t *testing.T) {
	e := start(t)
	for name, cfg := range map[string]bus.StreamConfig{
		"short duplicate window": {DuplicateWindow: time.Minute},
		"two replicas":           {Replicas: 2},
		"maxAge below window":    {MaxAge: 5 * time.Minute},
	} {
		if _, err := bus.EnsureStream(e.ctx, e.js, cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// A full stream drops its oldest events and keeps taking new ones: a
// registry's webhook is never refused for space. The dead-letter stream
// does the same.
func TestFullStreamDropsTheOldestAndStillAcks(t *testing.T) {
	e := startServer(t, nil)
	const limit = 64 << 10
	if _, err := bus.EnsureStream(e.ctx, e.js, bus.StreamConfig{MaxBytes: limit, DeadLetterMaxBytes: limit}); err != nil {
		t.Fatal(err)
	}
	pub := bus.NewPublisher(e.js, "")
	const n = 300 // about six times the limit
	for i := range n {
		if _, err := pub.Publish(e.ctx, deployment(t, e.ctx, fmt.Sprint(i), "prd")); err != nil {
			t.Fatalf("publish %d into a full stream: %v", i, err)
		}
		dl := nats.NewMsg(bus.DeadLetterSubjectPrefix + ".test.slipway.deployment.succeeded.prd")
		dl.Data = make([]byte, 1024)
		if _, err := e.js.PublishMsg(e.ctx, dl); err != nil {
			t.Fatalf("dead letter %d into a full stream: %v", i, err)
		}
	}
	for _, name := range []string{bus.DefaultStream, bus.DeadLetterStreamName(bus.DefaultStream)} {
		s, err := e.js.Stream(e.ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		st := info.State
		if info.Config.Discard != jetstream.DiscardOld || info.Config.MaxBytes != limit {
			t.Errorf("%s: discard %v, maxBytes %d", name, info.Config.Discard, info.Config.MaxBytes)
		}
		if st.Bytes > limit || st.LastSeq != n || st.FirstSeq == 1 || st.Msgs == 0 {
			t.Errorf("%s holds %d bytes, messages %d to %d: want at most %d bytes, the newest kept, the oldest gone", name, st.Bytes, st.FirstSeq, st.LastSeq, limit)
		}
	}
}

// With the default bounds on a server whose store is small, publishing
// more than the server can store still succeeds: the stream sheds its
// oldest events before the server's limit is reached, instead of the
// server refusing every publish (and ingest every webhook) once it is.
func TestDefaultBoundsNeverFillTheServer(t *testing.T) {
	e := startServer(t, func(o *server.Options) { o.JetStreamMaxStore = 8 << 20 })
	if _, err := bus.EnsureStream(e.ctx, e.js, bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 64<<10)
	for i := range 200 { // 12.5 MiB
		if _, err := e.js.Publish(e.ctx, "slipway.test.filled.prd", body, jetstream.WithMsgID(fmt.Sprint(i))); err != nil {
			t.Fatalf("publish %d (%d MiB in all): %v", i, (i*len(body))>>20, err)
		}
	}
}

// A server restarted with less storage than its streams reserve (the
// disk filled up meanwhile) refuses any change to their limits, but the
// streams work: the start goes on with them as they are.
func TestStreamsKeptWhenTheServerHasLessStorage(t *testing.T) {
	dir := t.TempDir()
	for i, maxStore := range []int64{10 << 30, 100 << 20} {
		e := startServer(t, func(o *server.Options) { o.StoreDir, o.JetStreamMaxStore = dir, maxStore })
		for _, cfg := range []bus.StreamConfig{{}, {MaxBytes: 2 << 30}} {
			if i == 0 && cfg.MaxBytes != 0 {
				break // the first server makes the streams with the defaults
			}
			s, err := bus.EnsureStream(e.ctx, e.js, cfg)
			if err != nil {
				t.Fatalf("server with %d MiB, maxBytes %d: %v", maxStore>>20, cfg.MaxBytes, err)
			}
			if got := s.CachedInfo().Config.MaxBytes; got != bus.DefaultMaxBytes {
				t.Errorf("server with %d MiB, maxBytes %d: the stream has %d MiB", maxStore>>20, cfg.MaxBytes, got>>20)
			}
		}
		e.publish(t, deployment(t, e.ctx, fmt.Sprint(i), "prd"))
		e.nc.Close()
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
	}
}

// A smaller bound set on an existing stream applies at the next start:
// the stream shrinks to it at once.
func TestEnsureStreamAppliesANewMaxBytes(t *testing.T) {
	e := start(t)
	for i := range 100 {
		e.publish(t, deployment(t, e.ctx, fmt.Sprint(i), "prd"))
	}
	const limit = 32 << 10
	s, err := bus.EnsureStream(e.ctx, e.js, bus.StreamConfig{MaxBytes: limit})
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxBytes != limit || info.State.Bytes > limit || info.State.LastSeq != 100 {
		t.Errorf("after the update: maxBytes %d, %d bytes, last %d", info.Config.MaxBytes, info.State.Bytes, info.State.LastSeq)
	}
}

// The default bounds fit the server: 1 GiB and 256 MiB where it has the
// room, and halves of them where its store is small (an embedded server
// offers 75% of the free disk). A configured size is not second-guessed.
func TestDefaultMaxBytesFitsTheServer(t *testing.T) {
	for _, tc := range []struct {
		name             string
		maxStore         int64
		stream, deadLets int64
	}{
		{"large disk", 10 << 30, bus.DefaultMaxBytes, bus.DefaultDeadLetterMaxBytes},
		{"100 MiB for JetStream", 100 << 20, 32 << 20, 32 << 20},
		{"8 MiB for JetStream", 8 << 20, 4 << 20, 2 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startServer(t, func(o *server.Options) { o.JetStreamMaxStore = tc.maxStore })
			for range 3 { // as at every start: the sizes stay
				if _, err := bus.EnsureStream(e.ctx, e.js, bus.StreamConfig{}); err != nil {
					t.Fatal(err)
				}
			}
			for name, want := range map[string]int64{bus.DefaultStream: tc.stream, bus.DeadLetterStreamName(bus.DefaultStream): tc.deadLets} {
				s, err := e.js.Stream(e.ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				if got := s.CachedInfo().Config.MaxBytes; got != want {
					t.Errorf("%s: maxBytes %d MiB, want %d MiB", name, got>>20, want>>20)
				}
			}
		})
	}
	e := startServer(t, func(o *server.Options) { o.JetStreamMaxStore = 100 << 20 })
	if _, err := bus.EnsureStream(e.ctx, e.js, bus.StreamConfig{MaxBytes: 1 << 30}); err == nil {
		t.Error("a configured 1 GiB stream on a server with 100 MiB was created")
	}
}
