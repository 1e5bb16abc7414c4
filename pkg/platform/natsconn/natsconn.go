// Package natsconn gives a Slipway process its NATS connection: to the
// configured servers, or to a JetStream server embedded in the process when
// nats.url is empty.
package natsconn

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// Conn is a connection to NATS with its JetStream context.
type Conn struct {
	NC       *nats.Conn
	JS       jetstream.JetStream
	embedded *server.Server
	storage  *storageWatch // with embedded
	closed   chan struct{}
}

// Connect connects as the client called name. With an empty cfg.URL it
// first starts an embedded JetStream server listening on cfg.Embedded.Listen
// (so outside consumers and `slipway events tail` can connect to it) and
// storing in cfg.Embedded.StoreDir, and watches that it can store (see
// storageWatch).
func Connect(ctx context.Context, cfg config.NATS, log *slog.Logger, name string) (*Conn, error) {
	c := &Conn{closed: make(chan struct{})}
	var opts []nats.Option
	url := cfg.URL
	if url == "" {
		s, sopts, err := startEmbedded(cfg.Embedded, log)
		if err != nil {
			return nil, err
		}
		c.embedded = s
		c.storage = watchStorage(s, sopts, log.With("component", "embedded-nats"))
		url = s.ClientURL()
		opts = append(opts, nats.InProcessServer(s))
	} else {
		auth, err := clientAuth(cfg)
		if err != nil {
			return nil, err
		}
		opts = append(opts, auth...)
	}
	opts = append(opts,
		nats.Name(name),
		// Never give up: a service without NATS is useless, and /readyz
		// says so while it lasts.
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.CustomReconnectDelay(reconnectDelay),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: our own Close
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(c.closed) }),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Error("nats error", "subject", subj, "err", err)
		}),
	)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		c.shutdownEmbedded()
		return nil, fmt.Errorf("connect to nats: %w", config.RedactError(err))
	}
	c.NC = nc
	js, err := jetstream.New(nc)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.JS = js
	return c, nil
}

// reconnectDelay backs off from 250ms to 5s with jitter, so that many
// services do not reconnect to a restarted server in lockstep.
func reconnectDelay(attempts int) time.Duration {
	d := min(250*time.Millisecond<<min(attempts, 5), 5*time.Second)
	return d/2 + rand.N(d/2)
}

func clientAuth(cfg config.NATS) ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	case cfg.Token != "":
		opts = append(opts, nats.Token(cfg.Token))
	case cfg.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(cfg.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats.nkeyFile: %w", err)
		}
		opts = append(opts, o)
	case cfg.CredentialsFile != "":
		if _, err := os.Stat(cfg.CredentialsFile); err != nil {
			return nil, fmt.Errorf("nats.credentialsFile: %w", err)
		}
		opts = append(opts, nats.UserCredentials(cfg.CredentialsFile))
	}
	t := cfg.TLS
	if t.CAFile != "" {
		opts = append(opts, nats.RootCAs(t.CAFile))
	}
	if t.CertFile != "" {
		opts = append(opts, nats.ClientCert(t.CertFile, t.KeyFile))
	}
	if t.ServerName != "" {
		opts = append(opts, nats.Secure(&tls.Config{ServerName: t.ServerName, MinVersion: tls.VersionTLS12}))
	}
	return opts, nil
}

// embeddedStartTimeout bounds the start of the embedded server (recovering
// a large store takes a while).
const embeddedStartTimeout = 30 * time.Second

// StartEmbedded starts a single-node JetStream server.
func StartEmbedded(cfg config.Embedded, log *slog.Logger) (*server.Server, error) {
	s, _, err := startEmbedded(cfg, log)
	return s, err
}

