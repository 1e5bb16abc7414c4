package emulator

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"
)

// FaultRequest is the body of POST /_emulator/faults; absent fields leave
// that fault as it is.
type FaultRequest struct {
	Fail *struct {
		Count  int `json:"count"`
		Status int `json:"status"`
	} `json:"fail,omitempty"`
	LatencyMs          *int64 `json:"latencyMs,omitempty"`
	CutEventStreams    bool   `json:"cutEventStreams,omitempty"`
	RefuseEventStreams *int   `json:"refuseEventStreams,omitempty"`
}

// Apply applies the request to f.
func (r FaultRequest) Apply(f *Faults) {
	if r.Fail != nil {
		status := r.Fail.Status
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		f.FailNext(r.Fail.Count, status)
	}
	if r.LatencyMs != nil {
		f.SetLatency(time.Duration(*r.LatencyMs) * time.Millisecond)
	}
	if r.RefuseEventStreams != nil {
		f.RefuseEventStreams(*r.RefuseEventStreams)
	}
	if r.CutEventStreams {
		f.CutEventStreams()
	}
}

// DeploymentStatus is one deployment in GET /_emulator/deployments.
type DeploymentStatus struct {
	ID     string `json:"id"`
	Status string `json:"status"` // running, succeeded, failed
	Reason string `json:"reason,omitempty"`
}

// Deployments lists running deployments (start order), then finished ones.
func (e *Emulator) Deployments() []DeploymentStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]DeploymentStatus, 0, len(e.runOrder)+len(e.finished))
	for _, d := range e.runOrder {
		out = append(out, DeploymentStatus{ID: d.id, Status: "running"})
	}
	for _, id := range sortedKeys(e.finished) {
		o := e.finished[id]
		s := DeploymentStatus{ID: id, Status: "succeeded", Reason: o.reason}
		if !o.success {
			s.Status = "failed"
		}
		out = append(out, s)
	}
	return out
}

// serveAdmin serves /_emulator/: never authenticated, never faulty,
// never recorded.
//
//	GET    /_emulator/requests      recorded mutating requests
//	DELETE /_emulator/requests      clear them
//	GET    /_emulator/faults        current faults
//	POST   /_emulator/faults        {"fail":{"count":3,"status":503},"latencyMs":50,"cutEventStreams":true,"refuseEventStreams":2}
//	DELETE /_emulator/faults        clear faults
//	POST   /_emulator/reset         back to the seeded state
//	POST   /_emulator/load          seed apps (same formats as --apps)
//	POST   /_emulator/settle        let waiting tasks become healthy now
//	GET    /_emulator/deployments   running and finished deployments
func (e *Emulator) serveAdmin(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimRight(strings.TrimPrefix(r.URL.Path, "/_emulator"), "/")
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeAPIError(w, errMessage(http.StatusRequestEntityTooLarge, err.Error()))
		return
	}
	switch path + " " + r.Method {
	case "/requests GET":
		writeJSON(w, http.StatusOK, e.Requests())
	case "/requests DELETE":
		e.ClearRequests()
		w.WriteHeader(http.StatusNoContent)
	case "/faults GET":
		writeJSON(w, http.StatusOK, e.faults.State())
	case "/faults POST":
		var fr FaultRequest
		if err := json.Unmarshal(body, &fr); err != nil {
			writeAPIError(w, errMessage(http.StatusBadRequest, err.Error()))
			return
		}
		fr.Apply(e.faults)
		writeJSON(w, http.StatusOK, e.faults.State())
	case "/faults DELETE":
		e.faults.Clear()
		w.WriteHeader(http.StatusNoContent)
	case "/reset POST":
		if err := e.Reset(); err != nil {
			writeAPIError(w, errMessage(http.StatusInternalServerError, err.Error()))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case "/load POST":
		if err := e.Load(body); err != nil {
			writeAPIError(w, errMessage(http.StatusUnprocessableEntity, err.Error()))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case "/settle POST":
		e.Settle()
		w.WriteHeader(http.StatusNoContent)
	case "/deployments GET":
		writeJSON(w, http.StatusOK, e.Deployments())
	default:
		writeAPIError(w, errMessage(http.StatusNotFound, "unknown emulator endpoint "+r.Method+" "+r.URL.Path))
	}
}
