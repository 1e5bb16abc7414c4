package schema

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Write writes every generated file under docsDir, the repository's docs
// directory, and removes schema files that no data type produces any more.
func Write(docsDir string) error {
	files, err := Generate()
	if err != nil {
		return err
	}
	for _, name := range sortedKeys(files) {
		p := filepath.Join(docsDir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			return err
		}
	}
	stale, err := staleSchemas(docsDir, files)
	if err != nil {
		return err
	}
	for _, name := range stale {
		if err := os.Remove(filepath.Join(docsDir, filepath.FromSlash(name))); err != nil {
			return err
		}
	}
	return nil
}

// Diff compares the generated files with those under docsDir and returns one
// line per file that differs, is missing or is left over.
func Diff(docsDir string) ([]string, error) {
	files, err := Generate()
	if err != nil {
		return nil, err
	}
	var problems []string
	for _, name := range sortedKeys(files) {
		have, err := os.ReadFile(filepath.Join(docsDir, filepath.FromSlash(name)))
		switch {
		case os.IsNotExist(err):
			problems = append(problems, fmt.Sprintf("docs/%s is missing; run `make generate`", name))
		case err != nil:
			return nil, err
		case !bytes.Equal(have, files[name]):
			problems = append(problems, fmt.Sprintf("docs/%s is out of date; run `make generate`", name))
		}
	}
	stale, err := staleSchemas(docsDir, files)
	if err != nil {
		return nil, err
	}
	for _, name := range stale {
		problems = append(problems, fmt.Sprintf("docs/%s belongs to no event type any more; run `make generate` to remove it", name))
	}
	return problems, nil
}

// staleSchemas lists the JSON files under docs/schemas that Generate does not
// produce: the schema of a data type that was renamed or removed.
func staleSchemas(docsDir string, files map[string][]byte) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(docsDir, "schemas"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var stale []string
	for _, e := range entries {
		name := "schemas/" + e.Name()
		if !e.IsDir() && strings.HasSuffix(name, ".json") && files[name] == nil {
			stale = append(stale, name)
		}
	}
	return stale, nil
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
