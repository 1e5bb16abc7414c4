package deployer_test

import (
	"testing"

	"github.com/slipway-cd/slipway/pkg/testkit"
)

// putJSON sends a PUT to Marathon as an operator's tool would.
func putJSON(t *testing.T, url, body string) {
	t.Helper()
	testkit.PutJSON(t, url, body)
}
