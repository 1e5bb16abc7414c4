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
// lookup resolves ${VAR} references (os.LookupEnv in production).
func Parse(raw []byte, lookup func(string) (string, bool), sections ...Section) (*Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	lines := map[int]string{}
	if len(doc.Content) > 0 {
		if err := expand(doc.Content[0], "", lookup, lines); err != nil {
			return nil, err
		}
	}
	var cfg Config
	if len(doc.Content) > 0 {
		// Re-encode the expanded tree and decode it strictly, so that
		// unknown keys (typos) fail instead of being ignored.
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		if err := enc.Encode(&doc); err != nil {
			return nil, err
		}
		dec := yaml.NewDecoder(&buf)
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil {
			return nil, withKeyPaths(err, lines)
		}
	}
	if err := readSecretFiles(reflect.ValueOf(&cfg).Elem(), ""); err != nil {
		return nil, err
	}
	cfg.applyDefaults()
	if err := cfg.Check(sections...); err != nil {
		return nil, cfg.Redactor().Error(err)
	}
	return &cfg, nil
}

var varRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expand replaces ${VAR} and ${VAR:-default} in every scalar value (not in
// keys), and records which key path each line holds for error messages.
// Expanding scalars rather than the raw text keeps a secret containing
// YAML syntax (": ", "#") from changing the document's structure.
func expand(n *yaml.Node, path string, lookup func(string) (string, bool), lines map[int]string) error {
	if _, ok := lines[n.Line]; !ok && path != "" {
		lines[n.Line] = path
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			lines[k.Line] = p
			if err := expand(v, p, lookup, lines); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if err := expand(c, path+"["+strconv.Itoa(i)+"]", lookup, lines); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		var missing []string
		out := varRE.ReplaceAllStringFunc(n.Value, func(m string) string {
			sub := varRE.FindStringSubmatch(m)
			if v, ok := lookup(sub[1]); ok && v != "" {
				return v
			}
			if sub[2] != "" {
				return sub[3]
			}
			missing = append(missing, sub[1])
			return ""
		})
		if len(missing) > 0 {
			return fmt.Errorf("%s: environment variable %s is not set", path, strings.Join(missing, ", "))
		}
		if out != n.Value {
			n.Value = out
			// A plain ${VAR} takes the type its value has ("3" for
			// replicas); a quoted one stays a string.
			if n.Style == 0 {
				n.Tag = ""
			}
		}
	}
	return nil
}

var (
	lineRE = regexp.MustCompile(`^line (\d+): `)
	// valueRE is the start of the value yaml quotes in a type error
	// ("cannot unmarshal !!str `s3cr...` into int").
	valueRE = regexp.MustCompile(" `[^`]*`")
)

// withKeyPaths rewrites yaml's "line N: …" messages to name the key path.
// They drop the value yaml quotes: it may be (the start of) a secret in
// the wrong place, and the key path and line say where it is.
func withKeyPaths(err error, lines map[int]string) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, m := range te.Errors {
		m = valueRE.ReplaceAllString(m, "")
		if sub := lineRE.FindStringSubmatch(m); sub != nil {
			n, _ := strconv.Atoi(sub[1])
			if p, ok := lines[n]; ok {
				m = p + ": " + strings.TrimPrefix(m, sub[0]) + " (line " + sub[1] + ")"
			}
		}
		msgs = append(msgs, m)
	}
	return errors.New(strings.Join(msgs, "; "))
}

// readSecretFiles fills every string field X whose sibling XFile is set
// from that file, so secrets can come from mounted files (Docker and DC/OS
// secrets) instead of the environment. Setting both is an error.
func readSecretFiles(v reflect.Value, path string) error {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return readSecretFiles(v.Elem(), path)
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			if err := readSecretFiles(v.Index(i), path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			key := yamlKey(f)
			p := key
			if path != "" {
				p = path + "." + key
			}
			if f.Type.Kind() == reflect.String && strings.HasSuffix(f.Name, "File") {
				file := v.Field(i).String()
				target := v.FieldByName(strings.TrimSuffix(f.Name, "File"))
				if file == "" || !target.IsValid() || target.Kind() != reflect.String {
					continue
				}
				if target.String() != "" {
					return fmt.Errorf("%s: set either %s or %s, not both", path, strings.TrimSuffix(key, "File"), key)
				}
				b, err := os.ReadFile(file)
				if err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
				target.SetString(strings.TrimRight(string(b), "\r\n"))
				continue
			}
			if err := readSecretFiles(v.Field(i), p); err != nil {
				return err
			}
		}
	}
	return nil
}

func yamlKey(f reflect.StructField) string {
	if tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); tag != "" {
		return tag
	}
	return strings.ToLower(f.Name)
}
