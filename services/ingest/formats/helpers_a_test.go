package formats

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

// Test helpers for the distribution, gitlab, dockerhub, harbor, acr and quay
// tests (prefixed "a" to stay clear of the other formats' helpers).

func aFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// aJSON builds a body from a Go value, for variants of a fixture.
func aJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// aEdit decodes a JSON fixture, lets edit change it, and encodes it again.
func aEdit(t testing.TB, raw []byte, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	return aJSON(t, m)
}

// aAt walks decoded JSON along object keys and array indexes.
func aAt(v any, path ...any) map[string]any {
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

func aParse(t testing.TB, format string, d Delivery) Result {
	t.Helper()
	p, err := Lookup(format)
	if err != nil {
		t.Fatal(err)
	}
	r, err := p(d)
	if err != nil {
		t.Fatalf("%s: unexpected error: %v", format, err)
	}
	return r
}

func aBody(b []byte) Delivery { return Delivery{Header: http.Header{}, Body: b} }

// aMalformed asserts a *MalformedError that starts with the format's name
// and contains want.
func aMalformed(t testing.TB, format string, d Delivery, want string) {
	t.Helper()
	p, err := Lookup(format)
	if err != nil {
		t.Fatal(err)
	}
	r, err := p(d)
	var me *MalformedError
	if !errors.As(err, &me) {
		t.Fatalf("%s: want *MalformedError containing %q, got %+v, %v", format, want, r, err)
	}
	if !strings.HasPrefix(me.Msg, format+": ") || !strings.Contains(me.Msg, want) {
		t.Fatalf("%s: error %q does not say %q", format, me.Msg, want)
	}
}

func aEqual(t testing.TB, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("mismatch\n got: %+v\nwant: %+v", got, want)
	}
}

// aNormalized parses deliveries one by one (as a registry sends them) and
// sums what Normalize keeps.
func aNormalized(t testing.TB, format string, ds ...Delivery) Result {
	t.Helper()
	var all Result
	for _, d := range ds {
		n := Normalize(aParse(t, format, d))
		all.Pushes = append(all.Pushes, n.Pushes...)
		all.Ignored += n.Ignored
	}
	return all
}

func aTime(t testing.TB, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return at.UTC()
}

// aSeed adds every fixture of a testdata directory, and extra bodies, to a
// fuzz corpus.
func aSeed(f *testing.F, dir string, extra ...string) {
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

// aFuzzCheck holds what every parser promises for any input: no panic, a
// *MalformedError or pushes that name a checked repository, and the same
// answer for the same delivery (upstream ids must be stable).
func aFuzzCheck(t *testing.T, format string, d Delivery) Result {
	parse, err := Lookup(format)
	if err != nil {
		t.Fatal(err)
	}
	r, err := parse(d)
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
	again, err := parse(d)
	if err != nil || !reflect.DeepEqual(again, r) {
		t.Fatalf("%s: second parse differs: %+v, %v", format, again, err)
	}
	Normalize(r)
	return r
}

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
}
