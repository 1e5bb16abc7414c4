package marathon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// ErrNotFound matches (errors.Is) a 404 from Marathon: an unknown app or
// deployment.
var ErrNotFound = errors.New("marathon: not found")

// APIError is a non-2xx answer from Marathon (or from the DC/OS IAM or Admin
// Router in front of it).
type APIError struct {
	Cluster      string
	Method, Path string // Path is the API path, without the cluster URL's prefix or the query
	StatusCode   int
	// Message is Marathon's "message" (or a short excerpt of a non-JSON body).
	Message string
	// Details is Marathon's "details": validation errors for a 422, a
	// string for a 400.
	Details json.RawMessage
	// Deployments are the deployments that lock the app, for a 409.
	Deployments []string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "marathon %s: %s %s: %d %s", e.Cluster, e.Method, e.Path, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if d := bytes.TrimSpace(e.Details); len(d) > 0 && !bytes.Equal(d, []byte("null")) {
		b.WriteString(" ")
		b.WriteString(excerpt(d, 300))
	}
	return b.String()
}

// Is makes errors.Is(err, ErrNotFound) true for a 404.
func (e *APIError) Is(target error) bool {
	return target == ErrNotFound && e.StatusCode == http.StatusNotFound
}

// LockedBy reports whether err is Marathon's 409 "App is locked by one or
// more deployments", and which deployments hold the lock.
func LockedBy(err error) ([]string, bool) {
	var e *APIError
	if !errors.As(err, &e) || e.StatusCode != http.StatusConflict || len(e.Deployments) == 0 {
		return nil, false
	}
	return e.Deployments, true
}

// Older Marathons name the deployment only in the message.
var lockedRe = regexp.MustCompile(`/v2/deployments/([0-9A-Za-z-]+)`)

func newAPIError(cluster, method, path string, status int, body []byte) *APIError {
	e := &APIError{Cluster: cluster, Method: method, Path: path, StatusCode: status}
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil {
		// Admin Router and proxies answer with HTML pages; their text adds
		// nothing to the status.
		if t := bytes.TrimSpace(body); len(t) > 0 && t[0] != '<' {
			e.Message = excerpt(t, 200)
		}
		return e
	}
	// Each field is read on its own so one unexpected shape does not hide
	// the others.
	str := func(k string) string {
		var s string
		_ = json.Unmarshal(fields[k], &s)
		return s
	}
	// Marathon says "message"; the DC/OS IAM "title" and "description".
	e.Message = str("message")
	if e.Message == "" {
		e.Message = strings.Join(slices.DeleteFunc([]string{str("title"), str("description")}, func(s string) bool { return s == "" }), ": ")
	}
	e.Details = fields["details"]
	var deps []struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(fields["deployments"], &deps) == nil {
		for _, d := range deps {
			if d.ID != "" {
				e.Deployments = append(e.Deployments, d.ID)
			}
		}
	}
	if status == http.StatusConflict && len(e.Deployments) == 0 {
		for _, m := range lockedRe.FindAllStringSubmatch(e.Message, -1) {
			e.Deployments = append(e.Deployments, m[1])
		}
	}
	return e
}

// excerpt makes b safe and short enough for one log line.
func excerpt(b []byte, n int) string {
	s := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(string(b), "?"))
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}
