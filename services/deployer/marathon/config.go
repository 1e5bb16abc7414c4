package marathon

import (
	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// CheckConfig checks the marathon block of a cluster (path is its key path,
// "clusters[0].marathon"): its URL, one kind of auth with what that kind
// needs, and that a client can be made of it (the CA file, the DC/OS
// service account's key). The deployer's platform table runs it for
// clusters of type marathon.
func CheckConfig(cluster string, m config.Marathon, path string, p *config.Problems) {
	before := len(*p)
	config.CheckHTTPURL(p, path+".url", m.URL, config.RedactURL)
	a := m.Auth
	if config.CountSet(a.None, a.Basic != nil, a.DCOS != nil, a.Token != "") > 1 {
		p.Add(path+".auth", "set one of none, basic, dcos, token")
	}
	if a.DCOS != nil && a.DCOS.PrivateKeyFile == "" {
		// uid may come from the service-account JSON in privateKeyFile;
		// New reads the file.
		p.Add(path+".auth.dcos.privateKeyFile", "is required")
	}
	if a.Basic != nil {
		config.CheckBasicAuth(p, path+".auth.basic", a.Basic)
	}
	// New finds what only a client knows; with a key already wrong it
	// would say the same again.
	if len(*p) == before {
		if _, err := New(cluster, m); err != nil {
			p.Add(path, "%v", err)
		}
	}
}
