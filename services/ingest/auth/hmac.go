package auth

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"strings"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// hmacAuth expects a header holding the hex HMAC of the raw body, as GitHub
// (X-Hub-Signature-256: sha256=<hex>), Artifactory and Nexus send it.
type hmacAuth struct {
	header string
	prefix string
	newH   func() hash.Hash
	secret []byte
}

var hmacAlgorithms = map[string]func() hash.Hash{
	"sha1":   sha1.New, // Nexus signs with HMAC-SHA1; still sound as a MAC.
	"sha256": sha256.New,
	"sha512": sha512.New,
}

func newHMAC(h *config.HMACAuth) (Authenticator, error) {
	if h.Header == "" {
		return nil, fmt.Errorf("hmac.header is empty")
	}
	alg := h.Algorithm
	if alg == "" {
		alg = "sha256"
	}
	newH, ok := hmacAlgorithms[strings.ToLower(alg)]
	if !ok {
		return nil, fmt.Errorf("hmac.algorithm %q is not one of sha1, sha256, sha512", h.Algorithm)
	}
	s, err := secret(h.Secret, h.SecretFile, "hmac.secret")
	if err != nil {
		return nil, err
	}
	return &hmacAuth{header: http.CanonicalHeaderKey(h.Header), prefix: h.Prefix, newH: newH, secret: []byte(s)}, nil
}

func (*hmacAuth) Mechanism() string { return "hmac" }

// NeedsBody: the signature covers the body, so it is read first (never
// more than ingest.maxBodyBytes of it).
func (*hmacAuth) NeedsBody() bool { return true }

func (a *hmacAuth) Authenticate(r Request) error {
	if err := tokenless(r); err != nil {
		return err
	}
	v := r.Header.Get(a.header)
	if v == "" {
		return reject("header %s missing", a.header)
	}
	hexSig, ok := strings.CutPrefix(v, a.prefix)
	if !ok {
		return reject("header %s lacks the configured prefix", a.header)
	}
	// hex.DecodeString takes upper- and lower-case digits alike.
	got, err := hex.DecodeString(strings.TrimSpace(hexSig))
	if err != nil {
		return reject("header %s is not hex", a.header)
	}
	m := hmac.New(a.newH, a.secret)
	m.Write(r.Body)
	if !equal(got, m.Sum(nil)) {
		return reject("header %s does not match the body", a.header)
	}
	return nil
}
