package natsconn

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// The embedded server can stop storing, and nothing inside it starts again:
//
//   - A write that fails (a full disk: "no space left on device") is kept by
//     the stream as its write error for as long as the stream lives: every
//     later publish fails, unanswered, even once space is free again.
//   - Some failures (a write refused by the file system's permissions) make
//     the server turn JetStream off altogether.
//   - The server's storage limit, when it chose it itself, is 75% of the
//     disk space that was free when JetStream started; once the streams
//     reach it, every publish is refused ("resource limits exceeded for
//     server"), even after the disk has been cleaned up.
//
// Restarting JetStream (not the server: clients stay connected) reloads the
// streams from disk with a clean slate and works the limit out again. So a
// storageWatch looks at the server every few seconds, tells /readyz what is
// wrong, and restarts JetStream once the store directory can take writes (or,
// for the limit, once the disk has room for a higher one). Consumers resume
// by themselves: their pulls miss two heartbeats and are sent again.

// storageCheckInterval is how often the watch looks at the server.
var storageCheckInterval = 2 * time.Second

// maxRestartBackoff bounds the wait between restarts that did not help (the
// disk filled up again at once).
const maxRestartBackoff = time.Minute

// probeBytes is what the store directory must take before a restart: a
// little more than a message block's first writes.
const probeBytes = 1 << 20

// storageWatch keeps an embedded server's JetStream able to store.
type storageWatch struct {
	srv  *server.Server
	opts *server.Options // as the server was started
	log  *slog.Logger

	restarting atomic.Bool
	stop       chan struct{}
	done       sync.WaitGroup
}

// storageProblem is why JetStream cannot store; the zero value: it can.
type storageProblem struct {
	reason string
	// atLimit: the store reached the server's storage limit (rather than
	// failing to write).
	atLimit bool
}

func watchStorage(srv *server.Server, opts *server.Options, log *slog.Logger) *storageWatch {
	w := &storageWatch{srv: srv, opts: opts, log: log, stop: make(chan struct{})}
	w.done.Go(w.run)
	return w
}

// close stops the watch and waits for it (a restart in progress finishes).
func (w *storageWatch) close() {
	close(w.stop)
	w.done.Wait()
}

// ready returns why JetStream cannot store now, or nil.
func (w *storageWatch) ready() error {
	if w.restarting.Load() {
		return errors.New("JetStream is restarting after a storage failure")
	}
	if p := w.problem(); p.reason != "" {
		return errors.New(p.reason)
	}
	return nil
}

// problem looks at the server now.
func (w *storageWatch) problem() storageProblem {
	if !w.srv.JetStreamEnabled() {
		return storageProblem{reason: "JetStream is off: the server turned it off after a storage failure"}
	}
	// Healthz is the server's only public view of a stream's write error.
	// It also reports what is not a storage failure (a stream still being
	// created); only write errors count here.
	var werrs []string
	for _, e := range w.srv.Healthz(&server.HealthzOptions{Details: true}).Errors {
		if strings.Contains(e.Error, "write error") {
			werrs = append(werrs, e.Error)
		}
	}
	if len(werrs) > 0 {
		return storageProblem{reason: "cannot store: " + strings.Join(werrs, "; ")}
	}
	if jsz, err := w.srv.Jsz(nil); err == nil && jsz.Config.MaxStore > 0 && int64(jsz.Store) >= jsz.Config.MaxStore {
		return storageProblem{atLimit: true, reason: fmt.Sprintf(
			"cannot store: JetStream's storage limit is reached (%d of %d bytes used)", jsz.Store, jsz.Config.MaxStore)}
	}
	return storageProblem{}
}

func (w *storageWatch) run() {
	t := time.NewTicker(storageCheckInterval)
	defer t.Stop()
	var (
		failing  string // the reason last logged
		backoff  time.Duration
		nextTry  time.Time // no restart before
		restarts int       // since the last time it could store
	)
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		p := w.problem()
		if p.reason == "" {
			if failing != "" {
				w.log.Info("jetstream stores again", "restarts", restarts)
				failing, backoff, nextTry, restarts = "", 0, time.Time{}, 0
			}
			continue
		}
		if p.reason != failing {
			w.log.Error("jetstream cannot store: every publish fails until it can (ingest answers 503)", "reason", p.reason)
			failing = p.reason
		}
		if time.Now().Before(nextTry) {
			continue
		}
		if err := w.canRecover(p); err != nil {
			w.log.Debug("jetstream not restarted yet", "reason", err)
			continue
		}
		w.log.Warn("restarting jetstream to recover from a storage failure", "reason", p.reason)
		if err := w.restart(); err != nil {
			w.log.Error("jetstream restart failed", "err", err)
		}
		restarts++
		backoff = min(max(2*backoff, storageCheckInterval), maxRestartBackoff)
		nextTry = time.Now().Add(backoff)
	}
}

// canRecover says whether a restart can help now.
func (w *storageWatch) canRecover(p storageProblem) error {
	if !p.atLimit {
		return probeWrite(w.opts.StoreDir)
	}
	if w.opts.JetStreamMaxStore > 0 {
		return errors.New("the storage limit is configured, a restart does not change it")
	}
	jsz, err := w.srv.Jsz(nil)
	if err != nil {
		return err
	}
	free, ok := diskFree(w.opts.StoreDir)
	if !ok {
		return errors.New("free disk space unknown on this system")
	}
	// What the server will choose at start: 75% of the free space plus of
	// what its streams already hold.
	used := int64(jsz.Store)
	if (free+used)/4*3 < used+probeBytes {
		return fmt.Errorf("the disk has %d bytes free: not enough for a higher limit", free)
	}
	return nil
}

// restart stops JetStream if it runs and starts it again as it was
// configured, the way the server itself does on a configuration reload.
func (w *storageWatch) restart() error {
	w.restarting.Store(true)
	defer w.restarting.Store(false)
	if w.srv.JetStreamEnabled() {
		if err := w.srv.ShutdownJetStream(); err != nil {
			return err
		}
	}
	o := w.opts
	// The INFO that the server sends to new clients keeps saying JetStream
	// is off after this (the server's own flag is private); clients do not
	// act on it.
	return w.srv.EnableJetStream(&server.JetStreamConfig{
		StoreDir:     o.StoreDir,
		SyncInterval: o.SyncInterval,
		SyncAlways:   o.SyncAlways,
		MaxMemory:    o.JetStreamMaxMemory,
		MaxStore:     o.JetStreamMaxStore,
		Domain:       o.JetStreamDomain,
		Strict:       !o.NoJetStreamStrict,
	})
}

// probeWrite writes probeBytes to dir and syncs them, then removes them.
func probeWrite(dir string) error {
	f, err := os.CreateTemp(dir, ".slipway-write-probe-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(make([]byte, probeBytes))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store directory %s: %w", filepath.Clean(dir), err)
	}
	return nil
}
