// Package cdevents announces Slipway's releases as CDEvents
// (https://cdevents.dev, specification 0.5) so that CD tooling that speaks
// CDEvents (dashboards, DORA metrics, Keptn, Tekton, …) can follow them.
//
// Events are built with the CDEvents Go SDK (github.com/cdevents/sdk-go,
// v0.5.0 is the first release that implements spec 0.5; v0.4.x stops at
// 0.4), validated by it against the spec's JSON schemas, converted by it to
// a CloudEvent and sent with the CloudEvents Go SDK's HTTP client in binary
// content mode, the mode of the CDEvents CloudEvents binding's examples: the
// CloudEvents attributes travel as ce-* headers and the body is the whole
// CDEvent with Content-Type application/cdevents+json.
//
// Mapping:
//
//	image.pushed, image.promoted     → dev.cdevents.artifact.published
//	deployment.succeeded             → dev.cdevents.service.deployed (the app ran no
//	                                   Slipway-managed image before: fromImage empty)
//	                                   or dev.cdevents.service.upgraded
//	deployment.failed, rolledBack    → dev.cdevents.service.rolledback
//	anything else                    → not sent
//
// The artifact is a package URL, pkg:oci/<name>@<digest>?repository_url=
// <registry>/<repository>&tag=<tag>; the service is "<cluster>/<appId>" in
// the environment {id: <Slipway environment>}. The CDEvent id derives from
// the Slipway event id, its timestamp and source are the Slipway event's,
// so a resend is the same CDEvent; customData carries the Slipway event's
// id, type and data.
package cdevents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	cdevents "github.com/cdevents/sdk-go/pkg/api"
	cdeventsv05 "github.com/cdevents/sdk-go/pkg/api/v05"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	purl "github.com/package-url/packageurl-go"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/httpretry"
	"github.com/slipway-cd/slipway/services/notifier/notify"
)

// Kind is the integration's name.
const Kind = "cdevents"

// ContentType is the media type of a CDEvent (CDEvents CloudEvents binding).
const ContentType = "application/cdevents+json"

// SpecVersion is the CDEvents specification version of the events sent.
var SpecVersion = cdeventsv05.SpecVersion

const maxErrorText = 512

// Receiver posts CDEvents to one CloudEvents HTTP endpoint.
type Receiver struct {
	name   string
	target *url.URL
	client cloudevents.Client
	log    *slog.Logger
}

var _ notify.Receiver = (*Receiver)(nil)

// New builds the receiver for cfg.CDEvents.
func New(name string, cfg config.Receiver, o notify.Options) (notify.Receiver, error) {
	if cfg.CDEvents == nil {
		return nil, fmt.Errorf("cdevents receiver %q: no cdevents configuration", name)
	}
	u, err := url.Parse(strings.TrimSpace(cfg.CDEvents.URL))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("cdevents receiver %q: url must be an absolute http(s) URL", name)
	}
	hc := http.Client{Timeout: 30 * time.Second}
	if o.HTTPClient != nil {
		hc = *o.HTTPClient
	}
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc.Transport = capture{base}
	c, err := cloudevents.NewClientHTTP(cehttp.WithTarget(u.String()), cehttp.WithClient(hc))
	if err != nil {
		return nil, fmt.Errorf("cdevents receiver %q: %w", name, err)
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Receiver{name: name, target: u, client: c, log: log.With("receiver", name, "kind", Kind)}, nil
}

// Name implements notify.Receiver.
func (r *Receiver) Name() string { return r.name }

// Kind implements notify.Receiver.
func (r *Receiver) Kind() string { return Kind }

