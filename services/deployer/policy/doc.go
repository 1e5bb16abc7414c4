// Package policy decides whether a Marathon app should be redeployed with a
// newly pushed image, according to the app's slipway.policy label, and
// normalises image references so that an app's image and a pushed image can
// be matched however each was written.
//
// # Label values
//
// The slipway.policy label (contract) takes one of these values. Surrounding
// whitespace is ignored; keywords and the "glob:"/"regexp:" prefixes are
// lowercase only, so "All" is an error (with a hint) rather than a silent
// guess. Any other value is an error: an app whose label cannot be parsed must
// not be touched.
//
//	all            any higher semantic version, pre-releases included
//	major          any higher version (major, minor or patch bump)
//	minor          a higher version with the same major
//	patch          a higher version with the same major.minor
//	force          any other tag, or the same tag with a new digest
//	digest         the same tag with a new digest
//	glob:<pat>     a tag matching pat (path.Match: *, ?, [a-z], \ escapes)
//	regexp:<re>    a tag matching re as a whole (the expression is anchored)
//
// These follow Keel's policies, which users already know, with the
// differences noted below.
//
// # Rules shared by every policy
//
//   - A candidate identical to what runs (same tag and same digest, or same tag
//     and no digest on either side) is never accepted, so a redelivered event
//     cannot redeploy an app that already runs its image.
//   - A candidate with the same tag but no digest, while the running image has
//     one, is rejected: nothing shows that it is a different image.
//   - A candidate without a tag (a manifest pushed by digest alone: a platform
//     manifest of a multi-arch index, a signature or an attestation) is never
//     accepted. Pushes like these come with every tagged push and must not
//     replace the image an app runs.
//   - Candidate and current must have the same RepoKey. The caller looks apps up
//     by RepoKey, so a mismatch is a bug; it is rejected rather than trusted.
//
// # Semantic version policies: all, major, minor, patch
//
// Tags are read with github.com/Masterminds/semver/v3 (as Keel does), which
// accepts a leading "v" (v1.2.3), a missing patch (1.2 is 1.2.0) and
// pre-releases (1.2.3-rc.1). A tag needs at least MAJOR.MINOR: a bare number
// such as "42" or "20240101" is far more often a build number or a date than a
// version, and reading it as a major version would make it outrank every real
// release. Tags can't carry semver build metadata ('+' is not allowed in a
// tag), so precedence is plain semver precedence.
//
//   - A candidate is accepted only when its version is strictly higher than the
//     running one. "v1.2.3" and "1.2.3" are the same version and do not update
//     each other. Because "higher than what runs" is checked against the app,
//     an old push whose event arrives late (1.2.0 while 1.3.0 runs) is
//     rejected without the caller comparing push times.
//   - The same tag with a new digest is not an update for these policies; that
//     is what digest (or force) is for. Semver policies move between versions,
//     not between rebuilds of one version.
//   - If the running tag or the candidate tag is not a version (latest, main,
//     sha-abc123, a digest-only reference), the candidate is rejected and the
//     reason says which tag. Keel deploys anything over "latest"; Slipway
//     does not, because under a semver policy that would turn "latest" into
//     "force" by accident.
//   - all accepts pre-releases in both directions. major, minor and patch
//     accept a pre-release candidate only when the running version is itself a
//     pre-release: an app on 1.2.0 stays on releases, an app on 2.0.0-rc.1
//     follows 2.0.0-rc.2 and then 2.0.0. (Keel instead requires the pre-release
//     strings to be identical, which stops 2.0.0-rc.1 from reaching 2.0.0.)
//
// # Tag and digest policies: force, digest, glob, regexp
//
//   - force accepts any candidate whose tag differs from the running tag, or
//     whose tag is the same and whose digest differs.
//   - digest accepts the same tag with a different digest. An app pinned by tag
//     alone (running T, digest unknown) moves to T@newdigest: the registry
//     says T changed and the app cannot prove it already runs the new
//     content. Once the deployer pins the digest, the same push no longer
//     matches.
//   - glob:<pattern> accepts a candidate whose tag matches the pattern with
//     path.Match semantics (the whole tag must match) and that differs from
//     what runs in tag or digest. The running tag need not match.
//   - regexp:<re> is the same with a regular expression (RE2 syntax) that must
//     match the whole tag: "regexp:1\.2\..*" matches "1.2.7" but not
//     "11.2.7". Keel's match is unanchored, so there "regexp:rc" accepts any
//     tag containing "rc"; here it accepts only the tag "rc".
//
// None of these four can tell an old push from a new one, so ordering
// late or out-of-order events is the caller's job (it compares push times).
// An invalid glob or regular expression, an empty one, or one with leading or
// trailing whitespace (which no tag can contain) is a Parse error.
//
// # Image references
//
// ParseImage accepts the references Docker and Marathon accept and returns
// them in one normal form, so that the same image written differently
// compares equal (Image is comparable with ==):
//
//   - No registry host means Docker Hub, written "docker.io"; "index.docker.io"
//     and "registry-1.docker.io" are Docker Hub too.
//   - A Docker Hub repository of one path segment is an official image:
//     nginx is docker.io/library/nginx.
//   - The first path segment is a registry host when it contains '.' or ':' or
//     is "localhost" (Docker's rule); the host is lowercased, and an explicit
//     ":443" is dropped because it is the HTTPS default (r.example:443 is
//     r.example). Other ports are kept (127.0.0.1:5001). A ":443" is kept on a
//     dotless host such as "registry:443", because without the port
//     "registry" would be read back as part of a Docker Hub repository.
//   - No tag and no digest means the tag "latest". A reference with a digest
//     and no tag keeps an empty Tag; one with both keeps both.
//   - Repository path components must be lowercase ([a-z0-9] separated by
//     '.', '_', "__" or dashes), the whole name (host included, after
//     normalisation) at most 255 characters; a tag is [A-Za-z0-9_][A-Za-z0-9_.-]
//     and at most 128 characters; a digest is algorithm:lowercase-hex, with
//     exactly 64 hex digits for sha256 and 128 for sha512. Tags are case
//     sensitive and kept as written.
//   - Whitespace around the whole reference is ignored.
package policy
