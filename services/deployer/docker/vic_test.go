package docker

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/docker/docker/api/types/container"

	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer/target"
)

// vicServes are the requests a VIC Virtual Container Host answers that a
// recreate, a rollback and the watch may need, at API 1.25. Anything
// else (update, pause, exec, commit, build, prune, …) is "not supported"
// there.
var vicServes = regexp.MustCompile(`^(GET /v1\.25/(_ping|version|info|events|containers/json|containers/[^/]+/(json|logs)|images/.+/json)` +
	`|POST /v1\.25/(containers/create|containers/[^/]+/(start|stop|restart|rename)|images/create|networks/[^/]+/connect)` +
	`|DELETE /v1\.25/containers/[^/]+)$`)

// recordingProxy forwards to the engine's unix socket and records every
// request's method and path.
type recordingProxy struct {
	mu       sync.Mutex
	requests []string
}

func (p *recordingProxy) serve(t *testing.T, engine string) *httptest.Server {
	sock, ok := strings.CutPrefix(engine, "unix://")
	if !ok {
		t.Skipf("the recording proxy forwards to a unix socket; DOCKER_HOST is %s", engine)
	}
	var d net.Dialer
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = "http", "docker"
		},
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", sock)
		}},
		FlushInterval: -1, // the event stream
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.requests = append(p.requests, r.Method+" "+r.URL.Path)
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func (p *recordingProxy) recorded() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.requests...)
}

func TestAVICEndpointIsSpokenTo1_25WithOnlyTheCallsItServes(t *testing.T) {
	f := newFixture(t)
	var proxy recordingProxy
	srv := proxy.serve(t, f.host)
	cl := f.cluster()
	cl.Docker.Host, cl.Docker.APIVersion = "tcp://"+srv.Listener.Addr().String(), "1.25"
	tg, err := open(cl, target.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })

	wctx, stop := context.WithCancel(t.Context())
	changes := make(chan target.Change, 256)
	watched := make(chan struct{})
	go func() { defer close(watched); tg.Watch(wctx, changes) }()
	t.Cleanup(func() { stop(); <-watched })
	if c := <-changes; !c.Resync {
		t.Fatalf("Watch sent %+v first, want Resync", c)
	}

	good1, good2 := f.image("1", testkit.BusyboxOptions{}), f.image("2", testkit.BusyboxOptions{})
	broken := f.image("exits", testkit.BusyboxOptions{Entrypoint: []string{"sh", "-c", "exit 4"}})
	cfg, hc := f.userContainer(good1, f.healthcheck("/"))
	hc.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyDisabled}
	f.run(good1, cfg, hc)

	if _, o := f.deploy(tg, good2); !o.Success {
		t.Fatalf("update to a good image: %+v", o)
	}
	before := f.inspect(f.name)
	r, o := f.deploy(tg, broken)
	if o.Success || !strings.Contains(o.Reason, "exit code 4") {
		t.Fatalf("update to a broken image: %+v", o)
	}
	rb, err := tg.RollBack(t.Context(), f.name, r.ID, good2)
	if err != nil {
		t.Fatal(err)
	}
	if o := f.await(tg, rb.ID); !o.Success {
		t.Fatalf("rollback: %+v", o)
	}
	sameContainer(t, before, f.inspect(f.name))
	if _, err := tg.List(t.Context()); err != nil {
		t.Fatal(err)
	}

	reqs := proxy.recorded()
	if len(reqs) == 0 {
		t.Fatal("no request went through the proxy")
	}
	seen := map[string]bool{}
	for _, r := range reqs {
		if !vicServes.MatchString(r) && !seen[r] {
			t.Errorf("%s: not a 1.25 call a VIC endpoint serves", r)
		}
		seen[r] = true
	}
	// The recreate and the watch went through the proxy, not around it.
	for _, want := range []string{"GET /v1.25/events", "POST /v1.25/containers/create", "POST /v1.25/images/create"} {
		if !seen[want] {
			t.Errorf("no %s among %d requests", want, len(reqs))
		}
	}
}
