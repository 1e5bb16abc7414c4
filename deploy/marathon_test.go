package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/platform/access"
	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/tools/marathon-emulator/emulator"
)

// The parts of a Marathon app (as GET /v2/groups shows it) the test checks.
type marathonApp struct {
	ID        string   `json:"id"`
	Instances int      `json:"instances"`
	Cpus      float64  `json:"cpus"`
	Mem       float64  `json:"mem"`
	Args      []string `json:"args"`
	Container struct {
		Type   string `json:"type"`
		Docker struct {
			Image string `json:"image"`
		} `json:"docker"`
		Volumes      []marathonVolume `json:"volumes"`
		PortMappings []marathonPort   `json:"portMappings"`
	} `json:"container"`
	Networks []struct {
		Mode string `json:"mode"`
	} `json:"networks"`
	PortDefinitions []marathonPort             `json:"portDefinitions"`
	RequirePorts    bool                       `json:"requirePorts"`
	Constraints     [][]string                 `json:"constraints"`
	Env             map[string]json.RawMessage `json:"env"`
	Secrets         map[string]struct {
		Source string `json:"source"`
	} `json:"secrets"`
	HealthChecks []struct {
		Protocol  string `json:"protocol"`
		Path      string `json:"path"`
		PortIndex int    `json:"portIndex"`
	} `json:"healthChecks"`
	ReadinessChecks []struct {
		Path     string `json:"path"`
		PortName string `json:"portName"`
	} `json:"readinessChecks"`
	Labels          map[string]string `json:"labels"`
	UpgradeStrategy struct {
		MinimumHealthCapacity float64 `json:"minimumHealthCapacity"`
		MaximumOverCapacity   float64 `json:"maximumOverCapacity"`
	} `json:"upgradeStrategy"`
	UnreachableStrategy json.RawMessage `json:"unreachableStrategy"`
}

type marathonVolume struct {
	ContainerPath string `json:"containerPath"`
	HostPath      string `json:"hostPath"`
	Mode          string `json:"mode"`
	Secret        string `json:"secret"`
	Persistent    *struct {
		Size int `json:"size"`
	} `json:"persistent"`
}

type marathonPort struct {
	Name          string `json:"name"`
	Port          int    `json:"port"`
	ContainerPort int    `json:"containerPort"`
	ServicePort   int    `json:"servicePort"`
}

type marathonGroup struct {
	ID           string          `json:"id"`
	Apps         []marathonApp   `json:"apps"`
	Groups       []marathonGroup `json:"groups"`
	Dependencies []string        `json:"dependencies"`
}

// ports are the ports of a task in the order portIndex counts them: the
// port mappings with a bridge network, the port definitions with host
// networking. For a mapping, the port the process listens on is the
// container port.
func (a marathonApp) ports() []marathonPort {
	if len(a.Container.PortMappings) > 0 {
		out := slices.Clone(a.Container.PortMappings)
		for i := range out {
			out[i].Port = out[i].ContainerPort
		}
		return out
	}
	return a.PortDefinitions
}

func (a marathonApp) port(name string) (int, bool) {
	for _, p := range a.ports() {
		if p.Name == name {
			return p.Port, true
		}
	}
	return 0, false
}

// arg returns the value after flag in the app's args.
func (a marathonApp) arg(flag string) string {
	if i := slices.Index(a.Args, flag); i >= 0 && i+1 < len(a.Args) {
		return a.Args[i+1]
	}
	return ""
}

// mesosDNS is the Mesos-DNS name of a Marathon app: /slipway/nats/nats-0 is
// nats-0-nats-slipway.marathon.mesos.
func mesosDNS(appID string) string {
	segs := strings.Split(strings.Trim(appID, "/"), "/")
	slices.Reverse(segs)
	return strings.Join(segs, "-") + ".marathon.mesos"
}

