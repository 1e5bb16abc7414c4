package deployer_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/services/deployer/compliance"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
	"github.com/slipway-cd/slipway/tools/marathon-emulator/emulator"
)

// complianceRules are the rules of the contract's example, on dev.
const complianceRules = `compliance:
  - { name: own-registry, environments: [dev], rule: ownRegistry }
  - { name: promoted-only, environments: [dev], rule: promoted }
  - { name: pinned, environments: [dev], rule: pinnedDigest }
  - { name: signed, environments: [dev], rule: referrers, artifactTypes: ["application/vnd.dev.cosign.artifact.sig.v1+json"] }
  - { name: fresh, environments: [dev], rule: maxAge, maxAge: 2160h }
`

// pushBuilt pushes a new random image whose configuration says it was
// built at created, and returns its digest.
func pushBuilt(t *testing.T, ref string, created time.Time) string {
	t.Helper()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.CreatedAt(img, v1.Time{Time: created}); err != nil {
		t.Fatal(err)
	}
	return testkit.PushImage(t, ref, img)
}

// passes counts each deployer's reconcile passes, so that a test can wait
// for passes that began after a point.
type passes struct {
	mu sync.Mutex
	n  map[*deployer.Service]int
}

func (p *passes) service() *deployer.Service {
	svc := deployer.New()
	p.mu.Lock()
	p.n[svc] = 0 // counted from its first pass: wait must not pass before it
	p.mu.Unlock()
	svc.Hooks = &deployer.Hooks{Reconciled: func(string, error) {
		p.mu.Lock()
		p.n[svc]++
		p.mu.Unlock()
	}}
	return svc
}

// wait waits until every deployer has finished two more passes: one that
// may have begun before the call, and a whole one after it.
func (p *passes) wait(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	start := maps.Clone(p.n)
	p.mu.Unlock()
	testkit.WaitFor(t, "two more reconcile passes of every deployer", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		for svc, n := range start {
			if p.n[svc] < n+2 {
				return false
			}
		}
		return true
	})
}

