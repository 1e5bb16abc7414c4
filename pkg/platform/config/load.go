package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads, expands and checks the file at path: the parts every service
// shares, and the parts of sections (the services that will run). Errors
// name the key path ("ingest.sources[1].auth") and the reason.
func Load(path string, sections ...Section) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := Parse(raw, os.LookupEnv, sections...)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes a configuration document and checks it as Load does.
// lookup resolves ${VAR} references (os.LookupEnv in production). A bad
// document is reported whole: the error is Problems, every problem of the
// file (unknown keys, values of the wrong kind, variables without a value,
// and what the checks find), each with its key path and line, sorted by
// line.
func Parse(raw []byte, lookup func(string) (string, bool), sections ...Section) (*Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, syntaxProblem(err, raw)
	}
	var ps Problems
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	if root.Kind == yaml.DocumentNode || root.Kind == 0 || root.ShortTag() == "!!null" {
		ps.at(0, "", "the file is empty")
		return nil, ps
	}
	c := newChecker(&ps)
	c.expand(root, "", lookup)
	if root.Kind != yaml.MappingNode {
		ps.at(root.Line, "", "expected keys with values (environments, ingest, …), not %s", describe(root))
		return nil, ps
	}
	c.value(root, reflect.TypeFor[Config](), "")
	var cfg Config
	if err := root.Decode(&cfg); err != nil {
		// The check above leaves out what yaml refuses; should it miss
		// something, yaml's own words, without the value it quotes.
		ps.at(0, "", "%s", valueRE.ReplaceAllString(err.Error(), ""))
	}
	readSecretFiles(reflect.ValueOf(&cfg).Elem(), "", &ps)
	cfg.applyDefaults()
	var checked Problems
	errors.As(cfg.Check(sections...), &checked)
	for _, v := range checked {
		if !c.follows(v.Path) {
			ps = append(ps, v)
		}
	}
	if len(ps) == 0 {
		return &cfg, nil
	}
	r := cfg.Redactor()
	for i := range ps {
		ps[i].Message = r.String(ps[i].Message)
	}
	return nil, c.lines.locate(ps)
}

var (
	syntaxRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	// valueRE is the start of the value yaml quotes in a type error
	// ("cannot unmarshal !!str `s3cr...` into int").
	valueRE = regexp.MustCompile(" `[^`]*`")
)

// syntaxProblem reports a document that is not YAML, at its line.
func syntaxProblem(err error, raw []byte) error {
	var ps Problems
	m := syntaxRE.FindStringSubmatch(err.Error())
	if m == nil {
		ps.at(0, "", "not valid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		return ps
	}
	line, _ := strconv.Atoi(m[1])
	msg := "not valid YAML: " + m[2]
	if lines := bytes.Split(raw, []byte("\n")); line >= 1 && line <= len(lines) && bytes.ContainsRune(lines[line-1], '\t') {
		msg += "; indent with spaces, not tabs"
	}
	ps.at(line, "", "%s", msg)
	return ps
}

// readSecretFiles fills every string field X whose sibling XFile is set
// from that file, so secrets can come from mounted files (Docker and DC/OS
// secrets) instead of the environment. Setting both is an error.
func readSecretFiles(v reflect.Value, path string, p *Problems) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			readSecretFiles(v.Elem(), path, p)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			readSecretFiles(v.Index(i), path+"["+strconv.Itoa(i)+"]", p)
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			key := yamlKey(f)
			fp := join(path, key)
			if f.Type.Kind() == reflect.String && strings.HasSuffix(f.Name, "File") {
				file := v.Field(i).String()
				target := v.FieldByName(strings.TrimSuffix(f.Name, "File"))
				if file == "" || !target.IsValid() || target.Kind() != reflect.String {
					continue
				}
				if target.String() != "" {
					p.at(0, path, "set either %s or %s, not both", strings.TrimSuffix(key, "File"), key)
					continue
				}
				b, err := os.ReadFile(file)
				if err != nil {
					p.at(0, fp, "%v", err)
					continue
				}
				target.SetString(strings.TrimRight(string(b), "\r\n"))
				continue
			}
			readSecretFiles(v.Field(i), fp, p)
		}
	}
}

func yamlKey(f reflect.StructField) string {
	if tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); tag != "" {
		return tag
	}
	return strings.ToLower(f.Name)
}
