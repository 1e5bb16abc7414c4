package config

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a configuration file: where it is (the
// key path and, when known, the line) and what is wrong, said in the
// file's terms.
type Problem struct {
	// Path is the key path, "ingest.sources[1].auth"; empty for the file
	// as a whole.
	Path string
	// Line is the line the key is written on (1-based); 0 when it is not
	// in the file (a required key that is missing is placed on its
	// parent's line when the parent is written).
	Line    int
	Message string
}

func (p Problem) String() string {
	s := p.Message
	if p.Path != "" {
		s = p.Path + ": " + s
	}
	if p.Line > 0 {
		s += " (line " + strconv.Itoa(p.Line) + ")"
	}
	return s
}

// Problems is every problem of a file, reported together so an operator
// fixes them in one go. Its Error lists them one a line.
type Problems []Problem

func (ps Problems) Error() string {
	if len(ps) == 1 {
		return ps[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d problems:", len(ps))
	for _, p := range ps {
		b.WriteString("\n  " + p.String())
	}
	return b.String()
}

// at records a problem whose line is known (found while reading the
// file).
func (ps *Problems) at(line int, path, format string, args ...any) {
	*ps = append(*ps, Problem{Path: path, Line: line, Message: fmt.Sprintf(format, args...)})
}

// keyLines maps each key path written in a file (and each list item) to
// its line, so that a problem found after decoding, when only the path is
// known, still says where to look.
type keyLines map[string]int

// of returns the line of path, or of its nearest ancestor written in the
// file (a missing key belongs where its parent is), or 0.
func (l keyLines) of(path string) int {
	for p := path; p != ""; p = parent(p) {
		if n, ok := l[p]; ok {
			return n
		}
	}
	return 0
}

// parent is the key path that holds path ("a.b[1]" is in "a.b"), or "".
func parent(path string) string {
	if i := strings.LastIndexAny(path, ".["); i > 0 {
		return path[:i]
	}
	return ""
}

// locate gives every problem of ps that has none the line of its key
// path, and sorts them by line (those without one last).
func (l keyLines) locate(ps Problems) Problems {
	for i := range ps {
		if ps[i].Line == 0 {
			ps[i].Line = l.of(ps[i].Path)
		}
	}
	slices.SortStableFunc(ps, func(a, b Problem) int {
		switch {
		case a.Line == b.Line:
			return 0
		case a.Line == 0:
			return 1
		case b.Line == 0:
			return -1
		}
		return a.Line - b.Line
	})
	return ps
}

// keyPathRE is the shape of a key path: "ingest.sources[1].auth".
var keyPathRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z][A-Za-z0-9_-]*|\[[0-9]+\])*$`)
