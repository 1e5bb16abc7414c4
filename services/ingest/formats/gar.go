package formats

import (
	"encoding/base64"
	"encoding/json"
)

// Google Artifact Registry and Container Registry publish to the Pub/Sub
// topic "gcr"; a push subscription delivers the standard envelope
// {"message":{"data":<base64>,"messageId","publishTime","attributes"},
// "subscription"}. The data is {"action":"INSERT|DELETE","digest":<full
// reference>,"tag":<full reference>}, "tag" absent for a push by digest.

func init() { register("gar", parseGAR, retriesRefusals) }

type garEnvelope struct {
	Message *struct {
		Data json.RawMessage `json:"data"`
		// Pub/Sub writes every field in both spellings.
		MessageID    string `json:"messageId"`
		MessageID2   string `json:"message_id"`
		PublishTime  string `json:"publishTime"`
		PublishTime2 string `json:"publish_time"`
	} `json:"message"`
}

type garData struct {
	Action string `json:"action"`
	Digest string `json:"digest"`
	Tag    string `json:"tag"`
}

func parseGAR(d Delivery) (Result, error) {
	var env garEnvelope
	if err := decodeObject("gar", "body", d.Body, &env); err != nil {
		return Result{}, err
	}
	m := env.Message
	if m == nil {
		return Result{}, malformed("gar: message is missing (not a Pub/Sub push envelope)")
	}
	id := firstNonEmpty(m.MessageID, m.MessageID2)
	if id == "" {
		return Result{}, malformed("gar: message.messageId is missing")
	}
	var b64 string
	if len(m.Data) == 0 || json.Unmarshal(m.Data, &b64) != nil || b64 == "" {
		return Result{}, malformed("gar: message.data is missing")
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return Result{}, malformed("gar: message.data is not base64")
	}
	var data garData
	if err := decodeObject("gar", "message.data", raw, &data); err != nil {
		return Result{}, err
	}
	switch data.Action {
	case "":
		return Result{}, malformed("gar: message.data.action is missing")
	case "INSERT":
	default:
		// DELETE, of a tag or of an image.
		return Result{Ignored: 1}, nil
	}
	if data.Digest == "" && data.Tag == "" {
		return Result{}, malformed("gar: message.data has neither digest nor tag")
	}
	var p Push
	if data.Digest != "" {
		ref, ok := splitRef(data.Digest)
		if !ok || ref.Digest == "" || ref.Tag != "" || !validHost(ref.Host) {
			return Result{}, malformed("gar: message.data.digest %q is not a host/repository@digest reference", data.Digest)
		}
		p.Registry, p.Repository, p.Digest = ref.Host, ref.Repository, ref.Digest
	}
	if data.Tag != "" {
		ref, ok := splitRef(data.Tag)
		if !ok || ref.Tag == "" || ref.Digest != "" || !validHost(ref.Host) {
			return Result{}, malformed("gar: message.data.tag %q is not a host/repository:tag reference", data.Tag)
		}
		if p.Repository != "" && (ref.Host != p.Registry || ref.Repository != p.Repository) {
			return Result{}, malformed("gar: message.data.tag %q and digest %q name different images", data.Tag, data.Digest)
		}
		p.Registry, p.Repository, p.Tag = ref.Host, ref.Repository, ref.Tag
	}
	if err := checkImage("gar", "message.data repository", p.Repository, "message.data.tag", p.Tag, "message.data.digest", p.Digest); err != nil {
		return Result{}, err
	}
	at, err := optionalTime("gar", "message.publishTime", firstNonEmpty(m.PublishTime, m.PublishTime2))
	if err != nil {
		return Result{}, err
	}
	p.UpstreamID, p.PushedAt = id, at
	return Result{Pushes: []Push{p}}, nil
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
