package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"unicode"

	"github.com/invopop/jsonschema"

	"github.com/slipway-cd/slipway/pkg/events"
)

// SchemaBaseURL is where docs/schemas is published. Every schema's $id lives
// under it, so the envelope's relative references to the data schemas resolve
// both online and in a validator that is handed the local files by $id.
const SchemaBaseURL = "https://raw.githubusercontent.com/slipway-cd/slipway/main/docs/schemas/"

// EnvelopeFile is the schema of a whole event, data included.
const EnvelopeFile = "cloudevent.json"

// Generate returns every generated file, keyed by its path relative to the
// repository's docs directory ("schemas/image-pushed.json", "asyncapi.yaml",
// "events.md").
func Generate() (map[string][]byte, error) {
	g, err := newGenerator()
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, d := range g.data {
		b, err := encodeJSON(g.schemas[d.name])
		if err != nil {
			return nil, fmt.Errorf("schema of %s: %w", d.name, err)
		}
		files["schemas/"+d.file] = b
	}
	b, err := encodeJSON(g.envelope(true))
	if err != nil {
		return nil, fmt.Errorf("envelope schema: %w", err)
	}
	files["schemas/"+EnvelopeFile] = b
	if files["asyncapi.yaml"], err = g.asyncAPI(); err != nil {
		return nil, fmt.Errorf("asyncapi.yaml: %w", err)
	}
	if files["events.md"], err = g.markdown(); err != nil {
		return nil, fmt.Errorf("events.md: %w", err)
	}
	return files, nil
}

// dataType is one Go data struct and the event types that carry it.
type dataType struct {
	goType reflect.Type
	name   string // Go type name, the schema's title and AsyncAPI component name
	file   string // file name under docs/schemas
	types  []events.Type
}

type generator struct {
	srcDir   string
	comments map[string]string
	data     []dataType
	byType   map[events.Type]*dataType
	schemas  map[string]*jsonschema.Schema // by Go type name
	imageRef *jsonschema.Schema
}

func newGenerator() (*generator, error) {
	dir, err := sourceDir()
	if err != nil {
		return nil, err
	}
	pkgPath := reflect.TypeFor[events.ImageRef]().PkgPath()
	comments, err := goComments(dir+"/..", pkgPath)
	if err != nil {
		return nil, fmt.Errorf("read doc comments of package events: %w", err)
	}
	g := &generator{
		srcDir:   dir,
		comments: comments,
		byType:   map[events.Type]*dataType{},
		schemas:  map[string]*jsonschema.Schema{},
	}
	seen := map[reflect.Type]int{}
	for _, t := range events.Types {
		rt := reflect.TypeOf(t.Data)
		if rt.Kind() != reflect.Struct || rt.PkgPath() != pkgPath {
			return nil, fmt.Errorf("%s: data %s is not a struct of package events", t.Type, rt)
		}
		i, ok := seen[rt]
		if !ok {
			i = len(g.data)
			seen[rt] = i
			g.data = append(g.data, dataType{goType: rt, name: rt.Name(), file: kebab(rt.Name()) + ".json"})
		}
		g.data[i].types = append(g.data[i].types, t.Type)
	}
	for i := range g.data {
		d := &g.data[i]
		for _, t := range d.types {
			g.byType[t] = d
		}
		s, err := g.reflect(d)
		if err != nil {
			return nil, err
		}
		g.schemas[d.name] = s
	}
	return g, nil
}

func (g *generator) reflect(d *dataType) (*jsonschema.Schema, error) {
	r := &jsonschema.Reflector{
		ExpandedStruct: true,
		// The contract lists the fields data has at least: a consumer that
		// validates must keep accepting events from a newer Slipway that
		// added one.
		AllowAdditionalProperties: true,
		CommentMap:                g.comments,
	}
	s := r.ReflectFromType(d.goType)
	s.ID = jsonschema.ID(SchemaBaseURL + d.file)
	s.Title = d.name
	for name, def := range s.Definitions {
		if name == "ImageRef" {
			g.imageRef = def
			continue
		}
		// Another nested type is one event's own (action.requested's
		// target): written out where it is used, as its reader expects to
		// find it, rather than shared under $defs.
		if !inline(s, "#/$defs/"+name, def) {
			return nil, fmt.Errorf("%s: unexpected nested type %s; teach the generator about it", d.name, name)
		}
		delete(s.Definitions, name)
	}
	if len(s.Definitions) == 0 {
		s.Definitions = nil
	}
	return s, nil
}

