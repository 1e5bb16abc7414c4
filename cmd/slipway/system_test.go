package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-cd/slipway/cmd/slipway/internal/devstack"
	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/app"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/health"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/services/ingest"
	"github.com/slipway-cd/slipway/services/notifier"
	"github.com/slipway-cd/slipway/services/promoter"
	"github.com/slipway-cd/slipway/tools/marathon-emulator/emulator"
)

// The whole of Slipway in one test process, wired as production runs it:
// embedded JetStream, three Distribution registries (dev, tst, prd) that
// notify ingest through a load balancer, two emulated Marathons (one runs
// the dev and tst apps, one prd), promotions dev → tst → prd without
// approval, and a notifier that sends every event to a signed webhook.
// Every service runs as several instances that share their durable
// consumers; each instance has its own NATS connection and metrics, as a
// process would, and can be killed and started again on its own.
// TestReplicas and TestChaos drive it and compare what happened with what
// the pushes should have caused (sysExpectation).

// sysEnvs are the stages, in promotion order.
var sysEnvs = []string{"dev", "tst", "prd"}

// sysServices are the service kinds, each run as sysOptions.replicas
// instances.
var sysServices = []string{"ingest", "promoter", "deployer", "notifier"}

// sysWork names, per service, the counter that says how much work an
// instance did (TestReplicas checks that the work spreads).
var sysWork = map[string]string{
	"ingest":   "slipway_ingest_events_total",
	"promoter": "slipway_promoter_promotions_total",
	"deployer": "slipway_deployer_deployments_total",
	"notifier": "slipway_notifier_sent_total",
}

const sysHookSecret = "hook-s3cret"

type sysOptions struct {
	repos    int
	replicas int
	// ackWait replaces the consumers' default (how long the server waits
	// before it redelivers the work of a crashed instance); 0 keeps it.
	ackWait time.Duration
	// dockerRepos: the first dockerRepos repositories also run in prd as
	// a container each on a real Docker engine (see sysDocker), and their
	// pushes are images the engine can run.
	dockerRepos int
}

type system struct {
	t   *testing.T
	ns  *testkit.NATSServer
	js  jetstream.JetStream
	cfg *config.Config
	reg map[string]*testkit.Registry // by environment
	// marathon is by cluster: "int" runs the dev and tst apps, "prd" prd's.
	marathon map[string]*sysMarathon
	hook     *sysHook
	lb       *sysBalancer
	stream   *sysStream
	// docker is the Docker host (nil without sysOptions.dockerRepos).
	docker   *sysDocker
	clusters []sysCluster
	repos    []string
	apps     []sysApp
	inst     []*sysInstance
	logOut   io.Writer
}

// sysApp is one workload that runs a repository's image in one stage: a
// Marathon app, or a container on the Docker host.
type sysApp struct {
	cluster string // Slipway's cluster entry (deployer consumer)
	env     string
	id      string
	repo    string
	m       *sysMarathon
	docker  *sysDocker
}

// sysCluster is one of the deployer's cluster entries.
type sysCluster struct{ name, env, marathon string }

// sysClusters are the deployer's Marathon cluster entries: dev and tst
// share the integration Marathon, each entry managing the apps of its
// registry.
var sysClusters = []sysCluster{
	{"int-dev", "dev", "int"}, {"int-tst", "tst", "int"}, {"prd", "prd", "prd"},
}

