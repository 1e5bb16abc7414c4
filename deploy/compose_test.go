package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	distconf "github.com/distribution/distribution/v3/configuration"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/tools/marathon-emulator/emulator"
)

const (
	composeDir  = "compose"
	composeFile = "compose/compose.yaml"
	// slipwayConfigPath is where compose.yaml mounts compose/slipway.yaml.
	slipwayConfigPath = "/etc/slipway/slipway.yaml"
	// registryConfigPath is where the registry:3 image reads its configuration.
	registryConfigPath = "/etc/distribution/config.yml"
	// emulatorPort is what tools/marathon-emulator/Dockerfile's ENTRYPOINT listens on.
	emulatorPort = 8080
	// defaultOpsPort is ops.listen's default in processes without ingest.
	defaultOpsPort = 9464
	// consolePort is console.listen's default (services/console.DefaultListen).
	consolePort = 8090
)

// isEngineSocket reports whether a bind mount's source is a Docker engine's
// socket: it exists on the machine Compose runs on, not necessarily where
// the test runs.
func isEngineSocket(source string) bool {
	return strings.HasSuffix(source, "/docker.sock")
}

// slipwayServices are the Compose services that run a Slipway binary, with the
// package each one's Dockerfile builds.
var slipwayServices = map[string]string{
	"ingest":   "services/ingest/cmd/ingest",
	"promoter": "services/promoter/cmd/promoter",
	"deployer": "services/deployer/cmd/deployer",
	"notifier": "services/notifier/cmd/notifier",
	"console":  "services/console/cmd/console",
}

// loadCompose loads compose.yaml the way `docker compose` does (interpolation,
// normalisation, consistency checks, paths resolved against its directory),
// with env as the only environment so that the result never depends on the
// machine running the test.
func loadCompose(t *testing.T, env ...string) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{composeFile},
		cli.WithWorkingDirectory(composeDir),
		cli.WithEnv(env),
		cli.WithDiscardEnvFile,
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("%s is not a valid Compose file: %v", composeFile, err)
	}
	return p
}

func composeService(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return s
}

// boundFile is the host file bind-mounted at target in s, checked to exist.
func boundFile(t *testing.T, s types.ServiceConfig, target string) string {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Target == target {
			if v.Type != types.VolumeTypeBind {
				t.Fatalf("service %s: %s is a %s mount, want a bind mount of a file", s.Name, target, v.Type)
			}
			if !v.ReadOnly {
				t.Errorf("service %s: %s should be mounted read-only", s.Name, target)
			}
			return v.Source
		}
	}
	t.Fatalf("service %s mounts nothing at %s", s.Name, target)
	return ""
}

// containerEnv is the environment of s's container, as Compose would pass it.
func containerEnv(t *testing.T, s types.ServiceConfig) map[string]string {
	t.Helper()
	m := map[string]string{}
	for k, v := range s.Environment {
		if v == nil {
			t.Fatalf("service %s: environment %s has no value", s.Name, k)
		}
		m[k] = *v
	}
	return m
}

func publishes(s types.ServiceConfig, target int) bool {
	return slices.ContainsFunc(s.Ports, func(p types.ServicePortConfig) bool { return int(p.Target) == target })
}

func composeHostPort(t *testing.T, what, hostport string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("%s %q: %v", what, hostport, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%s %q: port: %v", what, hostport, err)
	}
	return h, n
}

func composeURLHostPort(t *testing.T, what, raw string) (string, int) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("%s %q: %v", what, raw, err)
	}
	return composeHostPort(t, what, u.Host)
}

