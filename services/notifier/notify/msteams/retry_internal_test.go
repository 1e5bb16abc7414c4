package msteams

import (
	"testing"
	"time"
)

func TestRetryAfterHeader(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"7":                             7 * time.Second,
		" 120 ":                         2 * time.Minute,
		"Fri, 01 May 2026 12:00:30 GMT": 30 * time.Second,
		"86400":                         time.Hour, // capped
	} {
		if d, ok := retryAfter(v, now); !ok || d != want {
			t.Errorf("retryAfter(%q) = %v, %v; want %v", v, d, ok, want)
		}
	}
	for _, v := range []string{"", "-1", "0", "soon", "Fri, 01 May 2026 11:59:00 GMT"} {
		if d, ok := retryAfter(v, now); ok {
			t.Errorf("retryAfter(%q) = %v, want none", v, d)
		}
	}
}
