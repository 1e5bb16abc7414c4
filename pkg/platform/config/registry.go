package config

import (
	"net"
	"strings"
)

// Names reports whether host is a name of this registry: its host or one of
// its aliases. Names compare case-insensitively, and a name without a port
// equals the same name with the default port of HTTPS (443) or HTTP (80),
// the way a Host header or a payload writes them.
//
// It decides only whether a host someone else reported may stand for this
// registry; Slipway itself always reaches the registry at Host.
func (r Registry) Names(host string) bool {
	h := canonicalHost(host)
	if h == "" {
		return false
	}
	if canonicalHost(r.Host) == h {
		return true
	}
	for _, a := range r.Aliases {
		if canonicalHost(a) == h {
			return true
		}
	}
	return false
}

// canonicalHost lowercases a host[:port] and drops a default port.
func canonicalHost(h string) string {
	h = strings.ToLower(strings.TrimSpace(h))
	if name, port, err := net.SplitHostPort(h); err == nil && (port == "443" || port == "80") {
		if strings.Contains(name, ":") { // IPv6: keep the brackets
			return "[" + name + "]"
		}
		return name
	}
	return h
}

// ValidHost reports whether s is a host[:port] with nothing else: no
// scheme, path, user or blanks.
func ValidHost(s string) bool {
	return s != "" && !strings.ContainsAny(s, "/@ \t?#")
}
