package ingest

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-cd/slipway/pkg/platform/prom"
)

// metrics of the ingest service. Label values are bounded: sources come from
// the configuration (an unknown source counts as source=""), codes from the
// contract, outcomes from the list below.
type metrics struct {
	requests       *prometheus.CounterVec   // source, format, code
	events         *prometheus.CounterVec   // source, format, outcome
	publishSeconds prometheus.Histogram     // one event, publish to ack
	requestSeconds *prometheus.HistogramVec // source
	approvals      *prometheus.CounterVec   // action, code
	actions        *prometheus.CounterVec   // action, code
}

// Outcomes of the events counter.
const (
	outcomeAccepted  = "accepted"
	outcomeDuplicate = "duplicate"
	outcomeIgnored   = "ignored"
	outcomeFailed    = "failed"
	// outcomeForeign: the push names a registry that is not the
	// environment's (neither its host nor an alias); never stored.
	outcomeForeign = "foreign_registry"
	// outcomeUnrouted: the source has routes and none matches the push's
	// repository and tag; never stored.
	outcomeUnrouted = "unrouted"
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_ingest_requests_total",
			Help: "Webhook requests by source, format and HTTP status code.",
		}, []string{"source", "format", "code"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_ingest_events_total",
			Help: "Notifications received by outcome: accepted (stored), duplicate (already stored), ignored (not a tagged manifest push), foreign_registry (names a registry that is not the environment's; refused), unrouted (matches none of the source's routes), failed (not stored).",
		}, []string{"source", "format", "outcome"}),
		publishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "slipway_ingest_publish_seconds",
			Help:    "Time from publishing one event to JetStream's ack.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5ms … 4s
		}),
		requestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "slipway_ingest_request_seconds",
			Help:    "Time to answer one webhook request.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5ms … 16s
		}, []string{"source"}),
		approvals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_ingest_approval_requests_total",
			Help: "Approval API requests by action (list, get, approve, reject) and HTTP status code.",
		}, []string{"action", "code"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_ingest_action_requests_total",
			Help: "Action API requests by action (rollback, redeploy, promote, redrive; unknown for any other) and HTTP status code.",
		}, []string{"action", "code"}),
	}
	var err error
	if m.requests, err = prom.Register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.events, err = prom.Register(reg, m.events); err != nil {
		return nil, err
	}
	if m.publishSeconds, err = prom.Register(reg, m.publishSeconds); err != nil {
		return nil, err
	}
	if m.requestSeconds, err = prom.Register(reg, m.requestSeconds); err != nil {
		return nil, err
	}
	if m.approvals, err = prom.Register(reg, m.approvals); err != nil {
		return nil, err
	}
	if m.actions, err = prom.Register(reg, m.actions); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) request(src *source, code int, seconds float64) {
	name, format := "", ""
	if src != nil {
		name, format = src.name, src.format
		m.requestSeconds.WithLabelValues(name).Observe(seconds)
	}
	m.requests.WithLabelValues(name, format, strconv.Itoa(code)).Inc()
}

func (m *metrics) event(src *source, outcome string, n int) {
	if n > 0 {
		m.events.WithLabelValues(src.name, src.format, outcome).Add(float64(n))
	}
}
