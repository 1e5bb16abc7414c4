package testkit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/docker/go-events"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"

	// Registered by name in the configuration below.
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

// Defaults for the notification endpoint, chosen so that retries happen fast
// in tests.
const (
	DefaultNotifyTimeout   = 2 * time.Second
	DefaultNotifyThreshold = 1
	DefaultNotifyBackoff   = 100 * time.Millisecond
)

// NotifyEndpointName is the name of the notification endpoint configured by
// NewRegistry (notifications.endpoints[0].name).
const NotifyEndpointName = "testkit"

// RegistryLogEnv names the environment variable that, when non-empty, keeps
// Distribution's logs (logrus, process-wide) on stderr. By default they are
// discarded: they are noisy and cannot be told apart per test.
const RegistryLogEnv = "TESTKIT_REGISTRY_LOG"

// RegistryOptions configures NewRegistry.
type RegistryOptions struct {
	// NotifyURL, if set, is notifications.endpoints[0].url.
	NotifyURL string
	// NotifyHeaders are notifications.endpoints[0].headers, sent with every
	// notification (e.g. Authorization).
	NotifyHeaders map[string][]string
	// NotifyTimeout is the HTTP timeout of one notification attempt.
	// Default DefaultNotifyTimeout.
	NotifyTimeout time.Duration
	// NotifyThreshold is the number of failed attempts after which
	// Distribution waits NotifyBackoff before the next attempt (before that
	// it retries at once). Default DefaultNotifyThreshold.
	NotifyThreshold int
	// NotifyBackoff is the wait between attempts once the threshold is
	// reached. Default DefaultNotifyBackoff.
	NotifyBackoff time.Duration

	// Username and Password, if both set, turn on Distribution's htpasswd
	// (HTTP basic) auth with this single user. PushRandomImage, PushImage,
	// PushRandomIndex, PushIndex and Digest use these credentials through
	// Keychain; notifications then carry actor.name = Username.
	Username, Password string

	// RootDirectory, if set, stores blobs and manifests on disk under this
	// directory (Distribution's filesystem driver) instead of in memory, so
	// that large images (benchmarks) do not count against the process's
	// heap. The directory is not removed; use t.TempDir().
	RootDirectory string
}

// Registry is a CNCF Distribution registry served in process on 127.0.0.1
// with in-memory storage (or on disk, see RegistryOptions.RootDirectory).
// It is closed in t.Cleanup.
type Registry struct {
	// Host is 127.0.0.1:<port>, the registry part of image references.
	Host string
	// URL is http://<Host>.
	URL string
	// Username and Password are the credentials from RegistryOptions (empty
	// without auth).
	Username, Password string
	// InstanceID is this registry's instance id, sent as
	// source.instanceID in its notifications.
	InstanceID string

	app     *handlers.App
	handler http.Handler

	mu  sync.Mutex
	srv *httptest.Server
}

var quietLogs sync.Once

