package auth_test

import (
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/slipway-cd/slipway/pkg/testkit"
)

func TestConsoleStartedBeforeItsProviderIsNotReadyUntilItDiscoversIt(t *testing.T) {
	// The way to the provider is down until the test opens it.
	var open atomic.Bool
	client := &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if !open.Load() {
			return nil, errors.New("dial tcp: connection refused")
		}
		return http.DefaultTransport.RoundTrip(req)
	})}
	r := newRig(t, rigOptions{client: client})

	code, failed := testkit.Readyz(t, r.url+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(failed["oidc"], "not discovered yet") || !strings.Contains(failed["oidc"], "connection refused") {
		t.Fatalf("/readyz before the provider answers: %d %v", code, failed)
	}
	login := r.get(t, noFollow(r.browser(t)), "/auth/login", map[string]string{"Accept": "text/html"})
	text := body(t, login)
	login.Body.Close()
	if login.StatusCode != http.StatusServiceUnavailable || !strings.Contains(text, "cannot reach its identity provider") {
		t.Fatalf("/auth/login before the provider answers: %d %s", login.StatusCode, text)
	}

	open.Store(true)
	testkit.WaitReady(t, r.url+"/readyz", nil)
	if m := r.loggedIn(t, r.browser(t), alice); m.User != alice.Email {
		t.Fatalf("logged in as %q once the provider answers", m.User)
	}
	if !strings.Contains(r.logs.String(), "identity provider not reachable yet; retrying") {
		t.Fatal("the console did not say it was waiting for its provider")
	}
}
