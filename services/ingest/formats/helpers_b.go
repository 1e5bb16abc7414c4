package formats

// Helpers shared by the ghcr, artifactory, nexus, gar, ecr, zot and
// cloudevents parsers: image references, name validation, timestamps and
// reading a CloudEvent off an HTTP request.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

var (
	// The distribution reference grammar: lowercase path components joined
	// by separators. Anything else is refused by every registry, so a
	// payload that carries it is broken (or forged), not a push to follow.
	repoPathRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)*$`)
	tagRE      = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	hostRE     = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]{1,5})?$`)
	hexRE      = regexp.MustCompile(`^[0-9a-f]+$`)
)

// maxRepoLen is distribution's limit on a repository name.
const maxRepoLen = 255

func validRepository(repo string) bool {
	return len(repo) <= maxRepoLen && repoPathRE.MatchString(repo)
}

// validDigest accepts the digests registries compute; the hex length must
// match the algorithm so a truncated digest never reaches a registry call.
func validDigest(d string) bool {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || !hexRE.MatchString(hex) {
		return false
	}
	switch alg {
	case "sha256":
		return len(hex) == 64
	case "sha384":
		return len(hex) == 96
	case "sha512":
		return len(hex) == 128
	}
	return false
}

// validTag accepts what a parser may put in Push.Tag: nothing (untagged), a
// tag, or a digest standing in for a tag; Normalize sorts those out.
func validTag(tag string) bool {
	return tag == "" || tagRE.MatchString(tag) || validDigest(tag)
}

func validHost(h string) bool { return len(h) <= 255 && hostRE.MatchString(h) }

// checkImage validates the parts of a push every parser fills, naming the
// payload fields they came from in the error.
func checkImage(format, repoField, repo, tagField, tag, digestField, digest string) error {
	switch {
	case repo == "":
		return malformed("%s: %s is missing", format, repoField)
	case !validRepository(repo):
		return malformed("%s: %s %q is not a valid repository name", format, repoField, repo)
	case !validTag(tag):
		return malformed("%s: %s %q is not a valid tag", format, tagField, tag)
	case digest != "" && !validDigest(digest):
		return malformed("%s: %s %q is not a valid digest", format, digestField, digest)
	}
	return nil
}

// imageRef is a full image reference split into its parts.
type imageRef struct {
	Host, Repository, Tag, Digest string
}

// splitRef splits "host/ns/repo", "host/ns/repo:tag", "host/ns/repo@sha256:…"
// or "host/ns/repo:tag@sha256:…". The host is mandatory: every format that
// sends full references (GHCR, GAR, Harbor) includes it. A trailing bare ":"
// (GHCR's untagged children) yields an empty tag. Nothing is validated here.
func splitRef(ref string) (imageRef, bool) {
	var r imageRef
	if name, digest, ok := strings.Cut(ref, "@"); ok {
		ref, r.Digest = name, digest
	}
	host, path, ok := strings.Cut(ref, "/")
	if !ok || host == "" {
		return r, false
	}
	r.Host = host
	if i := strings.LastIndex(path, ":"); i >= 0 {
		path, r.Tag = path[:i], path[i+1:]
	}
	r.Repository = path
	return r, path != ""
}

// parseTime reads the timestamps registries send: RFC 3339 (with or without
// fraction) and the Java "+0000" offsets Nexus writes.
func parseTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// optionalTime parses a time field that may be absent; a present but
// unreadable one is malformed, and so is one outside the years 0 to 9999:
// an offset can move "0000-01-01T00:00:00+01:00" into year -1, which no
// event can carry (RFC 3339 has four-digit years).
func optionalTime(format, field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, ok := parseTime(s)
	if !ok {
		return time.Time{}, malformed("%s: %s %q is not a timestamp", format, field, s)
	}
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}, malformed("%s: %s %q is outside the years 0 to 9999", format, field, s)
	}
	return t, nil
}

// decodeJSON unmarshals a payload, turning a syntax or type error into a
// malformed error that names the format.
func decodeJSON(format, what string, data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		return malformed("%s: %s is not the expected JSON: %v", format, what, err)
	}
	return nil
}

