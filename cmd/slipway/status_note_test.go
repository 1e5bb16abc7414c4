package main

import (
	"testing"

	"github.com/slipway-cd/slipway/services/deployer/inventory"
)

// The status NOTE says a departure from management in the words events
// list, history and the notifier use for the same event.
func TestStatusNoteNamesADepartureAsTheEventsDo(t *testing.T) {
	for left, want := range map[string]string{
		"unlabelled": "left management: label removed",
		"removed":    "left management: removed",
	} {
		if got := noteOf(inventory.Record{Policy: "all", LeftManagement: left}); got != want {
			t.Errorf("left %q: note %q, want %q", left, got, want)
		}
	}
}

// The status DEPLOYMENT column says when the last deployment was a manual
// action, and who asked for it, as the notifier does.
func TestStatusDeploymentNamesAManualActionAndWhoAsked(t *testing.T) {
	img := "registry.prd.example/apps/web:1.4.0"
	for _, tc := range []struct {
		d    inventory.Deployment
		want string
	}{
		{inventory.Deployment{ToImage: img, Outcome: "succeeded"}, "succeeded"},
		{inventory.Deployment{ToImage: img, Outcome: "succeeded", Action: "rollback", Actor: "maria@example.com"}, "succeeded (rollback by maria@example.com)"},
		{inventory.Deployment{ToImage: img, Outcome: "in_progress", Action: "redeploy"}, "in_progress (redeploy by someone)"},
	} {
		if got := deploymentOf(inventory.Record{Image: img, LastDeployment: &tc.d}); got != tc.want {
			t.Errorf("deployment %+v: %q, want %q", tc.d, got, tc.want)
		}
	}
}
