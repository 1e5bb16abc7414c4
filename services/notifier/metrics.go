package notifier

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-cd/slipway/pkg/platform/prom"
)

// metrics of the notifier, per receiver.
type metrics struct {
	sent     *prometheus.CounterVec   // receiver, kind
	failed   *prometheus.CounterVec   // receiver, kind, retryable
	duration *prometheus.HistogramVec // receiver
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_notifier_sent_total",
			Help: "Notifications a receiver accepted.",
		}, []string{"receiver", "kind"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_notifier_failed_total",
			Help: "Attempts to notify that failed, by whether they are retried (true) or final (false).",
		}, []string{"receiver", "kind", "retryable"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "slipway_notifier_send_seconds",
			Help:    "Time a receiver took to answer one notification, successful or not.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{"receiver"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.sent, err = prom.Register(reg, m.sent); err != nil {
		return nil, err
	}
	if m.failed, err = prom.Register(reg, m.failed); err != nil {
		return nil, err
	}
	if m.duration, err = prom.Register(reg, m.duration); err != nil {
		return nil, err
	}
	return m, nil
}
