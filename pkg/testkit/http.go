package testkit

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FreeAddr returns a loopback address with a port that was free a moment
// ago, for a process under test that must be told where to listen.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// WaitReady polls url (a /readyz) until it answers 200, for at most a
// minute; it gives up at once when stopped is closed (the process under
// test ended). stopped may be nil.
func WaitReady(t testing.TB, url string, stopped <-chan struct{}) {
	t.Helper()
	deadline := time.After(time.Minute)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-stopped:
			t.Fatalf("the process under test stopped before %s was ready", url)
		case <-deadline:
			t.Fatalf("%s not ready within a minute", url)
		case <-tick.C:
		}
	}
}

// WaitFor polls cond until it holds, for at most a minute, and fails the
// test naming what it waited for. Tests wait on conditions, never sleep.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(time.Minute)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("no %s within a minute", what)
		case <-tick.C:
		}
	}
}

// Readyz gets url (a /readyz) once and returns its status and the failed
// checks it names, by check.
func Readyz(t testing.TB, url string) (int, map[string]string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Failed map[string]string `json:"failed"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return resp.StatusCode, body.Failed
}

// PutJSON sends a PUT with a JSON body, as an operator's tool would (a
// change to a Marathon app by hand, say), and fails the test unless it
// succeeds.
func PutJSON(t testing.TB, url, body string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("PUT %s: %d %s", url, resp.StatusCode, b)
	}
}
