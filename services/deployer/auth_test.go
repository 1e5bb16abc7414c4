package deployer_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/deployer"
	"github.com/slipway-cd/slipway/tools/marathon-emulator/emulator"
)

// TestBasicAuth: open-source Marathon with HTTP Basic (marathon-api.md,
// "Authentication").
func TestBasicAuth(t *testing.T) {
	c := newCluster(t, "onprem", emulator.Options{BasicAuth: &[2]string{"slipway", "s3cret"}},
		appJSON("/dev/web", registry+"/apps/web:1.0.0", map[string]string{"slipway.policy": "all"}))
	c.auth = `{ basic: { username: slipway, password: s3cret } }`
	e := newEnv(t, c)
	e.start(deployer.New())
	e.push("apps/web", "1.1.0", digest("1.1.0"), time.Now())
	e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
}

// TestDCOSServiceAccount: DC/OS login with a service account's RS256 token,
// then `Authorization: token=…` on every call (marathon-api.md,
// "Authentication"). The emulator issues tokens that expire after a
// second, so the deployer has to renew them while it works.
func TestDCOSServiceAccount(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "sa.pem")
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, "vsphere-prd", emulator.Options{DCOSPublicKey: &key.PublicKey, DCOSUID: "slipway", TokenTTL: time.Second},
		appJSON("/prd/web", registry+"/apps/web:1.0.0", map[string]string{"slipway.policy": "all"}))
	c.auth = `{ dcos: { uid: slipway, privateKeyFile: "` + keyFile + `" } }`
	e := newEnv(t, c)
	e.start(deployer.New())
	e.push("apps/web", "1.1.0", digest("1.1.0"), time.Now())
	e.rec.Wait(t, events.TypeDeploymentSucceeded, 1)
	// A second deployment after the first token expired.
	testkit.WaitFor(t, "a token renewal", func() bool { return logins(c) >= 2 })
	e.push("apps/web", "1.2.0", digest("1.2.0"), time.Now())
	e.rec.Wait(t, events.TypeDeploymentSucceeded, 2)
}

func logins(c *marathonCluster) int {
	n := 0
	for _, r := range c.emu.Requests() {
		if r.Method == "POST" && r.Path == "/acs/api/v1/auth/login" && r.Status == 200 {
			n++
		}
	}
	return n
}
