package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// problemsOf parses doc and returns its problems; it fails the test when
// the document loads or the error is not Problems.
func problemsOf(t *testing.T, doc string, lookup func(string) (string, bool)) Problems {
	t.Helper()
	_, err := Parse([]byte(doc), lookup)
	if err == nil {
		t.Fatalf("the document loads:\n%s", doc)
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error %T %v is no Problems", err, err)
	}
	return ps
}

// wantProblems checks that ps are exactly want, in order: each "line N:
// path: text" of want is a problem at that line and path whose message
// contains text.
func wantProblems(t *testing.T, ps Problems, want ...string) {
	t.Helper()
	got := make([]string, len(ps))
	for i, p := range ps {
		got[i] = fmt.Sprintf("line %d: %s: %s", p.Line, p.Path, p.Message)
	}
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		w := strings.SplitN(want[i], ": ", 3)
		at := w[0] + ": " + w[1] + ": "
		ok = strings.HasPrefix(got[i], at) && strings.Contains(got[i][len(at):], w[2])
	}
	if !ok {
		t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// Blank lines (and comments) between keys do not move a problem to another
// key: the unknown key is named with its own path and line.
func TestUnknownKeyAmongBlankLinesIsNamedAtItsLine(t *testing.T) {
	doc := `environments:
  - name: dev
    registry: { host: "127.0.0.1:5001" }

ingest:
  listen: ":8080"

  sources:

    - name: s
      format: distribution
      environment: dev
      registy: "127.0.0.1:5001"
      auth: { none: true }
`
	wantProblems(t, problemsOf(t, doc, env(nil)),
		"line 13: ingest.sources[0].registy: unknown key; did you mean `registry`?")
}

// In a flow mapping every key shares the line: the problem still names the
// key that is wrong, not the last one of the line.
func TestTypoInFlowMappingNamesTheWrongKey(t *testing.T) {
	doc := "environments: [{name: dev, registry: {host: r}}]\n" +
		"ingest: {sources: [{name: s, format: distribution, environment: dev, auth: {hedaer: {name: X, value: y}, none: true}}]}\n"
	wantProblems(t, problemsOf(t, doc, env(nil)),
		"line 2: ingest.sources[0].auth.hedaer: unknown key; did you mean `header`?")
}

// A file with many mistakes of every kind is reported whole in one run,
// decoding and validation problems together, sorted by line.
func TestEveryProblemOfAFileInOneRun(t *testing.T) {
	doc := `nats:
  strem: {}
  stream:
    maxAge: 30d
    replicas: three
    maxBytes: 1G

environments:
  - name: dev
    registry: { host: r.example, insecure: maybe }
  - name: d.v
    registry: { host: r2.example, aliases: r3.example }

approvers:
  - { name: rm, tokn: x }

approvals: { retention: -1h }
deployer:
  concurrency: ${CONCURRENCY}
log:
  level: loud
  format: [json]
`
	wantProblems(t, problemsOf(t, doc, env(nil)),
		"line 2: nats.strem: unknown key; did you mean `stream`?",
		"line 4: nats.stream.maxAge: expected a duration like 30s, 5m, 2h; durations: use h, m, s — 30d is 720h",
		"line 5: nats.stream.replicas: expected a whole number",
		"line 6: nats.stream.maxBytes: expected a size like 512MiB, 1GiB or a number of bytes; write 1GiB (powers of 1024) or 1GB (powers of 1000)",
		"line 10: environments[0].registry.insecure: expected true or false",
		"line 11: environments[1].name: must be letters, digits",
		"line 12: environments[1].registry.aliases: expected a list, not text; write a list as [a, b]",
		"line 15: approvers[0].tokn: unknown key; did you mean `token`?",
		"line 15: approvers[0].token: is required",
		"line 17: approvals.retention: must not be negative",
		"line 19: deployer.concurrency: environment variable CONCURRENCY is not set",
		"line 21: log.level: \"loud\" must be debug, info, warn or error",
		"line 22: log.format: expected a single value, not a list",
	)
}

// Messages speak the file's language: what a key takes, never a Go type or
// yaml's tags.
func TestProblemsNameNoGoTypes(t *testing.T) {
	doc := `ingest: [a, b]
approvers: {name: rm, token: t}
nats: {stream: {replicas: many, maxAge: 5}}
environments: [{name: dev, registry: {host: r, insecure: sometimes}}]
log: {level: [debug]}
`
	ps := problemsOf(t, doc, env(nil))
	wantProblems(t, ps,
		"line 1: ingest: expected keys with values (a mapping), not a list",
		"line 2: approvers: expected a list, not a mapping",
		"line 3: nats.stream.replicas: expected a whole number",
		"line 3: nats.stream.maxAge: expected a duration like 30s, 5m, 2h, not a number; add a unit: s, m or h",
		"line 4: environments[0].registry.insecure: expected true or false",
		"line 5: log.level: expected a single value, not a list",
	)
	for _, bad := range []string{"config.", "time.", "!!", "unmarshal", "int"} {
		if strings.Contains(ps.Error(), bad) {
			t.Errorf("a problem says %q:\n%v", bad, ps)
		}
	}
}

// Durations in days or weeks, which Go's durations do not have, get the
// same value in hours.
func TestDurationInDaysSaysItInHours(t *testing.T) {
	for value, want := range map[string]string{
		"30d":    "durations: use h, m, s — 30d is 720h",
		"2w":     "durations: use h, m, s — 2w is 336h",
		"1d12h":  "durations: use h, m, s — 1d12h is 36h",
		"1d30m":  "durations: use h, m, s — 1d30m is 24h30m0s",
		"5 mins": "durations: use h, m, s",
	} {
		ps := problemsOf(t, "approvals:\n  retention: "+value+"\n", env(nil))
		wantProblems(t, ps, "line 2: approvals.retention: expected a duration like 30s, 5m, 2h; "+want)
	}
}

// A variable that is set but empty is not called unset: the fix differs.
func TestEmptyVariableIsNotCalledUnset(t *testing.T) {
	doc := "nats:\n  url: nats://n:4222\n  token: \"${EMPTY}\"\napprovers: [{name: rm, token: \"${UNSET}\"}]\n"
	ps := problemsOf(t, doc, env(map[string]string{"EMPTY": ""}))
	wantProblems(t, ps,
		"line 3: nats.token: environment variable EMPTY is empty",
		"line 4: approvers[0].token: environment variable UNSET is not set",
	)
	// A default stands in for an empty variable as for an unset one.
	if _, err := Parse([]byte("ingest: {listen: \"${L:-:9090}\"}"), env(map[string]string{"L": ""})); err != nil {
		t.Errorf("empty variable with a default: %v", err)
	}
}

// An empty file (or one of comments only) configures nothing: it is a
// mistake (the wrong file, a failed template), not "ok".
func TestEmptyFileIsAProblem(t *testing.T) {
	for name, doc := range map[string]string{
		"empty":         "",
		"blank":         "\n  \n",
		"comments only": "# slipway\n\n# nothing yet\n",
		"document mark": "---\n",
		"null":          "~\n",
	} {
		t.Run(name, func(t *testing.T) {
			wantProblems(t, problemsOf(t, doc, env(nil)), "line 0: : the file is empty")
		})
	}
	wantProblems(t, problemsOf(t, "- nats\n- ingest\n", env(nil)), "line 1: : expected keys with values")
}

// A variable's value with line breaks is expanded in the parsed file, so
// it cannot shift the lines of the problems after it.
func TestVariableWithLineBreaksDoesNotShiftLines(t *testing.T) {
	doc := "approvers:\n  - { name: rm, token: \"${TOKEN}\" }\nlog:\n  levl: info\n"
	wantProblems(t, problemsOf(t, doc, env(map[string]string{"TOKEN": "a\nb\nc\nd"})),
		"line 4: log.levl: unknown key; did you mean `level`?")
}

// A value of the wrong kind may be a secret in the wrong place: no problem
// quotes it.
func TestWrongKindOfValueIsNotQuoted(t *testing.T) {
	doc := "environments:\n  - name: dev\n    registry: \"${PW}\"\nnats: {stream: {replicas: \"${PW}\"}}\n"
	ps := problemsOf(t, doc, env(map[string]string{"PW": "s3cret-pw"}))
	wantProblems(t, ps,
		"line 3: environments[0].registry: expected keys with values (a mapping), not text",
		"line 4: nats.stream.replicas: expected a whole number",
	)
	if strings.Contains(ps.Error(), "s3cret") {
		t.Errorf("a secret is printed: %v", ps)
	}
	// Without a space after its colon, key and value are one key.
	ps = problemsOf(t, "approvers: [{name: rm, token:s3cret-token}]\n", env(nil))
	wantProblems(t, ps,
		"line 1: approvers[0].token: needs a space after the colon")
	if strings.Contains(ps.Error(), "s3cret") {
		t.Errorf("a secret is printed: %v", ps)
	}
}

// Unknown keys are matched to the closest known key (case and swapped
// letters included); with none close, the known keys are listed.
func TestUnknownKeySuggestsTheClosestKey(t *testing.T) {
	for key, want := range map[string]string{
		"maxage":    "; did you mean `maxAge`?",
		"duplicate": " (known here: name, replicas, maxAge, duplicateWindow, maxBytes, deadLetterMaxBytes)",
		"repilcas":  "; did you mean `replicas`?",
		"nmae":      "; did you mean `name`?",
	} {
		ps := problemsOf(t, "nats:\n  stream:\n    "+key+": 1\n", env(nil))
		wantProblems(t, ps, "line 3: nats.stream."+key+": unknown key"+want)
	}
}

// A key written twice is a problem at the second, naming the first.
func TestKeyWrittenTwice(t *testing.T) {
	wantProblems(t, problemsOf(t, "log:\n  level: info\n  level: debug\n", env(nil)),
		"line 3: log.level: is set twice (first on line 2)")
}

// A value that is only quoted where it should not be says so.
func TestQuotedNumber(t *testing.T) {
	wantProblems(t, problemsOf(t, "nats: {stream: {replicas: \"3\"}}\n", env(nil)),
		"line 1: nats.stream.replicas: expected a whole number; write it without quotes")
}

// Not YAML at all: the line, and the usual cause of this one.
func TestSyntaxErrorHasItsLine(t *testing.T) {
	wantProblems(t, problemsOf(t, "log:\n\tlevel: info\n", env(nil)),
		"line 2: : not valid YAML: found character that cannot start any token; indent with spaces, not tabs")
}

// Anchors and merge keys decode as yaml decodes them, and their keys are
// checked too.
func TestMergeKeys(t *testing.T) {
	doc := "environments:\n  - &e {name: dev, registry: {host: r}}\n  - <<: *e\n    name: tst\n"
	cfg, err := Parse([]byte(doc), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Environments) != 2 || cfg.Environments[1].Name != "tst" || cfg.Environments[1].Registry.Host != "r" {
		t.Errorf("environments %+v", cfg.Environments)
	}
	doc = "x: &r {hots: r}\nenvironments:\n  - name: dev\n    registry: {<<: *r}\n"
	wantProblems(t, problemsOf(t, doc, env(nil)),
		"line 1: x: unknown key",
		"line 1: environments[0].registry.hots: unknown key; did you mean `host`?",
		"line 4: environments[0].registry.host: is required",
	)
}

// A service's own checks (its Section) are reported with the rest, each
// at the line of its key path (a missing key at its parent's).
func TestSectionProblemsGetTheirLines(t *testing.T) {
	doc := "environments:\n  - name: dev\n\n    registry: {host: r}\nlog: {levl: x}\n"
	section := SectionFunc(func(_ *Config, p *Problems) {
		p.Add("environments[0].registry.password", "is required")
		p.Add("environments[0].name", "%q is taken", "dev")
	})
	_, err := Parse([]byte(doc), env(nil), section)
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error %T %v is no Problems", err, err)
	}
	wantProblems(t, ps,
		"line 2: environments[0].name: \"dev\" is taken",
		"line 4: environments[0].registry.password: is required",
		"line 5: log.levl: unknown key; did you mean `level`?",
	)
}
