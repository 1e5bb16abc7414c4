package formats

// Reading the times registries send. Every Push.PushedAt comes from
// parseTime or epochSeconds, and both refuse what publishable refuses: an
// event whose time cannot be written as RFC 3339 could never be marshalled
// (time.Time.MarshalJSON fails outside the years 0 to 9999).

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"time"
)

// maxEpoch is 9999-12-31T23:59:59Z, the last second publishable accepts.
const maxEpoch = 253402300799

// publishable reports whether a time can be written as RFC 3339, which has
// four-digit years.
func publishable(t time.Time) bool {
	y := t.Year()
	return y >= 0 && y <= 9999
}

// The ways a timestamp field can be wrong; optionalTime puts them after the
// field's name and value.
var (
	errNotTimestamp = errors.New("is not a timestamp")
	errOutsideYears = errors.New("is outside the years 0 to 9999")
)

// parseTime reads the timestamps registries send: RFC 3339 (with or without
// fraction) and the Java "+0000" offsets Nexus writes. The year is checked
// after the offset is applied: "0000-01-01T00:00:00+01:00" parses, but is
// in year -1.
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			t = t.UTC()
			if !publishable(t) {
				return time.Time{}, errOutsideYears
			}
			return t, nil
		}
	}
	return time.Time{}, errNotTimestamp
}

// optionalTime parses a time field that may be absent; a present one that
// parseTime refuses makes the payload malformed.
func optionalTime(format, field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := parseTime(s)
	if err != nil {
		return time.Time{}, timeError(format, field, s, err)
	}
	return t, nil
}

// timeError is the error for a time field whose value s parseTime refused.
func timeError(format, field, s string, err error) error {
	return malformed("%s: %s %q %v", format, field, s, err)
}

// epochSeconds turns a Unix time in seconds into a time, refusing values no
// registry sends (zero, negative, past maxEpoch). It also returns the
// seconds as a canonical decimal string, so that composite upstream ids do
// not depend on how the sender spelt the number (1417566161 or
// 1.417566161e+09: old Docker Hub payloads used the float form).
func epochSeconds(format, field string, n json.Number) (time.Time, string, error) {
	if n == "" {
		return time.Time{}, "", nil
	}
	sec, err := n.Int64()
	if err != nil {
		// Bounded before the conversion: a float past int64 has no
		// defined int64 value.
		f, ferr := n.Float64()
		if ferr != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 1 || f > maxEpoch {
			return time.Time{}, "", malformed("%s: %s %s is not a Unix time in seconds", format, field, n)
		}
		sec = int64(f)
	}
	if sec < 1 || sec > maxEpoch {
		return time.Time{}, "", malformed("%s: %s %s is not a Unix time in seconds", format, field, n)
	}
	return time.Unix(sec, 0).UTC(), strconv.FormatInt(sec, 10), nil
}
