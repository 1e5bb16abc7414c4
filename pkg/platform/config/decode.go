package config

import (
	"cmp"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// checker reads a parsed file against the types it decodes into, before
// it is decoded: yaml's own errors name a Go type and only a line (which,
// mapped back to a key, could be the wrong key of a flow mapping), and stop
// at the first kind of mistake. The checker names every unknown key, value
// of the wrong kind, bad duration and bad size with its key path and line,
// says what was expected in the file's terms, and takes the offending
// entry out of the tree so that the rest still decodes and is validated
// in the same run.
type checker struct {
	p     *Problems
	lines keyLines
	// covered are key paths with a decode problem: what validation says
	// at or below them follows from that problem (a value left out is
	// "required"), so it is not said twice. parents are the paths whose
	// own checks are unreliable because a child was left out.
	covered, parents map[string]bool
	// aliased are the anchored nodes already checked through an alias
	// (*name), with the outcome: each is checked once, however often it
	// is used, so that aliases of aliases cannot multiply the work.
	aliased map[*yaml.Node]bool
}

func newChecker(p *Problems) *checker {
	return &checker{p: p, lines: keyLines{}, covered: map[string]bool{}, parents: map[string]bool{},
		aliased: map[*yaml.Node]bool{}}
}

// follows reports whether a validation problem at path only repeats a
// decode problem.
func (c *checker) follows(path string) bool {
	if c.parents[path] {
		return true
	}
	for p := path; p != ""; p = parent(p) {
		if c.covered[p] {
			return true
		}
	}
	return false
}

var (
	durationType  = reflect.TypeFor[time.Duration]()
	byteSizeType  = reflect.TypeFor[ByteSize]()
	unmarshalType = reflect.TypeFor[yaml.Unmarshaler]()
)

// value checks n against t. It returns false when n cannot be decoded
// into t; the caller then leaves it out.
func (c *checker) value(n *yaml.Node, t reflect.Type, path string) bool {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		if ok, done := c.aliased[n.Alias]; done {
			return ok
		}
		c.aliased[n.Alias] = true
		ok := c.value(n.Alias, t, path)
		c.aliased[n.Alias] = ok
		return ok
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return true // the zero value, or the default
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == durationType || t == byteSizeType || reflect.PointerTo(t).Implements(unmarshalType) {
		return c.leaf(n, t, path)
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return c.mismatch(n, t, path)
		}
		c.mapping(n, t, path)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return c.mismatch(n, t, path)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := join(path, n.Content[i].Value)
			c.lines[p] = n.Content[i].Line
			if !c.value(n.Content[i+1], t.Elem(), p) {
				n.Content[i+1] = null(n.Content[i+1])
			}
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return c.mismatch(n, t, path)
		}
		for i, item := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			c.lines[p] = item.Line
			if !c.value(item, t.Elem(), p) {
				n.Content[i] = null(item)
			}
		}
	case reflect.Interface:
	default:
		return c.leaf(n, t, path)
	}
	return true
}

// mapping checks the keys of n against the fields of struct type t, and
// each value against its field.
func (c *checker) mapping(n *yaml.Node, t reflect.Type, path string) {
	fields, names := yamlFields(t)
	seen := map[string]int{}
	kept := n.Content[:0]
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			kept = append(kept, k, v)
			continue
		}
		if name, _, glued := strings.Cut(k.Value, ":"); glued && k.Kind == yaml.ScalarNode {
			// {password:s3cret}: one key in a flow mapping. Not quoted:
			// after the colon may be a secret.
			c.p.at(k.Line, join(path, name), "needs a space after the colon (written without one, key and value are read as one unknown key)")
			c.covered[join(path, name)] = true
			continue
		}
		p := join(path, k.Value)
		switch ft, known := fields[k.Value]; {
		case k.Kind != yaml.ScalarNode:
			c.p.at(k.Line, path, "a key must be a plain name, not %s", describe(k))
			continue
		case seen[k.Value] > 0:
			c.p.at(k.Line, p, "is set twice (first on line %d)", seen[k.Value])
			continue
		case !known:
			c.p.at(k.Line, p, "unknown key%s", suggest(k.Value, names))
			continue
		default:
			seen[k.Value] = k.Line
			c.lines[p] = k.Line
			if !c.value(v, ft, p) {
				v = null(v)
			}
		}
		kept = append(kept, k, v)
	}
	n.Content = kept
	// Keys merged in (<<: *anchor) are checked where the anchor is
	// written; keys written here override them.
	for _, m := range merges {
		if m.Kind == yaml.AliasNode && m.Alias != nil {
			m = m.Alias
		}
		items := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			items = m.Content
		}
		for _, it := range items {
			if it.Kind == yaml.AliasNode && it.Alias != nil {
				it = it.Alias
			}
			if _, done := c.aliased[it]; !done && it.Kind == yaml.MappingNode {
				c.aliased[it] = true
				c.mapping(it, t, path)
			}
		}
	}
}

