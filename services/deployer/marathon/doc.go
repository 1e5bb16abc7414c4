// Package marathon is a small typed client for the Marathon REST API (v2)
// as the deployer needs it: list and read apps, change an app's image,
// watch and cancel deployments, and follow the event stream.
//
// It exists because the only Go client, gambol99/go-marathon, is not fit
// for unattended deployments: it has been unmaintained since 2017; its
// updates PUT the whole app struct back, including `version`, which
// Marathon reads as "roll back to that version"; its event stream loses
// events on reconnect without telling the caller; and it cannot tell a
// cancelled deployment from a successful one. This client sends only the
// fields it is asked to change, keeps the container definition verbatim,
// reports every (re)connection of the event stream so callers can resync,
// and returns the rollback deployment a cancel starts.
//
// Authentication covers open-source Marathon (HTTP Basic) and DC/OS (a
// static token, or a service account that logs in with an RS256-signed
// JWT and renews its token before it expires). Secrets never appear in
// logs or errors.
package marathon
