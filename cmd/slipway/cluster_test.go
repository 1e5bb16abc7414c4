package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/natsconn"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/tools/marathon-emulator/emulator"
)

// TestClusterLeaderLossLosesNoPushAndDoublesNoDeployment runs ingest and
// the deployer against a three-node JetStream cluster (stream with three
// replicas, user/password login) while a registry sends a steady series
// of pushes, one app each. In the middle the node leading the stream dies,
// and later comes back. Ingest may answer 503 while a new leader is
// elected; the registry retries those, as a real one does. In the end
// every accepted push is in the stream exactly once and every app was
// updated at Marathon exactly once.
func TestClusterLeaderLossLosesNoPushAndDoublesNoDeployment(t *testing.T) {
	const (
		pushes    = 30
		killAfter = 10 // accepted pushes before the leader dies
		backAfter = 10 // accepted pushes after that before it returns
	)
	c := testkit.NATSCluster(t, testkit.ClusterOptions{})
	marathon, puts := startCountingMarathon(t)
	marathon.load(t, optedInApps("svc", pushes)...)

	cfg := parseConfig(t, fmt.Sprintf(`
nats:
  url: %q
  user: %q
  password: %q
  stream: { replicas: 3 }
environments: [ { name: dev, registry: { host: %q } } ]
ingest:
  listen: "127.0.0.1:0"
  sources: [ { name: dev-registry, format: distribution, environment: dev, auth: { none: true } } ]
clusters: [ { name: azure-int, environment: dev, marathon: { url: %q } } ]
deployer: { pollInterval: 100ms }
ops: { listen: "off" }
`, c.URLs(), c.Credentials.User, c.Credentials.Password, clusterRegistry, marathon.url))

	// The account is closed to anyone without the password.
	wrong := cfg.NATS
	wrong.Password = "not-" + wrong.Password
	if conn, err := natsconn.Dial(wrong, c.URLs(), "intruder"); err == nil {
		conn.Close()
		t.Fatal("a wrong password connected to the cluster")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("wrong password: %v, want an authorization violation", err)
	}

	_, js := c.Connect(t)
	if _, err := bus.EnsureStream(t.Context(), js, cfg.StreamConfig()); err != nil {
		t.Fatal(err)
	}
	c.WaitJetStreamReady(t, bus.DefaultStream)
	if info, err := js.Stream(t.Context(), bus.DefaultStream); err != nil || info.CachedInfo().Config.Replicas != 3 {
		t.Fatalf("stream: %v, want 3 replicas", err)
	}
	// Checked after the services stopped (cleanups run last first), so a
	// late redelivery that updated an app again would be caught too.
	t.Cleanup(func() { puts.assertOnce(t, pushes) })

	webhook := startIngest(t, cfg) + "/webhooks/dev-registry"
	runService(t, cfg, deployer.New())
	waitConsumer(t, js, deployer.ConsumerName("azure-int"))
	reg := &registrySender{url: webhook, refused: map[string]int{}}

	sent := make(chan error, 1)
	go func() {
		for i := range pushes {
			if err := reg.send(t.Context(), fmt.Sprintf("apps/app-%d", i), "1.1.0"); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()

	testkit.WaitFor(t, fmt.Sprintf("%d accepted pushes", killAfter), func() bool { return reg.acceptedCount() >= killAfter })
	leader := c.StreamLeader(bus.DefaultStream)
	if leader < 0 {
		t.Fatal("the stream has no leader")
	}
	c.Kill(leader)
	killedAt := reg.acceptedCount()
	testkit.WaitFor(t, "a new stream leader", func() bool { return c.StreamLeader(bus.DefaultStream) >= 0 })
	electedAt, refusedMeanwhile := reg.acceptedCount(), reg.refusedCounts()
	testkit.WaitFor(t, "pushes accepted with the old leader gone", func() bool {
		return reg.acceptedCount() >= min(killedAt+backAfter, pushes)
	})
	newLeader := c.StreamLeader(bus.DefaultStream)
	c.Restart(t, leader)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	c.WaitJetStreamReady(t, bus.DefaultStream)
	t.Logf("stream leader n%d killed after %d accepted pushes; n%d elected after %d more, refusals until then %v, in all %v",
		leader+1, killedAt, newLeader+1, electedAt-killedAt, refusedMeanwhile, reg.refusedCounts())

	testkit.WaitFor(t, "every app updated at Marathon", func() bool { return puts.apps() == pushes })
	var succeeded []events.Event
	testkit.WaitFor(t, "a deployment.succeeded for every app", func() bool {
		succeeded = storedEvents(t, js, "slipway.deployment.succeeded.>")
		return len(succeeded) >= pushes
	})
	assertDeployedOnce(t, succeeded, pushes)
	assertPushedOnce(t, storedEvents(t, js, "slipway.image.pushed.>"), reg.acceptedIDs())
}

// waitConsumer waits until the durable consumer exists. Nothing
// more is needed: a new consumer fixes where "new" begins at creation (the
// stream's last sequence + 1), not when its leader starts, which on a
// cluster can be seconds later; pushes sent in between reach the service.
func waitConsumer(t *testing.T, js jetstream.JetStream, name string) {
	t.Helper()
	testkit.WaitFor(t, "consumer "+name, func() bool {
		_, err := js.Consumer(t.Context(), bus.DefaultStream, name)
		return err == nil
	})
}

// optedInApps are n Marathon apps /<group>/app-<i> running
// <clusterRegistry>/apps/app-<i>:1.0.0, each taking every newer version.
func optedInApps(group string, n int) []string {
	apps := make([]string, n)
	for i := range apps {
		apps[i] = fmt.Sprintf(`{"id":"/%s/app-%d","instances":1,"labels":{"slipway.policy":"all"},"container":{"type":"DOCKER","docker":{"image":"%s/apps/app-%d:1.0.0"}}}`, group, i, clusterRegistry, i)
	}
	return apps
}

// clusterRegistry is the registry the pushes of the cluster and leaf tests
// come from; nothing is pulled from it.
const clusterRegistry = "registry.example:5000"

func parseConfig(t *testing.T, doc string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// registrySender sends Distribution push notifications and retries each
// until ingest accepts it, as a registry's notification endpoint does.
type registrySender struct {
	url    string
	client http.Client

	mu       sync.Mutex
	accepted []string       // delivery ids, in order
	refused  map[string]int // "503", "connection" → count
}

// registryRetryDelay is how long the sender waits before sending a refused
// notification again (Distribution backs off about a second).
const registryRetryDelay = 50 * time.Millisecond

func (r *registrySender) send(ctx context.Context, repo, tag string) error {
	id := "delivery-" + strings.ReplaceAll(repo, "/", "-") + "-" + tag
	dig := sha256.Sum256([]byte(repo + ":" + tag)) // stands in for the manifest's
	body := fmt.Sprintf(`{"events":[{"id":%q,"timestamp":%q,"action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%x","size":700,"repository":%q,"tag":%q},"request":{"host":%q},"actor":{"name":"ci"}}]}`,
		id, time.Now().UTC().Format(time.RFC3339Nano), dig, repo, tag, clusterRegistry)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/vnd.docker.distribution.events.v2+json")
		resp, err := r.client.Do(req)
		why := "connection"
		if err == nil {
			reply, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusAccepted:
				r.mu.Lock()
				r.accepted = append(r.accepted, id)
				r.mu.Unlock()
				return nil
			case http.StatusServiceUnavailable, http.StatusTooManyRequests:
				why = fmt.Sprint(resp.StatusCode)
			default:
				return fmt.Errorf("push %s:%s: %d %s", repo, tag, resp.StatusCode, reply)
			}
		}
		r.mu.Lock()
		r.refused[why]++
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(registryRetryDelay):
		}
	}
}

