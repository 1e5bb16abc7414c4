package testkit_test

import (
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/slipway-cd/slipway/pkg/testkit"
)

// relyingParty is the smallest web application that signs users in with
// the provider as a real one does (go-oidc and x/oauth2): /login starts the
// authorization code flow with state, nonce and PKCE; /callback checks the
// state, exchanges the code with the verifier, verifies the ID token and
// its nonce; / greets the signed-in user by name.
type relyingParty struct {
	URL, RedirectURI       string
	ClientID, ClientSecret string
	Provider               *oidc.Provider
	Verifier               *oidc.IDTokenVerifier
	OAuth                  oauth2.Config

	mu       sync.Mutex
	pending  map[string]rpPending // by state
	sessions map[string]rpLogin   // by session cookie
	logins   []rpLogin
}

type rpPending struct{ nonce, verifier string }

// rpLogin is what the relying party learnt from one sign-in.
type rpLogin struct {
	RawIDToken string
	Nonce      string
	Claims     struct {
		Subject           string   `json:"sub"`
		Email             string   `json:"email"`
		PreferredUsername string   `json:"preferred_username"`
		Name              string   `json:"name"`
		Groups            []string `json:"groups"`
		Nonce             string   `json:"nonce"`
	}
}

const rpSessionCookie = "rp_session"

func newRelyingParty(t *testing.T, p *testkit.OIDCProvider) *relyingParty {
	t.Helper()
	rp := &relyingParty{pending: map[string]rpPending{}, sessions: map[string]rpLogin{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", rp.login)
	mux.HandleFunc("GET /callback", rp.callback)
	mux.HandleFunc("GET /{$}", rp.home)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	rp.URL = srv.URL
	rp.RedirectURI = srv.URL + "/callback"
	rp.ClientID, rp.ClientSecret = p.RegisterClient(t, rp.RedirectURI)
	var err error
	rp.Provider, err = oidc.NewProvider(t.Context(), p.Issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	rp.Verifier = rp.Provider.Verifier(&oidc.Config{ClientID: rp.ClientID})
	rp.OAuth = oauth2.Config{
		ClientID: rp.ClientID, ClientSecret: rp.ClientSecret,
		Endpoint:    rp.Provider.Endpoint(),
		RedirectURL: rp.RedirectURI,
		Scopes:      []string{oidc.ScopeOpenID, "profile", "email", "groups"},
	}
	return rp
}

func (rp *relyingParty) login(w http.ResponseWriter, r *http.Request) {
	state, nonce, verifier := oauth2.GenerateVerifier(), oauth2.GenerateVerifier(), oauth2.GenerateVerifier()
	rp.mu.Lock()
	rp.pending[state] = rpPending{nonce, verifier}
	rp.mu.Unlock()
	http.Redirect(w, r, rp.OAuth.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusFound)
}

func (rp *relyingParty) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	rp.mu.Lock()
	p, ok := rp.pending[q.Get("state")]
	delete(rp.pending, q.Get("state"))
	rp.mu.Unlock()
	if !ok {
		http.Error(w, "unknown state", http.StatusBadRequest)
		return
	}
	if e := q.Get("error"); e != "" {
		http.Error(w, "provider refused: "+e+": "+q.Get("error_description"), http.StatusForbidden)
		return
	}
	login, err := rp.exchange(r, q.Get("code"), p)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	sid := oauth2.GenerateVerifier()
	rp.mu.Lock()
	rp.sessions[sid] = login
	rp.logins = append(rp.logins, login)
	rp.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: rpSessionCookie, Value: sid, Path: "/", HttpOnly: true})
	http.Redirect(w, r, "/", http.StatusFound)
}

func (rp *relyingParty) exchange(r *http.Request, code string, p rpPending) (rpLogin, error) {
	var login rpLogin
	tok, err := rp.OAuth.Exchange(r.Context(), code, oauth2.VerifierOption(p.verifier))
	if err != nil {
		return login, fmt.Errorf("code exchange: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return login, errors.New("no id_token in the token response")
	}
	idt, err := rp.Verifier.Verify(r.Context(), raw)
	if err != nil {
		return login, fmt.Errorf("ID token: %w", err)
	}
	if idt.Nonce != p.nonce {
		return login, fmt.Errorf("ID token nonce %q, sent %q", idt.Nonce, p.nonce)
	}
	login.RawIDToken, login.Nonce = raw, p.nonce
	if err := idt.Claims(&login.Claims); err != nil {
		return login, err
	}
	return login, nil
}

func (rp *relyingParty) home(w http.ResponseWriter, r *http.Request) {
	var login rpLogin
	ok := false
	if c, err := r.Cookie(rpSessionCookie); err == nil {
		rp.mu.Lock()
		login, ok = rp.sessions[c.Value]
		rp.mu.Unlock()
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = fmt.Fprint(w, `<!DOCTYPE html><html><body><a id="signin" href="/login">Sign in</a></body></html>`)
		return
	}
	_, _ = fmt.Fprintf(w, `<!DOCTYPE html><html><body><p>Signed in as <span id="user">%s</span></p></body></html>`, html.EscapeString(login.Claims.Name))
}

// Logins returns the sign-ins completed so far.
func (rp *relyingParty) Logins() []rpLogin {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return append([]rpLogin(nil), rp.logins...)
}
