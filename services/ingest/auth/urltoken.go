package auth

// urlTokenAuth expects POST /webhooks/{source}/{token}, for senders that can
// set neither headers nor signatures (Docker Hub, Quay). The token is a
// secret: callers must never log the request path of such a source.
type urlTokenAuth struct {
	token []byte
}

func newURLToken(tok string) Authenticator { return &urlTokenAuth{token: []byte(tok)} }

func (*urlTokenAuth) Mechanism() string { return "urlToken" }

func (*urlTokenAuth) NeedsBody() bool { return false }

func (a *urlTokenAuth) Authenticate(r Request) error {
	if !r.HasToken {
		return reject("this source expects a token in the URL")
	}
	if !equal([]byte(r.Token), a.token) {
		return reject("wrong token in the URL")
	}
	return nil
}
