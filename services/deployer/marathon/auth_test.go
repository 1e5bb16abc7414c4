package marathon

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// fakeIAM is the DC/OS login endpoint: it verifies the service login JWT
// with the account's public key, as DC/OS does, and issues tokens that the
// Marathon behind Admin Router (fakeMarathon.authorized) then checks.
type fakeIAM struct {
	t        *testing.T
	uid      string
	pub      *rsa.PublicKey
	secret   []byte
	lifetime time.Duration
	reject   atomic.Bool // answer every login with 401

	logins     atomic.Int32
	unauthzed  atomic.Int32 // 401s Marathon answered
	minLogin   atomic.Int32 // tokens from earlier logins are revoked
	loggedIn   chan time.Time
	mu         sync.Mutex
	seen       []string // every credential that crossed the wire
	firstExpAt time.Time
}

func newIAM(t *testing.T, uid string, lifetime time.Duration) *fakeIAM {
	return &fakeIAM{t: t, uid: uid, pub: &testKey().PublicKey, secret: []byte("iam-signing-secret"),
		lifetime: lifetime, loggedIn: make(chan time.Time, 100)}
}

func (iam *fakeIAM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	var body struct {
		UID   string `json:"uid"`
		Token string `json:"token"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"title": "Bad Request", "description": err.Error()})
		return
	}
	iam.mu.Lock()
	iam.seen = append(iam.seen, body.Token)
	iam.mu.Unlock()
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(body.Token, claims, func(*jwt.Token) (any, error) { return iam.pub, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithExpirationRequired())
	if err == nil {
		exp, _ := claims.GetExpirationTime()
		if claims["uid"] != body.UID || body.UID != iam.uid {
			err = fmt.Errorf("uid %v / %q", claims["uid"], body.UID)
		} else if exp.After(time.Now().Add(10 * time.Minute)) {
			err = errors.New("login token valid for more than 10 minutes")
		}
	}
	if err != nil || iam.reject.Load() {
		iam.t.Logf("login refused: %v", err)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"title": "Invalid credentials",
			"description": "The service login token is invalid.", "code": "ERR_INVALID_CREDENTIALS"})
		return
	}
	n := iam.logins.Add(1)
	exp := time.Now().Add(iam.lifetime)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"uid": body.UID, "exp": exp.Unix(), "n": n}).SignedString(iam.secret)
	if err != nil {
		iam.t.Error(err)
		return
	}
	iam.mu.Lock()
	iam.seen = append(iam.seen, tok)
	if n == 1 {
		iam.firstExpAt = time.Unix(exp.Unix(), 0)
	}
	iam.mu.Unlock()
	iam.loggedIn <- time.Now()
	writeJSON(w, http.StatusOK, map[string]string{"token": tok})
}

// authorized is what Marathon behind Admin Router checks.
func (iam *fakeIAM) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "token=")
	claims := jwt.MapClaims{}
	if ok {
		_, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return iam.secret, nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
		n, _ := claims["n"].(float64)
		ok = err == nil && claims["uid"] == iam.uid && int32(n) >= iam.minLogin.Load()
	}
	if !ok {
		iam.unauthzed.Add(1)
	}
	return ok
}

func (iam *fakeIAM) revokeAll() { iam.minLogin.Store(iam.logins.Load() + 1) }

func (iam *fakeIAM) secrets() []string {
	iam.mu.Lock()
	defer iam.mu.Unlock()
	return append([]string(nil), iam.seen...)
}

// dcosCluster serves the IAM at the DC/OS master's root and Marathon under
// /service/marathon, as Admin Router does.
func dcosCluster(t *testing.T, iam *fakeIAM) (*fakeMarathon, *httptest.Server) {
	f := newFake(t)
	f.prefix = "/service/marathon"
	f.authorized = iam.authorized
	mux := http.NewServeMux()
	mux.Handle("/acs/api/v1/auth/login", iam)
	mux.Handle("/service/marathon/", f)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return f, srv
}

func writeKey(t *testing.T, format string) string {
	t.Helper()
	k := testKey()
	var data []byte
	switch format {
	case "pkcs1":
		data = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	case "pkcs8":
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		data = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	p := filepath.Join(t.TempDir(), format+".pem")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func dcosClient(t *testing.T, srv *httptest.Server, auth config.DCOSAuth, opts ...Option) *Client {
	t.Helper()
	c, err := New("dcos", config.Marathon{URL: srv.URL + "/service/marathon", Auth: config.MarathonAuth{DCOS: &auth}},
		append([]Option{WithRetry(3, time.Millisecond), WithLogger(testLogger(t))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDCOSLoginWithEachKeyFormat(t *testing.T) {
	iam := newIAM(t, "slipway-deployer", time.Hour)
	_, srv := dcosCluster(t, iam)

	secretFile := filepath.Join(t.TempDir(), "sa.json")
	pkcs8, _ := os.ReadFile(writeKey(t, "pkcs8"))
	sa, _ := json.Marshal(map[string]string{"scheme": "RS256", "uid": "slipway-deployer", "private_key": string(pkcs8),
		"login_endpoint": srv.URL + "/acs/api/v1/auth/login"})
	if err := os.WriteFile(secretFile, sa, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, auth := range map[string]config.DCOSAuth{
		"pkcs1":              {UID: "slipway-deployer", PrivateKeyFile: writeKey(t, "pkcs1")},
		"pkcs8":              {UID: "slipway-deployer", PrivateKeyFile: writeKey(t, "pkcs8")},
		"explicit endpoint":  {UID: "slipway-deployer", PrivateKeyFile: writeKey(t, "pkcs1"), LoginEndpoint: srv.URL + "/acs/api/v1/auth/login"},
		"service acc secret": {PrivateKeyFile: secretFile},
	} {
		before := iam.logins.Load()
		c := dcosClient(t, srv, auth)
		if _, err := c.ListApps(ctxT(t)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := c.Ping(ctxT(t)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n := iam.logins.Load() - before; n != 1 {
			t.Errorf("%s: %d logins for two requests", name, n)
		}
	}
	if n := iam.unauthzed.Load(); n != 0 {
		t.Errorf("Marathon refused %d requests", n)
	}
}

func TestDCOSLoginIsSingleFlight(t *testing.T) {
	iam := newIAM(t, "svc", time.Hour)
	_, srv := dcosCluster(t, iam)
	c := dcosClient(t, srv, config.DCOSAuth{UID: "svc", PrivateKeyFile: writeKey(t, "pkcs1")})
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() { errs <- c.Ping(ctxT(t)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := iam.logins.Load(); n != 1 {
		t.Errorf("%d logins, want 1", n)
	}
}

func TestDCOSTokenIsRenewedBeforeItExpires(t *testing.T) {
	iam := newIAM(t, "svc", 2*time.Second)
	_, srv := dcosCluster(t, iam)
	c := dcosClient(t, srv, config.DCOSAuth{UID: "svc", PrivateKeyFile: writeKey(t, "pkcs8")})

	// Requests keep coming; at 80% of the token's life one of them starts
	// a renewal in the background while still using the old token.
	waitFor(t, 10*time.Second, "a second login", func() bool {
		if err := c.Ping(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		return iam.logins.Load() >= 2
	})
	<-iam.loggedIn
	second := <-iam.loggedIn
	iam.mu.Lock()
	firstExp := iam.firstExpAt
	iam.mu.Unlock()
	if !second.Before(firstExp) {
		t.Errorf("renewed at %v, after the first token expired at %v", second, firstExp)
	}
	if n := iam.unauthzed.Load(); n != 0 {
		t.Errorf("Marathon refused %d requests: the token was not renewed in time", n)
	}
}

func TestDCOSLoginAgainAfter401(t *testing.T) {
	iam := newIAM(t, "svc", time.Hour)
	f, srv := dcosCluster(t, iam)
	f.addApp(`{"id":"/dev/a"}`)
	c := dcosClient(t, srv, config.DCOSAuth{UID: "svc", PrivateKeyFile: writeKey(t, "pkcs1")})
	if err := c.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	iam.revokeAll()

	// Concurrent requests all hit the 401; one login serves them all.
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, err := c.UpdateApp(ctxT(t), "/dev/a", map[string]json.RawMessage{"instances": json.RawMessage(`2`)}, true); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := iam.logins.Load(); n != 2 {
		t.Errorf("%d logins, want 2", n)
	}
	if n := iam.unauthzed.Load(); n < 1 || n > 10 {
		t.Errorf("%d requests refused, want 1..10 (each retried once)", n)
	}

	// Revoked again and the login fails: the 401 is the answer, no loop.
	iam.revokeAll()
	iam.reject.Store(true)
	err := c.Ping(ctxT(t))
	if err == nil || !strings.Contains(err.Error(), "DC/OS login") || !strings.Contains(err.Error(), "Invalid credentials") {
		t.Fatalf("err = %v", err)
	}
}

func TestDCOSSecretsStayOutOfLogsAndErrors(t *testing.T) {
	iam := newIAM(t, "svc", time.Hour)
	_, srv := dcosCluster(t, iam)
	keyFile := writeKey(t, "pkcs1")
	keyPEM, _ := os.ReadFile(keyFile)
	var logs syncBuffer
	c := dcosClient(t, srv, config.DCOSAuth{UID: "svc", PrivateKeyFile: keyFile}, WithLogger(slogTo(&logs)))
	if err := c.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	iam.revokeAll()
	iam.reject.Store(true)
	err := c.Ping(ctxT(t))
	if err == nil {
		t.Fatal("expected an error")
	}
	secrets := iam.secrets()
	if len(secrets) < 3 {
		t.Fatalf("only %d secrets seen", len(secrets))
	}
	keyBody := strings.Split(string(keyPEM), "\n")[2]
	for _, s := range append(secrets, keyBody) {
		for _, out := range []string{logs.String(), err.Error()} {
			if strings.Contains(out, s) {
				t.Errorf("a secret leaked into %q", out)
			}
		}
	}
}

func TestTokenLifetimeFallsBackForOpaqueTokens(t *testing.T) {
	d := &dcosAuth{c: &Client{log: testLogger(t)}}
	if l := d.lifetime("not-a-jwt"); l != defaultTokenLifetime {
		t.Errorf("opaque token lifetime = %v", l)
	}
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"uid": "x"}).SignedString([]byte("k"))
	if l := d.lifetime(noExp); l != defaultTokenLifetime {
		t.Errorf("token without exp lifetime = %v", l)
	}
	in1h, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte("k"))
	if l := d.lifetime(in1h); l < 59*time.Minute || l > time.Hour {
		t.Errorf("1h token lifetime = %v", l)
	}
	past, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix()}).SignedString([]byte("k"))
	if l := d.lifetime(past); l <= 0 {
		t.Errorf("expired token lifetime = %v, want a short positive retry delay", l)
	}
}