func (r *registrySender) acceptedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.accepted)
}

func (r *registrySender) acceptedIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.accepted...)
}

func (r *registrySender) refusedCounts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, v := range r.refused {
		out[k] = v
	}
	return out
}

// putCounter sits in front of Marathon and counts the app updates (PUTs)
// each app gets.
type putCounter struct {
	next http.Handler
	mu   sync.Mutex
	puts map[string]int // app id → PUTs
}

func (p *putCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/v2/apps/") {
		p.mu.Lock()
		p.puts[strings.TrimPrefix(r.URL.Path, "/v2/apps")]++
		p.mu.Unlock()
	}
	p.next.ServeHTTP(w, r)
}

func (p *putCounter) apps() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.puts)
}

// assertOnce fails unless n apps got exactly one PUT each.
func (p *putCounter) assertOnce(t *testing.T, n int) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.puts) != n {
		t.Errorf("%d apps updated at Marathon, want %d", len(p.puts), n)
	}
	for app, k := range p.puts {
		if k != 1 {
			t.Errorf("app %s updated %d times, want once", app, k)
		}
	}
}

// startCountingMarathon is startMarathon with a putCounter in front.
func startCountingMarathon(t *testing.T) (*marathonServer, *putCounter) {
	t.Helper()
	emu := emulator.New(emulator.Options{DeployDuration: 20 * time.Millisecond})
	pc := &putCounter{next: emu.Handler(), puts: map[string]int{}}
	srv := httptest.NewServer(pc)
	t.Cleanup(func() { srv.Close(); emu.Close() })
	return &marathonServer{emu: emu, url: srv.URL}, pc
}

