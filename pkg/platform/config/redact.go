package config

import (
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Redacted stands in for a secret that is not shown (the mark Go's
// url.URL.Redacted uses).
const Redacted = "xxxxx"

// RedactURL returns raw fit for an error message or a log line: the
// password of its user information (all of it when there is no password:
// then it is a token), and the value of each query parameter, become
// Redacted; a fragment is dropped. Scheme, host and path stay, so the
// operator still sees which server is meant. Text that is no valid URL is
// redacted as far as its shape allows: a typo must not print a password.
func RedactURL(raw string) string {
	raw, _, _ = strings.Cut(raw, "#")
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		var b strings.Builder
		b.WriteString(u.Scheme + "://")
		if u.User != nil {
			b.WriteString(redactUserinfo(u.User.String()) + "@")
		}
		b.WriteString(u.Host + u.EscapedPath())
		if u.RawQuery != "" || u.ForceQuery {
			b.WriteString("?" + redactQuery(u.RawQuery))
		}
		return b.String()
	}
	rest, query, hasQuery := strings.Cut(raw, "?")
	scheme, rest := splitScheme(rest)
	// Without a valid shape, anything before the last "@" may be
	// credentials (a password holding "/", say).
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		ui := Redacted
		if !strings.Contains(rest[:at], "/") {
			ui = redactUserinfo(rest[:at])
		}
		rest = ui + rest[at:]
	}
	if hasQuery {
		rest += "?" + redactQuery(query)
	}
	return scheme + rest
}

// RedactSecretURL is RedactURL for a URL that is a secret as a whole: a
// Slack incoming webhook (https://hooks.slack.com/services/T…/B…/secret), a
// Teams or Power Automate webhook (its sig= query), or any URL whose parts
// are unknown, such as the one in an HTTP client's error. Only the scheme
// and the host stay.
func RedactSecretURL(raw string) string {
	raw, _, _ = strings.Cut(raw, "#")
	scheme, rest := splitScheme(raw)
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		rest = rest[at+1:]
	}
	host, tail := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		host, tail = rest[:i], rest[i:]
	}
	switch tail {
	case "", "/":
		return scheme + host + tail
	}
	return scheme + host + "/" + Redacted
}

// splitScheme cuts "scheme://" off raw, if it has one.
func splitScheme(raw string) (scheme, rest string) {
	if i := strings.Index(raw, "://"); i >= 0 && !strings.ContainsAny(raw[:i], "/?@") {
		return raw[:i+3], raw[i+3:]
	}
	return "", raw
}

// redactUserinfo keeps a user name and hides its password; user
// information without a password is a token and hidden whole.
func redactUserinfo(ui string) string {
	if user, _, ok := strings.Cut(ui, ":"); ok {
		return user + ":" + Redacted
	}
	return Redacted
}

// redactQuery keeps the parameter names (sig, token, api-version) and
// hides their values.
func redactQuery(q string) string {
	if q == "" {
		return ""
	}
	parts := strings.Split(q, "&")
	for i, p := range parts {
		if k, _, ok := strings.Cut(p, "="); ok {
			parts[i] = k + "=" + Redacted
		} else {
			parts[i] = Redacted
		}
	}
	return strings.Join(parts, "&")
}

// RedactError returns err with the URL of the *url.Error it holds shown as
// RedactSecretURL shows it: net/http's errors repeat the whole request URL,
// a webhook's secret path and query included. errors.Is and errors.As see
// the same errors as before, but for that URL.
func RedactError(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) || ue.URL == "" {
		return err
	}
	safe := RedactSecretURL(ue.URL)
	if err == error(ue) {
		return &url.Error{Op: ue.Op, URL: safe, Err: ue.Err}
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), ue.URL, safe), err: err}
}

// redactedError is an error shown with its secrets replaced.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// minSecretLen is the shortest secret a Redactor looks for: a shorter one
// would blank out ordinary words of every line, and is no secret anyway.
const minSecretLen = 4

