package emulator

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// seedMany loads n apps spread over 50 groups, the deployer benchmark's
// cluster size.
func seedMany(b *testing.B, emu *Emulator, n int) {
	b.Helper()
	var sb strings.Builder
	sb.WriteString("[")
	for i := 0; i < n; i++ {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, `{"id":"/team%d/app%d","instances":2,"container":{"type":"DOCKER","docker":{"image":"registry.local/apps/app%d:1.0.0"}},"labels":{"slipway.policy":"minor"},"healthChecks":[{"protocol":"HTTP","path":"/health"}]}`, i%50, i, i)
	}
	sb.WriteString("]")
	if err := emu.Load([]byte(sb.String())); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkListApps5000(b *testing.B) {
	emu := New(Options{DeployDuration: time.Millisecond})
	defer emu.Close()
	seedMany(b, emu, 5000)
	h := emu.Handler()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/v2/apps?label=slipway.policy", nil))
		if rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
		b.SetBytes(int64(rec.Body.Len()))
	}
}

// BenchmarkFanOut200 is one rollout: 200 of 5,000 apps get a new image,
// each with its own PUT.
func BenchmarkFanOut200(b *testing.B) {
	emu := New(Options{DeployDuration: time.Hour})
	defer emu.Close()
	seedMany(b, emu, 5000)
	h := emu.Handler()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := 0; j < 200; j++ {
			body := fmt.Sprintf(`{"container":{"type":"DOCKER","docker":{"image":"registry.local/apps/app%d:1.0.%d"}}}`, j*25, i+1)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("PUT", fmt.Sprintf("/v2/apps/team%d/app%d?force=true", (j*25)%50, j*25), strings.NewReader(body)))
			if rec.Code != http.StatusOK {
				b.Fatal(rec.Code, rec.Body.String())
			}
		}
		emu.Settle()
	}
}

func BenchmarkLoad5000(b *testing.B) {
	for i := 0; i < b.N; i++ {
		emu := New(Options{})
		seedMany(b, emu, 5000)
		emu.Close()
	}
}
