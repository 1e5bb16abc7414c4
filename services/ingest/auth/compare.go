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
