package schema

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/invopop/jsonschema"
	"gopkg.in/yaml.v3"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
)

// AsyncAPI is built as a yaml.Node tree rather than from maps so that the
// document reads top-down (info, servers, channels, …) and its order is
// stable without sorting.

func (g *generator) asyncAPI() ([]byte, error) {
	streamDesc := fmt.Sprintf("Slipway publishes every event to the JetStream stream `%s` (subjects `%s.>`; "+
		"the name is configurable as `nats.stream.name`) as a CloudEvent 1.0 in structured JSON mode. "+
		"Read them with a durable JetStream consumer on that stream, filtered by subject, so that no event is missed "+
		"while a consumer is down. Event ids are deterministic and also sent as `%s`, so a consumer can drop redeliveries by id. "+
		"See events.md for the full description.", bus.DefaultStream, events.SubjectPrefix, events.HeaderMsgID)

	channels, operations, messages := ymap(), ymap(), ymap()
	for _, t := range events.Types {
		n, err := noteFor(t.Type)
		if err != nil {
			return nil, err
		}
		d := g.byType[t.Type]
		short := t.Type.Short()
		id := camel(short)
		msgRef := "#/channels/" + id + "/messages/" + id
		channels.add(id, ymap(
			"address", events.SubjectPrefix+"."+short+".{environment}",
			"title", short,
			"summary", n.summary,
			"description", fmt.Sprintf("Events of type `%s`. The last token is %s environment.", t.Type, n.env),
			"parameters", ymap("environment", ref("#/components/parameters/environment")),
			"messages", ymap(id, ref("#/components/messages/"+id)),
		))
		operations.add("receive"+upperFirst(id), ymap(
			"action", "receive",
			"channel", ref("#/channels/"+id),
			"summary", "Consume "+short+" events.",
			"messages", yseq(ref(msgRef)),
		))

		spec, ok := sampleFor(t.Type)
		if !ok {
			return nil, fmt.Errorf("no sample of %s", t.Type)
		}
		ex, err := example(id, spec)
		if err != nil {
			return nil, err
		}
		examples := yseq(ex)
		for _, v := range variants() {
			if v.Type != t.Type {
				continue
			}
			ex, err := example(fmt.Sprintf("%s-%d", id, len(examples.Content)+1), v)
			if err != nil {
				return nil, err
			}
			examples.Content = append(examples.Content, ynode(ex))
		}
		subject := "not fixed by the contract"
		if n.subject != "" {
			subject = "the " + n.subject
		}
		messages.add(id, ymap(
			"name", string(t.Type),
			"title", short,
			"summary", n.summary,
			"description", fmt.Sprintf("NATS subject `%s`; CloudEvents subject: %s; `data`: %s.", events.SubjectPrefix+"."+short+".<environment>", subject, d.name),
			"contentType", events.ContentType,
			"headers", ref("#/components/schemas/NatsHeaders"),
			"payload", ymap("allOf", yseq(
				ref("#/components/schemas/CloudEvent"),
				ymap(
					"type", "object",
					"properties", ymap(
						"type", ymap("const", string(t.Type)),
						"data", ref("#/components/schemas/"+d.name),
					),
				),
			)),
			"examples", examples,
		))
	}

	dlq := bus.DeadLetterStreamName(bus.DefaultStream)
	channels.add("deadLetters", ymap(
		"address", bus.DeadLetterSubjectPrefix+".{consumer}.{subject}",
		"title", "dead letters",
		"summary", "Events a consumer gave up on, in the stream "+dlq+".",
		"description", fmt.Sprintf("A consumer built on Slipway's bus package copies an event here, with its headers except the Nats-* ones, "+
			"when its handler failed permanently or on the last allowed delivery, or when the message was not a CloudEvent. "+
			"The stream is `%s` (the event stream's name with `_DLQ` appended).", dlq),
		"parameters", ymap(
			"consumer", ymap("description", "The durable name of the consumer that gave up.", "location", "$message.header#/"+bus.HeaderDLQConsumer),
			"subject", ymap("description", "The event's original subject (several tokens).", "location", "$message.header#/"+bus.HeaderDLQSubject),
		),
		"messages", ymap("deadLetter", ref("#/components/messages/deadLetter")),
	))
	operations.add("receiveDeadLetters", ymap(
		"action", "receive",
		"channel", ref("#/channels/deadLetters"),
		"summary", "Watch what consumers gave up on.",
		"messages", yseq(ref("#/channels/deadLetters/messages/deadLetter")),
	))
	messages.add("deadLetter", ymap(
		"name", "deadLetter",
		"title", "dead letter",
		"summary", "A copy of an event that a consumer gave up on.",
		"headers", ref("#/components/schemas/DeadLetterHeaders"),
		"payload", ymap("description", "The original message body: a Slipway CloudEvent (see CloudEvent), "+
			"or whatever the body was when it could not be decoded as one."),
	))

	schemas := ymap()
	envelope, err := schemaNode(g.envelope(false))
	if err != nil {
		return nil, err
	}
	schemas.add("CloudEvent", envelope)
	schemas.add("NatsHeaders", ymap(
		"description", "NATS headers of every Slipway message.",
		"type", "object",
		"properties", ymap(
			events.HeaderContentType, ymap("type", "string", "const", events.ContentType),
			events.HeaderMsgID, ymap("description", "The event id; JetStream drops a message whose id it has stored within the duplicate window.", "type", "string"),
			events.HeaderTraceParent, ymap("description", "W3C trace context, the same as the traceparent extension.", "type", "string"),
			events.HeaderTraceState, ymap("description", "W3C tracestate, the same as the tracestate extension.", "type", "string"),
		),
		"required", yseq(events.HeaderContentType, events.HeaderMsgID),
	))
	schemas.add("DeadLetterHeaders", ymap(
		"description", "NATS headers of a dead letter: those of the original message except the Nats-* ones, plus these.",
		"type", "object",
		"properties", ymap(
			bus.HeaderDLQConsumer, ymap("description", "The consumer (durable name) that gave up.", "type", "string"),
			bus.HeaderDLQError, ymap("description", "Its last error, on one line, cut to 1 KiB.", "type", "string"),
			bus.HeaderDLQStream, ymap("description", "The stream the event was read from.", "type", "string"),
			bus.HeaderDLQSequence, ymap("description", "The event's sequence number in that stream, in decimal.", "type", "string"),
			bus.HeaderDLQDeliveries, ymap("description", "How many times it was delivered, in decimal.", "type", "string"),
			bus.HeaderDLQSubject, ymap("description", "Its original subject.", "type", "string"),
			bus.HeaderDLQTime, ymap("description", "When it was dead-lettered (RFC 3339, UTC).", "type", "string"),
		),
		"required", yseq(bus.HeaderDLQConsumer, bus.HeaderDLQError, bus.HeaderDLQStream, bus.HeaderDLQSequence,
			bus.HeaderDLQDeliveries, bus.HeaderDLQSubject, bus.HeaderDLQTime),
	))
	if g.imageRef != nil {
		n, err := schemaNode(g.imageRef)
		if err != nil {
			return nil, err
		}
		schemas.add("ImageRef", n)
	}
	for _, d := range g.data {
		s := *g.schemas[d.name]
		s.Version, s.ID, s.Definitions = "", "", nil
		n, err := schemaNode(&s)
		if err != nil {
			return nil, err
		}
		schemas.add(d.name, n)
	}

	doc := ymap(
		"asyncapi", "3.0.0",
		"info", ymap(
			"title", "Slipway events",
			"version", "1.0.0",
			"description", streamDesc,
			"externalDocs", ymap("description", "Slipway events", "url", "https://github.com/slipway-cd/slipway/blob/main/docs/events.md"),
		),
		"defaultContentType", events.ContentType,
		"servers", ymap("nats", ymap(
			"host", "{host}",
			"protocol", "nats",
			"title", "Slipway's NATS server",
			"description", "The NATS server with JetStream that a Slipway installation uses (`nats.url` in its configuration; "+
				"with `nats.url` empty, Slipway runs an embedded server).",
			"variables", ymap("host", ymap("default", "127.0.0.1:4222", "description", "host:port of the NATS server.")),
		)),
		"channels", channels,
		"operations", operations,
		"components", ymap(
			"schemas", schemas,
			"parameters", ymap("environment", ymap(
				"description", "The environment (stage) the event belongs to, e.g. dev, tst, prd: letters, digits, '-' and '_'. Use `*` in a subscription for all.",
				"examples", yseq("dev", "tst", "prd"),
				"location", "$message.payload#/environment",
			)),
			"messages", messages,
		),
	)

	var buf bytes.Buffer
	buf.WriteString("# Generated by pkg/events/schema from the Go types in pkg/events; do not edit. Regenerate with `make generate`.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc.Node); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func sampleTraceParent() string {
	return "00-" + sampleTrace.TraceID().String() + "-" + sampleTrace.SpanID().String() + "-" + sampleTrace.TraceFlags().String()
}

// schemaNode converts a JSON Schema into YAML for components.schemas, where
// nested types are referenced as components rather than $defs.
func schemaNode(s *jsonschema.Schema) (*yaml.Node, error) {
	b, err := encodeJSON(s)
	if err != nil {
		return nil, err
	}
	n, err := jsonNode(b)
	if err != nil {
		return nil, err
	}
	rewriteRefs(n)
	return n, nil
}

func rewriteRefs(n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if v := n.Content[i+1]; n.Content[i].Value == "$ref" && v.Kind == yaml.ScalarNode {
				if name, ok := strings.CutPrefix(v.Value, "#/$defs/"); ok {
					v.Value = "#/components/schemas/" + name
				}
			}
		}
	}
	for _, c := range n.Content {
		rewriteRefs(c)
	}
}

