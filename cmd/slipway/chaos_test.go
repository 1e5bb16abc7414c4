package main

import (
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// chaosConfig is the size and the faults of a chaos run.
type chaosConfig struct {
	pushes, repos int
	seed          int64
	// interval is the mean time between two pushes.
	interval time.Duration
	kills    int
	// down is the longest a killed instance stays down.
	down    time.Duration
	outage  time.Duration
	bursts  int
	ackWait time.Duration
	// victims are the services whose instances are killed.
	victims []string
}

// chaosFromEnv sizes the run: by default a bounded one for make test;
// make chaos sets SLIPWAY_CHAOS_PUSHES and SLIPWAY_CHAOS_REPOS.
// SLIPWAY_CHAOS_SEED replays a run's schedule of pushes and faults (the
// interleaving with the services' own timing differs from run to run).
func chaosFromEnv(t *testing.T) chaosConfig {
	t.Helper()
	num := func(name string, def int64) int64 {
		v := os.Getenv(name)
		if v == "" {
			return def
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q: want a positive number", name, v)
		}
		return n
	}
	c := chaosConfig{
		pushes:   int(num("SLIPWAY_CHAOS_PUSHES", 60)),
		repos:    int(num("SLIPWAY_CHAOS_REPOS", 10)),
		seed:     num("SLIPWAY_CHAOS_SEED", time.Now().UnixNano()),
		interval: 50 * time.Millisecond,
	}
	c.kills = max(4, c.pushes/25)
	c.bursts = max(3, c.pushes/50)
	// Longer than the copier's own retries (about 3s), so that copies to
	// tst fail and come back as redeliveries; shorter than the promoter's
	// budget (5 deliveries over about 36s), beyond which a promotion is
	// dead-lettered by design and redriving it is an operator's job.
	c.outage = min(max(5*time.Second, time.Duration(c.pushes)*15*time.Millisecond), 20*time.Second)
	c.down = min(max(time.Second, time.Duration(c.pushes)*3*time.Millisecond), 3*time.Second)
	if c.pushes <= 200 {
		// The bounded run must end within a minute: a crashed
		// instance's events come back after 3s instead of 30s.
		c.ackWait = 3 * time.Second
	}
	if v := os.Getenv("SLIPWAY_CHAOS_ACKWAIT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("SLIPWAY_CHAOS_ACKWAIT=%q: %v", v, err)
		}
		c.ackWait = d
	}
	c.victims = sysServices
	if v := os.Getenv("SLIPWAY_CHAOS_KILL"); v != "" {
		c.victims = strings.Split(v, ",")
		for _, k := range c.victims {
			if !slices.Contains(sysServices, k) {
				t.Fatalf("SLIPWAY_CHAOS_KILL=%q: %q is not one of %v", v, k, sysServices)
			}
		}
	}
	if c.repos > c.pushes {
		c.repos = c.pushes
	}
	return c
}

// chaosAction is one fault at a point of the run.
type chaosAction struct {
	before int    // the push it comes before
	kind   string // kill, outage, 503
	// kill: the service (first rounds cover every service), the pick
	// among its running instances, and how long it stays down.
	service string
	pick    int
	down    time.Duration
	// 503: which Marathon and how many answers.
	marathon string
	n        int
}

// chaosSchedule places the faults among the pushes, so that a seed
// replays the same faults between the same pushes however fast the
// machine is.
func chaosSchedule(c chaosConfig, rng *rand.Rand) []chaosAction {
	var acts []chaosAction
	at := func(from, to int) int { return from + rng.Intn(max(to-from, 1)) }
	dur := func(from, to time.Duration) time.Duration {
		return from + time.Duration(rng.Int63n(int64(max(to-from, 1))))
	}
	kinds := slices.Clone(c.victims)
	rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	for i := range c.kills {
		svc := kinds[rng.Intn(len(kinds))]
		if i < len(kinds) {
			svc = kinds[i]
		}
		acts = append(acts, chaosAction{before: at(1, c.pushes), kind: "kill", service: svc, pick: rng.Intn(2),
			down: dur(100*time.Millisecond, c.down)})
	}
	acts = append(acts, chaosAction{before: at(c.pushes/5, c.pushes/2), kind: "outage", down: c.outage})
	for range c.bursts {
		acts = append(acts, chaosAction{before: at(1, c.pushes), kind: "503", marathon: []string{"int", "prd"}[rng.Intn(2)], n: 3 + rng.Intn(8)})
	}
	slices.SortStableFunc(acts, func(a, b chaosAction) int { return a.before - b.before })
	return acts
}

// chaosRecord is what the faults did.
type chaosRecord struct {
	mu     sync.Mutex
	kills  map[string]int
	outage time.Duration
	bursts int
	errs   []error
}

func (r *chaosRecord) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

// sysChaosDockerRepos is how many repositories of the chaos run also run
// in prd as a container on a real Docker engine: enough for deployments
// to overlap there, few enough that the engine's pulls and recreates do
// not dominate the run.
const sysChaosDockerRepos = 3

