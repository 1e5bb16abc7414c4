package console

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// browserGet asks path as user with accept (a browser's Accept header, or
// a script's).
func browserGet(t *testing.T, r *consoleRig, user, path, accept string) (*http.Response, string) {
	t.Helper()
	res := r.get(t, user, path, "Accept", accept)
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

func TestABrowserGetsErrorsAsPagesAndTheAPIAsJSON(t *testing.T) {
	r := newConsoleRig(t, testConfig())
	r.pending(t, "p1", "prd")

	for _, tc := range []struct {
		name, user, path string
		status           int
		message          string
	}{
		{"an unknown page", "dev", "/nope%3Cb%3E", http.StatusNotFound, "There is no page at /nope&lt;b&gt;."},
		{"an unknown image", "dev", "/images/" + digestOf(99), http.StatusNotFound, "no image " + digestOf(99) + " in the environments you may view"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, page := browserGet(t, r, tc.user, tc.path, browserAccept)
			if res.StatusCode != tc.status || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
				t.Fatalf("%s: %s %s; want %d as HTML", tc.path, res.Status, res.Header.Get("Content-Type"), tc.status)
			}
			for _, want := range []string{tc.message, `<a href="/">Back to the release matrix</a>`, `<a href="/approvals">Approvals</a>`} {
				if !strings.Contains(page, want) {
					t.Errorf("the page lacks %s:\n%s", want, page)
				}
			}
			if strings.Contains(page, "<b>") {
				t.Error("the path is not escaped on the page")
			}
			if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
				t.Errorf("the error page's CSP %q", csp)
			}
		})
	}

	t.Run("a refused form post", func(t *testing.T) {
		form := url.Values{"ids": {"p1"}, "decision": {"approve"}, "csrf": {r.csrf(t, "dev")}}
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, r.http.URL+"/approvals/decide", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", browserAccept)
		req.Header.Set("X-Test-User", "dev")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "p1: you may not decide approvals into prd") ||
			!strings.Contains(string(b), "Back to the release matrix") {
			t.Errorf("a dev-only user's prd decision: %s\n%s; want 403 as a page", res.Status, b)
		}
	})

	for _, tc := range []struct{ name, path, accept string }{
		{"an API path, even from a browser", "/api/images/" + digestOf(99), browserAccept},
		{"a script asking for JSON", "/nope", "application/json"},
		{"a client that asks for nothing", "/nope", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := browserGet(t, r, "dev", tc.path, tc.accept)
			var v struct{ Message string }
			if res.StatusCode != http.StatusNotFound || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") ||
				json.Unmarshal([]byte(body), &v) != nil || v.Message == "" {
				t.Errorf("%s: %s %s\n%s; want 404 as JSON with a message", tc.path, res.Status, res.Header.Get("Content-Type"), body)
			}
		})
	}
}
