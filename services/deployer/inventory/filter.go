package inventory

import (
	"fmt"
	"slices"
	"strings"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/match"
	"github.com/slipway-cd/slipway/services/deployer/policy"
)

// Filter selects records, as `slipway status` and the console's inventory
// search do; every set field must hold.
type Filter struct {
	Env, Cluster string
	// Image is part of the image as written, or a reference naming the
	// same image (ImageMatches).
	Image string
	// Repository is a glob ("apps/**"), with or without the registry host.
	Repository string
	// Digest is a digest or a prefix of one, with or without sha256:.
	Digest string
	// Node is a node named in full or by its short host name.
	Node string
	// Unmanaged keeps workloads Slipway does not manage; Drift those that
	// drifted from what Slipway put there, or left its management.
	Unmanaged, Drift bool

	repo *match.Images // Repository, compiled
}

// Compile checks the filter's repository glob; Keep needs it compiled.
func (f *Filter) Compile() error {
	if f.Repository == "" {
		f.repo = nil
		return nil
	}
	m, probs := match.Compile([]string{f.Repository}, config.TagFilter{})
	if len(probs) > 0 {
		return fmt.Errorf("repository: %w", probs[0].Err)
	}
	f.repo = m
	return nil
}

// Keep tells whether r passes the filter (compiled by Compile).
func (f *Filter) Keep(r Record) bool {
	switch {
	case f.Env != "" && r.Environment != f.Env,
		f.Cluster != "" && r.Cluster != f.Cluster,
		f.Unmanaged && r.Managed,
		f.Drift && r.Drift == "" && r.LeftManagement == "",
		f.Digest != "" && !RunsAny(r, func(x Running) bool { return DigestMatches(x.Digest, f.Digest) }),
		f.Image != "" && !RunsAny(r, func(x Running) bool { return ImageMatches(x.Image, f.Image) }),
		f.Node != "" && !slices.ContainsFunc(r.Nodes, func(n string) bool { return NodeMatches(n, f.Node) }),
		f.repo != nil && !RunsAny(r, func(x Running) bool {
			return f.repo.MatchesRepository(x.Repository) || f.repo.MatchesRepository(x.Registry+"/"+x.Repository)
		}):
		return false
	}
	return true
}

// Apply returns the records that pass the filter, in their order.
func (f *Filter) Apply(records []Record) []Record {
	return slices.DeleteFunc(slices.Clone(records), func(r Record) bool { return !f.Keep(r) })
}

// Running is an image a record shows at a workload, with its digest: the
// one Slipway put or found there and, once the workload drifted, the one
// it runs by hand instead. Filters and Where match either, so that an
// auditor finds every place a digest runs, and the expected one too.
type Running struct {
	Image, Digest, Registry, Repository string
}

// RunningOf lists the images r shows: its image, then what it runs by
// hand when it drifted.
func RunningOf(r Record) []Running {
	out := []Running{{Image: r.Image, Digest: r.Digest, Registry: r.Registry, Repository: r.Repository}}
	if r.Drift != "" {
		x := Running{Image: r.Drift, Digest: r.DriftDigest}
		if img, err := policy.ParseImage(r.Drift); err == nil {
			x.Registry, x.Repository = img.Registry, img.Repository
		}
		out = append(out, x)
	}
	return out
}

// RunsAny tells whether ok holds for an image the record shows.
func RunsAny(r Record, ok func(Running) bool) bool {
	return slices.ContainsFunc(RunningOf(r), ok)
}

// DigestMatches: want is a digest or a prefix of one, with or without its
// algorithm ("sha256:ab12", "ab12").
func DigestMatches(digest, want string) bool {
	if digest == "" || want == "" {
		return false
	}
	if strings.Contains(want, ":") {
		return strings.HasPrefix(digest, want)
	}
	_, hex, _ := strings.Cut(digest, ":")
	return strings.HasPrefix(hex, want)
}

// ImageMatches: want is part of the image as written, or a reference that
// names the same image once both are normalised (nginx is
// docker.io/library/nginx:latest); a reference without a tag or digest
// names every tag of the repository.
func ImageMatches(image, want string) bool {
	if strings.Contains(image, want) {
		return true
	}
	got, err1 := policy.ParseImage(image)
	ref, err2 := policy.ParseImage(want)
	if err1 != nil || err2 != nil || got.Registry != ref.Registry || got.Repository != ref.Repository {
		return false
	}
	bare := !strings.Contains(want[strings.LastIndex(want, "/")+1:], ":") && ref.Digest == ""
	return bare || ((ref.Tag == "" || ref.Tag == got.Tag) && (ref.Digest == "" || ref.Digest == got.Digest))
}

// NodeMatches: a node is named in full or by its short host name
// ("agent-1" for agent-1.example.local).
func NodeMatches(node, want string) bool {
	return node == want || strings.HasPrefix(node, want+".")
}

// Where returns the records that run what: a digest (or a prefix of one),
// or an image reference (its digest, or the digests its tag is recorded
// with, and the workloads that name it when their digest is unknown). A
// drifted workload is matched on what it runs by hand as well as on what
// Slipway expected there (see Running).
func Where(records []Record, what string) []Record {
	if LooksLikeDigest(what) {
		return slices.DeleteFunc(slices.Clone(records), func(r Record) bool {
			return !RunsAny(r, func(x Running) bool { return DigestMatches(x.Digest, what) })
		})
	}
	ref, err := policy.ParseImage(what)
	if err != nil {
		return nil
	}
	digests := []string{}
	if ref.Digest != "" {
		digests = append(digests, ref.Digest)
	} else {
		for _, r := range records {
			for _, x := range RunningOf(r) {
				if img, err := policy.ParseImage(x.Image); err == nil && sameTag(img, ref) && x.Digest != "" && !slices.Contains(digests, x.Digest) {
					digests = append(digests, x.Digest)
				}
			}
		}
	}
	return slices.DeleteFunc(slices.Clone(records), func(r Record) bool {
		return !RunsAny(r, func(x Running) bool {
			if x.Digest != "" {
				return slices.Contains(digests, x.Digest)
			}
			img, err := policy.ParseImage(x.Image)
			return err == nil && ref.Digest == "" && sameTag(img, ref)
		})
	})
}

func sameTag(a, b policy.Image) bool {
	return a.Registry == b.Registry && a.Repository == b.Repository && a.Tag == b.Tag
}

// LooksLikeDigest: algorithm:hex, or hex alone (at least 6 digits, so
// that a short image name is not taken for one).
func LooksLikeDigest(s string) bool {
	if alg, hex, ok := strings.Cut(s, ":"); ok {
		return (alg == "sha256" || alg == "sha512") && isHex(hex)
	}
	return len(s) >= 6 && isHex(s)
}

func isHex(s string) bool {
	return s != "" && strings.Trim(s, "0123456789abcdef") == ""
}

// ShortDigest shows a digest as docker does: its first 12 hex digits; ""
// for none.
func ShortDigest(d string) string {
	if _, hex, ok := strings.Cut(d, ":"); ok && len(hex) > 12 {
		return hex[:12]
	}
	return d
}
