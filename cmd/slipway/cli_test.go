package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/buildinfo"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer/inventory"
)

// runCLI runs the command line as the binary does and returns what it
// wrote to stdout and stderr and its exit code.
func runCLI(t *testing.T, ctx context.Context, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = cli(ctx, args, &out, &errOut)
	return out.String(), errOut.String(), code
}

// TestVersionFlagAndCommandAgree: both print the version buildinfo
// reports (its tests build binaries with -X main.version and in a git
// clone).
func TestVersionFlagAndCommandAgree(t *testing.T) {
	want := "slipway " + buildinfo.Version() + "\n"
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, errOut, code := runCLI(t, t.Context(), args...)
		if code != 0 || out != want || errOut != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 0 and %q", args, code, out, errOut, want)
		}
	}
}

// TestUsageErrorsExitTwoWithAHint: a command used wrongly exits with 2
// (not 1, which says a command ran and failed), says what is wrong in
// words, and points at the command's --help.
func TestUsageErrorsExitTwoWithAHint(t *testing.T) {
	t.Setenv(tokenEnv, "")
	for _, tc := range []struct {
		args      []string
		msg, hint string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate" for "slipway"`, "see 'slipway --help'"},
		{[]string{"--frobnicate"}, "unknown flag: --frobnicate", "see 'slipway --help'"},
		{[]string{"events", "tial"}, `unknown command "tial" for "slipway events" (did you mean tail?)`, "see 'slipway events --help'"},
		{[]string{"events", "tail", "extra"}, `unexpected argument "extra"`, "see 'slipway events tail --help'"},
		{[]string{"events", "tail", "--bogus"}, "unknown flag: --bogus", "see 'slipway events tail --help'"},
		{[]string{"events", "tail", "--all", "--since", "1h"}, "give either --since or --all", "see 'slipway events tail --help'"},
		{[]string{"events", "list", "--since", "7d"}, `--since: "7d": durations use h, m, s: 7d is 168h`, "see 'slipway events list --help'"},
		{[]string{"events", "list", "--since", "1h", "--until", "2h"}, "--until", "see 'slipway events list --help'"},
		{[]string{"approvals", "approve"}, "slipway approvals approve: missing approval ID", "see 'slipway approvals approve --help'"},
		{[]string{"approvals", "reject", "a1", "a2"}, `unexpected argument "a2": slipway approvals reject takes one approval ID`, "see 'slipway approvals reject --help'"},
		{[]string{"approvals", "list", "--state", "later"}, `--state: unknown approval state "later"`, "see 'slipway approvals list --help'"},
		{[]string{"approvals", "list", "--json=maybe"}, "invalid argument", "see 'slipway approvals list --help'"},
		{[]string{"dlq", "show"}, "missing SEQ", "see 'slipway dlq show --help'"},
		{[]string{"dlq", "show", "first"}, `not "first"`, "see 'slipway dlq show --help'"},
		{[]string{"dlq", "redrive"}, "give either SEQ... or --all", "see 'slipway dlq redrive --help'"},
		{[]string{"rollback", "prd-a"}, "slipway rollback takes CLUSTER and WORKLOAD", "see 'slipway rollback --help'"},
		{[]string{"redeploy", "prd-a", "web"}, "--config is required", "see 'slipway redeploy --help'"},
		{[]string{"promote"}, "missing IMAGE", "see 'slipway promote --help'"},
		{[]string{"promote", "registry.dev.example/apps/web:1", "--timeout", "0s", "--config", "slipway.yaml"}, "--timeout must be positive", "see 'slipway promote --help'"},
		{[]string{"status", "web"}, `unexpected argument "web"`, "see 'slipway status --help'"},
		{[]string{"run", "--only", "ingest,frobnicator"}, `unknown service "frobnicator"`, "see 'slipway run --help'"},
		{[]string{"config", "check", "slipway.yaml"}, `"slipway.yaml"`, "see 'slipway config check --help'"},
		{[]string{"version", "2"}, `unexpected argument "2"`, "see 'slipway version --help'"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, code := runCLI(t, t.Context(), tc.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2 (stderr %q)", code, errOut)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			if !strings.Contains(errOut, tc.msg) || !strings.HasSuffix(errOut, "\n"+tc.hint+"\n") {
				t.Errorf("stderr %q, want %q and the hint %q", errOut, tc.msg, tc.hint)
			}
		})
	}

	// A command used rightly that fails is no usage error.
	_, errOut, code := runCLI(t, t.Context(), "approvals", "list", "--url", "http://127.0.0.1:1")
	if code != 1 || !strings.Contains(errOut, "no approver token") || strings.Contains(errOut, "--help") {
		t.Errorf("a failing command: exit %d, stderr %q; want 1 and no hint", code, errOut)
	}
}

// TestGroupsPrintTheirHelp: a command that only groups others, called
// alone, shows its subcommands and succeeds.
func TestGroupsPrintTheirHelp(t *testing.T) {
	for _, group := range []string{"events", "approvals", "dlq"} {
		out, _, code := runCLI(t, t.Context(), group)
		if code != 0 || !strings.Contains(out, "Available Commands:") {
			t.Errorf("%s: exit %d, stdout %q", group, code, out)
		}
	}
}

