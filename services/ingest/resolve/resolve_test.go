package resolve_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
	"github.com/slipway-cd/slipway/services/ingest/resolve"
)

func TestResolve(t *testing.T) {
	reg := testkit.NewRegistry(t, testkit.RegistryOptions{Username: "u", Password: "p4ss"})
	img := testkit.PushRandomImage(t, reg.Host+"/team/app:v1")
	idx := testkit.PushRandomIndex(t, reg.Host+"/team/multi:v1", 2)
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("p4ss\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	r, err := resolve.New(config.Registry{Host: reg.Host, Insecure: true, Username: "u", Password: "p4ss"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Resolve(t.Context(), "team/app", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := img.Digest(); m.Digest != d.String() || m.Size == 0 || m.MediaType == "" {
		t.Fatalf("got %+v, want digest %s", m, d)
	}
	m, err = r.Resolve(t.Context(), "team/multi", "v1")
	if d, _ := idx.Digest(); err != nil || m.Digest != d.String() || m.MediaType != "application/vnd.oci.image.index.v1+json" {
		t.Fatalf("index: %+v %v, want %s", m, err, d)
	}
	if _, err := r.Resolve(t.Context(), "team/app", "missing"); err == nil || !strings.Contains(err.Error(), reg.Host+"/team/app:missing") {
		t.Fatalf("missing tag: %v, want an error naming the image", err)
	}

	// The password from a file.
	rf, err := resolve.New(config.Registry{Host: reg.Host, Insecure: true, Username: "u", PasswordFile: pwFile}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rf.Resolve(t.Context(), "team/app", "v1"); err != nil {
		t.Fatalf("password file: %v", err)
	}

	// Wrong or no credentials: refused, and the error does not carry them.
	for name, reg := range map[string]config.Registry{
		"wrong password": {Host: reg.Host, Insecure: true, Username: "u", Password: "n0pe-secret"},
		"anonymous":      {Host: reg.Host, Insecure: true},
	} {
		rw, err := resolve.New(reg, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = rw.Resolve(t.Context(), "team/app", "v1")
		if err == nil {
			t.Fatalf("%s: resolved", name)
		}
		if strings.Contains(err.Error(), "n0pe-secret") {
			t.Fatalf("%s: error carries the password: %v", name, err)
		}
	}
}

func TestResolveTimeout(t *testing.T) {
	// A registry that never answers: the lookup gives up at the timeout.
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	host := strings.TrimPrefix(srv.URL, "http://")
	r, err := resolve.New(config.Registry{Host: host, Insecure: true}, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Resolve(context.Background(), "team/app", "v1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
}

func TestNoHost(t *testing.T) {
	r, err := resolve.New(config.Registry{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resolve(t.Context(), "team/app", "v1"); err == nil {
		t.Fatal("resolved without a registry host")
	}
}
