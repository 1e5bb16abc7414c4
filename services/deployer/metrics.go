package deployer

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-cd/slipway/pkg/platform/prom"
)

// metrics of the deployer, per cluster.
type metrics struct {
	deployments *prometheus.CounterVec   // cluster, outcome
	duration    *prometheus.HistogramVec // cluster, outcome
	apps        *prometheus.GaugeVec     // cluster: opted-in apps in the index
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		deployments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "slipway_deployer_deployments_total",
			Help: "Deployments that ended, by cluster and outcome (succeeded, failed, rolled_back, superseded).",
		}, []string{"cluster", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "slipway_deployer_deployment_seconds",
			Help:    "Time from the update to the end of a deployment (including a rollback).",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200},
		}, []string{"cluster", "outcome"}),
		apps: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "slipway_deployer_managed_apps",
			Help: "Apps with a slipway.policy label in the cluster's index.",
		}, []string{"cluster"}),
	}
	var err error
	if m.deployments, err = prom.Register(reg, m.deployments); err != nil {
		return nil, err
	}
	if m.duration, err = prom.Register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.apps, err = prom.Register(reg, m.apps); err != nil {
		return nil, err
	}
	return m, nil
}
