package deploy

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestBinariesBuildStatic builds every binary of the Dockerfiles as their
// build stage does (CGO_ENABLED=0, -trimpath), since `docker build` cannot
// run here: a dependency that needs cgo would break the images.
func TestBinariesBuildStatic(t *testing.T) {
	if testing.Short() {
		t.Skip("builds six binaries")
	}
	out := t.TempDir()
	pkgs := []string{"./cmd/slipway", "./services/ingest/cmd/ingest", "./services/promoter/cmd/promoter",
		"./services/deployer/cmd/deployer", "./services/notifier/cmd/notifier", "./tools/marathon-emulator"}
	cmd := exec.Command("go", append([]string{"build", "-trimpath", "-ldflags=-s -w", "-o", out + "/"}, pkgs...)...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, b)
	}
	for _, p := range pkgs {
		name := filepath.Base(p)
		bin := filepath.Join(out, name)
		if _, err := os.Stat(bin); err != nil {
			t.Errorf("no binary for %s: %v", p, err)
			continue
		}
		// A static binary has no program interpreter.
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked", name)
			}
		}
		f.Close()
	}
}
