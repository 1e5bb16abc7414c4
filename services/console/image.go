package console

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/approval"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/oci"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
)

// referrersTimeout bounds the registries' answers about an image's
// referrers: a registry that does not answer in time shows "unavailable"
// and the page renders without it.
const referrersTimeout = 3 * time.Second

// maxTimeline bounds an image page's timeline: the events about the
// digest and what they caused, followed through causationid.
const maxTimeline = 500

// imageView is an image page: one digest across the environments the user
// may view.
type imageView struct {
	Digest string `json:"digest"`
	// Runs are the workloads that run it (or ran it before they drifted).
	Runs []inventory.Record `json:"runs"`
	// RunActions are the buttons of each run (the same index), nil where
	// the user may not operate; Promote the promotions of the image the
	// user may ask for, one per repository it runs from. The page only:
	// they depend on who asks and carry the session's CSRF token.
	RunActions []*actionsView `json:"-"`
	Promote    []*actionsView `json:"-"`
	// Timeline is the events about it and everything they caused, oldest
	// first.
	Timeline  []timelineEntry   `json:"timeline"`
	Approvals []approval.Record `json:"approvals"`
	Referrers []referrerSource  `json:"referrers"`
	// Problems name what could not be read; the page shows the rest.
	Problems []string `json:"problems,omitempty"`
	// Live is how the page follows the stream.
	Live liveRegion `json:"-"`
}

// timelineEntry is one event of the causal timeline.
type timelineEntry struct {
	ID          string    `json:"id"`
	Type        string    `json:"type"`
	Environment string    `json:"environment"`
	Subject     string    `json:"subject"`
	Time        time.Time `json:"time"`
	CausationID string    `json:"causationId,omitempty"`
	// Parts is its one-line summary (as the timeline page's).
	Parts []summaryPart `json:"parts"`
	// Caused is true when its cause is on the timeline too (the page
	// indents it under its cause).
	Caused bool `json:"caused"`
}

// referrerSource is what one repository holding the image says is
// attached to it.
type referrerSource struct {
	Image string `json:"image"`
	// Unavailable says why the registry gave no answer.
	Unavailable string         `json:"unavailable,omitempty"`
	Referrers   []referrerView `json:"referrers"`
}

type referrerView struct {
	Kind         string `json:"kind"`
	ArtifactType string `json:"artifactType"`
	Digest       string `json:"digest"`
	Tag          string `json:"tag,omitempty"`
}

// validDigest: algorithm:hex as registries write it.
func validDigest(d string) bool {
	alg, hex, ok := strings.Cut(d, ":")
	return ok && (alg == "sha256" && len(hex) == 64 || alg == "sha512" && len(hex) == 128) &&
		strings.Trim(hex, "0123456789abcdef") == ""
}

func (s *server) image(c echo.Context) (imageView, error) {
	d := c.Param("digest")
	if !validDigest(d) {
		return imageView{}, echo.NewHTTPError(http.StatusNotFound, "not an image digest (sha256:<64 hex digits>)")
	}
	visible := s.policy.Filter(s.user(c).Identity)
	v := imageView{Digest: d, Timeline: []timelineEntry{}, Approvals: []approval.Record{}, Referrers: []referrerSource{},
		Live: s.liveRegionOf(c, "")}
	recs, err := s.records(c)
	if err != nil {
		return imageView{}, err
	}
	v.Runs = inventory.Where(recs, d)
	if v.Runs == nil {
		v.Runs = []inventory.Record{}
	}
	v.RunActions, v.Promote = s.imageActions(c, d, v.Runs)
	v.Timeline = s.causalTimeline(d, visible)
	apps, err := s.approvalsOf(c.Request().Context(), d, visible)
	if err != nil {
		s.log.Warn("console: reading the approvals failed", "err", err)
		v.Problems = append(v.Problems, "approvals unavailable")
	}
	v.Approvals = apps
	// An image the user may not see anywhere does not exist for them.
	if len(v.Runs) == 0 && len(v.Timeline) == 0 && len(v.Approvals) == 0 {
		return imageView{}, echo.NewHTTPError(http.StatusNotFound, "no image "+d+" in the environments you may view")
	}
	return v, nil
}

