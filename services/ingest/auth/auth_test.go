package auth

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

var body = []byte(`{"events":[{"id":"1"}]}`)

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func sign(newH func() hash.Hash, secret string, b []byte) string {
	m := hmac.New(newH, []byte(secret))
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil))
}

func basic(u, p string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p))
}

type authCase struct {
	name string
	req  Request
	ok   bool
}

func run(t *testing.T, a *config.Auth, cases []authCase) {
	t.Helper()
	au, err := New(a)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.req.Body == nil {
				c.req.Body = body
			}
			if c.req.Header == nil {
				c.req.Header = http.Header{}
			}
			err := au.Authenticate(c.req)
			if c.ok && err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if !c.ok {
				if err == nil {
					t.Fatal("accepted")
				}
				if !errors.Is(err, ErrUnauthorized) {
					t.Fatalf("error %v does not wrap ErrUnauthorized", err)
				}
			}
		})
	}
}

func TestNone(t *testing.T) {
	run(t, &config.Auth{None: true}, []authCase{
		{name: "anything", ok: true},
		{name: "token on a tokenless source", req: Request{HasToken: true, Token: "x"}},
	})
}

func TestHeader(t *testing.T) {
	run(t, &config.Auth{Header: &config.HeaderAuth{Name: "authorization", Value: "Bearer s3cret"}}, []authCase{
		{name: "right", req: Request{Header: hdr("Authorization", "Bearer s3cret")}, ok: true},
		{name: "wrong", req: Request{Header: hdr("Authorization", "Bearer s3creT")}},
		{name: "prefix of the secret", req: Request{Header: hdr("Authorization", "Bearer s3cre")}},
		{name: "longer", req: Request{Header: hdr("Authorization", "Bearer s3cret2")}},
		{name: "missing", req: Request{}},
		{name: "empty", req: Request{Header: hdr("Authorization", "")}},
		{name: "twice", req: Request{Header: hdr("Authorization", "Bearer s3cret", "Authorization", "Bearer s3cret")}},
		{name: "token in URL", req: Request{Header: hdr("Authorization", "Bearer s3cret"), HasToken: true, Token: "Bearer s3cret"}},
	})
}

func TestHMAC(t *testing.T) {
	good := sign(sha256.New, "k3y", body)
	run(t, &config.Auth{HMAC: &config.HMACAuth{Header: "X-Hub-Signature-256", Prefix: "sha256=", Secret: "k3y"}}, []authCase{
		{name: "right", req: Request{Header: hdr("X-Hub-Signature-256", "sha256="+good)}, ok: true},
		{name: "right upper-case hex", req: Request{Header: hdr("X-Hub-Signature-256", "sha256="+strings.ToUpper(good))}, ok: true},
		{name: "wrong secret", req: Request{Header: hdr("X-Hub-Signature-256", "sha256="+sign(sha256.New, "other", body))}},
		{name: "other body", req: Request{Header: hdr("X-Hub-Signature-256", "sha256="+good), Body: []byte(`{"events":[]}`)}},
		{name: "missing prefix", req: Request{Header: hdr("X-Hub-Signature-256", good)}},
		{name: "not hex", req: Request{Header: hdr("X-Hub-Signature-256", "sha256=zz"+good[2:])}},
		{name: "odd length", req: Request{Header: hdr("X-Hub-Signature-256", "sha256="+good[1:])}},
		{name: "truncated", req: Request{Header: hdr("X-Hub-Signature-256", "sha256="+good[:32])}},
		{name: "missing", req: Request{}},
		{name: "token in URL", req: Request{Header: hdr("X-Hub-Signature-256", "sha256="+good), HasToken: true, Token: "t"}},
	})
}

func TestHMACAlgorithms(t *testing.T) {
	for alg, newH := range map[string]func() hash.Hash{"sha1": sha1.New, "sha256": sha256.New, "sha512": sha512.New, "": sha256.New} {
		t.Run("alg="+alg, func(t *testing.T) {
			// No prefix configured: the header is the bare hex (Artifactory, Nexus).
			run(t, &config.Auth{HMAC: &config.HMACAuth{Header: "X-Sig", Algorithm: alg, Secret: "k"}}, []authCase{
				{name: "right", req: Request{Header: hdr("X-Sig", sign(newH, "k", body))}, ok: true},
				{name: "other algorithm", req: Request{Header: hdr("X-Sig", sign(md5ish(newH), "k", body))}},
				{name: "with a prefix", req: Request{Header: hdr("X-Sig", "sha256="+sign(newH, "k", body))}},
			})
		})
	}
}