// startEmbedded starts the server and returns it with the options it was
// started with.
func startEmbedded(cfg config.Embedded, log *slog.Logger) (*server.Server, *server.Options, error) {
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("nats.embedded.listen %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, nil, fmt.Errorf("nats.embedded.listen %q: bad port", cfg.Listen)
	}
	if err := os.MkdirAll(cfg.StoreDir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("nats.embedded.storeDir: %w", err)
	}
	opts := &server.Options{
		ServerName: "slipway-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		NoSigs:     true,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("embedded nats: %w", err)
	}
	// nats-server reports what stops it from starting (a taken listen
	// address, a store it cannot open) through its logger's Fatalf and then
	// just never becomes ready: watch for that instead of waiting out the
	// readiness timeout in silence.
	fatal := make(chan string, 1)
	s.SetLoggerV2(&serverLog{log: log.With("component", "nats-server"), fatal: fatal}, false, false, false)
	s.Start()
	deadline := time.Now().Add(embeddedStartTimeout)
	for !s.ReadyForConnections(50 * time.Millisecond) {
		select {
		case msg := <-fatal:
			s.Shutdown()
			return nil, nil, fmt.Errorf("embedded nats (nats.embedded, listen %s) cannot start: %s", cfg.Listen, msg)
		default:
		}
		if time.Now().After(deadline) {
			s.Shutdown()
			return nil, nil, fmt.Errorf("embedded nats on %s did not become ready within %s", cfg.Listen, embeddedStartTimeout)
		}
	}
	log.Info("embedded nats started", "url", s.ClientURL(), "storeDir", cfg.StoreDir)
	return s, opts, nil
}

// ClientURL is where a client reaches the configured NATS: the servers of
// nats.url, or the listen address of the embedded server.
func ClientURL(cfg config.NATS) string {
	if cfg.URL != "" {
		return cfg.URL
	}
	return "nats://" + cfg.Embedded.Listen
}

// Dial connects a short-lived client (a CLI command) to url, with the
// credentials of cfg. It never starts a server and fails at once when
// nothing answers.
func Dial(cfg config.NATS, url, name string) (*Conn, error) {
	opts, err := clientAuth(cfg)
	if err != nil {
		return nil, err
	}
	opts = append(opts, nats.Name(name), nats.MaxReconnects(-1), nats.CustomReconnectDelay(reconnectDelay))
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		// The URL may hold a user's password or a token.
		return nil, fmt.Errorf("connect to nats at %s: %w", config.RedactURL(url), config.RedactError(err))
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &Conn{NC: nc, JS: js}, nil
}

// Embedded returns the in-process server, or nil when connected elsewhere.
func (c *Conn) Embedded() *server.Server { return c.embedded }

// Ready reports whether the connection is up.
func (c *Conn) Ready(context.Context) error {
	if st := c.NC.Status(); st != nats.CONNECTED {
		return fmt.Errorf("nats %s", st)
	}
	return nil
}

// Storage reports why the embedded server's JetStream cannot store events
// now (a full disk, JetStream turned off, its storage limit reached), or
// nil. Connected to servers elsewhere it knows nothing and returns nil:
// their health is theirs to report.
func (c *Conn) Storage(context.Context) error {
	if c.storage == nil {
		return nil
	}
	return c.storage.ready()
}

// Close drains the connection and stops the embedded server, if any.
func (c *Conn) Close() {
	if c.NC != nil && c.closed != nil {
		// Drain lets in-flight acks and publishes finish before closing.
		if err := c.NC.Drain(); err == nil {
			select {
			case <-c.closed:
			case <-time.After(30 * time.Second):
			}
		}
		c.NC.Close()
	} else if c.NC != nil {
		c.NC.Close()
	}
	c.shutdownEmbedded()
}

func (c *Conn) shutdownEmbedded() {
	if c.storage != nil {
		c.storage.close()
	}
	if c.embedded != nil {
		c.embedded.Shutdown()
		c.embedded.WaitForShutdown()
	}
}

// serverLog sends nats-server's log lines to slog, and the first fatal one
// also to fatal (StartEmbedded waits on it).
type serverLog struct {
	log   *slog.Logger
	fatal chan<- string
}

func (l *serverLog) Noticef(f string, v ...any) { l.log.Debug(fmt.Sprintf(f, v...)) }
func (l *serverLog) Warnf(f string, v ...any)   { l.log.Warn(fmt.Sprintf(f, v...)) }
func (l *serverLog) Fatalf(f string, v ...any) {
	msg := fmt.Sprintf(f, v...)
	l.log.Error(msg)
	select {
	case l.fatal <- msg:
	default: // one is enough; after start-up nobody is listening
	}
}
func (l *serverLog) Errorf(f string, v ...any) { l.log.Error(fmt.Sprintf(f, v...)) }
func (l *serverLog) Debugf(f string, v ...any) { l.log.Debug(fmt.Sprintf(f, v...)) }
func (l *serverLog) Tracef(f string, v ...any) { l.log.Debug(fmt.Sprintf(f, v...)) }
