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

// Test helpers for the ghcr, artifactory, nexus, gar, ecr, zot and
// cloudevents tests (prefixed to stay clear of the other formats' helpers).

func bFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bPatch decodes a JSON object, lets fn change it, and encodes it again:
// variants of one realistic payload without a file per variant.
func bPatch(t testing.TB, raw []byte, fn func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// bObj walks a decoded JSON object along keys.
func bObj(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		m = m[k].(map[string]any)
	}
	return m
}

func bHeader(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func bParser(t testing.TB, format string) Parser {
	t.Helper()
	p, err := Lookup(format)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func bParse(t testing.TB, format string, d Delivery) Result {
	t.Helper()
	r, err := bParser(t, format)(d)
	if err != nil {
		t.Fatalf("%s: unexpected error: %v", format, err)
	}
	return r
}

// bMalformed asserts a *MalformedError whose message starts with the
// format's name and contains want.
func bMalformed(t testing.TB, format string, d Delivery, want string) {
	t.Helper()
	r, err := bParser(t, format)(d)
	var me *MalformedError
	if !errors.As(err, &me) {
		t.Fatalf("%s: want *MalformedError containing %q, got result %+v err %v", format, want, r, err)
	}
	if !strings.HasPrefix(me.Msg, format+": ") || !strings.Contains(me.Msg, want) {
		t.Fatalf("%s: error %q does not name %q", format, me.Msg, want)
	}
}

func bSinglePush(t testing.TB, r Result) Push {
	t.Helper()
	if len(r.Pushes) != 1 || r.Ignored != 0 {
		t.Fatalf("want exactly one push, got %+v", r)
	}
	return r.Pushes[0]
}

func bEqualPush(t testing.TB, got, want Push) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("push mismatch\n got: %+v\nwant: %+v", got, want)
	}
}

// bIgnored asserts a delivery is a deliberate no-op.
func bIgnored(t testing.TB, format string, d Delivery) {
	t.Helper()
	r := bParse(t, format, d)
	if len(r.Pushes) != 0 || r.Ignored != 1 {
		t.Fatalf("%s: want ignored, got %+v", format, r)
	}
}

// bNormalizedIgnored asserts the parser reports a push that Normalize drops.
func bNormalizedIgnored(t testing.TB, format string, d Delivery) {
	t.Helper()
	n := Normalize(bParse(t, format, d))
	if len(n.Pushes) != 0 || n.Ignored != 1 {
		t.Fatalf("%s: want dropped by Normalize, got %+v", format, n)
	}
}

// bSequence runs a multi-arch push's deliveries and asserts that after
// Normalize exactly the one tagged push remains.
func bSequence(t testing.TB, format string, ds []Delivery, wantTag, wantDigest string) {
	t.Helper()
	var all Result
	for _, d := range ds {
		n := Normalize(bParse(t, format, d))
		all.Pushes = append(all.Pushes, n.Pushes...)
		all.Ignored += n.Ignored
	}
	if len(all.Pushes) != 1 || all.Ignored != len(ds)-1 {
		t.Fatalf("%s: want one push and %d ignored, got %+v", format, len(ds)-1, all)
	}
	if p := all.Pushes[0]; p.Tag != wantTag || p.Digest != wantDigest {
		t.Fatalf("%s: kept %s@%s, want %s@%s", format, p.Tag, p.Digest, wantTag, wantDigest)
	}
}

func bTime(t testing.TB, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return at.UTC()
}