func startSystem(t *testing.T, opts sysOptions) *system {
	t.Helper()
	if opts.ackWait > 0 {
		// Registered before any instance starts, so it runs after they
		// have all stopped (cleanups run last-in first-out).
		old := bus.DefaultAckWait
		bus.DefaultAckWait = opts.ackWait
		t.Cleanup(func() { bus.DefaultAckWait = old })
	}
	s := &system{t: t, ns: testkit.NATS(t), reg: map[string]*testkit.Registry{}, marathon: map[string]*sysMarathon{}, logOut: io.Discard,
		clusters: slices.Clone(sysClusters)}
	if os.Getenv("SLIPWAY_SYSTEM_LOG") != "" {
		s.logOut = os.Stderr
	}
	_, s.js = s.ns.Connect(t)

	s.hook = &sysHook{auditHook: auditHook{secret: []byte(sysHookSecret), got: map[string]int{}}, first: map[string]time.Time{}}
	hookSrv := httptest.NewServer(s.hook)
	t.Cleanup(hookSrv.Close)
	s.lb = &sysBalancer{proxies: map[string]*httputil.ReverseProxy{}}
	lbSrv := httptest.NewServer(s.lb)
	t.Cleanup(lbSrv.Close)
	for _, env := range sysEnvs {
		s.reg[env] = testkit.NewRegistry(t, testkit.RegistryOptions{NotifyURL: lbSrv.URL + "/webhooks/" + env + "-registry"})
	}
	for _, name := range []string{"int", "prd"} {
		s.marathon[name] = startSysMarathon(t)
	}

	byMarathon := map[string][]string{}
	for i := range opts.repos {
		repo := fmt.Sprintf("apps/svc-%02d", i)
		s.repos = append(s.repos, repo)
		for _, cl := range sysClusters {
			a := sysApp{cluster: cl.name, env: cl.env, id: fmt.Sprintf("/%s/svc-%02d", cl.env, i), repo: repo, m: s.marathon[cl.marathon]}
			s.apps = append(s.apps, a)
			byMarathon[cl.marathon] = append(byMarathon[cl.marathon], fmt.Sprintf(
				`{"id":%q,"instances":1,"labels":{"slipway.policy":"all"},"container":{"type":"DOCKER","docker":{"image":"%s/%s:0.1.0"}}}`,
				a.id, s.reg[cl.env].Host, repo))
		}
	}
	if n := min(opts.dockerRepos, len(s.repos)); n > 0 {
		s.docker = startSysDocker(t, s, s.repos[:n])
		s.clusters = append(s.clusters, sysCluster{name: sysDockerCluster, env: sysDockerEnv})
	}
	for name, m := range s.marathon {
		if err := m.emu.Load([]byte("[" + strings.Join(byMarathon[name], ",") + "]")); err != nil {
			t.Fatal(err)
		}
	}

	// One configuration for every instance: the balancer's address is
	// known before the registries start, so ingest needs no placeholder
	// registry hosts.
	var envs, sources, clusters strings.Builder
	for _, env := range sysEnvs {
		fmt.Fprintf(&envs, "  - { name: %s, registry: { host: %q, insecure: true } }\n", env, s.reg[env].Host)
		fmt.Fprintf(&sources, "    - { name: %s-registry, format: distribution, environment: %s, auth: { none: true } }\n", env, env)
	}
	for _, cl := range s.clusters {
		if cl.marathon == "" {
			// No health check in the sleepers: healthy is running for
			// the grace.
			fmt.Fprintf(&clusters, "  - { name: %s, environment: %s, type: docker, docker: { host: %q, grace: 300ms } }\n", cl.name, cl.env, s.docker.host)
			continue
		}
		fmt.Fprintf(&clusters, "  - { name: %s, environment: %s, marathon: { url: %q } }\n", cl.name, cl.env, s.marathon[cl.marathon].url)
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
nats: { url: %q }
environments:
%singest:
  listen: "127.0.0.1:0"
  sources:
%spromotions:
  - { name: dev-to-tst, from: dev, to: tst, repositories: ["apps/**"] }
  - { name: tst-to-prd, from: tst, to: prd, repositories: ["apps/**"] }
clusters:
%sdeployer: { pollInterval: 100ms }
notify:
  receivers:
    # Every event, as fast as the receiver takes them: the default limit
    # (5/s) would make the notifications the bottleneck of the run.
    - { name: audit-hook, webhook: { url: %q, secret: %s }, rateLimit: 1000, burst: 1000 }
  routes:
    - receivers: [audit-hook]
ops: { listen: "off" }
`, s.ns.URL, envs.String(), sources.String(), clusters.String(), hookSrv.URL, sysHookSecret)),
		func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	s.cfg = cfg
	if _, err := bus.EnsureStream(t.Context(), s.js, cfg.StreamConfig()); err != nil {
		t.Fatal(err)
	}
	s.stream = followStream(t, s.js)

	for _, kind := range sysServices {
		for n := range max(opts.replicas, 1) {
			in := &sysInstance{sys: s, kind: kind, n: n + 1}
			s.inst = append(s.inst, in)
			if err := in.start(); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(func() {
		for _, in := range s.inst {
			if err := in.stop(); err != nil {
				t.Error(err)
			}
		}
	})
	// Consumers start at new events: every one must exist before the
	// first push.
	for _, c := range s.durables() {
		testkit.WaitFor(t, "consumer "+c, func() bool {
			_, err := s.js.Consumer(t.Context(), bus.DefaultStream, c)
			return err == nil
		})
	}
	return s
}

func (s *system) durables() []string {
	out := []string{promoter.ConsumerName, notifier.ConsumerName("audit-hook")}
	for _, cl := range s.clusters {
		out = append(out, deployer.ConsumerName(cl.name))
	}
	return out
}

// quiet reports whether every durable consumer has handed out everything
// and has nothing waiting for an ack: no redelivery can still come.
func (s *system) quiet(ctx context.Context) bool {
	for _, c := range s.durables() {
		if !consumerDone(ctx, s.js, c) {
			return false
		}
	}
	return true
}

// deadLetters counts the messages of the dead-letter stream.
func (s *system) deadLetters(ctx context.Context) (uint64, []string) {
	st, err := s.js.Stream(ctx, bus.DeadLetterStreamName(bus.DefaultStream))
	if err != nil {
		return 0, []string{err.Error()}
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, []string{err.Error()}
	}
	var why []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		why = append(why, m.Header.Get(bus.HeaderDLQConsumer)+" "+m.Subject+": "+m.Header.Get(bus.HeaderDLQError))
	}
	return info.State.Msgs, why
}

// sysInstance is one instance of a service, as one process of it would
// run: its own NATS connection, metrics and (for ingest) listener.
type sysInstance struct {
	sys  *system
	kind string
	n    int

	mu      sync.Mutex
	nc      *nats.Conn
	cancel  context.CancelFunc
	done    chan error
	metrics *prometheus.Registry
	addr    string  // ingest's listener
	work    float64 // done in earlier lives
}

func (in *sysInstance) name() string { return fmt.Sprintf("%s-%d", in.kind, in.n) }

// start runs the instance. It returns errors instead of failing the test
// so that the chaos goroutine can call it.
func (in *sysInstance) start() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cancel != nil {
		return fmt.Errorf("%s is running", in.name())
	}
	nc, err := nats.Connect(in.sys.ns.URL, nats.Name("slipway "+in.name()),
		nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		return fmt.Errorf("%s: %w", in.name(), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return fmt.Errorf("%s: %w", in.name(), err)
	}
	log := slog.New(slog.NewTextHandler(in.sys.logOut, &slog.HandlerOptions{Level: slog.LevelWarn})).With("service", in.kind, "instance", in.n)
	reg := prometheus.NewRegistry()
	d := app.Deps{Config: in.sys.cfg, Log: log, JS: js, Stream: bus.DefaultStream, Metrics: reg, Health: health.NewChecker()}

	listening := make(chan string, 1)
	var svc app.Service
	switch in.kind {
	case "ingest":
		i := ingest.New()
		i.Listening = func(a net.Addr) { listening <- a.String() }
		svc = i
	case "promoter":
		svc = promoter.New()
	case "deployer":
		svc = deployer.New()
	case "notifier":
		svc = notifier.New()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx, d) }()
	in.nc, in.cancel, in.done, in.metrics = nc, cancel, done, reg
	if in.kind == "ingest" {
		select {
		case in.addr = <-listening:
			in.sys.lb.add(in.addr)
		case err := <-done:
			return fmt.Errorf("%s ended before it listened: %v", in.name(), err)
		case <-time.After(time.Minute):
			return fmt.Errorf("%s did not listen within a minute", in.name())
		}
	}
	return nil
}

// kill ends the instance as abruptly as a process can be ended in
// process: its NATS connection is closed first, so nothing it does from
// then on is acked, published or recorded (the server redelivers its
// unacked events after the ack wait, and its deployer leases expire),
// then its context is cancelled so that its goroutines stop. Work already
// on the wire to a registry, Marathon or the webhook may still land, as it
// can when a process dies mid-request. Ingest leaves the balancer only
// after it died, as a health check would notice.
func (in *sysInstance) kill() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cancel == nil {
		return fmt.Errorf("%s is not running", in.name())
	}
	in.nc.Close()
	in.cancel()
	err := in.wait()
	if in.kind == "ingest" {
		in.sys.lb.remove(in.addr)
	}
	return err
}

// stop ends the instance cleanly (the end of the test).
func (in *sysInstance) stop() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cancel == nil {
		return nil
	}
	in.cancel()
	err := in.wait()
	if in.kind == "ingest" {
		in.sys.lb.remove(in.addr)
	}
	in.nc.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", in.name(), err)
	}
	return nil
}

// wait collects the life that ends; in.mu is held.
func (in *sysInstance) wait() error {
	var err error
	select {
	case <-in.done:
		// A killed instance's error (a closed connection) is the kill's.
	case <-time.After(time.Minute):
		err = fmt.Errorf("%s did not stop within a minute", in.name())
	}
	in.work += counterSum(in.metrics, sysWork[in.kind])
	in.nc, in.cancel, in.done, in.metrics = nil, nil, nil, nil
	return err
}

// workDone is what the instance did in all its lives so far.
func (in *sysInstance) workDone() float64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	w := in.work
	if in.metrics != nil {
		w += counterSum(in.metrics, sysWork[in.kind])
	}
	return w
}

func (in *sysInstance) running() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.cancel != nil
}

// counterSum adds up every series of a counter family.
func counterSum(reg *prometheus.Registry, family string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != family {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// sysBalancer spreads the registries' notifications over the ingest
// instances, round robin, as a load balancer in front of replicas does.
// With no instance behind it, it answers 503 and the registry retries.
type sysBalancer struct {
	mu      sync.Mutex
	addrs   []string
	next    int
	proxies map[string]*httputil.ReverseProxy
}

func (b *sysBalancer) add(addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u := &url.URL{Scheme: "http", Host: addr}
	p := httputil.NewSingleHostReverseProxy(u)
	// A killed instance makes the proxy fail requests; the registry
	// retries them, and the log would only be noise.
	p.ErrorLog = stdlog.New(io.Discard, "", 0)
	b.proxies[addr] = p
	b.addrs = append(b.addrs, addr)
}

func (b *sysBalancer) remove(addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.addrs = slices.DeleteFunc(b.addrs, func(a string) bool { return a == addr })
	delete(b.proxies, addr)
}

func (b *sysBalancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	var p *httputil.ReverseProxy
	if len(b.addrs) > 0 {
		b.next = (b.next + 1) % len(b.addrs)
		p = b.proxies[b.addrs[b.next]]
	}
	b.mu.Unlock()
	if p == nil {
		http.Error(w, "no ingest instance", http.StatusServiceUnavailable)
		return
	}
	p.ServeHTTP(w, r)
}

// sysHook is the audit webhook (signature checked, deliveries counted per
// event id), noting when each event first arrived.
type sysHook struct {
	auditHook
	tmu   sync.Mutex
	first map[string]time.Time
}

func (h *sysHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	h.auditHook.ServeHTTP(sw, r)
	if sw.status >= 300 {
		return
	}
	if e, err := events.FromMsg(body); err == nil {
		h.tmu.Lock()
		if _, ok := h.first[e.ID()]; !ok {
			h.first[e.ID()] = time.Now()
		}
		h.tmu.Unlock()
	}
}

// deliveries returns a copy of the deliveries per event id and when each
// event first arrived.
func (h *sysHook) deliveries() (map[string]int, map[string]time.Time, int) {
	h.mu.Lock()
	got, bad := make(map[string]int, len(h.got)), h.bad
	for k, v := range h.got {
		got[k] = v
	}
	h.mu.Unlock()
	h.tmu.Lock()
	defer h.tmu.Unlock()
	first := make(map[string]time.Time, len(h.first))
	for k, v := range h.first {
		first[k] = v
	}
	return got, first, bad
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Flush lets Marathon's event stream through the recorder.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// sysMarathon is an emulated Marathon that notes every update it applied
// (the PUTs it answered with success) and every 503 it answered.
type sysMarathon struct {
	emu *emulator.Emulator
	url string

	mu   sync.Mutex
	puts []sysPut
	n503 int
	// n409 counts updates refused because a deployment held the app: two
	// deployers on one app would show here.
	n409 int
}

type sysPut struct {
	app, image string
	at         time.Time
}

func startSysMarathon(t *testing.T) *sysMarathon {
	t.Helper()
	m := &sysMarathon{emu: emulator.New(emulator.Options{DeployDuration: 20 * time.Millisecond})}
	h := m.emu.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if r.Method == http.MethodPut {
			body, _ = io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		m.mu.Lock()
		defer m.mu.Unlock()
		switch {
		case sw.status == http.StatusServiceUnavailable:
			m.n503++
		case sw.status == http.StatusConflict && r.Method == http.MethodPut:
			m.n409++
		}
		if r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/v2/apps/") && sw.status < 300 {
			var def struct {
				Container struct {
					Docker struct{ Image string } `json:"docker"`
				} `json:"container"`
			}
			if json.Unmarshal(body, &def) == nil && def.Container.Docker.Image != "" {
				m.puts = append(m.puts, sysPut{app: strings.TrimPrefix(r.URL.Path, "/v2/apps"), image: def.Container.Docker.Image, at: time.Now()})
			}
		}
	}))
	t.Cleanup(func() { srv.Close(); m.emu.Close() })
	m.url = srv.URL
	return m
}

func (m *sysMarathon) updates() (puts []sysPut, n503, n409 int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.puts), m.n503, m.n409
}

func (m *sysMarathon) image(id string) string {
	return (&devstack.Marathon{Emu: m.emu}).Image(id)
}

// sysStream is every message of the event stream, with when it was seen.
type sysStream struct {
	mu   sync.Mutex
	msgs []sysMsg
}

type sysMsg struct {
	ev events.Event
	at time.Time
	// key names the effect the event announces (see sysResult), decoded
	// once here rather than at every look.
	key     string
	failure bool
	// superseded: a deployment.failed that only says a newer image was
	// deployed over it (a crashed deployer's deployment, resumed late).
	superseded bool
}

func newSysMsg(e events.Event, at time.Time) sysMsg {
	m := sysMsg{ev: e, at: at}
	switch events.Type(e.Type()) {
	case events.TypeImagePushed:
		d, _ := events.DataAs[events.ImagePushed](e)
		m.key = "pushed|" + d.Environment + "|" + d.Repository + "|" + d.Tag + "|" + d.Digest
	case events.TypeImagePromoted:
		d, _ := events.DataAs[events.ImagePromoted](e)
		m.key = "promoted|" + d.Promotion + "|" + d.To.Repository + "|" + d.To.Tag + "|" + d.To.Digest
	case events.TypeDeploymentSucceeded:
		d, _ := events.DataAs[events.Deployment](e)
		m.key = "deployed|" + d.Cluster + "|" + d.AppID + "|" + d.ToImage
	case events.TypeDeploymentFailed:
		d, _ := events.DataAs[events.Deployment](e)
		m.superseded = d.Superseded
		m.failure = !m.superseded
	case events.TypePromotionFailed, events.TypeNotificationFailed, events.TypeDriftDetected:
		m.failure = true
	}
	return m
}

func followStream(t *testing.T, js jetstream.JetStream) *sysStream {
	t.Helper()
	s := &sysStream{}
	cons, err := js.OrderedConsumer(t.Context(), bus.DefaultStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.SubjectPrefix + ".>"}})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		e, err := events.FromMsg(m.Data())
		if err != nil {
			return
		}
		s.mu.Lock()
		s.msgs = append(s.msgs, newSysMsg(e, time.Now()))
		s.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	return s
}

func (s *sysStream) all() []sysMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

// sysPush is one image pushed to dev.
type sysPush struct {
	repo, tag, digest string
	at                time.Time
}

// push pushes a new image to dev (from the test's goroutine): a random
// one, or one the Docker host can run for a repository that has a
// container there.
func (s *system) push(repo string, version int) sysPush {
	s.t.Helper()
	tag := fmt.Sprintf("1.0.%d", version)
	ref := s.reg["dev"].Host + "/" + repo + ":" + tag
	if s.docker != nil && s.docker.repos[repo] {
		d := testkit.PushImage(s.t, ref, s.docker.image(repo, tag))
		return sysPush{repo: repo, tag: tag, digest: d, at: time.Now()}
	}
	img := testkit.PushRandomImage(s.t, ref)
	d, err := img.Digest()
	if err != nil {
		s.t.Fatal(err)
	}
	return sysPush{repo: repo, tag: tag, digest: d.String(), at: time.Now()}
}

// sysTally is one kind of effect: how many the pushes should cause, how
// many happened, and how many of those are missing or happened twice.
type sysTally struct {
	kind                                 string
	expected, observed, lost, duplicated int
	note                                 string
}

// sysResult compares what happened with what the pushes should have
// caused. The definitions, per kind of effect:
//
//   - image.pushed (dev, tst, prd): one per push and stage, the
//     registry's notification of the push or of the promoter's copy. Lost:
//     a (stage, repository, tag) without an event; duplicated: one with
//     events of more than one id (a second effect, not a redelivery, which
//     JetStream would drop).
//   - image.promoted (dev-to-tst, tst-to-prd): one per push and rule, and
//     the target registry has the tag at the pushed digest. Lost and
//     duplicated as above, per (rule, repository, tag).
//   - deployment: the deployer deploys the newest image an app may take
//     and ignores events for older ones, so rapid pushes of one repository
//     need not each reach every app. Expected: every app (repository ×
//     stage) ends on its repository's newest image, announced by a
//     deployment.succeeded. Lost: an app that does not. Observed: the
//     (cluster, app, image) deployments that succeeded, the newest and
//     the intermediate ones. Duplicated: a (cluster, app, image) that
//     Marathon was updated to more than once (or, on the Docker host, a
//     container recreated on the same image more than once), or announced
//     as succeeded under more than one id. A container counts as done when
//     it runs, on the newest image, with nothing of a recreate left beside
//     it. Regressions (an app updated to an older image than one it had)
//     and deployment.failed are counted apart.
//   - notification: every event of the stream, delivered to the signed
//     webhook (every event routes there). Lost: an event id never
//     delivered. Duplicated: deliveries beyond the first of an id; the
//     notifier records a delivery after the receiver accepted it, so a
//     crash in between resends it (receivers dedupe by event id).
type sysResult struct {
	tallies      []sysTally
	regressions  []string
	failed       []string // deployment.failed, promotion.failed, notification.failed, drift.detected
	superseded   int      // deployment.failed "superseded": not a failure (see sysMsg)
	streamDups   int      // event ids stored more than once
	unexpected   []string // effects no push explains
	badSignature int
	lostDetail   []string
	dupDetail    []string
	drainEnd     time.Time // when the last expected effect was seen
	drainLast    string    // and which it was
	marathon503  int
	conflicts    int // Marathon updates refused: the app was locked
	// dockerRecreates counts the containers recreated on the Docker host.
	dockerRecreates int
}

func (r sysResult) lost() int {
	n := 0
	for _, t := range r.tallies {
		n += t.lost
	}
	return n
}

// duplicatedEffects counts duplicates other than notification deliveries.
func (r sysResult) duplicatedEffects() int {
	n := 0
	for _, t := range r.tallies {
		if t.kind != "notification" {
			n += t.duplicated
		}
	}
	return n
}

func (r sysResult) tally(kind string) sysTally {
	for _, t := range r.tallies {
		if t.kind == kind {
			return t
		}
	}
	return sysTally{}
}

// sysVersion is the patch number of a 1.0.N tag in an image reference
// (-1 for anything else).
func sysVersion(image string) int {
	ref, _, _ := strings.Cut(image, "@")
	tag := ref[strings.LastIndex(ref, ":")+1:]
	var n int
	if _, err := fmt.Sscanf(tag, "1.0.%d", &n); err != nil {
		return -1
	}
	return n
}

// check compares the pushes with what the stream, the registries,
// Marathon and the webhook saw.
func (s *system) check(pushes []sysPush, withRegistries bool) sysResult {
	l := &sysLedger{byKey: map[string]*sysSeen{}, expected: map[string]bool{}, ids: map[string]int{}}
	for _, m := range s.stream.all() {
		l.ids[m.ev.ID()]++
		switch {
		case m.key != "":
			k := l.byKey[m.key]
			if k == nil {
				k = &sysSeen{ids: map[string]bool{}, at: m.at}
				l.byKey[m.key] = k
			}
			k.ids[m.ev.ID()] = true
		case m.failure:
			l.r.failed = append(l.r.failed, m.ev.Type()+" "+m.ev.Subject())
		case m.superseded:
			l.r.superseded++
		}
	}
	for id, n := range l.ids {
		if n > 1 {
			l.r.streamDups++
			l.r.dupDetail = append(l.r.dupDetail, fmt.Sprintf("event %s stored %d times", id, n))
		}
	}
	s.checkStages(l, pushes, withRegistries)
	s.checkDeployments(l, pushes)
	for key := range l.byKey {
		if !l.expected[key] && !strings.HasPrefix(key, "deployed|") {
			l.r.unexpected = append(l.r.unexpected, key)
		}
	}
	s.checkNotifications(l)
	slices.Sort(l.r.unexpected)
	return l.r
}

// sysLedger is what check found so far.
type sysLedger struct {
	r        sysResult
	byKey    map[string]*sysSeen // effect key (sysMsg.key) → the events that announced it
	expected map[string]bool     // the keys some push explains
	ids      map[string]int      // event id → how often the stream holds it
}

type sysSeen struct {
	ids map[string]bool
	at  time.Time // the first
}

// expect looks an expected effect up: 1 lost when it was not seen, and
// how many times more than once it was.
func (l *sysLedger) expect(kind, key string) (lost, dup int) {
	l.expected[key] = true
	k := l.byKey[key]
	if k == nil {
		l.r.lostDetail = append(l.r.lostDetail, kind+" "+key)
		return 1, 0
	}
	if k.at.After(l.r.drainEnd) {
		l.r.drainEnd, l.r.drainLast = k.at, kind+" "+key
	}
	if len(k.ids) > 1 {
		l.r.dupDetail = append(l.r.dupDetail, fmt.Sprintf("%s %s: %d events", kind, key, len(k.ids)))
	}
	return 0, len(k.ids) - 1
}

// checkStages: every push reached every stage's registry (image.pushed)
// and was promoted by both rules, and the registries hold the copies.
func (s *system) checkStages(l *sysLedger, pushes []sysPush, withRegistries bool) {
	for _, env := range sysEnvs {
		t := sysTally{kind: "image.pushed " + env, expected: len(pushes)}
		for _, p := range pushes {
			lost, dup := l.expect(t.kind, "pushed|"+env+"|"+p.repo+"|"+p.tag+"|"+p.digest)
			t.lost, t.duplicated = t.lost+lost, t.duplicated+dup
		}
		t.observed = t.expected - t.lost
		l.r.tallies = append(l.r.tallies, t)
	}
	for _, rule := range []string{"dev-to-tst", "tst-to-prd"} {
		t := sysTally{kind: "image.promoted " + rule, expected: len(pushes)}
		_, to, _ := strings.Cut(rule, "-to-")
		missing := 0
		for _, p := range pushes {
			lost, dup := l.expect(t.kind, "promoted|"+rule+"|"+p.repo+"|"+p.tag+"|"+p.digest)
			t.lost, t.duplicated = t.lost+lost, t.duplicated+dup
			if !withRegistries {
				continue
			}
			if dg, err := testkit.TryDigest(s.reg[to].Host + "/" + p.repo + ":" + p.tag); err != nil || dg != p.digest {
				missing++
				if lost == 0 {
					t.lost++
					l.r.lostDetail = append(l.r.lostDetail, fmt.Sprintf("%s: %s:%s not in the registry at %s (%v)", rule, p.repo, p.tag, p.digest, err))
				}
			}
		}
		t.observed = t.expected - t.lost
		if withRegistries {
			t.note = fmt.Sprintf("registry holds %d/%d at the pushed digest", len(pushes)-missing, len(pushes))
		}
		l.r.tallies = append(l.r.tallies, t)
	}
}

// checkDeployments: every app on its repository's newest image, no
// (app, image) updated twice, no app moved to an older image.
func (s *system) checkDeployments(l *sysLedger, pushes []sysPush) {
	newest := map[string]sysPush{}
	for _, p := range pushes {
		newest[p.repo] = p
	}
	dep := sysTally{kind: "deployment"}
	puts := map[*sysMarathon][]sysPut{}
	for _, m := range s.marathon {
		var n503, n409 int
		puts[m], n503, n409 = m.updates()
		l.r.marathon503 += n503
		l.r.conflicts += n409
	}
	var dockerPuts []sysPut
	if s.docker != nil {
		var err error
		dockerPuts, err = s.docker.updates()
		l.r.dockerRecreates = len(dockerPuts)
		if err != nil {
			// Duplicate recreates would go unseen.
			l.r.unexpected = append(l.r.unexpected, "the Docker engine's event stream broke: "+err.Error())
		}
	}
	for _, a := range s.apps {
		p, ok := newest[a.repo]
		if !ok {
			continue // never pushed: nothing to deploy
		}
		dep.expected++
		want := s.reg[a.env].Host + "/" + a.repo + ":" + p.tag + "@" + p.digest
		lost, _ := l.expect("deployment", "deployed|"+a.cluster+"|"+a.id+"|"+want)
		platform, updates := "Marathon", puts[a.m]
		var got string
		var trouble []string
		if a.docker != nil {
			platform, updates = "Docker", dockerPuts
			got, trouble = a.docker.state(a.id)
		} else {
			got = a.m.image(a.id)
		}
		if lost == 0 && got != want {
			lost = 1
			l.r.lostDetail = append(l.r.lostDetail, fmt.Sprintf("deployment: %s runs %s, want %s", a.id, got, want))
		}
		if lost == 0 && len(trouble) > 0 {
			// On its image but not done: stopped, or a recreate's
			// containers still beside it.
			lost = 1
			l.r.lostDetail = append(l.r.lostDetail, fmt.Sprintf("deployment: %s: %s", a.id, strings.Join(trouble, "; ")))
		}
		dep.lost += lost
		last, times := -1, map[string]int{}
		for _, u := range updates {
			if u.app != a.id {
				continue
			}
			times[u.image]++
			v := sysVersion(u.image)
			if v < last {
				l.r.regressions = append(l.r.regressions, fmt.Sprintf("%s: updated to %s after 1.0.%d", a.id, u.image, last))
			}
			last = max(last, v)
		}
		for img, n := range times {
			if n > 1 {
				dep.duplicated += n - 1
				l.r.dupDetail = append(l.r.dupDetail, fmt.Sprintf("deployment: %s updated %s to %s %d times", platform, a.id, img, n))
			}
		}
	}
	for key, k := range l.byKey {
		if !strings.HasPrefix(key, "deployed|") {
			continue
		}
		dep.observed++
		if len(k.ids) > 1 {
			dep.duplicated += len(k.ids) - 1
			if !l.expected[key] {
				l.r.dupDetail = append(l.r.dupDetail, fmt.Sprintf("deployment %s: %d events", key, len(k.ids)))
			}
		}
	}
	dep.note = fmt.Sprintf("%d newest + %d intermediate", dep.expected-dep.lost, dep.observed-(dep.expected-dep.lost))
	l.r.tallies = append(l.r.tallies, dep)
}

// checkNotifications: every stored event at the webhook.
func (s *system) checkNotifications(l *sysLedger) {
	got, first, bad := s.hook.deliveries()
	l.r.badSignature = bad
	n := sysTally{kind: "notification", expected: len(l.ids)}
	for id := range l.ids {
		c := got[id]
		if c == 0 {
			n.lost++
			if n.lost <= 5 {
				l.r.lostDetail = append(l.r.lostDetail, "notification of "+id)
			}
			continue
		}
		n.observed++
		n.duplicated += c - 1
		if at := first[id]; at.After(l.r.drainEnd) {
			l.r.drainEnd, l.r.drainLast = at, "notification of "+id
		}
	}
	for id := range got {
		if l.ids[id] == 0 {
			l.r.unexpected = append(l.r.unexpected, "webhook got "+id+", which is not in the stream")
		}
	}
	l.r.tallies = append(l.r.tallies, n)
}

// settle waits until nothing is missing and no consumer has work left
// (so no redelivery can still add a duplicate), or until the deadline, and
// returns the final comparison and whether it settled. With every > 0 it
// logs what is still missing that often.
func (s *system) settle(pushes []sysPush, deadline, every time.Duration) (sysResult, bool) {
	s.t.Helper()
	ctx := s.t.Context()
	timeout := time.After(deadline)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	logged := time.Now()
	var idle time.Time // since when every consumer has been idle with the same effects missing
	lastLost := -1
	for {
		r := s.check(pushes, false)
		quiet := s.quiet(ctx)
		switch {
		case !quiet || r.lost() != lastLost:
			idle = time.Time{}
		case idle.IsZero():
			idle = time.Now()
		case time.Since(idle) >= sysStuckAfter:
			// Nothing is pending or waiting for a retry, and nothing has
			// changed for a while: what is missing will not come.
			return s.check(pushes, true), false
		}
		lastLost = r.lost()
		if r.lost() == 0 && quiet {
			// Quiet twice in a row, a moment apart: an event published
			// between the two looks would show up in the second.
			<-tick.C
			if s.quiet(ctx) {
				if r2 := s.check(pushes, true); r2.lost() == 0 {
					return r2, true
				}
			}
		}
		if every > 0 && time.Since(logged) >= every {
			var missing []string
			for _, x := range r.tallies {
				if x.lost > 0 {
					missing = append(missing, fmt.Sprintf("%s %d", x.kind, x.lost))
				}
			}
			s.t.Logf("settling: missing %v, consumers idle: %v", missing, quiet)
			logged = time.Now()
		}
		select {
		case <-tick.C:
		case <-timeout:
			return s.check(pushes, true), false
		}
	}
}

// sysStuckAfter is how long settle waits, once every consumer is idle,
// for effects that are still missing: longer than a deployer lease (30s)
// and a busy retry (5s), after which an event blocked by a lease is
// delivered again.
const sysStuckAfter = time.Minute

// spread is the work each instance of a service did.
func (s *system) spread() map[string][]float64 {
	out := map[string][]float64{}
	for _, in := range s.inst {
		out[in.kind] = append(out[in.kind], in.workDone())
	}
	return out
}

// report logs the comparison and reports what is wrong. Duplicate
// notification deliveries fail only when allowDupDeliveries is false.
func (s *system) report(t *testing.T, r sysResult, allowDupDeliveries bool) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%-26s %9s %9s %6s %11s  %s\n", "effect", "expected", "observed", "lost", "duplicated", "")
	for _, x := range r.tallies {
		fmt.Fprintf(&b, "%-26s %9d %9d %6d %11d  %s\n", x.kind, x.expected, x.observed, x.lost, x.duplicated, x.note)
	}
	fmt.Fprintf(&b, "regressions (an app updated to an older image): %d; updates Marathon refused as locked: %d\n", len(r.regressions), r.conflicts)
	if s.docker != nil {
		fmt.Fprintf(&b, "Docker host: %d containers (%s), recreated %d times\n", len(s.docker.repos), sysDockerCluster, r.dockerRecreates)
	}
	fmt.Fprintf(&b, "failure events (deployment/promotion/notification failed, drift): %d; deployments superseded by a newer one: %d\n", len(r.failed), r.superseded)
	fmt.Fprintf(&b, "event ids stored twice: %d; effects no push explains: %d; webhook signature failures: %d\n", r.streamDups, len(r.unexpected), r.badSignature)
	dl, why := s.deadLetters(t.Context())
	fmt.Fprintf(&b, "dead letters: %d\n", dl)
	for _, w := range why {
		fmt.Fprintf(&b, "  %s\n", w)
	}
	for _, kind := range sysServices {
		fmt.Fprintf(&b, "work per %s instance: %v\n", kind, s.spread()[kind])
	}
	t.Log("\n" + b.String())

	for _, d := range r.lostDetail[:min(len(r.lostDetail), 20)] {
		t.Errorf("lost: %s", d)
	}
	for _, d := range r.dupDetail[:min(len(r.dupDetail), 20)] {
		t.Errorf("duplicated: %s", d)
	}
	if n := r.tally("notification").duplicated; n > 0 && !allowDupDeliveries {
		t.Errorf("%d duplicate notification deliveries", n)
	}
	for _, x := range r.regressions[:min(len(r.regressions), 20)] {
		t.Errorf("regression: %s", x)
	}
	for _, x := range r.failed[:min(len(r.failed), 20)] {
		t.Errorf("failure event: %s", x)
	}
	for _, x := range r.unexpected[:min(len(r.unexpected), 20)] {
		t.Errorf("unexpected: %s", x)
	}
	if r.streamDups > 0 || r.badSignature > 0 || dl > 0 {
		t.Errorf("%d event ids stored twice, %d bad signatures, %d dead letters", r.streamDups, r.badSignature, dl)
	}
}
