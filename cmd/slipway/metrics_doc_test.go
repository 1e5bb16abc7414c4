package main

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The metrics a Slipway process exports are declared as prometheus.*Opts
// literals with a Name "slipway_…" in the services' and packages' sources.
// This test reads them with go/parser (cheaper than starting every service
// against NATS) and holds docs/metrics.md and the Grafana dashboard to them.

const repoRoot = "../.."

// declaredMetric is one metric found in the source, with its label names
// (nil for a metric without labels).
type declaredMetric struct {
	name   string
	labels []string
	where  string
}

func declaredMetrics(t *testing.T) map[string]declaredMetric {
	t.Helper()
	out := map[string]declaredMetric{}
	fset := token.NewFileSet()
	for _, dir := range []string{"services", "pkg"} {
		err := filepath.WalkDir(filepath.Join(repoRoot, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if n := d.Name(); n == "testdata" || n == "vendor" || strings.HasPrefix(n, ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			collectMetrics(t, fset, f, out)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(out) == 0 {
		t.Fatal("no slipway_ metric found in the sources: has the layout changed?")
	}
	return out
}

// collectMetrics finds prometheus.New…(prometheus.…Opts{Name: "slipway_…"}, []string{…}).
func collectMetrics(t *testing.T, fset *token.FileSet, f *ast.File, out map[string]declaredMetric) {
	seen := map[*ast.CompositeLit]bool{}
	add := func(lit *ast.CompositeLit, labels []string) {
		name := optsName(lit)
		if name == "" || seen[lit] {
			return
		}
		seen[lit] = true
		where := fset.Position(lit.Pos()).String()
		if prev, ok := out[name]; ok {
			t.Errorf("%s: metric %s is also declared at %s", where, name, prev.where)
		}
		out[name] = declaredMetric{name: name, labels: labels, where: where}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || !strings.HasPrefix(sel.Sel.Name, "New") {
			return true
		}
		lit, ok := call.Args[0].(*ast.CompositeLit)
		if !ok {
			return true
		}
		var labels []string
		if len(call.Args) > 1 {
			if l, ok := call.Args[1].(*ast.CompositeLit); ok {
				for _, e := range l.Elts {
					if s, ok := e.(*ast.BasicLit); ok && s.Kind == token.STRING {
						v, _ := strconv.Unquote(s.Value)
						labels = append(labels, v)
					}
				}
			}
		}
		add(lit, labels)
		return true
	})
	// Opts literals not passed straight to a constructor would escape the
	// label check; make sure they are at least known by name.
	ast.Inspect(f, func(n ast.Node) bool {
		if lit, ok := n.(*ast.CompositeLit); ok && optsName(lit) != "" && !seen[lit] {
			add(lit, nil)
		}
		return true
	})
}

func optsName(lit *ast.CompositeLit) string {
	for _, e := range lit.Elts {
		kv, ok := e.(*ast.KeyValueExpr)
		if !ok {
			continue
		}
		if k, ok := kv.Key.(*ast.Ident); !ok || k.Name != "Name" {
			continue
		}
		if s, ok := kv.Value.(*ast.BasicLit); ok && s.Kind == token.STRING {
			v, _ := strconv.Unquote(s.Value)
			if strings.HasPrefix(v, "slipway_") {
				return v
			}
		}
	}
	return ""
}

// docRow matches a table row of docs/metrics.md: | `name` | type | labels | meaning |
var docRow = regexp.MustCompile("^\\|\\s*`(slipway_[a-z0-9_]+)`\\s*\\|[^|]*\\|([^|]*)\\|")

func documentedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, line := range strings.Split(string(b), "\n") {
		m := docRow.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		var labels []string
		for _, l := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(m[2], -1) {
			labels = append(labels, l[1])
		}
		if _, dup := out[m[1]]; dup {
			t.Errorf("docs/metrics.md lists %s twice", m[1])
		}
		out[m[1]] = labels
	}
	return out
}

func TestMetricsDocMatchesCode(t *testing.T) {
	code := declaredMetrics(t)
	doc := documentedMetrics(t)
	for name, m := range code {
		labels, ok := doc[name]
		if !ok {
			t.Errorf("%s (%s) is not documented in docs/metrics.md", name, m.where)
			continue
		}
		want, got := slices.Sorted(slices.Values(m.labels)), slices.Sorted(slices.Values(labels))
		if !slices.Equal(want, got) {
			t.Errorf("docs/metrics.md: %s has labels %v, the code %v (%s)", name, got, want, m.where)
		}
	}
	for name := range doc {
		if _, ok := code[name]; !ok {
			t.Errorf("docs/metrics.md lists %s, which no code declares any more", name)
		}
	}
}

// TestMetricsDocDashboard checks that deploy/grafana/slipway-dashboard.json
// is valid JSON and queries only metrics that exist.
func TestMetricsDocDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "grafana", "slipway-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		SchemaVersion int              `json:"schemaVersion"`
		UID           string           `json:"uid"`
		Panels        []map[string]any `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	if dash.SchemaVersion < 39 || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("dashboard: schemaVersion %d, uid %q, %d panels", dash.SchemaVersion, dash.UID, len(dash.Panels))
	}
	code := declaredMetrics(t)
	used := map[string]bool{}
	ids := map[float64]bool{}
	for _, p := range dash.Panels {
		if id, ok := p["id"].(float64); ok {
			if ids[id] {
				t.Errorf("dashboard: panel id %v is used twice", id)
			}
			ids[id] = true
		}
		targets, _ := p["targets"].([]any)
		for _, tg := range targets {
			expr, _ := tg.(map[string]any)["expr"].(string)
			for _, name := range regexp.MustCompile(`slipway_[a-z0-9_]+`).FindAllString(expr, -1) {
				used[name] = true
			}
		}
	}
	for name := range used {
		base := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if trimmed, ok := strings.CutSuffix(name, suffix); ok {
				if _, exists := code[trimmed]; exists {
					base = trimmed
				}
			}
		}
		if _, ok := code[base]; !ok {
			t.Errorf("dashboard queries %s, which no code declares", name)
		}
	}
	var unused []string
	for name := range code {
		if !used[name] && !used[name+"_bucket"] && !used[name+"_count"] && !used[name+"_sum"] {
			unused = append(unused, name)
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Errorf("dashboard has no panel for %v", unused)
	}
}