// TestChaos pushes images across repositories while service instances
// are killed and restarted, the tst registry goes away for a while and
// Marathon answers 503s, then compares every expected promotion,
// deployment and notification with what happened (see sysResult): none
// may be lost or happen twice, on Marathon or on the Docker host, where a
// few repositories' prd stage runs as containers on a real engine. The
// report gives the numbers and the time
// from the last push to the last expected effect. make chaos runs it with
// 1000 pushes across 50 repositories; docs/reliability.md has a run.
func TestChaos(t *testing.T) {
	c := chaosFromEnv(t)
	rng := rand.New(rand.NewSource(c.seed))
	t.Logf("chaos: seed %d (SLIPWAY_CHAOS_SEED=%d replays the schedule), %d pushes across %d repositories", c.seed, c.seed, c.pushes, c.repos)

	s := startSystem(t, sysOptions{repos: c.repos, replicas: 2, ackWait: c.ackWait, dockerRepos: sysChaosDockerRepos})

	// Every repository once, then at random; versions rise per repository.
	order := slices.Clone(s.repos)
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for len(order) < c.pushes {
		order = append(order, s.repos[rng.Intn(len(s.repos))])
	}
	gaps := make([]time.Duration, c.pushes)
	for i := range gaps {
		gaps[i] = time.Duration(rng.Int63n(int64(2 * c.interval)))
	}
	acts := chaosSchedule(c, rng)

	// The faults run beside the pushes: a kill waits for the instance to
	// be gone, which must not hold the pushes up.
	rec := &chaosRecord{kills: map[string]int{}}
	faults := make(chan chaosAction, len(acts))
	faultsDone := make(chan struct{})
	go s.runFaults(faults, rec, faultsDone)

	start := time.Now()
	version := map[string]int{}
	pushes := make([]sysPush, 0, c.pushes)
	for i, repo := range order {
		for len(acts) > 0 && acts[0].before == i {
			faults <- acts[0]
			acts = acts[1:]
		}
		// Pacing models the world (developers pushing), it does not
		// synchronise with anything.
		<-time.After(gaps[i])
		version[repo]++
		pushes = append(pushes, s.push(repo, version[repo]))
		if (i+1)%200 == 0 {
			t.Logf("%d pushes in %s", i+1, time.Since(start).Round(time.Second))
		}
	}
	lastPush := pushes[len(pushes)-1].at
	close(faults)
	<-faultsDone
	rec.mu.Lock()
	for _, err := range rec.errs {
		t.Errorf("fault injection: %v", err)
	}
	rec.mu.Unlock()

	deadline := 5*time.Minute + time.Duration(c.pushes)*500*time.Millisecond
	r, settled := s.settle(pushes, deadline, 30*time.Second)
	s.report(t, r, true)
	if !settled {
		t.Errorf("not settled (within %s, or with every consumer idle for %s): %d effects missing", deadline, sysStuckAfter, r.lost())
	}

	var kills []string
	total := 0
	for _, kind := range c.victims {
		kills = append(kills, fmt.Sprintf("%s %d", kind, rec.kills[kind]))
		total += rec.kills[kind]
	}
	ackWait := "30s (default)"
	if c.ackWait > 0 {
		ackWait = c.ackWait.String()
	}
	drain := r.drainEnd.Sub(lastPush).Round(time.Millisecond)
	t.Logf("chaos report: seed %d; %d pushes across %d repositories and 3 stages in %s; 2 instances per service; "+
		"%d kills (%s; connection closed then context cancelled, ack wait %s); tst registry away %s; %d Marathon 503s in %d bursts; "+
		"%d containers on a Docker host recreated %d times; "+
		"lost %d, duplicated effects %d, duplicate notification deliveries %d; drained %s after the last push (last: %s)",
		c.seed, c.pushes, c.repos, lastPush.Sub(start).Round(time.Millisecond), total, strings.Join(kills, ", "), ackWait,
		rec.outage.Round(time.Millisecond), r.marathon503, rec.bursts, len(s.docker.repos), r.dockerRecreates, r.lost(), r.duplicatedEffects(),
		r.tally("notification").duplicated, drain, r.drainLast)
}

// runFaults plays the faults it is given, restarts every killed instance,
// ends the outage, and closes done. Errors go to rec: it runs beside the
// test's goroutine and must not fail the test itself.
func (s *system) runFaults(acts <-chan chaosAction, rec *chaosRecord, done chan<- struct{}) {
	defer close(done)
	var wg sync.WaitGroup
	defer wg.Wait()
	for a := range acts {
		switch a.kind {
		case "kill":
			in := s.pickRunning(a.service, a.pick)
			if in == nil {
				continue
			}
			if err := in.kill(); err != nil {
				rec.fail(err)
			}
			rec.mu.Lock()
			rec.kills[in.kind]++
			rec.mu.Unlock()
			wg.Go(func() {
				<-time.After(a.down)
				if err := in.start(); err != nil {
					rec.fail(err)
				}
			})
		case "outage":
			reg := s.reg["tst"]
			reg.Stop()
			began := time.Now()
			wg.Go(func() {
				<-time.After(a.down)
				if err := reg.Start(); err != nil {
					rec.fail(err)
				}
				rec.mu.Lock()
				rec.outage = time.Since(began)
				rec.mu.Unlock()
			})
		case "503":
			s.marathon[a.marathon].emu.Faults().FailNext(a.n, http.StatusServiceUnavailable)
			rec.mu.Lock()
			rec.bursts++
			rec.mu.Unlock()
		}
	}
}

// pickRunning chooses a running instance of service; nil when both are
// down already.
func (s *system) pickRunning(service string, pick int) *sysInstance {
	var of []*sysInstance
	for _, in := range s.inst {
		if in.kind == service && in.running() {
			of = append(of, in)
		}
	}
	if len(of) == 0 {
		return nil
	}
	return of[pick%len(of)]
}