// Notify sends the CDEvent for n.Event, if the event has one.
func (r *Receiver) Notify(ctx context.Context, n notify.Notification) error {
	cd, err := Convert(n.Event)
	if err != nil {
		return bus.Permanent(fmt.Errorf("cdevents: %w", err))
	}
	if cd == nil {
		return nil
	}
	ce, err := cdevents.AsCloudEvent(cd) // validates against the spec's schema
	if err != nil {
		return bus.Permanent(fmt.Errorf("cdevents: %s for event %s: %w", cd.GetType(), n.Event.ID(), err))
	}
	// The binding: CloudEvents time is the CDEvent timestamp, and the body
	// is a CDEvent.
	ce.SetTime(cd.GetTimestamp())
	ce.SetDataContentType(ContentType)
	// The CloudEvents distributed-tracing extension: the binary binding
	// sends it as ce-traceparent, so that the receiver joins the trace.
	events.InjectTrace(ctx, ce)

	resp := &response{}
	ctx = context.WithValue(cloudevents.WithEncodingBinary(ctx), responseKey{}, resp)
	res := r.client.Send(ctx, *ce)
	if cloudevents.IsACK(res) {
		r.log.DebugContext(ctx, "cdevent sent", "event_id", n.Event.ID(), "cdevent_id", cd.GetId(), "cdevent_type", cd.GetType().String())
		return nil
	}
	var hr *cehttp.Result
	if cloudevents.ResultAs(res, &hr) {
		return r.statusError(hr.StatusCode, resp.retryAfter, res)
	}
	// Not delivered: connection refused, timeout, TLS. The url.Error of
	// net/http names the URL, which may hold credentials.
	return fmt.Errorf("cdevents: %w", config.RedactError(res))
}

func (r *Receiver) statusError(code int, retryAfter string, res error) error {
	// The result reads "<status>: <response body>".
	text := strings.TrimSpace(strings.TrimPrefix(res.Error(), strconv.Itoa(code)+":"))
	if len(text) > maxErrorText {
		text = strings.ToValidUTF8(text[:maxErrorText], "") + "…"
	}
	msg := fmt.Sprintf("cdevents: %s answered %d %s", config.RedactSecretURL(r.target.String()), code, http.StatusText(code))
	if text != "" {
		msg += ": " + text
	}
	h := http.Header{}
	if retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	return notify.Refused(errors.New(msg), httpretry.Classify(code, h, time.Now()))
}

// Convert maps a Slipway event to its CDEvent, or returns nil when the
// event has none.
func Convert(e events.Event) (cdevents.CDEvent, error) {
	switch events.Type(e.Type()) {
	case events.TypeImagePushed:
		d, err := events.DataAs[events.ImagePushed](e)
		if err != nil {
			return nil, err
		}
		ev, err := cdeventsv05.NewArtifactPublishedEvent()
		if err != nil {
			return nil, err
		}
		ev.SetSubjectId(ArtifactID(d.Registry, d.Repository, d.Tag, d.Digest))
		if d.Actor != "" {
			ev.SetSubjectUser(d.Actor)
		}
		return finish(ev, e)
	case events.TypeImagePromoted:
		d, err := events.DataAs[events.ImagePromoted](e)
		if err != nil {
			return nil, err
		}
		ev, err := cdeventsv05.NewArtifactPublishedEvent()
		if err != nil {
			return nil, err
		}
		ev.SetSubjectId(ArtifactID(d.To.Registry, d.To.Repository, d.To.Tag, d.To.Digest))
		return finish(ev, e)
	case events.TypeDeploymentSucceeded:
		d, err := events.DataAs[events.Deployment](e)
		if err != nil {
			return nil, err
		}
		artifact := imageArtifact(d.ToImage, d.Digest)
		env := &cdevents.Reference{Id: d.Environment}
		if d.FromImage == "" {
			ev, err := cdeventsv05.NewServiceDeployedEvent()
			if err != nil {
				return nil, err
			}
			ev.SetSubjectId(ServiceID(d.Cluster, d.AppID))
			ev.SetSubjectArtifactId(artifact)
			ev.SetSubjectEnvironment(env)
			return finish(ev, e)
		}
		ev, err := cdeventsv05.NewServiceUpgradedEvent()
		if err != nil {
			return nil, err
		}
		ev.SetSubjectId(ServiceID(d.Cluster, d.AppID))
		ev.SetSubjectArtifactId(artifact)
		ev.SetSubjectEnvironment(env)
		return finish(ev, e)
	case events.TypeDeploymentFailed:
		d, err := events.DataAs[events.Deployment](e)
		if err != nil {
			return nil, err
		}
		if !d.RolledBack || d.FromImage == "" {
			// No rollback, or nothing known to have been rolled back to.
			return nil, nil
		}
		ev, err := cdeventsv05.NewServiceRolledbackEvent()
		if err != nil {
			return nil, err
		}
		ev.SetSubjectId(ServiceID(d.Cluster, d.AppID))
		// The artifact the service runs again: the image before the
		// failed deployment (its digest is not known, d.Digest is the new
		// image's).
		ev.SetSubjectArtifactId(imageArtifact(d.FromImage, ""))
		ev.SetSubjectEnvironment(&cdevents.Reference{Id: d.Environment})
		return finish(ev, e)
	default:
		return nil, nil
	}
}

