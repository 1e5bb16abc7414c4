package bus_test

import (
	"slices"
	"testing"
	"time"

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
