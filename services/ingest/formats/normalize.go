package formats

import (
	"slices"
	"strings"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/plaintext"
)

// Manifest media types: pushes of anything else (blobs, whose notifications
// carry application/octet-stream or a layer type) are not image pushes.
var manifestTypes = map[string]bool{
	"application/vnd.docker.distribution.manifest.v2+json":      true,
	"application/vnd.docker.distribution.manifest.list.v2+json": true,
	"application/vnd.docker.distribution.manifest.v1+json":      true,
	"application/vnd.docker.distribution.manifest.v1+prettyjws": true,
	"application/vnd.oci.image.manifest.v1+json":                true,
	"application/vnd.oci.image.index.v1+json":                   true,
}

// IsManifestType reports whether a media type is that of a manifest or index.
// An empty type (formats that do not say) counts as a manifest.
func IsManifestType(mt string) bool {
	if mt == "" {
		return true
	}
	mt, _, _ = strings.Cut(mt, ";")
	return manifestTypes[strings.TrimSpace(mt)]
}

// IsAttachmentTag reports whether a tag names a signature, attestation, SBOM
// or referrers index rather than a release of the image: cosign's
// tag-schema attachments, sha256-<hex>.sig|.att|.sbom, and the OCI
// referrers tag-schema fallback, sha256-<hex> (also sha384, sha512; 32 to
// 128 hex digits).
func IsAttachmentTag(tag string) bool {
	rest, ok := strings.CutPrefix(tag, "sha")
	if !ok || len(rest) < 4 {
		return false
	}
	switch rest[:4] {
	case "256-", "384-", "512-":
	default:
		return false
	}
	hex := rest[4:]
	if i := strings.IndexByte(hex, '.'); i >= 0 {
		switch hex[i:] {
		case ".sig", ".att", ".sbom":
		default:
			return false
		}
		hex = hex[:i]
	}
	return len(hex) >= 32 && len(hex) <= 128 && isLowerHex(hex)
}

// isDigest reports whether a "tag" is really a digest (Harbor and others put
// the digest in the tag field of untagged children).
func isDigest(tag string) bool {
	alg, hex, ok := strings.Cut(tag, ":")
	return ok && (alg == "sha256" || alg == "sha384" || alg == "sha512") && hex != ""
}

// Normalize keeps the pushes that are releases of an image: tagged pushes of
// a manifest or index. Untagged children of multi-arch pushes, blob pushes
// and signature/attestation tags count as ignored. A result it would not
// change (every push a release, its actor clean: the common webhook) is
// returned as it is, sharing r.Pushes, not copied.
func Normalize(r Result) Result {
	if len(r.Pushes) > 0 && !slices.ContainsFunc(r.Pushes, changedByNormalize) {
		return r
	}
	out := Result{Ignored: r.Ignored}
	for _, p := range r.Pushes {
		if !isRelease(p) {
			out.Ignored++
			continue
		}
		p.Actor = CleanActor(p.Actor)
		out.Pushes = append(out.Pushes, p)
	}
	return out
}

// isRelease reports whether Normalize keeps a push.
func isRelease(p Push) bool {
	return p.Repository != "" && p.Tag != "" && !isDigest(p.Tag) && !IsAttachmentTag(p.Tag) && IsManifestType(p.MediaType)
}

func changedByNormalize(p Push) bool { return !isRelease(p) || CleanActor(p.Actor) != p.Actor }

// CleanActor makes a payload's actor safe to store and show: one line,
// control characters and bidirectional overrides gone, runs of spaces
// collapsed, at most events.MaxActorLength characters. The actor is
// whatever the sender wrote; it ends up in notifications, the console and
// terminals.
func CleanActor(a string) string {
	if !plainActor(a) {
		a = strings.Join(strings.Fields(plaintext.Line(a)), " ")
	}
	return plaintext.Bound(a, events.MaxActorLength)
}

// plainActor reports whether an actor is printable ASCII with single spaces
// between words, which the cleaning leaves as it is: what registries send,
// checked without the allocations of taking it apart.
func plainActor(a string) bool {
	for i := 0; i < len(a); i++ {
		switch c := a[i]; {
		case c == ' ':
			if i == 0 || i == len(a)-1 || a[i-1] == ' ' {
				return false
			}
		case c < '!' || c > '~':
			return false
		}
	}
	return true
}
