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