// jsonObject reports whether raw JSON is an object: decoding "null" or a
// bare value into a struct succeeds silently, which would let a payload
// without the fields that make the format through as "missing fields".
func jsonObject(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

// cloudEvent is a CloudEvents 1.0 event read from either HTTP content mode.
type cloudEvent struct {
	ID, Source, Type, Subject string
	Time                      time.Time
	// Extensions holds the string-valued extension attributes (Harbor's
	// "operator", "requestid"...).
	Extensions map[string]string
	// Data is the event data, always JSON.
	Data []byte
}

// ceCore are the attributes the CloudEvents spec defines; every other
// attribute is an extension.
var ceCore = map[string]bool{
	"specversion": true, "id": true, "source": true, "type": true, "subject": true,
	"time": true, "datacontenttype": true, "dataschema": true, "data": true, "data_base64": true,
}

// readCloudEvent reads a CloudEvent delivered over HTTP in structured mode
// (Content-Type application/cloudevents+json, the body is the event) or
// binary mode (ce-* headers carry the attributes, the body is the data).
func readCloudEvent(format string, d Delivery) (cloudEvent, error) {
	ct := d.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	switch {
	case mt == "application/cloudevents+json":
		return readStructured(format, d.Body)
	case mt == "application/cloudevents-batch+json":
		return cloudEvent{}, malformed("%s: CloudEvents batch mode is not supported; send one event per request", format)
	case strings.HasPrefix(mt, "application/cloudevents"):
		return cloudEvent{}, malformed("%s: CloudEvents encoding %q is not supported (want application/cloudevents+json)", format, mt)
	case d.Header.Get("Ce-Specversion") != "":
		return readBinary(format, d.Header, mt, d.Body)
	}
	return cloudEvent{}, malformed("%s: not a CloudEvent: no ce-specversion header and Content-Type %q is not application/cloudevents+json", format, ct)
}

func readStructured(format string, body []byte) (cloudEvent, error) {
	var attrs map[string]json.RawMessage
	if !jsonObject(body) {
		return cloudEvent{}, malformed("%s: structured CloudEvent is not a JSON object", format)
	}
	if err := decodeJSON(format, "structured CloudEvent", body, &attrs); err != nil {
		return cloudEvent{}, err
	}
	str := func(name string) (string, error) {
		raw, ok := attrs[name]
		if !ok || string(raw) == "null" {
			return "", nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", malformed("%s: CloudEvent attribute %s is not a string", format, name)
		}
		return s, nil
	}
	get := map[string]string{}
	for _, name := range []string{"specversion", "id", "source", "type", "subject", "time", "datacontenttype"} {
		s, err := str(name)
		if err != nil {
			return cloudEvent{}, err
		}
		get[name] = s
	}
	ev, err := ceContext(format, get["specversion"], get["id"], get["source"], get["type"], get["subject"], get["time"])
	if err != nil {
		return ev, err
	}
	for name, raw := range attrs {
		if ceCore[name] {
			continue
		}
		// Extensions may also be numbers or booleans; none Slipway reads is.
		var s string
		if json.Unmarshal(raw, &s) == nil {
			ev.Extensions[name] = s
		}
	}
	if err := checkDataType(format, get["datacontenttype"]); err != nil {
		return ev, err
	}
	if raw, ok := attrs["data_base64"]; ok {
		var b64 string
		if err := json.Unmarshal(raw, &b64); err != nil {
			return ev, malformed("%s: CloudEvent data_base64 is not a string", format)
		}
		data, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return ev, malformed("%s: CloudEvent data_base64 is not base64", format)
		}
		ev.Data = data
		return ev, nil
	}
	ev.Data = attrs["data"]
	return ev, nil
}

func readBinary(format string, h http.Header, contentType string, body []byte) (cloudEvent, error) {
	// The HTTP binding percent-encodes header values outside printable
	// ASCII; an undecodable value is a broken event.
	attr := func(name string) (string, error) {
		v := h.Get("Ce-" + name)
		s, err := url.PathUnescape(v)
		if err != nil {
			return "", malformed("%s: header ce-%s is not percent-encoded correctly", format, name)
		}
		return s, nil
	}
	get := map[string]string{}
	for _, name := range []string{"specversion", "id", "source", "type", "subject", "time"} {
		s, err := attr(name)
		if err != nil {
			return cloudEvent{}, err
		}
		get[name] = s
	}
	ev, err := ceContext(format, get["specversion"], get["id"], get["source"], get["type"], get["subject"], get["time"])
	if err != nil {
		return ev, err
	}
	for key := range h {
		name, ok := strings.CutPrefix(strings.ToLower(key), "ce-")
		if !ok || ceCore[name] || name == "" {
			continue
		}
		if s, err := attr(name); err == nil {
			ev.Extensions[name] = s
		}
	}
	if err := checkDataType(format, contentType); err != nil {
		return ev, err
	}
	ev.Data = body
	return ev, nil
}

// ceContext validates the required context attributes.
func ceContext(format, specversion, id, source, typ, subject, at string) (cloudEvent, error) {
	ev := cloudEvent{ID: id, Source: source, Type: typ, Subject: subject, Extensions: map[string]string{}}
	switch {
	case specversion == "":
		return ev, malformed("%s: CloudEvent specversion is missing", format)
	case specversion != "1.0":
		return ev, malformed("%s: CloudEvent specversion %q is not supported (want 1.0)", format, specversion)
	case id == "":
		return ev, malformed("%s: CloudEvent id is missing", format)
	case source == "":
		return ev, malformed("%s: CloudEvent source is missing", format)
	case typ == "":
		return ev, malformed("%s: CloudEvent type is missing", format)
	}
	t, err := optionalTime(format, "CloudEvent time", at)
	ev.Time = t
	return ev, err
}

// checkDataType refuses data that is not JSON: every event type Slipway maps
// carries JSON data.
func checkDataType(format, ct string) error {
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")) {
		return nil
	}
	return malformed("%s: CloudEvent data content type %q is not JSON", format, ct)
}
