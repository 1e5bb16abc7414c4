package devstack

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"time"

	"github.com/slipway-cd/slipway/tools/marathon-emulator/emulator"
)

// Marathon is a Marathon emulator served on 127.0.0.1.
type Marathon struct {
	// URL is http://127.0.0.1:<port>.
	URL string
	Emu *emulator.Emulator
	srv *http.Server
}

// StartMarathon serves an emulator with apps (a JSON array of app
// definitions) loaded.
func StartMarathon(opts emulator.Options, apps []byte) (*Marathon, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if opts.Leader == "" {
		opts.Leader = ln.Addr().String()
	}
	emu := emulator.New(opts)
	if err := emu.Load(apps); err != nil {
		_ = ln.Close()
		emu.Close()
		return nil, err
	}
	m := &Marathon{URL: "http://" + ln.Addr().String(), Emu: emu, srv: &http.Server{Handler: emu.Handler(), ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = m.srv.Serve(ln) }()
	return m, nil
}

// Image returns the docker image app id runs ("" if there is no such app).
func (m *Marathon) Image(id string) string {
	raw, ok := m.Emu.App(id)
	if !ok {
		return ""
	}
	var def struct {
		Container struct {
			Docker struct {
				Image string `json:"image"`
			} `json:"docker"`
		} `json:"container"`
	}
	_ = json.Unmarshal(raw, &def)
	return def.Container.Docker.Image
}

// Close stops serving and stops the emulator. The emulator is closed first:
// it ends its event streams, which an HTTP shutdown would wait for.
func (m *Marathon) Close() {
	m.Emu.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if m.srv.Shutdown(ctx) != nil {
		_ = m.srv.Close()
	}
}
