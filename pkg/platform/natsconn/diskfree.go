//go:build linux || darwin || freebsd

package natsconn

import "syscall"

// diskFree returns the bytes an unprivileged writer can still use on the
// file system that holds dir, as nats-server measures it for its limit.
func diskFree(dir string) (int64, bool) {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return 0, false
	}
	// The field types differ between systems: convert both.
	return int64(uint64(fs.Bavail) * uint64(fs.Bsize)), true
}