// storedEvents reads every event of the stream on subject, from the first,
// with a consumer of its own. A cluster that has just changed leaders may
// not answer at once; it tries again until it does.
func storedEvents(t *testing.T, js jetstream.JetStream, subject string) []events.Event {
	t.Helper()
	var out []events.Event
	testkit.WaitFor(t, "a read of "+subject, func() bool {
		var err error
		out, err = readStream(t, js, subject)
		return err == nil
	})
	return out
}

func readStream(t *testing.T, js jetstream.JetStream, subject string) ([]events.Event, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, bus.DefaultStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return nil, err
	}
	var out []events.Event
	for {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return nil, err
		}
		n, pending := 0, uint64(0)
		for m := range batch.Messages() {
			n++
			e, err := events.FromMsg(m.Data())
			if err != nil {
				t.Fatalf("stored message: %v", err)
			}
			out = append(out, e)
			if md, err := m.Metadata(); err == nil {
				pending = md.NumPending
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, err
		}
		if n == 0 || pending == 0 {
			return out, nil
		}
	}
}

// assertPushedOnce fails unless the stream holds exactly one image.pushed
// event for each accepted delivery, and none for any other.
func assertPushedOnce(t *testing.T, pushed []events.Event, accepted []string) {
	t.Helper()
	per := map[string]int{}
	for _, e := range pushed {
		d, err := events.DataAs[events.ImagePushed](e)
		if err != nil {
			t.Fatal(err)
		}
		per[d.UpstreamID]++
	}
	for _, id := range accepted {
		if per[id] != 1 {
			t.Errorf("delivery %s: %d image.pushed events, want 1", id, per[id])
		}
	}
	if len(per) != len(accepted) {
		t.Errorf("%d pushes in the stream, %d accepted", len(per), len(accepted))
	}
}

// assertDeployedOnce fails unless the deployment events name n different
// apps, each once.
func assertDeployedOnce(t *testing.T, evs []events.Event, n int) {
	t.Helper()
	per := map[string]int{}
	for _, e := range evs {
		d, err := events.DataAs[events.Deployment](e)
		if err != nil {
			t.Fatal(err)
		}
		per[d.Cluster+":"+d.AppID]++
	}
	for app, k := range per {
		if k != 1 {
			t.Errorf("%s: %d %s events, want 1", app, k, evs[0].Type())
		}
	}
	if len(per) != n {
		t.Errorf("%d apps deployed, want %d", len(per), n)
	}
}
