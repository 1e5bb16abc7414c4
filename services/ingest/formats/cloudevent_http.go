package formats

// Reading one CloudEvents 1.0 event off an HTTP request, in either content
// mode of the HTTP binding. Formats that receive CloudEvents (harbor's
// CloudEvents payload, zot, the generic cloudevents format) map the event
// read here.

import (
	"encoding/base64"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

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

// ceContextAttrs are the context attributes ceContext takes, in the order
// both modes read them.
var ceContextAttrs = []string{"specversion", "id", "source", "type", "subject", "time"}

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
	if err := decodeObject(format, "structured CloudEvent", body, &attrs); err != nil {
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
	get, err := ceAttrs(str, "datacontenttype")
	if err != nil {
		return cloudEvent{}, err
	}
	ev, err := ceContext(format, get)
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
	get, err := ceAttrs(attr)
	if err != nil {
		return cloudEvent{}, err
	}
	ev, err := ceContext(format, get)
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

// ceAttrs reads ceContextAttrs, then the extra attributes a mode needs,
// with attr, which takes them from the event object (structured mode) or
// the ce-* headers (binary mode). All are read before any is validated, so
// an unreadable attribute is reported first whichever mode carried it.
func ceAttrs(attr func(name string) (string, error), extra ...string) (map[string]string, error) {
	get := map[string]string{}
	for _, name := range slices.Concat(ceContextAttrs, extra) {
		s, err := attr(name)
		if err != nil {
			return nil, err
		}
		get[name] = s
	}
	return get, nil
}

// ceContext validates the required context attributes (ceContextAttrs,
// read by ceAttrs) and makes the event of them.
func ceContext(format string, get map[string]string) (cloudEvent, error) {
	ev := cloudEvent{ID: get["id"], Source: get["source"], Type: get["type"], Subject: get["subject"], Extensions: map[string]string{}}
	switch specversion := get["specversion"]; {
	case specversion == "":
		return ev, malformed("%s: CloudEvent specversion is missing", format)
	case specversion != "1.0":
		return ev, malformed("%s: CloudEvent specversion %q is not supported (want 1.0)", format, specversion)
	case ev.ID == "":
		return ev, malformed("%s: CloudEvent id is missing", format)
	case ev.Source == "":
		return ev, malformed("%s: CloudEvent source is missing", format)
	case ev.Type == "":
		return ev, malformed("%s: CloudEvent type is missing", format)
	}
	t, err := optionalTime(format, "CloudEvent time", get["time"])
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
