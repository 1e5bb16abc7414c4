package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
)

func TestRedactURL(t *testing.T) {
	for raw, want := range map[string]string{
		"nats://user:s3cret@nats.example:4222":                    "nats://user:xxxxx@nats.example:4222",
		"nats://t0ken@nats.example:4222":                          "nats://xxxxx@nats.example:4222",
		"https://dcos.example/service/marathon":                   "https://dcos.example/service/marathon",
		"https://hook.example/x?token=s3cret&mode=a#frag":         "https://hook.example/x?token=xxxxx&mode=xxxxx",
		"https://u:p%40ss@hook.example/x?s3cret":                  "https://u:xxxxx@hook.example/x?xxxxx",
		"ftp://mara:s3cret@127.0.0.1:8081":                        "ftp://mara:xxxxx@127.0.0.1:8081",
		"nats//natsuser:s3cret@127.0.0.1:4222":                    "xxxxx@127.0.0.1:4222",
		"cduser:s3cret@cd.example/events?key=s3cret":              "cduser:xxxxx@cd.example/events?key=xxxxx",
		"nats://u:pa/ss@host:4222":                                "nats://xxxxx@host:4222",
		"http://u:s3cret@host:bad":                                "http://u:xxxxx@host:bad",
		"user:s3cret@smtp.example:587":                            "user:xxxxx@smtp.example:587",
		"":                                                        "",
		"https://prod-00.westeurope.logic.azure.com/wf?sig=s3cre": "https://prod-00.westeurope.logic.azure.com/wf?sig=xxxxx",
	} {
		if got := RedactURL(raw); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestRedactSecretURL(t *testing.T) {
	for raw, want := range map[string]string{
		"https://hooks.slack.com/services/T000/B000/s3cret":                                "https://hooks.slack.com/xxxxx",
		"https://prod-00.westeurope.logic.azure.com:443/workflows/a/triggers?sv=1&sig=s3c": "https://prod-00.westeurope.logic.azure.com:443/xxxxx",
		"hooks.slack.com/services/T000/B000/s3cret":                                        "hooks.slack.com/xxxxx",
		"https://user:s3cret@hook.example":                                                 "https://hook.example",
		"https://hook.example/":                                                            "https://hook.example/",
	} {
		if got := RedactSecretURL(raw); got != want {
			t.Errorf("RedactSecretURL(%q) = %q, want %q", raw, got, want)
		}
	}
}

// net/http's errors carry the whole request URL; RedactError keeps the
// host and what went wrong, and what errors.Is finds.
func TestRedactErrorHidesTheRequestURL(t *testing.T) {
	_, err := http.Post("http://127.0.0.1:1/services/T0/B0/s3cret?sig=s3cret", "text/plain", nil)
	if err == nil {
		t.Fatal("a post to port 1 succeeded")
	}
	for _, e := range []error{RedactError(err), RedactError(fmt.Errorf("slack webhook: %w", err))} {
		if strings.Contains(e.Error(), "s3cret") || !strings.Contains(e.Error(), "http://127.0.0.1:1/xxxxx") {
			t.Errorf("redacted: %v", e)
		}
		if !errors.Is(e, syscall.ECONNREFUSED) {
			t.Errorf("%v is no longer ECONNREFUSED", e)
		}
	}
	var ue *url.Error
	if !errors.As(RedactError(err), &ue) || strings.Contains(ue.URL, "s3cret") {
		t.Errorf("url.Error after redaction: %+v", ue)
	}
	if e := RedactError(context.Canceled); e != context.Canceled {
		t.Errorf("an error without a URL changed: %v", e)
	}
}

func TestRedactorFindsEverySecret(t *testing.T) {
	cfg, err := Parse([]byte(`
nats: { url: "nats://natsuser:natspass1@127.0.0.1:4222", token: "" }
environments: [{ name: dev, registry: { host: r.example, username: u, password: "regpass1" } }]
ingest:
  sources:
    - { name: a, format: distribution, environment: dev, auth: { header: { name: X-Token, value: "hdr\"val1" } } }
clusters: [{ name: c, environment: dev, marathon: { url: "https://dcos.example/service/marathon?key=markey1", auth: { token: "martoken1" } } }]
notify:
  receivers:
    - { name: s, slack: { webhookUrl: "https://hooks.slack.com/services/T0/B0/slackpath1" } }
    - { name: w, webhook: { url: "https://hook.example/x?token=hookq1", secret: "hooksec1" } }
`), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Redactor()
	text := `nats://natsuser:natspass1@127.0.0.1:4222 natspass1 regpass1 hdr"val1 "hdr\"val1" ` +
		`https://dcos.example/service/marathon?key=markey1 martoken1 https://hooks.slack.com/services/T0/B0/slackpath1 ` +
		`https://hook.example/x?token=hookq1 hooksec1 ok`
	got := r.String(text)
	for _, s := range []string{"natspass1", "regpass1", "val1", "markey1", "martoken1", "slackpath1", "hookq1", "hooksec1"} {
		if strings.Contains(got, s) {
			t.Errorf("%q left in %q", s, got)
		}
	}
	for _, keep := range []string{"nats://natsuser:xxxxx@127.0.0.1:4222", "https://hooks.slack.com/xxxxx", "https://dcos.example/service/marathon?key=xxxxx", " ok"} {
		if !strings.Contains(got, keep) {
			t.Errorf("%q missing from %q", keep, got)
		}
	}

	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(r.Writer(&buf), nil))
	log.Info("posting", "url", "https://hooks.slack.com/services/T0/B0/slackpath1", "header", `hdr"val1`)
	if strings.Contains(buf.String(), "slackpath1") || strings.Contains(buf.String(), "val1") {
		t.Errorf("log line holds a secret: %s", buf.String())
	}
	if e := r.Error(errors.New("marathon token martoken1 refused")); e.Error() != "marathon token xxxxx refused" {
		t.Errorf("Error: %v", e)
	}
}
