package deploy

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// binaries are the programs the Dockerfiles build, each with CGO_ENABLED=0
// and -trimpath (docker build cannot run here, so the tests check the build).
var binaries = []string{"./cmd/slipway", "./services/ingest/cmd/ingest", "./services/promoter/cmd/promoter",
	"./services/deployer/cmd/deployer", "./services/notifier/cmd/notifier", "./services/console/cmd/console",
	"./tools/marathon-emulator"}

// staticBuildEnv turns on TestBinariesBuildStatic (make test-static, which
// CI runs): it compiles every dependency once more without cgo and without
// the race detector, which on a machine with a cold build cache cost more
// than the rest of make test (486 s of a 20-minute run on two busy cores).
const staticBuildEnv = "SLIPWAY_STATIC_BUILD"

// TestBinariesNeedNoCgo is the quick form of TestBinariesBuildStatic that
// every make test runs, from the package lists alone: with cgo off, as the
// images build, every package of every binary has Go files to build, and
// no package outside the standard library has cgo files with cgo on (such
// a package builds differently, or not at all, in the images).
func TestBinariesNeedNoCgo(t *testing.T) {
	broken := goList(t, "0", "{{if .Error}}{{.ImportPath}}: {{.Error}}{{end}}")
	if broken != "" {
		t.Errorf("with CGO_ENABLED=0, packages of the binaries do not build:\n%s", broken)
	}
	withCgo := goList(t, "1", "{{if and (not .Standard) .CgoFiles}}{{.ImportPath}} {{.CgoFiles}}{{end}}")
	if withCgo != "" {
		t.Errorf("packages of the binaries use cgo (the images build with CGO_ENABLED=0):\n%s", withCgo)
	}
}

// goList runs go list -deps over the binaries with CGO_ENABLED=cgo and
// returns its non-empty lines.
func goList(t *testing.T, cgo, format string) string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-e", "-deps", "-f", format}, binaries...)...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgo)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("CGO_ENABLED=%s go list: %v\n%s", cgo, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestBinariesBuildStatic builds every binary of the Dockerfiles as their
// build stage does (CGO_ENABLED=0, -trimpath), since `docker build` cannot
// run here: a dependency that needs cgo would break the images. Each binary
// is a subtest, so -run 'TestBinariesBuildStatic/console' builds one.
func TestBinariesBuildStatic(t *testing.T) {
	if os.Getenv(staticBuildEnv) == "" {
		t.Skipf("builds %d binaries without cgo: make test-static (%s=1)", len(binaries), staticBuildEnv)
	}
	out := t.TempDir()
	for _, p := range binaries {
		name := filepath.Base(p)
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out+"/", p)
			cmd.Dir = ".."
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("CGO_ENABLED=0 go build %s: %v\n%s", p, err, b)
			}
			bin := filepath.Join(out, name)
			f, err := elf.Open(bin)
			if err != nil {
				t.Fatalf("no binary for %s: %v", p, err)
			}
			defer f.Close()
			// A static binary has no program interpreter.
			for _, prog := range f.Progs {
				if prog.Type == elf.PT_INTERP {
					t.Errorf("%s is dynamically linked", name)
				}
			}
		})
	}
}
