package testkit

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// needPrivilege skips a test that cannot set up what it needs without
// privileges it does not have, and fails it under CI=true: CI runs as root,
// so there the test must run.
func needPrivilege(t testing.TB, why string, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (this test needs root): %v", why, err)
	}
	t.Skipf("%s (this test needs root): %v", why, err)
}

// FillDisk writes a file in dir until its file system is full, then gives
// back leave bytes of it. The returned function removes the file (freeing
// the space); t.Cleanup removes it too.
func FillDisk(t testing.TB, dir string, leave int64) (free func()) {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	free = func() { _ = os.Remove(path) }
	t.Cleanup(free)
	buf := make([]byte, 64<<10)
	var size int64
	for {
		n, err := f.Write(buf)
		size += int64(n)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			f.Close()
			t.Fatal(err)
		}
	}
	if leave > 0 {
		if err := f.Truncate(max(size-leave, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatal(err)
	}
	return free
}
