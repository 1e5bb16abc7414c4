package formats

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Every envelope captured from a registry takes the fast path, and reads as
// json.Unmarshal reads it.
func TestScanEnvelopeReadsCapturedEnvelopes(t *testing.T) {
	for _, dir := range []string{"distribution", "gitlab"} {
		files, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no fixtures in testdata/%s: %v", dir, err)
		}
		for _, file := range files {
			name, _ := filepath.Rel("testdata", file)
			body := fixture(t, name)
			got, ok := scanEnvelope(body)
			if !ok {
				t.Errorf("%s: scanEnvelope gave up", name)
				continue
			}
			wantSameEvents(t, body, got)
		}
	}
}

// The fast path gives up on what encoding/json reads in its own way, so
// that the answer stays encoding/json's.
func TestScanEnvelopeGivesUpOnWhatEncodingJSONReadsItsOwnWay(t *testing.T) {
	const digest = `"sha256:e59473b06c0d05a9dfbaad8686588047cc07865743a78c9559bfd5ce15b60d0d"`
	for name, body := range map[string]string{
		"name in another case":      `{"events":[{"ID":"x","action":"push"}]}`,
		"name folding to a field":   `{"events":[{"action":"push","target":{"ſize":1,"digest":` + digest + `}}]}`,
		"envelope in another case":  `{"Events":[]}`,
		"repeated field":            `{"events":[{"action":"pull","action":"push"}]}`,
		"repeated target":           `{"events":[{"target":{"tag":"a"},"target":{"digest":` + digest + `}}]}`,
		"repeated events":           `{"events":[],"events":[{"action":"push"}]}`,
		"escaped string":            `{"events":[{"action":"p\u0075sh"}]}`,
		"escaped name":              `{"events":[{"\u0061ction":"push"}]}`,
		"invalid UTF-8":             "{\"events\":[{\"action\":\"push\",\"actor\":{\"name\":\"a\xff\"}}]}",
		"null field":                `{"events":[{"action":"push","target":null}]}`,
		"null event":                `{"events":[null]}`,
		"null events":               `{"events":null}`,
		"no events":                 `{}`,
		"size with a fraction":      `{"events":[{"target":{"size":1.0}}]}`,
		"size with an exponent":     `{"events":[{"target":{"size":1e3}}]}`,
		"size past int64":           `{"events":[{"target":{"size":9223372036854775808}}]}`,
		"size as a string":          `{"events":[{"target":{"size":"1"}}]}`,
		"number with a leading 0":   `{"events":[{"target":{"size":01}}]}`,
		"deep unknown value":        `{"events":[],"x":` + strings.Repeat("[", maxSkipDepth+2) + strings.Repeat("]", maxSkipDepth+2) + `}`,
		"trailing garbage":          `{"events":[]}}`,
		"trailing comma":            `{"events":[],}`,
		"not an object":             `[]`,
		"control character":         "{\"events\":[{\"action\":\"pu\tsh\"}]}",
		"unterminated":              `{"events":[{"action":"push"`,
		"unknown value not JSON":    `{"events":[],"x":tru}`,
		"unknown number not JSON":   `{"events":[],"x":-}`,
		"unknown fraction not JSON": `{"events":[],"x":1.}`,
	} {
		t.Run(name, func(t *testing.T) {
			if events, ok := scanEnvelope([]byte(body)); ok {
				t.Fatalf("read %s as %+v", body, events)
			}
		})
	}
}

// FuzzScanEnvelope holds the fast path to encoding/json: whatever it reads,
// json.Unmarshal reads as the same events.
func FuzzScanEnvelope(f *testing.F) {
	seedFixtures(f, "distribution",
		`{"events":[]}`, `{"events":[{}]}`, ` {"events" : [ {"action":"push"} ] } `,
		`{"events":[{"action":"push","target":{"size":-0,"length":0}}]}`,
		`{"events":[],"x":[1,-2.5e+3,0.1E-2,true,false,null,{"a":["b"]}]}`,
		`{"events":[{"ID":"x"}]}`, `{"events":[{"id":"é✓"}]}`)
	seedFixtures(f, "gitlab")
	f.Fuzz(func(t *testing.T, body []byte) {
		if events, ok := scanEnvelope(body); ok {
			wantSameEvents(t, body, events)
		}
	})
}

// wantSameEvents asserts json.Unmarshal reads events from body, as the
// decoding scanEnvelope stands in for.
func wantSameEvents(t *testing.T, body []byte, events []*registryEvent) {
	t.Helper()
	var want struct {
		Events *[]*registryEvent `json:"events"`
	}
	if err := json.Unmarshal(body, &want); err != nil || !jsonObject(body) {
		t.Fatalf("scanEnvelope read %q, which json.Unmarshal refuses: %v", body, err)
	}
	if want.Events == nil || !reflect.DeepEqual(*want.Events, events) {
		t.Fatalf("scanEnvelope read %q differently:\n got: %s\nwant: %s", body, jsonString(events), jsonString(want.Events))
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
