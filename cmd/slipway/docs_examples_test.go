package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/slipway-cd/slipway/pkg/testkit"
)

// TestDocsConfigExamplesPassConfigCheck runs every YAML example of Slipway's
// configuration in the documentation through `slipway config check`, so an
// operator who copies one gets a file that loads. An example that shows
// only some sections is checked on top of a small base that supplies the
// rest (environments, approvers); its own sections replace the base's.
// Variables get a plausible value, and files named by *File keys are
// created with one.
func TestDocsConfigExamplesPassConfigCheck(t *testing.T) {
	var pages []string
	for _, glob := range []string{"../../README.md", "../../docs/*.md", "../../docs/registries/*.md", "../../docs/platforms/*.md", "../../docs/guides/*.md", "../../deploy/*/README.md"} {
		m, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, m...)
	}
	checked := 0
	for _, page := range pages {
		raw, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, ex := range yamlBlocks(string(raw)) {
			ex.text = asConfig(ex.text)
			if !isSlipwayConfig(ex.text) {
				continue
			}
			checked++
			name := fmt.Sprintf("%s:%d", strings.TrimPrefix(page, "../../"), ex.line)
			t.Run(name, func(t *testing.T) {
				path := writeExample(t, ex.text)
				if out, err := execute(t, t.Context(), "config", "check", "--config", path); err != nil {
					t.Errorf("%s: config check: %v\n%s\nexample:\n%s", name, err, out, ex.text)
				}
			})
		}
	}
	// Not vacuous: the docs hold many examples (configuration.md alone a
	// dozen); a change in how they are fenced must not silently skip them.
	t.Logf("%d configuration examples checked", checked)
	if checked < 15 {
		t.Errorf("only %d configuration examples found in the docs", checked)
	}
}

type yamlBlock struct {
	line int
	text string
}

// yamlBlocks returns the ```yaml fenced blocks of a Markdown page.
func yamlBlocks(page string) []yamlBlock {
	var out []yamlBlock
	lines := strings.Split(page, "\n")
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "```yaml" {
			continue
		}
		start := i + 1
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
		}
		out = append(out, yamlBlock{line: start, text: strings.Join(lines[start:i], "\n")})
	}
	return out
}

// topLevelKeys are the sections of Slipway's file; a block whose keys are
// all among them is an example of it (others are registries', Compose's or
// Prometheus' files).
var topLevelKeys = []string{"nats", "environments", "ingest", "promotions", "approvers", "approvals", "clusters",
	"compliance", "console", "roles", "verification", "notify", "deployer", "ops", "log"}

// receiverKinds are the keys that make a list item a notify receiver.
var receiverKinds = []string{"slack", "msteams", "email", "webhook", "cdevents"}

// asConfig turns an example of one section's entries into a file: a list of
// webhook sources (items with a format) becomes ingest.sources, a list of
// receivers notify.receivers, a block of routes notify.routes. Anything
// else is returned as it is.
func asConfig(text string) string {
	var list []map[string]any
	if yaml.Unmarshal([]byte(text), &list) == nil && len(list) > 0 {
		switch {
		case list[0]["format"] != nil:
			return indentUnder("ingest:\n  sources:\n", text)
		case slices.ContainsFunc(receiverKinds, func(k string) bool { return list[0][k] != nil }):
			return indentUnder("notify:\n  receivers:\n", text)
		}
	}
	var m struct {
		Routes []struct{ Receivers []string }
	}
	if yaml.Unmarshal([]byte(text), &m) == nil && len(m.Routes) > 0 && isOnly(text, "routes") {
		// The receivers it names, as signed webhooks.
		var receivers strings.Builder
		seen := map[string]bool{}
		for _, r := range m.Routes {
			for _, name := range r.Receivers {
				if !seen[name] {
					seen[name] = true
					fmt.Fprintf(&receivers, "    - { name: %s, webhook: { url: \"https://hooks.example/%s\", secret: example } }\n", name, name)
				}
			}
		}
		return "notify:\n  receivers:\n" + receivers.String() + indentUnder("x:\n", text)[len("x:\n"):]
	}
	return text
}

// isOnly reports whether text is a mapping with the one key.
func isOnly(text, key string) bool {
	var m map[string]any
	return yaml.Unmarshal([]byte(text), &m) == nil && len(m) == 1 && m[key] != nil
}

