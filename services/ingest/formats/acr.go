package formats

// Azure Container Registry webhooks: one Distribution-shaped event per
// request, without the {"events":[…]} envelope, and without actor. Actions
// are push, delete, quarantine, chart_push, chart_delete and ping (the
// portal's and `az acr webhook ping`'s test, which must get a 2xx). Helm
// charts pushed as OCI artifacts arrive as ordinary pushes; chart_push is
// the legacy ACR Helm repository.

func init() { register("acr", parseACR) }

func parseACR(d Delivery) (Result, error) {
	p, push, err := parseRegistryEvent("acr", d.Body)
	switch {
	case err != nil:
		return Result{}, err
	case !push:
		return Result{Ignored: 1}, nil
	}
	return Result{Pushes: []Push{p}}, nil
}
