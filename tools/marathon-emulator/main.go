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
	os.Exit(exitCode(run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil), os.Stderr))
}

// about is what --help says the command does.
const about = `marathon-emulator serves an emulated Marathon 1.10/1.11 REST API (apps, groups,
deployments, tasks, the event stream, DC/OS service login) from one process, for
Slipway's tests, its demo and your own experiments. New tasks become healthy after
--deploy-duration, or never when their image matches --unhealthy-images; nothing is
kept after it stops.`

// usageError is a command line the emulator cannot run with: a bad flag
// or flag value, a stray argument. Its message and a hint to --help are
// already printed.
type usageError struct{ error }

// exitCode is 0 after --help or a clean stop, 2 for a usage error, 1 when
// the emulator failed (printed to stderr).
func exitCode(err error, stderr io.Writer) int {
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		return 2
	}
	fmt.Fprintln(stderr, "marathon-emulator:", err)
	return 1
}

// config is the parsed command line.
type config struct {
	listen  string
	apps    string
	leader  string
	options emulator.Options
}

// parseFlags reads the command line. --help prints the usage on stdout
// and returns flag.ErrHelp; anything wrong is printed on stderr with a hint
// to --help and returned as a usageError.
func parseFlags(args []string, stdout, stderr io.Writer) (config, error) {
	cfg, err := parseFlagSet(args, stdout, stderr)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		if !errors.As(err, new(flagError)) {
			fmt.Fprintln(stderr, "marathon-emulator:", err)
		}
		fmt.Fprintln(stderr, "see 'marathon-emulator --help'")
		return cfg, usageError{err}
	}
	return cfg, err
}

// flagError is an error the flag package printed itself.
type flagError struct{ error }

func parseFlagSet(args []string, stdout, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("marathon-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // printed below, on stdout for --help
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
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "Usage: marathon-emulator [--listen ADDR] [--apps FILE] [flags]\n\n%s\n\nFlags:\n", about)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return cfg, err
	} else if err != nil {
		return cfg, flagError{err}
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
// once the emulator accepts connections. --help goes to stdout, the rest to
// logOut.
func run(ctx context.Context, args []string, stdout, logOut io.Writer, ready func(addr string)) error {
	cfg, err := parseFlags(args, stdout, logOut)
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
