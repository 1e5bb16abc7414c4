package auth

import (
	"fmt"
	"net/http"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// headerAuth expects a header with a fixed value, e.g. the
// notifications.endpoints[].headers of a Distribution registry or Harbor's
// auth_header.
type headerAuth struct {
	name  string
	value []byte
}

func newHeader(h *config.HeaderAuth) (Authenticator, error) {
	if h.Name == "" {
		return nil, fmt.Errorf("header.name is empty")
	}
	v, err := secret(h.Value, h.ValueFile, "header.value")
	if err != nil {
		return nil, err
	}
	return &headerAuth{name: http.CanonicalHeaderKey(h.Name), value: []byte(v)}, nil
}

func (*headerAuth) Mechanism() string { return "header" }

func (*headerAuth) NeedsBody() bool { return false }

func (a *headerAuth) Authenticate(r Request) error {
	if err := tokenless(r); err != nil {
		return err
	}
	got := r.Header.Values(a.name)
	if len(got) == 0 {
		return reject("header %s missing", a.name)
	}
	if len(got) > 1 {
		return reject("header %s sent %d times", a.name, len(got))
	}
	if !equal([]byte(got[0]), a.value) {
		return reject("header %s has the wrong value", a.name)
	}
	return nil
}
