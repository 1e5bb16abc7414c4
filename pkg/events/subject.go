package events

import (
	"fmt"
	"regexp"
)

// SubjectPrefix is the first token of every Slipway subject; the stream
// captures SubjectPrefix + ".>".
const SubjectPrefix = "slipway"

var tokenRE = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// ValidToken reports whether s can stand as one NATS subject token (an
// environment name, for instance): no dots, wildcards or white space.
func ValidToken(s string) bool { return tokenRE.MatchString(s) }

// Subject returns the NATS subject of an event: slipway.<noun>.<verb>.<environment>.
func Subject(t Type, environment string) (string, error) {
	if !ValidToken(environment) {
		return "", fmt.Errorf("environment %q cannot be a subject token (letters, digits, '-' and '_' only)", environment)
	}
	short := t.Short()
	if short == string(t) || short == "" {
		return "", fmt.Errorf("event type %q is not a Slipway type", t)
	}
	return SubjectPrefix + "." + short + "." + environment, nil
}

// FilterSubject returns a subject filter for one type in all environments
// ("slipway.image.pushed.*"), or in one when environment is not empty.
func FilterSubject(t Type, environment string) string {
	if environment == "" {
		environment = "*"
	}
	return SubjectPrefix + "." + t.Short() + "." + environment
}
