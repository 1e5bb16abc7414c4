package docker

import (
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"
)

// cloneConfig returns what creates a container like old: its Config
// without what its image (base, nil when unknown) brought, its HostConfig,
// the endpoint of its network mode's network, and the other networks to
// connect before it starts (API 1.25 takes one network at create). node is
// the engine's host name.
func cloneConfig(old *container.InspectResponse, base *image.InspectResponse, node string) (*container.Config, *container.HostConfig, *network.NetworkingConfig, map[string]*network.EndpointSettings) {
	cfg := *old.Config
	cfg.Labels = maps.Clone(old.Config.Labels)
	if cfg.Labels == nil {
		cfg.Labels = map[string]string{}
	}
	// Slipway's own marks describe the old container, not the new one.
	delete(cfg.Labels, LabelReplaces)
	delete(cfg.Labels, LabelReplacesImage)
	hc := container.HostConfig{}
	if old.HostConfig != nil {
		hc = *old.HostConfig
	}
	short := old.ID
	if len(short) > 12 {
		short = short[:12]
	}
	// The engine names a container's host after its id when the user gave
	// no hostname, and after the host under network mode host.
	if cfg.Hostname == short || (hc.NetworkMode.IsHost() && cfg.Hostname == node) {
		cfg.Hostname = ""
	}
	if base != nil && base.Config != nil {
		withoutImageDefaults(&cfg, base)
	}
	hc.Binds = append(slices.Clone(hc.Binds), anonymousVolumes(old)...)
	nc, extra := networks(old, hc.NetworkMode, short)
	return &cfg, &hc, nc, extra
}

// withoutImageDefaults clears from cfg what equals the image's own value,
// so that the new image brings its own (see the package doc).
func withoutImageDefaults(cfg *container.Config, base *image.InspectResponse) {
	ic := base.Config
	imageEnv := map[string]bool{}
	for _, e := range ic.Env {
		imageEnv[e] = true
	}
	var env []string
	for _, e := range cfg.Env {
		if !imageEnv[e] {
			env = append(env, e)
		}
	}
	cfg.Env = env
	// A user's entrypoint resets the image's command, so the command goes
	// with it; a user's command alone keeps the image's entrypoint.
	if slices.Equal(cfg.Entrypoint, ic.Entrypoint) {
		cfg.Entrypoint = nil
		if slices.Equal(cfg.Cmd, ic.Cmd) {
			cfg.Cmd = nil
		}
	}
	if cfg.Healthcheck != nil && ic.Healthcheck != nil && reflect.DeepEqual(*cfg.Healthcheck, container.HealthConfig(*ic.Healthcheck)) {
		cfg.Healthcheck = nil
	}
	for k, v := range ic.Labels {
		if cfg.Labels[k] == v {
			delete(cfg.Labels, k)
		}
	}
	if cfg.User == ic.User {
		cfg.User = ""
	}
	if cfg.WorkingDir == ic.WorkingDir {
		cfg.WorkingDir = ""
	}
	if cfg.StopSignal == ic.StopSignal {
		cfg.StopSignal = ""
	}
	if len(cfg.ExposedPorts) > 0 {
		ports := nat.PortSet{}
		for p := range cfg.ExposedPorts {
			if _, ok := ic.ExposedPorts[string(p)]; !ok {
				ports[p] = struct{}{}
			}
		}
		cfg.ExposedPorts = ports
	}
	if len(cfg.Volumes) > 0 {
		vols := map[string]struct{}{}
		for v := range cfg.Volumes {
			if _, ok := ic.Volumes[v]; !ok {
				vols[v] = struct{}{}
			}
		}
		cfg.Volumes = vols
	}
	if slices.Equal(cfg.Shell, ic.Shell) {
		cfg.Shell = nil
	}
	if slices.Equal(cfg.OnBuild, ic.OnBuild) {
		cfg.OnBuild = nil
	}
	cfg.ArgsEscaped = false
}

// anonymousVolumes are binds that mount old's anonymous volumes (an image's
// VOLUME, a bare -v /path) at the same places, so their data carries over.
func anonymousVolumes(old *container.InspectResponse) []string {
	named := map[string]bool{}
	if old.HostConfig != nil {
		for _, b := range old.HostConfig.Binds {
			// source:destination[:options]
			if parts := strings.Split(b, ":"); len(parts) > 1 {
				named[parts[1]] = true
			}
		}
		for _, m := range old.HostConfig.Mounts {
			named[m.Target] = true
		}
	}
	var out []string
	for _, m := range old.Mounts {
		if m.Type != mount.TypeVolume || m.Name == "" || named[m.Destination] {
			continue
		}
		b := m.Name + ":" + m.Destination
		if !m.RW {
			b += ":ro"
		}
		out = append(out, b)
	}
	return out
}

// networks returns the endpoint to create the container with (the
// network of its network mode) and the rest of its networks, each with
// what the user set: aliases (without the one the engine derives from the
// old id), links, IPAM addresses, driver options.
func networks(old *container.InspectResponse, mode container.NetworkMode, short string) (*network.NetworkingConfig, map[string]*network.EndpointSettings) {
	nc := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{}}
	if old.NetworkSettings == nil || mode.IsHost() || mode.IsNone() || mode.IsContainer() {
		return nc, nil
	}
	extra := map[string]*network.EndpointSettings{}
	primary := mode.NetworkName()
	if mode.IsDefault() {
		primary = network.NetworkBridge
	}
	for n, es := range old.NetworkSettings.Networks {
		if es == nil {
			continue
		}
		e := &network.EndpointSettings{
			IPAMConfig: es.IPAMConfig,
			Links:      es.Links,
			DriverOpts: es.DriverOpts,
		}
		for _, a := range es.Aliases {
			if a != short {
				e.Aliases = append(e.Aliases, a)
			}
		}
		if n == primary || n == string(mode) {
			nc.EndpointsConfig[n] = e
		} else {
			extra[n] = e
		}
	}
	return nc, extra
}
