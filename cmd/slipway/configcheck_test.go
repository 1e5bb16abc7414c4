package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// config check names every problem of a file in one run, each at its key
// path and line, in order, saying what the key takes and how to fix it.
func TestConfigCheckReportsEveryProblemAtItsLine(t *testing.T) {
	t.Setenv("RM_TOKEN", "")
	path := filepath.Join(t.TempDir(), "slipway.yaml")
	writeFile(t, path, `nats:
  stream:
    maxAge: 30d

environments:
  - name: dev

    registry: { host: "127.0.0.1:5001", insecure: maybe }

approvers:
  - { name: rm, token: "${RM_TOKEN}", slackUserId: U0RM }

log:
  levl: debug
  format: xml
`)
	out, err := execute(t, context.Background(), "config", "check", "--config", path)
	if err == nil {
		t.Fatalf("config check passed:\n%s", out)
	}
	got := err.Error()
	want := []string{
		"5 problems:",
		"nats.stream.maxAge: expected a duration like 30s, 5m, 2h; durations: use h, m, s — 30d is 720h (line 3)",
		"environments[0].registry.insecure: expected true or false (line 8)",
		"approvers[0].token: environment variable RM_TOKEN is empty (line 11)",
		"log.levl: unknown key; did you mean `level`? (line 14)",
		`log.format: "xml" must be text or json (line 15)`,
	}
	at := 0
	for _, w := range want {
		i := strings.Index(got[at:], w)
		if i < 0 {
			t.Fatalf("the report lacks, or has out of order,\n  %s\nreport:\n%s", w, got)
		}
		at += i + len(w)
	}
}

// A file with nothing in it is the wrong file, not a configuration.
func TestConfigCheckRefusesAnEmptyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "slipway.yaml")
	writeFile(t, path, "# to do\n")
	out, err := execute(t, context.Background(), "config", "check", "--config", path)
	if err == nil || !strings.Contains(err.Error(), "the file is empty") {
		t.Fatalf("config check of an empty file: %v\n%s", err, out)
	}
}
