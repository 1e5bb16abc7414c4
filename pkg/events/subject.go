package events

import (
	"fmt"
)

// SubjectPrefix is the first token of every Slipway subject; the stream
// captures SubjectPrefix + ".>".
const SubjectPrefix = "slipway"

// ValidToken reports whether s can stand as one NATS subject token (an
// environment name, for instance): no dots, wildcards or white space. The
// accepted set is ^[a-zA-Z0-9_-]+$; a loop rather than a regular expression,
// since every event built and published checks it.
func ValidToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Subject returns the NATS subject of an event: slipway.<noun>.<verb>.<environment>.
func Subject(t Type, environment string) (string, error) {
	short, err := subjectParts(t, environment)
	if err != nil {
		return "", err
	}
	return SubjectPrefix + "." + short + "." + environment, nil
}

// subjectParts checks that t and environment make a subject and returns
// the type's short form, without building the subject.
func subjectParts(t Type, environment string) (short string, err error) {
	if !ValidToken(environment) {
		return "", fmt.Errorf("environment %q cannot be a subject token (letters, digits, '-' and '_' only)", environment)
	}
	short = t.Short()
	if short == string(t) || short == "" {
		return "", fmt.Errorf("event type %q is not a Slipway type", t)
	}
	return short, nil
}

// FilterSubject returns a subject filter for one type in all environments
// ("slipway.image.pushed.*"), or in one when environment is not empty.
func FilterSubject(t Type, environment string) string {
	if environment == "" {
		environment = "*"
	}
	return SubjectPrefix + "." + t.Short() + "." + environment
}
