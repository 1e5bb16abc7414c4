package ingest

import (
	"bytes"
	"encoding/json"
	"testing"
)

// The 202 answer is written by hand; it must be what encoding/json writes.
func TestCountsAnswerIsWhatEncodingJSONWrites(t *testing.T) {
	for _, c := range []Counts{{}, {Accepted: 1}, {Accepted: 3, Duplicates: 12, Ignored: 1000}, {Ignored: -1}} {
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(c); err != nil {
			t.Fatal(err)
		}
		if got := c.appendJSON(nil); string(got) != want.String() {
			t.Errorf("%+v: %q, want %q", c, got, want.String())
		}
	}
}