// finish sets what every CDEvent takes from its Slipway event: a
// deterministic id, the timestamp, the source and the custom data.
func finish(ev cdevents.CDEvent, e events.Event) (cdevents.CDEvent, error) {
	ev.SetId(ID(e.ID()))
	ts := e.Time()
	if ts.IsZero() {
		ts = time.Now().UTC()
	}
	ev.SetTimestamp(ts)
	src := e.Source()
	if src == "" {
		src = "/slipway"
	}
	ev.SetSource(src)
	if err := ev.SetCustomData("application/json", CustomData{Slipway: SlipwayEvent{
		ID: e.ID(), Type: e.Type(), Subject: e.Subject(), Environment: events.EnvironmentOf(e), Data: json.RawMessage(e.Data()),
	}}); err != nil {
		return nil, err
	}
	return ev, nil
}

// ID derives the CDEvent id from the Slipway event id.
func ID(slipwayEventID string) string {
	return events.ID("cdevents", slipwayEventID)
}

// CustomData is the customData of every CDEvent Slipway sends.
type CustomData struct {
	Slipway SlipwayEvent `json:"slipway"`
}

// SlipwayEvent identifies the Slipway event a CDEvent was made from.
type SlipwayEvent struct {
	ID          string          `json:"eventId"`
	Type        string          `json:"eventType"`
	Subject     string          `json:"subject,omitempty"`
	Environment string          `json:"environment,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"`
}

// ServiceID names a workload on a cluster (a Marathon app, a Docker
// container, a Swarm service): "<cluster>/<appId without the leading
// slash>".
func ServiceID(cluster, appID string) string {
	return cluster + "/" + strings.TrimPrefix(appID, "/")
}

// ArtifactID is the package URL of an OCI image (purl type "oci"): the
// name is the repository's last path segment, the version the digest, and
// the qualifiers say where it is stored and under which tag.
func ArtifactID(registry, repository, tag, digest string) string {
	name := strings.ToLower(repository[strings.LastIndexByte(repository, '/')+1:])
	q := map[string]string{}
	if registry != "" {
		q["repository_url"] = registry + "/" + repository
	} else {
		q["repository_url"] = repository
	}
	if tag != "" {
		q["tag"] = tag
	}
	return purl.NewPackageURL(purl.TypeOCI, "", name, digest, purl.QualifiersFromMap(q), "").ToString()
}

// imageArtifact is the ArtifactID of an image reference as Marathon app
// definitions write it ("registry/repository:tag[@digest]"). digest is used
// when the reference carries none.
func imageArtifact(ref, digest string) string {
	registry, repository, tag, d := splitImage(ref)
	if d == "" {
		d = digest
	}
	return ArtifactID(registry, repository, tag, d)
}

// splitImage splits an image reference the way Docker does: the first
// path component is a registry when it has a dot or a port or is
// localhost, otherwise the image is on Docker Hub.
func splitImage(ref string) (registry, repository, tag, digest string) {
	ref = strings.TrimSpace(ref)
	if at := strings.IndexByte(ref, '@'); at >= 0 {
		ref, digest = ref[:at], ref[at+1:]
	}
	if colon := strings.LastIndexByte(ref, ':'); colon > strings.LastIndexByte(ref, '/') {
		ref, tag = ref[:colon], ref[colon+1:]
	}
	first, rest, found := strings.Cut(ref, "/")
	if found && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return first, rest, tag, digest
	}
	if !strings.Contains(ref, "/") {
		ref = "library/" + ref
	}
	return "docker.io", ref, tag, digest
}

// The CloudEvents client reports the status of an answer but not its
// headers; capture takes Retry-After from the response into the request's
// context. Send runs the round trip on the caller's goroutine, so the
// caller reads it once Send returns.
type capture struct{ base http.RoundTripper }

type responseKey struct{}

type response struct{ retryAfter string }

func (c capture) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(req)
	if err == nil {
		if r, ok := req.Context().Value(responseKey{}).(*response); ok {
			r.retryAfter = resp.Header.Get("Retry-After")
		}
	}
	return resp, err
}
