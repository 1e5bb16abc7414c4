package testkit

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// oidcStorage is the provider's op.Storage: users, clients, authorization
// requests, access tokens and browser sessions, in memory. It refuses what
// a strict production provider refuses (no PKCE, PKCE other than S256, a
// wrong client secret) so that a relying party tested against it cannot
// get away with less.
type oidcStorage struct {
	key *rsa.PrivateKey
	kid string

	mu       sync.Mutex
	users    map[string]*OIDCUser // by username
	clients  map[string]*oidcClient
	requests map[string]*oidcAuthRequest // by id
	codes    map[string]string           // code → request id
	tokens   map[string]*oidcToken
	sessions map[string]*oidcSession // browser session id → session
	tokenTTL time.Duration
	sessTTL  time.Duration
}

var _ op.Storage = (*oidcStorage)(nil)
var _ op.CanSetUserinfoFromRequest = (*oidcStorage)(nil)

func newOIDCStorage(users []OIDCUser) (*oidcStorage, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	s := &oidcStorage{
		key:      key,
		kid:      randomID(),
		users:    map[string]*OIDCUser{},
		clients:  map[string]*oidcClient{},
		requests: map[string]*oidcAuthRequest{},
		codes:    map[string]string{},
		tokens:   map[string]*oidcToken{},
		sessions: map[string]*oidcSession{},
		tokenTTL: DefaultOIDCTokenLifetime,
		sessTTL:  DefaultOIDCSessionLifetime,
	}
	for i := range users {
		u := users[i]
		if u.Username == "" {
			return nil, fmt.Errorf("user %d has no username", i)
		}
		if _, dup := s.users[u.Username]; dup {
			return nil, fmt.Errorf("user %q given twice", u.Username)
		}
		if u.Subject == "" {
			u.Subject = "sub-" + u.Username
		}
		u.Groups = slices.Clone(u.Groups)
		s.users[u.Username] = &u
	}
	return s, nil
}

func randomID() string { return rand.Text() }

// userBySubject is called with s.mu held.
func (s *oidcStorage) userBySubject(sub string) *OIDCUser {
	for _, u := range s.users {
		if u.Subject == sub {
			return u
		}
	}
	return nil
}

// oidcSession is a user's signed-in session at the provider (its cookie
// lets a second authorization request through without the password, as
// single sign-on does, until it expires or the user signs out).
type oidcSession struct {
	subject  string
	authTime time.Time
	expires  time.Time
}

type oidcToken struct {
	id, clientID, subject string
	audience, scopes      []string
	expires               time.Time
}

// oidcAuthRequest is one authorization request, from /authorize to the
// code's exchange (or its expiry with the provider).
type oidcAuthRequest struct {
	id, clientID, redirectURI, state, nonce string
	scopes                                  []string
	responseType                            oidc.ResponseType
	responseMode                            oidc.ResponseMode
	challenge                               *oidc.CodeChallenge
	prompt                                  []string
	maxAge                                  *uint

	subject  string
	authTime time.Time
	done     bool
}

func (a *oidcAuthRequest) GetID() string                         { return a.id }
func (a *oidcAuthRequest) GetACR() string                        { return "" }
func (a *oidcAuthRequest) GetAMR() []string                      { return []string{"pwd"} }
func (a *oidcAuthRequest) GetAudience() []string                 { return []string{a.clientID} }
func (a *oidcAuthRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *oidcAuthRequest) GetClientID() string                   { return a.clientID }
func (a *oidcAuthRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.challenge }
func (a *oidcAuthRequest) GetNonce() string                      { return a.nonce }
func (a *oidcAuthRequest) GetRedirectURI() string                { return a.redirectURI }
func (a *oidcAuthRequest) GetResponseType() oidc.ResponseType    { return a.responseType }
func (a *oidcAuthRequest) GetResponseMode() oidc.ResponseMode    { return a.responseMode }
func (a *oidcAuthRequest) GetScopes() []string                   { return a.scopes }
func (a *oidcAuthRequest) GetState() string                      { return a.state }
func (a *oidcAuthRequest) GetSubject() string                    { return a.subject }
func (a *oidcAuthRequest) Done() bool                            { return a.done }

// oidcClient is a confidential web client (client_secret_basic or _post)
// allowed the authorization code flow only, with exactly its registered
// redirect URIs; after logout it may be sent back anywhere on the origin
// of those URIs.
type oidcClient struct {
	id, secret   string
	redirectURIs []string
	origins      []string
	loginURL     func(id string) string
	idTokenTTL   time.Duration
}

