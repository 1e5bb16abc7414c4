package email_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/notifier/notify"
	"github.com/slipway-cd/slipway/services/notifier/notify/email"
)

// relay is a real SMTP server (emersion/go-smtp) in process: STARTTLS or
// implicit TLS with a self-signed certificate, and AUTH required before
// MAIL when it has users, as a submission relay (port 587/465) does.
type relay struct {
	addr   string
	caFile string

	mechs []string          // AUTH mechanisms offered
	users map[string]string // username → password; nil: no AUTH required

	mu          sync.Mutex
	mailErr     []error // scripted replies, consumed one per command
	rcptErr     []error
	dataErr     []error
	authTries   int
	blockData   chan struct{} // when set, DATA waits for it
	dataStarted chan struct{}

	got chan delivery
}

type delivery struct {
	from string
	to   []string
	user string
	tls  bool
	data []byte
}

type relayOptions struct {
	tls      string // starttls, tls, none
	mechs    []string
	users    map[string]string
	noCAFile bool
}

func newRelay(t *testing.T, o relayOptions) *relay {
	t.Helper()
	r := &relay{mechs: o.mechs, users: o.users, got: make(chan delivery, 16)}
	if r.mechs == nil {
		r.mechs = []string{sasl.Plain}
	}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{relay: r, conn: c}, nil
	}))
	s.Domain = "relay.test"
	s.ErrorLog = log.New(io.Discard, "", 0)
	s.MaxRecipients = 10
	var tlsConfig *tls.Config
	if o.tls != "none" {
		cert, caPEM := selfSigned(t)
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		r.caFile = filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(r.caFile, caPEM, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var (
		l   net.Listener
		err error
	)
	switch o.tls {
	case "tls":
		l, err = tls.Listen("tcp", "127.0.0.1:0", tlsConfig)
	case "starttls":
		s.TLSConfig = tlsConfig
		l, err = net.Listen("tcp", "127.0.0.1:0")
	default:
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	r.addr = l.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(l)
	}()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return r
}

// selfSigned makes a certificate for 127.0.0.1 and localhost that is its
// own CA.
func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "relay.test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func (r *relay) script(list *[]error, errs ...error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*list = append(*list, errs...)
}

func (r *relay) pop(list *[]error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(*list) == 0 {
		return nil
	}
	err := (*list)[0]
	*list = (*list)[1:]
	return err
}

func (r *relay) tries() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.authTries
}

// next returns the delivery Notify just made (the relay queues it before it
// answers 250 to DATA).
func (r *relay) next(t *testing.T) delivery {
	t.Helper()
	select {
	case d := <-r.got:
		return d
	default:
		t.Fatal("the relay received no message")
		return delivery{}
	}
}

func (r *relay) none(t *testing.T) {
	t.Helper()
	select {
	case d := <-r.got:
		t.Fatalf("the relay received a message: %s", d.data)
	default:
	}
}

type session struct {
	relay *relay
	conn  *smtp.Conn
	user  string
	from  string
	to    []string
}

var errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}

func (s *session) AuthMechanisms() []string { return s.relay.mechs }

func (s *session) Auth(mech string) (sasl.Server, error) {
	if s.relay.users == nil {
		return nil, smtp.ErrAuthUnsupported
	}
	s.relay.mu.Lock()
	s.relay.authTries++
	s.relay.mu.Unlock()
	check := func(username, password string) error {
		if want, ok := s.relay.users[username]; !ok || want != password {
			return smtp.ErrAuthFailed // 535 5.7.8, as Postfix answers
		}
		s.user = username
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return smtp.ErrAuthFailed
			}
			return check(username, password)
		}), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// loginServer is the server side of SASL LOGIN (go-sasl has only the
