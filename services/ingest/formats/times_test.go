package formats

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestEpochSeconds(t *testing.T) {
	for _, tc := range []struct {
		in      json.Number
		want    string
		wantErr bool
	}{
		{"", "", false},
		{"1417566161", "1417566161", false},
		{"1.417566161e+09", "1417566161", false},
		{"1417566161.75", "1417566161", false},
		{"0", "", true},
		{"-5", "", true},
		{"253402300800", "", true},
		{"1e400", "", true},
		{"NaN", "", true},
	} {
		at, sec, err := epochSeconds("x", "t", tc.in)
		if (err != nil) != tc.wantErr || sec != tc.want {
			t.Errorf("epochSeconds(%q) = %v, %q, %v", tc.in, at, sec, err)
		}
		if err == nil && tc.want != "" && at.Unix() != 1417566161 {
			t.Errorf("epochSeconds(%q) = %v", tc.in, at)
		}
	}
	// epochSeconds bounds by maxEpoch what parseTime bounds by publishable.
	if !publishable(time.Unix(maxEpoch, 0).UTC()) || publishable(time.Unix(maxEpoch+1, 0).UTC()) {
		t.Error("maxEpoch is not the last publishable second")
	}
}

func TestParseTime(t *testing.T) {
	for in, want := range map[string]string{
		"2016-11-10T23:57:49.664+0000": "2016-11-10T23:57:49.664Z",
		"2024-03-04T10:15:30Z":         "2024-03-04T10:15:30Z",
		"2024-03-04T12:15:30.5+02:00":  "2024-03-04T10:15:30.5Z",
		"0000-01-01T00:00:00Z":         "0000-01-01T00:00:00Z",
		"9999-12-31T23:59:59Z":         "9999-12-31T23:59:59Z",
	} {
		got, err := parseTime(in)
		if err != nil || !got.Equal(mustTime(t, want)) {
			t.Errorf("parseTime(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	if _, err := parseTime("yesterday"); !errors.Is(err, errNotTimestamp) {
		t.Errorf("parseTime accepted garbage: %v", err)
	}
	// The offset moves these out of the years RFC 3339 can write.
	for _, in := range []string{"0000-01-01T00:00:00+01:00", "9999-12-31T23:59:59-00:01", "9999-12-31T23:30:00.000-0100"} {
		if _, err := parseTime(in); !errors.Is(err, errOutsideYears) {
			t.Errorf("parseTime(%q) = %v, want %v", in, err, errOutsideYears)
		}
	}
	if _, err := optionalTime("x", "time", "0000-01-01T00:00:00+01:00"); err == nil {
		t.Error("optionalTime accepted a time in year -1")
	}
}
