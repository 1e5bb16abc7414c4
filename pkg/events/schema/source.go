package schema

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// sourceDir returns the directory of this package's source. The doc comments
// of package events become schema descriptions and the consumer example in
// events.md is compiled Go code, so the generator reads source; it only ever
// runs from a checkout (go test, go generate), where the path this file was
// compiled from is valid.
func sourceDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the generator's source")
	}
	dir := filepath.Dir(file)
	if _, err := os.Stat(filepath.Join(dir, "..", "types.go")); err != nil {
		return "", fmt.Errorf("the source of package events is not next to %s (built with -trimpath?): %w", dir, err)
	}
	return dir, nil
}

// goComments maps "<pkgPath>.<Type>" and "<pkgPath>.<Type>.<Field>" to the
// doc comments of the exported types of the Go package in dir, the keys the
// jsonschema reflector looks descriptions up by. Line breaks are folded, since
// a description is rendered by tools that reflow anyway, and a wrapped Go
// comment would otherwise produce ragged Markdown table cells.
func goComments(dir, pkgPath string) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	comments := map[string]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				if !ts.Name.IsExported() {
					continue
				}
				doc := ts.Doc
				if doc == nil && len(gd.Specs) == 1 {
					doc = gd.Doc
				}
				key := pkgPath + "." + ts.Name.Name
				if text := fold(doc.Text()); text != "" {
					comments[key] = text
				}
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				for _, field := range st.Fields.List {
					text := field.Doc.Text()
					if text == "" {
						text = field.Comment.Text()
					}
					if text = fold(text); text == "" {
						continue
					}
					for _, n := range field.Names {
						comments[key+"."+n.Name] = text
					}
				}
			}
		}
	}
	return comments, nil
}

func fold(s string) string { return strings.Join(strings.Fields(s), " ") }
