package main

import (
	"testing"

	"github.com/slipway-cd/slipway/services/deployer/inventory"
)

// A workload that was not given a direct push says so in status's NOTE,
// naming the image (digest shortened) and who pushed it.
func TestStatusNoteNamesARefusedDirectPushAndItsPusher(t *testing.T) {
	img := "registry.prd.example/apps/web:2.0.0@sha256:9d2f0c4b7e61a8f35c0e2b9d4a7f1c6e8b3d5a0f2c4e6b8d1a3c5e7f9b0d2a4c"
	got := refusedNote(&inventory.Refusal{Image: img, Actor: "mallory"})
	if want := "refused direct push registry.prd.example/apps/web:2.0.0@sha256:9d2f0c4b7e61 by mallory"; got != want {
		t.Errorf("note %q, want %q", got, want)
	}
	if got := refusedNote(&inventory.Refusal{Image: img}); got != "refused direct push registry.prd.example/apps/web:2.0.0@sha256:9d2f0c4b7e61 by an unnamed pusher" {
		t.Errorf("note without an actor: %q", got)
	}
}
