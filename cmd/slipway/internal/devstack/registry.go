// Package devstack starts the parts `slipway demo` needs in process:
// registries that notify ingest of pushes, a Marathon emulator per cluster
// and a Slack stand-in. It is the operator binary's dev stack; the tests'
// counterparts (CNCF Distribution's registry, the full fake Slack) live in
// pkg/testkit, which the binary does not compile.
package devstack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	ggcr "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/uuid"
)

// go-containerregistry's registry is a small, complete, in-memory OCI
// registry already in the binary (the promoter copies with the same
// library); CNCF Distribution's would add hundreds of packages (storage
// drivers, Redis, OpenTelemetry exporters) to the build for a demo. What
// Distribution adds, its push notifications, is Registry's middleware:
// after a successful manifest PUT it sends ingest the event Distribution
// would send, in Distribution's envelope, retried until delivered.

// Distribution's notification settings the demo mirrors.
const (
	// eventsMediaType is the Content-Type of Distribution 3's notifications.
	eventsMediaType = "application/vnd.docker.distribution.events.v2+json"
	// maxManifest is the largest manifest accepted (Distribution's limit).
	maxManifest = 4 << 20
	// notifyTimeout bounds one delivery attempt; notifyBackoff is the
	// wait after a failed one (Distribution's threshold 1, backoff).
	notifyTimeout = 2 * time.Second
	notifyBackoff = 200 * time.Millisecond
)

// Registry is an in-memory OCI registry served on 127.0.0.1 that notifies
// pushes. Its address is known (Listen) before it serves (Start), so that
// the configuration of the services that it notifies can name it.
type Registry struct {
	// Host is 127.0.0.1:<port>, the registry part of image references.
	Host string

	ln       net.Listener
	srv      *http.Server
	reg      http.Handler
	instance string
	queue    *notifyQueue
}

// Listen reserves a port on 127.0.0.1 for a registry.
func Listen() (*Registry, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &Registry{Host: ln.Addr().String(), ln: ln}, nil
}

// Start serves the registry; every manifest push is notified to notifyURL
// (if set).
func (r *Registry) Start(notifyURL string) error {
	r.reg = ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0)), ggcr.WithReferrersSupport(true))
	r.instance = uuid.NewString()
	if notifyURL != "" {
		r.queue = newNotifyQueue(notifyURL)
	}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(r.ln) }()
	return nil
}

// Close stops serving and stops notifying (undelivered notifications are
// dropped, as a Distribution registry's in-memory queue would lose them).
func (r *Registry) Close() error {
	if r.srv == nil {
		return r.ln.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := r.srv.Shutdown(ctx)
	if r.queue != nil {
		r.queue.close()
	}
	return err
}

// ServeHTTP serves the registry and notifies manifest pushes.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	repo, ref, ok := manifestPath(req.URL.Path)
	if req.Method != http.MethodPut || !ok || r.queue == nil {
		r.reg.ServeHTTP(w, req)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxManifest+1))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > maxManifest {
		http.Error(w, "manifest too large", http.StatusRequestEntityTooLarge)
		return
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	r.reg.ServeHTTP(w, req)
	// The registry names the digest of a manifest it stored, and only
	// then.
	digest := w.Header().Get("Docker-Content-Digest")
	if digest == "" {
		return
	}
	tag := ref
	if strings.Contains(ref, ":") {
		tag = "" // pushed by digest
	}
	r.queue.add(pushEvent(r.Host, r.instance, req, repo, tag, digest, req.Header.Get("Content-Type"), int64(len(body))))
}

// manifestPath splits /v2/<repository>/manifests/<reference>.
func manifestPath(p string) (repo, ref string, ok bool) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndex(rest, "/manifests/")
	if i <= 0 {
		return "", "", false
	}
	repo, ref = rest[:i], rest[i+len("/manifests/"):]
	return repo, ref, ref != "" && !strings.Contains(ref, "/")
}

// event is a Distribution notification event (notifications.Event), the
// fields ingest's distribution format reads and the records around them.
type event struct {
	ID        string    `json:"id"`
	Timestamp time.Time `json:"timestamp"`
	Action    string    `json:"action"`
	Target    struct {
		MediaType  string `json:"mediaType"`
		Digest     string `json:"digest"`
		Size       int64  `json:"size"`
		Length     int64  `json:"length"`
		Repository string `json:"repository"`
		URL        string `json:"url"`
		Tag        string `json:"tag,omitempty"`
	} `json:"target"`
	Request struct {
		ID        string `json:"id"`
		Addr      string `json:"addr,omitempty"`
		Host      string `json:"host,omitempty"`
		Method    string `json:"method"`
		UserAgent string `json:"useragent"`
	} `json:"request"`
	Actor  struct{} `json:"actor"`
	Source struct {
		Addr       string `json:"addr,omitempty"`
		InstanceID string `json:"instanceID,omitempty"`
	} `json:"source"`
}

// pushEvent is the event Distribution sends for a manifest push. Its id is
// fixed here, so that every retry carries the same one (ingest de-duplicates
// by it).
func pushEvent(host, instance string, req *http.Request, repo, tag, digest, mediaType string, size int64) event {
	var e event
	e.ID = uuid.NewString()
	e.Timestamp = time.Now().UTC()
	e.Action = "push"
	e.Target.MediaType = mediaType
	e.Target.Digest = digest
	e.Target.Size, e.Target.Length = size, size
	e.Target.Repository = repo
	e.Target.URL = "http://" + host + "/v2/" + repo + "/manifests/" + digest
	e.Target.Tag = tag
	e.Request.ID = uuid.NewString()
	e.Request.Addr = req.RemoteAddr
	e.Request.Host = req.Host
	e.Request.Method = req.Method
	e.Request.UserAgent = req.UserAgent()
	e.Source.Addr = host
	e.Source.InstanceID = instance
	return e
}

// notifyQueue delivers events one at a time, in order, each until the
// endpoint accepts it (2xx or 3xx, as Distribution counts), waiting
// notifyBackoff after a failed attempt.
type notifyQueue struct {
	url    string
	client *http.Client

	mu      sync.Mutex
	pending []event
	wake    chan struct{}
	done    chan struct{}
	stopped chan struct{}
}

func newNotifyQueue(url string) *notifyQueue {
	q := &notifyQueue{
		url:     url,
		client:  &http.Client{Timeout: notifyTimeout},
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go q.run()
	return q
}

func (q *notifyQueue) add(e event) {
	q.mu.Lock()
	q.pending = append(q.pending, e)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *notifyQueue) close() {
	close(q.done)
	<-q.stopped
}

func (q *notifyQueue) run() {
	defer close(q.stopped)
	for {
		q.mu.Lock()
		var next *event
		if len(q.pending) > 0 {
			next = &q.pending[0]
		}
		q.mu.Unlock()
		if next == nil {
			select {
			case <-q.wake:
				continue
			case <-q.done:
				return
			}
		}
		if err := q.send(*next); err != nil {
			select {
			case <-time.After(notifyBackoff):
				continue
			case <-q.done:
				return
			}
		}
		q.mu.Lock()
		q.pending = q.pending[1:]
		q.mu.Unlock()
	}
}

// send posts one event in Distribution's envelope.
func (q *notifyQueue) send(e event) error {
	body, err := json.Marshal(struct {
		Events []event `json:"events"`
	}{[]event{e}})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-q.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, q.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", eventsMediaType)
	resp, err := q.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return errors.New("notification refused: " + resp.Status)
	}
	return nil
}