// bSeed adds every fixture of a format to a fuzz corpus.
func bSeed(f *testing.F, dir string, extra ...string) {
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

// bFuzzCheck is what every parser promises on any input: no panic, only
// *MalformedError as error, and no push without a repository.
func bFuzzCheck(t *testing.T, format string, d Delivery) {
	r, err := bParser(t, format)(d)
	if err != nil {
		var me *MalformedError
		if !errors.As(err, &me) {
			t.Fatalf("%s: error is %T, not *MalformedError: %v", format, err, err)
		}
		if len(r.Pushes) != 0 {
			t.Fatalf("%s: pushes returned with an error", format)
		}
		return
	}
	for _, p := range r.Pushes {
		if p.Repository == "" {
			t.Fatalf("%s: push without repository: %+v", format, p)
		}
		if !validRepository(p.Repository) || !validTag(p.Tag) || (p.Digest != "" && !validDigest(p.Digest)) {
			t.Fatalf("%s: push with unchecked fields: %+v", format, p)
		}
		if p.UpstreamID == "" {
			t.Fatalf("%s: push without upstream id: %+v", format, p)
		}
		if _, err := p.PushedAt.MarshalJSON(); err != nil {
			t.Fatalf("%s: push time cannot be published: %v", format, err)
		}
	}
	Normalize(r)
}

func TestSplitRef(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want imageRef
		ok   bool
	}{
		{"ghcr.io/octo/app:v1", imageRef{"ghcr.io", "octo/app", "v1", ""}, true},
		{"ghcr.io/octo/app:", imageRef{"ghcr.io", "octo/app", "", ""}, true},
		{"localhost:5000/a/b@sha256:abc", imageRef{"localhost:5000", "a/b", "", "sha256:abc"}, true},
		{"localhost:5000/a/b:t@sha256:abc", imageRef{"localhost:5000", "a/b", "t", "sha256:abc"}, true},
		{"gcr.io/p/img", imageRef{"gcr.io", "p/img", "", ""}, true},
		{"app:v1", imageRef{}, false},
		{"/app", imageRef{}, false},
		{"host/", imageRef{}, false},
	} {
		got, ok := splitRef(tc.in)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("splitRef(%q) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestValidators(t *testing.T) {
	good := "sha256:" + strings.Repeat("a", 64)
	for _, tc := range []struct {
		f    func(string) bool
		in   string
		want bool
	}{
		{validRepository, "team/app", true},
		{validRepository, "a/b-c/d__e.f", true},
		{validRepository, "Team/app", false},
		{validRepository, "team//app", false},
		{validRepository, "team/app/", false},
		{validRepository, strings.Repeat("a", 256), false},
		{validDigest, good, true},
		{validDigest, "sha256:" + strings.Repeat("a", 60), false},
		{validDigest, "sha256:" + strings.Repeat("A", 64), false},
		{validDigest, "md5:" + strings.Repeat("a", 32), false},
		{validDigest, "sha512:" + strings.Repeat("b", 128), true},
		{validTag, "", true},
		{validTag, "v1.2.3-rc.1_b", true},
		{validTag, good, true},
		{validTag, ".hidden", false},
		{validTag, "a b", false},
		{validTag, strings.Repeat("a", 129), false},
		{validHost, "localhost:5000", true},
		{validHost, "europe-west1-docker.pkg.dev", true},
		{validHost, "-bad.example", false},
		{validHost, "host:port", false},
	} {
		if got := tc.f(tc.in); got != tc.want {
			t.Errorf("validator(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestParseTime(t *testing.T) {
	for in, want := range map[string]string{
		"2016-11-10T23:57:49.664+0000": "2016-11-10T23:57:49.664Z",
		"2024-03-04T10:15:30Z":         "2024-03-04T10:15:30Z",
		"2024-03-04T12:15:30.5+02:00":  "2024-03-04T10:15:30.5Z",
	} {
		got, ok := parseTime(in)
		if !ok || !got.Equal(bTime(t, want)) {
			t.Errorf("parseTime(%q) = %v, %v; want %s", in, got, ok, want)
		}
	}
	if _, ok := parseTime("yesterday"); ok {
		t.Error("parseTime accepted garbage")
	}
	if _, err := optionalTime("x", "time", "0000-01-01T00:00:00+01:00"); err == nil {
		t.Error("optionalTime accepted a time in year -1")
	}
}
