package marathon

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

const (
	// DC/OS accepts a login JWT valid for at most 10 minutes.
	loginJWTLifetime = 5 * time.Minute
	// DC/OS issues tokens for about 5 days; used when the token is opaque.
	defaultTokenLifetime = 5 * 24 * time.Hour
	// Renewing at 80% of the lifetime leaves a day of a 5-day token for
	// retries if the IAM is down.
	renewFraction   = 0.8
	loginTimeout    = 30 * time.Second
	renewRetryDelay = 10 * time.Second
	defaultLoginAPI = "/acs/api/v1/auth/login"
)

// authenticator puts credentials on requests.
type authenticator interface {
	// authorize sets credentials on req. It returns the credential used,
	// for reauthorize.
	authorize(ctx context.Context, req *http.Request) (string, error)
	// reauthorize is called once after Marathon answered 401 to a request
	// sent with credential used; true means a retry may now succeed. An
	// error is a failed login.
	reauthorize(ctx context.Context, used string) (bool, error)
}

func newAuth(c *Client, a config.MarathonAuth) (authenticator, error) {
	n := 0
	for _, set := range []bool{a.None, a.Basic != nil, a.DCOS != nil, a.Token != "" || a.TokenFile != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return nil, errors.New("set one of none, basic, dcos, token")
	}
	switch {
	case a.Basic != nil:
		if a.Basic.Username == "" {
			return nil, errors.New("basic.username is required")
		}
		pw, err := secret(a.Basic.Password, a.Basic.PasswordFile, "basic.passwordFile")
		if err != nil {
			return nil, err
		}
		return basicAuth{user: a.Basic.Username, password: pw}, nil
	case a.Token != "" || a.TokenFile != "":
		tok, err := secret(a.Token, a.TokenFile, "tokenFile")
		if err != nil {
			return nil, err
		}
		if tok == "" {
			return nil, errors.New("token is empty")
		}
		return tokenAuth(tok), nil
	case a.DCOS != nil:
		return newDCOSAuth(c, *a.DCOS)
	}
	return noAuth{}, nil
}

// secret returns value, or the content of file when the config loader has
// not already resolved it.
func secret(value, file, key string) (string, error) {
	if value != "" || file == "" {
		return value, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

type noAuth struct{}

func (noAuth) authorize(context.Context, *http.Request) (string, error) { return "", nil }
func (noAuth) reauthorize(context.Context, string) (bool, error)        { return false, nil }

type basicAuth struct{ user, password string }

func (b basicAuth) authorize(_ context.Context, req *http.Request) (string, error) {
	req.SetBasicAuth(b.user, b.password)
	return "", nil
}
func (basicAuth) reauthorize(context.Context, string) (bool, error) { return false, nil }

// tokenAuth is a static DC/OS token; nothing can renew it.
type tokenAuth string

func (t tokenAuth) authorize(_ context.Context, req *http.Request) (string, error) {
	req.Header.Set("Authorization", "token="+string(t))
	return string(t), nil
}
func (tokenAuth) reauthorize(context.Context, string) (bool, error) { return false, nil }

// dcosAuth logs a DC/OS service account in and keeps its token fresh.
type dcosAuth struct {
	c        *Client
	uid      string
	key      *rsa.PrivateKey
	endpoint *url.URL

	mu        sync.Mutex
	token     string
	renewAt   time.Time // from here on a login runs in the background
	expiresAt time.Time // from here on callers wait for a login
	inflight  *login
}

// login is one login in progress; everyone who needs a token waits for the
// same one instead of storming the IAM.
type login struct {
	done  chan struct{}
	token string
	err   error
}

// loginError marks a failed login so the request that needed it is not
// retried on top of the login's own retries.
type loginError struct{ err error }

func (e *loginError) Error() string { return "DC/OS login: " + e.err.Error() }
func (e *loginError) Unwrap() error { return e.err }

// serviceAccountSecret is the JSON that `dcos security secrets
// create-sa-secret` stores; DC/OS mounts it into tasks as is, so a key file
// in this format is accepted too.
type serviceAccountSecret struct {
	UID           string `json:"uid"`
	PrivateKey    string `json:"private_key"`
	LoginEndpoint string `json:"login_endpoint"`
}

func newDCOSAuth(c *Client, cfg config.DCOSAuth) (*dcosAuth, error) {
	if cfg.PrivateKeyFile == "" {
		return nil, errors.New("dcos.privateKeyFile is required")
	}
	raw, err := os.ReadFile(cfg.PrivateKeyFile)
	if err != nil {
		return nil, fmt.Errorf("dcos.privateKeyFile: %w", err)
	}
	uid, endpoint := cfg.UID, cfg.LoginEndpoint
	if trimmed := strings.TrimSpace(string(raw)); strings.HasPrefix(trimmed, "{") {
		var s serviceAccountSecret
		if err := json.Unmarshal([]byte(trimmed), &s); err != nil {
			return nil, fmt.Errorf("dcos.privateKeyFile: not a service account secret: %v", err)
		}
		raw = []byte(s.PrivateKey)
		if uid == "" {
			uid = s.UID
		}
		if endpoint == "" {
			endpoint = s.LoginEndpoint
		}
	}
	key, err := parseRSAPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("dcos.privateKeyFile %s: %w", cfg.PrivateKeyFile, err)
	}
	if uid == "" {
		return nil, errors.New("dcos.uid is required (or a uid in the service-account JSON of privateKeyFile)")
	}
	var ep *url.URL
	if endpoint == "" {
		// The IAM sits at the root of the DC/OS master, not under the
		// /service/marathon prefix of the Marathon URL.
		ep = &url.URL{Scheme: c.base.Scheme, Host: c.base.Host, Path: defaultLoginAPI}
	} else if ep, err = parseBaseURL(endpoint); err != nil {
		return nil, fmt.Errorf("dcos.loginEndpoint: %w", err)
	}
	return &dcosAuth{c: c, uid: uid, key: key, endpoint: ep}, nil
}

func parseRSAPrivateKey(raw []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("not an unencrypted PKCS#1 or PKCS#8 private key")
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("DC/OS needs an RSA key, this is a %T", k)
	}
	return rk, nil
}

