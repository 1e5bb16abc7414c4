package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

// execute runs the CLI with args and returns what it printed.
func execute(t *testing.T, ctx context.Context, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := rootCmd()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

// writeRunConfig writes the configuration of a `slipway run` with the
// embedded server on natsAddr storing in storeDir, and ingest on httpAddr
// with a Distribution source dev-registry that wants the bearer token
// s3cret (from the environment, as operators pass secrets). It returns the
// file's path.
func writeRunConfig(t *testing.T, natsAddr, storeDir, httpAddr string) string {
	t.Helper()
	cfgPath := filepath.Join(t.TempDir(), "slipway.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(`
nats:
  embedded: { listen: %q, storeDir: %q }
environments:
  - { name: dev, registry: { host: "registry.dev.example:5000" } }
ingest:
  listen: %q
  sources:
    - name: dev-registry
      format: distribution
      environment: dev
      auth: { header: { name: Authorization, value: "Bearer ${TEST_TOKEN}" } }
log: { level: warn }
`, natsAddr, storeDir, httpAddr))
	t.Setenv("TEST_TOKEN", "s3cret")
	return cfgPath
}

// startRun runs the CLI with args (a `slipway run`) until the test ends,
// and waits until readyURL answers 200.
func startRun(t *testing.T, readyURL string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	var runErr error
	go func() {
		defer close(stopped)
		_, runErr = execute(t, ctx, args...)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-stopped:
			if runErr != nil {
				t.Errorf("run ended with %v", runErr)
			}
		case <-time.After(30 * time.Second):
			t.Error("run did not stop within 30s of cancel")
		}
	})
	testkit.WaitReady(t, readyURL, stopped)
}

// postDistribution posts a Distribution notification with a bearer token
// and returns the status and body of the answer.
func postDistribution(t *testing.T, url string, body []byte, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/vnd.docker.distribution.events.v1+json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	reply, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(reply)
}

func TestConfigCheck(t *testing.T) {
	out, err := execute(t, context.Background(), "config", "check", "--config", "../../examples/slipway.yaml")
	if err != nil {
		t.Fatalf("the example configuration must pass: %v\n%s", err, out)
	}
	if !strings.Contains(out, "ok (1 environments, 1 webhook sources") {
		t.Errorf("output = %q", out)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	writeFile(t, bad, `
environments: [{name: dev, registry: {host: r.example}}]
ingest:
  sources:
    - {name: hub, format: dockerhubb, environment: dev, auth: {none: true}}
`)
	_, err = execute(t, context.Background(), "config", "check", "--config", bad)
	if err == nil || !strings.Contains(err.Error(), "ingest.sources[0].format") || !strings.Contains(err.Error(), "dockerhubb") {
		t.Fatalf("a bad format must be named with its key path, got %v", err)
	}
}

func TestVersion(t *testing.T) {
	out, err := execute(t, context.Background(), "version")
	if err != nil || !strings.HasPrefix(out, "slipway ") {
		t.Fatalf("version: %q, %v", out, err)
	}
}

func TestRunUnknownService(t *testing.T) {
	_, err := execute(t, context.Background(), "run", "--config", "../../examples/slipway.yaml", "--only", "ingest,frobnicator")
	if err == nil || !strings.Contains(err.Error(), `unknown service "frobnicator"`) {
		t.Fatalf("err = %v", err)
	}
}

// TestRunAndTail runs `slipway run` with an embedded NATS server, posts a
// registry notification to its ingest listener, and reads the event back
// with `slipway events tail`, as an operator would on a first try.
func TestRunAndTail(t *testing.T) {
	natsAddr, httpAddr := testkit.FreeAddr(t), testkit.FreeAddr(t)
	cfgPath := writeRunConfig(t, natsAddr, filepath.Join(t.TempDir(), "nats"), httpAddr)

	startRun(t, "http://"+httpAddr+"/readyz", "run", "--config", cfgPath)

	body, err := os.ReadFile("testdata/push.json")
	if err != nil {
		t.Fatal(err)
	}
	status, reply := postDistribution(t, "http://"+httpAddr+"/webhooks/dev-registry", body, "s3cret")
	if status != http.StatusAccepted || !strings.Contains(reply, `"accepted":1`) {
		t.Fatalf("webhook: %d %s", status, reply)
	}

	// Tail from the start of the stream and wait for the line.
	lines, stop := tail("--nats", "nats://"+natsAddr, "--all")
	select {
	case line := <-lines:
		for _, want := range []string{"image.pushed", "dev", "registry.dev.example:5000/apps/web:1.4.0@sha256:", "via dev-registry"} {
			if !strings.Contains(line, want) {
				t.Errorf("tail line %q lacks %q", line, want)
			}
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no event line from events tail within 30s")
	}
	if err := stop(); err != nil {
		t.Errorf("tail: %v", err)
	}
}

func TestFormatLine(t *testing.T) {
	e, err := events.New(context.Background(), events.Spec{
		ID: events.ID("t"), Type: events.TypeDeploymentFailed, Source: "/slipway/deployer", Environment: "prd",
		Subject: "vsphere-prd:/apps/web",
		Data:    events.Deployment{Cluster: "vsphere-prd", AppID: "/apps/web", ToImage: "r/apps/web:2.0", Reason: "never healthy after 10m", RolledBack: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	line := formatLine(e)
	for _, want := range []string{"deployment.failed", "prd", "vsphere-prd:/apps/web", "→ r/apps/web:2.0", "never healthy after 10m (rolled back: true)"} {
		if !strings.Contains(line, want) {
			t.Errorf("%q lacks %q", line, want)
		}
	}
}

// TestFormatLineSaysWhoPushedARefusedImageAndHowAWorkloadLeftManagement:
// a refused push names its pusher, cluster and how many workloads it was
// for; a drift that is a departure says so instead of comparing images.
func TestFormatLineSaysWhoPushedARefusedImageAndHowAWorkloadLeftManagement(t *testing.T) {
	image := "registry.prd.example/apps/web:9.9.9@sha256:" + strings.Repeat("99", 32)
	expected := "registry.prd.example/apps/web:1.4.0"
	for _, tc := range []struct {
		name    string
		typ     events.Type
		subject string
		data    any
		want    []string
		notWant []string
	}{
		{name: "refused", typ: events.TypeDeploymentRefused, subject: image,
			data: events.DeploymentRefused{Cluster: "prd-a", Environment: "prd", Image: image, Actor: "mallory",
				Reason: "prd accepts only promoted images", Workloads: []string{"/apps/web", "/apps/api"}},
			want: []string{"deployment.refused", image, "refused direct push by mallory on prd-a (2 workloads)"}},
		{name: "refused, pusher unknown", typ: events.TypeDeploymentRefused, subject: image,
			data: events.DeploymentRefused{Cluster: "prd-a", Environment: "prd", Image: image, Workloads: []string{"/apps/web"}},
			want: []string{"refused direct push by - on prd-a (1 workload)"}},
		{name: "label removed", typ: events.TypeDriftDetected, subject: "prd-a:/apps/web",
			data: events.DriftDetected{Cluster: "prd-a", AppID: "/apps/web", ExpectedImage: expected, ActualImage: expected,
				Unmanaged: true, Reason: "the slipway.policy label was removed: Slipway no longer manages the workload"},
			want: []string{"drift.detected", "prd-a:/apps/web  left management: label removed"}, notWant: []string{"runs"}},
		{name: "removed", typ: events.TypeDriftDetected, subject: "prd-a:/apps/web",
			data: events.DriftDetected{Cluster: "prd-a", AppID: "/apps/web", ExpectedImage: expected, Unmanaged: true,
				Reason: "the workload was removed"},
			want: []string{"prd-a:/apps/web  left management: removed"}, notWant: []string{"runs", "label"}},
		{name: "image changed", typ: events.TypeDriftDetected, subject: "prd-a:/apps/web",
			data: events.DriftDetected{Cluster: "prd-a", AppID: "/apps/web", ExpectedImage: expected, ActualImage: "docker.io/library/nginx:1.27"},
			want: []string{"expected " + expected + ", runs docker.io/library/nginx:1.27"}, notWant: []string{"left management"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := events.New(context.Background(), events.Spec{
				ID: events.ID(t.Name()), Type: tc.typ, Source: "/slipway/deployer/prd-a", Environment: "prd",
				Subject: tc.subject, Data: tc.data,
			})
			if err != nil {
				t.Fatal(err)
			}
			line := formatLine(e)
			for _, want := range tc.want {
				if !strings.Contains(line, want) {
					t.Errorf("%q lacks %q", line, want)
				}
			}
			for _, not := range tc.notWant {
				if strings.Contains(line, not) {
					t.Errorf("%q has %q", line, not)
				}
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
