package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/platform/natsconn"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

// TestFullDiskStopsIntakeLoudlyAndIntakeRecovers runs `slipway run --only
// ingest` with the embedded server's store on a small disk, and fills the
// disk: webhooks are answered 503 (the registry retries) and /readyz says
// not ready, naming the full disk. Once the space is freed, the retried
// webhook is accepted and /readyz is ready again, without a restart, and
// the stream holds every accepted push exactly once. Needs root (a tmpfs).
func TestFullDiskStopsIntakeLoudlyAndIntakeRecovers(t *testing.T) {
	disk := testkit.SmallDisk(t, 20<<20)
	natsAddr, httpAddr := testkit.FreeAddr(t), testkit.FreeAddr(t)
	cfgPath := writeRunConfig(t, natsAddr, filepath.Join(disk, "nats"), httpAddr)
	base := "http://" + httpAddr
	startRun(t, base+"/readyz", "run", "--config", cfgPath, "--only", "ingest")

	template, err := os.ReadFile("testdata/push.json")
	if err != nil {
		t.Fatal(err)
	}
	accepted := 0
	push := func(n int) int {
		body := strings.Replace(string(template), `"tag": "1.4.0"`, fmt.Sprintf(`"tag": "1.4.%d"`, n), 1)
		status, reply := postDistribution(t, base+"/webhooks/dev-registry", []byte(body), "s3cret")
		switch {
		case status == http.StatusAccepted && strings.Contains(reply, `"accepted":1`):
			accepted++
		case status == http.StatusAccepted && strings.Contains(reply, `"duplicates":1`):
		case status == http.StatusServiceUnavailable:
		default:
			t.Fatalf("push %d: %d %s", n, status, reply)
		}
		return status
	}
	if push(0) != http.StatusAccepted {
		t.Fatal("the first push was not accepted")
	}

	free := testkit.FillDisk(t, disk, 0)
	n := 1
	testkit.WaitFor(t, "a webhook answered 503 on the full disk", func() bool {
		if push(n) == http.StatusServiceUnavailable {
			return true
		}
		n++
		return false
	})
	status, failed := testkit.Readyz(t, base+"/readyz")
	if status != http.StatusServiceUnavailable || !strings.Contains(failed["storage"], "no space left on device") {
		t.Fatalf("/readyz on a full disk: %d %v, want 503 naming the full disk under storage", status, failed)
	}

	free()
	freed := time.Now()
	// The registry retries the delivery that was refused.
	testkit.WaitFor(t, "the retried webhook accepted once the space is free", func() bool {
		return push(n) == http.StatusAccepted
	})
	t.Logf("a webhook was accepted again %s after the space was freed", time.Since(freed).Round(100*time.Millisecond))
	if status, failed := testkit.Readyz(t, base+"/readyz"); status != http.StatusOK {
		t.Fatalf("/readyz once storing again: %d %v", status, failed)
	}

	conn, err := natsconn.Dial(config.NATS{}, "nats://"+natsAddr, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := conn.JS.Stream(t.Context(), "SLIPWAY")
	if err != nil {
		t.Fatal(err)
	}
	if got := stream.CachedInfo().State.Msgs; got != uint64(accepted) {
		t.Errorf("the stream holds %d events, %d pushes were accepted", got, accepted)
	}
}
