// Package email sends notifications as e-mail through an SMTP relay.
//
// The client is the standard library's net/smtp: it speaks exactly what a
// relay submission needs (EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA) over a
// connection this package dials, so the context bounds every step, the
// reply codes come back as *textproto.Error (4xx retried, 5xx permanent),
// and net/smtp's PLAIN refuses to send credentials over an unencrypted
// connection to anything but localhost. The message itself is built here
// with mime/multipart, so its headers (Message-ID, Date, the MIME boundary)
// are deterministic per event and a resend is the same message.
//
// TLS is "starttls" (default, port 587), "tls" (implicit TLS, port 465) or
// "none" (a local relay). With a username, AUTH PLAIN is used, or LOGIN when
// the relay offers only that.
package email

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/notifier/notify"
	"github.com/slipway-cd/slipway/services/notifier/render/markup"
)

// Kind is the integration's name.
const Kind = "email"

// TLS modes.
const (
	TLSStartTLS = "starttls"
	TLSImplicit = "tls"
	TLSNone     = "none"
)

// SubjectPrefix starts every subject.
const SubjectPrefix = "[slipway] "

// defaultTimeout bounds a send when the context has no deadline.
const defaultTimeout = 2 * time.Minute

// Receiver sends mail to the configured recipients.
type Receiver struct {
	name     string
	addr     string // host:port
	host     string
	mode     string
	username string
	password string
	from     *mail.Address
	to       []*mail.Address
	tls      *tls.Config
	helo     string
	log      *slog.Logger
}

var _ notify.Receiver = (*Receiver)(nil)

