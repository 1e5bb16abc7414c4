package events

import (
	"slices"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	jsoniter "github.com/json-iterator/go"
)

// marshal encodes e in CloudEvents structured JSON mode: the bytes of
// e.MarshalJSON(), which writes through a pooled jsoniter stream into a
// growing bytes.Buffer (several copies and reallocations per event). For a
// 1.0 event with JSON data, the common case, marshal makes the same jsoniter
// calls in the same order on a stream sized once for the event, whose buffer
// becomes the body. Anything else goes to e.MarshalJSON.
func marshal(e Event) ([]byte, error) {
	ec, ok := e.Context.(*cloudevents.EventContextV1)
	if !ok || e.DataBase64 ||
		(ec.DataContentType != nil && *ec.DataContentType != cloudevents.ApplicationJSON) {
		return e.MarshalJSON()
	}
	source := ec.Source.String()
	var dataSchema string
	if ec.DataSchema != nil {
		dataSchema = ec.DataSchema.String()
	}
	// Attribute names, quotes, separators and a time come to less than 200
	// bytes; a string that needs escaping may still grow the buffer once.
	size := 200 + len(ec.ID) + len(source) + len(ec.Type) + len(dataSchema) + len(e.DataEncoded)
	if ec.Subject != nil {
		size += len(*ec.Subject)
	}
	var names [8]string
	exts := names[:0]
	for name, v := range ec.Extensions {
		exts = append(exts, name)
		size += len(name) + 6
		if s, ok := v.(string); ok {
			size += len(s)
		}
	}
	slices.Sort(exts)

	s := jsoniter.NewStream(jsoniter.ConfigFastest, nil, size)
	s.WriteObjectStart()
	s.WriteObjectField("specversion")
	s.WriteString(cloudevents.CloudEventsVersionV1)
	s.WriteMore()
	s.WriteObjectField("id")
	s.WriteString(ec.ID)
	s.WriteMore()
	s.WriteObjectField("source")
	s.WriteString(source)
	s.WriteMore()
	s.WriteObjectField("type")
	s.WriteString(ec.Type)
	if ec.Subject != nil {
		s.WriteMore()
		s.WriteObjectField("subject")
		s.WriteString(*ec.Subject)
	}
	if ec.DataContentType != nil {
		s.WriteMore()
		s.WriteObjectField("datacontenttype")
		s.WriteString(*ec.DataContentType)
	}
	if ec.DataSchema != nil {
		s.WriteMore()
		s.WriteObjectField("dataschema")
		s.WriteString(dataSchema)
	}
	if ec.Time != nil {
		s.WriteMore()
		s.WriteObjectField("time")
		// types.Timestamp's String, appended in place: RFC 3339 has nothing
		// to escape.
		b := append(s.Buffer(), '"')
		b = ec.Time.UTC().AppendFormat(b, time.RFC3339Nano)
		s.SetBuffer(append(b, '"'))
	}
	if e.DataEncoded != nil {
		s.WriteMore()
		s.WriteObjectField("data")
		_, _ = s.Write(e.DataEncoded) // no writer: an append
	}
	for _, name := range exts {
		s.WriteMore()
		s.WriteObjectField(name)
		if v, ok := ec.Extensions[name].(string); ok {
			s.WriteString(v)
		} else {
			s.WriteVal(ec.Extensions[name])
		}
	}
	s.WriteObjectEnd()
	if s.Error != nil {
		// The SDK's own encoder words the error.
		return e.MarshalJSON()
	}
	return s.Buffer(), nil
}
