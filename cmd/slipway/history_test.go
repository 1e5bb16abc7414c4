package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
)

// historyStream is a stream holding the story of /apps/web on two
// clusters, each step caused by the one before as the services chain them:
//
//   - 1.4.0, pushed to dev by bob, waited for an approval alice granted,
//     was promoted to prd and deployed on prd-a;
//   - 1.5.0, pushed by carol, promoted without approval, failed on prd-b
//     and was rolled back;
//   - 1.6.0, pushed by erin, approved by dave and promoted: prd's
//     registry announced the copy as a push by its robot account, and
//     prd-a deployed on that push;
//   - somebody changed the image on prd-a by hand (drift);
//   - and /apps/api, another workload, was deployed on prd-a.
func historyStream(t *testing.T) (url string, start time.Time) {
	t.Helper()
	ns, js := eventStream(t)
	ctx := t.Context()
	pub := bus.NewPublisher(js, "")
	start = time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	at := start
	publish := func(spec events.Spec) {
		t.Helper()
		at = at.Add(time.Minute)
		spec.Time = at
		if spec.Source == "" {
			spec.Source = "/slipway/test"
		}
		e, err := events.New(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pub.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	digest := func(b string) string { return "sha256:" + strings.Repeat(b, 32) }
	devRef := func(tag, d string) events.ImageRef {
		return events.ImageRef{Environment: "dev", Registry: "registry.dev.example", Repository: "apps/web", Tag: tag, Digest: d}
	}
	prdRef := func(tag, d string) events.ImageRef {
		return events.ImageRef{Environment: "prd", Registry: "registry.prd.example", Repository: "apps/web", Tag: tag, Digest: d}
	}
	push := func(id string, ref events.ImageRef, actor string) {
		publish(events.Spec{ID: id, Type: events.TypeImagePushed, Environment: ref.Environment, Subject: ref.String(),
			Data: events.ImagePushed{Environment: ref.Environment, Registry: ref.Registry, Repository: ref.Repository,
				Tag: ref.Tag, Digest: ref.Digest, Actor: actor, Source: ref.Environment + "-registry"}})
	}
	approve := func(id, cause string, from, to events.ImageRef, approvalID, by string) {
		publish(events.Spec{ID: id + "-requested", Type: events.TypeApprovalRequested, Environment: "prd", Subject: to.String(),
			CausationID: cause, Data: events.ApprovalRequested{ApprovalID: approvalID, Promotion: "dev-to-prd", From: from, To: to}})
		publish(events.Spec{ID: id, Type: events.TypeApprovalGranted, Environment: "prd", Subject: to.String(),
			CausationID: id + "-requested", Data: events.ApprovalDecision{ApprovalID: approvalID, Promotion: "dev-to-prd", By: by, Reason: "looks good"}})
	}
	promote := func(id, cause string, from, to events.ImageRef) {
		publish(events.Spec{ID: id, Type: events.TypeImagePromoted, Environment: "prd", Subject: to.String(), CausationID: cause,
			Data: events.ImagePromoted{Promotion: "dev-to-prd", From: from, To: to}})
	}
	deploy := func(cluster, app, cause, fromImage, toImage string, final events.Type, fill func(*events.Deployment)) {
		for _, typ := range []events.Type{events.TypeDeploymentStarted, final} {
			d := events.Deployment{Cluster: cluster, Environment: "prd", Platform: events.PlatformMarathon, AppID: app,
				FromImage: fromImage, ToImage: toImage}
			if typ != events.TypeDeploymentStarted && fill != nil {
				fill(&d)
			}
			publish(events.Spec{ID: events.CausedID(cause, typ, cluster, app, toImage), Type: typ, Environment: "prd",
				Subject: cluster + ":" + app, CausationID: cause, Data: d})
		}
	}

	v14dev, v14 := devRef("1.4.0", digest("14")), prdRef("1.4.0", digest("14"))
	push("push-14", v14dev, "bob")
	approve("grant-14", "push-14", v14dev, v14, "apr-14", "alice")
	promote("promoted-14", "grant-14", v14dev, v14)
	deploy("prd-a", "/apps/web", "promoted-14", "registry.prd.example/apps/web:1.3.0", v14.String(), events.TypeDeploymentSucceeded,
		func(d *events.Deployment) { d.DurationMs = 41_000 })

	v15dev, v15 := devRef("1.5.0", digest("15")), prdRef("1.5.0", digest("15"))
	push("push-15", v15dev, "carol")
	promote("promoted-15", "push-15", v15dev, v15)
	deploy("prd-b", "/apps/web", "promoted-15", "registry.prd.example/apps/web:1.4.0", v15.String(), events.TypeDeploymentFailed,
		func(d *events.Deployment) { d.Reason, d.RolledBack = "health checks failed", true })

	v16dev, v16 := devRef("1.6.0", digest("16")), prdRef("1.6.0", digest("16"))
	push("push-16", v16dev, "erin")
	approve("grant-16", "push-16", v16dev, v16, "apr-16", "dave")
	push("push-16-prd", v16, "slipway-robot") // the copy, as prd's registry announces it
	promote("promoted-16", "grant-16", v16dev, v16)
	deploy("prd-a", "/apps/web", "push-16-prd", v14.String(), v16.String(), events.TypeDeploymentSucceeded, nil)

	publish(events.Spec{ID: "drift-web", Type: events.TypeDriftDetected, Environment: "prd", Subject: "prd-a:/apps/web",
		Data: events.DriftDetected{Cluster: "prd-a", AppID: "/apps/web", ExpectedImage: v16.String(), ActualImage: "docker.io/library/nginx:latest"}})
	deploy("prd-a", "/apps/api", "push-16-prd", "registry.prd.example/apps/api:1", "registry.prd.example/apps/api:2", events.TypeDeploymentSucceeded, nil)
	return ns.URL, start
}

// TestHistoryShowsEachDeploymentWithItsOutcomeApproverAndPusher: the
// table has one row per deployment of the workload, oldest first, with
// its cluster, images, outcome, duration and reason, and what caused it:
// the promotion, who approved it and who pushed the image, also when the
// deployment was caused by the target registry's announcement of the
// promoted copy. Another workload's deployments are not shown; the drift
// is.
func TestHistoryShowsEachDeploymentWithItsOutcomeApproverAndPusher(t *testing.T) {
	url, _ := historyStream(t)
	out, errOut, code := runCLI(t, t.Context(), "history", "/apps/web", "--nats", url)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("want a header and 4 rows, got:\n%s", out)
	}
	for _, h := range []string{"TIME", "CLUSTER", "OUTCOME", "IMAGE", "DURATION", "REASON", "CAUSE"} {
		if !strings.Contains(lines[0], h) {
			t.Errorf("header %q lacks %s", lines[0], h)
		}
	}
	rows := []struct {
		want    []string
		notWant []string
	}{
		{want: []string{"prd-a", "succeeded", "apps/web:1.3.0 → registry.prd.example/apps/web:1.4.0@sha256:141414141414 ", "41s",
			"promotion dev-to-prd, approved by alice (apr-14), pushed by bob to dev"}},
		{want: []string{"prd-b", "rolled back", "apps/web:1.5.0", "health checks failed", "promotion dev-to-prd, pushed by carol to dev"},
			notWant: []string{"approved"}},
		{want: []string{"prd-a", "succeeded", "apps/web:1.6.0", "promotion dev-to-prd, approved by dave (apr-16), pushed by erin to dev"},
			notWant: []string{"slipway-robot"}},
		{want: []string{"prd-a", "drift", "docker.io/library/nginx:latest", "changed outside Slipway"}},
	}
	for i, r := range rows {
		line := lines[i+1]
		for _, w := range r.want {
			if !strings.Contains(line, w) {
				t.Errorf("row %d %q lacks %q", i+1, line, w)
			}
		}
		for _, w := range r.notWant {
			if strings.Contains(line, w) {
				t.Errorf("row %d %q has %q", i+1, line, w)
			}
		}
	}
	if strings.Contains(out, "apps/api") {
		t.Errorf("another workload's deployment is shown:\n%s", out)
	}
	if errOut != "" {
		t.Errorf("stderr %q", errOut)
	}
}

// TestHistoryJSONCarriesTheCauseChain: --json has, per deployment, the
// outcome, the images, the events' ids, and the cause: the promotion's
// event, the approval (id and approver) and the first push (its actor).
func TestHistoryJSONCarriesTheCauseChain(t *testing.T) {
	url, start := historyStream(t)
	// The Marathon app id without its leading slash names the same workload.
	out, errOut, code := runCLI(t, t.Context(), "history", "apps/web", "--nats", url, "--json")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	var got []historyEntry
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not a JSON array of entries: %v\n%s", err, out)
	}
	if len(got) != 4 {
		t.Fatalf("%d entries, want 4:\n%s", len(got), out)
	}
	first := got[0]
	if first.Outcome != "succeeded" || first.Kind != "deployment" || first.Cluster != "prd-a" || first.AppID != "/apps/web" ||
		first.Environment != "prd" || first.DurationMs != 41_000 || len(first.EventIDs) != 2 || !first.Time.After(start) {
		t.Errorf("first entry %+v", first)
	}
	if c := first.Cause; c == nil || c.EventID != "promoted-14" || c.Type != "image.promoted" ||
		c.Promotion == nil || c.Promotion.Name != "dev-to-prd" || c.Promotion.EventID != "promoted-14" ||
		c.Approval == nil || c.Approval.By != "alice" || c.Approval.ApprovalID != "apr-14" || c.Approval.EventID != "grant-14" ||
		c.Push == nil || c.Push.Actor != "bob" || c.Push.EventID != "push-14" || c.Push.Environment != "dev" {
		t.Errorf("first cause %s", mustJSON(t, first.Cause))
	}
	rolledBack := got[1]
	if rolledBack.Outcome != "rolled_back" || rolledBack.Reason != "health checks failed" || rolledBack.Cluster != "prd-b" ||
		rolledBack.Cause == nil || rolledBack.Cause.Approval != nil || rolledBack.Cause.Push == nil || rolledBack.Cause.Push.Actor != "carol" {
		t.Errorf("rolled back entry %s", mustJSON(t, rolledBack))
	}
	viaPush := got[2].Cause
	if viaPush == nil || viaPush.EventID != "push-16-prd" || viaPush.Type != "image.pushed" || viaPush.Promotion == nil ||
		viaPush.Promotion.EventID != "promoted-16" || viaPush.Approval == nil || viaPush.Approval.By != "dave" ||
		viaPush.Push == nil || viaPush.Push.Actor != "erin" {
		t.Errorf("the deployment of the promoted copy's push: cause %s", mustJSON(t, viaPush))
	}
	if drift := got[3]; drift.Outcome != "drift" || drift.ToImage != "docker.io/library/nginx:latest" || drift.Cause != nil {
		t.Errorf("drift entry %s", mustJSON(t, drift))
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestHistoryNarrowsToAClusterAndATimeSpan: --cluster keeps that
// cluster's entries; --since those after it.
func TestHistoryNarrowsToAClusterAndATimeSpan(t *testing.T) {
	url, _ := historyStream(t)
	out, errOut, code := runCLI(t, t.Context(), "history", "/apps/web", "--nats", url, "--cluster", "prd-b", "--json")
	var got []historyEntry
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if len(got) != 1 || got[0].Cluster != "prd-b" || got[0].Outcome != "rolled_back" {
		t.Errorf("--cluster prd-b: %s", out)
	}
	// The events were stored just now, whatever time they carry: a span
	// that starts later holds none of them.
	later := time.Now().Add(time.Second).Format(time.RFC3339Nano)
	out, errOut, code = runCLI(t, t.Context(), "history", "/apps/web", "--nats", url, "--since", later)
	if code != 1 || out != "" || !strings.Contains(errOut, "no deployments of /apps/web found since ") {
		t.Errorf("--since after everything: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out, _, code = runCLI(t, t.Context(), "history", "/apps/web", "--nats", url, "--since", "1h")
	if code != 0 || strings.Count(out, "\n") != 5 {
		t.Errorf("--since 1h: exit %d, output:\n%s", code, out)
	}
}

// TestHistoryOfAnUnknownWorkloadExitsOne: a workload without deployments
// is said so on stderr with exit 1, so that a script can tell; used
// wrongly, history exits 2 with a hint.
func TestHistoryOfAnUnknownWorkloadExitsOne(t *testing.T) {
	url, _ := historyStream(t)
	out, errOut, code := runCLI(t, t.Context(), "history", "/apps/nope", "--nats", url)
	if code != 1 || out != "" || errOut != "slipway: no deployments of /apps/nope found\n" {
		t.Errorf("unknown workload: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	out, errOut, code = runCLI(t, t.Context(), "history", "/apps/web", "--nats", url, "--cluster", "prd-z", "--json")
	if code != 1 || out != "" || !strings.Contains(errOut, "no deployments of /apps/web found on cluster prd-z") {
		t.Errorf("unknown cluster: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"history"}, "slipway history: missing workload"},
		{[]string{"history", "a", "b"}, `unexpected argument "b"`},
		{[]string{"history", "a", "--since", "7d"}, `--since: "7d": durations use h, m, s: 7d is 168h`},
	} {
		_, errOut, code := runCLI(t, t.Context(), tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.msg) || !strings.Contains(errOut, "see 'slipway history --help'") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2, %q and a hint", tc.args, code, errOut, tc.msg)
		}
	}
}

// TestHistoryShowsRefusedPushesViolationsAndDepartures: a push the
// workload's cluster refused (accept: promoted) shows with who pushed it, a
// compliance violation with its rule and detail, and the workload leaving
// management (its label removed on one cluster, removed on another) as
// such, not as a change made outside Slipway; another cluster's refusal for
// another workload does not show.
func TestHistoryShowsRefusedPushesViolationsAndDepartures(t *testing.T) {
	ns, js := eventStream(t)
	ctx := t.Context()
	pub := bus.NewPublisher(js, "")
	image := "registry.prd.example/apps/web:9.9.9@sha256:" + strings.Repeat("99", 32)
	for _, spec := range []events.Spec{
		{ID: "push-direct", Type: events.TypeImagePushed, Environment: "prd", Subject: image,
			Data: events.ImagePushed{Environment: "prd", Registry: "registry.prd.example", Repository: "apps/web", Tag: "9.9.9",
				Digest: "sha256:" + strings.Repeat("99", 32), Actor: "mallory"}},
		{ID: "refused-a", Type: "dev.slipway.deployment.refused.v1", Environment: "prd", Subject: image, CausationID: "push-direct",
			Data: map[string]any{"cluster": "prd-a", "environment": "prd", "image": image, "actor": "mallory",
				"reason": "prd accepts only promoted images", "workloads": []string{"/apps/web"}}},
		{ID: "refused-b", Type: "dev.slipway.deployment.refused.v1", Environment: "prd", Subject: image, CausationID: "push-direct",
			Data: map[string]any{"cluster": "prd-b", "environment": "prd", "image": image, "reason": "prd accepts only promoted images",
				"workloads": []string{"/apps/api"}}},
		{ID: "violated", Type: "dev.slipway.compliance.violated.v1", Environment: "prd", Subject: "prd-a:/apps/web",
			Data: map[string]any{"cluster": "prd-a", "appId": "/apps/web", "rule": "pinned", "image": "registry.prd.example/apps/web:1.4.0",
				"detail": "runs a tag, not a digest"}},
		{ID: "unlabelled", Type: events.TypeDriftDetected, Environment: "prd", Subject: "prd-a:/apps/web",
			Data: events.DriftDetected{Cluster: "prd-a", AppID: "/apps/web", ExpectedImage: "registry.prd.example/apps/web:1.4.0",
				ActualImage: "registry.prd.example/apps/web:1.4.0", Unmanaged: true,
				Reason: "the slipway.policy label was removed: Slipway no longer manages the workload"}},
		{ID: "removed", Type: events.TypeDriftDetected, Environment: "prd", Subject: "prd-b:/apps/web",
			Data: events.DriftDetected{Cluster: "prd-b", AppID: "/apps/web", ExpectedImage: "registry.prd.example/apps/web:1.3.0",
				Unmanaged: true, Reason: "the workload was removed"}},
	} {
		spec.Source = "/slipway/test"
		e, err := events.New(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pub.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut, code := runCLI(t, ctx, "history", "apps/web", "--nats", ns.URL, "--json")
	var got []historyEntry
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if len(got) != 4 {
		t.Fatalf("%d entries, want the refusal on prd-a, the violation and two departures:\n%s", len(got), out)
	}
	if r := got[0]; r.Outcome != "refused" || r.Kind != "deployment.refused" || r.Cluster != "prd-a" || r.AppID != "/apps/web" || r.ToImage != image ||
		r.Reason != "prd accepts only promoted images" || r.Cause == nil || r.Cause.Push == nil || r.Cause.Push.Actor != "mallory" {
		t.Errorf("refusal %s", mustJSON(t, r))
	}
	if v := got[1]; v.Outcome != "violation" || v.Kind != "compliance.violated" || v.Reason != "pinned: runs a tag, not a digest" {
		t.Errorf("violation %s", mustJSON(t, v))
	}
	if d := got[2]; d.Outcome != "drift" || d.Cluster != "prd-a" || d.Reason != "left management: label removed" {
		t.Errorf("label removed %s", mustJSON(t, d))
	}
	if d := got[3]; d.Outcome != "drift" || d.Cluster != "prd-b" || d.Reason != "left management: removed" ||
		d.FromImage != "registry.prd.example/apps/web:1.3.0" || d.ToImage != "" {
		t.Errorf("removed %s", mustJSON(t, d))
	}

	out, errOut, code = runCLI(t, ctx, "history", "apps/web", "--nats", ns.URL)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(lines) != 5 {
		t.Fatalf("exit %d, want a header and 4 rows, stdout:\n%s\nstderr %q", code, out, errOut)
	}
	for i, want := range [][]string{
		{"prd-a", "refused", "apps/web:9.9.9@sha256:", "prd accepts only promoted images", "pushed by mallory to prd"},
		{"prd-a", "violation", "pinned: runs a tag, not a digest"},
		{"prd-a", "drift", "registry.prd.example/apps/web:1.4.0 ", "left management: label removed"},
		{"prd-b", "drift", "registry.prd.example/apps/web:1.3.0 ", "left management: removed"},
	} {
		line := lines[i+1]
		for _, w := range want {
			if !strings.Contains(line, w) {
				t.Errorf("row %d %q lacks %q", i+1, line, w)
			}
		}
		if strings.Contains(line, "changed outside Slipway") || strings.Contains(line, "→") {
			t.Errorf("row %d %q", i+1, line)
		}
	}
}