// slipwayConfig loads compose/slipway.yaml with the environment Compose gives s.
func slipwayConfig(t *testing.T, s types.ServiceConfig) *config.Config {
	t.Helper()
	file := boundFile(t, s, slipwayConfigPath)
	if want, _ := filepath.Abs(filepath.Join(composeDir, "slipway.yaml")); file != want {
		t.Errorf("service %s mounts %s at %s, want %s", s.Name, file, slipwayConfigPath, want)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	e := containerEnv(t, s)
	cfg, err := config.Parse(raw, func(k string) (string, bool) { v, ok := e[k]; return v, ok })
	if err != nil {
		t.Fatalf("slipway.yaml with service %s's environment: %v", s.Name, err)
	}
	return cfg
}

// registryConfig parses the Distribution configuration mounted into s with s's
// environment, with Distribution's own parser (which applies REGISTRY_*
// variables the way the registry does).
func registryConfig(t *testing.T, s types.ServiceConfig) *distconf.Configuration {
	t.Helper()
	raw, err := os.ReadFile(boundFile(t, s, registryConfigPath))
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range os.Environ() { // only the container's REGISTRY_* variables count
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "REGISTRY_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	for k, v := range containerEnv(t, s) {
		t.Setenv(k, v)
	}
	c, err := distconf.Parse(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("service %s: registry configuration: %v", s.Name, err)
	}
	return c
}

// TestComposeValid: compose.yaml loads and validates as docker compose would,
// every image is pinned, every build has its Dockerfile, every mounted file
// exists.
func TestComposeValid(t *testing.T) {
	p := loadCompose(t)
	if p.Name != "slipway" {
		t.Errorf("project name %q, want slipway", p.Name)
	}
	want := []string{"console", "deployer", "ingest", "marathon-dev", "marathon-prd", "marathon-tst", "nats", "notifier", "promoter", "registry-dev", "registry-prd", "registry-tst"}
	if got := p.ServiceNames(); !slices.Equal(slices.Sorted(slices.Values(got)), want) {
		t.Errorf("services %v, want %v", got, want)
	}
	root, _ := filepath.Abs("..")
	for _, s := range p.Services {
		if s.Image == "" {
			t.Errorf("service %s: no image name", s.Name)
		} else if ref := s.Image[strings.LastIndex(s.Image, "/")+1:]; !strings.Contains(ref, ":") || strings.HasSuffix(ref, ":latest") {
			t.Errorf("service %s: image %s is not pinned to a tag", s.Name, s.Image)
		}
		for _, v := range s.Volumes {
			switch v.Type {
			case types.VolumeTypeBind:
				if isEngineSocket(v.Source) {
					continue
				}
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("service %s mounts a missing file: %v", s.Name, err)
				}
			case types.VolumeTypeVolume:
				if _, ok := p.Volumes[v.Source]; !ok {
					t.Errorf("service %s: volume %s is not declared", s.Name, v.Source)
				}
			}
		}
		if s.Build == nil {
			continue
		}
		if s.Build.Context != root {
			t.Errorf("service %s: build context %s, want the repository root %s (the Go workspace)", s.Name, s.Build.Context, root)
		}
		df := filepath.Join(s.Build.Context, s.Build.Dockerfile)
		if _, err := os.Stat(df); err != nil {
			t.Errorf("service %s: %v", s.Name, err)
		}
	}
	// A service that needs another waits for it; those with a healthcheck
	// are waited for until healthy.
	for _, s := range p.Services {
		for dep, d := range s.DependsOn {
			if d.Condition == types.ServiceConditionHealthy && composeService(t, p, dep).HealthCheck == nil {
				t.Errorf("service %s waits for %s to be healthy, but it has no healthcheck", s.Name, dep)
			}
		}
	}
}

