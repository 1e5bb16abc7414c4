package schema

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/invopop/jsonschema"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
)

// The prose of events.md is a template so that every name, default and table
// in it comes from the code it describes.
//
//go:embed events.md.tmpl
var eventsTemplate string

type mdType struct {
	Type, Short, Subject, Summary, Env, CESubject string
	Data                                          mdData
}

type mdData struct {
	Name, File, Anchor, Description string
	Types                           []string
	Fields                          []mdField
}

type mdField struct {
	Name, Type, Description string
	Required                bool
}

func (g *generator) markdown() ([]byte, error) {
	var types []mdType
	datas := map[string]mdData{}
	for _, d := range g.data {
		md := mdData{Name: d.name, File: d.file, Anchor: strings.ToLower(d.name)}
		md.Description = g.schemas[d.name].Description
		for _, t := range d.types {
			md.Types = append(md.Types, t.Short())
		}
		md.Fields = fields(g.schemas[d.name])
		datas[d.name] = md
	}
	for _, t := range events.Types {
		n, err := noteFor(t.Type)
		if err != nil {
			return nil, err
		}
		types = append(types, mdType{
			Type: string(t.Type), Short: t.Type.Short(),
			Subject: events.SubjectPrefix + "." + t.Type.Short() + ".<environment>",
			Summary: n.summary, Env: n.env, CESubject: n.subject,
			Data: datas[g.byType[t.Type].name],
		})
	}
	var dataList []mdData
	for _, d := range g.data {
		dataList = append(dataList, datas[d.name])
	}
	var imageRef []mdField
	if g.imageRef != nil {
		imageRef = fields(g.imageRef)
	}

	pushed, ok := sampleFor(events.TypeImagePushed)
	if !ok {
		return nil, fmt.Errorf("no sample of %s", events.TypeImagePushed)
	}
	example, err := sampleJSON(pushed)
	if err != nil {
		return nil, err
	}
	pushedSubject, err := events.Subject(pushed.Type, pushed.Environment)
	if err != nil {
		return nil, err
	}
	goExample, err := g.goExample()
	if err != nil {
		return nil, err
	}
	deployments, err := deploymentExamples()
	if err != nil {
		return nil, err
	}

	tmpl, err := template.New("events.md").Funcs(template.FuncMap{"cell": cell}).Parse(eventsTemplate)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	err = tmpl.Execute(&buf, map[string]any{
		"Stream":            bus.DefaultStream,
		"Prefix":            events.SubjectPrefix,
		"MaxAge":            duration(bus.DefaultMaxAge),
		"DuplicateWindow":   duration(bus.DefaultDuplicateWindow),
		"MinDuplicate":      duration(bus.MinDuplicateWindow),
		"DLQStream":         bus.DeadLetterStreamName(bus.DefaultStream),
		"DLQPrefix":         bus.DeadLetterSubjectPrefix,
		"ContentType":       events.ContentType,
		"HeaderContentType": events.HeaderContentType,
		"HeaderMsgID":       events.HeaderMsgID,
		"HeaderTraceParent": events.HeaderTraceParent,
		"HeaderTraceState":  events.HeaderTraceState,
		"ExtCausation":      events.ExtCausation,
		"ExtTraceParent":    events.ExtTraceParent,
		"ExtTraceState":     events.ExtTraceState,
		"Envelope":          EnvelopeFile,
		"Types":             types,
		"Data":              dataList,
		"ImageRef":          imageRef,
		"Example":           string(example),
		"ExampleSubject":    pushedSubject,
		"ExampleID":         pushed.ID,
		"ExampleTrace":      sampleTraceParent(),
		"GoExample":         goExample,
		"Platforms":         platforms,
		"Deployments":       deployments,
		"MaxDeliver":        bus.DefaultMaxDeliver,
		"BackOff":           backOff(bus.DefaultBackOff),
		"DLQExample":        bus.DeadLetterSubject("deployer", events.SubjectPrefix+".image.promoted.prd"),
		"DLType":            string(events.TypeEventDeadLettered),
		"DLShort":           events.TypeEventDeadLettered.Short(),
		"DLAnchor":          strings.ToLower(g.byType[events.TypeEventDeadLettered].name),
		"DLUnknown":         bus.UnknownEnvironment,
		"DLQHeaders": []struct{ Name, Desc string }{
			{bus.HeaderDLQConsumer, "the consumer (durable name) that gave up"},
			{bus.HeaderDLQError, "its last error, on one line, cut to 1 KiB"},
			{bus.HeaderDLQStream, "the stream the event was read from"},
			{bus.HeaderDLQSequence, "the event's sequence number in that stream"},
			{bus.HeaderDLQDeliveries, "how many times it was delivered"},
			{bus.HeaderDLQSubject, "its original subject"},
			{bus.HeaderDLQTime, "when it was dead-lettered (RFC 3339, UTC)"},
		},
	})
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// platforms says what appId, deploymentId and revision are on each
// platform, for the table in events.md.
var platforms = []struct{ Name, AppID, DeploymentID, Revision string }{
	{events.PlatformMarathon, "the Marathon app id (`/payments/api`)", "Marathon's deployment id", "the app's version"},
	{events.PlatformDocker, "the container's name", "the new container's id", "the new container's id"},
	{events.PlatformSwarm, "the service's name", "the service version index the update made", "the service's version index"},
}

type mdDeployment struct{ Type, On, JSON string }

// deploymentExamples are the data of a deployment on Marathon and of the
// same deployment on a Docker host, side by side in events.md.
func deploymentExamples() ([]mdDeployment, error) {
	marathon, ok := sampleFor(events.TypeDeploymentStarted)
	if !ok {
		return nil, fmt.Errorf("no sample of %s", events.TypeDeploymentStarted)
	}
	var out []mdDeployment
	for _, spec := range append([]events.Spec{marathon}, otherPlatforms()[0]) {
		d := spec.Data.(events.Deployment)
		b, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return nil, err
		}
		on := map[string]string{
			events.PlatformMarathon: "a Marathon cluster", events.PlatformDocker: "a Docker host", events.PlatformSwarm: "a Swarm",
		}[d.Platform]
		out = append(out, mdDeployment{Type: spec.Type.Short(), On: on + " (`" + d.Cluster + "`)", JSON: string(b)})
	}
	return out, nil
}