// TestDlqAndApprovalsTakeTheirFlagsBeforeOrAfterTheSubcommand: the
// connection flags of dlq, like those of approvals, belong to the group;
// every flag may come before or after the positional arguments.
func TestDlqAndApprovalsTakeTheirFlagsBeforeOrAfterTheSubcommand(t *testing.T) {
	ns := testkit.NATS(t)
	_, js := ns.Connect(t)
	if _, err := bus.EnsureStream(t.Context(), js, bus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"dlq", "--nats", ns.URL, "list"},
		{"dlq", "list", "--nats", ns.URL},
	} {
		out, errOut, code := runCLI(t, t.Context(), args...)
		if code != 0 || out != "no dead letters\n" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	for _, args := range [][]string{
		{"dlq", "--nats", ns.URL, "show", "7"},
		{"dlq", "show", "7", "--nats", ns.URL},
		{"dlq", "show", "--nats", ns.URL, "7"},
	} {
		_, errOut, code := runCLI(t, t.Context(), args...)
		if code != 1 || !strings.Contains(errOut, "no dead letter 7") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}

	api := startApprovalsAPI(t)
	api.create(t, "ap-1", time.Now(), "alice")
	api.create(t, "ap-2", time.Now(), "alice")
	for id, args := range map[string][]string{
		"ap-1": {"approvals", "--url", api.url, "--token", "alice-t0ken", "approve", "ap-1", "--reason", "ok"},
		"ap-2": {"approvals", "approve", "--reason", "ok", "ap-2", "--url", api.url, "--token", "alice-t0ken"},
	} {
		out, errOut, code := runCLI(t, t.Context(), args...)
		if code != 0 || !strings.HasPrefix(out, "granted "+id+" by alice") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}

// TestStatusBeforeAnyDeployerPrintsAnEmptyTable: on a system where no
// deployer has written yet (no inventory bucket), status shows the
// table's headers and says nothing is recorded; --json is an empty list.
func TestStatusBeforeAnyDeployerPrintsAnEmptyTable(t *testing.T) {
	ns := testkit.NATS(t)
	out, errOut, code := runCLI(t, t.Context(), "status", "--nats", ns.URL)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "CLUSTER") || !strings.Contains(lines[0], "IMAGE") || !strings.Contains(lines[1], "nothing recorded yet") {
		t.Errorf("stdout %q, want the headers and a line saying nothing is recorded yet", out)
	}
	out, _, code = runCLI(t, t.Context(), "status", "--nats", ns.URL, "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("--json: exit %d, stdout %q, want []", code, out)
	}
}

