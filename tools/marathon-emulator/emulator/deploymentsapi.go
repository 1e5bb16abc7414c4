package emulator

import (
	"fmt"
	"net/http"
)

type currentActionJSON struct {
	Action                string `json:"action"`
	App                   string `json:"app"`
	ReadinessCheckResults []any  `json:"readinessCheckResults"`
}

// deploymentStepInfo is raml.DeploymentStepInfo (DeploymentPlanConversion).
type deploymentStepInfo struct {
	ID             string              `json:"id"`
	Version        string              `json:"version"`
	AffectedApps   []string            `json:"affectedApps"`
	AffectedPods   []string            `json:"affectedPods"`
	Steps          []stepJSONT         `json:"steps"`
	CurrentActions []currentActionJSON `json:"currentActions"`
	CurrentStep    int                 `json:"currentStep"`
	TotalSteps     int                 `json:"totalSteps"`
}

func (e *Emulator) stepInfoLocked(d *deployment) deploymentStepInfo {
	info := deploymentStepInfo{
		ID: d.id, Version: fmtTime(d.version), AffectedApps: d.affected, AffectedPods: []string{},
		Steps: e.planJSON(d).Steps, CurrentStep: d.cur + 1, TotalSteps: len(d.steps),
		CurrentActions: []currentActionJSON{},
	}
	if d.cur < len(d.steps) {
		for _, a := range d.steps[d.cur] {
			info.CurrentActions = append(info.CurrentActions, currentActionJSON{a.kind, a.app, []any{}})
		}
	}
	return info
}

// listDeployments is GET /v2/deployments: running deployments only.
func (e *Emulator) listDeployments(c *call) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]deploymentStepInfo, 0, len(e.runOrder))
	for _, d := range e.runOrder {
		out = append(out, e.stepInfoLocked(d))
	}
	writeJSON(c.w, http.StatusOK, out)
}

// deleteDeployment is DELETE /v2/deployments/{id}
// (DeploymentsResource.cancel): force=true cancels and answers 202 with
// no body; otherwise a rollback deployment reverting the cancelled one's
// changes is started with force (which cancels the original) and
// answered like any change.
func (e *Emulator) deleteDeployment(c *call, id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.running[id]
	if d == nil {
		writeAPIError(c.w, errNotFound(fmt.Sprintf("DeploymentPlan %s does not exist", id)))
		return
	}
	if c.flag("force", false) {
		e.cancelLocked(d, cancelledReason)
		c.w.WriteHeader(http.StatusAccepted)
		return
	}
	changes := e.revertChangesLocked(d)
	// The revert plan is deployed with force=true: the original conflicts
	// with it and is cancelled first.
	e.cancelLocked(d, cancelledReason)
	rb, aerr := e.planLocked(changes, true)
	if aerr != nil {
		writeAPIError(c.w, aerr)
		return
	}
	e.publishGroupChange("/", fmtTime(rb.version))
	e.startLocked(rb)
	deploymentResult(c, http.StatusOK, rb)
}