// TestDockerfiles: each binary has its own multi-stage, static, non-root
// Dockerfile that builds the right package and exposes the right port.
func TestDockerfiles(t *testing.T) {
	binaries := map[string]struct {
		pkg  string
		port string
	}{
		"cmd/slipway/Dockerfile":             {"cmd/slipway", "8080 9464"},
		"services/ingest/Dockerfile":         {slipwayServices["ingest"], "8080"},
		"services/promoter/Dockerfile":       {slipwayServices["promoter"], strconv.Itoa(defaultOpsPort)},
		"services/deployer/Dockerfile":       {slipwayServices["deployer"], strconv.Itoa(defaultOpsPort)},
		"services/notifier/Dockerfile":       {slipwayServices["notifier"], strconv.Itoa(defaultOpsPort)},
		"services/console/Dockerfile":        {slipwayServices["console"], strconv.Itoa(consolePort)},
		"tools/marathon-emulator/Dockerfile": {"tools/marathon-emulator", strconv.Itoa(emulatorPort)},
	}
	for path, b := range binaries {
		raw, err := os.ReadFile(filepath.Join("..", path))
		if err != nil {
			t.Error(err)
			continue
		}
		df := string(raw)
		name := filepath.Base(b.pkg)
		for _, want := range []string{
			"FROM golang:1.26-bookworm AS build",
			"CGO_ENABLED=0 go build -trimpath",
			fmt.Sprintf("-o /out/%s ./%s\n", name, b.pkg),
			"FROM gcr.io/distroless/static-debian12:nonroot",
			fmt.Sprintf("COPY --from=build /out/%s /usr/local/bin/%s\n", name, name),
			"USER 65532:65532",
			"EXPOSE " + b.port + "\n",
			fmt.Sprintf(`ENTRYPOINT ["/usr/local/bin/%s"`, name),
		} {
			if !strings.Contains(df, want) {
				t.Errorf("%s lacks %q", path, want)
			}
		}
		if _, err := os.Stat(filepath.Join("..", b.pkg, "main.go")); err != nil {
			t.Errorf("%s builds a package without main.go: %v", path, err)
		}
	}
	raw, err := os.ReadFile("../tools/marathon-emulator/Dockerfile")
	if err == nil && !strings.Contains(string(raw), fmt.Sprintf(`"--listen", ":%d"]`, emulatorPort)) {
		t.Errorf("the emulator's ENTRYPOINT should listen on :%d", emulatorPort)
	}
	// Every module of the workspace must reach the build, or go.work does not load.
	ignore, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	work, err := os.ReadFile("../go.work")
	if err != nil {
		t.Fatal(err)
	}
	excluded := strings.Fields(string(ignore))
	for _, m := range regexp.MustCompile(`(?m)^\s*\./(\S+)\s*$`).FindAllStringSubmatch(string(work), -1) {
		dir := m[1]
		for _, pat := range excluded {
			if pat == dir || pat == dir+"/" || (strings.HasSuffix(pat, "/*") && strings.TrimSuffix(pat, "/*") == dir &&
				!slices.Contains(excluded, "!"+dir+"/go.mod")) {
				t.Errorf(".dockerignore excludes %s/go.mod, a module of go.work", dir)
			}
		}
	}
}

// TestComposeSlipwayConsistent: the names, ports and URLs in compose.yaml,
// slipway.yaml, the registry configurations and the emulator apps agree, with
// the demo defaults and with secrets from the environment.
func TestComposeSlipwayConsistent(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
	}{
		{"defaults", nil},
		{"overridden", []string{"DEV_REGISTRY_TOKEN=d3v", "TST_REGISTRY_TOKEN=t5t", "PRD_REGISTRY_TOKEN=p4d", "RELEASE_MANAGER_TOKEN=rm"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := loadCompose(t, tc.env...)
			checkComposeConsistent(t, p, tc.env)
		})
	}
}

