package ingest_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/ingest"
)

func noEnv(string) (string, bool) { return "", false }

// Ingest checks its part of the file (the sources, their auth, the
// listener's TLS), each problem under its key path; the loader checks it
// only when ingest is among the sections it is given.
func TestConfigProblemsNameTheKeyPath(t *testing.T) {
	const dev = "environments: [{name: dev, registry: {host: r}}]\n"
	for _, tc := range []struct{ name, doc, want string }{
		{"source without auth", dev + "ingest: {sources: [{name: s, format: distribution, environment: dev}]}",
			"ingest.sources[0].auth: is required; use {none: true}"},
		{"two auths", dev + "ingest: {sources: [{name: s, format: acr, environment: dev, auth: {none: true, urlToken: x}}]}",
			"ingest.sources[0].auth: set exactly one"},
		{"unknown environment", "ingest: {sources: [{name: s, format: acr, environment: qa, auth: {none: true}}]}",
			`ingest.sources[0].environment: unknown environment "qa"`},
		{"bad hmac algorithm", dev + "ingest: {sources: [{name: s, format: ghcr, environment: dev, auth: {hmac: {header: X, secret: y, algorithm: md5}}}]}",
			`ingest.sources[0].auth.hmac.algorithm: "md5"`},
		{"source registry with scheme", dev + "ingest: {sources: [{name: s, format: acr, environment: dev, registry: 'https://r.example', auth: {none: true}}]}",
			`ingest.sources[0].registry: "https://r.example" must be a host[:port]`},
		{"repositoryPath outside artifactory", dev + "ingest: {sources: [{name: s, format: harbor, environment: dev, repositoryPath: true, auth: {none: true}}]}",
			"ingest.sources[0].repositoryPath: applies to the artifactory format only"},
		{"basic user with colon", dev + "ingest: {sources: [{name: s, format: distribution, environment: dev, auth: {basic: {username: 'ro:bot', password: pw}}}]}",
			"ingest.sources[0].auth.basic.username: must not contain ':'"},
		{"unknown format", dev + "ingest: {sources: [{name: s, format: dockerhubb, environment: dev, auth: {none: true}}]}",
			"ingest.sources[0].format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.doc), noEnv, ingest.New())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, tc.want)
			}
			if _, err := config.Parse([]byte(tc.doc), noEnv); err != nil && strings.Contains(err.Error(), "ingest.") {
				t.Errorf("without ingest's section the loader checked ingest's part: %v", err)
			}
		})
	}
}

// ingest.tls is loaded as the listener will load it, so a wrong path or a
// certificate that does not match its key fails the check, not the first
// registry's handshake.
func TestConfigTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "a")
	cert, key := filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key")
	crt, k := ca.issue(t, 1, false)
	writeFile(t, cert, crt, time.Now())
	writeFile(t, key, k, time.Now())
	otherCert := filepath.Join(dir, "b.crt")
	other, _ := newTestCA(t, "b").issue(t, 2, false)
	writeFile(t, otherCert, other, time.Now())
	notPEM := filepath.Join(dir, "ca.txt")
	writeFile(t, notPEM, []byte("not a certificate\n"), time.Now())
	doc := func(tls string) []byte { return []byte("ingest:\n  tls: " + tls + "\n") }

	if _, err := config.Parse(doc(`{certFile: "`+cert+`", keyFile: "`+key+`", clientCAFile: "`+otherCert+`"}`), noEnv, ingest.New()); err != nil {
		t.Fatalf("a valid pair and client CA: %v", err)
	}
	if _, err := config.Parse(doc(`{certFile: "`+cert+`", keyFile: "`+key+`", minVersion: "1.3"}`), noEnv, ingest.New()); err != nil {
		t.Errorf("minVersion 1.3: %v", err)
	}
	for _, tc := range []struct{ name, tls, want string }{
		{"no files", `{minVersion: "1.2"}`, "ingest.tls.certFile: is required"},
		{"no key", `{certFile: "` + cert + `"}`, "ingest.tls.keyFile: is required"},
		{"missing file", `{certFile: "` + cert + `", keyFile: "` + filepath.Join(dir, "nope.key") + `"}`, "ingest.tls.keyFile: stat "},
		{"not a pair", `{certFile: "` + otherCert + `", keyFile: "` + key + `"}`, "ingest.tls: certFile and keyFile do not load as a pair"},
		{"swapped", `{certFile: "` + key + `", keyFile: "` + cert + `"}`, "ingest.tls: certFile and keyFile do not load as a pair"},
		{"client CA not PEM", `{certFile: "` + cert + `", keyFile: "` + key + `", clientCAFile: "` + notPEM + `"}`, "ingest.tls.clientCAFile: " + notPEM + " holds no PEM certificate"},
		{"client CA missing", `{certFile: "` + cert + `", keyFile: "` + key + `", clientCAFile: "` + filepath.Join(dir, "nope.crt") + `"}`, "ingest.tls.clientCAFile: open "},
		{"old version", `{certFile: "` + cert + `", keyFile: "` + key + `", minVersion: "1.1"}`, `ingest.tls.minVersion: "1.1" must be 1.2 or 1.3`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse(doc(tc.tls), noEnv, ingest.New())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}
