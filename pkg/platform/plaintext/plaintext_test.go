package plaintext_test

import (
	"testing"

	"github.com/slipway-cd/slipway/pkg/platform/plaintext"
)

func TestCleanKeepsLineBreaksOnlyAndDropsReordering(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"ci-bot", "ci-bot"},
		{"a\r\nb\rc\nd\u2028e\u2029f\u0085g", "a\nb\nc\nd\ne\nf\ng"},
		{"a\tb\x00c\x1b[31md\x7fe\u009bf", "a b c [31md e f"},
		{"\u202egnp.exe\u202c \u2066x\u2069 \u200ey\u200f\u061c", "gnp.exe x y"},
		{"bad \xff byte", "bad \uFFFD byte"},
		{"ünïcødé ✓ 🚀", "ünïcødé ✓ 🚀"},
	} {
		if got := plaintext.Clean(c.in); got != c.want {
			t.Errorf("Clean(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestLineIsOneLine(t *testing.T) {
	if got, want := plaintext.Line("deploy\r\nApprove at: https://evil.example\n"), "deploy Approve at: https://evil.example "; got != want {
		t.Errorf("Line = %q, want %q", got, want)
	}
}

func TestBoundCutsCharactersNotBytes(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 3, "abc"},
		{"abcd", 3, "ab…"},
		{"äöüß", 4, "äöüß"},
		{"äöüßx", 4, "äöü…"},
		{"abc", 0, ""},
	} {
		if got := plaintext.Bound(c.in, c.n); got != c.want {
			t.Errorf("Bound(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}
