package deployer_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
	"github.com/slipway-cd/slipway/services/deployer/marathon"
	"github.com/slipway-cd/slipway/services/deployer/target"
	"github.com/slipway-cd/slipway/tools/marathon-emulator/emulator"
)

// fleetApp is the i-th app of a benchmark cluster, as a fleet of many
// teams looks: most opt in (8 in 10); some run an image of the
// environment's registry without the label, some a public image; 1 to 4
// instances, which the emulator spreads over its three agents. Images of
// the environment's registry name their digest, as Slipway writes them:
// a tag alone would have the deployer ask a registry, which this
// benchmark has none of (the public image's registry is not configured,
// so it is never asked).
func fleetApp(cluster string, i int) string {
	id := fmt.Sprintf("/%s/team-%02d/svc-%04d", cluster, i%40, i)
	repo := fmt.Sprintf("%s/team-%02d/svc-%04d", registry, i%40, i)
	img, labels := repo+":1.4.2@"+digest(cluster+id), map[string]string{"slipway.policy": "minor", "team": fmt.Sprintf("team-%02d", i%40)}
	switch i % 10 {
	case 8:
		delete(labels, "slipway.policy")
	case 9:
		img, labels = "docker.io/library/nginx:1.27", map[string]string{"team": "edge"}
	}
	return strings.Replace(appJSON(id, img, labels), `"instances":2`, fmt.Sprintf(`"instances":%d`, 1+i%4), 1)
}

// fleet is n apps of a cluster.
func fleet(cluster string, n int) []string {
	apps := make([]string, n)
	for i := range apps {
		apps[i] = fleetApp(cluster, i)
	}
	return apps
}

// reconcileGate holds each cluster's reconcile loop after every pass until
// the benchmark lets it run the next one, so that passes are timed one at
// a time and nothing else of the deployer runs meanwhile.
type reconcileGate struct {
	done map[string]chan error
	next map[string]chan struct{}
	stop chan struct{}
}

func newReconcileGate(clusters ...*marathonCluster) *reconcileGate {
	g := &reconcileGate{done: map[string]chan error{}, next: map[string]chan struct{}{}, stop: make(chan struct{})}
	for _, c := range clusters {
		g.done[c.name], g.next[c.name] = make(chan error), make(chan struct{})
	}
	return g
}

// reconciled is the deployer's hook: it hands over the pass's error and
// waits to be let through (or for the benchmark to end).
func (g *reconcileGate) reconciled(cluster string, err error) {
	select {
	case g.done[cluster] <- err:
	case <-g.stop:
		return
	}
	select {
	case <-g.next[cluster]:
	case <-g.stop:
	}
}

// passed waits for the end of the cluster's current pass.
func (g *reconcileGate) passed(b *testing.B, cluster string, within time.Duration) {
	b.Helper()
	select {
	case err := <-g.done[cluster]:
		if err != nil {
			b.Fatalf("%s: reconcile: %v", cluster, err)
		}
	case <-time.After(within):
		b.Fatalf("%s: no reconcile pass ended within %s", cluster, within)
	}
}

// BenchmarkReconcile5000: the deployer's periodic reconcile of three
// Marathon clusters holding 5,000 apps in all, once the inventory holds
// every workload: one op is one full pass over each cluster, one cluster
// at a time. The baseline, in the same run, is the bare listing the pass
// starts with (GET /v2/apps of the three clusters, decoded), the floor any
// reconcile pays. Allocations are the whole process's: the emulators
// serving the listings and the embedded NATS server answering the
// inventory reads are in both.
func BenchmarkReconcile5000(b *testing.B) {
	sizes := map[string]int{"dcos-a": 1700, "dcos-b": 1700, "dcos-c": 1600}
	var clusters []*marathonCluster
	for _, name := range []string{"dcos-a", "dcos-b", "dcos-c"} {
		clusters = append(clusters, newCluster(b, name, emulator.Options{}, fleet(name, sizes[name])...))
	}
	e := newEnv(b, clusters...)
	// Passes follow each other as soon as the gate lets the next one run.
	e.cfg.Deployer.ReconcileInterval = time.Millisecond
	gate := newReconcileGate(clusters...)
	svc := deployer.New()
	svc.Hooks = &deployer.Hooks{Reconciled: gate.reconciled}
	began := time.Now()
	e.start(svc)
	// Registered after start, so it runs first: the loops leave the gate
	// before the deployer is stopped.
	b.Cleanup(func() { close(gate.stop) })
	for _, c := range clusters {
		// The first pass writes a record of every workload.
		gate.passed(b, c.name, 5*time.Minute)
	}
	b.Logf("first passes (the inventory written) ended %s after the start", time.Since(began).Round(time.Millisecond))
	inv, err := inventory.Bind(b.Context(), e.js)
	if err != nil {
		b.Fatal(err)
	}
	records, err := inv.List(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	// 8 in 10 apps opt in; the inventory holds at least those.
	if len(records) < 4000 {
		b.Fatalf("the inventory holds %d records after the first pass, want at least the 4,000 managed apps", len(records))
	}

	b.Run("listing", func(b *testing.B) {
		var targets []*marathon.Target
		for _, cl := range e.cfg.Clusters {
			tg, err := marathon.Open(cl, target.Options{})
			if err != nil {
				b.Fatal(err)
			}
			targets = append(targets, tg)
		}
		measurePasses(b, len(clusters), func(i int) {
			apps, err := targets[i].List(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			if len(apps) != sizes[clusters[i].name] {
				b.Fatalf("%s: listed %d apps, want %d", clusters[i].name, len(apps), sizes[clusters[i].name])
			}
		})
	})
	b.Run("reconcile", func(b *testing.B) {
		measurePasses(b, len(clusters), func(i int) {
			gate.next[clusters[i].name] <- struct{}{}
			gate.passed(b, clusters[i].name, time.Minute)
		})
		b.ReportMetric(float64(len(records)), "records")
	})
}

// measurePasses times b.N rounds of pass(0…n-1), one cluster after the
// other, and reports the time of one cluster's pass and the heap in use
// right after a pass (the largest seen).
func measurePasses(b *testing.B, n int, pass func(i int)) {
	b.ReportAllocs()
	var heap uint64
	var ms runtime.MemStats
	b.ResetTimer()
	for range b.N {
		for i := range n {
			pass(i)
			b.StopTimer()
			runtime.ReadMemStats(&ms)
			heap = max(heap, ms.HeapInuse)
			b.StartTimer()
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed())/float64(time.Millisecond)/float64(b.N*n), "ms/cluster-pass")
	b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
}
