// Package rules compiles the `promotions` part of Slipway's configuration into
// rules the promoter evaluates for every pushed image: does the rule apply to
// this repository and tag, and where does the copy go.
//
// A promotion in the configuration file:
//
//	promotions:
//	  - name: dev-to-tst
//	    from: dev
//	    to: tst
//	    repositories: ["apps/**"]      # globs; empty = every repository
//	    tags: { semver: ">=0.0.0-0" }  # or { regex: "..." }; neither = every tag
//	    targetRepository: "{{ .Repository }}"
//	    targetTag: "{{ .Tag }}"
//	    approval: { required: false }
//	    copyReferrers: true            # default true
//	    require: { referrers: ["application/vnd.dev.sigstore.bundle.v0.3+json"] }
//	    minAge: 10m
//
// # Repositories
//
// Each entry of repositories is a glob over the repository path (without the
// registry host), matched with github.com/bmatcuk/doublestar/v4: `*` matches
// within one path segment, `**` as a whole segment matches any number of
// segments, `?`, `[a-z]` and `{a,b}` work as in a shell. A repository matches
// the rule when it matches any entry; an empty list matches every repository.
//
//	apps/web     only apps/web
//	apps/*       apps/web, not apps/team/web
//	apps/**      apps/web, apps/team/web (and apps itself)
//	**/web       web, apps/web, apps/team/web
//	**           everything
//
// # Tags
//
// tags.semver is a github.com/Masterminds/semver/v3 constraint. The tag must be
// a full semantic version MAJOR.MINOR.PATCH[-PRERELEASE], optionally with a
// leading "v" ("v1.2.3"); "latest", "1.2" or "sha-abc123" never match a semver
// rule. Pre-releases only match a constraint that itself names a pre-release,
// as in Masterminds: ">=1.0.0" does not match 1.1.0-rc.1, ">=1.0.0-0" does,
// and ">=0.0.0-0" matches every version including pre-releases. "^1.2" is
// ">=1.2.0 <2.0.0", "~1.2" is ">=1.2.0 <1.3.0", "1.x", ranges ("1.0 - 2.0")
// and "||" work as documented by Masterminds.
//
// tags.regex is a Go (RE2) regular expression matched against the whole tag,
// as if written ^(?:…)$: "rc" matches only the tag "rc". Release candidates:
//
//	tags: { regex: '.*-rc\.[0-9]+' }
//
// Setting both semver and regex is an error; setting neither matches every
// tag.
//
// # Targets
//
// targetRepository and targetTag are Go text/template templates, by default
// [DefaultTargetRepository] and [DefaultTargetTag], executed with
// [TemplateData]:
//
//	.Repository   the source repository path, e.g. "apps/web"
//	.Tag          the source tag, e.g. "v1.4.0-rc.2"
//	.Version      when the tag is a semantic version: .Version.Major, .Minor,
//	              .Patch (numbers), .Prerelease ("rc.2"), .Metadata; nil
//	              otherwise, so .Version.Major fails for "latest"
//
// and these functions, which take the piped value as their last argument:
//
//	trimPrefix PREFIX S     strings.TrimPrefix
//	trimSuffix SUFFIX S     strings.TrimSuffix
//	replace OLD NEW S       strings.ReplaceAll
//	regexReplace RE REPL S  regexp ReplaceAllString; REPL may use $1 or ${1}
//	lower S, upper S        case
//	stripPrerelease S       "1.4.0-rc.2" → "1.4.0", "v1.4.0-rc.2" → "v1.4.0";
//	                        an error when S is not a semantic version
//
// Examples:
//
//	targetTag: "{{ .Tag | stripPrerelease }}"                  v1.4.0-rc.2 → v1.4.0
//	targetTag: "{{ regexReplace \"-rc\\\\.[0-9]+$\" \"\" .Tag }}"  1.4.0-rc.2 → 1.4.0
//	targetTag: "{{ .Version.Major }}.{{ .Version.Minor }}"     1.4.2 → 1.4
//	targetRepository: "prod/{{ .Repository | trimPrefix \"apps/\" }}"  apps/web → prod/web
//	targetRepository: "{{ replace \"/\" \"-\" .Repository }}"  apps/team/web → apps-team-web
//
// Inside a template, a backquoted string needs no escaping, which keeps
// regular expressions readable in YAML:
//
//	targetTag: '{{ regexReplace `-rc\.[0-9]+$` "" .Tag }}'
//
// (in a double-quoted YAML string every backslash is doubled once more). The
// configuration loader expands ${NAME} from the environment in every value,
// so refer to a named group in REPL as $name, never ${name}.
//
// Surrounding white space of a result is removed. The result must be a valid
// repository path (lowercase components of [a-z0-9] separated by ".", "_",
// "__" or "-", joined by "/", at most 255 characters) or tag
// ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}); otherwise [Rule.Target] fails with an
// error that names the template and what it produced. [Compile] parses both
// templates and executes them once with a sample semver tag, so misspelt
// fields, unknown functions and bad regexReplace patterns are configuration
// errors rather than failures at promotion time.
//
// # The rest
//
// copyReferrers defaults to true; require.referrers lists artifact types (media
// types) that must be attached to the source image; minAge is how old the push
// must be; approval is kept as configured, with a timeout of
// [DefaultApprovalTimeout] when approval is required and none is set.
//
// # Errors
//
// [Compile] reports every problem of one promotion at once, each naming the
// field ("tags.semver: …", "targetTag: template: …"); [CompileAll] and
// [Validate] prefix them with "promotions[i].". Each problem is a
// [*FieldError].
package rules
