//go:build !(linux || darwin || freebsd)

package natsconn

// diskFree is unknown here: a store at JetStream's limit then needs a
// restart of the process once the disk has room.
func diskFree(string) (int64, bool) { return 0, false }
