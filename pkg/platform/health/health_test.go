package health

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestOutcomesFailFromAFailureUntilASuccessOrForHold: the check fails from
// a failure, naming it, until the next success, and at most for hold.
func TestOutcomesFailFromAFailureUntilASuccessOrForHold(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	o := NewOutcomes("storing an event", 30*time.Second)
	o.now = func() time.Time { return now }
	ctx := context.Background()
	if err := o.Check(ctx); err != nil {
		t.Fatalf("nothing observed yet: %v", err)
	}
	o.Observe(nil)
	if err := o.Check(ctx); err != nil {
		t.Fatalf("after a success: %v", err)
	}
	o.Observe(errors.New("insufficient resources"))
	now = now.Add(5 * time.Second)
	err := o.Check(ctx)
	if err == nil || !strings.Contains(err.Error(), "storing an event failed 5s ago") || !strings.Contains(err.Error(), "insufficient resources") {
		t.Fatalf("after a failure: %v", err)
	}
	o.Observe(nil)
	if err := o.Check(ctx); err != nil {
		t.Fatalf("a success clears it: %v", err)
	}
	o.Observe(errors.New("timeout"))
	now = now.Add(30 * time.Second)
	if err := o.Check(ctx); err != nil {
		t.Fatalf("a failure counts for hold only: %v", err)
	}
}