// NewRegistry starts a registry (Distribution's handlers.App, in-memory
// storage driver, deletes enabled, upload purging off) listening on
// 127.0.0.1:0. In t.Cleanup it stops serving, stops the notification
// endpoint's delivery goroutines (undelivered events are dropped) and shuts
// the app down.
func NewRegistry(t testing.TB, opts RegistryOptions) *Registry {
	t.Helper()
	quietLogs.Do(func() {
		if os.Getenv(RegistryLogEnv) == "" {
			logrus.SetOutput(io.Discard)
		}
	})

	// The app needs its own address (event source, URLs) before it is
	// built, so create the server first and hand it the app afterwards.
	var handler http.Handler
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler.ServeHTTP(w, r)
	}))
	r := &Registry{
		Host:     srv.Listener.Addr().String(),
		Username: opts.Username,
		Password: opts.Password,
		handler:  srv.Config.Handler,
		srv:      srv,
	}
	r.URL = "http://" + r.Host

	secret := make([]byte, 16)
	_, _ = rand.Read(secret)

	cfg := &configuration.Configuration{
		Version: configuration.MajorMinorVersion(0, 1),
		Storage: configuration.Storage{
			"inmemory": configuration.Parameters{},
			"delete":   configuration.Parameters{"enabled": true},
			"maintenance": configuration.Parameters{
				// The purger is a goroutine that would outlive the test.
				"uploadpurging": map[any]any{"enabled": false},
			},
		},
	}
	if opts.RootDirectory != "" {
		delete(cfg.Storage, "inmemory")
		cfg.Storage["filesystem"] = configuration.Parameters{"rootdirectory": opts.RootDirectory}
	}
	cfg.Log.Level = "error"
	cfg.Log.AccessLog.Disabled = true
	cfg.HTTP.Addr = r.Host
	cfg.HTTP.Host = r.URL
	cfg.HTTP.Secret = hex.EncodeToString(secret)
	// Defaults that configuration.Parse would apply.
	cfg.Catalog.MaxEntries = 1000
	cfg.Tags.MaxTags = 1000

	if opts.NotifyURL != "" {
		ep := configuration.Endpoint{
			Name:      NotifyEndpointName,
			URL:       opts.NotifyURL,
			Headers:   http.Header(opts.NotifyHeaders),
			Timeout:   opts.NotifyTimeout,
			Threshold: opts.NotifyThreshold,
			Backoff:   opts.NotifyBackoff,
		}
		if ep.Timeout <= 0 {
			ep.Timeout = DefaultNotifyTimeout
		}
		if ep.Threshold <= 0 {
			ep.Threshold = DefaultNotifyThreshold
		}
		if ep.Backoff <= 0 {
			ep.Backoff = DefaultNotifyBackoff
		}
		cfg.Notifications.EventConfig.IncludeReferences = true
		cfg.Notifications.Endpoints = []configuration.Endpoint{ep}
	}

	if opts.Username != "" || opts.Password != "" {
		if opts.Username == "" || opts.Password == "" {
			t.Fatalf("testkit: RegistryOptions needs both Username and Password")
		}
		hash, err := bcrypt.GenerateFromPassword([]byte(opts.Password), bcrypt.MinCost)
		if err != nil {
			t.Fatalf("testkit: bcrypt: %v", err)
		}
		path := filepath.Join(t.TempDir(), "htpasswd")
		if err := os.WriteFile(path, fmt.Appendf(nil, "%s:%s\n", opts.Username, hash), 0o600); err != nil {
			t.Fatalf("testkit: write htpasswd: %v", err)
		}
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "testkit", "path": path}}
		credentials.Store(r.Host, [2]string{opts.Username, opts.Password})
	}

	// The real registry's background context answers "instance.id" (a
	// process-wide UUID, reported as source.instanceID in notifications).
	// Here each registry gets its own.
	r.InstanceID = newUUID()
	r.app = handlers.NewApp(instanceContext{context.Background(), r.InstanceID}, cfg)
	handler = r.app
	srv.Start()

	t.Cleanup(func() {
		r.server().Close()
		if err := closeNotifications(r.app, 2*DefaultNotifyTimeout); err != nil {
			t.Logf("testkit: registry %s: %v", r.Host, err)
		}
		_ = r.app.Shutdown()
		credentials.Delete(r.Host)
	})
	return r
}

func (r *Registry) server() *httptest.Server {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.srv
}

// Stop takes the registry off the network, as an outage between it and
// its clients would: the listener closes and open connections are cut, so
// requests fail with connection errors. Storage and the notification queue
// stay in the process (notifications queued before the outage are still
// delivered), unlike a restart of Distribution, which loses what its
// in-memory queue held. Start brings it back.
func (r *Registry) Stop() {
	srv := r.server()
	srv.CloseClientConnections()
	srv.Close()
}

// Start serves the registry again on the same address after Stop, with
// the content it had. It returns an error rather than failing a test so
// that a goroutine that plays an outage can call it.
func (r *Registry) Start() error {
	// The port can stay busy for a moment after Stop (a connection being
	// torn down); nothing else binds it meanwhile.
	var ln net.Listener
	var err error
	retry := time.NewTicker(10 * time.Millisecond)
	defer retry.Stop()
	for deadline := time.Now().Add(readyTimeout); ; <-retry.C {
		if ln, err = net.Listen("tcp", r.Host); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("testkit: registry %s cannot listen again: %w", r.Host, err)
		}
	}
	srv := httptest.NewUnstartedServer(r.handler)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	return nil
}

