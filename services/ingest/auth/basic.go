package auth

import (
	"fmt"
	"net/http"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// basicAuth expects HTTP Basic credentials (AWS EventBridge connections,
// registries that can only put credentials in the endpoint URL).
type basicAuth struct {
	username, password []byte
}

func newBasic(b *config.BasicAuth) (Authenticator, error) {
	if b.Username == "" {
		return nil, fmt.Errorf("basic.username is empty")
	}
	pw, err := secret(b.Password, b.PasswordFile, "basic.password")
	if err != nil {
		return nil, err
	}
	return &basicAuth{username: []byte(b.Username), password: []byte(pw)}, nil
}

func (*basicAuth) Mechanism() string { return "basic" }

func (*basicAuth) NeedsBody() bool { return false }

func (a *basicAuth) Authenticate(r Request) error {
	if err := tokenless(r); err != nil {
		return err
	}
	if r.Header.Get("Authorization") == "" {
		return reject("no Authorization header")
	}
	u, p, ok := (&http.Request{Header: r.Header}).BasicAuth()
	if !ok {
		return reject("Authorization is not Basic credentials")
	}
	// Both compared, always: which of the two was wrong must not show in the
	// time taken either.
	userOK := equal([]byte(u), a.username)
	passOK := equal([]byte(p), a.password)
	if !userOK || !passOK {
		return reject("wrong username or password")
	}
	return nil
}
