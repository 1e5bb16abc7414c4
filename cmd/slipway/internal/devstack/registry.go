// Package devstack starts the parts `slipway demo` needs in process: CNCF
// Distribution registries that notify ingest, and Marathon emulators. It is
// the non-test counterpart of pkg/testkit's helpers (which need a
// testing.TB) and keeps Distribution out of pkg/platform.
package devstack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"sync"
	"time"
	"unsafe"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/docker/go-events"
	"github.com/sirupsen/logrus"

	// Registered by name in the configuration below.
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

var quietLogs sync.Once

// Registry is a Distribution registry with in-memory storage, served on
// 127.0.0.1. Its address is known (Listen) before it serves (Start), so that
// the configuration of the services that it notifies can name it.
type Registry struct {
	// Host is 127.0.0.1:<port>, the registry part of image references.
	Host string

	ln  net.Listener
	srv *http.Server
	app *handlers.App
}

// Listen reserves a port on 127.0.0.1 for a registry.
func Listen() (*Registry, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &Registry{Host: ln.Addr().String(), ln: ln}, nil
}

// Start serves the registry; every push is notified to notifyURL (if set).
func (r *Registry) Start(notifyURL string) error {
	quietLogs.Do(func() { logrus.SetOutput(io.Discard) })
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	cfg := &configuration.Configuration{
		Version: configuration.MajorMinorVersion(0, 1),
		Storage: configuration.Storage{
			"inmemory": configuration.Parameters{},
			"delete":   configuration.Parameters{"enabled": true},
			"maintenance": configuration.Parameters{
				"uploadpurging": map[any]any{"enabled": false},
			},
		},
	}
	cfg.Log.Level = "error"
	cfg.Log.AccessLog.Disabled = true
	cfg.HTTP.Addr = r.Host
	cfg.HTTP.Host = "http://" + r.Host
	cfg.HTTP.Secret = hex.EncodeToString(secret)
	cfg.Catalog.MaxEntries = 1000
	cfg.Tags.MaxTags = 1000
	if notifyURL != "" {
		cfg.Notifications.EventConfig.IncludeReferences = true
		cfg.Notifications.Endpoints = []configuration.Endpoint{{
			Name: "slipway", URL: notifyURL,
			Timeout: 2 * time.Second, Threshold: 1, Backoff: 100 * time.Millisecond,
		}}
	}
	r.app = handlers.NewApp(instanceContext{context.Background(), newUUID()}, cfg)
	r.srv = &http.Server{Handler: r.app, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(r.ln) }()
	return nil
}

// Close stops serving and stops the notification goroutines (undelivered
// notifications are dropped).
func (r *Registry) Close() error {
	if r.srv == nil {
		return r.ln.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := r.srv.Shutdown(ctx)
	if cerr := closeNotifications(r.app, 4*time.Second); cerr != nil {
		err = errors.Join(err, cerr)
	}
	_ = r.app.Shutdown()
	return err
}

// closeNotifications stops the notification goroutines of app, which
// handlers.App cannot do itself; see pkg/testkit/registry.go for the sink
// chain (distribution v3.1.2) this walks.
func closeNotifications(app *handlers.App, wait time.Duration) error {
	evs, ok := field(reflect.ValueOf(app).Elem(), "events")
	if !ok {
		return fmt.Errorf("cannot find handlers.App.events")
	}
	sinkv, ok := field(evs, "sink")
	if !ok {
		return fmt.Errorf("cannot find handlers.App.events.sink")
	}
	b, ok := sinkv.Interface().(*events.Broadcaster)
	if !ok || b == nil {
		return nil // no endpoints configured
	}
	sinks, ok := field(reflect.ValueOf(b).Elem(), "sinks")
	if !ok {
		return fmt.Errorf("cannot find events.Broadcaster.sinks")
	}
	for i := range sinks.Len() {
		if rs := findRetryingSink(sinks.Index(i), 8); rs != nil {
			_ = rs.Close()
		} else {
			return fmt.Errorf("no events.RetryingSink under %s", sinks.Index(i).Elem().Type())
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

// instanceContext provides the "instance.id" value Distribution reports as
// source.instanceID in its notifications.
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
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
