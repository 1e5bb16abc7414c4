// Command minbridge is the yardstick of ingest's speed, not a product: the
// least an honest webhook-to-JetStream bridge does for a Distribution
// notification. It checks one header in constant time, reads a bounded body,
// decodes the envelope, builds one small JSON event per push, publishes it
// with a Nats-Msg-Id and waits for JetStream's ack before answering 202.
// BenchmarkIngestVsBridge runs it beside the ingest binary.
//
//	minbridge -listen 127.0.0.1:8081 -nats nats://127.0.0.1:4222 -token secret
package main

import (
	"crypto/subtle"
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/http"
	_ "net/http/pprof" // profiles under /debug/pprof/, off the hot path
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

type push struct {
	ID     string `json:"id"`
	Action string `json:"action"`
	Target struct {
		MediaType  string `json:"mediaType"`
		Digest     string `json:"digest"`
		Repository string `json:"repository"`
		Tag        string `json:"tag"`
	} `json:"target"`
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to serve on")
	url := flag.String("nats", nats.DefaultURL, "NATS server")
	subject := flag.String("subject", "slipway.image.pushed.dev", "subject to publish on")
	token := flag.String("token", "", "the Authorization header's expected value")
	flag.Parse()

	nc, err := nats.Connect(*url)
	if err != nil {
		log.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	want := []byte(*token)
	http.HandleFunc("POST /webhook", func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		var env struct{ Events []push }
		if err == nil {
			err = json.Unmarshal(body, &env)
		}
		if err != nil {
			http.Error(w, `{"error":"bad body"}`, http.StatusBadRequest)
			return
		}
		accepted := 0
		for _, p := range env.Events {
			if p.Action != "push" || p.Target.Tag == "" {
				continue
			}
			data, _ := json.Marshal(map[string]any{
				"specversion": "1.0", "type": "dev.slipway.image.pushed.v1", "source": "/minbridge",
				"id": p.ID, "time": time.Now().UTC(), "datacontenttype": "application/json",
				"data": map[string]string{"repository": p.Target.Repository, "tag": p.Target.Tag, "digest": p.Target.Digest},
			})
			m := &nats.Msg{Subject: *subject, Data: data, Header: nats.Header{"Nats-Msg-Id": {p.ID}}}
			if _, err := js.PublishMsg(r.Context(), m); err != nil {
				http.Error(w, `{"error":"not stored"}`, http.StatusServiceUnavailable)
				return
			}
			accepted++
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]int{"accepted": accepted, "duplicates": 0, "ignored": len(env.Events) - accepted})
	})
	log.Fatal(http.ListenAndServe(*listen, nil))
}
