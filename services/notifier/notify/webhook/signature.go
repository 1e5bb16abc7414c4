package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries the signature of a request's body.
const SignatureHeader = "X-Slipway-Signature"

// DefaultTolerance is how old (or how far in the future) a signature's
// timestamp may be when Verify is given no tolerance.
const DefaultTolerance = 5 * time.Minute

// Errors of Verify.
var (
	// ErrNoSignature: the header is missing or malformed.
	ErrNoSignature = errors.New("no valid X-Slipway-Signature header")
	// ErrBadSignature: no signature in the header matches the body.
	ErrBadSignature = errors.New("signature does not match the body")
	// ErrTimestamp: the timestamp is outside the tolerance (a replay, or a
	// clock far off).
	ErrTimestamp = errors.New("signature timestamp outside the tolerance")
)

// Sign returns the X-Slipway-Signature value for body sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>".
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks an X-Slipway-Signature header against the raw request body,
// as a receiver of Slipway's webhooks should before trusting the event:
// the HMAC must match (compared in constant time), and the timestamp it
// covers must be within tolerance of now (DefaultTolerance when tolerance is
// 0 or less), so that a request captured once cannot be replayed later.
// Several v1 entries are allowed (the first that matches wins), for a
// sender that signs with an old and a new secret while they rotate.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrNoSignature
		}
		switch k {
		case "t":
			if ts != "" {
				return ErrNoSignature
			}
			ts = v
		case "v1":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != sha256.Size {
				return ErrNoSignature
			}
			sigs = append(sigs, b)
		}
		// Other schemes (v0, v2) are skipped: a future sender may add them.
	}
	if ts == "" || len(sigs) == 0 {
		return ErrNoSignature
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrNoSignature
	}
	if age := now.Sub(time.Unix(sec, 0)); age > tolerance || age < -tolerance {
		return fmt.Errorf("%w: signed at %s, %s ago", ErrTimestamp, time.Unix(sec, 0).UTC().Format(time.RFC3339), age.Round(time.Second))
	}
	want := mac(secret, ts, body)
	ok := false
	for _, s := range sigs {
		// Every candidate is compared, so the time taken does not tell
		// which one matched.
		if hmac.Equal(want, s) {
			ok = true
		}
	}
	if !ok {
		return ErrBadSignature
	}
	return nil
}
