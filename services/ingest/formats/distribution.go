package formats

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// CNCF Distribution notifications: {"events":[…]}, sent as
// application/vnd.docker.distribution.events.v1+json by 2.x (and GitLab's
// fork) and …events.v2+json by 3.x. The event shape is the same in both. 3.x
// sends one event per request, 2.x may batch several. Every blob upload is a
// "push" of its own (application/octet-stream); a multi-arch push is one
// untagged "push" per child manifest and a tagged one for the index. The
// event id is a UUID the registry keeps across its retries.
//
// The Content-Type is not checked: the body decides, and relays in front of
// a registry are known to rewrite it.

func init() {
	register("distribution", distributionParser("distribution"), retriesRefusals)
	// GitLab's self-managed registry is a Distribution fork that sends the
	// same envelope; its own name keeps error messages in the operator's
	// terms.
	register("gitlab", distributionParser("gitlab"), retriesRefusals)
}

// registryEvent is one Distribution event; ACR sends the same shape, alone.
type registryEvent struct {
	ID        string          `json:"id"`
	Timestamp string          `json:"timestamp"`
	Action    string          `json:"action"`
	Target    *registryTarget `json:"target"`
	Request   struct {
		Host string `json:"host"`
	} `json:"request"`
	Actor struct {
		Name string `json:"name"`
	} `json:"actor"`
}

type registryTarget struct {
	MediaType  string `json:"mediaType"`
	Digest     string `json:"digest"`
	Size       int64  `json:"size"`
	Length     int64  `json:"length"`
	Repository string `json:"repository"`
	URL        string `json:"url"`
	Tag        string `json:"tag"`
}

func distributionParser(format string) Parser {
	return func(d Delivery) (Result, error) {
		events, err := distributionEvents(format, d.Body)
		if err != nil {
			return Result{}, err
		}
		var r Result
		for i, ev := range events {
			p, push, err := registryEventPush(format, eventAt(i), ev)
			switch {
			case err != nil:
				return Result{}, err
			case push:
				r.Pushes = append(r.Pushes, p)
			default:
				r.Ignored++
			}
		}
		return r, nil
	}
}

// distributionEvents decodes the envelope's events. The common case, a
// well-formed envelope as registries send it, is read by scanEnvelope (this
// is the hot path of every Distribution push); what it leaves takes one
// json.Unmarshal if well-formed, and anything else is taken apart step by
// step to say exactly what is wrong.
func distributionEvents(format string, body []byte) ([]*registryEvent, error) {
	if events, ok := scanEnvelope(body); ok {
		return events, nil
	}
	var fast struct {
		Events *[]*registryEvent `json:"events"`
	}
	if jsonObject(body) && json.Unmarshal(body, &fast) == nil && fast.Events != nil && !slices.Contains(*fast.Events, nil) {
		return *fast.Events, nil
	}
	var env struct {
		Events json.RawMessage `json:"events"`
	}
	if err := decodeObject(format, "body", body, &env); err != nil {
		return nil, err
	}
	raw := bytes.TrimSpace(env.Events)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, malformed("%s: events is missing", format)
	}
	if raw[0] != '[' {
		return nil, malformed("%s: events is not an array", format)
	}
	var raws []json.RawMessage
	if err := decodeJSON(format, "events", raw, &raws); err != nil {
		return nil, err
	}
	events := make([]*registryEvent, len(raws))
	for i, r := range raws {
		ev, err := decodeRegistryEvent(format, fmt.Sprintf("events[%d]", i), r)
		if err != nil {
			return nil, err
		}
		events[i] = ev
	}
	return events, nil
}

// parseRegistryEvent reads a body that is one event (ACR's). push is false
// for anything but a push (pull, mount, delete, ACR's ping and chart
// events, actions added later): those are not checked further, because a
// registry must never be refused for a notification Slipway does not act
// on. Blob pushes are reported with their media type and left to Normalize.
func parseRegistryEvent(format string, raw json.RawMessage) (p Push, push bool, err error) {
	ev, err := decodeRegistryEvent(format, "body", raw)
	if err != nil {
		return Push{}, false, err
	}
	return registryEventPush(format, wholeBody, ev)
}

// decodeRegistryEvent decodes an event, what naming it in errors.
func decodeRegistryEvent(format, what string, raw json.RawMessage) (*registryEvent, error) {
	var ev registryEvent
	if err := decodeObject(format, what, raw, &ev); err != nil {
		return nil, err
	}
	return &ev, nil
}

// eventAt is where an event is, for error messages: its index in an
// envelope's events, or wholeBody. The field names of the messages are
// built from it only when there is an error to report: a push that passes
// every check builds no strings.
type eventAt int

// wholeBody is an event that is the whole body.
const wholeBody eventAt = -1

// field names a field of the event.
func (at eventAt) field(name string) string {
	if at == wholeBody {
		return name
	}
	return "events[" + strconv.Itoa(int(at)) + "]." + name
}

// registryEventPush interprets a decoded event.
func registryEventPush(format string, at eventAt, ev *registryEvent) (p Push, push bool, err error) {
	switch ev.Action {
	case "":
		return Push{}, false, malformed("%s: %s is missing", format, at.field("action"))
	case "push":
	default:
		return Push{}, false, nil
	}
	t := ev.Target
	switch {
	case t == nil:
		return Push{}, false, malformed("%s: %s is missing", format, at.field("target"))
	case t.Digest == "":
		return Push{}, false, malformed("%s: %s is missing", format, at.field("target.digest"))
	case t.Size < 0:
		return Push{}, false, malformed("%s: %s is negative", format, at.field("target.size"))
	case t.Length < 0:
		return Push{}, false, malformed("%s: %s is negative", format, at.field("target.length"))
	}
	if !validImage(t.Repository, t.Tag, t.Digest) {
		return Push{}, false, checkImage(format, at.field("target.repository"), t.Repository,
			at.field("target.tag"), t.Tag, at.field("target.digest"), t.Digest)
	}
	var pushedAt time.Time
	if ev.Timestamp != "" {
		if pushedAt, err = parseTime(ev.Timestamp); err != nil {
			return Push{}, false, timeError(format, at.field("timestamp"), ev.Timestamp, err)
		}
	}
	host, err := registryEventHost(format, at, ev.Request.Host, t.URL)
	if err != nil {
		return Push{}, false, err
	}
	size := t.Size
	if size == 0 {
		size = t.Length // only length in some 2.x events
	}
	id := ev.ID
	if id == "" {
		id = Composite(host, t.Repository, t.Tag, t.Digest, ev.Action, ev.Timestamp)
	}
	return Push{
		Registry:   host,
		Repository: t.Repository,
		Tag:        t.Tag,
		Digest:     t.Digest,
		MediaType:  t.MediaType,
		Size:       size,
		Actor:      ev.Actor.Name,
		UpstreamID: id,
		PushedAt:   pushedAt,
	}, true, nil
}

// registryEventHost prefers request.host, the name the client pushed to;
// target.url is built from the registry's configured http.host and is the
// fallback for events relayed without their request record.
func registryEventHost(format string, at eventAt, reqHost, targetURL string) (string, error) {
	if reqHost != "" {
		if !validHost(reqHost) {
			return "", malformed("%s: %s %q is not a host[:port]", format, at.field("request.host"), reqHost)
		}
		return reqHost, nil
	}
	if targetURL == "" {
		return "", nil
	}
	u, err := url.Parse(targetURL)
	if err != nil || u.Host == "" || !validHost(u.Host) {
		return "", malformed("%s: %s %q is not an absolute URL with a registry host", format, at.field("target.url"), targetURL)
	}
	return u.Host, nil
}
