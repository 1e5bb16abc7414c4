package httpretry_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/platform/httpretry"
)

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func TestClassifyEveryStatusClass(t *testing.T) {
	const (
		S = httpretry.Success
		R = httpretry.Retry
		P = httpretry.Permanent
	)
	for _, tc := range []struct {
		status      int
		want        httpretry.Outcome
		unprocessed bool
	}{
		{0, P, false}, {99, P, false},
		{100, P, false}, {101, P, false},
		{200, S, false}, {201, S, false}, {202, S, false}, {204, S, false}, {299, S, false},
		{301, P, false}, {302, P, false}, {304, P, false}, {307, P, false}, {308, P, false},
		{400, P, false}, {401, P, false}, {403, P, false}, {404, P, false}, {405, P, false},
		{409, P, false}, {410, P, false}, {413, P, false}, {415, P, false}, {422, P, false}, {499, P, false},
		{408, R, true}, {425, R, true}, {429, R, true},
		{500, R, false}, {502, R, false}, {503, R, true}, {504, R, false},
		{501, P, false}, {505, P, false},
		{506, R, false}, {507, R, false}, {511, R, false}, {520, R, false}, {524, R, false}, {599, R, false},
		{600, P, false}, {999, P, false},
	} {
		d := httpretry.Classify(tc.status, nil, now)
		if d.Outcome != tc.want || d.Unprocessed != tc.unprocessed {
			t.Errorf("%d: %s unprocessed=%t, want %s unprocessed=%t", tc.status, d.Outcome, d.Unprocessed, tc.want, tc.unprocessed)
		}
		if httpretry.Retryable(tc.status) != (tc.want == R) {
			t.Errorf("Retryable(%d) = %t", tc.status, !(tc.want == R))
		}
	}
}

func TestRetryStatusesAreRetryable(t *testing.T) {
	for _, s := range httpretry.RetryStatuses {
		if !httpretry.Retryable(s) {
			t.Errorf("%d listed but not retryable", s)
		}
	}
}

func TestRetryAfterForms(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		value  string
		after  time.Duration
		has    bool
	}{
		{"seconds", 429, "7", 7 * time.Second, true},
		{"seconds with spaces", 503, " 120 ", 2 * time.Minute, true},
		{"zero is now", 503, "0", 0, true},
		{"leading zeros", 429, "007", 7 * time.Second, true},
		{"capped seconds", 429, "86400", time.Hour, true},
		{"digits beyond int64", 429, "99999999999999999999999", time.Hour, true},
		{"HTTP-date (IMF-fixdate)", 503, "Fri, 01 May 2026 12:00:30 GMT", 30 * time.Second, true},
		{"HTTP-date (RFC 850)", 503, "Friday, 01-May-26 12:00:30 GMT", 30 * time.Second, true},
		{"HTTP-date (asctime)", 503, "Fri May  1 12:00:30 2026", 30 * time.Second, true},
		{"HTTP-date in the past is now", 503, "Fri, 01 May 2026 11:59:00 GMT", 0, true},
		{"HTTP-date capped", 503, "Sat, 02 May 2026 12:00:00 GMT", time.Hour, true},
		{"absent", 429, "", 0, false},
		{"negative", 429, "-1", 0, false},
		{"fraction", 429, "1.5", 0, false},
		{"words", 429, "soon", 0, false},
		{"on a 500 too", 500, "3", 3 * time.Second, true},
		{"on 408", 408, "1", time.Second, true},
		{"on 425", 425, "2", 2 * time.Second, true},
		{"ignored on success", 200, "5", 0, false},
		{"ignored on a permanent answer", 400, "5", 0, false},
		{"ignored on a redirect", 301, "5", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.value != "" {
				h.Set("Retry-After", tc.value)
			}
			d := httpretry.Classify(tc.status, h, now)
			if d.After != tc.after || d.HasAfter != tc.has {
				t.Errorf("Retry-After %q on %d: after %s has %t, want %s %t", tc.value, tc.status, d.After, d.HasAfter, tc.after, tc.has)
			}
		})
	}
}

func TestWait(t *testing.T) {
	backoff := func(n int) time.Duration { return time.Duration(n) * time.Second }
	for _, tc := range []struct {
		name string
		d    httpretry.Decision
		n    int
		want time.Duration
	}{
		{"no Retry-After: the schedule", httpretry.Decision{Outcome: httpretry.Retry}, 3, 3 * time.Second},
		{"Retry-After replaces the schedule", httpretry.Decision{Outcome: httpretry.Retry, After: 10 * time.Second, HasAfter: true}, 3, 10 * time.Second},
		{"a short Retry-After wins over a long step", httpretry.Decision{Outcome: httpretry.Retry, After: 2 * time.Second, HasAfter: true}, 5, 2 * time.Second},
		{"Retry-After 0 is the shortest step", httpretry.Decision{Outcome: httpretry.Retry, HasAfter: true}, 4, time.Second},
	} {
		if got := tc.d.Wait(backoff, tc.n); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
