package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer/compliance"
)

// Before any deployer checked compliance, nothing is known to comply: the
// command exits 1 (an audit gate must not pass) and says why, for the
// table and JSON alike, printing no "no violations".
func TestComplianceBeforeAnyCheckFailsSayingNothingWasChecked(t *testing.T) {
	ns := testkit.NATS(t)
	for _, format := range []string{"table", "json"} {
		out, errOut, code := runCLI(t, t.Context(), "compliance", "--nats", ns.URL, "--format", format)
		if code != 1 || strings.TrimSpace(out) != "" || !strings.Contains(errOut, "no compliance check has run yet") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1, nothing on stdout, the reason on stderr", format, code, out, errOut)
		}
	}
}

// The violations recorded are listed as a table or JSON and make the
// command exit 1; --env keeps one environment's, and an environment
// without any exits 0. A wrong format is a usage error.
func TestComplianceListsViolationsAndExitsOneWhenAny(t *testing.T) {
	ns := testkit.NATS(t)
	_, js := ns.Connect(t)
	st, err := compliance.Open(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	since := time.Date(2026, 11, 21, 10, 15, 0, 0, time.UTC)
	for _, v := range []compliance.Violation{
		{Cluster: "dcos-prod", Environment: "prd", AppID: "/prod/web", Rule: "own-registry", Kind: "ownRegistry",
			Image: "docker.io/library/nginx:1.27", Detail: "runs an image of docker.io, not of prd's registry r.prd", Since: since, EventID: "ev-1"},
		{Cluster: "dcos-prod", Environment: "prd", AppID: "/prod/api", Rule: "pinned", Kind: "pinnedDigest",
			Image: "r.prd/apps/api:2.0", Detail: "the image is referenced by tag only", Since: since},
		{Cluster: "azure-int", Environment: "int", AppID: "/int/api", Rule: "fresh", Kind: "maxAge",
			Image: "r.int/apps/api:1.0@sha256:" + strings.Repeat("a", 64), Digest: "sha256:" + strings.Repeat("a", 64),
			Detail: "built 2025-01-01T00:00:00Z, older than 2160h0m0s", Since: since},
	} {
		if _, ok, err := st.Create(t.Context(), v); err != nil || !ok {
			t.Fatalf("create %+v: %v %v", v, ok, err)
		}
	}

	out, errOut, code := runCLI(t, t.Context(), "compliance", "--nats", ns.URL, "--env", "prd")
	if code != 1 || !strings.Contains(errOut, "2 compliance violations") {
		t.Errorf("exit %d, stderr %q; want 1 and the count", code, errOut)
	}
	rows := tableRows(t, out)
	if len(rows) != 2 {
		t.Fatalf("%d rows, want prd's 2:\n%s", len(rows), out)
	}
	// Sorted by cluster, app and rule.
	if r := rows[0]; r["APP"] != "/prod/api" || r["RULE"] != "pinned" || r["KIND"] != "pinnedDigest" || r["ENV"] != "prd" {
		t.Errorf("first row %v", r)
	}
	if r := rows[1]; r["APP"] != "/prod/web" || r["IMAGE"] != "docker.io/library/nginx:1.27" || !strings.HasPrefix(r["DETAIL"], "runs an image of docker.io") {
		t.Errorf("second row %v", r)
	}

	out, _, code = runCLI(t, t.Context(), "compliance", "--nats", ns.URL, "--format", "json")
	if code != 1 {
		t.Errorf("json: exit %d, want 1", code)
	}
	// By the JSON names scripts use.
	var got []struct {
		Cluster, Environment, AppID, Rule, Kind, Image, Digest, Detail string
		Since                                                          time.Time
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if len(got) != 3 || got[0].Cluster != "azure-int" || got[0].Kind != "maxAge" || got[0].Digest != "sha256:"+strings.Repeat("a", 64) || !got[0].Since.Equal(since) {
		t.Errorf("json: %+v", got)
	}

	out, errOut, code = runCLI(t, t.Context(), "compliance", "--nats", ns.URL, "--env", "dev")
	if code != 0 || strings.TrimSpace(out) != "no violations" || errOut != "" {
		t.Errorf("--env dev: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	for _, args := range [][]string{{"--format", "yaml"}, {"web"}} {
		_, errOut, code = runCLI(t, t.Context(), append([]string{"compliance", "--nats", ns.URL}, args...)...)
		if code != 2 || !strings.Contains(errOut, "see 'slipway compliance --help'") {
			t.Errorf("%v: exit %d, stderr %q; want a usage error", args, code, errOut)
		}
	}
}
