package formats

import (
	"strings"
	"testing"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/plaintext"
)

// cleanActorSpec is what CleanActor promises, spelt out the long way: one
// cleaned line, words joined by single spaces, bounded.
func cleanActorSpec(a string) string {
	return plaintext.Bound(strings.Join(strings.Fields(plaintext.Line(a)), " "), events.MaxActorLength)
}

var actorSeeds = []string{
	"", "ci-bot", "gitlab-ci-token", "jane.doe@example.com", "Jane Doe", "a b c",
	" ci-bot", "ci-bot ", "ci  bot", "ci\tbot", "ci-bot\r\nApprove at: https://evil.example",
	"\u202egnp.exe\u202c", "ci\x00bot", "ci\x7fbot", "ünïcødé ✓", "bad \xff byte", "\u00a0nbsp\u00a0",
	strings.Repeat("x", events.MaxActorLength), strings.Repeat("x", events.MaxActorLength+1),
	strings.Repeat("ab ", 200),
}

func TestCleanActorAsSpecified(t *testing.T) {
	for _, a := range actorSeeds {
		if got, want := CleanActor(a), cleanActorSpec(a); got != want {
			t.Errorf("CleanActor(%q) = %q, want %q", a, got, want)
		}
	}
}

func FuzzCleanActor(f *testing.F) {
	for _, a := range actorSeeds {
		f.Add(a)
	}
	f.Fuzz(func(t *testing.T, a string) {
		if got, want := CleanActor(a), cleanActorSpec(a); got != want {
			t.Fatalf("CleanActor(%q) = %q, want %q", a, got, want)
		}
	})
}

func TestNormalizeCleansActorsWithoutChangingItsInput(t *testing.T) {
	dirty := Push{Repository: "team/app", Tag: "v1", Digest: indexDigest, Actor: "ci\tbot\n"}
	in := Result{Pushes: []Push{dirty, {Repository: "team/app", Tag: "sha256-" + strings.Repeat("a", 64) + ".sig"}}}
	out := Normalize(in)
	want := dirty
	want.Actor = "ci bot"
	wantEqual(t, out, Result{Pushes: []Push{want}, Ignored: 1})
	if in.Pushes[0].Actor != "ci\tbot\n" {
		t.Fatalf("Normalize changed its input's actor to %q", in.Pushes[0].Actor)
	}
}

func TestNormalizeKeepsAResultOfReleasesAsItIs(t *testing.T) {
	r := Result{Pushes: []Push{{Repository: "team/app", Tag: "v1", Digest: indexDigest, Actor: "ci-bot"}}, Ignored: 2}
	wantEqual(t, Normalize(r), r)
	wantEqual(t, Normalize(Result{Pushes: []Push{}}), Result{})
}
