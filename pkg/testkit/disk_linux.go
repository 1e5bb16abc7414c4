package testkit

import (
	"strconv"
	"syscall"
	"testing"
)

// SmallDisk mounts a tmpfs of size bytes on a fresh directory, so that a
// test can fill a disk without filling the machine's, and returns the
// directory; it is unmounted in t.Cleanup (register anything that keeps
// files open in it after calling SmallDisk). Mounting needs root: without
// it the test is skipped, except under CI=true, where it fails.
func SmallDisk(t testing.TB, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.FormatInt(size, 10)); err != nil {
		needPrivilege(t, "mount a tmpfs", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			// Something still holds a file open: detach it now, and the
			// kernel frees it when the last file is closed.
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}
