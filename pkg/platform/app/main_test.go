package app

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/slipway-cd/slipway/pkg/platform/buildinfo"
)

// TestServiceBinaryCommandLine: a service's own binary has a --help (usage
// line, what it does, its flags) that exits 0, a --version, and answers a
// bad flag or a stray argument with a hint, for exit 2.
func TestServiceBinaryCommandLine(t *testing.T) {
	const about = "Ingest receives the push webhooks of the configured registries."
	parse := func(args ...string) (path, stdout, stderr string, err error) {
		var out, errOut bytes.Buffer
		path, err = parseArgs("ingest", about, args, &out, &errOut)
		return path, out.String(), errOut.String(), err
	}

	path, out, errOut, err := parse("--config", "/etc/slipway.yaml")
	if err != nil || path != "/etc/slipway.yaml" || out != "" || errOut != "" {
		t.Errorf("--config: %q, %v, stdout %q, stderr %q", path, err, out, errOut)
	}
	if path, _, _, _ = parse(); path != "slipway.yaml" {
		t.Errorf("default config %q, want slipway.yaml", path)
	}

	for _, help := range []string{"--help", "-h"} {
		_, out, errOut, err = parse(help)
		if !errors.Is(err, flag.ErrHelp) || errOut != "" {
			t.Errorf("%s: %v, stderr %q; want flag.ErrHelp (exit 0) and nothing on stderr", help, err, errOut)
		}
		for _, want := range []string{"Usage: ingest [--config FILE]\n\n" + about + "\n\nFlags:\n", "-config string", "configuration file", "-version"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: stdout %q lacks %q", help, out, want)
			}
		}
	}

	_, out, _, err = parse("--version")
	if !errors.Is(err, errVersion) || out != "ingest "+buildinfo.Version()+"\n" {
		t.Errorf("--version: %v, stdout %q", err, out)
	}

	for _, args := range [][]string{{"--confg", "x.yaml"}, {"--config", "x.yaml", "extra"}} {
		_, out, errOut, err = parse(args...)
		if err == nil || errors.Is(err, flag.ErrHelp) || out != "" || !strings.HasSuffix(errOut, "\nsee 'ingest --help'\n") {
			t.Errorf("%v: %v, stdout %q, stderr %q; want a usage error (exit 2) with a hint", args, err, out, errOut)
		}
	}
}
