package events

// LeftManagement says, for a drift.detected that reports a workload leaving
// Slipway's management, how it left: "left management: label removed" when
// its slipway.policy label was taken off (it still runs, ActualImage set),
// "left management: removed" when the workload is gone (ActualImage empty).
// It is empty for a drift of image. The CLI and the notifications show
// these words, so a reader tells a departure from a change of image.
func (d DriftDetected) LeftManagement() string {
	switch {
	case !d.Unmanaged:
		return ""
	case d.ActualImage == "":
		return "left management: removed"
	default:
		return "left management: label removed"
	}
}
