package auth

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"testing"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

func TestEqual(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"", "", true},
		{"secret", "secret", true},
		{"secret", "Secret", false},
		{"secret", "secre", false},
		{"secret", "secret\x00", false},
		{"", "x", false},
	} {
		if got := equal([]byte(c.a), []byte(c.b)); got != c.want {
			t.Errorf("equal(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

// TestEveryCheckIsConstantTime proves, in code rather than by timing, that
// every mechanism decides through subtle.ConstantTimeCompare, and always on
// two inputs of the same fixed length (SHA-256 digests), so that a wrong
// secret of any length or content takes the same path: no ==, no
// bytes.Equal, no early return on length. A mechanism that compared a secret
// another way would accept or reject here without a recorded call.
//
// Not parallel: it swaps a package variable.
func TestEveryCheckIsConstantTime(t *testing.T) {
	var calls [][2]int
	orig := constantTimeCompare
	constantTimeCompare = func(x, y []byte) int {
		calls = append(calls, [2]int{len(x), len(y)})
		return orig(x, y) // the real thing decides: this only watches
	}
	defer func() { constantTimeCompare = orig }()

	good := sign(sha256.New, "k", body)
	for _, c := range []struct {
		name  string
		auth  *config.Auth
		req   Request
		calls int
	}{
		{"header right", &config.Auth{Header: &config.HeaderAuth{Name: "X-T", Value: "secret"}}, Request{Header: hdr("X-T", "secret")}, 1},
		{"header short", &config.Auth{Header: &config.HeaderAuth{Name: "X-T", Value: "secret"}}, Request{Header: hdr("X-T", "s")}, 1},
		{"header long", &config.Auth{Header: &config.HeaderAuth{Name: "X-T", Value: "secret"}}, Request{Header: hdr("X-T", "secret-and-a-lot-more")}, 1},
		{"hmac right", &config.Auth{HMAC: &config.HMACAuth{Header: "X-S", Secret: "k"}}, Request{Header: hdr("X-S", good)}, 1},
		{"hmac truncated", &config.Auth{HMAC: &config.HMACAuth{Header: "X-S", Secret: "k"}}, Request{Header: hdr("X-S", good[:8])}, 1},
		{"basic right", &config.Auth{Basic: &config.BasicAuth{Username: "u", Password: "p"}}, Request{Header: hdr("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("u:p")))}, 2},
		// A wrong username still compares the password too.
		{"basic wrong user", &config.Auth{Basic: &config.BasicAuth{Username: "u", Password: "p"}}, Request{Header: hdr("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("x:p")))}, 2},
		{"urlToken right", &config.Auth{URLToken: "tok"}, Request{HasToken: true, Token: "tok"}, 1},
		{"urlToken short", &config.Auth{URLToken: "tok"}, Request{HasToken: true, Token: "t"}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			calls = nil
			a, err := New(c.auth)
			if err != nil {
				t.Fatal(err)
			}
			if c.req.Body == nil {
				c.req.Body = body
			}
			if c.req.Header == nil {
				c.req.Header = http.Header{}
			}
			_ = a.Authenticate(c.req)
			if len(calls) != c.calls {
				t.Fatalf("%d constant-time compares, want %d", len(calls), c.calls)
			}
			for _, l := range calls {
				if l != [2]int{sha256.Size, sha256.Size} {
					t.Fatalf("compared inputs of lengths %v, want both %d", l, sha256.Size)
				}
			}
		})
	}
}

// TestMatch: every secret is compared, through constantTimeCompare with
// digests, whether or where one matches.
//
// Not parallel: it swaps a package variable.
func TestMatch(t *testing.T) {
	var calls [][2]int
	orig := constantTimeCompare
	constantTimeCompare = func(x, y []byte) int {
		calls = append(calls, [2]int{len(x), len(y)})
		return orig(x, y)
	}
	defer func() { constantTimeCompare = orig }()

	secrets := []string{"alpha", "beta", "gamma", "beta"}
	for _, c := range []struct {
		presented string
		want      int
	}{{"alpha", 0}, {"beta", 1}, {"gamma", 2}, {"delta", -1}, {"", -1}, {"alph", -1}, {"alpha\x00", -1}} {
		calls = nil
		if got := Match(c.presented, secrets); got != c.want {
			t.Errorf("Match(%q) = %d, want %d", c.presented, got, c.want)
		}
		if len(calls) != len(secrets) {
			t.Errorf("Match(%q) compared %d times, want %d (no early exit)", c.presented, len(calls), len(secrets))
		}
		for _, l := range calls {
			if l != [2]int{sha256.Size, sha256.Size} {
				t.Errorf("Match(%q) compared inputs of lengths %v, want digests", c.presented, l)
			}
		}
	}
	if got := Match("x", nil); got != -1 {
		t.Errorf("no secrets: %d", got)
	}
}
