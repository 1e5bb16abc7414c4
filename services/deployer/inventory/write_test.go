package inventory_test

import (
	"errors"
	"testing"

	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
)

// Two writers read the same record and change different fields (the
// deployer notes a refused push while its reconcile fills in a digest):
// the later write of a record read before the earlier one is refused, not
// applied over it, so neither change is lost unseen.
func TestAStaleRecordIsNotWrittenOverANewerOne(t *testing.T) {
	ns := testkit.NATS(t)
	_, js := ns.Connect(t)
	inv, err := inventory.Open(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	base := inventory.Record{Cluster: "prd-a", Environment: "prd", AppID: "/prd/web", Image: "r.example/web:1.0", Policy: "all"}
	if err := inv.Put(t.Context(), base); err != nil {
		t.Fatal(err)
	}
	a, _, _ := inv.Get(t.Context(), "prd-a", "/prd/web")
	b, _, _ := inv.Get(t.Context(), "prd-a", "/prd/web")
	a.Refused = &inventory.Refusal{Image: "r.example/web:2.0", Actor: "ci"}
	if err := inv.Put(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	b.Digest = "sha256:" + "ab"
	if err := inv.Put(t.Context(), b); !errors.Is(err, inventory.ErrChanged) {
		t.Fatalf("stale write: %v, want ErrChanged", err)
	}
	got, _, _ := inv.Get(t.Context(), "prd-a", "/prd/web")
	if got.Refused == nil || got.Refused.Actor != "ci" {
		t.Errorf("the refusal was lost: %+v", got)
	}

	// Modify reads, changes and writes again until it lands on the
	// newest record.
	if err := inv.Modify(t.Context(), "prd-a", "/prd/web", func(r *inventory.Record, exists bool) {
		if !exists {
			t.Error("Modify saw no record")
		}
		r.Digest = "sha256:ab"
	}); err != nil {
		t.Fatal(err)
	}
	got, _, _ = inv.Get(t.Context(), "prd-a", "/prd/web")
	if got.Refused == nil || got.Digest != "sha256:ab" {
		t.Errorf("after Modify: %+v, want both the refusal and the digest", got)
	}
	// A record of nobody yet is created.
	if err := inv.Modify(t.Context(), "prd-a", "/prd/new", func(r *inventory.Record, exists bool) {
		*r = inventory.Record{Cluster: "prd-a", AppID: "/prd/new", Image: "r.example/new:1", Policy: "all"}
	}); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := inv.Get(t.Context(), "prd-a", "/prd/new"); !ok {
		t.Error("Modify did not create the record")
	}
}
