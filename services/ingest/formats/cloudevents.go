package formats

import (
	"net/url"
	"regexp"
	"strings"
)

// The generic CloudEvents format accepts structured and binary HTTP mode and
// maps the event types of the producers Slipway knows: Harbor's CloudEvents
// payload format, zot's events extension and CDEvents. Other event kinds of
// those producers (pulls, deletes, scans, pipeline runs…) are ignored; a type
// from anywhere else is refused so a misrouted sender finds out.

func init() { register("cloudevents", parseCloudEvents) }

// cdeventsPublished matches dev.cdevents.artifact.published.<schema
// version>: 0.1.0 in CDEvents 0.3, 0.2.0 in 0.4, 0.3.0 in 0.5.
var cdeventsPublished = regexp.MustCompile(`^dev\.cdevents\.artifact\.published\.[0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]+)?$`)

func parseCloudEvents(d Delivery) (Result, error) {
	ev, err := readCloudEvent("cloudevents", d)
	if err != nil {
		return Result{}, err
	}
	var pushes []Push
	switch {
	case strings.HasPrefix(ev.Type, "harbor."):
		// Shared with the harbor format's CloudEvents payload (harbor.go).
		return harborCloudEvent("cloudevents", ev)
	case ev.Type == zotPushType:
		var p Push
		p, err = zotPush("cloudevents", ev)
		pushes = []Push{p}
	case cdeventsPublished.MatchString(ev.Type):
		var p Push
		var image bool
		p, image, err = cdeventsPush(ev)
		if err == nil && !image {
			return Result{Ignored: 1}, nil
		}
		pushes = []Push{p}
	case zotOtherType(ev.Type), strings.HasPrefix(ev.Type, "dev.cdevents."):
		// zot's and CDEvents' other kinds; Harbor's are sorted out by
		// harborCloudEvent.
		return Result{Ignored: 1}, nil
	default:
		return Result{}, malformed("cloudevents: event type %q is not one Slipway maps (%s, %s, dev.cdevents.artifact.published.*)",
			ev.Type, harborPushedType, zotPushType)
	}
	if err != nil {
		return Result{}, err
	}
	return Result{Pushes: pushes}, nil
}

// cdEvent is the part of a CDEvent (the CloudEvent's data) Slipway reads;
// CDEvents 0.4 names the spec version context.version, 0.5 specversion.
type cdEvent struct {
	Context *struct {
		ID        string `json:"id"`
		Type      string `json:"type"`
		Timestamp string `json:"timestamp"`
	} `json:"context"`
	Subject *struct {
		ID      string `json:"id"`
		Content *struct {
			User string `json:"user"`
		} `json:"content"`
	} `json:"subject"`
}

// cdeventsPush maps artifact.published. subject.id is a package URL; only
// pkg:oci ones are images (image is false for the rest).
func cdeventsPush(ev cloudEvent) (p Push, image bool, err error) {
	const f = "cloudevents"
	var cd cdEvent
	if err := decodeObject(f, ev.Type+" data", ev.Data, &cd); err != nil {
		return p, false, err
	}
	if cd.Context == nil {
		return p, false, malformed("%s: data.context is missing (not a CDEvent)", f)
	}
	if cd.Context.Type != "" && cd.Context.Type != ev.Type {
		return p, false, malformed("%s: data.context.type %q differs from the CloudEvent type %q", f, cd.Context.Type, ev.Type)
	}
	if cd.Subject == nil || cd.Subject.ID == "" {
		return p, false, malformed("%s: data.subject.id is missing", f)
	}
	purl, ok := parsePurl(cd.Subject.ID)
	if !ok {
		return p, false, malformed("%s: data.subject.id %q is not a package URL", f, cd.Subject.ID)
	}
	if purl.Type != "oci" {
		return p, false, nil
	}
	p, err = ociPurlPush(purl)
	if err != nil {
		return p, false, err
	}
	if cd.Subject.Content != nil {
		p.Actor = cd.Subject.Content.User
	}
	p.UpstreamID = ev.ID
	p.PushedAt = ev.Time
	if p.PushedAt.IsZero() {
		if p.PushedAt, err = optionalTime(f, "data.context.timestamp", cd.Context.Timestamp); err != nil {
			return p, false, err
		}
	}
	return p, true, nil
}

// packageURL is a parsed purl: pkg:type/namespace/name@version?qualifiers#subpath.
type packageURL struct {
	Type, Namespace, Name, Version string
	Qualifiers                     map[string]string
}

func parsePurl(s string) (packageURL, bool) {
	var u packageURL
	if len(s) < 4 || !strings.EqualFold(s[:4], "pkg:") {
		return u, false
	}
	rest := strings.TrimLeft(s[4:], "/")
	rest, _, _ = strings.Cut(rest, "#")
	rest, query, _ := strings.Cut(rest, "?")
	u.Qualifiers = map[string]string{}
	if query != "" {
		for _, kv := range strings.Split(query, "&") {
			k, v, _ := strings.Cut(kv, "=")
			val, err := url.PathUnescape(v)
			if err != nil || k == "" {
				return u, false
			}
			u.Qualifiers[strings.ToLower(k)] = val
		}
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		v, err := url.PathUnescape(rest[i+1:])
		if err != nil {
			return u, false
		}
		rest, u.Version = rest[:i], v
	}
	typ, path, ok := strings.Cut(rest, "/")
	if !ok || typ == "" {
		return u, false
	}
	u.Type = strings.ToLower(typ)
	var segs []string
	for _, seg := range strings.Split(path, "/") {
		if seg == "" {
			continue
		}
		dec, err := url.PathUnescape(seg)
		if err != nil {
			return u, false
		}
		segs = append(segs, dec)
	}
	if len(segs) == 0 {
		return u, false
	}
	u.Name = segs[len(segs)-1]
	u.Namespace = strings.Join(segs[:len(segs)-1], "/")
	return u, true
}

// ociPurlPush maps pkg:oci/<name>@<digest>?repository_url=<host/path>&tag=<tag>.
// The purl spec's repository_url ends with the name
// (docker.io/library/debian), but producers also send only the parent
// (gcr.io/distroless) or a bare host, or put the location in the namespace;
// all name the same image.
func ociPurlPush(u packageURL) (Push, error) {
	const f = "cloudevents"
	var p Push
	loc := u.Qualifiers["repository_url"]
	if loc == "" {
		loc = u.Namespace
	}
	for _, scheme := range []string{"https://", "http://"} {
		loc = strings.TrimPrefix(loc, scheme)
	}
	loc = strings.TrimSuffix(loc, "/")
	repo := u.Name
	if loc != "" {
		host, path, _ := strings.Cut(loc, "/")
		if !validHost(host) {
			return p, malformed("%s: data.subject.id repository_url %q does not start with a registry host", f, loc)
		}
		switch {
		case path == "":
		case path == u.Name, strings.HasSuffix(path, "/"+u.Name):
			repo = path
		default:
			repo = path + "/" + u.Name
		}
		p.Registry = strings.ToLower(host)
	}
	p.Repository, p.Tag, p.Digest = repo, u.Qualifiers["tag"], u.Version
	err := checkImage(f, "data.subject.id repository", p.Repository, "data.subject.id tag", p.Tag, "data.subject.id version", p.Digest)
	return p, err
}