// leaf checks a value yaml decodes itself (a string, number, boolean,
// duration or size) by decoding it alone, so it accepts exactly what the
// whole decode will.
func (c *checker) leaf(n *yaml.Node, t reflect.Type, path string) bool {
	if n.Kind == yaml.ScalarNode && n.Decode(reflect.New(t).Interface()) == nil {
		return true
	}
	return c.mismatch(n, t, path)
}

// mismatch records that n is not what t takes. It never quotes the value:
// a value in the wrong place may be a secret; the key path and the line
// say where it is. Only a value shaped like what was meant (30d, 1.5GiB)
// is repeated in a hint.
func (c *checker) mismatch(n *yaml.Node, t reflect.Type, path string) bool {
	msg := "expected " + expected(t)
	switch t.Kind() {
	case reflect.Struct, reflect.Map, reflect.Slice, reflect.Array, reflect.String:
		msg += ", not " + describe(n)
	default: // a number, switch, duration or size: what it is not is plain
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			msg += ", not " + describe(n)
		}
	}
	if h := hint(n, t); h != "" {
		msg += "; " + h
	}
	c.p.at(n.Line, path, "%s", msg)
	c.cover(path)
	return false
}

// cover notes that the value at path is left out (or empty) for a problem
// already reported.
func (c *checker) cover(path string) {
	c.covered[path] = true
	if p := parent(path); p != "" {
		c.parents[p] = true
	}
}

// expected says what a type takes, as the file writes it.
func expected(t reflect.Type) string {
	switch t {
	case durationType:
		return "a duration like 30s, 5m, 2h"
	case byteSizeType:
		return "a size like 512MiB, 1GiB or a number of bytes"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a single value"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "keys with values (a mapping)"
	}
	return "another kind of value"
}

// describe names what a node is, without its value.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	}
	switch n.ShortTag() {
	case "!!int", "!!float":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!null":
		return "nothing"
	case "!!timestamp":
		return "a date"
	}
	return "text"
}

var (
	daysRE = regexp.MustCompile(`^([0-9]+)([dw])(.*)$`)
	sizeRE = regexp.MustCompile(`(?i)^([0-9]+)(\.[0-9]+)?\s*([kmgt])(i?)(b?)$`)
)