func checkComposeConsistent(t *testing.T, p *types.Project, overrides []string) {
	// Every Slipway service reads the same file, builds its own binary and
	// publishes its health port.
	var cfg *config.Config
	for name, pkg := range slipwayServices {
		s := composeService(t, p, name)
		if got := []string(s.Command); !slices.Equal(got, []string{"--config", slipwayConfigPath}) {
			t.Errorf("service %s: command %q, want --config %s", name, got, slipwayConfigPath)
		}
		if s.Build == nil || s.Build.Dockerfile != filepath.Join(filepath.Dir(filepath.Dir(pkg)), "Dockerfile") {
			t.Errorf("service %s: build %+v, want %s/Dockerfile", name, s.Build, filepath.Dir(filepath.Dir(pkg)))
		}
		c := slipwayConfig(t, s)
		if cfg == nil || name == "ingest" {
			cfg = c
		}
		port := defaultOpsPort
		switch {
		case name == "ingest":
			_, port = composeHostPort(t, "ingest.listen", c.Ingest.Listen)
		case name == "console":
			port = checkComposeConsole(t, s, c)
		case c.Ops.Listen != "":
			_, port = composeHostPort(t, "ops.listen", c.Ops.Listen)
		}
		if !publishes(s, port) {
			t.Errorf("service %s listens on %d but does not publish it", name, port)
		}
		if _, ok := s.DependsOn["nats"]; !ok {
			t.Errorf("service %s does not wait for nats", name)
		}
	}
	for _, kv := range overrides { // secrets from the environment reach the configuration
		k, v, _ := strings.Cut(kv, "=")
		if k == "RELEASE_MANAGER_TOKEN" && (len(cfg.Approvers) == 0 || cfg.Approvers[0].Token != v) {
			t.Errorf("approver token does not come from $%s", k)
		}
	}

	// NATS: the service the URL names, with JetStream storing on its volume.
	nh, np := composeURLHostPort(t, "nats.url", cfg.NATS.URL)
	nats := composeService(t, p, nh)
	if !publishes(nats, np) {
		t.Errorf("nats.url port %d is not a port of service %s", np, nh)
	}
	cmd := []string(nats.Command)
	if !slices.Contains(cmd, "-js") {
		t.Errorf("service %s does not enable JetStream: %q", nh, cmd)
	}
	if i := slices.Index(cmd, "-sd"); i < 0 || i+1 == len(cmd) ||
		!slices.ContainsFunc(nats.Volumes, func(v types.ServiceVolumeConfig) bool {
			return v.Type == types.VolumeTypeVolume && v.Target == cmd[i+1]
		}) {
		t.Errorf("service %s: JetStream store (-sd) is not on a named volume: %q", nh, cmd)
	}
	if i := slices.Index(cmd, "-p"); i >= 0 && cmd[i+1] != strconv.Itoa(np) {
		t.Errorf("service %s listens on %s, nats.url says %d", nh, cmd[i+1], np)
	}

	// Registries: one service per environment, its configuration notifying
	// ingest at the source of that environment, with the source's secret.
	_, ingestPort := composeHostPort(t, "ingest.listen", cfg.Ingest.Listen)
	registries := map[string]string{} // host:port → environment
	for _, e := range cfg.Environments {
		h, port := composeHostPort(t, "environments."+e.Name+".registry.host", e.Registry.Host)
		s := composeService(t, p, h)
		if !strings.HasPrefix(s.Image, "registry:") {
			t.Errorf("service %s: image %s, want CNCF Distribution (registry:3)", h, s.Image)
		}
		rc := registryConfig(t, s)
		if _, rp := composeHostPort(t, h+" http.addr", rc.HTTP.Addr); rp != port {
			t.Errorf("registry %s listens on %d, environment %s says %d", h, rp, e.Name, port)
		}
		if !e.Registry.Insecure {
			t.Errorf("environment %s: registry %s serves plain HTTP; set insecure: true", e.Name, h)
		}
		registries[e.Registry.Host] = e.Name

		var sources []config.Source
		for _, src := range cfg.Ingest.Sources {
			if src.Environment == e.Name {
				sources = append(sources, src)
			}
		}
		if len(sources) != 1 {
			t.Errorf("environment %s has %d ingest sources, want 1", e.Name, len(sources))
			continue
		}
		src := sources[0]
		// Pushes from the host reach the registry at its published port, and
		// the registry's notifications name it so: that name must be an
		// alias, or ingest refuses them as pushes of a foreign registry.
		for _, pc := range s.Ports {
			if pc.Target == uint32(port) && pc.Published != "" {
				if local := "localhost:" + pc.Published; !e.Registry.Names(local) {
					t.Errorf("environment %s: pushes from the host name the registry %s; declare it in registry.aliases", e.Name, local)
				}
			}
		}
		if src.Registry != "" && !e.Registry.Names(src.Registry) {
			t.Errorf("source %s records registry %q, which is not a name of %s's registry", src.Name, src.Registry, e.Name)
		}
		if src.Format != "distribution" {
			t.Errorf("source %s: format %s, want distribution", src.Name, src.Format)
		}
		eps := rc.Notifications.Endpoints
		if len(eps) != 1 {
			t.Errorf("registry %s has %d notification endpoints, want 1", h, len(eps))
			continue
		}
		ep := eps[0]
		if want := fmt.Sprintf("http://ingest:%d/webhooks/%s", ingestPort, src.Name); ep.URL != want {
			t.Errorf("registry %s notifies %s, want %s", h, ep.URL, want)
		}
		if ep.Disabled {
			t.Errorf("registry %s: notifications disabled", h)
		}
		if src.Auth == nil || src.Auth.Header == nil {
			t.Errorf("source %s: want header auth", src.Name)
			continue
		}
		if got := ep.Headers.Values(src.Auth.Header.Name); len(got) != 1 || got[0] != src.Auth.Header.Value {
			t.Errorf("registry %s sends %s %q; source %s expects %q", h, src.Auth.Header.Name, got, src.Name, src.Auth.Header.Value)
		}
	}

	// Clusters: each Marathon on its own emulator service, seeded with apps
	// the emulator accepts, whose images live in the cluster's registry;
	// each Docker engine the deployer's through a mounted socket.
	docker := 0
	for _, cl := range cfg.Clusters {
		switch cl.Platform() {
		case config.ClusterMarathon:
		case config.ClusterDocker:
			docker++
			checkComposeDockerCluster(t, p, cl, cfg)
			continue
		default:
			t.Errorf("cluster %s: type %s has no counterpart in compose.yaml", cl.Name, cl.Platform())
			continue
		}
		h, port := composeURLHostPort(t, "clusters."+cl.Name+".marathon.url", cl.Marathon.URL)
		s := composeService(t, p, h)
		if s.Build == nil || s.Build.Dockerfile != "tools/marathon-emulator/Dockerfile" {
			t.Errorf("cluster %s: service %s is not the Marathon emulator", cl.Name, h)
		}
		if port != emulatorPort {
			t.Errorf("cluster %s: port %d, the emulator listens on %d", cl.Name, port, emulatorPort)
		}
		cmd := []string(s.Command)
		i := slices.Index(cmd, "--apps")
		if i < 0 || i+1 == len(cmd) {
			t.Errorf("service %s: no --apps", h)
			continue
		}
		raw, err := os.ReadFile(boundFile(t, s, cmd[i+1]))
		if err != nil {
			t.Fatal(err)
		}
		em := emulator.New(emulator.Options{})
		if err := em.Load(raw); err != nil {
			t.Errorf("service %s: the emulator refuses its apps: %v", h, err)
		}
		em.Close()
		var envHost string
		for host, env := range registries {
			if env == cl.Environment {
				envHost = host
			}
		}
		managed := 0
		for _, a := range composeApps(t, raw) {
			if a.Labels["slipway.policy"] == "" {
				continue
			}
			managed++
			if !strings.HasPrefix(a.Container.Docker.Image, envHost+"/") {
				t.Errorf("cluster %s: app %s runs %s, not from %s's registry %s", cl.Name, a.ID, a.Container.Docker.Image, cl.Environment, envHost)
			}
		}
		if managed == 0 {
			t.Errorf("cluster %s: no app opts in with slipway.policy", cl.Name)
		}
		if _, ok := s.DependsOn["nats"]; ok {
			t.Errorf("the emulator %s needs no NATS", h)
		}
		if _, ok := composeService(t, p, "deployer").DependsOn[h]; !ok {
			t.Errorf("the deployer does not wait for %s", h)
		}
	}
	if docker == 0 {
		t.Errorf("slipway.yaml has no cluster of type docker: the deployer should manage this host's containers")
	}
	for host := range registries {
		h, _ := composeHostPort(t, "registry", host)
		if _, ok := composeService(t, p, "promoter").DependsOn[h]; !ok {
			t.Errorf("the promoter does not wait for %s", h)
		}
	}
}