// violations reads the compliance bucket as "app rule" pairs.
func violations(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	st, err := compliance.Bind(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := st.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, v := range vs {
		out = append(out, v.AppID+" "+v.Rule)
	}
	return out
}

// announced counts the compliance.violated events in the stream.
func announced(t *testing.T, js jetstream.JetStream) int {
	t.Helper()
	st, err := js.Stream(t.Context(), bus.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context(), jetstream.WithSubjectFilter("slipway.compliance.>"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	return n
}

// Every rule kind finds its violation on a Marathon cluster whose apps
// run images of two real registries (the environment's, and another
// environment's): each violation is recorded and announced once, even by
// two deployer replicas and over further passes; a fixed one leaves the
// record without a word, and one that comes back is announced again.
func TestComplianceViolationsAreAnnouncedOnceAndClearedWhenFixed(t *testing.T) {
	dev := testkit.NewRegistry(t, testkit.RegistryOptions{})
	ci := testkit.NewRegistry(t, testkit.RegistryOptions{})
	now := time.Now()
	good := pushBuilt(t, dev.Host+"/apps/good:1.0", now)
	testkit.PushCosignSignature(t, dev.Host+"/apps/good@"+good)
	testkit.PushImage(t, ci.Host+"/apps/good:1.0", mustImage(t, dev.Host+"/apps/good@"+good))
	stray := pushBuilt(t, ci.Host+"/apps/stray:1.0", now)
	unsigned := pushBuilt(t, dev.Host+"/apps/unsigned:1.0", now)
	old := pushBuilt(t, dev.Host+"/apps/old:1.0", now.Add(-200*24*time.Hour))
	testkit.PushCosignSignature(t, dev.Host+"/apps/old@"+old)

	labels := map[string]string{"slipway.policy": "all"}
	c := newCluster(t, "azure-int", emulator.Options{},
		appJSON("/dev/good", dev.Host+"/apps/good:1.0@"+good, labels),
		appJSON("/dev/foreign", dev.Host+"/apps/good:1.0@"+good, labels),
		appJSON("/dev/tag", dev.Host+"/apps/good:1.0", labels),
		appJSON("/dev/stray", dev.Host+"/apps/good:1.0@"+good, labels),
		appJSON("/dev/unsigned", dev.Host+"/apps/unsigned:1.0@"+unsigned, labels),
		appJSON("/dev/old", dev.Host+"/apps/old:1.0@"+old, labels),
		appJSON("/dev/unlabelled", "docker.io/library/nginx:1.27", map[string]string{}),
	)
	e := newComplianceEnv(t, dev.Host, ci.Host, complianceRules, c)
	var p passes
	p.n = map[*deployer.Service]int{}
	e.start(p.service())
	e.start(p.service())

	// Changed by hand to another registry's images once Slipway has
	// recorded them: they stay this cluster's.
	inv, err := inventory.Open(t.Context(), e.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the apps in the inventory", func() bool {
		_, a, _ := inv.Get(t.Context(), "azure-int", "/dev/foreign")
		_, b, _ := inv.Get(t.Context(), "azure-int", "/dev/stray")
		return a && b
	})
	putJSON(t, c.url+"/v2/apps/dev/foreign?force=true", `{"container":{"type":"DOCKER","docker":{"image":"`+ci.Host+`/apps/good:1.0@`+good+`"}}}`)
	putJSON(t, c.url+"/v2/apps/dev/stray?force=true", `{"container":{"type":"DOCKER","docker":{"image":"`+ci.Host+`/apps/stray:1.0@`+stray+`"}}}`)

	want := []string{
		"/dev/foreign own-registry", // another environment's registry, same digest
		"/dev/old fresh",
		"/dev/stray own-registry",
		"/dev/stray promoted-only", // its digest never reached dev's registry
		"/dev/stray signed",
		"/dev/tag pinned",
		"/dev/unsigned signed",
	}
	testkit.WaitFor(t, "every violation recorded", func() bool { return slices.Equal(violations(t, e.js), want) })
	p.wait(t)
	if got := violations(t, e.js); !slices.Equal(got, want) {
		t.Fatalf("violations after more passes: %q, want %q", got, want)
	}
	if n := announced(t, e.js); n != len(want) {
		t.Fatalf("%d compliance.violated events for %d violations, over several passes of two replicas", n, len(want))
	}
	kinds := map[string]events.ComplianceViolated{}
	for _, ev := range e.comp.Wait(t, events.TypeComplianceViolated, len(want)) {
		d, err := events.DataAs[events.ComplianceViolated](ev)
		if err != nil {
			t.Fatal(err)
		}
		if d.Cluster != "azure-int" || d.Environment != "dev" || d.Detail == "" || ev.Subject() != "azure-int:"+d.AppID {
			t.Errorf("announcement %+v (subject %s)", d, ev.Subject())
		}
		kinds[d.Kind] = d
	}
	for _, k := range []string{config.RuleOwnRegistry, config.RulePromoted, config.RulePinnedDigest, config.RuleReferrers, config.RuleMaxAge} {
		if _, ok := kinds[k]; !ok {
			t.Errorf("no violation of kind %s announced", k)
		}
	}
	if d := kinds[config.RuleMaxAge]; d.Digest != old || !strings.Contains(d.Detail, "older than 2160h") {
		t.Errorf("maxAge violation %+v", d)
	}

	// Fixed: pinned, signed, and back on dev's registry.
	putJSON(t, c.url+"/v2/apps/dev/tag?force=true", `{"container":{"type":"DOCKER","docker":{"image":"`+dev.Host+`/apps/good:1.0@`+good+`"}}}`)
	putJSON(t, c.url+"/v2/apps/dev/foreign?force=true", `{"container":{"type":"DOCKER","docker":{"image":"`+dev.Host+`/apps/good:1.0@`+good+`"}}}`)
	testkit.PushCosignSignature(t, dev.Host+"/apps/unsigned@"+unsigned)
	want = []string{"/dev/old fresh", "/dev/stray own-registry", "/dev/stray promoted-only", "/dev/stray signed"}
	testkit.WaitFor(t, "the fixed violations cleared", func() bool { return slices.Equal(violations(t, e.js), want) })
	p.wait(t)
	if n := announced(t, e.js); n != 7 {
		t.Errorf("%d compliance.violated events after fixes, want the 7 of before", n)
	}

	// Broken again: announced again, under a new event id.
	putJSON(t, c.url+"/v2/apps/dev/tag?force=true", `{"container":{"type":"DOCKER","docker":{"image":"`+dev.Host+`/apps/good:1.0"}}}`)
	evs := e.comp.Wait(t, events.TypeComplianceViolated, 8)
	again, err := events.DataAs[events.ComplianceViolated](evs[7])
	if err != nil {
		t.Fatal(err)
	}
	if again.AppID != "/dev/tag" || again.Rule != "pinned" {
		t.Errorf("the violation that came back: %+v", again)
	}
	for _, ev := range evs[:7] {
		if ev.ID() == evs[7].ID() {
			t.Errorf("the violation that came back reuses event id %s", ev.ID())
		}
	}
	p.wait(t)
	if n := announced(t, e.js); n != 8 {
		t.Errorf("%d compliance.violated events, want 8", n)
	}
}

func mustImage(t *testing.T, ref string) v1.Image {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, testkit.RemoteOptions(t)...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// complianceEnv is an env whose dev environment is a real registry, with
// a second environment (ci) on another, and compliance rules.
type complianceEnv struct {
	*env
	comp *testkit.Recorder
}

func newComplianceEnv(t *testing.T, devHost, ciHost, rules string, clusters ...*marathonCluster) *complianceEnv {
	t.Helper()
	ns := testkit.NATS(t)
	_, js := ns.Connect(t)
	var cl strings.Builder
	for _, c := range clusters {
		fmt.Fprintf(&cl, "  - name: %s\n    environment: dev\n    marathon: { url: %q, auth: { none: true } }\n", c.name, c.url)
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
nats: { url: %q }
environments:
  - { name: dev, registry: { host: %q } }
  - { name: ci, registry: { host: %q } }
deployer: { syncInterval: 1m, reconcileInterval: 100ms, pollInterval: 100ms }
clusters:
%s%s`, ns.URL, devHost, ciHost, cl.String(), rules)), noEnv, deployer.New())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.EnsureStream(t.Context(), js, cfg.StreamConfig()); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ns: ns, js: js, cfg: cfg, rec: record(t, js), metrics: prometheus.NewRegistry()}
	return &complianceEnv{env: e, comp: testkit.Record(t, js, "slipway.compliance.>")}
}

// Each problem of a compliance rule is reported at its key path.
func TestComplianceConfigProblemsNameTheKey(t *testing.T) {
	doc := `environments: [{name: dev, registry: {host: r}}, {name: prd, registry: {host: p}}]
compliance:
  - { name: ok, environments: [prd], rule: ownRegistry }
  - { name: ok, environments: [prd], rule: pinnedDigest }
  - { name: nowhere, environments: [qa], rule: promoted }
  - { name: what, environments: [prd], rule: signedByBob }
  - { name: signed, environments: [prd], rule: referrers }
  - { name: fresh, environments: [prd], rule: maxAge }
  - { name: stray, environments: [prd], rule: pinnedDigest, maxAge: 24h, artifactTypes: [x] }
  - { name: Bad Name, environments: [], rule: maxAge, maxAge: -1h }
`
	_, err := config.Parse([]byte(doc), noEnv, deployer.New())
	if err == nil {
		t.Fatal("the check passed")
	}
	for _, want := range []string{
		`compliance[1].name: "ok" is defined twice`,
		`compliance[2].environments[0]: unknown environment "qa"`,
		`compliance[3].rule: "signedByBob" is not a rule`,
		`compliance[4].artifactTypes: rule referrers needs`,
		`compliance[5].maxAge: rule maxAge needs a positive duration`,
		`compliance[6].maxAge: is for rule maxAge only`,
		`compliance[6].artifactTypes: is for rule referrers only`,
		`compliance[7].name: "Bad Name" must be`,
		`compliance[7].environments: must name at least one environment`,
		`compliance[7].maxAge: rule maxAge needs a positive duration`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("no problem %q in:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "compliance[0]") {
		t.Errorf("a valid rule was refused:\n%v", err)
	}
}

// When two environments share one registry, every push of either is in
// "the environment's registry": being there proves nothing, so the
// promoted rule counts only what the promoter recorded. A digest pushed
// straight to the shared registry is a violation.
func TestPromotedRuleOnASharedRegistryCountsOnlyPromotions(t *testing.T) {
	shared := testkit.NewRegistry(t, testkit.RegistryOptions{})
	direct := pushBuilt(t, shared.Host+"/apps/orders:1.2.0", time.Now())
	c := newCluster(t, "azure-int", emulator.Options{},
		appJSON("/dev/orders", shared.Host+"/apps/orders:1.2.0@"+direct, map[string]string{"slipway.policy": "all"}))
	e := newComplianceEnv(t, shared.Host, shared.Host, `
compliance:
  - { name: promoted-only, environments: [dev], rule: promoted }
`, c)
	var p passes
	p.n = map[*deployer.Service]int{}
	e.start(p.service())
	p.wait(t)
	p.wait(t)
	if got := violations(t, e.js); !slices.Equal(got, []string{"/dev/orders promoted-only"}) {
		t.Errorf("violations %q, want the directly pushed digest reported", got)
	}
}