// indentUnder puts text, dedented, under head at the indentation of
// head's last line plus two spaces.
func indentUnder(head, text string) string {
	heads := strings.Split(strings.TrimSuffix(head, "\n"), "\n")
	last := heads[len(heads)-1]
	indent := strings.Repeat(" ", len(last)-len(strings.TrimLeft(last, " "))+2)
	lines := strings.Split(text, "\n")
	common := -1
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			if n := len(l) - len(strings.TrimLeft(l, " ")); common < 0 || n < common {
				common = n
			}
		}
	}
	for i, l := range lines {
		if len(l) >= common && common >= 0 {
			l = l[common:]
		}
		lines[i] = indent + l
	}
	return head + strings.Join(lines, "\n")
}

func isSlipwayConfig(text string) bool {
	var m map[string]any
	if yaml.Unmarshal([]byte(text), &m) != nil || len(m) == 0 {
		return false
	}
	for k := range m {
		if !slices.Contains(topLevelKeys, k) {
			return false
		}
	}
	return true
}

// exampleBase supplies what a partial example leaves out.
const exampleBase = `
environments:
  - { name: ci, registry: { host: "ghcr.io" } }
  - { name: dev, registry: { host: "registry.dev.example:5000" } }
  - { name: int, registry: { host: "registry.int.example" } }
  - { name: tst, registry: { host: "registry.tst.example" } }
  - { name: prd, registry: { host: "registry.prd.example" } }
approvers:
  - { name: release-manager, token: rm-token-example }
  - { name: prod-release, token: prd-token-example }
`

var (
	envVar  = regexp.MustCompile(`\$\{(\w+)\}`)
	fileKey = regexp.MustCompile(`(\w+File):\s*"?([^\s,"}]+)`)
	// trustedRoot names a Sigstore trusted root (a file, though its key
	// does not end in File).
	trustedRootKey = regexp.MustCompile(`trustedRoot:\s*"?([^\s,"}]+)`)
	urlishes       = []string{"URL", "WEBHOOK", "HOOK_URL", "ENDPOINT"}
)

// writeExample writes the example over the base, with its variables set and
// its files created, and returns the file's path.
func writeExample(t *testing.T, text string) string {
	t.Helper()
	dir := t.TempDir()
	for _, m := range fileKey.FindAllStringSubmatch(text, -1) {
		f := filepath.Join(dir, "secrets", strings.TrimPrefix(filepath.Clean(m[2]), "/"))
		if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, exampleFile(t, m[1], m[2]), 0o600); err != nil {
			t.Fatal(err)
		}
		text = strings.ReplaceAll(text, m[2], f)
	}
	if trustedRootKey.MatchString(text) {
		// A trusted root of a test Sigstore (a CA and a timestamp
		// authority), where the example names the public instance's.
		root := testkit.NewSigstore(t).TrustedRootJSON(t)
		for _, m := range trustedRootKey.FindAllStringSubmatch(text, -1) {
			text = strings.ReplaceAll(text, m[1], root)
		}
	}
	for _, m := range envVar.FindAllStringSubmatch(text, -1) {
		v := "example-secret-value"
		for _, u := range urlishes {
			if strings.Contains(m[1], u) {
				v = "https://hooks.example/services/T000/B000/example"
			}
		}
		t.Setenv(m[1], v)
	}

	var base, ex map[string]any
	if err := yaml.Unmarshal([]byte(exampleBase), &base); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(text), &ex); err != nil {
		t.Fatal(err)
	}
	for k, v := range ex {
		base[k] = v
	}
	out, err := yaml.Marshal(base)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "slipway.yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var (
	examplePEMOnce                sync.Once
	exampleCert, exampleKey       []byte
	exampleECKey, exampleECPublic []byte
)

// exampleFile is a plausible content for the file a *File key names: a
// certificate, a private key, a URL or a secret; by its name, a public key
// (*.pub: cosign's, or Slipway's summary key) or an ECDSA private key
// (slipway.key: Slipway's summary key signs with ECDSA or Ed25519, not
// RSA), one pair for all.
func exampleFile(t *testing.T, key, path string) []byte {
	t.Helper()
	examplePEMOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "slipway.example"},
			DNSNames: []string{"slipway.example"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
		if err != nil {
			t.Fatal(err)
		}
		exampleCert = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		exampleKey = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
		ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv, err := x509.MarshalPKCS8PrivateKey(ec)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		exampleECKey = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv})
		exampleECPublic = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	})
	switch {
	case strings.HasSuffix(path, ".pub"):
		return exampleECPublic
	case key == "keyFile" && filepath.Base(path) == "slipway.key":
		return exampleECKey
	case strings.HasSuffix(key, "CAFile"), key == "caFile", key == "certFile":
		return exampleCert
	case key == "keyFile", key == "privateKeyFile":
		return exampleKey
	case strings.Contains(key, "Url"), strings.Contains(key, "URL"):
		return []byte("https://hooks.example/services/T000/B000/example")
	}
	return []byte("example-secret-from-a-file")
}
