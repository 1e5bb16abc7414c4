package promoter

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-cd/slipway/pkg/platform/prom"
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
	var err error
	if m.promotions, err = prom.Register(reg, m.promotions); err != nil {
		return nil, err
	}
	if m.bytes, err = prom.Register(reg, m.bytes); err != nil {
		return nil, err
	}
	if m.duration, err = prom.Register(reg, m.duration); err != nil {
		return nil, err
	}
	return m, nil
}