// checkComposeConsole checks the console's part of the stack and returns
// the port it listens on: slipway.yaml has a console section (or `slipway
// run` would not start it either) with a login, and a console that lets
// everyone in (auth.none) is published on the host's loopback address only,
// never on every interface.
func checkComposeConsole(t *testing.T, s types.ServiceConfig, cfg *config.Config) int {
	t.Helper()
	if !cfg.Console.Configured() {
		t.Errorf("slipway.yaml has no console section: nothing would start the console")
	}
	a := cfg.Console.Auth
	if a.OIDC == nil && !a.None {
		t.Errorf("slipway.yaml: the console needs console.auth (oidc, or none for this trial stack)")
	}
	port := consolePort
	if cfg.Console.Listen != "" {
		_, port = composeHostPort(t, "console.listen", cfg.Console.Listen)
	}
	if a.None {
		// The console's user without a login is "anonymous", in no group:
		// an approval rule that names approvers or groups refuses it, and
		// the Approve button of the trial stack would only say so.
		for _, pr := range cfg.Promotions {
			if pr.Approval.Required && (len(pr.Approval.Approvers) > 0 || len(pr.Approval.Groups) > 0) {
				t.Errorf("promotion %s: approval names approvers or groups, so the console (auth.none, user anonymous) cannot decide it", pr.Name)
			}
		}
		for _, pc := range s.Ports {
			if ip := net.ParseIP(pc.HostIP); ip == nil || !ip.IsLoopback() {
				t.Errorf("service %s publishes %d on %q: with console.auth.none anyone who reaches it may do anything; publish it on 127.0.0.1 only", s.Name, pc.Target, pc.HostIP)
			}
		}
	}
	return port
}

