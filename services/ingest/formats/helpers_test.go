package formats

// Test helpers shared by every format's tests: fixtures and variants of
// them, deliveries, assertions on what a parser returns, and the fuzz
// corpus and property every parser is held to.

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jsonBody builds a body from a Go value, for variants of a fixture.
func jsonBody(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// patchJSON decodes a JSON object, lets edit change it, and encodes it
// again: variants of one realistic payload without a file per variant.
func patchJSON(t testing.TB, raw []byte, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	return jsonBody(t, m)
}

// jsonAt walks decoded JSON along object keys and array indexes to an
// object.
func jsonAt(v any, path ...any) map[string]any {
	for _, k := range path {
		switch k := k.(type) {
		case string:
			v = v.(map[string]any)[k]
		case int:
			v = v.([]any)[k]
		}
	}
	return v.(map[string]any)
}

// header builds request headers from name, value pairs.
func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// bareDelivery is a body sent without headers.
func bareDelivery(b []byte) Delivery { return Delivery{Header: http.Header{}, Body: b} }

func lookupParser(t testing.TB, format string) Parser {
	t.Helper()
	p, err := Lookup(format)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func parse(t testing.TB, format string, d Delivery) Result {
	t.Helper()
	r, err := lookupParser(t, format)(d)
	if err != nil {
		t.Fatalf("%s: unexpected error: %v", format, err)
	}
	return r
}

// wantMalformed asserts a *MalformedError whose message starts with the
// format's name and contains want.
func wantMalformed(t testing.TB, format string, d Delivery, want string) {
	t.Helper()
	r, err := lookupParser(t, format)(d)
	var me *MalformedError
	if !errors.As(err, &me) {
		t.Fatalf("%s: want *MalformedError containing %q, got result %+v err %v", format, want, r, err)
	}
	if !strings.HasPrefix(me.Msg, format+": ") || !strings.Contains(me.Msg, want) {
		t.Fatalf("%s: error %q does not say %q", format, me.Msg, want)
	}
}

func wantEqual(t testing.TB, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("mismatch\n got: %+v\nwant: %+v", got, want)
	}
}

func singlePush(t testing.TB, r Result) Push {
	t.Helper()
	if len(r.Pushes) != 1 || r.Ignored != 0 {
		t.Fatalf("want exactly one push, got %+v", r)
	}
	return r.Pushes[0]
}

// wantIgnored asserts a delivery is a deliberate no-op.
func wantIgnored(t testing.TB, format string, d Delivery) {
	t.Helper()
	r := parse(t, format, d)
	if len(r.Pushes) != 0 || r.Ignored != 1 {
		t.Fatalf("%s: want ignored, got %+v", format, r)
	}
}

// normalized parses deliveries one by one (as a registry sends them) and
// sums what Normalize keeps.
func normalized(t testing.TB, format string, ds ...Delivery) Result {
	t.Helper()
	var all Result
	for _, d := range ds {
		n := Normalize(parse(t, format, d))
		all.Pushes = append(all.Pushes, n.Pushes...)
		all.Ignored += n.Ignored
	}
	return all
}

// wantNormalizeDrops asserts the parser reports a push that Normalize drops.
func wantNormalizeDrops(t testing.TB, format string, d Delivery) {
	t.Helper()
	if n := normalized(t, format, d); len(n.Pushes) != 0 || n.Ignored != 1 {
		t.Fatalf("%s: want dropped by Normalize, got %+v", format, n)
	}
}

// wantOneRelease runs a multi-arch push's deliveries and asserts that after
// Normalize exactly the one tagged push remains.
func wantOneRelease(t testing.TB, format string, ds []Delivery, wantTag, wantDigest string) {
	t.Helper()
	all := normalized(t, format, ds...)
	if len(all.Pushes) != 1 || all.Ignored != len(ds)-1 {
		t.Fatalf("%s: want one push and %d ignored, got %+v", format, len(ds)-1, all)
	}
	if p := all.Pushes[0]; p.Tag != wantTag || p.Digest != wantDigest {
		t.Fatalf("%s: kept %s@%s, want %s@%s", format, p.Tag, p.Digest, wantTag, wantDigest)
	}
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return at.UTC()
}

// seedFixtures adds every fixture of a testdata directory, and extra
// bodies, to a fuzz corpus.
func seedFixtures(f *testing.F, dir string, extra ...string) {
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixtures in testdata/%s: %v", dir, err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range extra {
		f.Add([]byte(s))
	}
}

// fuzzCheck holds what every parser promises for any input: no panic, a
// *MalformedError that names the format, or pushes whose fields are checked
// and whose time can be published, and the same answer for the same
// delivery (upstream ids must be stable).
func fuzzCheck(t *testing.T, format string, d Delivery) Result {
	parser := lookupParser(t, format)
	r, err := parser(d)
	if err != nil {
		var me *MalformedError
		if !errors.As(err, &me) {
			t.Fatalf("%s: error is %T, not *MalformedError: %v", format, err, err)
		}
		if !strings.HasPrefix(me.Msg, format+": ") {
			t.Fatalf("%s: error %q does not name the format", format, me.Msg)
		}
		if len(r.Pushes) != 0 {
			t.Fatalf("%s: pushes returned with an error", format)
		}
		return r
	}
	for _, p := range r.Pushes {
		switch {
		case p.Repository == "":
			t.Fatalf("%s: push without repository: %+v", format, p)
		case !validRepository(p.Repository), !validTag(p.Tag), p.Digest != "" && !validDigest(p.Digest),
			p.Registry != "" && !validHost(p.Registry):
			t.Fatalf("%s: push with unchecked fields: %+v", format, p)
		case p.UpstreamID == "":
			t.Fatalf("%s: push without upstream id: %+v", format, p)
		case p.Size < 0:
			t.Fatalf("%s: negative size: %+v", format, p)
		}
		if _, err := p.PushedAt.MarshalJSON(); err != nil {
			t.Fatalf("%s: pushedAt cannot be published: %v", format, err)
		}
	}
	again, err := parser(d)
	if err != nil || !reflect.DeepEqual(again, r) {
		t.Fatalf("%s: second parse differs: %+v, %v", format, again, err)
	}
	Normalize(r)
	return r
}
