package emulator

import "encoding/json"

// Event payloads, field for field (and in the order) of the case classes
// in core/event/Events.scala as Formats.scala writes them; see also
// docs/docs/event-bus.md.

type actionJSON struct {
	Action string `json:"action"`
	App    string `json:"app"`
}

type stepJSONT struct {
	Actions []actionJSON `json:"actions"`
}

// planJSONT is raml.DeploymentPlan (types/deploymentPlan.raml).
type planJSONT struct {
	ID      string      `json:"id"`
	Steps   []stepJSONT `json:"steps"`
	Version string      `json:"version"`
}

func stepJSON(step []action) stepJSONT {
	s := stepJSONT{Actions: make([]actionJSON, len(step))}
	for i, a := range step {
		s.Actions[i] = actionJSON{a.kind, a.app}
	}
	return s
}

func (e *Emulator) planJSON(d *deployment) planJSONT {
	p := planJSONT{ID: d.id, Version: fmtTime(d.version), Steps: make([]stepJSONT, len(d.steps))}
	for i, s := range d.steps {
		p.Steps[i] = stepJSON(s)
	}
	return p
}

// stepEvent is DeploymentStatus (deployment_info) and
// DeploymentStepSuccess (deployment_step_success).
type stepEvent struct {
	Plan        planJSONT `json:"plan"`
	CurrentStep stepJSONT `json:"currentStep"`
	EventType   string    `json:"eventType"`
	Timestamp   string    `json:"timestamp"`
}

type deploymentSuccessEvent struct {
	ID        string    `json:"id"`
	Plan      planJSONT `json:"plan"`
	EventType string    `json:"eventType"`
	Timestamp string    `json:"timestamp"`
}

type deploymentFailedEvent struct {
	ID        string    `json:"id"`
	Plan      planJSONT `json:"plan"`
	EventType string    `json:"eventType"`
	Timestamp string    `json:"timestamp"`
	Reason    string    `json:"reason,omitempty"`
}

type appTerminatedEvent struct {
	AppID     string `json:"appId"`
	EventType string `json:"eventType"`
	Timestamp string `json:"timestamp"`
}

type apiPostEvent struct {
	ClientIP      string          `json:"clientIp"`
	URI           string          `json:"uri"`
	AppDefinition json.RawMessage `json:"appDefinition"`
	EventType     string          `json:"eventType"`
	Timestamp     string          `json:"timestamp"`
}

type groupChangeSuccessEvent struct {
	GroupID   string `json:"groupId"`
	Version   string `json:"version"`
	EventType string `json:"eventType"`
	Timestamp string `json:"timestamp"`
}

type ipAddressJSON struct {
	IPAddress string `json:"ipAddress"`
	Protocol  string `json:"protocol"`
}

// statusUpdateEvent is MesosStatusUpdateEvent.
type statusUpdateEvent struct {
	SlaveID     string          `json:"slaveId"`
	TaskID      string          `json:"taskId"`
	TaskStatus  string          `json:"taskStatus"`
	Message     string          `json:"message"`
	AppID       string          `json:"appId"`
	Host        string          `json:"host"`
	IPAddresses []ipAddressJSON `json:"ipAddresses"`
	Ports       []int           `json:"ports"`
	Version     string          `json:"version"`
	EventType   string          `json:"eventType"`
	Timestamp   string          `json:"timestamp"`
}

// instanceChangedEvent is InstanceChangedEventWrites' object.
type instanceChangedEvent struct {
	InstanceID     string `json:"instanceId"`
	Condition      string `json:"condition"`
	RunSpecID      string `json:"runSpecId"`
	AgentID        string `json:"agentId"`
	Host           string `json:"host"`
	RunSpecVersion string `json:"runSpecVersion"`
	Timestamp      string `json:"timestamp"`
	EventType      string `json:"eventType"`
}

// healthStatusChangedEvent is HealthStatusChanged: Marathon 1.10 names
// the instance, not the task.
type healthStatusChangedEvent struct {
	AppID      string `json:"appId"`
	InstanceID string `json:"instanceId"`
	Version    string `json:"version"`
	Alive      bool   `json:"alive"`
	EventType  string `json:"eventType"`
	Timestamp  string `json:"timestamp"`
}

type instanceHealthChangedEvent struct {
	InstanceID     string `json:"instanceId"`
	RunSpecID      string `json:"runSpecId"`
	Healthy        bool   `json:"healthy"`
	RunSpecVersion string `json:"runSpecVersion"`
	Timestamp      string `json:"timestamp"`
	EventType      string `json:"eventType"`
}

func (e *Emulator) publishStatus(t *task, status, condition string) {
	now := fmtTime(e.opts.Now())
	e.bus.publish("status_update_event", statusUpdateEvent{
		SlaveID: t.slaveID(), TaskID: t.id, TaskStatus: status, AppID: t.appID, Host: t.host(),
		IPAddresses: []ipAddressJSON{{t.ip(), "IPv4"}}, Ports: t.ports, Version: t.version,
		EventType: "status_update_event", Timestamp: now,
	})
	e.bus.publish("instance_changed_event", instanceChangedEvent{
		InstanceID: t.instanceID, Condition: condition, RunSpecID: t.appID, AgentID: t.slaveID(),
		Host: t.host(), RunSpecVersion: t.version, Timestamp: now, EventType: "instance_changed_event",
	})
}

func (e *Emulator) publishHealth(t *task, alive bool) {
	now := fmtTime(e.opts.Now())
	e.bus.publish("health_status_changed_event", healthStatusChangedEvent{
		AppID: t.appID, InstanceID: t.instanceID, Version: t.version, Alive: alive,
		EventType: "health_status_changed_event", Timestamp: now,
	})
	e.bus.publish("instance_health_changed_event", instanceHealthChangedEvent{
		InstanceID: t.instanceID, RunSpecID: t.appID, Healthy: alive, RunSpecVersion: t.version,
		Timestamp: now, EventType: "instance_health_changed_event",
	})
}

func (e *Emulator) publishAPIPost(clientIP, uri string, a *appState) {
	e.bus.publish("api_post_event", apiPostEvent{clientIP, uri, a.rendered, "api_post_event", fmtTime(e.opts.Now())})
}

func (e *Emulator) publishGroupChange(groupID string, version string) {
	e.bus.publish("group_change_success", groupChangeSuccessEvent{groupID, version, "group_change_success", fmtTime(e.opts.Now())})
}
