package deployer_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/tools/marathon-emulator/emulator"
)

// A configuration built in Go, without config.Parse, leaves every deployer
// setting at its zero value: the deployer applies its own defaults where it
// reads its section (rollback and pinDigest on, its intervals), instead of
// dereferencing defaults only the loader used to set.
func TestConfigBuiltInGoDeploysWithTheDefaults(t *testing.T) {
	old := registry + "/apps/web:1.0.0"
	c := newCluster(t, "azure-int", emulator.Options{},
		appJSON("/dev/web", old, map[string]string{"slipway.policy": "all"}))
	e := newEnv(t, c)
	e.cfg = &config.Config{
		NATS:         e.cfg.NATS,
		Environments: []config.Environment{{Name: "dev", Registry: config.Registry{Host: registry}}},
		Clusters: []config.Cluster{{Name: "azure-int", Environment: "dev",
			Marathon: config.Marathon{URL: c.url, Auth: config.MarathonAuth{None: true}}}},
	}
	e.start(deployer.New())

	dig := digest("web-1.1.0")
	e.push("apps/web", "1.1.0", dig, time.Now())
	e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
	if got, want := c.image(t, "/dev/web"), registry+"/apps/web:1.1.0@"+dig; got != want {
		t.Errorf("/dev/web runs %s, want %s (pinned by digest, the default)", got, want)
	}
}

func noEnv(string) (string, bool) { return "", false }

// Every platform's cluster in the forms the docs show passes the check.
func TestConfigAcceptsEachPlatform(t *testing.T) {
	doc := `environments: [{name: dev, registry: {host: r}}]
clusters:
  - { name: m, environment: dev, marathon: { url: 'https://m.example', auth: { none: true } } }
  - { name: vch, environment: dev, type: docker, docker: { host: 'tcp://vch.example:2376', apiVersion: '1.25', grace: 5s } }
  - { name: local, environment: dev, type: docker, docker: { host: 'unix:///var/run/docker.sock' } }
  - { name: sw, environment: dev, type: swarm, docker: { host: 'unix:///var/run/docker.sock' } }
`
	if _, err := config.Parse([]byte(doc), noEnv, deployer.New()); err != nil {
		t.Fatal(err)
	}
}