func (c *oidcClient) GetID() string          { return c.id }
func (c *oidcClient) RedirectURIs() []string { return c.redirectURIs }
func (c *oidcClient) ApplicationType() op.ApplicationType {
	return op.ApplicationTypeWeb
}
func (c *oidcClient) AuthMethod() oidc.AuthMethod { return oidc.AuthMethodBasic }
func (c *oidcClient) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *oidcClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode}
}
func (c *oidcClient) LoginURL(id string) string           { return c.loginURL(id) }
func (c *oidcClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }
func (c *oidcClient) IDTokenLifetime() time.Duration      { return c.idTokenTTL }
func (c *oidcClient) DevMode() bool                       { return false }
func (c *oidcClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *oidcClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// IsScopeAllowed admits the non-standard "groups" scope, which asks for
// the groups claim (as Dex and others name it).
func (c *oidcClient) IsScopeAllowed(scope string) bool { return scope == oidcScopeGroups }

// IDTokenUserinfoClaimsAssertion puts the profile and email claims in the
// ID token even though an access token is issued too, as most providers
// do and as relying parties that read only the ID token expect.
func (c *oidcClient) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *oidcClient) ClockSkew() time.Duration             { return 0 }

func (c *oidcClient) PostLogoutRedirectURIs() []string {
	out := make([]string, 0, len(c.origins))
	for _, o := range c.origins {
		out = append(out, o+"/")
	}
	return out
}

// PostLogoutRedirectURIGlobs and RedirectURIGlobs make it an
// op.HasRedirectGlobs: globs for the post-logout URIs only, redirect URIs
// stay exact.
func (c *oidcClient) RedirectURIGlobs() []string { return nil }
func (c *oidcClient) PostLogoutRedirectURIGlobs() []string {
	var out []string
	for _, o := range c.origins {
		out = append(out, o+"/*", o+"/*/*", o+"/*/*/*")
	}
	return out
}

const oidcScopeGroups = "groups"

// errPKCERequired is what the provider answers an authorization request
// without an S256 code challenge: invalid_request, sent back to the
// client's redirect URI.
var errPKCERequired = oidc.ErrInvalidRequest().WithDescription("PKCE with code_challenge_method S256 is required")

func (s *oidcStorage) CreateAuthRequest(_ context.Context, r *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	if r.CodeChallenge == "" || r.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, errPKCERequired
	}
	a := &oidcAuthRequest{
		id:           randomID(),
		clientID:     r.ClientID,
		redirectURI:  r.RedirectURI,
		state:        r.State,
		nonce:        r.Nonce,
		scopes:       slices.Clone(r.Scopes),
		responseType: r.ResponseType,
		responseMode: r.ResponseMode,
		challenge:    &oidc.CodeChallenge{Challenge: r.CodeChallenge, Method: r.CodeChallengeMethod},
		prompt:       slices.Clone(r.Prompt),
		maxAge:       r.MaxAge,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[a.id] = a
	return a, nil
}

func (s *oidcStorage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.requests[id]
	if !ok {
		return nil, errors.New("no such authorization request")
	}
	return a, nil
}

func (s *oidcStorage) AuthRequestByCode(_ context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.requests[s.codes[code]]
	if !ok {
		return nil, errors.New("unknown or used authorization code")
	}
	return a, nil
}

func (s *oidcStorage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.requests[id]; !ok {
		return errors.New("no such authorization request")
	}
	s.codes[code] = id
	return nil
}

// DeleteAuthRequest is called once the code is exchanged: the code then
// works no more.
func (s *oidcStorage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.requests, id)
	for code, rid := range s.codes {
		if rid == id {
			delete(s.codes, code)
		}
	}
	return nil
}

// completeLogin marks an authorization request as authenticated by the
// user with that subject.
func (s *oidcStorage) completeLogin(id, subject string, authTime time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.requests[id]
	if !ok {
		return errors.New("the sign-in request expired or is unknown; start again from the application")
	}
	a.subject, a.authTime, a.done = subject, authTime, true
	return nil
}

// checkPassword returns the user's subject, or an error that does not say
// which of the two was wrong.
func (s *oidcStorage) checkPassword(username, password string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[username]
	if !ok || subtle.ConstantTimeCompare([]byte(u.Password), []byte(password)) != 1 {
		return "", errors.New("wrong username or password")
	}
	return u.Subject, nil
}

func (s *oidcStorage) CreateAccessToken(_ context.Context, r op.TokenRequest) (string, time.Time, error) {
	clientID := ""
	if a, ok := r.(*oidcAuthRequest); ok {
		clientID = a.clientID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &oidcToken{
		id:       randomID(),
		clientID: clientID,
		subject:  r.GetSubject(),
		audience: r.GetAudience(),
		scopes:   r.GetScopes(),
		expires:  time.Now().Add(s.tokenTTL),
	}
	s.tokens[t.id] = t
	return t.id, t.expires, nil
}

var errNoRefreshTokens = errors.New("this provider issues no refresh tokens")

func (s *oidcStorage) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, errNoRefreshTokens
}