// imageActions are the buttons of an image page: each run's rollback and
// redeploy, and the promotions of the image from each registry and
// repository it runs from (a promote action names the image by its
// registry, repository and tag).
func (s *server) imageActions(c echo.Context, digest string, runs []inventory.Record) ([]*actionsView, []*actionsView) {
	perRun := make([]*actionsView, len(runs))
	var promote []*actionsView
	seen := map[string]bool{}
	for i, r := range runs {
		perRun[i] = s.workloadActions(c, r.Cluster, r.AppID, false)
		if r.Registry == "" || r.Repository == "" || r.Tag == "" {
			continue
		}
		image := r.Registry + "/" + r.Repository + ":" + r.Tag + "@" + digest
		if seen[image] {
			continue
		}
		seen[image] = true
		if a := s.promoteActions(c, image, false); a != nil {
			promote = append(promote, a)
		}
	}
	return perRun, promote
}

// withReferrers adds to v what the registries say is attached to it
// (the page's live part does not show it, and does not wait for them).
func (s *server) withReferrers(c echo.Context, v imageView) imageView {
	v.Referrers = s.referrersOf(c.Request().Context(), v.Digest, v)
	return v
}

// causalTimeline is the recent events that name digest and every event
// they caused or were caused by, followed through causationid both ways,
// in the environments visible() allows, oldest first.
func (s *server) causalTimeline(digest string, visible func(string) bool) []timelineEntry {
	out := []timelineEntry{}
	if s.recent == nil {
		return out
	}
	seen := map[string]events.Event{}
	queue := s.recent.ByDigest(digest)
	for len(queue) > 0 && len(seen) < maxTimeline {
		e := queue[0]
		queue = queue[1:]
		if _, ok := seen[e.ID()]; ok {
			continue
		}
		seen[e.ID()] = e
		queue = append(queue, s.recent.CausedBy(e.ID())...)
		if cause := events.CausationOf(e); cause != "" {
			if ce, ok := s.recent.ByID(cause); ok {
				queue = append(queue, ce)
			}
		}
	}
	for _, e := range seen {
		env := events.EnvironmentOf(e)
		if !visible(env) {
			continue
		}
		cause := events.CausationOf(e)
		_, caused := seen[cause]
		out = append(out, timelineEntry{
			ID: e.ID(), Type: shortType(e.Type()), Environment: env, Subject: e.Subject(), Time: e.Time(), Parts: summarize(e),
			CausationID: cause, Caused: caused && visible(events.EnvironmentOf(seen[cause])),
		})
	}
	slices.SortFunc(out, func(a, b timelineEntry) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// shortType is an event type as people say it: "image.pushed" for
// dev.slipway.image.pushed.v1.
func shortType(t string) string {
	t = strings.TrimPrefix(t, "dev.slipway.")
	if i := strings.LastIndex(t, ".v"); i > 0 {
		t = t[:i]
	}
	return t
}

// approvalsOf are the approvals of promotions of digest (from or to it)
// into environments visible() allows.
func (s *server) approvalsOf(parent context.Context, digest string, visible func(string) bool) ([]approval.Record, error) {
	out := []approval.Record{}
	if s.deps.JS == nil {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(parent, readTimeout)
	defer cancel()
	st, err := approval.Bind(ctx, s.deps.JS)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return out, nil
	}
	if err != nil {
		return out, err
	}
	all, err := st.List(ctx)
	if err != nil {
		return out, err
	}
	for _, r := range all {
		if (r.From.Digest == digest || r.To.Digest == digest) && visible(r.Environment) && visible(r.From.Environment) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b approval.Record) int { return a.RequestedAt.Compare(b.RequestedAt) })
	return out, nil
}

// referrersOf asks the registries the image is known in (where it runs,
// where a promotion took it) what is attached to it: only the configured
// environments' registries, all at once, within referrersTimeout.
func (s *server) referrersOf(parent context.Context, digest string, v imageView) []referrerSource {
	regs := make([]config.Registry, 0, len(s.cfg.Environments))
	for _, e := range s.cfg.Environments {
		regs = append(regs, e.Registry)
	}
	acc := oci.NewAccess(regs)
	var repos []string // registry/repository
	add := func(registry, repository string) {
		if registry == "" || repository == "" || !acc.Configured(registry) {
			return
		}
		if r := registry + "/" + repository; !slices.Contains(repos, r) {
			repos = append(repos, r)
		}
	}
	for _, r := range v.Runs {
		add(r.Registry, r.Repository)
	}
	for _, a := range v.Approvals {
		for _, ref := range []events.ImageRef{a.From, a.To} {
			if ref.Digest == digest {
				add(ref.Registry, ref.Repository)
			}
		}
	}
	ctx, cancel := context.WithTimeout(parent, referrersTimeout)
	defer cancel()
	out := make([]referrerSource, len(repos))
	done := make(chan struct{}, len(repos))
	for i, repo := range repos {
		go func() {
			defer func() { done <- struct{}{} }()
			out[i] = s.referrersIn(ctx, acc, repo, digest)
		}()
	}
	for range repos {
		<-done
	}
	return out
}

func (s *server) referrersIn(ctx context.Context, acc *oci.Access, repo, digest string) referrerSource {
	src := referrerSource{Image: repo + "@" + digest, Referrers: []referrerView{}}
	host, _, _ := strings.Cut(repo, "/")
	ref, err := name.NewDigest(src.Image, acc.NameOptions(host)...)
	if err != nil {
		src.Unavailable = "not a valid reference"
		return src
	}
	p, err := remote.NewPuller(remote.WithContext(ctx), remote.WithAuthFromKeychain(acc.Keychain()),
		remote.WithTransport(acc.Transport(host)), remote.WithUserAgent("slipway-console"))
	if err == nil {
		var refs []oci.Referrer
		if refs, err = oci.Attached(ctx, ref, p); err == nil {
			for _, r := range refs {
				src.Referrers = append(src.Referrers, referrerView{Kind: referrerKind(r.ArtifactType), ArtifactType: r.ArtifactType, Digest: r.Digest.String(), Tag: r.Tag})
			}
			return src
		}
	}
	s.log.Info("console: a registry did not say what is attached to an image", "image", src.Image, "err", acc.Scrub(err))
	src.Unavailable = "unavailable"
	if ctx.Err() != nil {
		src.Unavailable = "unavailable (no answer in time)"
	}
	return src
}

// referrerKind names an artifact type as people call it.
func referrerKind(t string) string {
	l := strings.ToLower(t)
	switch {
	case t == oci.CosignSignatureType || strings.Contains(l, "signature") || strings.Contains(l, "notary"):
		return "signature"
	case t == oci.CosignSBOMType || strings.Contains(l, "sbom") || strings.Contains(l, "spdx") || strings.Contains(l, "cyclonedx"):
		return "SBOM"
	case t == oci.CosignAttestationType || strings.Contains(l, "attestation") || strings.Contains(l, "in-toto") || strings.Contains(l, "provenance"):
		return "attestation"
	}
	return "artifact"
}

// imagePage is GET /images/{digest}; with ?fragment=live only where it
// runs and its timeline, which the page's script swaps in as they change.
func (s *server) imagePage(c echo.Context) error {
	v, err := s.image(c)
	if err != nil {
		return err
	}
	if c.QueryParam("fragment") == "" {
		v = s.withReferrers(c, v)
	}
	return s.renderView(c, "image", v)
}

// imageAPI is GET /api/images/{digest}.
func (s *server) imageAPI(c echo.Context) error {
	v, err := s.image(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.withReferrers(c, v))
}
