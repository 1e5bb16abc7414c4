package schema

import (
	"bytes"
	"encoding/json"
	"flag"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	validator "github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/slipway-cd/slipway/pkg/events"
)

var update = flag.Bool("update", false, "rewrite the generated files under docs/")

const docsDir = "../../../docs"

func TestGeneratedDocsUpToDate(t *testing.T) {
	if *update {
		if err := Write(docsDir); err != nil {
			t.Fatal(err)
		}
	}
	problems, err := Diff(docsDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	a, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two runs of Generate differ")
	}
	for name, content := range a {
		if !bytes.HasSuffix(content, []byte("\n")) {
			t.Errorf("%s does not end in a newline", name)
		}
	}
}

// compiled compiles every generated schema under its $id, as a consumer
// that downloaded docs/schemas would.
func compiled(t *testing.T) (files map[string][]byte, compile func(file string) *validator.Schema) {
	t.Helper()
	files, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	c := validator.NewCompiler()
	c.AssertFormat()
	for name, content := range files {
		file, ok := strings.CutPrefix(name, "schemas/")
		if !ok {
			continue
		}
		doc, err := validator.UnmarshalJSON(bytes.NewReader(content))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if id := doc.(map[string]any)["$id"]; id != SchemaBaseURL+file {
			t.Errorf("%s: $id is %v, want %s", name, id, SchemaBaseURL+file)
		}
		if err := c.AddResource(SchemaBaseURL+file, doc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	return files, func(file string) *validator.Schema {
		t.Helper()
		s, err := c.Compile(SchemaBaseURL + file)
		if err != nil {
			t.Fatalf("compile %s: %v", file, err)
		}
		return s
	}
}

func instance(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := validator.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// without returns a copy of the JSON object obj without key.
func without(obj any, key string) map[string]any {
	c := map[string]any{}
	for k, v := range obj.(map[string]any) {
		if k != key {
			c[k] = v
		}
	}
	return c
}

func TestSchemasAcceptSamplesAndRejectMissingFields(t *testing.T) {
	g, err := newGenerator()
	if err != nil {
		t.Fatal(err)
	}
	_, compile := compiled(t)
	envelope := compile(EnvelopeFile)
	for _, spec := range append(samples(), variants()...) {
		t.Run(spec.Type.Short(), func(t *testing.T) {
			d := g.byType[spec.Type]
			s := compile(d.file)
			data := instance(t, spec.Data)
			if err := s.Validate(data); err != nil {
				t.Fatalf("%s rejects the sample: %v", d.file, err)
			}
			for _, field := range requiredFields(d.goType) {
				if s.Validate(without(data, field)) == nil {
					t.Errorf("%s accepts data without %q", d.file, field)
				}
			}

			e, err := sampleEvent(spec)
			if err != nil {
				t.Fatal(err)
			}
			event := instance(t, e)
			if err := envelope.Validate(event); err != nil {
				t.Fatalf("%s rejects the event: %v", EnvelopeFile, err)
			}
			for _, attr := range []string{"specversion", "id", "source", "type", "time", "environment", "data"} {
				if envelope.Validate(without(event, attr)) == nil {
					t.Errorf("%s accepts an event without %q", EnvelopeFile, attr)
				}
			}
			// data is checked against the schema of the event's type.
			first := requiredFields(d.goType)[0]
			broken := without(event, "data")
			broken["data"] = without(event.(map[string]any)["data"], first)
			if envelope.Validate(broken) == nil {
				t.Errorf("%s accepts an event whose data lacks %q", EnvelopeFile, first)
			}
		})
	}
}

// A Docker host's or a Swarm's deployment events carry no Marathon fields;
// what every platform's events must carry is platform, deploymentId and
// revision.
func TestDeploymentSchemaRequiresPlatformNotMarathonFields(t *testing.T) {
	_, compile := compiled(t)
	schema, envelope := compile("deployment.json"), compile(EnvelopeFile)
	const container = "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c"
	started := func(data any) (payload, event any) {
		t.Helper()
		e, err := events.New(t.Context(), events.Spec{
			ID: events.ID(t.Name()), Type: events.TypeDeploymentStarted, Source: "/slipway/deployer",
			Environment: "tst", Subject: "vch-tst:payments-api", Time: time.Now(), Data: data,
		})
		if err != nil {
			t.Fatal(err)
		}
		return instance(t, data), instance(t, e)
	}
	docker := events.Deployment{
		Cluster: "vch-tst", Environment: "tst", Platform: events.PlatformDocker, AppID: "payments-api",
		FromImage: "registry.tst.example/apps/payments:1.4.1", ToImage: "registry.tst.example/apps/payments:1.4.2",
		Digest:       "sha256:3f4ab9c1d2e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2",
		DeploymentID: container, Revision: container,
	}

	data, event := started(docker)
	for _, marathon := range []string{"marathonDeploymentId", "marathonVersion"} {
		if _, ok := data.(map[string]any)[marathon]; ok {
			t.Errorf("a docker deployment's data has %q: %v", marathon, data)
		}
	}
	if err := schema.Validate(data); err != nil {
		t.Errorf("deployment.json rejects a docker deployment without Marathon fields: %v", err)
	}
	if err := envelope.Validate(event); err != nil {
		t.Errorf("%s rejects a docker deployment.started without Marathon fields: %v", EnvelopeFile, err)
	}

	data, event = without(data, "platform"), without(event, "data")
	event.(map[string]any)["data"] = data
	if schema.Validate(data) == nil {
		t.Error("deployment.json accepts a deployment without platform")
	}
	if envelope.Validate(event) == nil {
		t.Errorf("%s accepts a deployment.started without platform", EnvelopeFile)
	}

	docker.Platform = ""
	data, event = started(docker)
	if schema.Validate(data) == nil || envelope.Validate(event) == nil {
		t.Error("an empty platform is accepted")
	}
}

// requiredFields lists the JSON names of t's fields without omitempty: the
// fields every event carries.
func requiredFields(t reflect.Type) []string {
	var req []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		o := strings.Split(opts, ",")
		if !slices.Contains(o, "omitempty") && !slices.Contains(o, "omitzero") {
			req = append(req, name)
		}
	}
	return req
}

func TestRequiredMatchesOmitempty(t *testing.T) {
	g, err := newGenerator()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range g.data {
		if got, want := g.schemas[d.name].Required, requiredFields(d.goType); !slices.Equal(got, want) {
			t.Errorf("%s: required %v, want %v", d.name, got, want)
		}
	}
	if got, want := g.imageRef.Required, requiredFields(reflect.TypeFor[events.ImageRef]()); !slices.Equal(got, want) {
		t.Errorf("ImageRef: required %v, want %v", got, want)
	}
}

// TestSamplesCoverEveryField keeps the examples complete: a field added to a
// data type must show up in some sample, and every sample must carry all the
// fields its type requires.
func TestSamplesCoverEveryField(t *testing.T) {
	specs := samples()
	if len(specs) != len(events.Types) {
		t.Fatalf("%d samples for %d event types", len(specs), len(events.Types))
	}
	set := map[string]bool{} // "<Type>.<Field>" set in some sample
	var walk func(typ events.Type, v reflect.Value)
	walk = func(typ events.Type, v reflect.Value) {
		req := requiredFields(v.Type())
		for i := range v.NumField() {
			f := v.Type().Field(i)
			fv := v.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if fv.IsZero() {
				// A required boolean may be false: it is there, saying no.
				if slices.Contains(req, name) && fv.Kind() != reflect.Bool {
					t.Errorf("sample of %s: required field %s.%s is empty", typ, v.Type().Name(), f.Name)
				}
				continue
			}
			set[v.Type().Name()+"."+f.Name] = true
			if fv.Kind() == reflect.Struct && fv.Type() != reflect.TypeFor[time.Time]() {
				walk(typ, fv)
			}
		}
	}
	checkSample := func(spec events.Spec, data any) {
		if reflect.TypeOf(spec.Data) != reflect.TypeOf(data) {
			t.Fatalf("sample of %s has data %T, want %T", spec.Type, spec.Data, data)
		}
		if _, err := sampleEvent(spec); err != nil {
			t.Fatalf("sample of %s: %v", spec.Type, err)
		}
		walk(spec.Type, reflect.ValueOf(spec.Data))
	}
	for i, et := range events.Types {
		if specs[i].Type != et.Type {
			t.Fatalf("sample %d is %s, want %s (keep the order of events.Types)", i, specs[i].Type, et.Type)
		}
		checkSample(specs[i], et.Data)
	}
	for _, v := range variants() {
		var data any
		for _, et := range events.Types {
			if et.Type == v.Type {
				data = et.Data
			}
		}
		checkSample(v, data)
	}
	check := func(typ reflect.Type) {
		for i := range typ.NumField() {
			if !set[typ.Name()+"."+typ.Field(i).Name] {
				t.Errorf("no sample sets %s.%s; add it to samples() (or variants()) in samples.go", typ.Name(), typ.Field(i).Name)
			}
		}
	}
	for _, et := range events.Types {
		check(reflect.TypeOf(et.Data))
	}
	check(reflect.TypeFor[events.ImageRef]())
}

func TestAsyncAPI(t *testing.T) {
	files, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(files["asyncapi.yaml"], &doc); err != nil {
		t.Fatal(err)
	}
	if doc["asyncapi"] != "3.0.0" {
		t.Errorf("asyncapi: %v", doc["asyncapi"])
	}
	channels := doc["channels"].(map[string]any)
	operations := doc["operations"].(map[string]any)
	messages := doc["components"].(map[string]any)["messages"].(map[string]any)
	for _, et := range events.Types {
		id := camel(et.Type.Short())
		ch, ok := channels[id].(map[string]any)
		if !ok {
			t.Errorf("no channel %s", id)
			continue
		}
		// The address with the parameter filled in must be the subject Slipway publishes on.
		addr := strings.Replace(ch["address"].(string), "{environment}", "prd", 1)
		if want, _ := events.Subject(et.Type, "prd"); addr != want {
			t.Errorf("channel %s: address %s, want %s", id, addr, want)
		}
		op, ok := operations["receive"+upperFirst(id)].(map[string]any)
		if !ok || op["action"] != "receive" {
			t.Errorf("no receive operation for %s", id)
		}
		msg := messages[id].(map[string]any)
		if msg["name"] != string(et.Type) || msg["contentType"] != events.ContentType {
			t.Errorf("message %s: name %v, contentType %v", id, msg["name"], msg["contentType"])
		}
	}

	if _, ok := channels["deadLetters"]; !ok {
		t.Error("no dead-letter channel")
	}

	// Every local reference must resolve.
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if r, ok := v["$ref"].(string); ok {
				if _, err := resolvePointer(doc, r); err != nil {
					t.Errorf("$ref %s: %v", r, err)
				}
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	walk(doc)

	// The examples are what Slipway publishes, so the payload schema of each
	// message accepts its own example. Validating against the standalone
	// envelope checks the same events with the data schemas attached.
	_, compile := compiled(t)
	envelope := compile(EnvelopeFile)
	for _, et := range events.Types {
		id := camel(et.Type.Short())
		examples, _ := messages[id].(map[string]any)["examples"].([]any)
		if len(examples) == 0 {
			t.Errorf("message %s has no example", id)
		}
		for _, ex := range examples {
			payload := instance(t, ex.(map[string]any)["payload"])
			if err := envelope.Validate(payload); err != nil {
				t.Errorf("example of %s: %v", id, err)
			}
		}
	}
}

func resolvePointer(doc any, ref string) (any, error) {
	path, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, errNotLocal
	}
	cur := doc
	for _, tok := range strings.Split(path, "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, errNotFound
		}
		if cur, ok = m[tok]; !ok {
			return nil, errNotFound
		}
	}
	return cur, nil
}

type refError string

func (e refError) Error() string { return string(e) }

const (
	errNotLocal refError = "not a local reference"
	errNotFound refError = "does not resolve"
)

func TestUnescapeHTML(t *testing.T) {
	for in, want := range map[string]string{
		`"\u003cnoun\u003e"`: `"<noun>"`,
		`"a \u0026 b"`:       `"a & b"`,
		`"\\u003c"`:          `"\\u003c"`,
		`"\\\u003c"`:         `"\\<"`,
	} {
		if got := string(unescapeHTML([]byte(in))); got != want {
			t.Errorf("unescapeHTML(%s) = %s, want %s", in, got, want)
		}
	}
}
