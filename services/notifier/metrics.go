package notifier

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
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
	if m.sent, err = register(reg, m.sent); err != nil {
		return nil, err
	}
	if m.failed, err = register(reg, m.failed); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector registered before it (a
// second notifier in the same process).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}