// New builds the receiver for cfg.Email.
func New(name string, cfg config.Receiver, o notify.Options) (notify.Receiver, error) {
	em := cfg.Email
	if em == nil {
		return nil, fmt.Errorf("email receiver %q: no email configuration", name)
	}
	host, _, err := net.SplitHostPort(em.SMTP)
	if err != nil || host == "" {
		return nil, fmt.Errorf("email receiver %q: smtp %q must be host:port", name, em.SMTP)
	}
	mode := strings.ToLower(strings.TrimSpace(em.TLS))
	if mode == "" {
		mode = TLSStartTLS
	}
	switch mode {
	case TLSStartTLS, TLSImplicit, TLSNone:
	default:
		return nil, fmt.Errorf("email receiver %q: tls %q must be starttls, tls or none", name, em.TLS)
	}
	if mode == TLSNone && em.Username != "" && !isLoopback(host) {
		return nil, fmt.Errorf("email receiver %q: a username with tls none would send the password in clear text to %s; use starttls or tls", name, host)
	}
	from, err := mail.ParseAddress(em.From)
	if err != nil {
		return nil, fmt.Errorf("email receiver %q: from %q: %w", name, em.From, err)
	}
	to, err := parseAddresses(em.To)
	if err != nil {
		return nil, fmt.Errorf("email receiver %q: to: %w", name, err)
	}
	if len(to) == 0 {
		return nil, fmt.Errorf("email receiver %q: to is required", name)
	}
	tlsConfig := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if em.CAFile != "" {
		pem, err := os.ReadFile(em.CAFile)
		if err != nil {
			return nil, fmt.Errorf("email receiver %q: caFile: %w", name, err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("email receiver %q: caFile %s holds no PEM certificate", name, em.CAFile)
		}
		tlsConfig.RootCAs = pool
	}
	helo, err := os.Hostname()
	if err != nil || helo == "" || strings.ContainsAny(helo, " \r\n") {
		helo = "localhost"
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Receiver{
		name: name, addr: em.SMTP, host: host, mode: mode,
		username: em.Username, password: em.Password,
		from: from, to: to, tls: tlsConfig, helo: helo,
		log: log.With("receiver", name, "kind", Kind),
	}, nil
}

// Name implements notify.Receiver.
func (r *Receiver) Name() string { return r.name }

// Kind implements notify.Receiver.
func (r *Receiver) Kind() string { return Kind }

// Notify sends one mail and returns nil once the relay accepted it (250
// after DATA). A notification's Channel, when set (an app's slipway.notify
// label "email:a@example.com,b@example.com"), replaces the recipients.
func (r *Receiver) Notify(ctx context.Context, n notify.Notification) error {
	to := r.to
	if ch := strings.TrimSpace(n.Channel); ch != "" {
		list, err := parseAddresses(strings.Split(ch, ","))
		if err != nil || len(list) == 0 {
			return bus.Permanent(fmt.Errorf("email: channel %q is not a list of addresses: %v", ch, err))
		}
		to = list
	}
	msg, err := r.compose(n, to)
	if err != nil {
		return bus.Permanent(fmt.Errorf("email: compose: %w", err))
	}
	if err := r.send(ctx, to, msg); err != nil {
		return err
	}
	r.log.DebugContext(ctx, "mail sent", "event_id", n.Event.ID(), "recipients", len(to))
	return nil
}

// send runs one SMTP transaction.
func (r *Receiver) send(ctx context.Context, to []*mail.Address, msg []byte) (err error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultTimeout)
		defer cancel()
	}
	// Whatever fails once the context is done failed because of it.
	defer func() {
		if err != nil && ctx.Err() != nil && !bus.IsPermanent(err) {
			err = fmt.Errorf("email: %s: %w (%v)", r.addr, ctx.Err(), err)
		}
	}()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", r.addr)
	if err != nil {
		return fmt.Errorf("email: connect %s: %w", r.addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if r.mode == TLSImplicit {
		tc := tls.Client(conn, r.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("email: TLS with %s: %w", r.addr, err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, r.host)
	if err != nil {
		return r.smtpErr("greeting", err)
	}
	defer c.Close()
	if err := c.Hello(r.helo); err != nil {
		return r.smtpErr("EHLO", err)
	}
	if r.mode == TLSStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return bus.Permanent(fmt.Errorf("email: %s does not offer STARTTLS (set tls: tls for implicit TLS, or none for a local relay)", r.addr))
		}
		if err := c.StartTLS(r.tls); err != nil {
			return r.smtpErr("STARTTLS", err)
		}
	}
	if r.username != "" {
		auth, err := r.auth(c)
		if err != nil {
			return err
		}
		if err := c.Auth(auth); err != nil {
			return r.smtpErr("AUTH", err)
		}
	}
	if err := c.Mail(r.from.Address); err != nil {
		return r.smtpErr("MAIL FROM", err)
	}
	for _, a := range to {
		if err := c.Rcpt(a.Address); err != nil {
			return r.smtpErr("RCPT TO", err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return r.smtpErr("DATA", err)
	}
	if _, err := w.Write(msg); err != nil {
		return r.smtpErr("DATA", err)
	}
	if err := w.Close(); err != nil { // the relay's verdict on the message
		return r.smtpErr("DATA", err)
	}
	// The message is accepted; a failing QUIT changes nothing.
	_ = c.Quit()
	return nil
}

// auth picks PLAIN, or LOGIN when the relay offers only that.
func (r *Receiver) auth(c *smtp.Client) (smtp.Auth, error) {
	ok, mechs := c.Extension("AUTH")
	if !ok {
		return nil, bus.Permanent(fmt.Errorf("email: %s does not offer AUTH (a username is configured)", r.addr))
	}
	offered := strings.Fields(strings.ToUpper(mechs))
	switch {
	case slices.Contains(offered, "PLAIN"):
		return smtp.PlainAuth("", r.username, r.password, r.host), nil
	case slices.Contains(offered, "LOGIN"):
		return &loginAuth{username: r.username, password: r.password, host: r.host}, nil
	default:
		return nil, bus.Permanent(fmt.Errorf("email: %s offers AUTH %s, none of PLAIN, LOGIN", r.addr, mechs))
	}
}

// smtpErr classifies a failed step: a 4xx reply is retried, a 5xx reply
// (unknown recipient, authentication failed, message refused) is permanent,
// and anything else (a dropped connection, a timeout, a TLS failure) is
// retried.
func (r *Receiver) smtpErr(step string, err error) error {
	var te *textproto.Error
	if errors.As(err, &te) {
		e := fmt.Errorf("email: %s at %s: %d %s", step, r.addr, te.Code, te.Msg)
		if te.Code >= 500 {
			return bus.Permanent(e)
		}
		return e
	}
	if step == "AUTH" && !errors.Is(err, io.EOF) && !isNetErr(err) {
		// net/smtp refusing to authenticate (unencrypted connection, wrong
		// host name): configuration, not weather.
		return bus.Permanent(fmt.Errorf("email: %s at %s: %w", step, r.addr, err))
	}
	return fmt.Errorf("email: %s at %s: %w", step, r.addr, err)
}

func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed)
}

// loginAuth is the LOGIN SASL mechanism (draft-murchison-sasl-login), which
// net/smtp does not provide. Like net/smtp's PLAIN, it refuses to send the
// password over an unencrypted connection except to localhost.
type loginAuth struct {
	username, password, host string
	step                     int
}

func (a *loginAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if !server.TLS && !isLoopback(server.Name) {
		return "", nil, errors.New("unencrypted connection")
	}
	if server.Name != a.host {
		return "", nil, errors.New("wrong host name")
	}
	a.step = 0
	return "LOGIN", nil, nil
}

func (a *loginAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	prompt := strings.ToLower(strings.TrimSpace(string(fromServer)))
	a.step++
	switch {
	case strings.HasPrefix(prompt, "user"):
		return []byte(a.username), nil
	case strings.HasPrefix(prompt, "pass"):
		return []byte(a.password), nil
	case a.step == 1:
		return []byte(a.username), nil
	case a.step == 2:
		return []byte(a.password), nil
	default:
		return nil, fmt.Errorf("unexpected LOGIN challenge %q", fromServer)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func parseAddresses(list []string) ([]*mail.Address, error) {
	var out []*mail.Address
	for _, s := range list {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		a, err := mail.ParseAddress(s)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// compose renders the message: headers, then a multipart/alternative body
// with a text/plain and a text/html part, both quoted-printable UTF-8.
//
// The Message-ID derives from the event id (and the receiver and channel,
// which make separate messages of one event), Date is the event's time and
// the MIME boundary derives from the Message-ID, so a resend of the same
// notification is byte for byte the same message and mail clients
// recognise it. Messages of one release share a References header, which
// threads them in clients that thread by reference.
func (r *Receiver) compose(n notify.Notification, to []*mail.Address) ([]byte, error) {
	m := n.Message
	domain := "slipway.invalid"
	if at := strings.LastIndexByte(r.from.Address, '@'); at >= 0 && at < len(r.from.Address)-1 {
		domain = r.from.Address[at+1:]
	}
	eventID := n.Event.ID()
	if eventID == "" {
		return nil, errors.New("the event has no id")
	}
	key := shortHash(r.name, n.Channel)
	msgID := "<" + sanitizeID(eventID) + "." + key + "@" + domain + ">"
	date := n.Event.Time()
	if date.IsZero() {
		date = time.Now()
	}

	var b bytes.Buffer
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("From", r.from.String())
	tos := make([]string, len(to))
	for i, a := range to {
		tos[i] = a.String()
	}
	header("To", strings.Join(tos, ", "))
	header("Subject", mime.QEncoding.Encode("utf-8", markup.Line(SubjectPrefix+m.Title)))
	header("Date", date.Format(time.RFC1123Z))
	header("Message-ID", msgID)
	if m.Thread != "" {
		header("References", "<thread."+shortHash(r.name, n.Channel, m.Thread)+"@"+domain+">")
	}
	header("Auto-Submitted", "auto-generated") // RFC 3834: no auto-replies
	header("X-Slipway-Event-Id", oneLine(eventID))
	header("X-Slipway-Event-Type", oneLine(n.Event.Type()))
	header("MIME-Version", "1.0")

	mw := multipart.NewWriter(&b)
	if err := mw.SetBoundary("slipway-" + shortHash(msgID) + shortHash("boundary", msgID)); err != nil {
		return nil, err
	}
	header("Content-Type", mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": mw.Boundary()}))
	b.WriteString("\r\n")

	for _, part := range []struct{ typ, body string }{
		{"text/plain", plainText(m)},
		{"text/html", htmlBody(m)},
	} {
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", part.typ+"; charset=utf-8")
		h.Set("Content-Transfer-Encoding", "quoted-printable")
		pw, err := mw.CreatePart(h)
		if err != nil {
			return nil, err
		}
		qp := quotedprintable.NewWriter(pw)
		if _, err := io.WriteString(qp, crlf(part.body)); err != nil {
			return nil, err
		}
		if err := qp.Close(); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// plainText is the text part: the text, the facts and the link. Text from
// an event is cleaned of control characters, and a fact stays on its line:
// a value cannot forge a line of its own.
func plainText(m notify.Message) string {
	var b strings.Builder
	b.WriteString(strings.TrimSpace(markup.Text(m.Text)))
	if len(m.Facts) > 0 {
		b.WriteString("\n\n")
		for _, f := range m.Facts {
			b.WriteString(markup.Line(f.Name) + ": " + markup.Line(f.Value) + "\n")
		}
	}
	if m.Approval != nil && m.Approval.ID != "" {
		fmt.Fprintf(&b, "\nDecide with: slipway approvals approve %s, or: slipway approvals reject %s\n", m.Approval.ID, m.Approval.ID)
	}
	if m.Link != "" {
		b.WriteString("\n" + m.Link + "\n")
	}
	return strings.TrimLeft(b.String(), "\n") + "\n"
}

// htmlBody is Message.HTML, or the message escaped into a minimal page.
func htmlBody(m notify.Message) string {
	if strings.TrimSpace(m.HTML) != "" {
		// html/template made it, escaping what it inserted; control
		// characters go too (removing them never makes markup).
		return markup.Text(m.HTML)
	}
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>")
	b.WriteString(markup.HTML(m.Title))
	b.WriteString("</title></head><body>\n<h2>")
	b.WriteString(markup.HTML(m.Title))
	b.WriteString("</h2>\n")
	if text := strings.TrimSpace(m.Text); text != "" {
		b.WriteString("<p>")
		b.WriteString(strings.ReplaceAll(markup.HTML(text), "\n", "<br>\n"))
		b.WriteString("</p>\n")
	}
	if len(m.Facts) > 0 {
		b.WriteString("<table>\n")
		for _, f := range m.Facts {
			b.WriteString("<tr><th align=\"left\">" + markup.HTML(f.Name) + "</th><td>" + markup.HTML(f.Value) + "</td></tr>\n")
		}
		b.WriteString("</table>\n")
	}
	if m.Approval != nil && m.Approval.ID != "" {
		id := markup.HTML(m.Approval.ID)
		b.WriteString("<p>Decide with: <code>slipway approvals approve " + id + "</code>, or: <code>slipway approvals reject " + id + "</code></p>\n")
	}
	if m.Link != "" && (strings.HasPrefix(m.Link, "https://") || strings.HasPrefix(m.Link, "http://")) {
		l := markup.HTML(m.Link)
		b.WriteString("<p><a href=\"" + l + "\">" + l + "</a></p>\n")
	}
	b.WriteString("</body></html>\n")
	return b.String()
}

// crlf normalises line endings to CRLF, as SMTP requires.
func crlf(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.ReplaceAll(s, "\n", "\r\n")
}

// oneLine keeps a header value on one line (no header injection).
func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' }), " ")
}

// sanitizeID keeps the characters allowed in a Message-ID's left part.
func sanitizeID(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune("!#$%&'*+-/=?^_`{|}~.", r):
			return r
		default:
			return '-'
		}
	}, s)
}

func shortHash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil)[:6])
}