// md5ish returns an algorithm other than newH, to sign with the wrong one.
func md5ish(newH func() hash.Hash) func() hash.Hash {
	if newH().Size() == sha512.Size {
		return sha256.New
	}
	return sha512.New
}

func TestBasic(t *testing.T) {
	run(t, &config.Auth{Basic: &config.BasicAuth{Username: "registry", Password: "pw"}}, []authCase{
		{name: "right", req: Request{Header: hdr("Authorization", basic("registry", "pw"))}, ok: true},
		{name: "wrong password", req: Request{Header: hdr("Authorization", basic("registry", "pW"))}},
		{name: "wrong user", req: Request{Header: hdr("Authorization", basic("Registry", "pw"))}},
		{name: "missing", req: Request{}},
		{name: "not basic", req: Request{Header: hdr("Authorization", "Bearer pw")}},
		{name: "bad base64", req: Request{Header: hdr("Authorization", "Basic !!!")}},
		{name: "no colon", req: Request{Header: hdr("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("registrypw")))}},
		{name: "token in URL", req: Request{Header: hdr("Authorization", basic("registry", "pw")), HasToken: true, Token: "pw"}},
	})
}

func TestURLToken(t *testing.T) {
	run(t, &config.Auth{URLToken: "t0ken"}, []authCase{
		{name: "right", req: Request{HasToken: true, Token: "t0ken"}, ok: true},
		{name: "wrong", req: Request{HasToken: true, Token: "t0keN"}},
		{name: "prefix", req: Request{HasToken: true, Token: "t0ke"}},
		{name: "empty", req: Request{HasToken: true, Token: ""}},
		{name: "missing (plain /webhooks/{source})", req: Request{}},
		{name: "in a header instead", req: Request{Header: hdr("Authorization", "t0ken")}},
	})
}

func TestSecretFromFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(f, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, &config.Auth{URLTokenFile: f}, []authCase{
		{name: "right", req: Request{HasToken: true, Token: "from-file"}, ok: true},
		{name: "with newline", req: Request{HasToken: true, Token: "from-file\n"}},
	})
}

func TestNewRejects(t *testing.T) {
	cases := map[string]struct {
		auth *config.Auth
		want string
	}{
		"nil":             {nil, "auth is required; use {none: true} to accept unauthenticated webhooks"},
		"empty":           {&config.Auth{}, "exactly one of none, header, hmac, basic, urlToken must be set (got none of them)"},
		"two":             {&config.Auth{None: true, URLToken: "x"}, "(got none, urlToken)"},
		"header no name":  {&config.Auth{Header: &config.HeaderAuth{Value: "v"}}, "header.name is empty"},
		"header no value": {&config.Auth{Header: &config.HeaderAuth{Name: "X"}}, "header.value is empty"},
		"hmac no header":  {&config.Auth{HMAC: &config.HMACAuth{Secret: "s"}}, "hmac.header is empty"},
		"hmac bad alg":    {&config.Auth{HMAC: &config.HMACAuth{Header: "X", Algorithm: "md5", Secret: "s"}}, `hmac.algorithm "md5" is not one of`},
		"hmac no secret":  {&config.Auth{HMAC: &config.HMACAuth{Header: "X"}}, "hmac.secret is empty"},
		"basic no user":   {&config.Auth{Basic: &config.BasicAuth{Password: "p"}}, "basic.username is empty"},
		"basic no pw":     {&config.Auth{Basic: &config.BasicAuth{Username: "u"}}, "basic.password is empty"},
		"token file":      {&config.Auth{URLTokenFile: "/nonexistent/token"}, "urlTokenFile: open /nonexistent/token"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := New(c.auth)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
	if _, err := New(nil); !errors.Is(err, ErrRequired) {
		t.Fatalf("New(nil) = %v, want ErrRequired", err)
	}
}

// TestNeedsBody: only the HMAC reads the body; the others are asked before
// it is read, so a delivery without credentials costs no read.
func TestNeedsBody(t *testing.T) {
	for _, c := range []struct {
		auth *config.Auth
		want bool
	}{
		{&config.Auth{None: true}, false},
		{&config.Auth{Header: &config.HeaderAuth{Name: "X", Value: "v"}}, false},
		{&config.Auth{Basic: &config.BasicAuth{Username: "u", Password: "p"}}, false},
		{&config.Auth{URLToken: "t"}, false},
		{&config.Auth{HMAC: &config.HMACAuth{Header: "X", Secret: "s"}}, true},
	} {
		a, err := New(c.auth)
		if err != nil {
			t.Fatal(err)
		}
		if a.NeedsBody() != c.want {
			t.Errorf("%s: NeedsBody %v, want %v", a.Mechanism(), a.NeedsBody(), c.want)
		}
	}
}
