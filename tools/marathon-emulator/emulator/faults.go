package emulator

import (
	"sync"
	"time"
)

// Faults injects failures into the API (never into /_emulator/).
type Faults struct {
	bus *bus

	mu          sync.Mutex
	failCount   int
	failStatus  int
	latency     time.Duration
	refuseCount int
}

// FaultState is the current fault configuration, as GET /_emulator/faults
// shows it.
type FaultState struct {
	FailRemaining   int   `json:"failRemaining"`
	FailStatus      int   `json:"failStatus,omitempty"`
	LatencyMs       int64 `json:"latencyMs"`
	RefuseRemaining int   `json:"refuseEventStreamsRemaining"`
}

// FailNext makes the next n API requests (event-stream connections
// included) answer status with {"message":"…"} instead of being served.
func (f *Faults) FailNext(n, status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failCount, f.failStatus = n, status
}

// SetLatency delays every API request by d before it is served (0: none).
func (f *Faults) SetLatency(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.latency = d
}

// CutEventStreams closes every open event stream now, as a leader change
// or a proxy timeout would.
func (f *Faults) CutEventStreams() { f.bus.closeAll(false) }

// RefuseEventStreams makes the next n GET /v2/events attempts fail with
// 503 before the stream opens.
func (f *Faults) RefuseEventStreams(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuseCount = n
}

// Clear removes every injected fault.
func (f *Faults) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failCount, f.failStatus, f.latency, f.refuseCount = 0, 0, 0, 0
}

// State reports the current configuration.
func (f *Faults) State() FaultState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return FaultState{FailRemaining: f.failCount, FailStatus: f.failStatus, LatencyMs: f.latency.Milliseconds(), RefuseRemaining: f.refuseCount}
}

// takeFailure consumes one injected failure, if any.
func (f *Faults) takeFailure() (int, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failCount <= 0 {
		return 0, false
	}
	f.failCount--
	return f.failStatus, true
}

func (f *Faults) takeStreamRefusal() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuseCount <= 0 {
		return false
	}
	f.refuseCount--
	return true
}

func (f *Faults) currentLatency() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.latency
}
