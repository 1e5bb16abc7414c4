package deployer_test

import (
	"testing"

	dcontainer "github.com/docker/docker/api/types/container"

	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
)

// A container without the slipway.policy label on a real Docker engine is
// recorded in the inventory, flagged unmanaged, with the digest of its
// tag-only image resolved from the environment's registry and the host it
// runs on; once removed, its record goes too. It is never touched.
func TestDockerUnlabelledContainerIsRecordedUnmanagedUntilRemoved(t *testing.T) {
	h := newDockerHost(t, "docker", "")
	idle := testkit.BusyboxImage(t, testkit.BusyboxOptions{Cmd: []string{"sleep", "3600"}})
	ref := h.reg.Host + "/tools/idle:1.0"
	dig := testkit.PushImage(t, ref, idle)
	id := h.start("inv-unmanaged", ref, nil)
	h.e.start(deployer.New())

	inv := func() (inventory.Record, bool) {
		s, err := inventory.Bind(t.Context(), h.e.js)
		if err != nil {
			return inventory.Record{}, false
		}
		r, ok, err := s.Get(t.Context(), "host1", "inv-unmanaged")
		return r, err == nil && ok
	}
	var r inventory.Record
	testkit.WaitFor(t, "the unlabelled container in the inventory with its digest", func() bool {
		var ok bool
		r, ok = inv()
		return ok && r.Digest != ""
	})
	if r.Managed || r.Policy != "" || r.Image != ref || r.Digest != dig || r.Platform != "docker" || len(r.Nodes) != 1 || r.Running != 1 {
		t.Errorf("recorded %+v; want unmanaged, %s at %s, running on the host", r, ref, dig)
	}
	if u := h.inspect("inv-unmanaged"); u.ID != id || !u.State.Running {
		t.Errorf("the unlabelled container was touched: id %s (was %s), running %v", u.ID, id, u.State.Running)
	}

	if err := h.api.ContainerRemove(t.Context(), id, dcontainer.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the removed container's record gone", func() bool { _, ok := inv(); return !ok })
}
