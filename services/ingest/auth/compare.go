package auth

import (
	"crypto/sha256"
	"crypto/subtle"
)

// constantTimeCompare is subtle.ConstantTimeCompare; tests replace it to
// prove that every decision of every mechanism goes through it with
// fixed-length inputs.
var constantTimeCompare = subtle.ConstantTimeCompare

// equal reports whether a and b are the same without leaking, through its
// running time, where they differ or how long either is: both sides are
// hashed to 32 bytes first and the digests compared in constant time.
// (ConstantTimeCompare alone returns early on a length mismatch.)
func equal(a, b []byte) bool {
	da, db := sha256.Sum256(a), sha256.Sum256(b)
	return constantTimeCompare(da[:], db[:]) == 1
}

// Match returns the index of the first of secrets that equals presented, or
// -1. It compares presented with every secret (fixed-length digests, in
// constant time) and never stops at a match, so the running time says
// neither whether nor where one matched.
func Match(presented string, secrets []string) int {
	dp := sha256.Sum256([]byte(presented))
	idx, found := -1, 0
	for i, s := range secrets {
		ds := sha256.Sum256([]byte(s))
		eq := constantTimeCompare(dp[:], ds[:])
		first := eq & (found ^ 1) // a match, and none before it
		idx = subtle.ConstantTimeSelect(first, i, idx)
		found |= eq
	}
	return idx
}