// closeNotifications stops the notification goroutines of app.
//
// handlers.App has no way to close its event sink (App.Shutdown only cancels
// the app context), so without this every registry leaks a broadcaster
// goroutine and, per endpoint, a queue goroutine that retries undelivered
// events forever, to an endpoint that may be gone or whose port may be
// reused. The sink chain, for distribution v3.1.2, is
//
//	app.events.sink *events.Broadcaster
//	  -> *notifications.Endpoint (embeds events.Sink)
//	  -> *notifications.eventQueue (.sink)
//	  -> *events.RetryingSink
//
// Closing the RetryingSink first makes pending writes fail with
// ErrSinkClosed, so the queue drains (dropping events) and the broadcaster's
// Close returns instead of waiting on a retry loop. If the structure is not
// what is expected the function reports an error and leaves things as they
// are.
func closeNotifications(app *handlers.App, wait time.Duration) error {
	evs, ok := field(reflect.ValueOf(app).Elem(), "events")
	if !ok {
		return fmt.Errorf("cannot find handlers.App.events; notification goroutines leak")
	}
	sinkv, ok := field(evs, "sink")
	if !ok {
		return fmt.Errorf("cannot find handlers.App.events.sink; notification goroutines leak")
	}
	b, ok := sinkv.Interface().(*events.Broadcaster)
	if !ok || b == nil {
		return fmt.Errorf("event sink is %T, not *events.Broadcaster; notification goroutines leak", sinkv.Interface())
	}
	// The broadcaster's sinks are set before its goroutine starts and only
	// changed on Add/Remove (never called by the app), so reading them here
	// does not race.
	sinks, ok := field(reflect.ValueOf(b).Elem(), "sinks")
	if !ok {
		return fmt.Errorf("cannot find events.Broadcaster.sinks; notification goroutines leak")
	}
	for i := range sinks.Len() {
		if rs := findRetryingSink(sinks.Index(i), 8); rs != nil {
			_ = rs.Close()
		} else {
			return fmt.Errorf("no events.RetryingSink under %s; notification goroutines leak", sinks.Index(i).Elem().Type())
		}
	}
	done := make(chan struct{})
	go func() {
		_ = b.Close()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-time.After(wait):
		return fmt.Errorf("notification sink did not close within %s", wait)
	}
}

// findRetryingSink walks down the Sink/sink fields from v (an events.Sink
// value) to the *events.RetryingSink.
func findRetryingSink(v reflect.Value, depth int) *events.RetryingSink {
	for range depth {
		if v.Kind() == reflect.Interface {
			v = v.Elem()
		}
		if !v.IsValid() || v.Kind() != reflect.Pointer || v.IsNil() {
			return nil
		}
		if v.CanInterface() {
			if rs, ok := v.Interface().(*events.RetryingSink); ok {
				return rs
			}
		}
		s := v.Elem()
		if s.Kind() != reflect.Struct {
			return nil
		}
		next, ok := field(s, "Sink")
		if !ok {
			if next, ok = field(s, "sink"); !ok {
				return nil
			}
		}
		v = next
	}
	return nil
}

// field returns the named field of the addressable struct s, readable even
// if unexported.
func field(s reflect.Value, name string) (reflect.Value, bool) {
	if s.Kind() != reflect.Struct || !s.CanAddr() {
		return reflect.Value{}, false
	}
	f := s.FieldByName(name)
	if !f.IsValid() {
		return reflect.Value{}, false
	}
	return reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem(), true
}

// instanceContext provides the "instance.id" value that Distribution's
// internal dcontext looks up with a plain string key.
type instanceContext struct {
	context.Context
	id string
}

func (c instanceContext) Value(key any) any {
	if k, ok := key.(string); ok && k == "instance.id" {
		return c.id
	}
	return c.Context.Value(key)
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
