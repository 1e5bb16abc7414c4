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

	verifications  *prometheus.CounterVec   // rule, outcome: passed, failed
	verifyDuration *prometheus.HistogramVec // rule
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
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_promoter_verifications_total",
			Help: "Verifications of images against their rule's policies, by rule and outcome (passed, failed).",
		}, []string{"rule", "outcome"}),
		verifyDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "slipway_promoter_verify_seconds",
			Help:    "Time to verify an image against every policy of its rule.",
			Buckets: prometheus.ExponentialBuckets(0.005, 3, 8),
		}, []string{"rule"}),
	}
	if err := register(reg, &m.promotions, &m.bytes, &m.verifications); err != nil {
		return nil, err
	}
	if err := register(reg, &m.duration, &m.verifyDuration); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers each collector, or takes the one already registered
// under its name in its place.
func register[C prometheus.Collector](reg prometheus.Registerer, cs ...*C) error {
	for _, c := range cs {
		var err error
		if *c, err = prom.Register(reg, *c); err != nil {
			return err
		}
	}
	return nil
}
