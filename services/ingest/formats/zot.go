package formats

import (
	"slices"
	"strings"
)

// zot's events extension posts CloudEvents in binary mode (ce-* headers,
// the body is the data) with the CloudEvents SDK. Types are
// "zotregistry.<noun>.<verb>"; newer zot lets the operator replace the
// "zotregistry" prefix (events.typePrefix), so the suffix decides. The data
// of image events is {"name","reference","digest","mediaType","manifest",
// "actor":{"name"},"request":{…}}; reference is a tag or, for the children
// of a multi-arch push, the digest. zot does not retry.

func init() { register("zot", parseZot) }

// zotTypePrefix is the prefix of zot's event types unless the operator
// changed it; the generic cloudevents format knows zot by it.
const zotTypePrefix = "zotregistry"

const zotPushType = zotTypePrefix + ".image.updated"

// zotOtherSuffixes are the event kinds zot sends besides image.updated.
var zotOtherSuffixes = []string{".image.deleted", ".image.lint_failed", ".image.scanned", ".repository.created"}

// zotOtherType reports whether typ is one of zot's other event kinds under
// the default prefix.
func zotOtherType(typ string) bool {
	suffix, ok := strings.CutPrefix(typ, zotTypePrefix)
	return ok && slices.Contains(zotOtherSuffixes, suffix)
}

type zotData struct {
	Name      string `json:"name"`
	Reference string `json:"reference"`
	Digest    string `json:"digest"`
	MediaType string `json:"mediaType"`
	Manifest  string `json:"manifest"`
	Actor     *struct {
		Name string `json:"name"`
	} `json:"actor"`
}

func parseZot(d Delivery) (Result, error) {
	ev, err := readCloudEvent("zot", d)
	if err != nil {
		return Result{}, err
	}
	prefix, ok := strings.CutSuffix(ev.Type, ".image.updated")
	if !ok || prefix == "" {
		for _, s := range zotOtherSuffixes {
			if p, ok := strings.CutSuffix(ev.Type, s); ok && p != "" {
				return Result{Ignored: 1}, nil
			}
		}
		return Result{}, malformed("zot: event type %q is not a zot event", ev.Type)
	}
	p, err := zotPush("zot", ev)
	if err != nil {
		return Result{}, err
	}
	return Result{Pushes: []Push{p}}, nil
}

// zotPush maps the data of an image.updated event; the generic cloudevents
// format uses it too.
func zotPush(format string, ev cloudEvent) (Push, error) {
	var data zotData
	if err := decodeObject(format, ev.Type+" data", ev.Data, &data); err != nil {
		return Push{}, err
	}
	if data.Reference == "" {
		return Push{}, malformed("%s: data.reference is missing", format)
	}
	digest := data.Digest
	if digest == "" && validDigest(data.Reference) {
		digest = data.Reference
	}
	if err := checkImage(format, "data.name", data.Name, "data.reference", data.Reference, "data.digest", digest); err != nil {
		return Push{}, err
	}
	p := Push{
		Repository: data.Name,
		Tag:        data.Reference,
		Digest:     digest,
		MediaType:  data.MediaType,
		// manifest is the manifest exactly as pushed, so its length is
		// the manifest's size.
		Size:       int64(len(data.Manifest)),
		UpstreamID: ev.ID,
		PushedAt:   ev.Time,
	}
	if data.Actor != nil {
		p.Actor = data.Actor.Name
	}
	return p, nil
}
