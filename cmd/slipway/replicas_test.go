package main

import (
	"fmt"
	"testing"
	"time"
)

// TestReplicas runs two instances of every service on shared durable
// consumers, with no faults: the effects must be exactly those of one
// instance (every push promoted twice and deployed, every app on its
// newest image, no update twice or backwards, no two deployers on one app,
// every event notified once), and every instance must have done part of
// the work.
func TestReplicas(t *testing.T) {
	const repos, perRepo = 4, 4
	s := startSystem(t, sysOptions{repos: repos, replicas: 2})
	var pushes []sysPush
	for v := 1; v <= perRepo; v++ {
		for _, repo := range s.repos {
			pushes = append(pushes, s.push(repo, v))
		}
	}
	last := pushes[len(pushes)-1].at
	r, settled := s.settle(pushes, 2*time.Minute, 0)
	s.report(t, r, false)
	if !settled {
		t.Errorf("not settled (within 2m, or with every consumer idle for %s): %d effects missing", sysStuckAfter, r.lost())
	}
	if r.conflicts > 0 {
		t.Errorf("Marathon refused %d updates because the app was locked: two deployers on one app", r.conflicts)
	}
	for kind, work := range s.spread() {
		for i, w := range work {
			if w == 0 {
				t.Errorf("%s instance %d did no work (%v): the durable consumer is not shared", kind, i+1, work)
			}
		}
	}
	t.Log(fmt.Sprintf("replicas: %d pushes, 2 instances per service, drained %s after the last push; lost %d, duplicated %d",
		len(pushes), r.drainEnd.Sub(last).Round(time.Millisecond), r.lost(), r.duplicatedEffects()))
}