// fields describes the properties of an object schema for a Markdown table.
func fields(s *jsonschema.Schema) []mdField {
	var out []mdField
	for p := s.Properties.Oldest(); p != nil; p = p.Next() {
		f := mdField{Name: p.Key, Description: p.Value.Description}
		for _, r := range s.Required {
			if r == p.Key {
				f.Required = true
			}
		}
		f.Type = typeName(p.Value)
		out = append(out, f)
	}
	return out
}

func typeName(s *jsonschema.Schema) string {
	switch {
	case s.Ref != "":
		name := s.Ref[strings.LastIndex(s.Ref, "/")+1:]
		return fmt.Sprintf("[%s](#%s)", name, strings.ToLower(name))
	case s.Type == "array" && s.Items != nil:
		return "array of " + typeName(s.Items)
	case s.Format != "":
		return s.Type + " (" + s.Format + ")"
	}
	return s.Type
}

// cell makes s safe inside a Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(s, "|", `\|`)
}

// duration renders a duration the way the configuration spells it: 720h, 10m.
func duration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// goExample returns the consumer example: its file between the package
// clause and the end marker.
func (g *generator) goExample() (string, error) {
	const file = "consumer_example_test.go"
	b, err := os.ReadFile(filepath.Join(g.srcDir, file))
	if err != nil {
		return "", err
	}
	_, rest, ok := strings.Cut(string(b), "\npackage schema_test\n")
	if !ok {
		return "", fmt.Errorf("%s: package clause not found", file)
	}
	example, _, ok := strings.Cut(rest, "\n// end of example\n")
	if !ok {
		return "", fmt.Errorf("%s: end marker not found", file)
	}
	return strings.TrimSpace(example), nil
}

// backOff renders the retry delays: "1s, 5s, 30s, then 2m each".
func backOff(ds []time.Duration) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, duration(d))
	}
	switch len(parts) {
	case 0:
		return "no delay"
	case 1:
		return parts[0] + " each"
	}
	return strings.Join(parts[:len(parts)-1], ", ") + ", then " + parts[len(parts)-1] + " each"
}
