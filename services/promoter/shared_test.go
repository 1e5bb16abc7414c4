package promoter_test

import (
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/promoter"
)

// Two stages may share one registry: a promotion between them is then a
// retag in the same repository (here 1.4.2-integration → 1.4.2) or a copy
// to another repository of the same registry. Both land by digest and are
// announced with the registry's host on both sides.
func TestPromotionWithinOneRegistry(t *testing.T) {
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{})
	e := newEnv(t, reg.Host, reg.Host, `
  - name: retag
    from: dev
    to: tst
    repositories: ["apps/**"]
    tags: { regex: '.*-integration' }
    targetTag: '{{ trimSuffix "-integration" .Tag }}'
  - name: copy
    from: dev
    to: tst
    repositories: ["team/**"]
    targetRepository: 'release/{{ .Repository }}'`, "")
	e.start(promoter.New())

	testkit.PushRandomImage(t, reg.Host+"/apps/web:1.4.2-integration")
	retagged := testkit.Digest(t, reg.Host+"/apps/web:1.4.2-integration")
	testkit.PushRandomImage(t, reg.Host+"/team/api:2.0.0")
	copied := testkit.Digest(t, reg.Host+"/team/api:2.0.0")
	e.pushed("apps/web", "1.4.2-integration", retagged, time.Now())
	e.pushed("team/api", "2.0.0", copied, time.Now())

	want := map[string]struct{ ref, digest string }{
		"retag": {reg.Host + "/apps/web:1.4.2", retagged},
		"copy":  {reg.Host + "/release/team/api:2.0.0", copied},
	}
	for _, p := range e.seen.Wait(t, events.TypeImagePromoted, 2) {
		d, _ := events.DataAs[events.ImagePromoted](p)
		w, ok := want[d.Promotion]
		if !ok {
			t.Fatalf("image.promoted of promotion %q", d.Promotion)
		}
		if got := d.To.Registry + "/" + d.To.Repository + ":" + d.To.Tag; got != w.ref || d.To.Digest != w.digest || d.From.Registry != reg.Host || d.To.Environment != "tst" {
			t.Errorf("%s: promoted %s to %s@%s in %s, want %s@%s in tst", d.Promotion, d.From.Registry, got, d.To.Digest, d.To.Environment, w.ref, w.digest)
		}
		if got := testkit.Digest(t, w.ref); got != w.digest {
			t.Errorf("%s: the registry has %s at %s, want %s", d.Promotion, w.ref, got, w.digest)
		}
	}
	if n := len(e.seen.Of(events.TypePromotionFailed)); n != 0 {
		t.Errorf("%d promotion.failed", n)
	}
}
