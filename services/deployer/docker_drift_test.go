package deployer_test

import (
	"strings"
	"testing"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer"
)

// A labelled container recreated by hand on any other image is drift on a
// real engine: another registry's image, another tag, another repository,
// a bare digest. Each is reported with the actual image and the inventory
// keeps the expected one, flagged.
func TestDockerContainerRecreatedByHandOnAnyImageIsDrift(t *testing.T) {
	cases := []struct {
		name   string
		actual func(h *dockerHost) string
	}{
		{"another registry", func(h *dockerHost) string {
			ref, _ := h.imageIn(testkit.NewRegistry(t, testkit.RegistryOptions{}), "apps/web", "1.0.0", "elsewhere", false)
			return ref
		}},
		{"another tag", func(h *dockerHost) string {
			ref, _ := h.image("apps/web", "1.0.5", "v1.0.5", false)
			return ref
		}},
		{"another repository", func(h *dockerHost) string {
			ref, _ := h.image("apps/other", "1.0.0", "other", false)
			return ref
		}},
		{"a bare digest", func(h *dockerHost) string {
			_, dig := h.image("apps/web", "1.0.6", "v1.0.6", false)
			return h.reg.Host + "/apps/web@" + dig
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newDockerHost(t, "docker", "")
			expected, _ := h.image("apps/web", "1.0.0", "v1", false)
			actual := tc.actual(h)
			name := "web-drift-" + strings.ReplaceAll(tc.name, " ", "-")
			labels := map[string]string{"slipway.policy": "all"}
			h.run(name, expected, labels)
			h.e.start(deployer.New())
			testkit.WaitFor(t, "the baseline in the inventory", func() bool { return inventoryHas(t, h.e, "host1", name, expected) })

			// By hand: docker rm -f NAME && docker run --name NAME … ACTUAL
			h.removeAll(name)
			h.run(name, actual, labels)

			d := waitDrift(t, h.e, "drift to "+actual, func(d events.DriftDetected) bool { return d.ActualImage == actual })
			if d.AppID != name || d.ExpectedImage != expected || d.Unmanaged || d.Platform != "docker" {
				t.Errorf("drift data: %+v", d)
			}
			testkit.WaitFor(t, "the record flagged", func() bool {
				r, _ := inventoryRecord(t, h.e, "host1", name)
				return r.Image == expected && r.Drift == actual && r.LeftManagement == ""
			})
		})
	}
}

// A labelled container recreated by hand without its label is reported
// once as leaving management, its record kept and flagged unlabelled.
func TestDockerContainerRecreatedWithoutItsLabelLeavesManagement(t *testing.T) {
	h := newDockerHost(t, "docker", "")
	expected, _ := h.image("apps/web", "1.0.0", "v1", false)
	const name = "web-unlabelled"
	h.run(name, expected, map[string]string{"slipway.policy": "all"})
	h.e.start(deployer.New())
	testkit.WaitFor(t, "the baseline in the inventory", func() bool { return inventoryHas(t, h.e, "host1", name, expected) })

	h.removeAll(name)
	h.run(name, expected, map[string]string{"team": "web"})

	d := waitDrift(t, h.e, "leaving management", func(d events.DriftDetected) bool { return d.Unmanaged })
	if d.AppID != name || d.ExpectedImage != expected || d.Reason == "" {
		t.Errorf("drift data: %+v", d)
	}
	testkit.WaitFor(t, "the record kept, flagged unlabelled", func() bool {
		r, ok := inventoryRecord(t, h.e, "host1", name)
		return ok && r.Image == expected && r.LeftManagement == "unlabelled"
	})
	if n := len(drifts(t, h.e)); n != 1 {
		t.Errorf("%d drift.detected, want the departure once: %+v", n, drifts(t, h.e))
	}
}
