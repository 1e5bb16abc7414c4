package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-cd/slipway/pkg/testkit"
)

// secretsConfig has a secret in every place a configuration can hold one.
// Each secret contains "s3cret"; %[1]s is the NATS address, %[2]s a file
// holding a password. The same file written wrongly (urlsBroken,
// typeBroken) makes config check name the places that hold them.
const secretsConfig = `
nats:
  url: "nats://natsuser:s3cret-nats-url@%[1]s"
  token: "s3cret-nats-token"
environments:
  - { name: dev, registry: { host: "127.0.0.1:5001", username: robot, password: "s3cret-registry" } }
  - { name: prd, registry: { host: "registry.prd.example", username: robot, passwordFile: %[2]q } }
ingest:
  sources:
    - { name: basic, format: distribution, environment: dev, auth: { basic: { username: registry, password: "${BASIC_PW}" } } }
    - { name: header, format: distribution, environment: dev, auth: { header: { name: Authorization, value: "Bearer s3cret-header" } } }
    - { name: hmac, format: ghcr, environment: dev, auth: { hmac: { header: X-Hub-Signature-256, prefix: "sha256=", secret: "s3cret-hmac" } } }
    - { name: token, format: acr, environment: dev, auth: { urlToken: "s3cret-urltoken" } }
approvers:
  - { name: rm, token: "s3cret-approver" }
clusters:
  - name: int
    environment: dev
    marathon: { url: "https://dcos.example/service/marathon", auth: { basic: { username: slipway, password: "s3cret-marathon-basic" } } }
  - name: prd
    environment: prd
    marathon: { url: "https://dcos-prd.example", auth: { token: "s3cret-marathon-token" } }
notify:
  receivers:
    - { name: slack-hook, slack: { webhookUrl: "https://hooks.slack.com/services/T0S3CRET/B0S3CRET/s3cret-slack-path" } }
    - { name: slack-bot, slack: { token: "xoxb-s3cret-slack-token", channel: "#deploys", signingSecret: "s3cret-signing" } }
    - name: teams
      msteams: { webhookUrl: "https://prod-00.westeurope.logic.azure.com:443/workflows/s3cret-flow/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%%2Ftriggers%%2Fmanual%%2Frun&sv=1.0&sig=s3cret-teams-sig" }
    - { name: hook, webhook: { url: "https://hooks.example/slipway?token=s3cret-hook-query", secret: "s3cret-hook" } }
    - { name: mail, email: { smtp: "smtp.example:587", username: slipway, password: "s3cret-smtp", from: slipway@example.com, to: [ops@example.com] } }
    - { name: cd, cdevents: { url: "https://cduser:s3cret-cdevents@cd.example/events?key=s3cret-cdevents-key" } }
`

// No secret of the configuration ever reaches the terminal: not when
// config check passes, not in its problems about the places that hold
// them, and not when a command cannot reach NATS.
func TestConfigCheckPrintsNoSecret(t *testing.T) {
	t.Setenv("BASIC_PW", "s3cret-pw") // short: yaml would quote it whole
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "registry-password")
	writeFile(t, pwFile, "s3cret-registry-file\n")
	valid := fmt.Sprintf(secretsConfig, testkit.FreeAddr(t), pwFile)

	urlsBroken := strings.NewReplacer(
		`"nats://natsuser:`, `"nats//natsuser:`,
		`url: "https://dcos.example/service/marathon"`, `url: "ftp://slipway:s3cret-marathon-url@dcos.example/service/marathon"`,
		`url: "https://dcos-prd.example"`, `url: "https://slipway:s3cret-marathon-url@dcos-prd.example"`,
		`"https://hooks.slack.com/`, `"hooks.slack.com/`,
		`"https://prod-00.`, `"prod-00.`,
		`"https://hooks.example/`, `"hooks.example/`,
		`"https://cduser:`, `"cduser:`,
		`smtp: "smtp.example:587"`, `smtp: "slipway:s3cret-smtp-host@smtp.example:587"`,
		`username: registry,`, `username: "registry:s3cret-in-user",`,
		`host: "127.0.0.1:5001", username: robot`, `host: "https://robot:s3cret-registry-host@127.0.0.1:5001", username: robot`,
		`{ name: header, format: distribution, environment: dev,`, `{ name: header, format: distribution, environment: dev, registry: "robot:s3cret-source-host@127.0.0.1:5001",`,
		`username: slipway, password: "s3cret-marathon-basic"`, `username: "slipway:s3cret-in-user", password: "s3cret-marathon-basic"`,
	).Replace(valid)
	typeBroken := strings.Replace(valid, `auth: { basic: { username: registry, password: "${BASIC_PW}" } }`, `auth: { basic: "${BASIC_PW}" }`, 1)

	for _, tc := range []struct {
		name, config string
		wantOK       bool
		want         []string // what the problems say instead
	}{
		{name: "valid", config: valid, wantOK: true},
		{name: "urls broken", config: urlsBroken, want: []string{
			`nats.url: "`,
			`clusters[0].marathon.url: "ftp://slipway:xxxxx@dcos.example/service/marathon" must be http or https`,
			`notify.receivers[0].slack.webhookUrl: "hooks.slack.com/xxxxx" is not an absolute URL`,
			`notify.receivers[2].msteams.webhookUrl: "prod-00.westeurope.logic.azure.com:443/xxxxx" is not an absolute URL`,
			`notify.receivers[3].webhook.url: "hooks.example/slipway?token=xxxxx" is not an absolute URL`,
			`notify.receivers[5].cdevents.url: "cduser:xxxxx@cd.example/events?key=xxxxx" is not an absolute URL`,
			`notify.receivers[4].email.smtp: "slipway:xxxxx@smtp.example:587" must be host:port`,
			`ingest.sources[0].auth.basic.username: must not contain ':'`,
			`clusters[0].marathon.auth.basic.username: must not contain ':'`,
			`environments[0].registry.host: "https://robot:xxxxx@127.0.0.1:5001" must be a host[:port]`,
			`ingest.sources[1].registry: "robot:xxxxx@127.0.0.1:5001" must be a host[:port]`,
		}},
		{name: "secret in the wrong place", config: typeBroken, want: []string{"ingest.sources[0].auth.basic: expected keys with values (a mapping), not text (line 10)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "slipway.yaml")
			writeFile(t, path, tc.config)
			out, err := execute(t, context.Background(), "config", "check", "--config", path)
			if err != nil {
				out += "slipway: " + err.Error()
			}
			if (err == nil) != tc.wantOK {
				t.Fatalf("config check: %v\n%s", err, out)
			}
			var missing []string
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					missing = append(missing, w)
				}
			}
			if len(missing) > 0 {
				t.Errorf("the output lacks\n  %s\noutput:\n%s", strings.Join(missing, "\n  "), out)
			}
			assertNoSecret(t, out)
		})
	}

	t.Run("nats unreachable", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "slipway.yaml")
		writeFile(t, path, valid)
		out, err := execute(t, context.Background(), "events", "tail", "--config", path)
		if err == nil {
			t.Fatalf("events tail reached NATS at a free port:\n%s", out)
		}
		out += "slipway: " + err.Error()
		if !strings.Contains(out, "nats://natsuser:xxxxx@127.0.0.1:") {
			t.Errorf("the error does not say which NATS it tried: %s", out)
		}
		assertNoSecret(t, out)
	})
}

func assertNoSecret(t *testing.T, out string) {
	t.Helper()
	if strings.Contains(strings.ToLower(out), "s3cret") {
		t.Errorf("a secret is printed:\n%s", out)
	}
}