// checkComposeDockerCluster checks a cluster of the host's engine: the
// deployer mounts the socket the cluster names from the same path on the
// host, may connect to it, and the engine can pull what the deployer
// deploys, the images of the environment's registry by its host:port.
func checkComposeDockerCluster(t *testing.T, p *types.Project, cl config.Cluster, cfg *config.Config) {
	t.Helper()
	u, err := url.Parse(cl.Docker.Host)
	if err != nil || u.Scheme != "unix" || u.Path == "" {
		t.Errorf("cluster %s: docker.host %q, want the unix socket of the host's engine", cl.Name, cl.Docker.Host)
		return
	}
	dep := composeService(t, p, "deployer")
	mounted := false
	for _, v := range dep.Volumes {
		if v.Target != u.Path {
			continue
		}
		mounted = true
		if v.Type != types.VolumeTypeBind || v.Source != u.Path || !isEngineSocket(v.Source) {
			t.Errorf("cluster %s: the deployer mounts %s %s at %s, want the host's %s", cl.Name, v.Type, v.Source, v.Target, u.Path)
		}
	}
	if !mounted {
		t.Errorf("cluster %s: the deployer does not mount %s", cl.Name, u.Path)
	}
	// The images run as a non-root user; the socket's group lets it in.
	if len(dep.GroupAdd) == 0 {
		t.Errorf("cluster %s: the deployer (user 65532) has no group_add for the socket's group", cl.Name)
	}
	var reg config.Registry
	for _, e := range cfg.Environments {
		if e.Name == cl.Environment {
			reg = e.Registry
		}
	}
	h, port := composeHostPort(t, "environments."+cl.Environment+".registry.host", reg.Host)
	s := composeService(t, p, h)
	if !slices.ContainsFunc(s.Ports, func(pc types.ServicePortConfig) bool {
		return int(pc.Target) == port && pc.Published == strconv.Itoa(port)
	}) {
		t.Errorf("cluster %s: the host's engine pulls %s/…, but service %s does not publish %d as %d on the host", cl.Name, reg.Host, h, port, port)
	}
}

type seedApp struct {
	ID        string            `json:"id"`
	Labels    map[string]string `json:"labels"`
	Container struct {
		Docker struct {
			Image string `json:"image"`
		} `json:"docker"`
	} `json:"container"`
}

// composeApps lists the apps of a group file, recursively.
func composeApps(t *testing.T, raw []byte) []seedApp {
	t.Helper()
	type group struct {
		Apps   []seedApp         `json:"apps"`
		Groups []json.RawMessage `json:"groups"`
	}
	var g group
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	apps := g.Apps
	for _, sub := range g.Groups {
		apps = append(apps, composeApps(t, sub)...)
	}
	return apps
}