// jsonNode parses JSON (which is YAML) into a node in block style, the style
// of the rest of the document.
// example is an AsyncAPI message example of spec's event.
func example(name string, spec events.Spec) (mapping, error) {
	ev, err := sampleJSON(spec)
	if err != nil {
		return mapping{}, err
	}
	payload, err := jsonNode(ev)
	if err != nil {
		return mapping{}, err
	}
	headers := ymap(events.HeaderContentType, events.ContentType, events.HeaderMsgID, spec.ID, events.HeaderTraceParent, sampleTraceParent())
	return ymap("name", name, "headers", headers, "payload", payload), nil
}

func jsonNode(b []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, fmt.Errorf("not a single JSON value")
	}
	n := doc.Content[0]
	var plain func(*yaml.Node)
	plain = func(n *yaml.Node) {
		n.Style = 0
		n.Line, n.Column = 0, 0
		for _, c := range n.Content {
			plain(c)
		}
	}
	plain(n)
	return n, nil
}

// mapping is a YAML mapping under construction.
type mapping struct{ *yaml.Node }

func ymap(kv ...any) mapping {
	m := mapping{&yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}}
	if len(kv)%2 != 0 {
		panic("ymap: odd number of arguments")
	}
	for i := 0; i < len(kv); i += 2 {
		m.add(kv[i].(string), kv[i+1])
	}
	return m
}

func (m mapping) add(key string, v any) {
	m.Content = append(m.Content, ynode(key), ynode(v))
}

func yseq(items ...any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, it := range items {
		n.Content = append(n.Content, ynode(it))
	}
	return n
}

func ref(to string) mapping { return ymap("$ref", to) }

func ynode(v any) *yaml.Node {
	switch v := v.(type) {
	case *yaml.Node:
		return v
	case mapping:
		return v.Node
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
	case int:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(v)}
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v)}
	}
	panic(fmt.Sprintf("ynode: unsupported %T", v))
}

// camel turns "image.pushed" into "imagePushed", an AsyncAPI component key.
func camel(short string) string {
	parts := strings.Split(short, ".")
	for i := 1; i < len(parts); i++ {
		parts[i] = upperFirst(parts[i])
	}
	return strings.Join(parts, "")
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