// client).
type loginServer struct {
	check    func(user, pass string) error
	username string
	step     int
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	l.step++
	switch l.step {
	case 1:
		if response != nil { // initial response: the username
			l.username = string(response)
			l.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 2:
		l.username = string(response)
		return []byte("Password:"), false, nil
	case 3:
		return nil, true, l.check(l.username, string(response))
	}
	return nil, false, errors.New("unexpected LOGIN step")
}

func (s *session) authed() bool { return s.relay.users == nil || s.user != "" }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if !s.authed() {
		return errAuthRequired
	}
	if err := s.relay.pop(&s.relay.mailErr); err != nil {
		return err
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if !s.authed() {
		return errAuthRequired
	}
	if err := s.relay.pop(&s.relay.rcptErr); err != nil {
		return err
	}
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.relay.mu.Lock()
	block, started := s.relay.blockData, s.relay.dataStarted
	s.relay.mu.Unlock()
	if block != nil {
		close(started)
		<-block
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "too late"}
	}
	if err := s.relay.pop(&s.relay.dataErr); err != nil {
		return err
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.relay.got <- delivery{from: s.from, to: slices.Clone(s.to), user: s.user, tls: isTLS, data: b}
	return nil
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

func newReceiver(t *testing.T, r *relay, mut func(*config.EmailReceiver)) notify.Receiver {
	t.Helper()
	cfg := &config.EmailReceiver{
		SMTP: r.addr, Username: "slipway", Password: "s3cret",
		From: "Slipway <slipway@example.com>", To: []string{"Release Team <releases@example.com>", "ops@example.com"},
		TLS: "starttls", CAFile: r.caFile,
	}
	if mut != nil {
		mut(cfg)
	}
	rec, err := email.New("team-mail", config.Receiver{Name: "team-mail", Email: cfg}, notify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

var eventTime = time.Date(2026, 5, 1, 12, 30, 0, 0, time.UTC)

func notification(t *testing.T, id string, m notify.Message) notify.Notification {
	t.Helper()
	e, err := events.New(context.Background(), events.Spec{
		ID: id, Type: events.TypeImagePromoted, Source: "/slipway/promoter", Environment: "prd",
		Subject: "reg.prd.example/apps/web:1.4.0@sha256:abc", Time: eventTime,
		Data: events.ImagePromoted{Promotion: "tst-to-prd"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return notify.Notification{Event: e, Message: m}
}

var message = notify.Message{
	Title:    "apps/web 1.4.0 promoted to prd — ✓",
	Text:     "Copied from tst to prd.\n12 blobs copied, 3 skipped.",
	HTML:     "<p>Copied from <b>tst</b> to <b>prd</b>.</p>",
	Status:   "promoted",
	Severity: notify.Good,
	Facts:    []notify.Fact{{Name: "Image", Value: "reg.prd.example/apps/web:1.4.0"}, {Name: "Digest", Value: "sha256:abc"}},
	Thread:   "sha256:abc",
	Link:     "https://slipway.example/releases/apps/web/1.4.0",
}

type parsed struct {
	header   mail.Header
	text     string
	html     string
	partCTEs []string
}

// parse reads a message as a mail client does: net/mail for the headers,
// mime/multipart for the alternative parts, quoted-printable decoded.
func parse(t *testing.T, data []byte) parsed {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("read message: %v\n%s", err, data)
	}
	p := parsed{header: msg.Header}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q (%v), want multipart/alternative", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var types []string
	for {
		part, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("next part: %v", err)
		}
		pt, pp, err := mime.ParseMediaType(part.Header.Get("Content-Type"))
		if err != nil {
			t.Fatal(err)
		}
		if pp["charset"] != "utf-8" {
			t.Errorf("%s charset %q, want utf-8", pt, pp["charset"])
		}
		cte := part.Header.Get("Content-Transfer-Encoding")
		p.partCTEs = append(p.partCTEs, cte)
		var body io.Reader = part
		if cte == "quoted-printable" {
			body = quotedprintable.NewReader(part)
		}
		b, err := io.ReadAll(body)
		if err != nil {
			t.Fatalf("%s part: %v", pt, err)
		}
		switch pt {
		case "text/plain":
			p.text = string(b)
		case "text/html":
			p.html = string(b)
		}
		types = append(types, pt)
	}
	// multipart/alternative: the preferred (richest) part comes last.
	if !slices.Equal(types, []string{"text/plain", "text/html"}) {
		t.Fatalf("parts %v, want text/plain then text/html", types)
	}
	return p
}

func TestSTARTTLSWithPlainAuthDeliversMultipartMessage(t *testing.T) {
	relay := newRelay(t, relayOptions{tls: "starttls", users: map[string]string{"slipway": "s3cret"}})
	r := newReceiver(t, relay, nil)
	if r.Kind() != "email" || r.Name() != "team-mail" {
		t.Fatalf("Kind, Name = %q, %q", r.Kind(), r.Name())
	}
	id := events.ID("test", t.Name())
	if err := r.Notify(context.Background(), notification(t, id, message)); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	d := relay.next(t)
	if !d.tls || d.user != "slipway" {
		t.Errorf("tls %v, user %q: want an authenticated TLS session", d.tls, d.user)
	}
	if d.from != "slipway@example.com" || !slices.Equal(d.to, []string{"releases@example.com", "ops@example.com"}) {
		t.Errorf("envelope from %q to %v", d.from, d.to)
	}
	if bytes.Contains(d.data, []byte("\n")) && !bytes.Contains(d.data, []byte("\r\n")) {
		t.Error("message lines do not end in CRLF")
	}
	p := parse(t, d.data)
	h := p.header
	dec := new(mime.WordDecoder)
	subject, err := dec.DecodeHeader(h.Get("Subject"))
	if err != nil || subject != "[slipway] "+message.Title {
		t.Errorf("Subject = %q (%v), want %q", subject, err, "[slipway] "+message.Title)
	}
	if from, err := mail.ParseAddress(h.Get("From")); err != nil || from.Address != "slipway@example.com" || from.Name != "Slipway" {
		t.Errorf("From = %q (%v)", h.Get("From"), err)
	}
	to, err := h.AddressList("To")
	if err != nil || len(to) != 2 || to[0].Address != "releases@example.com" || to[0].Name != "Release Team" || to[1].Address != "ops@example.com" {
		t.Errorf("To = %q (%v)", h.Get("To"), err)
	}
	if date, err := h.Date(); err != nil || !date.Equal(eventTime) {
		t.Errorf("Date = %q (%v), want the event time %v", h.Get("Date"), err, eventTime)
	}
	msgID := h.Get("Message-ID")
	if !strings.HasPrefix(msgID, "<"+id+".") || !strings.HasSuffix(msgID, "@example.com>") {
		t.Errorf("Message-ID = %q, want <%s.…@example.com>", msgID, id)
	}
	if h.Get("MIME-Version") != "1.0" || h.Get("Auto-Submitted") != "auto-generated" || h.Get("X-Slipway-Event-Id") != id {
		t.Errorf("MIME-Version %q, Auto-Submitted %q, X-Slipway-Event-Id %q", h.Get("MIME-Version"), h.Get("Auto-Submitted"), h.Get("X-Slipway-Event-Id"))
	}
	if refs := h.Get("References"); !strings.HasPrefix(refs, "<thread.") {
		t.Errorf("References = %q, want the release thread", refs)
	}
	if !slices.Equal(p.partCTEs, []string{"quoted-printable", "quoted-printable"}) {
		t.Errorf("transfer encodings %v", p.partCTEs)
	}
	for _, want := range []string{"Copied from tst to prd.\r\n12 blobs copied, 3 skipped.", "Image: reg.prd.example/apps/web:1.4.0", "Digest: sha256:abc", message.Link} {
		if !strings.Contains(p.text, want) {
			t.Errorf("text part lacks %q:\n%s", want, p.text)
		}
	}
	if strings.TrimSpace(p.html) != message.HTML {
		t.Errorf("html part = %q, want Message.HTML %q", p.html, message.HTML)
	}
}

func TestImplicitTLS(t *testing.T) {
	relay := newRelay(t, relayOptions{tls: "tls", users: map[string]string{"slipway": "s3cret"}})
	r := newReceiver(t, relay, func(c *config.EmailReceiver) { c.TLS = "tls" })
	if err := r.Notify(context.Background(), notification(t, events.ID("implicit"), message)); err != nil {
		t.Fatal(err)
	}
	if d := relay.next(t); !d.tls || d.user != "slipway" {
		t.Errorf("tls %v, user %q", d.tls, d.user)
	}
}

func TestLoginAuthWhenPlainIsNotOffered(t *testing.T) {
	relay := newRelay(t, relayOptions{tls: "starttls", mechs: []string{sasl.Login}, users: map[string]string{"slipway": "s3cret"}})
	r := newReceiver(t, relay, nil)
	if err := r.Notify(context.Background(), notification(t, events.ID("login"), message)); err != nil {
		t.Fatal(err)
	}
	if d := relay.next(t); d.user != "slipway" {
		t.Errorf("user %q", d.user)
	}
}

func TestUnencryptedLocalRelayWithoutAuth(t *testing.T) {
	relay := newRelay(t, relayOptions{tls: "none"})
	r := newReceiver(t, relay, func(c *config.EmailReceiver) { c.TLS, c.Username, c.Password, c.CAFile = "none", "", "", "" })
	if err := r.Notify(context.Background(), notification(t, events.ID("plain"), message)); err != nil {
		t.Fatal(err)
	}
	if d := relay.next(t); d.tls || d.user != "" {
		t.Errorf("tls %v, user %q", d.tls, d.user)
	}
}

func TestTextIsEscapedIntoHTMLWhenThereIsNoHTML(t *testing.T) {
	relay := newRelay(t, relayOptions{tls: "starttls", users: map[string]string{"slipway": "s3cret"}})
	r := newReceiver(t, relay, nil)
	m := message
	m.HTML = ""
	m.Text = "Tag <script>alert(1)</script> & more\nsecond line"
	m.Facts = []notify.Fact{{Name: "Repo", Value: "apps/<web>"}}
	if err := r.Notify(context.Background(), notification(t, events.ID("escape"), m)); err != nil {
		t.Fatal(err)
	}
	p := parse(t, relay.next(t).data)
	if strings.Contains(p.html, "<script>") || strings.Contains(p.html, "apps/<web>") {
		t.Errorf("html part does not escape the text:\n%s", p.html)
	}
	for _, want := range []string{"Tag &lt;script&gt;alert(1)&lt;/script&gt; &amp; more<br>", "second line", "apps/&lt;web&gt;", `<a href="` + m.Link + `">`, "<h2>apps/web 1.4.0 promoted to prd — ✓</h2>"} {
		if !strings.Contains(p.html, want) {
			t.Errorf("html part lacks %q:\n%s", want, p.html)
		}
	}
	if !strings.Contains(p.text, "Tag <script>alert(1)</script> & more") {
		t.Errorf("text part = %q", p.text)
	}
}

func TestResendIsTheSameMessage(t *testing.T) {
	relay := newRelay(t, relayOptions{tls: "starttls", users: map[string]string{"slipway": "s3cret"}})
	r := newReceiver(t, relay, nil)
	id := events.ID("resend")
	for range 2 {
		if err := r.Notify(context.Background(), notification(t, id, message)); err != nil {
			t.Fatal(err)
		}
	}
	first, second := relay.next(t), relay.next(t)
	if !bytes.Equal(first.data, second.data) {
		t.Errorf("a resend differs:\n%s\n---\n%s", first.data, second.data)
	}
	if err := r.Notify(context.Background(), notification(t, events.ID("another"), message)); err != nil {
		t.Fatal(err)
	}
	other := relay.next(t)
	a, b := parse(t, first.data).header.Get("Message-ID"), parse(t, other.data).header.Get("Message-ID")
	if a == b {
		t.Errorf("two events share Message-ID %s", a)
	}
	if ta, tb := parse(t, first.data).header.Get("References"), parse(t, other.data).header.Get("References"); ta != tb {
		t.Errorf("one release, two threads: %q, %q", ta, tb)
	}
}

func TestChannelReplacesRecipients(t *testing.T) {
	relay := newRelay(t, relayOptions{tls: "starttls", users: map[string]string{"slipway": "s3cret"}})
	r := newReceiver(t, relay, nil)
	n := notification(t, events.ID("channel"), message)
	n.Channel = "payments@example.com, Pay Ops <payops@example.com>"
	if err := r.Notify(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	d := relay.next(t)
	if !slices.Equal(d.to, []string{"payments@example.com", "payops@example.com"}) {
		t.Errorf("envelope to %v", d.to)
	}
	n.Channel = "#payments"
	if err := r.Notify(context.Background(), n); !bus.IsPermanent(err) {
		t.Errorf("channel that is no address: err = %v, want permanent", err)
	}
}

func TestWrongPasswordIsPermanent(t *testing.T) {
	relay := newRelay(t, relayOptions{tls: "starttls", users: map[string]string{"slipway": "s3cret"}})
	r := newReceiver(t, relay, func(c *config.EmailReceiver) { c.Password = "wrong-password" })
	err := r.Notify(context.Background(), notification(t, events.ID("auth"), message))
	if !bus.IsPermanent(err) || !strings.Contains(err.Error(), "535") {
		t.Fatalf("err = %v, want a permanent 535", err)
	}
	if strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("error leaks the password: %v", err)
	}
	relay.none(t)
}

func TestTemporaryRejectionsAreRetried(t *testing.T) {
	relay := newRelay(t, relayOptions{tls: "starttls", users: map[string]string{"slipway": "s3cret"}})
	r := newReceiver(t, relay, nil)
	n := notification(t, events.ID("temp"), message)
	relay.script(&relay.mailErr, &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Service shutting down"})
	relay.script(&relay.rcptErr, &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "Mailbox busy"})
	relay.script(&relay.dataErr, &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Insufficient system storage"})
	for i, code := range []string{"421", "450", "452"} {
		err := r.Notify(context.Background(), n)
		if err == nil || bus.IsPermanent(err) || !strings.Contains(err.Error(), code) {
			t.Errorf("attempt %d: err = %v, want a retryable %s", i+1, err, code)
		}
	}
	relay.none(t)
	if err := r.Notify(context.Background(), n); err != nil {
		t.Fatalf("after the relay recovered: %v", err)
	}
	relay.next(t)
}

func TestPermanentRejectionsArePermanent(t *testing.T) {
	relay := newRelay(t, relayOptions{tls: "starttls", users: map[string]string{"slipway": "s3cret"}})
	r := newReceiver(t, relay, nil)
	relay.script(&relay.rcptErr, &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"})
	relay.script(&relay.dataErr, &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Message rejected as spam"})
	for i, code := range []string{"550", "554"} {
		err := r.Notify(context.Background(), notification(t, events.ID("perm"), message))
		if !bus.IsPermanent(err) || !strings.Contains(err.Error(), code) {
			t.Errorf("attempt %d: err = %v, want a permanent %s", i+1, err, code)
		}
	}
	relay.none(t)
}

func TestRelayWithoutSTARTTLSIsPermanentAndGetsNoPassword(t *testing.T) {
	relay := newRelay(t, relayOptions{tls: "none", users: map[string]string{"slipway": "s3cret"}})
	r := newReceiver(t, relay, func(c *config.EmailReceiver) { c.CAFile = "" })
	err := r.Notify(context.Background(), notification(t, events.ID("nostarttls"), message))
	if !bus.IsPermanent(err) || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("err = %v, want a permanent error about STARTTLS", err)
	}
	if n := relay.tries(); n != 0 {
		t.Errorf("%d AUTH attempts over a clear-text connection", n)
	}
	relay.none(t)
}

func TestUntrustedCertificateIsNotTrusted(t *testing.T) {
	relay := newRelay(t, relayOptions{tls: "starttls", users: map[string]string{"slipway": "s3cret"}})
	r := newReceiver(t, relay, func(c *config.EmailReceiver) { c.CAFile = "" })
	err := r.Notify(context.Background(), notification(t, events.ID("untrusted"), message))
	if err == nil {
		t.Fatal("Notify trusted a self-signed certificate without caFile")
	}
	var uerr x509.UnknownAuthorityError
	if !errors.As(err, &uerr) {
		t.Errorf("err = %v, want an unknown-authority error", err)
	}
	if n := relay.tries(); n != 0 {
		t.Errorf("%d AUTH attempts to an unverified server", n)
	}
	relay.none(t)
}

func TestCancelledContextAbortsTheSend(t *testing.T) {
	relay := newRelay(t, relayOptions{tls: "starttls", users: map[string]string{"slipway": "s3cret"}})
	release, started := make(chan struct{}), make(chan struct{})
	relay.mu.Lock()
	relay.blockData, relay.dataStarted = release, started
	relay.mu.Unlock()
	t.Cleanup(func() { close(release) })
	r := newReceiver(t, relay, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started // the relay holds the DATA reply
		cancel()
	}()
	err := r.Notify(ctx, notification(t, events.ID("cancel"), message))
	if !errors.Is(err, context.Canceled) || bus.IsPermanent(err) {
		t.Fatalf("err = %v, want a retryable context.Canceled", err)
	}
}

func TestNewRejectsBadConfiguration(t *testing.T) {
	good := func() *config.EmailReceiver {
		return &config.EmailReceiver{SMTP: "smtp.example.com:587", From: "slipway@example.com", To: []string{"a@example.com"}}
	}
	for name, mut := range map[string]func(*config.EmailReceiver){
		"no host:port":     func(c *config.EmailReceiver) { c.SMTP = "smtp.example.com" },
		"bad tls":          func(c *config.EmailReceiver) { c.TLS = "ssl3" },
		"bad from":         func(c *config.EmailReceiver) { c.From = "not an address" },
		"no to":            func(c *config.EmailReceiver) { c.To = nil },
		"bad to":           func(c *config.EmailReceiver) { c.To = []string{"@"} },
		"clear-text login": func(c *config.EmailReceiver) { c.TLS, c.Username, c.Password = "none", "u", "p" },
		"missing caFile":   func(c *config.EmailReceiver) { c.CAFile = filepath.Join(t.TempDir(), "nope.pem") },
	} {
		c := good()
		mut(c)
		if _, err := email.New("x", config.Receiver{Name: "x", Email: c}, notify.Options{}); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	if _, err := email.New("x", config.Receiver{Name: "x"}, notify.Options{}); err == nil {
		t.Error("no email section: New succeeded")
	}
	if _, err := email.New("x", config.Receiver{Name: "x", Email: good()}, notify.Options{}); err != nil {
		t.Errorf("good config: %v", err)
	}
}
