package natsconn

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/platform/config"
	"github.com/slipway-cd/slipway/pkg/testkit"
)

// storageEnv is an embedded server (through Connect) with a stream S on
// s.> and a durable consumer on it, created before anything goes wrong.
type storageEnv struct {
	conn  *Conn
	cons  jetstream.Consumer
	acked map[string]bool // message ids JetStream acknowledged
}

func startStorageEnv(t *testing.T, storeDir string) *storageEnv {
	t.Helper()
	prev := storageCheckInterval
	storageCheckInterval = 100 * time.Millisecond
	t.Cleanup(func() { storageCheckInterval = prev })
	conn, err := Connect(t.Context(), config.NATS{Embedded: config.Embedded{Listen: "127.0.0.1:0", StoreDir: storeDir}}, quiet, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	ctx := t.Context()
	if _, err := conn.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	cons, err := conn.JS.CreateOrUpdateConsumer(ctx, "S", jetstream.ConsumerConfig{Durable: "d", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	return &storageEnv{conn: conn, cons: cons, acked: map[string]bool{}}
}

// publish stores one message of size bytes, waiting at most 2s for the ack
// (a write that fails gets no answer at all).
func (e *storageEnv) publish(t *testing.T, size int) error {
	t.Helper()
	id := fmt.Sprintf("m%d", len(e.acked)+1)
	for e.acked[id] {
		id += "+"
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	_, err := e.conn.JS.Publish(ctx, "s.x", make([]byte, size), jetstream.WithMsgID(id))
	if err == nil {
		e.acked[id] = true
	}
	return err
}

// publishUntilRefused publishes until a publish fails, and returns its error.
func (e *storageEnv) publishUntilRefused(t *testing.T, size int) error {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if err := e.publish(t, size); err != nil {
			return err
		}
	}
	t.Fatal("every publish was stored for 60s")
	return nil
}

// waitStoring waits until a publish is stored and Storage says ready.
func (e *storageEnv) waitStoring(t *testing.T, size int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = e.publish(t, size); err == nil {
			if err = e.conn.Storage(t.Context()); err == nil {
				return
			}
		}
		time.Sleep(100 * time.Millisecond) // a new attempt, as a registry would retry
	}
	t.Fatalf("JetStream does not store again within 60s: %v", err)
}

// assertNothingLost reads the consumer and checks that every acknowledged
// message is delivered.
func (e *storageEnv) assertNothingLost(t *testing.T) {
	t.Helper()
	want := len(e.acked)
	seen := map[string]bool{}
	deadline := time.Now().Add(60 * time.Second)
	for len(seen) < want && time.Now().Before(deadline) {
		batch, err := e.cons.Fetch(want, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			continue
		}
		for m := range batch.Messages() {
			seen[m.Headers().Get(jetstream.MsgIDHeader)] = true
			_ = m.Ack()
		}
	}
	for id := range e.acked {
		if !seen[id] {
			t.Errorf("acknowledged message %s never delivered", id)
		}
	}
}

func wantStorageProblem(t *testing.T, c *Conn, want string) {
	t.Helper()
	err := c.Storage(t.Context())
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Storage() = %v, want a reason with %q", err, want)
	}
}

// TestEmbeddedStoreRecoversAfterTheDiskWasFull fills the disk of the
// embedded server's store: publishes fail and Storage says why; once the
// space is freed, publishes are stored again without a restart of the
// process, and every message JetStream acknowledged before, during and after
// is delivered. Needs root (a tmpfs).
func TestEmbeddedStoreRecoversAfterTheDiskWasFull(t *testing.T) {
	disk := testkit.SmallDisk(t, 20<<20)
	e := startStorageEnv(t, filepath.Join(disk, "nats"))
	if err := e.publish(t, 1024); err != nil {
		t.Fatal(err)
	}
	free := testkit.FillDisk(t, disk, 0)
	t.Logf("refused once full: %v", e.publishUntilRefused(t, 1024))
	wantStorageProblem(t, e.conn, "no space left on device")

	free()
	e.waitStoring(t, 1024)
	e.assertNothingLost(t)
}

// TestEmbeddedJetStreamTurnedOffComesBack turns JetStream off the way the
// server does itself after a write its file system refused: Storage says
// so, and JetStream comes back and stores.
func TestEmbeddedJetStreamTurnedOffComesBack(t *testing.T) {
	e := startStorageEnv(t, t.TempDir())
	if err := e.publish(t, 1024); err != nil {
		t.Fatal(err)
	}
	if err := e.conn.Embedded().ShutdownJetStream(); err != nil {
		t.Fatal(err)
	}
	if err := e.conn.Storage(t.Context()); err == nil || !strings.Contains(err.Error(), "JetStream") {
		t.Fatalf("Storage() = %v, want JetStream named as off or restarting", err)
	}
	e.waitStoring(t, 1024)
	e.assertNothingLost(t)
}

// TestEmbeddedStoreAtItsLimitRecoversOnceTheDiskHasRoom starts the embedded
// server on a nearly full disk, so that JetStream sets itself a small
// storage limit, and fills the stream up to it: publishes are refused and
// Storage says why; once the disk has room, JetStream takes a higher limit
// and stores again. Needs root (a tmpfs).
func TestEmbeddedStoreAtItsLimitRecoversOnceTheDiskHasRoom(t *testing.T) {
	disk := testkit.SmallDisk(t, 20<<20)
	free := testkit.FillDisk(t, disk, 6<<20)
	e := startStorageEnv(t, filepath.Join(disk, "nats"))
	t.Logf("refused at the limit: %v", e.publishUntilRefused(t, 64<<10))
	wantStorageProblem(t, e.conn, "storage limit")

	free()
	e.waitStoring(t, 64<<10)
	e.assertNothingLost(t)
}
