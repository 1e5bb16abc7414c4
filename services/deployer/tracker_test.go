package deployer

import "testing"

// An outcome handed to its follower is not kept: at a steady rate of
// deployments, keeping them made the deployer's heap grow for endedTTL.
func TestTrackerKeepsOnlyUnclaimedOutcomes(t *testing.T) {
	tr := newTracker()
	ch := tr.wait("d1")
	tr.finish("d1", outcome{success: true})
	if o := <-ch; !o.success {
		t.Fatalf("waiter got %+v", o)
	}
	tr.finish("d2", outcome{success: true}) // ended before its PUT's answer
	if got := tr.wait("d2"); !(<-got).success {
		t.Fatal("early outcome lost")
	}
	tr.finish("d3", outcome{gone: true})
	tr.finish("d3", outcome{success: true}) // an event's outcome beats "gone"
	tr.finish("d3", outcome{gone: true})
	if len(tr.ended) != 1 || !tr.ended["d3"].success {
		t.Errorf("kept %+v, want only d3's unclaimed success", tr.ended)
	}
}
