package digests_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer/digests"
)

// counting puts a counter in front of a handler.
func counting(t *testing.T, h http.Handler) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

type clock struct{ now atomic.Pointer[time.Time] }

func (c *clock) Now() time.Time      { return *c.now.Load() }
func (c *clock) add(d time.Duration) { t := c.Now().Add(d); c.now.Store(&t) }

func TestATagOfAConfiguredRegistryIsResolvedWithItsCredentialsAndCached(t *testing.T) {
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{Username: "deployer", Password: "s3cret"})
	testkit.PushRandomImage(t, reg.Host+"/apps/web:1.0.0")
	want := testkit.Digest(t, reg.Host+"/apps/web:1.0.0")
	u, _ := url.Parse(reg.URL)
	front, asked := counting(t, httputil.NewSingleHostReverseProxy(u))
	host := strings.TrimPrefix(front.URL, "http://")
	alias := strings.Replace(host, "127.0.0.1", "localhost", 1)

	var c clock
	start := time.Now()
	c.now.Store(&start)
	r := digests.New([]config.Environment{{Name: "prd", Registry: config.Registry{
		Host: host, Aliases: []string{alias}, Insecure: true, Username: "deployer", Password: "s3cret",
	}}}, digests.Options{TTL: time.Minute, Now: c.Now})

	got := r.Resolve(t.Context(), host+"/apps/web:1.0.0")
	if got.Digest != want {
		t.Fatalf("resolved %+v, want %s", got, want)
	}
	first := asked.Load()
	if again := r.Resolve(t.Context(), host+"/apps/web:1.0.0"); again.Digest != want || asked.Load() != first {
		t.Errorf("second lookup within the TTL: %+v after %d requests (was %d); want the cached answer", again, asked.Load(), first)
	}
	c.add(2 * time.Minute)
	if later := r.Resolve(t.Context(), host+"/apps/web:1.0.0"); later.Digest != want || asked.Load() == first {
		t.Errorf("lookup past the TTL: %+v, %d requests (was %d); want the registry asked again", later, asked.Load(), first)
	}
	// An alias is the same registry: asked, with the same credentials.
	if viaAlias := r.Resolve(t.Context(), alias+"/apps/web:1.0.0"); viaAlias.Digest != want {
		t.Errorf("through the alias: %+v, want %s", viaAlias, want)
	}
	if missing := r.Resolve(t.Context(), host+"/apps/web:9.9.9"); missing.Digest != "" || missing.Reason == "" || strings.Contains(missing.Reason, "s3cret") {
		t.Errorf("an unknown tag: %+v, want no digest and a reason without the password", missing)
	}
}

func TestAnImageOfAnUnconfiguredRegistryIsNeverLookedUp(t *testing.T) {
	spy, asked := counting(t, http.NotFoundHandler())
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	r := digests.New([]config.Environment{{Name: "prd", Registry: config.Registry{Host: reg.Host, Insecure: true}}}, digests.Options{})
	spyHost := strings.TrimPrefix(spy.URL, "http://")
	for _, img := range []string{spyHost + "/apps/web:1.0.0", spyHost + "/apps/web", "nginx:1.27"} {
		got := r.Resolve(t.Context(), img)
		if got.Digest != "" || !strings.Contains(got.Reason, "not a configured") {
			t.Errorf("%s: %+v, want no digest and the reason", img, got)
		}
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("the unconfigured registry got %d requests, want 0", n)
	}
}

func TestAPinnedDigestIsTakenFromTheReference(t *testing.T) {
	spy, asked := counting(t, http.NotFoundHandler())
	host := strings.TrimPrefix(spy.URL, "http://")
	r := digests.New([]config.Environment{{Name: "prd", Registry: config.Registry{Host: host}}}, digests.Options{})
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if got := r.Resolve(t.Context(), host+"/apps/web:1.0.0@"+d); got.Digest != d {
		t.Errorf("resolved %+v, want %s", got, d)
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("%d requests for a pinned reference, want 0", n)
	}
}

func TestTheCacheKeepsAtMostMaxSizeAnswers(t *testing.T) {
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	r := digests.New([]config.Environment{{Name: "prd", Registry: config.Registry{Host: reg.Host, Insecure: true}}}, digests.Options{MaxSize: 2})
	for _, tag := range []string{"1", "2", "3", "4"} {
		testkit.PushRandomImage(t, reg.Host+"/apps/web:"+tag)
		if got := r.Resolve(t.Context(), reg.Host+"/apps/web:"+tag); got.Digest == "" {
			t.Fatalf("tag %s: %+v", tag, got)
		}
	}
	if n := r.Len(); n != 2 {
		t.Errorf("the cache holds %d answers, want 2", n)
	}
}

// A configured registry that does not answer costs one timeout, not one
// per tag: after a lookup that got no answer, the resolver does not ask
// that host again for a while (the reconcile pass that reads 5,000
// workloads would otherwise wait the timeout once per tag).
func TestARegistryThatDoesNotAnswerIsNotAskedForEveryTag(t *testing.T) {
	var conns atomic.Int64
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conns.Add(1)
		select { // a registry that accepts and never answers
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	var c clock
	start := time.Now()
	c.now.Store(&start)
	r := digests.New([]config.Environment{{Name: "prd", Registry: config.Registry{Host: host, Insecure: true}}},
		digests.Options{Timeout: 200 * time.Millisecond, Now: c.Now})

	first := r.Resolve(t.Context(), host+"/apps/web:1.0.0")
	if first.Digest != "" || first.Reason == "" {
		t.Fatalf("first lookup: %+v, want no digest and a reason", first)
	}
	asked := conns.Load()
	for _, tag := range []string{"1.0.1", "1.0.2", "1.0.3"} {
		res := r.Resolve(t.Context(), host+"/apps/web:"+tag)
		if res.Digest != "" || !strings.Contains(res.Reason, "did not answer") {
			t.Errorf("%s: %+v, want a reason saying the registry did not answer", tag, res)
		}
	}
	if n := conns.Load(); n != asked {
		t.Errorf("the silent registry got %d more requests for the other tags, want none", n-asked)
	}
	c.add(digests.DefaultDownFor + time.Second)
	r.Resolve(t.Context(), host+"/apps/web:1.0.4")
	if conns.Load() == asked {
		t.Error("after the pause the registry was not asked again")
	}
}
