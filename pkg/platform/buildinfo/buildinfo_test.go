package buildinfo

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionFromBuildInfo(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	const rev = "64cf12f2507b97f4140b7cbac487831e4b27fe2c"
	for _, tc := range []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"no build information", nil, "devel"},
		{"go run, or built without VCS stamping", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "devel"},
		{"go install of a release", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}, Settings: vcs(rev, "false")}, "v1.2.3"},
		{"a pseudo-version names its commit", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20260101120000-64cf12f2507b"}}, "v0.0.0-20260101120000-64cf12f2507b"},
		{"built in a clean clone", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "false")}, "64cf12f2507b"},
		{"built in a clone with changes", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "true")}, "64cf12f2507b+dirty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fromBuildInfo(tc.bi); got != tc.want {
				t.Errorf("version = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestBuiltBinaryReportsItsVersion builds a program that reports its
// version as Slipway's binaries do: linked with -X main.version it says
// that; built in a git clone it names the commit, never "devel".
func TestBuiltBinaryReportsItsVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	var bin string
	build := func(t *testing.T, flags ...string) string {
		t.Helper()
		bin = filepath.Join(t.TempDir(), "printversion")
		args := append([]string{"build", "-o", bin}, flags...)
		if out, err := exec.Command("go", append(args, "./testdata/printversion")...).CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		out, err := exec.Command(bin).Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	t.Run("ldflags", func(t *testing.T) {
		if got := build(t, "-ldflags=-X main.version=v9.8.7"); got != "v9.8.7" {
			t.Errorf("version = %q, want v9.8.7", got)
		}
	})
	t.Run("vcs", func(t *testing.T) {
		head, err := exec.Command("git", "rev-parse", "HEAD").Output()
		if err != nil {
			t.Skipf("not in a git clone: %v", err)
		}
		got := build(t, "-buildvcs=true")
		if m, _ := exec.Command("go", "version", "-m", bin).Output(); !strings.Contains(string(m), "vcs.revision") {
			t.Skip("the go command recorded no commit in this checkout (a git worktree, say)")
		}
		// HEAD again: a commit may land while the build runs.
		after, _ := exec.Command("git", "rev-parse", "HEAD").Output()
		rev := strings.TrimSuffix(got, "+dirty")
		if !regexp.MustCompile(`^[0-9a-f]{12}(\+dirty)?$`).MatchString(got) ||
			(!strings.HasPrefix(string(head), rev) && !strings.HasPrefix(string(after), rev)) {
			t.Errorf("version = %q, want the commit %.12s (+dirty with changes)", got, head)
		}
	})
}