// The deployer checks the clusters, and each cluster's platform its own
// block, each problem under its key path.
func TestConfigProblemsNameTheKeyPath(t *testing.T) {
	const dev = "environments: [{name: dev, registry: {host: r}}]\n"
	for _, tc := range []struct{ name, doc, want string }{
		{"basic user with colon", dev + "clusters: [{name: c, environment: dev, marathon: {url: 'https://m.example', auth: {basic: {username: 'ro:bot', password: pw}}}}]",
			"clusters[0].marathon.auth.basic.username: must not contain ':'"},
		{"two auths", dev + "clusters: [{name: c, environment: dev, marathon: {url: 'https://m.example', auth: {none: true, token: t}}}]",
			"clusters[0].marathon.auth: set one of none, basic, dcos, token"},
		{"not http", dev + "clusters: [{name: c, environment: dev, marathon: {url: 'ftp://m.example', auth: {none: true}}}]",
			`clusters[0].marathon.url: "ftp://m.example" must be http or https`},
		{"unknown environment", dev + "clusters: [{name: c, environment: prd, marathon: {url: 'https://m.example', auth: {none: true}}}]",
			`clusters[0].environment: unknown environment "prd"`},
		{"duplicate", dev + "clusters: [{name: c, environment: dev, marathon: {url: 'https://m.example'}}, {name: c, environment: dev, marathon: {url: 'https://n.example'}}]",
			`clusters[1].name: "c" is defined twice`},
		{"negative timeout", dev + "clusters: [{name: c, environment: dev, marathon: {url: 'https://m.example'}, deploy: {timeout: -1m}}]",
			"clusters[0].deploy.timeout: must not be negative"},
		{"concurrency", "deployer: {concurrency: -1}", "deployer.concurrency: must be positive"},
		{"unknown type", dev + "clusters: [{name: c, environment: dev, type: nomad}]",
			`clusters[0].type: "nomad" is not a platform this deployer drives (docker, marathon, swarm)`},
		{"docker block on a marathon cluster", dev + "clusters: [{name: c, environment: dev, marathon: {url: 'https://m.example', auth: {none: true}}, docker: {host: 'unix:///var/run/docker.sock'}}]",
			"clusters[0].docker: is for clusters of type docker or swarm"},
		{"marathon block on a docker cluster", dev + "clusters: [{name: c, environment: dev, type: docker, docker: {host: 'unix:///var/run/docker.sock'}, marathon: {url: 'https://m.example'}}]",
			"clusters[0].marathon: is for clusters of type marathon; this cluster's type is docker"},
		{"docker without host", dev + "clusters: [{name: c, environment: dev, type: docker}]",
			"clusters[0].docker.host: host is required"},
		{"swarm host not a socket or tcp", dev + "clusters: [{name: c, environment: dev, type: swarm, docker: {host: 'https://manager:2376'}}]",
			`clusters[0].docker.host: host "https://manager:2376" must start with unix:// or tcp://`},
		{"api older than VIC", dev + "clusters: [{name: c, environment: dev, type: docker, docker: {host: 'tcp://vch:2376', apiVersion: '1.19'}}]",
			`clusters[0].docker.apiVersion: "1.19" is older than 1.25`},
		{"api not a version", dev + "clusters: [{name: c, environment: dev, type: docker, docker: {host: 'tcp://vch:2376', apiVersion: 'v1.25'}}]",
			`clusters[0].docker.apiVersion: "v1.25" must look like 1.25`},
		{"tls on a socket", dev + "clusters: [{name: c, environment: dev, type: docker, docker: {host: 'unix:///var/run/docker.sock', tls: {caFile: /x/ca.pem}}}]",
			"clusters[0].docker.tls: is for tcp:// hosts"},
		{"missing TLS files", dev + "clusters: [{name: c, environment: dev, type: docker, docker: {host: 'tcp://vch:2376', tls: {caFile: /nonexistent/ca.pem}}}]",
			"clusters[0].docker.tls: caFile: open /nonexistent/ca.pem"},
		{"requireVerified without Slipway's key", dev + "clusters: [{name: c, environment: dev, marathon: {url: 'https://m.example', auth: {none: true}}, deploy: {requireVerified: true}}]",
			"clusters[0].deploy.requireVerified: needs Slipway's key to check summaries: set verification.summary.publicKeyFile (or verification.summary.keyFile)"},
		{"requireVerified with a missing key file", dev + "verification: {summary: {publicKeyFile: /nonexistent/slipway.pub}}\nclusters: [{name: c, environment: dev, marathon: {url: 'https://m.example', auth: {none: true}}, deploy: {requireVerified: true}}]",
			"verification.summary: publicKeyFile /nonexistent/slipway.pub: open /nonexistent/slipway.pub"},
		{"missing CA file", dev + "clusters: [{name: c, environment: dev, marathon: {url: 'https://m.example', caFile: /nonexistent/ca.pem}}]",
			"clusters[0].marathon: marathon c: caFile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.doc), noEnv, deployer.New())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, tc.want)
			}
			if _, err := config.Parse([]byte(tc.doc), noEnv); err != nil {
				t.Errorf("without the deployer's section the loader checked its part: %v", err)
			}
		})
	}
}

// The service-account JSON DC/OS creates names its uid; the key file is
// enough then (the client reads it and says so when neither has one).
func TestConfigDCOSUIDMayComeFromTheKeyFile(t *testing.T) {
	key := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(key, []byte(serviceAccountJSON(t, "slipway-sa")), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := "environments: [{name: dev, registry: {host: r}}]\nclusters: [{name: c, environment: dev, marathon: {url: 'https://m.example', auth: {dcos: {privateKeyFile: " + key + "}}}}]"
	if _, err := config.Parse([]byte(doc), noEnv, deployer.New()); err != nil {
		t.Errorf("dcos with only privateKeyFile: %v", err)
	}
}

// serviceAccountJSON is the secret `dcos security org service-accounts
// keypair` and `… secrets create-sa-secret` make: the uid and a new key.
func serviceAccountJSON(t *testing.T, uid string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	b, _ := json.Marshal(map[string]string{"uid": uid, "private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))})
	return string(b)
}
