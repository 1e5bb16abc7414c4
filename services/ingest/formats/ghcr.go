package formats

import (
	"encoding/json"
	"strings"
	"time"
)

// GitHub Packages (ghcr.io) sends "package" webhooks (older hooks:
// "registry_package", whose body names the object registry_package) for
// every package ecosystem; only container versions are images.

func init() { register("ghcr", parseGHCR) }

type ghcrHook struct {
	Action          string          `json:"action"`
	Package         json.RawMessage `json:"package"`
	RegistryPackage json.RawMessage `json:"registry_package"`
	Sender          *struct {
		Login string `json:"login"`
	} `json:"sender"`
}

type ghcrPackage struct {
	Name        string `json:"name"`
	Ecosystem   string `json:"ecosystem"`
	PackageType string `json:"package_type"`
	Owner       *struct {
		Login string `json:"login"`
	} `json:"owner"`
	PackageVersion *struct {
		Version           string `json:"version"`
		PackageURL        string `json:"package_url"`
		CreatedAt         string `json:"created_at"`
		UpdatedAt         string `json:"updated_at"`
		ContainerMetadata *struct {
			Tag *struct {
				Name   string `json:"name"`
				Digest string `json:"digest"`
			} `json:"tag"`
			Manifest *struct {
				Digest    string `json:"digest"`
				MediaType string `json:"media_type"`
				Size      int64  `json:"size"`
			} `json:"manifest"`
		} `json:"container_metadata"`
	} `json:"package_version"`
}

func parseGHCR(d Delivery) (Result, error) {
	event := d.Header.Get("X-GitHub-Event")
	switch event {
	case "":
		return Result{}, malformed("ghcr: X-GitHub-Event header is missing")
	case "package", "registry_package":
	default:
		// ping and every other event a repository or org hook may send.
		return Result{Ignored: 1}, nil
	}
	var hook ghcrHook
	if err := decodeObject("ghcr", "body", d.Body, &hook); err != nil {
		return Result{}, err
	}
	raw := hook.Package
	if event == "registry_package" {
		raw = hook.RegistryPackage
	}
	if !jsonObject(raw) {
		return Result{}, malformed("ghcr: %s is missing", event)
	}
	var pkg ghcrPackage
	if err := decodeJSON("ghcr", event, raw, &pkg); err != nil {
		return Result{}, err
	}
	if hook.Action == "" {
		return Result{}, malformed("ghcr: action is missing")
	}
	if hook.Action != "published" && hook.Action != "updated" {
		return Result{Ignored: 1}, nil
	}
	if !isContainerPackage(pkg) {
		return Result{Ignored: 1}, nil
	}
	v := pkg.PackageVersion
	if v == nil {
		return Result{}, malformed("ghcr: %s.package_version is missing", event)
	}

	p := Push{Registry: "ghcr.io"}
	if v.PackageURL != "" {
		ref, ok := splitRef(v.PackageURL)
		if !ok || !validHost(ref.Host) {
			return Result{}, malformed("ghcr: %s.package_version.package_url %q is not an image reference", event, v.PackageURL)
		}
		// GHCR names are case-insensitive but clients only accept
		// lowercase; GitHub echoes the owner's login as spelled.
		p.Registry = strings.ToLower(ref.Host)
		p.Repository = strings.ToLower(ref.Repository)
		p.Tag, p.Digest = ref.Tag, ref.Digest
	} else if pkg.Owner != nil && pkg.Owner.Login != "" && pkg.Name != "" {
		p.Repository = strings.ToLower(pkg.Owner.Login + "/" + pkg.Name)
	}
	if cm := v.ContainerMetadata; cm != nil {
		if cm.Tag != nil && cm.Tag.Name != "" {
			p.Tag = cm.Tag.Name
		}
		if cm.Manifest != nil {
			if cm.Manifest.Digest != "" {
				p.Digest = cm.Manifest.Digest
			}
			p.MediaType, p.Size = cm.Manifest.MediaType, cm.Manifest.Size
		}
		if p.Digest == "" && cm.Tag != nil {
			p.Digest = cm.Tag.Digest
		}
	}
	if p.Digest == "" && strings.Contains(v.Version, ":") {
		// A container version's name is its manifest digest.
		p.Digest = v.Version
	}
	if err := checkImage("ghcr", event+".package_version.package_url", p.Repository,
		event+".package_version.container_metadata.tag.name", p.Tag,
		event+".package_version.container_metadata.manifest.digest", p.Digest); err != nil {
		return Result{}, err
	}
	if p.Size < 0 {
		return Result{}, malformed("ghcr: %s.package_version.container_metadata.manifest.size is negative", event)
	}
	if hook.Sender != nil {
		p.Actor = hook.Sender.Login
	}
	at, err := ghcrTime(event, hook.Action, v.CreatedAt, v.UpdatedAt)
	if err != nil {
		return Result{}, err
	}
	p.PushedAt = at
	p.UpstreamID = d.Header.Get("X-GitHub-Delivery")
	if p.UpstreamID == "" {
		p.UpstreamID = Composite("ghcr", p.Registry, p.Repository, p.Tag, p.Digest, hook.Action, at.Format(time.RFC3339Nano))
	}
	return Result{Pushes: []Push{p}}, nil
}

// isContainerPackage: current payloads say package_type CONTAINER; older
// ones (and GitHub's own examples) say docker, sometimes only in ecosystem.
func isContainerPackage(p ghcrPackage) bool {
	for _, s := range []string{p.PackageType, p.Ecosystem} {
		if strings.EqualFold(s, "container") || strings.EqualFold(s, "docker") {
			return true
		}
	}
	return false
}

// ghcrTime picks the version's own time. GitHub sends the zero time
// "0001-01-01T00:00:00Z" when it has none, which is no push time.
func ghcrTime(event, action, created, updated string) (time.Time, error) {
	fields := []struct{ name, value string }{{"created_at", created}, {"updated_at", updated}}
	if action == "updated" {
		fields[0], fields[1] = fields[1], fields[0]
	}
	for _, f := range fields {
		t, err := optionalTime("ghcr", event+".package_version."+f.name, f.value)
		if err != nil {
			return time.Time{}, err
		}
		if t.Year() > 1 {
			return t, nil
		}
	}
	return time.Time{}, nil
}
