package console

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/services/console/auth"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
)

// benchRecords are 5,000 workloads in each of dev, tst and prd (one
// cluster each), in 250 repositories of 20 apps; one app in 10 runs an
// older digest in prd (a gap), one in 50 drifted, one in 100 is deploying.
func benchRecords() []inventory.Record {
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	out := make([]inventory.Record, 0, 15000)
	for i := range 5000 {
		repo := fmt.Sprintf("team-%03d/svc", i/20)
		app := fmt.Sprintf("/team-%03d/app-%02d", i/20, i%20)
		for _, env := range []string{"dev", "tst", "prd"} {
			d, tag := imageDigest(i), "1.2.0"
			if env == "prd" && i%10 == 0 {
				d, tag = imageDigest(-i-1), "1.1.0"
			}
			r := record(env+"-a", env, app, repo, tag, d, t0)
			if i%50 == 0 && env == "tst" {
				r.Drift = "registry.tst/" + repo + ":hotfix"
			}
			if i%100 == 0 && env == "prd" {
				r.LastDeployment = &inventory.Deployment{ToImage: r.Image, Outcome: inventory.InProgress, At: t0}
			}
			out = append(out, r)
		}
	}
	return out
}

// BenchmarkMatrix5000x3 is the release matrix of 5,000 workloads × 3
// environments, part by part: reading the inventory bucket (embedded
// NATS), laying the records out, rendering the HTML, and the whole
// request as a browser makes it. The baseline in the same run renders
// the empty matrix: the layout's own cost.
func BenchmarkMatrix5000x3(b *testing.B) {
	rig := newNATSRig(b)
	records := benchRecords()
	seed(b, rig, records...)
	cfg := threeEnvs()
	cfg.Clusters = cfg.Clusters[:3] // one cluster per environment
	hs, s := viewsServer(b, cfg, rig)
	envs := func() []matrixEnv {
		var out []matrixEnv
		for _, e := range cfg.Environments {
			out = append(out, matrixEnv{Name: e.Name, Clusters: []string{e.Name + "-a"}})
		}
		return out
	}
	render := func(b *testing.B, v matrixView) int {
		var buf bytes.Buffer
		p := page{User: auth.User{}, Nav: nav, Active: "matrix", Name: "matrix", Data: v}
		if err := pageViews.pages["matrix"].ExecuteTemplate(&buf, layoutFile, p); err != nil {
			b.Fatal(err)
		}
		return buf.Len()
	}

	b.Run("baseline-render-empty", func(b *testing.B) {
		v := buildMatrix(envs(), nil, nil)
		for b.Loop() {
			render(b, v)
		}
	})
	b.Run("list", func(b *testing.B) {
		for b.Loop() {
			got, err := s.listInventory(b.Context())
			if err != nil || len(got) != len(records) {
				b.Fatalf("%d records, %v", len(got), err)
			}
		}
	})
	listed, err := s.listInventory(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	b.Run("build", func(b *testing.B) {
		for b.Loop() {
			if v := buildMatrix(envs(), listed, nil); v.Workloads != 5000 {
				b.Fatalf("%d workloads", v.Workloads)
			}
		}
	})
	v := buildMatrix(envs(), listed, nil)
	b.Run("render", func(b *testing.B) {
		n := 0
		for b.Loop() {
			n = render(b, v)
		}
		b.ReportMetric(float64(n)/1e6, "MB/page")
	})
	b.Run("request", func(b *testing.B) {
		for b.Loop() {
			resp, err := http.Get(hs.URL + "/")
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatal(resp.Status)
			}
		}
	})
}