// Redactor removes the secrets of one configuration from text. It is the
// net under the rule that errors and logs never print a secret: code that
// could print one redacts it where it does (RedactURL, RedactError), and a
// Redactor catches what slipped through on the way to the terminal.
type Redactor struct {
	r *strings.Replacer
}

// Redactor returns the Redactor of c's secrets: every value that may come
// from a *File key (passwords, tokens, HMAC and webhook secrets, Slack and
// Teams webhook URLs), and the credentials and query of every URL (nats.url,
// clusters[].marathon.url, webhook and CDEvents URLs).
func (c *Config) Redactor() *Redactor {
	pairs := map[string]string{}
	add := func(secret, shown string) {
		if len(secret) < minSecretLen || secret == shown {
			return
		}
		pairs[secret] = shown
		// As strconv.Quote (%q, slog's text handler) and JSON (slog's
		// JSON handler) escape it.
		if q := strconv.Quote(secret); q[1:len(q)-1] != secret {
			pairs[q[1:len(q)-1]] = shown
		}
		if j, err := json.Marshal(secret); err == nil && string(j[1:len(j)-1]) != secret {
			pairs[string(j[1:len(j)-1])] = shown
		}
	}
	walkSecrets(reflect.ValueOf(c).Elem(), func(name, value string, fromFile bool) {
		switch isURL := strings.HasSuffix(name, "URL"); {
		case fromFile && isURL:
			add(value, RedactSecretURL(value))
		case fromFile:
			add(value, Redacted)
		case isURL:
			for _, u := range strings.Split(value, ",") {
				u = strings.TrimSpace(u)
				add(u, RedactURL(u))
				if p, err := url.Parse(u); err == nil && p.User != nil {
					if pw, ok := p.User.Password(); ok {
						add(pw, Redacted)
					} else {
						add(p.User.Username(), Redacted)
					}
				}
			}
		}
	})
	// Longest first: a webhook URL is replaced whole before a password in
	// it is.
	secrets := make([]string, 0, len(pairs))
	for s := range pairs {
		secrets = append(secrets, s)
	}
	slices.SortFunc(secrets, func(a, b string) int { return cmp.Or(len(b)-len(a), strings.Compare(a, b)) })
	args := make([]string, 0, 2*len(secrets))
	for _, s := range secrets {
		args = append(args, s, pairs[s])
	}
	return &Redactor{r: strings.NewReplacer(args...)}
}

// walkSecrets calls fn for every non-empty string field that holds a
// secret (it has an XFile sibling) or a URL (its name ends in URL).
func walkSecrets(v reflect.Value, fn func(name, value string, fromFile bool)) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			walkSecrets(v.Elem(), fn)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			walkSecrets(v.Index(i), fn)
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if f.Type.Kind() != reflect.String {
				walkSecrets(v.Field(i), fn)
				continue
			}
			if s := v.Field(i).String(); s != "" {
				_, fromFile := t.FieldByName(f.Name + "File")
				fn(f.Name, s, fromFile)
			}
		}
	}
}

// String returns s without the secrets. A nil Redactor knows none.
func (r *Redactor) String(s string) string {
	if r == nil {
		return s
	}
	return r.r.Replace(s)
}

// Error returns err shown without the secrets (nil for nil); errors.Is and
// errors.As see the same errors as before.
func (r *Redactor) Error(err error) error {
	if err == nil {
		return nil
	}
	if msg := r.String(err.Error()); msg != err.Error() {
		return &redactedError{msg: msg, err: err}
	}
	return err
}

// Writer returns a writer that writes to w without the secrets. A secret
// split over two writes is not caught: give it whole lines (a slog
// handler writes each record in one call).
func (r *Redactor) Writer(w io.Writer) io.Writer { return redactingWriter{r: r, w: w} }

type redactingWriter struct {
	r *Redactor
	w io.Writer
}

func (rw redactingWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(rw.w, rw.r.String(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
