package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

var contractEnv = env(map[string]string{
	"TOKEN": "t0k3n", "SECRET": "s3cr3t", "PW": "pw: with # yaml", "RM_TOKEN": "rm",
	"SLACK_WEBHOOK": "https://hooks.slack.example/services/T/B/X", "HOOK_SECRET": "h",
})

func TestContractExampleLoads(t *testing.T) {
	raw, err := os.ReadFile("testdata/contract.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(raw, contractEnv)
	if err != nil {
		t.Fatalf("the contract's example must load: %v", err)
	}
	if got := cfg.NATS.Stream.DuplicateWindow; got != 10*time.Minute {
		t.Errorf("duplicateWindow = %v", got)
	}
	if got := cfg.Ingest.Sources[1].Auth.Header.Value; got != "Bearer t0k3n" {
		t.Errorf("header value = %q, want expansion of ${TOKEN}", got)
	}
	// A secret with YAML syntax in it must not change the document.
	if got := cfg.Ingest.Sources[3].Auth.Basic.Password; got != "pw: with # yaml" {
		t.Errorf("basic password = %q", got)
	}
	if got := cfg.Promotions[1].Approval.Timeout; got != 72*time.Hour {
		t.Errorf("approval timeout = %v", got)
	}
	if cfg.Clusters[0].Deploy.Rollback == nil || !*cfg.Clusters[0].Deploy.Rollback {
		t.Error("deploy.rollback not read")
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := Parse([]byte("environments: [{name: dev, registry: {host: r.example}}]\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NATS.Stream.Name != "SLIPWAY" || cfg.NATS.Stream.Replicas != 1 || cfg.NATS.Stream.DuplicateWindow != 10*time.Minute {
		t.Errorf("stream defaults: %+v", cfg.NATS.Stream)
	}
	if cfg.NATS.Embedded.Listen != "127.0.0.1:4222" || cfg.NATS.Embedded.StoreDir != "./data/nats" {
		t.Errorf("embedded defaults: %+v", cfg.NATS.Embedded)
	}
	if cfg.Approvals.Retention != 30*24*time.Hour {
		t.Errorf("approvals.retention = %v, want 30 days", cfg.Approvals.Retention)
	}
}

func TestPlainVariableTakesItsType(t *testing.T) {
	cfg, err := Parse([]byte("nats:\n  stream:\n    replicas: ${R}\n"), env(map[string]string{"R": "3"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NATS.Stream.Replicas != 3 {
		t.Errorf("replicas = %d", cfg.NATS.Stream.Replicas)
	}
	cfg, err = Parse([]byte("nats:\n  url: nats://x:4222\n  user: u\n  password: ${P}\n"), env(map[string]string{"P": "0123"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NATS.Password != "0123" {
		t.Errorf("password = %q, want the digits as written", cfg.NATS.Password)
	}
}

func TestVariableDefault(t *testing.T) {
	cfg, err := Parse([]byte(`ingest: {listen: "${LISTEN:-:9090}"}`), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Ingest.Listen != ":9090" {
		t.Errorf("listen = %q", cfg.Ingest.Listen)
	}
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := `
environments: [{name: dev, registry: {host: r.example}}]
ingest:
  sources:
    - name: s
      format: distribution
      environment: dev
      auth: {hmac: {header: X-Sig, secretFile: "` + secret + `"}}
`
	cfg, err := Parse([]byte(doc), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Ingest.Sources[0].Auth.HMAC.Secret; got != "from-file" {
		t.Errorf("secret = %q", got)
	}

	both := strings.Replace(doc, `secretFile:`, `secret: x, secretFile:`, 1)
	if _, err := Parse([]byte(both), env(nil)); err == nil || !strings.Contains(err.Error(), "ingest.sources[0].auth.hmac: set either secret or secretFile") {
		t.Errorf("both set: %v", err)
	}
	missing := strings.Replace(doc, secret, filepath.Join(dir, "nope"), 1)
	if _, err := Parse([]byte(missing), env(nil)); err == nil || !strings.Contains(err.Error(), "ingest.sources[0].auth.hmac.secretFile") {
		t.Errorf("missing file: %v", err)
	}
}

func TestErrorsNameTheKeyPath(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"unset variable", `nats: {token: "${NOPE}"}`, "nats.token: environment variable NOPE is not set"},
		{"unknown key", "nats:\n  stream:\n    replica: 3\n", "nats.stream.replica: unknown key; did you mean `replicas`? (line 3)"},
		{"wrong type", "nats:\n  stream:\n    replicas: many\n", "nats.stream.replicas: expected a whole number (line 3)"},
		{"bad duration", "nats:\n  stream:\n    maxAge: forever\n", "nats.stream.maxAge"},
		{"replicas", "nats: {stream: {replicas: 2}}", "nats.stream: replicas must be 1 or 3"},
		{"short window", "nats: {stream: {duplicateWindow: 1m}}", "duplicateWindow must be at least 10m"},
		{"env name", "environments: [{name: 'd.v', registry: {host: r}}]", "environments[0].name"},
		{"negative approval retention", "approvals: {retention: -1h}", "approvals.retention: must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc), env(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("err = %v", err)
	}
}

// An approver who decides only with Slack's buttons needs no API token;
// one with neither could never decide.
func TestApproverNeedsTokenOrSlackUser(t *testing.T) {
	if _, err := Parse([]byte("approvers: [{name: rm, slackUserId: U0RM}]"), env(nil)); err != nil {
		t.Errorf("Slack-only approver: %v", err)
	}
	_, err := Parse([]byte("approvers: [{name: rm}]"), env(nil))
	if err == nil || !strings.Contains(err.Error(), "approvers[0].token: is required") {
		t.Errorf("approver without token or Slack user: %v", err)
	}
}

// HTTP Basic joins user and password with ":", so a user name holding one
// could never authenticate: every place Basic credentials are set refuses
// it at load, naming the key (the services' tests check their parts).
func TestBasicUserNameWithColonIsRefused(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"registry", "environments: [{name: dev, registry: {host: r, username: 'USER', password: pw}}]",
			"environments[0].registry.username: must not contain ':'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(strings.Replace(tc.doc, "USER", "ro:bot", 1)), env(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, tc.want)
			}
			if _, err := Parse([]byte(strings.Replace(tc.doc, "USER", "robot", 1)), env(nil)); err != nil {
				t.Fatalf("without the colon: %v", err)
			}
		})
	}
}

// nats.stream.maxBytes and deadLetterMaxBytes take sizes as people write
// them, reach the stream, and refuse what cannot work.
func TestStreamMaxBytes(t *testing.T) {
	cfg, err := Parse([]byte("nats: {stream: {maxBytes: 2GiB, deadLetterMaxBytes: 100MB}}"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if sc := cfg.StreamConfig(); sc.MaxBytes != 2<<30 || sc.DeadLetterMaxBytes != 100e6 {
		t.Errorf("stream config %+v", sc)
	}
	cfg, err = Parse([]byte("nats: {stream: {maxBytes: 1048576, deadLetterMaxBytes: -1}}"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if sc := cfg.StreamConfig(); sc.MaxBytes != 1<<20 || sc.DeadLetterMaxBytes != -1 {
		t.Errorf("stream config %+v", sc)
	}
	if cfg, err := Parse([]byte("nats: {}"), env(nil)); err != nil || cfg.StreamConfig().MaxBytes != 0 {
		t.Errorf("default: %v, %+v", err, cfg)
	}
	for doc, want := range map[string]string{
		"nats:\n  stream:\n    maxBytes: lots\n":      "nats.stream.maxBytes: expected a size like 512MiB, 1GiB or a number of bytes (line 3)",
		"nats:\n  stream:\n    maxBytes: 1.5GiB\n":    "nats.stream.maxBytes: expected a size like 512MiB, 1GiB or a number of bytes; use a whole number: 1.5GiB is 1536MiB (line 3)",
		"nats: {stream: {deadLetterMaxBytes: 64KiB}}": "nats.stream.deadLetterMaxBytes: 64KiB must be at least 1MiB",
		"nats: {stream: {maxBytes: -2}}":              "nats.stream: maxBytes must be positive, 0 for the default or -1 for no bound",
		"nats:\n  stream:\n    maxBytes: {size: 1}\n": "nats.stream.maxBytes: expected a size like 512MiB, 1GiB or a number of bytes, not a mapping (line 3)",
	} {
		if _, err := Parse([]byte(doc), env(nil)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", doc, err, want)
		}
	}
}

// Two environments on one registry must reach it the same way: Slipway
// keeps one set of credentials per registry host, and would use one
// environment's with the other's requests. Same credentials are fine; the
// message never shows a password.
func TestSharedRegistryNeedsTheSameCredentials(t *testing.T) {
	noVars := func(string) (string, bool) { return "", false }
	same := `environments:
  - { name: int, registry: { host: "acr.example", username: ci, password: s3cret } }
  - { name: prd, registry: { host: "acr.example", username: ci, password: s3cret } }
`
	if _, err := Parse([]byte(same), noVars); err != nil {
		t.Errorf("same credentials: %v", err)
	}
	other := strings.Replace(same, "username: ci, password: s3cret } }\n", "username: deployer, password: 0ther } }\n", 2)
	other = strings.Replace(other, "username: deployer, password: 0ther", "username: ci, password: s3cret", 1)
	_, err := Parse([]byte(other), noVars)
	if err == nil || !strings.Contains(err.Error(), `environments[1].registry: shares registry acr.example with environment "int"`) {
		t.Fatalf("error = %v, want environments[1].registry refused", err)
	}
	if strings.Contains(err.Error(), "0ther") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the message shows a password: %v", err)
	}
}
