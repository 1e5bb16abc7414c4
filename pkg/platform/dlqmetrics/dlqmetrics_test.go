package dlqmetrics_test

import (
	"io"
	"log/slog"
	"maps"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/dlqmetrics"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

// Dead letters are counted per consumer, whatever their original subject;
// with NATS away a scrape ends and reports no gauge rather than a wrong one.
func TestCountAndCollect(t *testing.T) {
	ns := testkit.NATS(t)
	_, js := ns.Connect(t)
	ctx := t.Context()
	if _, err := bus.EnsureStream(ctx, js, bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	for _, dl := range [][2]string{
		{"deployer-azure-int", "slipway.image.promoted.dev"},
		{"deployer-azure-int", "slipway.image.pushed.dev"},
		{"deployer-azure-int", "slipway.image.pushed.dev"},
		{"notifier-team", "slipway.deployment.failed.prd"},
	} {
		if _, err := js.Publish(ctx, bus.DeadLetterSubject(dl[0], dl[1]), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	counts, err := dlqmetrics.Count(ctx, js, bus.DeadLetterStreamName(bus.DefaultStream))
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]uint64{"deployer-azure-int": 3, "notifier-team": 1}; !maps.Equal(counts, want) {
		t.Errorf("counts %v, want %v", counts, want)
	}

	c := dlqmetrics.NewCollector(js, "", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if n := testutil.CollectAndCount(c, "slipway_dead_letters"); n != 2 {
		t.Errorf("%d series, want one per consumer", n)
	}
	ns.Shutdown()
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Errorf("%d series with NATS down, want 0", n)
	}
}