// envelope is the schema of a Slipway CloudEvent in structured JSON mode.
// With byType it also ties data to the schema of the event's type; AsyncAPI
// does that per message instead, and wants the bare envelope.
func (g *generator) envelope(byType bool) *jsonschema.Schema {
	str := func(desc string) *jsonschema.Schema { return &jsonschema.Schema{Type: "string", Description: desc} }
	one := uint64(1)
	props := jsonschema.NewProperties()
	props.Set("specversion", &jsonschema.Schema{Type: "string", Const: "1.0", Description: "CloudEvents version."})
	id := str("Deterministic event id (an RFC 9562 UUID, version 8, derived from what happened), also sent as the " + events.HeaderMsgID + " header: a redelivered input produces the same id, and JetStream drops the copy.")
	id.MinLength = &one
	props.Set("id", id)
	src := str(`Producer, e.g. "/slipway/ingest/dev-registry".`)
	src.Format = "uri-reference"
	src.MinLength = &one
	props.Set("source", src)
	// A pattern rather than an enum of today's types, so that a consumer
	// holding this schema still accepts a type added later.
	props.Set("type", &jsonschema.Schema{Type: "string", Pattern: `^dev\.slipway\.[a-z]+\.[a-z]+\.v[0-9]+$`, Description: "dev.slipway.<noun>.<verb>.v1"})
	props.Set("subject", str(`What the event is about: the image reference "registry/repository:tag@digest" for image events, "cluster:appId" for deployment events.`))
	tm := str("When it happened (UTC).")
	tm.Format = "date-time"
	props.Set("time", tm)
	props.Set("datacontenttype", &jsonschema.Schema{Type: "string", Const: "application/json"})
	props.Set("data", &jsonschema.Schema{Type: "object", Description: "The payload; its schema depends on type."})
	env := str("The environment that selects the subject's last token (slipway.<noun>.<verb>.<environment>).")
	env.Pattern = `^[a-zA-Z0-9_-]+$`
	props.Set("environment", env)
	props.Set(events.ExtCausation, str("Id of the event that caused this one."))
	tp := str("W3C trace context of the producer's span (Distributed Tracing extension), also sent as the " + events.HeaderTraceParent + " header.")
	tp.Pattern = `^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`
	props.Set(events.ExtTraceParent, tp)
	props.Set(events.ExtTraceState, str("W3C tracestate, when the trace has one."))

	s := &jsonschema.Schema{
		Title:       "CloudEvent",
		Description: "A Slipway event: a CloudEvent 1.0 in structured JSON mode, the body of every message on the stream. Further extension attributes may appear.",
		Type:        "object",
		Properties:  props,
		Required:    []string{"specversion", "id", "source", "type", "time", "environment", "data"},
	}
	if !byType {
		return s
	}
	s.Version = jsonschema.Version
	s.ID = jsonschema.ID(SchemaBaseURL + EnvelopeFile)
	for _, t := range events.Types {
		typ := jsonschema.NewProperties()
		typ.Set("type", &jsonschema.Schema{Const: string(t.Type)})
		data := jsonschema.NewProperties()
		data.Set("data", &jsonschema.Schema{Ref: g.byType[t.Type].file})
		s.AllOf = append(s.AllOf, &jsonschema.Schema{
			If:   &jsonschema.Schema{Properties: typ, Required: []string{"type"}},
			Then: &jsonschema.Schema{Properties: data},
		})
	}
	return s
}

// encodeJSON renders a schema indented, with a trailing newline, keywords in
// a fixed order (see ordered) and properties in the order of the struct's
// fields, so the output is deterministic and reads like the Go type.
func encodeJSON(s *jsonschema.Schema) ([]byte, error) {
	v, err := ordered(s)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// "<noun>" in a description should read as such in the file.
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return unescapeHTML(buf.Bytes()), nil
}