// TestStatusShowsPlatformNodesAndInstancesOfEveryWorkload: the table
// names each workload's platform, where it runs (listing up to three
// nodes, counting more) and its instances as running/wanted with the
// healthy ones; a record written before there were other platforms is
// Marathon's and has no counts to show. --json carries the records' fields
// as stored, every node included.
func TestStatusShowsPlatformNodesAndInstancesOfEveryWorkload(t *testing.T) {
	at := time.Date(2026, 11, 21, 10, 15, 0, 0, time.UTC)
	records := []inventory.Record{
		{Cluster: "dcos-prod", Environment: "prod", AppID: "/prod/web", Image: "registry.example/apps/web:1.4.0",
			Policy: "all", Platform: "marathon", Revision: "2026-11-21T10:14:58.123Z",
			Nodes: []string{"agent-1", "agent-2"}, Wanted: 2, Running: 2, Healthy: 2, UpdatedAt: at, EventID: "ev-1"},
		{Cluster: "legacy", Environment: "int", AppID: "/int/old", Image: "registry.example/apps/old:0.9.0",
			Policy: "patch", UpdatedAt: at},
		{Cluster: "swarm-eu", Environment: "prod", AppID: "api", Image: "registry.example/apps/api:2.0.1",
			Policy: "minor", Platform: "swarm", Revision: "42",
			Nodes: []string{"node-1", "node-2", "node-3", "node-4"}, Wanted: 5, Running: 4, Healthy: 3, UpdatedAt: at},
		{Cluster: "vic-edge", Environment: "dev", AppID: "web", Image: "registry.example/apps/web:1.4.1",
			Policy: "all", Platform: "docker", Revision: "c0ffee", Nodes: []string{"vch-1"},
			Wanted: 1, Running: 1, Healthy: 0, UpdatedAt: at},
	}
	ns := withInventory(t, records...)

	out, errOut, code := runCLI(t, t.Context(), "status", "--nats", ns.URL)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	rows := tableRows(t, out)
	want := map[string]map[string]string{
		"/prod/web": {"CLUSTER": "dcos-prod", "PLATFORM": "marathon", "NODES": "agent-1,agent-2", "INSTANCES": "2/2 (2 healthy)", "IMAGE": "registry.example/apps/web:1.4.0"},
		"/int/old":  {"CLUSTER": "legacy", "PLATFORM": "marathon", "NODES": "-", "INSTANCES": "-", "POLICY": "patch"},
		"api":       {"CLUSTER": "swarm-eu", "PLATFORM": "swarm", "NODES": "4 nodes", "INSTANCES": "4/5 (3 healthy)", "ENV": "prod"},
		"web":       {"CLUSTER": "vic-edge", "PLATFORM": "docker", "NODES": "vch-1", "INSTANCES": "1/1 (0 healthy)", "POLICY": "all"},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d:\n%s", len(rows), len(want), out)
	}
	for _, row := range rows {
		cells, ok := want[row["APP"]]
		if !ok {
			t.Errorf("unexpected row %v", row)
			continue
		}
		for col, v := range cells {
			if row[col] != v {
				t.Errorf("%s: %s is %q, want %q\n%s", row["APP"], col, row[col], v, out)
			}
		}
	}

	out, errOut, code = runCLI(t, t.Context(), "status", "--nats", ns.URL, "--json")
	if code != 0 {
		t.Fatalf("--json: exit %d, stderr %q", code, errOut)
	}
	// Decoded by the JSON names scripts use, not through inventory.Record,
	// so a renamed field shows here.
	var got []struct {
		Cluster, AppID, Platform, Revision string
		Nodes                              []string
		Wanted, Running, Healthy           int
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if len(got) != len(records) {
		t.Fatalf("--json: %d records, want %d:\n%s", len(got), len(records), out)
	}
	for i, r := range records {
		g := got[i]
		if g.Cluster != r.Cluster || g.AppID != r.AppID || g.Platform != r.Platform || g.Revision != r.Revision ||
			!slices.Equal(g.Nodes, r.Nodes) || g.Wanted != r.Wanted || g.Running != r.Running || g.Healthy != r.Healthy {
			t.Errorf("--json record %d: %+v, want %+v", i, g, r)
		}
	}
}

// withInventory starts a NATS server whose inventory holds records, as a
// deployer would have written them.
func withInventory(t *testing.T, records ...inventory.Record) *testkit.NATSServer {
	t.Helper()
	ns := testkit.NATS(t)
	_, js := ns.Connect(t)
	inv, err := inventory.Open(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range records {
		if err := inv.Put(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	return ns
}

// tableRows splits a tabwriter table into its rows, each cell under the
// header it is aligned with (cells may hold spaces, so splitting on
// whitespace would not do).
func tableRows(t *testing.T, table string) []map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(table, "\n"), "\n")
	header := lines[0]
	type column struct {
		name  string
		start int
	}
	var cols []column
	for i := 0; i < len(header); {
		if header[i] == ' ' {
			i++
			continue
		}
		end := strings.IndexByte(header[i:], ' ')
		if end < 0 {
			end = len(header) - i
		}
		cols = append(cols, column{header[i : i+end], i})
		i += end
	}
	var rows []map[string]string
	for _, line := range lines[1:] {
		row := map[string]string{}
		for j, c := range cols {
			end := len(line)
			if j+1 < len(cols) {
				end = min(cols[j+1].start, len(line))
			}
			if c.start < end {
				row[c.name] = strings.TrimSpace(line[c.start:end])
			}
		}
		rows = append(rows, row)
	}
	return rows
}

func TestColoursOnlyOnATerminalWithoutNoColor(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name string
		tty  bool
		env  func(string) string
		want bool
	}{
		{"terminal", true, env("TERM", "xterm-256color"), true},
		{"piped", false, env("TERM", "xterm-256color"), false},
		{"NO_COLOR", true, env("TERM", "xterm-256color", "NO_COLOR", "1"), false},
		{"dumb terminal", true, env("TERM", "dumb"), false},
	} {
		if got := colorWanted(tc.tty, tc.env); got != tc.want {
			t.Errorf("%s: colours %t, want %t", tc.name, got, tc.want)
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if isTerminal(w) {
		t.Error("a pipe taken for a terminal")
	}
}

// TestEveryCommandIsInTheReadme: the README's table of commands names every
// command of the command line, and on its line each subcommand, so a new
// command cannot ship undocumented.
func TestEveryCommandIsInTheReadme(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{} // command → its rows of the table
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "| `slipway "); ok {
			name, _, _ := strings.Cut(rest, " ")
			name = strings.TrimSuffix(strings.TrimSuffix(name, "`,"), "`")
			rows[name] = append(rows[name], line)
		}
	}
	for _, cmd := range rootCmd().Commands() {
		name := cmd.Name()
		if cmd.Hidden || name == "help" || name == "completion" {
			continue
		}
		if len(rows[name]) == 0 {
			t.Errorf("README.md has no row for slipway %s", name)
			continue
		}
		for _, sub := range cmd.Commands() {
			if !slices.ContainsFunc(rows[name], func(row string) bool { return strings.Contains(row, sub.Name()) }) {
				t.Errorf("README.md's row for slipway %s does not name its subcommand %s", name, sub.Name())
			}
		}
	}
}
