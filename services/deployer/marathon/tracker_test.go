package marathon

import "testing"

// An outcome handed to its follower is not kept: at a steady rate of
// deployments, keeping them made the deployer's heap grow for endedTTL.
func TestTrackerKeepsOnlyUnclaimedOutcomes(t *testing.T) {
	tr := newTracker()
	ch := tr.wait("d1")
	tr.finish("d1", outcome{Success: true})
	if o := <-ch; !o.Success {
		t.Fatalf("waiter got %+v", o)
	}
	tr.finish("d2", outcome{Success: true}) // ended before its PUT's answer
	if got := tr.wait("d2"); !(<-got).Success {
		t.Fatal("early outcome lost")
	}
	tr.finish("d3", outcome{Gone: true})
	tr.finish("d3", outcome{Success: true}) // an event's outcome beats "gone"
	tr.finish("d3", outcome{Gone: true})
	if len(tr.ended) != 1 || !tr.ended["d3"].Success {
		t.Errorf("kept %+v, want only d3's unclaimed success", tr.ended)
	}
}
