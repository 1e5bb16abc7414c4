package rules

import (
	"fmt"
	"regexp"
	"strings"
	"text/template"
)

// TemplateData is what targetRepository and targetTag templates see.
type TemplateData struct {
	Repository string   // source repository path, e.g. "apps/web"
	Tag        string   // source tag, e.g. "v1.4.0-rc.2"
	Version    *Version // the tag as a semantic version; nil when it is not one
}

// Version is a tag parsed as a semantic version.
type Version struct {
	Major, Minor, Patch uint64
	Prerelease          string // "rc.2" for 1.4.0-rc.2, "" for a release
	Metadata            string // build metadata after "+"
}

// String is the version without a "v" prefix, e.g. "1.4.0-rc.2".
func (v *Version) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
	if v.Prerelease != "" {
		s += "-" + v.Prerelease
	}
	if v.Metadata != "" {
		s += "+" + v.Metadata
	}
	return s
}

func newTemplateData(repository, tag string) TemplateData {
	d := TemplateData{Repository: repository, Tag: tag}
	if v, _, ok := parseVersion(tag); ok {
		d.Version = &Version{Major: v.Major(), Minor: v.Minor(), Patch: v.Patch(), Prerelease: v.Prerelease(), Metadata: v.Metadata()}
	}
	return d
}

// funcs are the functions templates may call. Each takes the piped value as
// its last argument, so both {{ trimPrefix "v" .Tag }} and
// {{ .Tag | trimPrefix "v" }} work.
var funcs = template.FuncMap{
	"trimPrefix":      func(prefix, s string) string { return strings.TrimPrefix(s, prefix) },
	"trimSuffix":      func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
	"replace":         func(old, repl, s string) string { return strings.ReplaceAll(s, old, repl) },
	"regexReplace":    regexReplace,
	"lower":           strings.ToLower,
	"upper":           strings.ToUpper,
	"stripPrerelease": stripPrerelease,
}

// trialFuncs replace the functions whose failure depends on the data, for the
// trial run in Compile.
var trialFuncs = template.FuncMap{
	"stripPrerelease": func(s string) string { return s },
}

func regexReplace(pattern, replacement, s string) (string, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return "", err
	}
	return re.ReplaceAllString(s, replacement), nil
}

// stripPrerelease drops the pre-release and build metadata of a semantic
// version, keeping a leading "v": "v1.4.0-rc.2" → "v1.4.0".
func stripPrerelease(s string) (string, error) {
	v, prefix, ok := parseVersion(s)
	if !ok {
		return "", fmt.Errorf("%q is not a semantic version", s)
	}
	return fmt.Sprintf("%s%d.%d.%d", prefix, v.Major(), v.Minor(), v.Patch()), nil
}

// trialData is a tag with every part set, so that templates using .Version
// run in the trial.
var trialData = newTemplateData("apps/team/web", "v1.2.3-rc.4")

// compileTemplate parses text and runs it once on trialData, so that unknown
// fields and functions, wrong argument counts and bad regexReplace patterns
// are reported at compile time. It records problems under field.
func compileTemplate(probs *problems, field, text string) *template.Template {
	t, err := template.New(field).Option("missingkey=error").Funcs(funcs).Parse(text)
	if err != nil {
		probs.add(field, "%v", err)
		return nil
	}
	trial, err := t.Clone()
	if err == nil {
		err = trial.Funcs(trialFuncs).Execute(&strings.Builder{}, trialData)
	}
	if err != nil {
		probs.add(field, "%v", err)
		return nil
	}
	return t
}

func render(t *template.Template, field, text string, data TemplateData) (string, error) {
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", &FieldError{Field: field, Err: fmt.Errorf("%q: %w", text, err)}
	}
	return strings.TrimSpace(b.String()), nil
}
