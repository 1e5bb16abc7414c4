package emulator

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Jetty's BasicAuthenticator challenge for Marathon's --http_credentials,
// with the default --http_realm "Mesosphere" (HttpConf.scala).
const basicChallenge = `Basic realm="Mesosphere"`

const jetty401 = `<html>
<head>
<meta http-equiv="Content-Type" content="text/html;charset=ISO-8859-1"/>
<title>Error 401 Unauthorized</title>
</head>
<body><h2>HTTP ERROR 401</h2>
<p>Problem accessing %s. Reason:
<pre>    Unauthorized</pre></p>
</body>
</html>
`

// adminRouter401 stands for Admin Router's 401.html error page.
const adminRouter401 = `<html>
<head><title>401 Authorization Required</title></head>
<body>
<center><h1>401 Authorization Required</h1></center>
<hr><center>openresty</center>
</body>
</html>
`

// dcosAuth emulates the DC/OS IAM service login and Admin Router's token
// check. Its own RSA key signs the issued tokens, as the IAM's does.
type dcosAuth struct {
	serviceKey *rsa.PublicKey
	uid        string
	ttl        time.Duration
	now        func() time.Time
	key        *rsa.PrivateKey
}

func newDCOSAuth(serviceKey *rsa.PublicKey, uid string, ttl time.Duration, now func() time.Time) *dcosAuth {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic("emulator: " + err.Error())
	}
	return &dcosAuth{serviceKey: serviceKey, uid: uid, ttl: ttl, now: now, key: key}
}

// TokenPublicKey is the key that verifies issued tokens (the IAM's JWKS
// key), nil without DC/OS authentication.
func (e *Emulator) TokenPublicKey() *rsa.PublicKey {
	if e.auth == nil {
		return nil
	}
	return &e.auth.key.PublicKey
}

// authenticate answers 401 and returns false unless the request carries
// the configured credentials.
func (e *Emulator) authenticate(c *call) bool {
	if b := e.opts.BasicAuth; b != nil {
		user, pass, ok := c.r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(b[0])) != 1 ||
			subtle.ConstantTimeCompare([]byte(pass), []byte(b[1])) != 1 {
			c.w.Header().Set("WWW-Authenticate", basicChallenge)
			c.w.Header().Set("Content-Type", "text/html;charset=iso-8859-1")
			c.w.WriteHeader(http.StatusUnauthorized)
			_, _ = c.w.Write([]byte(strings.Replace(jetty401, "%s", c.r.URL.Path, 1)))
			return false
		}
	}
	if e.auth != nil {
		if _, err := e.auth.verifyAuthToken(c.r); err != nil {
			// Admin Router (lib/auth/common.lua exit_401): an HTML page and
			// the acsjwt challenge; the reason only goes to its log.
			c.w.Header().Set("WWW-Authenticate", "acsjwt")
			c.w.Header().Set("Content-Type", "text/html; charset=UTF-8")
			c.w.WriteHeader(http.StatusUnauthorized)
			_, _ = c.w.Write([]byte(adminRouter401))
			return false
		}
	}
	return true
}

// verifyAuthToken is validate_jwt in Admin Router's auth/common.lua: the
// token comes from "Authorization: token=…" (or "Bearer …"), must be
// signed by the IAM, carry a uid and not be expired.
func (a *dcosAuth) verifyAuthToken(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	var raw string
	switch {
	case strings.HasPrefix(h, "token="):
		raw = strings.TrimPrefix(h, "token=")
	case strings.HasPrefix(h, "Bearer "):
		raw = strings.TrimPrefix(h, "Bearer ")
	default:
		if ck, err := r.Cookie("dcos-acs-auth-cookie"); err == nil {
			raw = ck.Value
		}
	}
	if raw == "" {
		return "", errors.New("no auth token in request")
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) { return &a.key.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(a.now))
	if err != nil {
		return "", err
	}
	uid, _ := claims["uid"].(string)
	if uid == "" {
		return "", errors.New("unexpected token payload: missing uid")
	}
	return uid, nil
}

type iamError struct {
	Title       string `json:"title"`
	Description string `json:"description"`
	Code        string `json:"code"`
}

// serveLogin is POST /acs/api/v1/auth/login for service accounts: the
// body {"uid","token"} carries a service login token, an RS256 JWT with
// uid and exp claims signed by the account's private key
// (security/oss/login/service-login in the DC/OS docs). The answer is
// {"token"}: a DC/OS authentication token with the same claims, valid for
// TokenTTL.
func (e *Emulator) serveLogin(c *call) {
	a := e.auth
	if c.r.Method != http.MethodPost {
		writeJSON(c.w, http.StatusBadRequest, iamError{"Bad Request", "Missing query parameters", "ERR_MISSING_QUERY_PARAMETERS"})
		return
	}
	var body struct {
		UID      string `json:"uid"`
		Token    string `json:"token"`
		Password string `json:"password"`
	}
	if err := json.Unmarshal(c.body, &body); err != nil || body.UID == "" {
		writeJSON(c.w, http.StatusBadRequest, iamError{"Bad Request", "Request has bad Content-Type or lacks JSON data", "ERR_INVALID_DATA"})
		return
	}
	deny := func(desc string) {
		c.w.Header().Set("WWW-Authenticate", "acsjwt")
		writeJSON(c.w, http.StatusUnauthorized, iamError{"Invalid authentication credentials", desc, "ERR_INVALID_CREDENTIALS"})
	}
	if body.Token == "" {
		deny("The emulated IAM only knows service accounts: a service login token is required.")
		return
	}
	if a.uid != "" && body.UID != a.uid {
		deny("Unknown service account `" + body.UID + "`.")
		return
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(body.Token, claims, func(*jwt.Token) (any, error) { return a.serviceKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(a.now), jwt.WithExpirationRequired())
	if err != nil {
		deny("Service login token validation failed: " + err.Error())
		return
	}
	if uid, _ := claims["uid"].(string); uid != body.UID {
		deny("Service login token `uid` claim does not match the uid in the request.")
		return
	}
	exp := a.now().Add(a.ttl)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"uid": body.UID, "exp": exp.Unix()}).SignedString(a.key)
	if err != nil {
		writeAPIError(c.w, errMessage(http.StatusInternalServerError, err.Error()))
		return
	}
	writeJSON(c.w, http.StatusOK, map[string]string{"token": tok})
}
