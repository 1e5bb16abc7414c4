package bus

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestHeaderValue(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"two\r\nlines\tand tab", "two  lines and tab"},
		{"bad \xff byte", "bad ? byte"},
	} {
		if got := headerValue(tc.in, 100); got != tc.want {
			t.Errorf("headerValue(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	long := strings.Repeat("é", 600) // 1200 bytes
	got := headerValue(long, maxErrorHeader)
	if len(got) > maxErrorHeader || !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
		t.Errorf("truncated to %d bytes, valid %t", len(got), utf8.ValidString(got))
	}
}

func TestRetryDelay(t *testing.T) {
	c := &Consumer{cfg: ConsumerConfig{BackOff: []time.Duration{time.Second, time.Minute}}}
	plain := errors.New("x")
	for _, tc := range []struct {
		attempt int
		err     error
		want    time.Duration
	}{
		{1, plain, time.Second},
		{2, plain, time.Minute},
		{9, plain, time.Minute}, // the last value repeats
		{1, fmt.Errorf("wrapped: %w", RetryAfter(plain, 42*time.Second)), 42 * time.Second},
		{1, RetryAfter(plain, 0), time.Second},
		// "Retry-After: 0" is "now": the shortest step, not this attempt's.
		{3, RetryAfter(plain, 0), time.Second},
	} {
		if got := c.retryDelay(tc.attempt, tc.err); got != tc.want {
			t.Errorf("attempt %d, %v: %s, want %s", tc.attempt, tc.err, got, tc.want)
		}
	}
}

func TestErrorMarks(t *testing.T) {
	base := errors.New("gone")
	if Permanent(nil) != nil || RetryAfter(nil, time.Second) != nil {
		t.Error("marking nil must stay nil")
	}
	p := fmt.Errorf("ctx: %w", Permanent(base))
	if !IsPermanent(p) || !errors.Is(p, base) || p.Error() != "ctx: gone" {
		t.Errorf("Permanent: IsPermanent %t, Is %t, %q", IsPermanent(p), errors.Is(p, base), p)
	}
	if IsPermanent(base) || IsPermanent(RetryAfter(base, time.Second)) {
		t.Error("unmarked error reported permanent")
	}
}
