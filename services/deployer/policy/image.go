package policy

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Image is a normalised image reference (see the package doc for the rules).
// Two references to the same image compare equal with ==.
type Image struct {
	Registry   string // host[:port], lowercase, "docker.io" for Docker Hub
	Repository string // path inside the registry, "library/nginx" for official images
	Tag        string // empty only when the reference names a digest alone
	Digest     string // algorithm:hex, empty when unknown
}

const (
	dockerHub  = "docker.io"
	defaultTag = "latest"
	// Distribution refuses longer names, so an image we accept can always be
	// pulled and pushed.
	maxNameLen = 255
	maxTagLen  = 128
)

// dockerHubHosts are the names under which Docker Hub appears in app
// definitions and registry notifications.
var dockerHubHosts = map[string]bool{
	"docker.io":            true,
	"index.docker.io":      true,
	"registry-1.docker.io": true,
}

var (
	pathComponentRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	tagRE           = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
	hostLabelRE     = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$`)
	ipv6RE          = regexp.MustCompile(`^\[[a-f0-9:]+\]$`)
	digestAlgRE     = regexp.MustCompile(`^[a-z0-9]+(?:[.+_-][a-z0-9]+)*$`)
	// At least 128 bits: anything shorter cannot identify content.
	digestHexRE = regexp.MustCompile(`^[a-f0-9]{32,}$`)
)

// digestHexLen pins the length for algorithms whose size is known, so that a
// truncated digest is caught at parse time rather than at pull time.
var digestHexLen = map[string]int{"sha256": 64, "sha512": 128}

// ParseImage parses and normalises an image reference such as
// "nginx", "127.0.0.1:5001/apps/web:1.2.3" or "r.example/app@sha256:…".
func ParseImage(s string) (Image, error) {
	img, err := parseImage(strings.TrimSpace(s))
	if err != nil {
		return Image{}, fmt.Errorf("image reference %q: %w", s, err)
	}
	return img, nil
}

func parseImage(s string) (Image, error) {
	if s == "" {
		return Image{}, errors.New("empty")
	}
	var img Image
	name := s
	if i := strings.IndexByte(name, '@'); i >= 0 {
		name, img.Digest = name[:i], name[i+1:]
		if err := validateDigest(img.Digest); err != nil {
			return Image{}, err
		}
	}
	// A ':' after the last '/' starts the tag; one before it belongs to the
	// registry's port.
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name, img.Tag = name[:i], name[i+1:]
		if err := validateTag(img.Tag); err != nil {
			return Image{}, err
		}
	}
	if img.Tag == "" && img.Digest == "" {
		img.Tag = defaultTag
	}

	img.Registry, img.Repository = dockerHub, name
	if i := strings.IndexByte(name, '/'); i >= 0 && looksLikeHost(name[:i]) {
		host, err := normaliseHost(name[:i])
		if err != nil {
			return Image{}, err
		}
		img.Registry, img.Repository = host, name[i+1:]
	}
	if img.Registry == dockerHub && !strings.Contains(img.Repository, "/") {
		img.Repository = "library/" + img.Repository
	}
	if err := validateRepository(img.Repository); err != nil {
		return Image{}, err
	}
	if n := len(img.RepoKey()); n > maxNameLen {
		return Image{}, fmt.Errorf("name %q is %d characters long, more than %d", img.RepoKey(), n, maxNameLen)
	}
	return img, nil
}

// looksLikeHost is Docker's rule for telling "host/repo" from "user/repo".
// Unlike Docker, an uppercase first segment is not taken for a host: it is
// reported as an uppercase repository, which is the likelier mistake.
func looksLikeHost(seg string) bool {
	return strings.ContainsAny(seg, ".:") || strings.EqualFold(seg, "localhost")
}

func normaliseHost(h string) (string, error) {
	host, port, hasPort := strings.ToLower(h), "", false
	if strings.HasPrefix(host, "[") {
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return "", fmt.Errorf("registry host %q: unterminated IPv6 address", h)
		}
		host, port = host[:end+1], host[end+1:]
		if port != "" && !strings.HasPrefix(port, ":") {
			return "", fmt.Errorf("registry host %q: unexpected %q after IPv6 address", h, port)
		}
		port, hasPort = strings.CutPrefix(port, ":")
		if !ipv6RE.MatchString(host) {
			return "", fmt.Errorf("registry host %q: invalid IPv6 address", h)
		}
	} else {
		host, port, hasPort = strings.Cut(host, ":")
		for _, label := range strings.Split(host, ".") {
			if !hostLabelRE.MatchString(label) {
				return "", fmt.Errorf("registry host %q: invalid host name", h)
			}
		}
	}
	if hasPort {
		if err := validatePort(port); err != nil {
			return "", fmt.Errorf("registry host %q: %w", h, err)
		}
	}
	// Dropping :443 must leave something still read as a host; "registry:443"
	// without its port would turn into a Docker Hub repository.
	if port == "443" && looksLikeHost(host) {
		port = ""
	}
	if port != "" {
		return host + ":" + port, nil
	}
	if dockerHubHosts[host] {
		return dockerHub, nil
	}
	return host, nil
}

func validatePort(p string) error {
	n, err := strconv.Atoi(p)
	// Leading zeros and signs would give one port several spellings.
	if err != nil || p[0] < '1' || p[0] > '9' || n > 65535 {
		return fmt.Errorf("invalid port %q", p)
	}
	return nil
}

func validateRepository(repo string) error {
	if repo == "" {
		return errors.New("empty repository")
	}
	if strings.ToLower(repo) != repo {
		return fmt.Errorf("repository %q must be lowercase", repo)
	}
	for _, c := range strings.Split(repo, "/") {
		if !pathComponentRE.MatchString(c) {
			return fmt.Errorf("repository %q: invalid path component %q", repo, c)
		}
	}
	return nil
}

func validateTag(tag string) error {
	if tag == "" {
		return errors.New("empty tag after ':'")
	}
	if len(tag) > maxTagLen {
		return fmt.Errorf("tag is %d characters long, more than %d", len(tag), maxTagLen)
	}
	if !tagRE.MatchString(tag) {
		return fmt.Errorf("invalid tag %q (letters, digits, '_', '.', '-'; not starting with '.' or '-')", tag)
	}
	return nil
}

func validateDigest(d string) error {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || !digestAlgRE.MatchString(alg) {
		return fmt.Errorf("invalid digest %q (want algorithm:hex)", d)
	}
	if !digestHexRE.MatchString(hex) {
		return fmt.Errorf("invalid digest %q: not lowercase hex of at least 32 digits", d)
	}
	if n, known := digestHexLen[alg]; known && len(hex) != n {
		return fmt.Errorf("invalid digest %q: %s needs %d hex digits, got %d", d, alg, n, len(hex))
	}
	return nil
}

// RepoKey is "registry/repository", the key under which apps are found by image.
func (i Image) RepoKey() string { return i.Registry + "/" + i.Repository }

// String is registry/repository[:tag][@digest], the normal form; ParseImage
// gives back the same Image.
func (i Image) String() string {
	s := i.RepoKey()
	if i.Tag != "" {
		s += ":" + i.Tag
	}
	if i.Digest != "" {
		s += "@" + i.Digest
	}
	return s
}

// WithTagDigest is the same repository at another tag and digest, as given:
// an empty tag or digest stays empty (no "latest" default), because callers
// use it to build the exact reference to deploy.
func (i Image) WithTagDigest(tag, digest string) Image {
	i.Tag, i.Digest = tag, digest
	return i
}
