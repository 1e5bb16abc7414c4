// Package dlqmetrics makes dead letters visible to Prometheus: how many
// each consumer has in the dead-letter stream, read from JetStream at scrape
// time, and how many this process has stored there.
package dlqmetrics

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/prom"
)

// ScrapeTimeout bounds the JetStream request of one scrape, well inside
// Prometheus's default scrape timeout, so that an unreachable NATS costs a
// scrape its dead-letter gauge and not the whole scrape.
const ScrapeTimeout = 2 * time.Second

// Collector reports slipway_dead_letters{consumer}: the messages each
// consumer has in the dead-letter stream now.
type Collector struct {
	js      jetstream.JetStream
	stream  string
	log     *slog.Logger
	timeout time.Duration

	mu sync.Mutex
	// seen are the consumers reported before: one whose dead letters were
	// all redriven is reported as 0 rather than vanishing, so that graphs
	// and alerts see it recover.
	seen map[string]bool
}

// NewCollector returns the collector of the dead-letter stream of the event
// stream called stream.
func NewCollector(js jetstream.JetStream, stream string, log *slog.Logger) *Collector {
	if stream == "" {
		stream = bus.DefaultStream
	}
	return &Collector{js: js, stream: bus.DeadLetterStreamName(stream), log: log, timeout: ScrapeTimeout, seen: map[string]bool{}}
}

// gauge is built per scrape: the values live in JetStream, not here.
func gauge() *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "slipway_dead_letters",
		Help: "Messages in the dead-letter stream, by the consumer that gave up on them.",
	}, []string{"consumer"})
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) { gauge().Describe(ch) }

// Collect implements prometheus.Collector. When JetStream does not answer
// in time it reports nothing: a missing series, not a wrong zero.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	counts, err := Count(ctx, c.js, c.stream)
	if err != nil {
		c.log.Debug("dead letters not counted", "stream", c.stream, "err", err)
		return
	}
	c.mu.Lock()
	for consumer := range counts {
		c.seen[consumer] = true
	}
	g := gauge()
	for consumer := range c.seen {
		g.WithLabelValues(consumer).Set(float64(counts[consumer]))
	}
	c.mu.Unlock()
	g.Collect(ch)
}

// Count returns the number of messages in the dead-letter stream dlqStream
// per consumer, from the stream's per-subject state
// (slipway-dlq.<consumer>.<original subject>).
func Count(ctx context.Context, js jetstream.JetStream, dlqStream string) (map[string]uint64, error) {
	s, err := js.Stream(ctx, dlqStream)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(bus.DeadLetterSubjectPrefix+".>"))
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for subject, n := range info.State.Subjects {
		rest, ok := strings.CutPrefix(subject, bus.DeadLetterSubjectPrefix+".")
		consumer, _, found := strings.Cut(rest, ".")
		if !ok || !found || consumer == "" {
			continue
		}
		out[consumer] += n
	}
	return out, nil
}

// Counter returns slipway_dead_lettered_total{consumer}, registered on reg
// (or the one registered there before).
func Counter(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	return prom.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "slipway_dead_lettered_total",
		Help: "Messages this process stored in the dead-letter stream, by the consumer that gave up on them.",
	}, []string{"consumer"}))
}
