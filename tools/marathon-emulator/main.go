// Command marathon-emulator serves an emulated Marathon REST API (see
// package emulator) for demos, manual tests and benchmarks.
//
//	marathon-emulator --listen ADDR [--apps FILE] [--deploy-duration D]
//	    [--unhealthy-images REGEX] [--basic-auth USER:PASS]
//	    [--dcos-public-key FILE] [--dcos-uid UID] [--token-ttl D] [--heartbeat D]
package main

import (
	"context"
	"crypto/rsa"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/slipway-cd/slipway/tools/marathon-emulator/emulator"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "marathon-emulator:", err)
		os.Exit(2)
	}
}

// config is the parsed command line.
type config struct {
	listen  string
	apps    string
	leader  string
	options emulator.Options
}

func parseFlags(args []string, out io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("marathon-emulator", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&cfg.listen, "listen", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&cfg.apps, "apps", "", "JSON file of apps to seed: an array, {\"apps\":[…]} or a group")
	fs.StringVar(&cfg.leader, "leader", "", "host:port reported by /v2/leader (default: the listen address)")
	deploy := fs.Duration("deploy-duration", 2*time.Second, "time new tasks take to become healthy")
	unhealthy := fs.String("unhealthy-images", "", "regular expression of docker images that never become healthy")
	basic := fs.String("basic-auth", "", "USER:PASS to require HTTP Basic authentication")
	pubKey := fs.String("dcos-public-key", "", "PEM file of the service account's RSA public key: enables DC/OS authentication")
	fs.StringVar(&cfg.options.DCOSUID, "dcos-uid", "", "the only service account uid allowed to log in (default: any)")
	ttl := fs.Duration("token-ttl", 5*24*time.Hour, "lifetime of issued DC/OS authentication tokens")
	heartbeat := fs.Duration("heartbeat", 10*time.Second, "event stream heartbeat interval")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	cfg.options.DeployDuration = *deploy
	cfg.options.TokenTTL = *ttl
	cfg.options.Heartbeat = *heartbeat
	if *unhealthy != "" {
		re, err := regexp.Compile(*unhealthy)
		if err != nil {
			return cfg, fmt.Errorf("--unhealthy-images: %w", err)
		}
		cfg.options.UnhealthyImages = re
	}
	if *basic != "" {
		user, pass, ok := strings.Cut(*basic, ":")
		if !ok || user == "" {
			return cfg, errors.New("--basic-auth: want USER:PASS")
		}
		cfg.options.BasicAuth = &[2]string{user, pass}
	}
	if *pubKey != "" {
		key, err := readPublicKey(*pubKey)
		if err != nil {
			return cfg, fmt.Errorf("--dcos-public-key: %w", err)
		}
		cfg.options.DCOSPublicKey = key
	}
	return cfg, nil
}

func readPublicKey(path string) (*rsa.PublicKey, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return jwt.ParseRSAPublicKeyFromPEM(pem)
}

// run serves until ctx is done. ready, if set, receives the bound address
// once the emulator accepts connections.
func run(ctx context.Context, args []string, logOut io.Writer, ready func(addr string)) error {
	cfg, err := parseFlags(args, logOut)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	cfg.options.Leader = cfg.leader
	if cfg.options.Leader == "" {
		cfg.options.Leader = l.Addr().String()
	}
	emu := emulator.New(cfg.options)
	defer emu.Close()
	if cfg.apps != "" {
		data, err := os.ReadFile(cfg.apps)
		if err != nil {
			l.Close()
			return err
		}
		if err := emu.Load(data); err != nil {
			l.Close()
			return fmt.Errorf("--apps %s: %w", cfg.apps, err)
		}
	}
	srv := &http.Server{Handler: emu.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	fmt.Fprintf(logOut, "marathon-emulator: listening on http://%s (deploy duration %s)\n", l.Addr(), cfg.options.DeployDuration)
	if ready != nil {
		ready(l.Addr().String())
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Event streams never end by themselves: close them before waiting
	// for in-flight requests.
	emu.Close()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	return nil
}
