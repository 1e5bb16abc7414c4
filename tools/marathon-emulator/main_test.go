package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "pub.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}

	cfg, err := parseFlags([]string{
		"--listen", "127.0.0.1:0", "--apps", "apps.json", "--deploy-duration", "50ms",
		"--unhealthy-images", ":broken$", "--basic-auth", "ops:pa:ss", "--dcos-public-key", keyFile,
		"--dcos-uid", "slipway", "--token-ttl", "1h", "--heartbeat", "3s",
	}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.options
	if cfg.listen != "127.0.0.1:0" || cfg.apps != "apps.json" || o.DeployDuration != 50*time.Millisecond ||
		!o.UnhealthyImages.MatchString("x:broken") || *o.BasicAuth != [2]string{"ops", "pa:ss"} ||
		!o.DCOSPublicKey.Equal(&key.PublicKey) || o.DCOSUID != "slipway" || o.TokenTTL != time.Hour || o.Heartbeat != 3*time.Second {
		t.Errorf("parsed %+v / %+v", cfg, o)
	}

	for _, bad := range [][]string{
		{"--unhealthy-images", "("},
		{"--basic-auth", "nocolon"},
		{"--dcos-public-key", filepath.Join(t.TempDir(), "missing.pem")},
		{"--deploy-duration", "soon"},
		{"stray"},
	} {
		if _, err := parseFlags(bad, io.Discard, io.Discard); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

// --apps FILE seeds the emulator before it serves.
func TestRunLoadsApps(t *testing.T) {
	apps := filepath.Join(t.TempDir(), "apps.json")
	if err := os.WriteFile(apps, []byte(`{"apps":[{"id":"/dev/web","container":{"docker":{"image":"nginx:1.25"}},"instances":2}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--apps", apps}, io.Discard, io.Discard, func(a string) { addrc <- a })
	}()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}

	resp, err := http.Get("http://" + addr + "/v2/apps/dev/web")
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		App struct {
			ID           string `json:"id"`
			TasksRunning int    `json:"tasksRunning"`
		} `json:"app"`
	}
	err = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if err != nil || body.App.ID != "/dev/web" || body.App.TasksRunning != 2 {
		t.Errorf("app %+v, %v", body, err)
	}
	resp, err = http.Get("http://" + addr + "/v2/leader")
	if err != nil {
		t.Fatal(err)
	}
	var leader map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&leader)
	resp.Body.Close()
	if leader["leader"] != addr {
		t.Errorf("leader %v, want the listen address %s", leader, addr)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop")
	}

	bad := filepath.Join(t.TempDir(), "bad.json")
	_ = os.WriteFile(bad, []byte(`[{"id":"/x"}]`), 0o600)
	if err := run(context.Background(), []string{"--listen", "127.0.0.1:0", "--apps", bad}, io.Discard, io.Discard, nil); err == nil {
		t.Error("invalid --apps file accepted")
	}
}

// TestCommandLineConventions: --help prints the usage line, what the
// emulator does and its flags on stdout and exits 0; a bad flag, flag
// value or argument exits 2 with a hint; a failure to serve exits 1.
func TestCommandLineConventions(t *testing.T) {
	exec := func(args ...string) (stdout, stderr string, code int) {
		var out, errOut strings.Builder
		code = exitCode(run(context.Background(), args, &out, &errOut, nil), &errOut)
		return out.String(), errOut.String(), code
	}
	out, errOut, code := exec("--help")
	if code != 0 || errOut != "" {
		t.Errorf("--help: exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"Usage: marathon-emulator [--listen ADDR]", about, "Flags:", "-deploy-duration duration", "-unhealthy-images string"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help lacks %q:\n%s", want, out)
		}
	}
	for _, args := range [][]string{{"--lisen", ":0"}, {"--deploy-duration", "soon"}, {"--basic-auth", "nocolon"}, {"stray"}} {
		out, errOut, code := exec(args...)
		if code != 2 || out != "" || !strings.HasSuffix(errOut, "\nsee 'marathon-emulator --help'\n") || strings.Count(errOut, "\n") != 2 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2, the error and a hint", args, code, out, errOut)
		}
	}
	if _, errOut, code := exec("--listen", "256.0.0.1:0"); code != 1 || !strings.HasPrefix(errOut, "marathon-emulator: listen tcp") {
		t.Errorf("unusable listen address: exit %d, stderr %q; want 1", code, errOut)
	}
}
