package inventory_test

import (
	"fmt"
	"testing"

	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
)

func TestListReturnsTheLastRecordOfEveryWorkloadSortedAndNoneDeleted(t *testing.T) {
	ns := testkit.NATS(t)
	_, js := ns.Connect(t)
	inv, err := inventory.Open(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := inv.List(t.Context()); err != nil || len(got) != 0 {
		t.Fatalf("empty bucket: %d records, %v", len(got), err)
	}
	// Written out of order, some twice (the second image is the one that
	// counts), some deleted.
	for _, cluster := range []string{"dcos-b", "dcos-a"} {
		for i := 9; i >= 0; i-- {
			id := fmt.Sprintf("/team/svc-%d", i)
			for _, tag := range []string{"1.0.0", "1.1.0"} {
				r := inventory.Record{Cluster: cluster, Environment: "dev", AppID: id, Image: "registry.example/svc:" + tag, Policy: "all"}
				if err := inv.Put(t.Context(), r); err != nil {
					t.Fatal(err)
				}
			}
			if i%3 == 0 {
				if err := inv.Delete(t.Context(), cluster, id); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	got, err := inv.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, cluster := range []string{"dcos-a", "dcos-b"} {
		for i := range 10 {
			if i%3 != 0 {
				want = append(want, fmt.Sprintf("%s /team/svc-%d registry.example/svc:1.1.0", cluster, i))
			}
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d: %+v", len(got), len(want), got)
	}
	for i, r := range got {
		if s := r.Cluster + " " + r.AppID + " " + r.Image; s != want[i] {
			t.Errorf("record %d is %q, want %q", i, s, want[i])
		}
	}
}
