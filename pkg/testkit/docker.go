package testkit

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The Docker helpers speak the engine's HTTP API with net/http rather than
// through github.com/docker/docker/client: testkit is imported by every
// module's tests, and the client would bring its dependency tree to all of
// them for a handful of requests.

// DefaultDockerHost is the engine address used when DOCKER_HOST is unset.
const DefaultDockerHost = "unix:///var/run/docker.sock"

// dockerPingTimeout bounds the check that an engine answers: a socket
// nobody listens on fails at once, a wedged engine must not hang the test.
const dockerPingTimeout = 5 * time.Second

// BusyboxPath is where Debian's busybox-static package installs the static
// busybox that BusyboxImage puts in its layer.
const BusyboxPath = "/bin/busybox"

// DockerAPI is a minimal client of a Docker engine's HTTP API (unversioned
// paths, so the engine's own API version applies).
type DockerAPI struct {
	// Host is the engine address, in DOCKER_HOST form (unix:///path or
	// tcp://host:port).
	Host string

	base   string
	client *http.Client
}

// NewDockerAPI returns a client of the engine at host (unix:// or tcp://;
// TLS and ssh:// are not supported). It does not contact the engine.
func NewDockerAPI(host string) (*DockerAPI, error) {
	if os.Getenv("DOCKER_TLS_VERIFY") != "" {
		return nil, errors.New("DOCKER_TLS_VERIFY is set; testkit speaks plain HTTP to the engine only")
	}
	scheme, addr, ok := strings.Cut(host, "://")
	if !ok || addr == "" {
		return nil, fmt.Errorf("DOCKER_HOST %q is not scheme://address", host)
	}
	var network, base string
	switch scheme {
	case "unix":
		network, base = "unix", "http://docker"
	case "tcp", "http":
		network, base = "tcp", "http://"+addr
	default:
		return nil, fmt.Errorf("DOCKER_HOST %q: scheme %q is not supported (unix:// or tcp://)", host, scheme)
	}
	var d net.Dialer
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 4,
	}
	return &DockerAPI{Host: host, base: base, client: &http.Client{Transport: tr}}, nil
}

// Do sends a request with in (if not nil) as its JSON body and decodes a
// JSON answer into out (if not nil). An answer other than 2xx is an error
// carrying the engine's message.
func (d *DockerAPI) Do(ctx context.Context, method, apiPath string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("docker %s %s: encode body: %w", method, apiPath, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, d.base+apiPath, body)
	if err != nil {
		return fmt.Errorf("docker %s %s: %w", method, apiPath, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return fmt.Errorf("docker %s %s: %w", method, apiPath, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var e struct{ Message string }
		if json.Unmarshal(b, &e) != nil || e.Message == "" {
			e.Message = strings.TrimSpace(string(b))
		}
		return fmt.Errorf("docker %s %s: %s: %s", method, apiPath, resp.Status, e.Message)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("docker %s %s: decode answer: %w", method, apiPath, err)
	}
	return nil
}

// Ping asks the engine GET /_ping, within a short deadline.
func (d *DockerAPI) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, dockerPingTimeout)
	defer cancel()
	return d.Do(ctx, http.MethodGet, "/_ping", nil, nil)
}

// Pull has the engine pull ref ("host/repo:tag" or "host/repo@sha256:…",
// e.g. from a registry started by NewRegistry: the engine reaches
// 127.0.0.1 registries over plain HTTP). The engine reports pull failures
// inside a 200 stream; they are returned as errors.
func (d *DockerAPI) Pull(ctx context.Context, ref string) error {
	repo, tag := splitRef(ref)
	q := url.Values{"fromImage": {repo}, "tag": {tag}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.base+"/images/create?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return fmt.Errorf("docker pull %s: %w", ref, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("docker pull %s: %s: %s", ref, resp.Status, strings.TrimSpace(string(b)))
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var msg struct{ Error string }
		if err := dec.Decode(&msg); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("docker pull %s: read progress: %w", ref, err)
		}
		if msg.Error != "" {
			return fmt.Errorf("docker pull %s: %s", ref, msg.Error)
		}
	}
}

// splitRef splits an image reference into the repository and the tag or
// digest, as the engine's fromImage and tag parameters want them.
func splitRef(ref string) (repo, tag string) {
	if r, d, ok := strings.Cut(ref, "@"); ok {
		return r, d
	}
	// A colon after the last slash separates the tag (one before it is a
	// registry port).
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i], ref[i+1:]
	}
	return ref, "latest"
}

// DockerHost returns the address of a Docker engine that answers GET /_ping:
// DOCKER_HOST, or DefaultDockerHost when it is unset. Without one the test
// fails under CI=true (CI starts an engine, so a missing one is a broken
// run, not a reason to skip) and is skipped otherwise, saying how to start
// one.
func DockerHost(t testing.TB) string {
	t.Helper()
	return Docker(t).Host
}

// Docker is DockerHost returning a client of the engine.
func Docker(t testing.TB) *DockerAPI {
	t.Helper()
	host := os.Getenv("DOCKER_HOST")
	if host == "" {
		host = DefaultDockerHost
	}
	d, err := NewDockerAPI(host)
	if err == nil {
		err = d.Ping(t.Context())
	}
	if err != nil {
		dockerMissing(t, fmt.Sprintf("no Docker engine answers at %s: %v", host, err))
	}
	return d
}

