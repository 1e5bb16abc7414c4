package auth_test

import (
	"net/http"
	"strings"
	"testing"
)

func TestStateChangeNeedsThisSessionsCSRFToken(t *testing.T) {
	r := newRig(t, rigOptions{})
	ab, bb := r.browser(t), r.browser(t)
	a := r.loggedIn(t, ab, alice)
	b := r.loggedIn(t, bb, bob)

	// The session's own token, as a form field or as the header scripts use.
	if resp := r.post(t, ab, "/change", a.CSRF, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST with the session's token: %d", resp.StatusCode)
	}
	if resp := r.post(t, ab, "/change", "", map[string]string{"X-CSRF-Token": a.CSRF}); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST with the session's token in X-CSRF-Token: %d", resp.StatusCode)
	}
	const forged = "Zm9yZ2VkLXRva2VuLXRoYXQtbG9va3MtcmlnaHQtMTIzNDU2"
	refused := []struct {
		name   string
		csrf   string
		header map[string]string
	}{
		{"no token", "", nil},
		{"made-up token", forged, nil},
		{"made-up token in the header", "", map[string]string{"X-CSRF-Token": forged}},
		{"another session's token", b.CSRF, nil},
		{"the session's token, prefix only", a.CSRF[:20], nil},
		{"the session's token from another site", a.CSRF, map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}},
	}
	for _, tc := range refused {
		resp := r.post(t, ab, "/change", tc.csrf, tc.header)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", tc.name, resp.StatusCode)
		}
	}
	if n := r.changes.Load(); n != 2 {
		t.Fatalf("%d changes went through, want the 2 with the session's token", n)
	}
	logs := r.logs.String()
	if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "CSRF token refused") || !strings.Contains(logs, "cross-origin request refused") {
		t.Fatalf("refusals not logged at WARN:\n%s", logs)
	}
	for _, token := range []string{a.CSRF, b.CSRF, forged} {
		if strings.Contains(logs, token) {
			t.Fatal("a CSRF token is in the log")
		}
	}
}

func TestCSRFTokenOfALoggedOutSessionIsRefused(t *testing.T) {
	r := newRig(t, rigOptions{})
	b := r.browser(t)
	old := r.loggedIn(t, b, alice)
	oldCookie := r.cookie(b, "slipway-session")
	if resp := r.post(t, b, "/auth/logout", old.CSRF, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}

	// The logged-out session's cookie and token together: no session.
	replay := r.browser(t)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, r.url+"/change", strings.NewReader("csrf="+old.CSRF))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "slipway-session", Value: oldCookie})
	resp, err := noFollow(replay).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("replay of a logged-out session: %d, want 401", resp.StatusCode)
	}

	// Logged in again, the old token is not the new session's.
	now := r.loggedIn(t, b, alice)
	if now.CSRF == old.CSRF {
		t.Fatal("a new session has the old session's CSRF token")
	}
	if resp := r.post(t, b, "/change", old.CSRF, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("the logged-out session's token on the new session: %d, want 403", resp.StatusCode)
	}
	if n := r.changes.Load(); n != 0 {
		t.Fatalf("%d changes went through with a logged-out session's token", n)
	}
	if resp := r.post(t, b, "/change", now.CSRF, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("the new session's token: %d", resp.StatusCode)
	}
}
