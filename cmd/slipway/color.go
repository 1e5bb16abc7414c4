package main

import (
	"io"
	"os"

	"github.com/slipway-cd/slipway/pkg/events"
)

// isTerminal reports whether w is a terminal (a character device), not a
// pipe or a file.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// colorWanted decides colours: only on a terminal, never with NO_COLOR set
// to anything (https://no-color.org) or on a dumb terminal.
func colorWanted(tty bool, getenv func(string) string) bool {
	return tty && getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"
}

// ANSI SGR codes.
const (
	red    = "31"
	green  = "32"
	yellow = "33"
	cyan   = "36"
	faint  = "2"
)

// paint wraps s in the colour code; "" leaves it as it is.
func paint(code, s string) string {
	if code == "" {
		return s
	}
	return "\033[" + code + "m" + s + "\033[0m"
}

// typeColor is the colour of an event type: red what went wrong, green
// what went through, yellow what waits for or asks for a person.
func typeColor(t events.Type) string {
	switch t {
	case events.TypePromotionFailed, events.TypeDeploymentFailed, events.TypeNotificationFailed,
		events.TypeApprovalRejected, events.TypeEventDeadLettered:
		return red
	case events.TypeImagePromoted, events.TypeDeploymentSucceeded, events.TypeApprovalGranted:
		return green
	case events.TypeApprovalRequested, events.TypeDriftDetected, events.TypeComplianceViolated:
		return yellow
	case events.TypeImagePushed, events.TypeDeploymentStarted:
		return cyan
	}
	return ""
}
