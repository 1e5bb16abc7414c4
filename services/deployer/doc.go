// Package deployer is Slipway's deployer service: for each Marathon cluster
// of the configuration it consumes image.pushed and image.promoted events of
// the cluster's environment, finds the apps that run that image and opted in
// with a slipway.policy label, updates their image, follows the Marathon
// deployment to health, and rolls it back when it does not get there. It
// carries out the manual rollbacks and redeploys a person asks for
// (action.requested) the same way (action.go).
//
// Each effect happens once: a JetStream KV record per (cluster, app, image)
// carries a deployment through its phases, so a redelivered event or a
// restarted deployer resumes where the last one stopped instead of updating
// the app again.
package deployer