func (d *dcosAuth) authorize(ctx context.Context, req *http.Request) (string, error) {
	tok, err := d.current(ctx)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "token="+tok)
	return tok, nil
}

func (d *dcosAuth) current(ctx context.Context) (string, error) {
	d.mu.Lock()
	now := time.Now()
	if d.token != "" && now.Before(d.expiresAt) {
		tok := d.token
		if !now.Before(d.renewAt) {
			d.startLocked() // renew in the background; the old token still works
		}
		d.mu.Unlock()
		return tok, nil
	}
	l := d.startLocked()
	d.mu.Unlock()
	return l.wait(ctx)
}

func (d *dcosAuth) reauthorize(ctx context.Context, used string) (bool, error) {
	d.mu.Lock()
	if d.token != used && d.token != "" {
		// Someone else already logged in again since this request left.
		d.mu.Unlock()
		return true, nil
	}
	d.token = ""
	l := d.startLocked()
	d.mu.Unlock()
	if _, err := l.wait(ctx); err != nil {
		return false, err
	}
	return true, nil
}

func (l *login) wait(ctx context.Context) (string, error) {
	select {
	case <-l.done:
		return l.token, l.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// startLocked starts a login unless one is running. The login does not use
// any caller's context: one caller giving up must not fail the others.
func (d *dcosAuth) startLocked() *login {
	if d.inflight != nil {
		return d.inflight
	}
	l := &login{done: make(chan struct{})}
	d.inflight = l
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), loginTimeout)
		defer cancel()
		tok, lifetime, err := d.login(ctx)
		now := time.Now()
		d.mu.Lock()
		if err == nil {
			d.token = tok
			d.expiresAt = now.Add(lifetime)
			d.renewAt = now.Add(time.Duration(float64(lifetime) * renewFraction))
		} else if d.token != "" {
			// A failed background renewal keeps the old, still valid token
			// and tries again a little later rather than on every request.
			d.renewAt = now.Add(min(renewRetryDelay, d.expiresAt.Sub(now)/4))
		}
		d.inflight = nil
		d.mu.Unlock()
		if err != nil {
			d.c.log.Warn("DC/OS login failed", "uid", d.uid, "err", err)
			l.err = &loginError{err}
		} else {
			d.c.log.Debug("DC/OS login", "uid", d.uid, "validFor", lifetime.Round(time.Second))
			l.token = tok
		}
		close(l.done)
	}()
	return l
}

func (d *dcosAuth) login(ctx context.Context) (string, time.Duration, error) {
	signed, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"uid": d.uid,
		"exp": time.Now().Add(loginJWTLifetime).Unix(),
	}).SignedString(d.key)
	if err != nil {
		return "", 0, err
	}
	body, err := json.Marshal(map[string]string{"uid": d.uid, "token": signed})
	if err != nil {
		return "", 0, err
	}
	resp, err := d.c.do(ctx, call{
		method: http.MethodPost,
		url:    d.endpoint,
		path:   d.endpoint.Path,
		route:  d.endpoint.Path, // the configured login endpoint: one per cluster
		body:   body,
		safe:   true, // a login has no side effects
		noAuth: true,
	})
	if err != nil {
		return "", 0, err
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(resp.body, &out); err != nil || out.Token == "" {
		return "", 0, errors.New("the login answer has no token")
	}
	return out.Token, d.lifetime(out.Token), nil
}

// lifetime reads exp from the token if it is a JWT. It is not verified: the
// client only uses it to schedule the renewal; Marathon does the checking.
func (d *dcosAuth) lifetime(tok string) time.Duration {
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, claims); err != nil {
		return defaultTokenLifetime
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return defaultTokenLifetime
	}
	if l := time.Until(exp.Time); l > 0 {
		return l
	}
	// Only a clock far off from the IAM's gets here; renewing on every
	// request would not help, a 401 will trigger the next login.
	d.c.log.Warn("DC/OS token already expired by the local clock; check clock skew", "uid", d.uid)
	return renewRetryDelay
}
