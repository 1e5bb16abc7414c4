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
