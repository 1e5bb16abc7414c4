package emulator

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// HttpModule.createSecurityHandler: --http_credentials puts Jetty's
// BasicAuthenticator on "/*" with the realm "Mesosphere" (HttpConf
// --http_realm default).
func TestBasicAuth(t *testing.T) {
	e := newEnv(t, Options{BasicAuth: &[2]string{"ops", "s3cret"}})
	for _, path := range []string{"/v2/apps", "/ping", "/service/marathon/v2/apps"} {
		r := e.must(401, e.do("GET", path, ""))
		if got := r.header.Get("WWW-Authenticate"); got != `Basic realm="Mesosphere"` {
			t.Errorf("%s: WWW-Authenticate %q", path, got)
		}
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/v2/apps/dev/app1", nil)
	req.SetBasicAuth("ops", "wrong")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("wrong password: %v %v", resp, err)
	}
	req.SetBasicAuth("ops", "s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("right password: %v %v", resp, err)
	}
	resp.Body.Close()
	// Admin endpoints never need credentials.
	e.must(200, e.do("GET", "/_emulator/requests", ""))
}

var (
	serviceKeyOnce sync.Once
	serviceKey     *rsa.PrivateKey
	otherKey       *rsa.PrivateKey
)

func keys(t *testing.T) (*rsa.PrivateKey, *rsa.PrivateKey) {
	serviceKeyOnce.Do(func() {
		var err error
		if serviceKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if otherKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return serviceKey, otherKey
}

// fakeClock lets tests expire tokens without sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func serviceLoginToken(t *testing.T, key *rsa.PrivateKey, uid string, exp time.Time) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"uid": uid, "exp": exp.Unix()}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// DC/OS service login (security/oss/login/service-login): POST
// /acs/api/v1/auth/login {"uid","token"} with an RS256 JWT {uid, exp}
// signed by the service account's key returns {"token"}, itself an RS256
// JWT with uid and exp ("Authentication tokens are valid for five days").
// Admin Router (auth/common.lua) then wants "Authorization: token=…" and
// answers 401 with WWW-Authenticate: acsjwt otherwise; IAM login
// failures are 401 {"code":"ERR_INVALID_CREDENTIALS"} (dcos integration
// test_iam.py).
func TestDCOSServiceLogin(t *testing.T) {
	key, other := keys(t)
	clock := &fakeClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	e := newEnv(t, Options{DCOSPublicKey: &key.PublicKey, DCOSUID: "slipway", TokenTTL: time.Hour, Now: clock.Now})

	r := e.must(401, e.do("GET", "/service/marathon/v2/apps", ""))
	if r.header.Get("WWW-Authenticate") != "acsjwt" {
		t.Errorf("challenge %q", r.header.Get("WWW-Authenticate"))
	}

	login := func(tok, uid string) response {
		return e.do("POST", "/acs/api/v1/auth/login", `{"uid":"`+uid+`","token":"`+tok+`"}`)
	}
	for name, tok := range map[string]string{
		"wrong key":    serviceLoginToken(t, other, "slipway", clock.Now().Add(5*time.Minute)),
		"expired":      serviceLoginToken(t, key, "slipway", clock.Now().Add(-time.Minute)),
		"uid mismatch": serviceLoginToken(t, key, "someone", clock.Now().Add(5*time.Minute)),
	} {
		r := e.must(401, login(tok, "slipway"))
		if m := r.json(t); m["code"] != "ERR_INVALID_CREDENTIALS" || m["title"] == nil {
			t.Errorf("%s: body %s", name, r.body)
		}
	}
	e.must(401, login(serviceLoginToken(t, key, "other-account", clock.Now().Add(5*time.Minute)), "other-account"))

	r = e.must(200, login(serviceLoginToken(t, key, "slipway", clock.Now().Add(5*time.Minute)), "slipway"))
	token := r.json(t)["token"].(string)

	// Clients read the expiry from the token: uid and exp = now + TokenTTL.
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(token, claims); err != nil {
		t.Fatal(err)
	}
	if claims["uid"] != "slipway" || int64(claims["exp"].(float64)) != clock.Now().Add(time.Hour).Unix() {
		t.Errorf("claims %v", claims)
	}
	if _, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return e.emu.TokenPublicKey(), nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(clock.Now)); err != nil {
		t.Errorf("issued token does not verify: %v", err)
	}

	auth := "token=" + token
	e.must(200, e.do("GET", "/service/marathon/v2/apps", "", "Authorization", auth))
	e.must(200, e.do("GET", "/v2/apps/dev/app1", "", "Authorization", auth))
	e.must(200, e.do("PUT", "/service/marathon/v2/apps/dev/app1", `{"instances":3}`, "Authorization", auth))
	e.must(401, e.do("GET", "/v2/apps", "", "Authorization", "token=garbage"))

	// The same request is recorded under its Marathon path.
	reqs := e.emu.Requests()
	last := reqs[len(reqs)-1]
	if last.Method != "PUT" || last.Path != "/v2/apps/dev/app1" || last.Status != 200 {
		t.Errorf("recorded %+v", last)
	}

	// After TokenTTL the token is refused and a new login is needed.
	clock.Add(time.Hour + time.Second)
	r = e.must(401, e.do("GET", "/service/marathon/v2/apps", "", "Authorization", auth))
	if !strings.Contains(string(r.body), "401") {
		t.Errorf("401 body %s", r.body)
	}
	token = e.must(200, login(serviceLoginToken(t, key, "slipway", clock.Now().Add(5*time.Minute)), "slipway")).json(t)["token"].(string)
	e.must(200, e.do("GET", "/service/marathon/v2/apps", "", "Authorization", "token="+token))
}

// Admin Router exposes Marathon at /service/marathon/: the same API with
// the prefix, and event streams too.
func TestServicePrefix(t *testing.T) {
	e := newEnv(t, Options{})
	r := e.must(200, e.do("GET", "/service/marathon/v2/apps/dev/app1", ""))
	if r.json(t)["app"].(map[string]any)["id"] != "/dev/app1" {
		t.Errorf("body %s", r.body)
	}
	r = e.must(200, e.do("GET", "/service/marathon/ping", ""))
	if string(r.body) != "pong" || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Errorf("ping %q %q", r.body, r.header.Get("Content-Type"))
	}
	e.must(405, e.do("GET", "/service/marathon/v2/events", ""))
	if m := e.must(200, e.do("GET", "/v2/leader", "")).json(t); m["leader"] != "marathon.mesos:8080" {
		t.Errorf("leader %v", m)
	}
	if m := e.must(200, e.do("GET", "/service/marathon/v2/info", "")).json(t); m["name"] != "marathon" || !strings.HasPrefix(m["version"].(string), "1.11.") {
		t.Errorf("info %v", m)
	}
}