func (s *oidcStorage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, errNoRefreshTokens
}

func (s *oidcStorage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

// TerminateSession revokes the access tokens the client holds for the
// user (RP-initiated logout with an id_token_hint). The browser's session
// at the provider is ended by the end_session handler, from its cookie:
// the user's sessions in other browsers stay.
func (s *oidcStorage) TerminateSession(_ context.Context, userID, clientID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, t := range s.tokens {
		if t.subject == userID && (clientID == "" || t.clientID == clientID) {
			delete(s.tokens, id)
		}
	}
	return nil
}

func (s *oidcStorage) RevokeToken(_ context.Context, tokenID, _, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tokens[tokenID]; ok {
		if t.clientID != clientID {
			return oidc.ErrInvalidClient().WithDescription("token was not issued to this client")
		}
		delete(s.tokens, tokenID)
	}
	return nil
}

type oidcSigningKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k oidcSigningKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k oidcSigningKey) Key() any                                    { return k.key }
func (k oidcSigningKey) ID() string                                  { return k.id }

type oidcPublicKey struct{ oidcSigningKey }

func (k oidcPublicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k oidcPublicKey) Use() string                        { return "sig" }
func (k oidcPublicKey) Key() any                           { return &k.key.PublicKey }

func (s *oidcStorage) SigningKey(context.Context) (op.SigningKey, error) {
	return oidcSigningKey{s.kid, s.key}, nil
}

func (s *oidcStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *oidcStorage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{oidcPublicKey{oidcSigningKey{s.kid, s.key}}}, nil
}

// GetClientByClientID returns a copy of the client carrying the ID token
// lifetime in force now, so that SetTokenLifetime applies to the next
// tokens issued.
func (s *oidcStorage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[id]
	if !ok {
		return nil, fmt.Errorf("unknown client %q", id)
	}
	cp := *c
	cp.idTokenTTL = s.tokenTTL
	return &cp, nil
}

func (s *oidcStorage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[id]
	if !ok || subtle.ConstantTimeCompare([]byte(c.secret), []byte(secret)) != 1 {
		return errors.New("unknown client or wrong client secret")
	}
	return nil
}

// SetUserinfoFromScopes is deprecated in op; SetUserinfoFromRequest does
// the work.
func (s *oidcStorage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

func (s *oidcStorage) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, r op.IDTokenRequest, scopes []string) error {
	return s.setUserinfo(info, r.GetSubject(), scopes)
}

func (s *oidcStorage) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, tokenID, subject, _ string) error {
	t, err := s.liveToken(tokenID, subject)
	if err != nil {
		return err
	}
	return s.setUserinfo(info, subject, t.scopes)
}

// liveToken returns the access token if it was issued to subject and is
// neither revoked nor expired.
func (s *oidcStorage) liveToken(tokenID, subject string) (*oidcToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[tokenID]
	if !ok || t.subject != subject || time.Now().After(t.expires) {
		return nil, errors.New("access token unknown, revoked or expired")
	}
	return t, nil
}

// setUserinfo fills the claims the scopes ask for: profile → name and
// preferred_username, email → email and email_verified, groups → groups.
func (s *oidcStorage) setUserinfo(info *oidc.UserInfo, subject string, scopes []string) error {
	s.mu.Lock()
	u := s.userBySubject(subject)
	s.mu.Unlock()
	if u == nil {
		return fmt.Errorf("unknown subject %q", subject)
	}
	info.Subject = u.Subject
	for _, scope := range scopes {
		switch scope {
		case oidc.ScopeProfile:
			info.Name = u.Name
			info.PreferredUsername = u.Username
		case oidc.ScopeEmail:
			info.Email = u.Email
			info.EmailVerified = oidc.Bool(u.Email != "")
		case oidcScopeGroups:
			groups := u.Groups
			if groups == nil {
				groups = []string{} // present and empty: the user is in no group
			}
			info.AppendClaims("groups", groups)
		}
	}
	return nil
}

func (s *oidcStorage) SetIntrospectionFromToken(_ context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, _ string) error {
	t, err := s.liveToken(tokenID, subject)
	if err != nil {
		return err
	}
	resp.Active = true
	resp.Subject = subject
	resp.ClientID = t.clientID
	resp.Scope = t.scopes
	resp.Audience = t.audience
	resp.Expiration = oidc.FromTime(t.expires)
	return nil
}

func (s *oidcStorage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (s *oidcStorage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("private_key_jwt is not supported")
}

func (s *oidcStorage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("the JWT profile grant is not supported")
}

func (s *oidcStorage) Health(context.Context) error { return nil }