// hint suggests the fix for the mistakes people make.
func hint(n *yaml.Node, t reflect.Type) string {
	if n.Kind != yaml.ScalarNode {
		if t.Kind() == reflect.Slice && n.Kind == yaml.MappingNode {
			return "start each item with -, or write [a, b]"
		}
		return ""
	}
	if n.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0 {
		plain := yaml.Node{Kind: yaml.ScalarNode, Value: n.Value}
		if plain.Decode(reflect.New(t).Interface()) == nil {
			return "write it without quotes"
		}
	}
	v := strings.TrimSpace(n.Value)
	switch {
	case t == durationType:
		if m := daysRE.FindStringSubmatch(v); m != nil {
			days, _ := strconv.Atoi(m[1])
			if m[2] == "w" {
				days *= 7
			}
			rest, err := time.ParseDuration(cmp.Or(m[3], "0s"))
			if err == nil {
				return "durations: use h, m, s — " + v + " is " + hours(time.Duration(days)*24*time.Hour+rest)
			}
		}
		if _, err := strconv.ParseFloat(v, 64); err == nil {
			return "add a unit: s, m or h"
		}
		return "durations: use h, m, s (and ms)"
	case t == byteSizeType:
		m := sizeRE.FindStringSubmatch(v)
		if m == nil {
			return ""
		}
		unit := strings.ToUpper(m[3])
		if m[5] == "" || m[3] != unit || (m[4] != "" && m[4] != "i") || m[5] != "B" {
			return "write " + m[1] + m[2] + unit + "iB (powers of 1024) or " + m[1] + m[2] + unit + "B (powers of 1000)"
		}
		// A fraction: the same size in a smaller unit of its kind.
		units, base := "KMGT", 1000.0
		if m[4] == "i" {
			base = 1024
		}
		f, _ := strconv.ParseFloat(m[1]+m[2], 64)
		for i := strings.Index(units, unit); i > 0; i-- {
			f *= base
			if f == float64(int64(f)) {
				return "use a whole number: " + v + " is " + strconv.FormatInt(int64(f), 10) + units[i-1:i] + m[4] + "B"
			}
		}
		return "use a whole number"
	case t.Kind() == reflect.Slice:
		return "write a list as [a, b] or as lines starting with -"
	}
	return ""
}

// hours writes d in hours when it is whole hours (720h), else as Go does.
func hours(d time.Duration) string {
	if d%time.Hour == 0 {
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	}
	return d.String()
}

// suggest names the known key closest to an unknown one, if one is close
// enough to be a typo, else lists the keys there are.
func suggest(key string, known []string) string {
	best, bestDist := "", -1
	for _, k := range known {
		if d := editDistance(strings.ToLower(key), strings.ToLower(k)); bestDist < 0 || d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" && bestDist <= max(1, len(key)/3) {
		return "; did you mean `" + best + "`?"
	}
	if len(known) == 0 {
		return ""
	}
	return " (known here: " + strings.Join(known, ", ") + ")"
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and swaps of neighbours (hedaer, header) each
// count one.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// yamlFields returns the keys of struct type t with their types, and the
// keys in the order they are declared.
func yamlFields(t reflect.Type) (map[string]reflect.Type, []string) {
	fields := map[string]reflect.Type{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if !f.IsExported() || tag == "-" {
			continue
		}
		if _, opts, _ := strings.Cut(tag, ","); strings.Contains(opts, "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				inner, innerNames := yamlFields(ft)
				for k, v := range inner {
					fields[k] = v
				}
				names = append(names, innerNames...)
			}
			continue
		}
		key := yamlKey(f)
		fields[key] = f.Type
		names = append(names, key)
	}
	return fields, names
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// null is an empty value in n's place: what is left of an entry that
// could not be decoded.
func null(n *yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
}

var varRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expand replaces ${VAR} and ${VAR:-default} in every scalar value (not in
// keys). Expanding scalars of the parsed tree rather than the raw text
// keeps a secret containing YAML syntax (": ", "#") or line breaks from
// changing the document's structure or the lines problems are reported on.
// A variable that is not set, or set but empty, without a default is a
// problem.
func (c *checker) expand(n *yaml.Node, path string, lookup func(string) (string, bool)) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			c.expand(n.Content[i+1], join(path, n.Content[i].Value), lookup)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			c.expand(item, path+"["+strconv.Itoa(i)+"]", lookup)
		}
	case yaml.ScalarNode:
		out := varRE.ReplaceAllStringFunc(n.Value, func(m string) string {
			sub := varRE.FindStringSubmatch(m)
			v, set := lookup(sub[1])
			switch {
			case v != "":
				return v
			case sub[2] != "":
				return sub[3]
			case set:
				c.p.at(n.Line, path, "environment variable %s is empty", sub[1])
			default:
				c.p.at(n.Line, path, "environment variable %s is not set", sub[1])
			}
			c.cover(path)
			return ""
		})
		if out != n.Value {
			n.Value = out
			// A plain ${VAR} takes the type its value has ("3" for
			// replicas); a quoted one stays a string.
			if n.Style == 0 {
				n.Tag = ""
			}
		}
	}
}
