//go:build !linux

package testkit

import (
	"errors"
	"testing"
)

// SmallDisk mounts a small tmpfs: Linux only (see disk_linux.go).
func SmallDisk(t testing.TB, size int64) string {
	t.Helper()
	needPrivilege(t, "mount a tmpfs", errors.New("tmpfs mounts are only set up on Linux"))
	return ""
}
