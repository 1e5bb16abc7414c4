package events

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// ID derives a deterministic event id from the parts that identify what
// happened. The same parts always give the same id, so a registry's retry or a
// redelivered input event produces a message JetStream drops as a duplicate.
//
// The id has the layout of an RFC 9562 version 8 (custom) UUID built from the
// SHA-256 of the parts, so it is unique in practice and readable in tools that
// expect UUIDs.
func ID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		// Length-prefix each part so ("ab","c") and ("a","bc") differ.
		var n [8]byte
		l := len(p)
		for i := range n {
			n[i] = byte(l >> (8 * i))
		}
		h.Write(n[:])
		h.Write([]byte(p))
	}
	sum := h.Sum(nil)[:16]
	sum[6] = sum[6]&0x0f | 0x80 // version 8
	sum[8] = sum[8]&0x3f | 0x80 // RFC 9562 variant
	var b strings.Builder
	b.Grow(36)
	x := hex.EncodeToString(sum)
	b.WriteString(x[0:8])
	b.WriteByte('-')
	b.WriteString(x[8:12])
	b.WriteByte('-')
	b.WriteString(x[12:16])
	b.WriteByte('-')
	b.WriteString(x[16:20])
	b.WriteByte('-')
	b.WriteString(x[20:32])
	return b.String()
}

// CausedID derives the id of an event caused by another: the causing event's
// id, the new event's type and whatever distinguishes several effects of one
// cause (a cluster and app, a receiver).
func CausedID(causationID string, t Type, parts ...string) string {
	return ID(append([]string{causationID, string(t)}, parts...)...)
}
