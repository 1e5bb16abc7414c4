package promoter

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the promoter, per rule.
type metrics struct {
	promotions *prometheus.CounterVec   // rule, outcome: promoted, failed, approval_requested
	bytes      *prometheus.CounterVec   // rule
	duration   *prometheus.HistogramVec // rule
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		promotions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_promoter_promotions_total",
			Help: "Promotions by rule and outcome (promoted, failed, approval_requested).",
		}, []string{"rule", "outcome"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_promoter_bytes_copied_total",
			Help: "Bytes uploaded to target registries.",
		}, []string{"rule"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "slipway_promoter_copy_seconds",
			Help:    "Time to copy an image with its referrers.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 9),
		}, []string{"rule"}),
	}
	for _, c := range []prometheus.Collector{m.promotions, m.bytes, m.duration} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
		}
	}
	return m, nil
}