// unescapeHTML undoes the HTML escaping that nested MarshalJSON methods
// (jsonschema.Schema's) apply regardless of SetEscapeHTML. An escape preceded
// by an odd number of backslashes is literal text and stays.
func unescapeHTML(b []byte) []byte {
	repl := map[string]byte{`\u003c`: '<', `\u003e`: '>', `\u0026`: '&'}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+6 <= len(b) {
			if c, ok := repl[string(b[i:i+6])]; ok {
				out = append(out, c)
				i += 5
				continue
			}
			// Copy an escaped character whole, so that "\\u003c" stays.
			out = append(out, b[i], b[i+1])
			i++
			continue
		}
		out = append(out, b[i])
	}
	return out
}

// kebab turns a Go type name into a file name: ImagePushed → image-pushed.
func kebab(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('-')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// keywordOrder puts what a reader looks for first at the top of a schema;
// other keywords follow alphabetically.
var keywordOrder = []string{
	"$schema", "$id", "$ref", "title", "description", "type", "const", "enum", "format", "pattern", "minLength",
	"items", "properties", "required", "additionalProperties", "allOf", "if", "then", "else", "$defs",
}

// object is a JSON object that keeps its keys in the given order.
type object struct {
	keys []string
	vals map[string]any
}

func (o object) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			buf.WriteByte(',')
		}
		kb, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		vb, err := json.Marshal(o.vals[k])
		if err != nil {
			return nil, err
		}
		buf.Write(kb)
		buf.WriteByte(':')
		buf.Write(vb)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// ordered rebuilds s with its keywords in keywordOrder. The reflector's own
// encoding orders keywords as its struct's fields (properties before type,
// description last), which makes the files hard to read.
func ordered(s *jsonschema.Schema) (any, error) {
	if s == nil {
		return nil, nil
	}
	raw, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var kw map[string]json.RawMessage
	if err := json.Unmarshal(raw, &kw); err != nil {
		// true or false, the boolean forms of a schema.
		return json.RawMessage(raw), nil
	}
	sub := map[string]*jsonschema.Schema{
		"items": s.Items, "additionalProperties": s.AdditionalProperties,
		"if": s.If, "then": s.Then, "else": s.Else, "not": s.Not,
	}
	lists := map[string][]*jsonschema.Schema{"allOf": s.AllOf, "anyOf": s.AnyOf, "oneOf": s.OneOf}
	out := object{vals: map[string]any{}}
	for k, v := range kw {
		out.keys = append(out.keys, k)
		out.vals[k] = v
		switch {
		case sub[k] != nil:
			if out.vals[k], err = ordered(sub[k]); err != nil {
				return nil, err
			}
		case lists[k] != nil:
			var l []any
			for _, c := range lists[k] {
				o, err := ordered(c)
				if err != nil {
					return nil, err
				}
				l = append(l, o)
			}
			out.vals[k] = l
		case k == "properties" && s.Properties != nil:
			props := object{vals: map[string]any{}}
			for p := s.Properties.Oldest(); p != nil; p = p.Next() {
				props.keys = append(props.keys, p.Key)
				if props.vals[p.Key], err = ordered(p.Value); err != nil {
					return nil, err
				}
			}
			out.vals[k] = props
		case k == "$defs":
			defs := object{vals: map[string]any{}}
			for name, d := range s.Definitions {
				defs.keys = append(defs.keys, name)
				if defs.vals[name], err = ordered(d); err != nil {
					return nil, err
				}
			}
			slices.Sort(defs.keys)
			out.vals[k] = defs
		}
	}
	rank := func(k string) int {
		if i := slices.Index(keywordOrder, k); i >= 0 {
			return i
		}
		return len(keywordOrder)
	}
	slices.SortFunc(out.keys, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	return out, nil
}

// inline replaces the properties of s that refer to ref by def itself, and
// reports whether there was one.
func inline(s *jsonschema.Schema, ref string, def *jsonschema.Schema) bool {
	found := false
	if s.Properties == nil {
		return false
	}
	for pair := s.Properties.Oldest(); pair != nil; pair = pair.Next() {
		switch {
		case pair.Value.Ref == ref:
			c := *def
			if pair.Value.Description != "" {
				c.Description = pair.Value.Description
			}
			s.Properties.Set(pair.Key, &c)
			found = true
		case pair.Value.Items != nil && pair.Value.Items.Ref == ref: // a list of them
			c := *def
			pair.Value.Items = &c
			found = true
		}
	}
	return found
}