func portOf(t *testing.T, listen string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(listen)
	if err != nil {
		t.Fatalf("listen %q: %v", listen, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("listen %q: %v", listen, err)
	}
	return n
}

// TestMarathonGroup posts deploy/marathon/slipway.json to the Marathon
// emulator, waits for its deployment and checks the group Marathon keeps,
// then checks that deploy/marathon/slipway.yaml agrees with it.
func TestMarathonGroup(t *testing.T) {
	body, err := os.ReadFile("marathon/slipway.json")
	if err != nil {
		t.Fatal(err)
	}
	em := emulator.New(emulator.Options{DeployDuration: 20 * time.Millisecond})
	srv := httptest.NewServer(em.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(em.Close)

	resp, err := http.Post(srv.URL+"/v2/groups", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		DeploymentID string `json:"deploymentId"`
		Message      string `json:"message"`
		Details      any    `json:"details"`
	}
	err = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated || created.DeploymentID == "" {
		t.Fatalf("POST /v2/groups: %d %s %v (%v)", resp.StatusCode, created.Message, created.Details, err)
	}
	if got := resp.Header.Get("Marathon-Deployment-Id"); got != created.DeploymentID {
		t.Errorf("Marathon-Deployment-Id %q, body %q", got, created.DeploymentID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := em.WaitDeployment(ctx, created.DeploymentID)
	if err != nil || !res.Success {
		t.Fatalf("deployment %s: %+v %v", created.DeploymentID, res, err)
	}

	resp, err = http.Get(srv.URL + "/v2/groups/slipway")
	if err != nil {
		t.Fatal(err)
	}
	var root marathonGroup
	err = json.NewDecoder(resp.Body).Decode(&root)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/groups/slipway: %d %v", resp.StatusCode, err)
	}
	groups := map[string]marathonGroup{}
	for _, g := range root.Groups {
		groups[g.ID] = g
	}
	natsGroup, services := groups["/slipway/nats"], groups["/slipway/services"]
	if root.ID != "/slipway" || len(root.Groups) != 2 || natsGroup.ID == "" || services.ID == "" {
		t.Fatalf("want /slipway with /slipway/nats and /slipway/services, got %s with %d groups", root.ID, len(root.Groups))
	}
	if !slices.Equal(services.Dependencies, []string{"/slipway/nats"}) {
		t.Errorf("/slipway/services dependencies %v, want [/slipway/nats]", services.Dependencies)
	}

	nats := checkNATS(t, natsGroup.Apps)
	apps := checkServices(t, services.Apps)
	checkConfig(t, nats, apps)
}

// checkNATS checks the three JetStream nodes and returns them by id.
func checkNATS(t *testing.T, apps []marathonApp) map[string]marathonApp {
	t.Helper()
	byID := map[string]marathonApp{}
	for _, a := range apps {
		byID[a.ID] = a
	}
	var ids []string
	for i := range 3 {
		ids = append(ids, "/slipway/nats/nats-"+strconv.Itoa(i))
	}
	if len(apps) != 3 {
		t.Fatalf("want the NATS apps %v, got %d apps", ids, len(apps))
	}
	for _, id := range ids {
		a, ok := byID[id]
		if !ok {
			t.Fatalf("NATS app %s missing", id)
		}
		name := id[strings.LastIndex(id, "/")+1:]
		if a.Instances != 1 || a.arg("-n") != name || !slices.Contains(a.Args, "-js") || a.arg("--cluster_name") == "" {
			t.Errorf("%s: want one instance, -n %s, -js, --cluster_name; got %d %v", id, name, a.Instances, a.Args)
		}
		// A local persistent volume (relative containerPath, as Mesos
		// wants) mounted where the store directory (-sd) is.
		var persistent string
		for _, v := range a.Container.Volumes {
			if v.Persistent != nil && v.Persistent.Size > 0 && v.Mode == "RW" {
				persistent = v.ContainerPath
			}
		}
		if persistent == "" || strings.Contains(persistent, "/") {
			t.Errorf("%s: want a persistent volume with a one-segment containerPath, got %+v", id, a.Container.Volumes)
		}
		store := a.arg("-sd")
		mounted := false
		for _, v := range a.Container.Volumes {
			mounted = mounted || (v.ContainerPath == store && v.HostPath == persistent && persistent != "")
		}
		if !mounted {
			t.Errorf("%s: the store directory %q is not the persistent volume %q", id, store, persistent)
		}
		// Marathon's rules for resident apps.
		if a.UpgradeStrategy.MaximumOverCapacity != 0 || a.UpgradeStrategy.MinimumHealthCapacity > 0.5 {
			t.Errorf("%s: a resident app needs maximumOverCapacity 0 and minimumHealthCapacity <= 0.5, got %+v", id, a.UpgradeStrategy)
		}
		if string(a.UnreachableStrategy) != `"disabled"` {
			t.Errorf("%s: a resident app needs unreachableStrategy disabled, got %s", id, a.UnreachableStrategy)
		}
		// Fixed host ports, so that Mesos-DNS names and routes work.
		if len(a.Networks) != 1 || a.Networks[0].Mode != "host" || !a.RequirePorts {
			t.Errorf("%s: want host networking with requirePorts, got %+v %v", id, a.Networks, a.RequirePorts)
		}
		client, _ := a.port("client")
		cluster, _ := a.port("cluster")
		monitor, _ := a.port("monitor")
		if a.arg("-p") != itoa(client) || a.arg("-m") != itoa(monitor) || a.arg("--cluster") != "nats://0.0.0.0:"+itoa(cluster) || client == 0 {
			t.Errorf("%s: args %v do not match the ports %+v", id, a.Args, a.ports())
		}
		var routes []string
		for _, other := range ids {
			if other != id {
				routes = append(routes, "nats://"+mesosDNS(other)+":"+itoa(cluster))
			}
		}
		if got := strings.Split(a.arg("--routes"), ","); !slices.Equal(got, routes) {
			t.Errorf("%s: routes %v, want %v", id, got, routes)
		}
		if !slices.ContainsFunc(a.Constraints, func(c []string) bool { return slices.Equal(c, []string{"hostname", "UNIQUE"}) }) {
			t.Errorf("%s: constraints %v lack hostname UNIQUE", id, a.Constraints)
		}
		if len(a.HealthChecks) != 1 {
			t.Fatalf("%s: health checks %+v", id, a.HealthChecks)
		}
		hc := a.HealthChecks[0]
		if hc.Protocol != "MESOS_HTTP" || hc.Path != "/healthz?js-enabled-only=true" || hc.PortIndex >= len(a.ports()) || a.ports()[hc.PortIndex].Port != monitor {
			t.Errorf("%s: health check %+v, want MESOS_HTTP /healthz?js-enabled-only=true on the monitor port", id, hc)
		}
		if a.Cpus <= 0 || a.Mem < 512 {
			t.Errorf("%s: resources cpus %v mem %v", id, a.Cpus, a.Mem)
		}
	}
	return byID
}

// checkServices checks the four services and the console and returns them
// by name.
func checkServices(t *testing.T, apps []marathonApp) map[string]marathonApp {
	t.Helper()
	byName := map[string]marathonApp{}
	for _, a := range apps {
		byName[strings.TrimPrefix(a.ID, "/slipway/services/")] = a
	}
	names := []string{"ingest", "promoter", "deployer", "notifier", "console"}
	if len(apps) != len(names) {
		t.Fatalf("want the services %v, got %d apps", names, len(apps))
	}
	for _, name := range names {
		a, ok := byName[name]
		if !ok {
			t.Fatalf("service %s missing", name)
		}
		if img := a.Container.Docker.Image; !strings.HasPrefix(img, "ghcr.io/slipway-cd/"+name+":") {
			t.Errorf("%s: image %q", name, img)
		}
		if a.Instances < 2 || a.Cpus <= 0 || a.Mem < 128 {
			t.Errorf("%s: instances %d cpus %v mem %v", name, a.Instances, a.Cpus, a.Mem)
		}
		// The config file is a DC/OS file-based secret, which needs the
		// Universal Container Runtime.
		cfgPath := a.arg("--config")
		fromSecret := false
		for _, v := range a.Container.Volumes {
			if v.ContainerPath == cfgPath && v.Secret != "" {
				_, fromSecret = a.Secrets[v.Secret]
			}
			if v.Secret != "" {
				if _, ok := a.Secrets[v.Secret]; !ok {
					t.Errorf("%s: volume %s uses the undeclared secret %q", name, v.ContainerPath, v.Secret)
				}
			}
		}
		if cfgPath == "" || !fromSecret || a.Container.Type != "MESOS" {
			t.Errorf("%s: --config %q must be a secret volume of a MESOS container (type %s)", name, cfgPath, a.Container.Type)
		}
		for k, raw := range a.Env {
			var ref struct {
				Secret string `json:"secret"`
			}
			if json.Unmarshal(raw, &ref) == nil && ref.Secret != "" {
				if _, ok := a.Secrets[ref.Secret]; !ok {
					t.Errorf("%s: env %s uses the undeclared secret %q", name, k, ref.Secret)
				}
			}
		}
		if len(a.HealthChecks) != 1 || a.HealthChecks[0].Protocol != "MESOS_HTTP" || a.HealthChecks[0].Path != "/healthz" || a.HealthChecks[0].PortIndex >= len(a.ports()) {
			t.Errorf("%s: health checks %+v, want one MESOS_HTTP /healthz", name, a.HealthChecks)
		}
		if len(a.ReadinessChecks) != 1 || a.ReadinessChecks[0].Path != "/readyz" {
			t.Errorf("%s: readiness checks %+v, want one on /readyz", name, a.ReadinessChecks)
		} else if _, ok := a.port(a.ReadinessChecks[0].PortName); !ok {
			t.Errorf("%s: the readiness check's port %q is not a port name of the app", name, a.ReadinessChecks[0].PortName)
		} else if hc := a.HealthChecks[0]; len(a.HealthChecks) == 1 && hc.PortIndex < len(a.ports()) && a.ports()[hc.PortIndex].Name != a.ReadinessChecks[0].PortName {
			t.Errorf("%s: health and readiness checks on different ports", name)
		}
		if s := a.UpgradeStrategy; s.MinimumHealthCapacity < 0.5 || s.MaximumOverCapacity > 0.5 {
			t.Errorf("%s: upgradeStrategy %+v keeps too few instances serving", name, s)
		}
	}
	ingest := byName["ingest"]
	for k, v := range map[string]string{"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "slipway.example.com", "HAPROXY_0_MODE": "http"} {
		if ingest.Labels[k] != v {
			t.Errorf("ingest label %s = %q, want %q", k, ingest.Labels[k], v)
		}
	}
	if p := ingest.Container.PortMappings; len(p) == 0 || p[0].ServicePort == 0 {
		t.Errorf("ingest: marathon-lb needs a service port on the first port mapping: %+v", p)
	}
	// The console is published by marathon-lb on a host of its own, over
	// HTTPS only (its session cookie and login callback), on a service
	// port of its own.
	console := byName["console"]
	for k, v := range map[string]string{"HAPROXY_GROUP": "external", "HAPROXY_0_MODE": "http", "HAPROXY_0_REDIRECT_TO_HTTPS": "true"} {
		if console.Labels[k] != v {
			t.Errorf("console label %s = %q, want %q", k, console.Labels[k], v)
		}
	}
	if v := console.Labels["HAPROXY_0_VHOST"]; v == "" || v == ingest.Labels["HAPROXY_0_VHOST"] {
		t.Errorf("console: HAPROXY_0_VHOST %q, want a host of its own (the console serves from the root)", v)
	}
	if p := console.Container.PortMappings; len(p) == 0 || p[0].ServicePort == 0 || p[0].ServicePort == ingest.Container.PortMappings[0].ServicePort {
		t.Errorf("console: marathon-lb needs a service port of its own on the first port mapping: %+v", p)
	}
	return byName
}

// envRef matches ${VAR} references; the second group is set when the
// reference has a default (${VAR:-default}) and so needs no variable.
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-)?`)

// checkConfig loads deploy/marathon/slipway.yaml as the services would and
// checks that it matches the group.
func checkConfig(t *testing.T, nats, apps map[string]marathonApp) {
	t.Helper()
	const file = "marathon/slipway.yaml"
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// Every service loads (and validates) the whole file, so each needs
	// every variable it names.
	vars := map[string]bool{}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, m := range envRef.FindAllStringSubmatch(line, -1) {
			if m[2] == "" {
				vars[m[1]] = true
			}
		}
	}
	for name, a := range apps {
		for v := range vars {
			if _, ok := a.Env[v]; !ok {
				t.Errorf("%s: the config needs ${%s}, the app's env lacks it", name, v)
			}
		}
	}
	for v := range vars {
		t.Setenv(v, "test-"+strings.ToLower(v))
	}
	// SLIPWAY_SECRETS_DIR only moves the key files for a local check;
	// empty, the paths are where the deployer mounts them.
	t.Setenv("SLIPWAY_SECRETS_DIR", "")
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}

	// nats.url names every node by its Mesos-DNS name and client port.
	var want []string
	for id, a := range nats {
		p, _ := a.port("client")
		want = append(want, "nats://"+mesosDNS(id)+":"+itoa(p))
	}
	got := strings.Split(cfg.NATS.URL, ",")
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("nats.url %v, want %v", got, want)
	}
	if cfg.NATS.Stream.Replicas != len(nats) {
		t.Errorf("nats.stream.replicas %d, want %d (one per node)", cfg.NATS.Stream.Replicas, len(nats))
	}

	ingest := apps["ingest"]
	if hp := ingest.ports()[ingest.HealthChecks[0].PortIndex].Port; hp != portOf(t, cfg.Ingest.Listen) {
		t.Errorf("ingest.listen %q, but ingest's health check port is %d", cfg.Ingest.Listen, hp)
	}
	if p, _ := ingest.port(ingest.ReadinessChecks[0].PortName); p != portOf(t, cfg.Ingest.Listen) {
		t.Errorf("ingest.listen %q, but ingest's port is %d", cfg.Ingest.Listen, p)
	}
	for _, name := range []string{"promoter", "deployer", "notifier"} {
		a := apps[name]
		if hp := a.ports()[a.HealthChecks[0].PortIndex].Port; hp != portOf(t, cfg.Ops.Listen) {
			t.Errorf("ops.listen %q, but %s's health check port is %d", cfg.Ops.Listen, name, hp)
		}
	}

	checkConsoleConfig(t, cfg, apps["console"])

	// The deployer mounts every cluster's service account key.
	deployer := apps["deployer"]
	for _, cl := range cfg.Clusters {
		if cl.Marathon.Auth.DCOS == nil {
			t.Errorf("cluster %s: want DC/OS service account auth", cl.Name)
			continue
		}
		mounted := slices.ContainsFunc(deployer.Container.Volumes, func(v marathonVolume) bool {
			return v.ContainerPath == cl.Marathon.Auth.DCOS.PrivateKeyFile && v.Secret != ""
		})
		if !mounted {
			t.Errorf("cluster %s: privateKeyFile %s is not a secret volume of the deployer", cl.Name, cl.Marathon.Auth.DCOS.PrivateKeyFile)
		}
	}
}

// checkConsoleConfig checks the console's section against its app: it
// listens where its checks look, logs users in with OpenID Connect (no
// auth.none on a cluster) with the client secret from the environment, and
// its redirect URL is the host marathon-lb publishes it on, over HTTPS.
func checkConsoleConfig(t *testing.T, cfg *config.Config, console marathonApp) {
	t.Helper()
	listen := cfg.Console.Listen
	if listen == "" {
		listen = fmt.Sprintf(":%d", consolePort)
	}
	port := portOf(t, listen)
	if hp := console.ports()[console.HealthChecks[0].PortIndex].Port; hp != port {
		t.Errorf("console.listen %q, but the console's health check port is %d", listen, hp)
	}
	if p, _ := console.port(console.ReadinessChecks[0].PortName); p != port {
		t.Errorf("console.listen %q, but the console's readiness port is %d", listen, p)
	}
	o := cfg.Console.Auth.OIDC
	if o == nil || cfg.Console.Auth.None {
		t.Fatalf("console: want console.auth.oidc and not none (anyone could do anything), got %+v", cfg.Console.Auth)
	}
	if o.ClientSecret != "test-oidc_client_secret" {
		t.Errorf("console.auth.oidc.clientSecret should be ${OIDC_CLIENT_SECRET} from the environment")
	}
	u, err := url.Parse(o.RedirectURL)
	if err != nil || u.Scheme != "https" || u.Host != console.Labels["HAPROXY_0_VHOST"] || u.Path != config.CallbackPath {
		t.Errorf("console.auth.oidc.redirectUrl %q, want https://%s%s", o.RedirectURL, console.Labels["HAPROXY_0_VHOST"], config.CallbackPath)
	}
	if len(cfg.Roles)+len(cfg.Console.Roles) == 0 {
		t.Errorf("console: no roles, so nobody could see anything")
	}
	// Roles apply to the approval API and Slack too: an approver a
	// promotion names but no role lets approve in its target environment
	// would be refused everywhere.
	policy := access.New(cfg)
	for _, pr := range cfg.Promotions {
		for _, name := range pr.Approval.Approvers {
			if !policy.Can(access.Identity{Name: name}, access.Approve, pr.To) {
				t.Errorf("promotion %s names approver %s, but no role lets %s approve in %s", pr.Name, name, name, pr.To)
			}
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