// SwarmManager is DockerHost for tests that need Swarm: the engine must be
// a manager of an active swarm (GET /info: Swarm.LocalNodeState "active",
// ControlAvailable true), with the same fail-or-skip rule.
func SwarmManager(t testing.TB) string {
	t.Helper()
	d := Docker(t)
	var info struct {
		Swarm struct {
			LocalNodeState   string
			ControlAvailable bool
			Error            string
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), dockerPingTimeout)
	defer cancel()
	if err := d.Do(ctx, http.MethodGet, "/info", nil, &info); err != nil {
		dockerMissing(t, err.Error())
	}
	if s := info.Swarm; s.LocalNodeState != "active" || !s.ControlAvailable {
		msg := fmt.Sprintf("the Docker engine at %s is not a Swarm manager (LocalNodeState %q, ControlAvailable %t", d.Host, s.LocalNodeState, s.ControlAvailable)
		if s.Error != "" {
			msg += ", error " + strconv.Quote(s.Error)
		}
		dockerMissing(t, msg+"); `docker swarm init --advertise-addr 127.0.0.1` makes it one")
	}
	return d.Host
}

// ciRun tells whether the tests run in CI (CI=true), where a missing
// prerequisite is a failure.
func ciRun() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// prerequisiteMissing fails the test under CI=true (CI installs what the
// tests need, so a missing piece is a broken run) and skips it otherwise,
// saying what is missing and how to get it.
func prerequisiteMissing(t testing.TB, msg, hint string) {
	t.Helper()
	if ciRun() {
		t.Fatalf("testkit: %s; under CI=true this is needed: %s", msg, hint)
	}
	t.Skipf("testkit: %s; %s", msg, hint)
}

func dockerMissing(t testing.TB, msg string) {
	t.Helper()
	if ciRun() {
		t.Fatalf("testkit: %s; under CI=true the Docker tests need an engine (.ci/run starts one with scripts/docker-up)", msg)
	}
	t.Skipf("testkit: %s; start one with `make docker-up` and export the DOCKER_HOST it prints", msg)
}

// BusyboxOptions configures BusyboxImage.
type BusyboxOptions struct {
	// Entrypoint and Cmd are the image's, e.g. Cmd: {"httpd", "-f", "-p",
	// "127.0.0.1:8080", "-h", "/www"}. Programs resolve in /bin.
	Entrypoint, Cmd []string
	// Env is added after PATH=/bin.
	Env []string
	// Healthcheck is the image's HEALTHCHECK, e.g. Test: {"CMD", "wget",
	// "-q", "-O-", "http://127.0.0.1:8080/"}.
	Healthcheck *v1.HealthConfig
	// Labels are the image's labels.
	Labels map[string]string
	// Files are extra regular files (absolute path → content, mode 0644)
	// in the layer, e.g. {"/www/index.html": "ok"}.
	Files map[string]string
}

// BusyboxApplets are the names under /bin that BusyboxImage links to
// busybox.
var BusyboxApplets = []string{
	"sh", "httpd", "sleep", "wget", "cat", "echo", "env", "true", "false",
	"ls", "nc", "kill", "mkdir", "rm", "touch", "test", "[",
}

// busyboxBinary reads the host's busybox once per process; it must be
// static, since the image has no libc.
var busyboxBinary = sync.OnceValues(func() ([]byte, error) {
	b, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, err
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", BusyboxPath, err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return nil, fmt.Errorf("%s is dynamically linked (Debian's busybox, not busybox-static)", BusyboxPath)
		}
	}
	return b, nil
})

// BusyboxImage builds a one-layer image from nothing: the host's static
// busybox at /bin/busybox, BusyboxApplets as symlinks to it, and
// opts.Files, with a config for linux/GOARCH carrying opts. Without a
// static /bin/busybox the test fails under CI=true and is skipped
// otherwise.
func BusyboxImage(t testing.TB, opts BusyboxOptions) v1.Image {
	t.Helper()
	bin, err := busyboxBinary()
	if err != nil {
		prerequisiteMissing(t, "busybox image: "+err.Error(), "apt-get install busybox-static")
	}
	layerTar, err := busyboxLayer(bin, opts.Files)
	if err != nil {
		t.Fatalf("testkit: busybox layer: %v", err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		t.Fatalf("testkit: busybox layer: %v", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatalf("testkit: busybox image: %v", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatalf("testkit: busybox image config: %v", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config = v1.Config{
		Entrypoint:  opts.Entrypoint,
		Cmd:         opts.Cmd,
		Env:         append([]string{"PATH=/bin"}, opts.Env...),
		Healthcheck: opts.Healthcheck,
		Labels:      opts.Labels,
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatalf("testkit: busybox image config: %v", err)
	}
	return img
}

// busyboxLayer writes the layer's tar: directories first, then busybox,
// its links and the extra files, in a fixed order so that the same options
// give the same digest.
func busyboxLayer(bin []byte, files map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{"bin": true, "tmp": true}
	names := make([]string, 0, len(files))
	for p := range files {
		clean := strings.TrimPrefix(path.Clean("/"+p), "/")
		if clean == "" || strings.HasPrefix(clean, "bin/") {
			return nil, fmt.Errorf("file %q: a path outside /bin is needed", p)
		}
		names = append(names, p)
		for d := path.Dir(clean); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	sort.Strings(names)
	dirList := make([]string, 0, len(dirs))
	for d := range dirs {
		dirList = append(dirList, d)
	}
	sort.Strings(dirList) // a parent sorts before its children
	for _, d := range dirList {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode}); err != nil {
			return nil, err
		}
	}
	write := func(name string, mode int64, content []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(content))}); err != nil {
			return err
		}
		_, err := tw.Write(content)
		return err
	}
	if err := write("bin/busybox", 0o755, bin); err != nil {
		return nil, err
	}
	for _, a := range BusyboxApplets {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777}); err != nil {
			return nil, err
		}
	}
	for _, p := range names {
		if err := write(strings.TrimPrefix(path.Clean("/"+p), "/"), 0o644, []byte(files[p])); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
