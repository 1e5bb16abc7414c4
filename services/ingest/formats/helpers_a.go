package formats

// Helpers shared by the distribution, gitlab, dockerhub, harbor, acr and
// quay parsers (the name and reference checks they share with the other
// formats live in helpers_b.go).

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
)

// maxEpoch is 9999-12-31T23:59:59Z: later times cannot be written as RFC 3339,
// so an event carrying one could never be marshalled.
const maxEpoch = 253402300799

// epochSeconds turns a Unix time in seconds into a time, refusing values no
// registry sends (zero, negative, past year 9999). It also returns the
// seconds as a canonical decimal string, so that composite upstream ids do
// not depend on how the sender spelt the number (1417566161 or
// 1.417566161e+09: old Docker Hub payloads used the float form).
func epochSeconds(format, field string, n json.Number) (time.Time, string, error) {
	if n == "" {
		return time.Time{}, "", nil
	}
	sec, err := n.Int64()
	if err != nil {
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

// fieldPath names a field inside the element at path (e.g. "events[2]"), or at
// the top level when path is empty, for error messages.
func fieldPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// publishable reports whether a time can be written as RFC 3339, as every
// event's pushedAt is. Parsing alone does not ensure it: the offset in
// "0000-01-01T00:00:00+01:00" moves it into year -1.
func publishable(t time.Time) bool {
	y := t.Year()
	return y >= 0 && y <= 9999
}

// eventTime parses an optional RFC 3339 timestamp field that becomes a
// push's time.
func eventTime(format, field, s string) (time.Time, error) {
	t, err := optionalTime(format, field, s)
	if err == nil && !publishable(t) {
		return time.Time{}, malformed("%s: %s %q is outside the years 0 to 9999", format, field, s)
	}
	return t, err
}
