package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/slipway-cd/slipway/pkg/events"
)

func historyCmd() *cobra.Command {
	var nf natsFlags
	var cluster, since string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "history WORKLOAD [--cluster C] [--since D] [--json]",
		Short: "Show the deployments of one workload, oldest first, and who caused them",
		Long: `Show the deployments of one workload, oldest first, as the event stream
holds them: when, on which cluster, from which image to which, the outcome
(in progress, succeeded, failed, rolled back, superseded), how long it took and
why it failed; drift, refused pushes and compliance violations of the workload
too. A deployment a promotion caused names the promotion, who approved it and
who pushed the image in the first place.

WORKLOAD is the workload's id on its platform (the Marathon app id, with or
without its leading slash; the Docker container's or Swarm service's name).
--since takes a duration back from now (24h), a time (RFC 3339) or a date;
without it, all the stream still holds. It reads and stops; a workload with
no deployment in that span exits 1 ("no deployments of X found").`,
		Args: oneArg("workload"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var from time.Time
			if since != "" {
				var err error
				if from, err = parseWhen(since, time.Now()); err != nil {
					return usageErrorf(cmd, "--since: %w", err)
				}
			}
			conn, _, err := nf.dial(cmd.CommandPath())
			if err != nil {
				return err
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Minute)
			defer cancel()
			entries, err := readHistory(ctx, conn.JS, historyQuery{workload: args[0], cluster: cluster, since: from})
			if err != nil {
				return err
			}
			if len(entries) == 0 {
				scope := ""
				if cluster != "" {
					scope += " on cluster " + cluster
				}
				if !from.IsZero() {
					scope += " since " + from.Local().Format(time.DateTime)
				}
				return fmt.Errorf("no deployments of %s found%s", args[0], scope)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(entries)
			}
			return printHistory(cmd.OutOrStdout(), entries)
		},
	}
	nf.add(cmd.Flags())
	cmd.Flags().StringVar(&cluster, "cluster", "", "only this cluster's deployments of the workload")
	cmd.Flags().StringVar(&since, "since", "", "only what happened since then: a duration back from now (24h), a time (RFC 3339) or a date (default: all the stream holds)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the history as a JSON array")
	return cmd
}

// Outcomes of a history entry; those of deployments are the deployer's.
const (
	outcomeInProgress = "in_progress"
	outcomeSucceeded  = "succeeded"
	outcomeFailed     = "failed"
	outcomeRolledBack = "rolled_back"
	outcomeSuperseded = "superseded"
	outcomeDrift      = "drift"
	outcomeRefused    = "refused"
	outcomeViolation  = "violation"
)

// historyEntry is one line of a workload's history: a deployment (its
// started and its final event together), a drift, a refused push or a
// compliance violation.
type historyEntry struct {
	Time        time.Time `json:"time"`
	Cluster     string    `json:"cluster"`
	Environment string    `json:"environment"`
	AppID       string    `json:"appId"`
	// Kind is the event's type without its outcome: deployment,
	// drift.detected, deployment.refused, compliance.violated.
	Kind       string   `json:"kind"`
	Outcome    string   `json:"outcome"`
	FromImage  string   `json:"fromImage,omitempty"`
	ToImage    string   `json:"toImage,omitempty"`
	Digest     string   `json:"digest,omitempty"`
	DurationMs int64    `json:"durationMs,omitempty"`
	Reason     string   `json:"reason,omitempty"`
	EventIDs   []string `json:"eventIds"`
	// Cause is what made Slipway act, read back along the events'
	// causationid; absent when the events name no cause.
	Cause *historyCause `json:"cause,omitempty"`

	start time.Time // of deployment.started, zero when it preceded the span
}

// historyCause is the chain of events behind an entry.
type historyCause struct {
	// EventID is the id of the event that caused the entry's events, and
	// Type its type (image.promoted, image.pushed); Type is empty when the
	// stream no longer holds that event.
	EventID   string          `json:"eventId"`
	Type      string          `json:"type,omitempty"`
	Promotion *causePromotion `json:"promotion,omitempty"`
	Approval  *causeApproval  `json:"approval,omitempty"`
	// Push is the push the chain started with: the image pushed to the
	// first registry, and who pushed it.
	Push *causePush `json:"push,omitempty"`
}

type causePromotion struct {
	EventID string `json:"eventId"`
	Name    string `json:"name"`
	From    string `json:"from"`
	To      string `json:"to"`
}

type causeApproval struct {
	EventID    string `json:"eventId"`
	ApprovalID string `json:"approvalId"`
	By         string `json:"by"`
	Reason     string `json:"reason,omitempty"`
}

type causePush struct {
	EventID     string    `json:"eventId"`
	Environment string    `json:"environment"`
	Image       string    `json:"image"`
	Actor       string    `json:"actor"`
	Source      string    `json:"source,omitempty"`
	Time        time.Time `json:"time"`

	digest string
}

// workloadData is the data of every event type about a workload that
// history reads, decoded into one value: the union of their fields, so
// that a field one type lacks stays empty.
type workloadData struct {
	Cluster       string   `json:"cluster"`
	Environment   string   `json:"environment"`
	AppID         string   `json:"appId"`
	FromImage     string   `json:"fromImage"`
	ToImage       string   `json:"toImage"`
	Digest        string   `json:"digest"`
	DurationMs    int64    `json:"durationMs"`
	Reason        string   `json:"reason"`
	RolledBack    bool     `json:"rolledBack"`
	Superseded    bool     `json:"superseded"`
	SupersededBy  string   `json:"supersededBy"`
	ExpectedImage string   `json:"expectedImage"` // drift.detected
	ActualImage   string   `json:"actualImage"`   // drift.detected
	Unmanaged     bool     `json:"unmanaged"`     // drift.detected: the workload left management
	Image         string   `json:"image"`         // deployment.refused, compliance.violated
	Rule          string   `json:"rule"`          // compliance.violated
	Detail        string   `json:"detail"`        // compliance.violated
	Workloads     []string `json:"workloads"`     // deployment.refused: the workloads the push was for
}

// Short types history reads about a workload. deployment.refused and
// compliance.violated are read by name, as their subjects.
const (
	shortRefused   = "deployment.refused"
	shortViolation = "compliance.violated"
)

// workloadSubjects are the subjects of the events about workloads.
var workloadSubjects = []string{
	events.SubjectPrefix + ".deployment.>", // started, succeeded, failed, refused
	events.FilterSubject(events.TypeDriftDetected, ""),
	events.SubjectPrefix + "." + shortViolation + ".*",
}

// chainTypes are the events a deployment's cause leads back to.
var chainTypes = []events.Type{events.TypeImagePushed, events.TypeApprovalRequested, events.TypeApprovalGranted, events.TypeImagePromoted}

type historyQuery struct {
	workload string
	cluster  string
	since    time.Time
}

// sameWorkload compares workload ids as a user types them: a Marathon app
// id with or without its leading slash.
func sameWorkload(a, b string) bool {
	return strings.TrimPrefix(a, "/") == strings.TrimPrefix(b, "/")
}

// readHistory reads the workload's events from q.since, then, when they
// name causes, the events those lead back to from the stream's start (a
// promotion may be older than the span asked for).
func readHistory(ctx context.Context, js jetstream.JetStream, q historyQuery) ([]historyEntry, error) {
	stream, err := streamOf(ctx, js, events.SubjectPrefix+".>")
	if err != nil {
		return nil, err
	}
	until := time.Now()
	b := historyBuilder{q: q, open: map[string]int{}}
	if err := scanStream(ctx, js, stream, workloadSubjects, q.since, until, b.add); err != nil {
		return nil, err
	}
	entries := b.entries
	slices.SortStableFunc(entries, func(a, b historyEntry) int { return a.Time.Compare(b.Time) })
	if !slices.ContainsFunc(entries, func(e historyEntry) bool { return e.Cause != nil }) {
		return entries, nil
	}
	idx := chainIndex{byID: map[string]chainEvent{}, promotedInto: map[string][]string{}}
	subjects := make([]string, len(chainTypes))
	for i, t := range chainTypes {
		subjects[i] = events.FilterSubject(t, "")
	}
	if err := scanStream(ctx, js, stream, subjects, time.Time{}, until, idx.add); err != nil {
		return nil, err
	}
	for i := range entries {
		if entries[i].Cause != nil {
			idx.resolve(entries[i].Cause, entries[i].Time)
		}
	}
	return entries, nil
}

// historyBuilder turns the workload's events into entries, joining each
// deployment's started and final events.
type historyBuilder struct {
	q       historyQuery
	entries []historyEntry
	open    map[string]int // deployment key → index of its entry
}

func (b *historyBuilder) add(m jetstream.Msg) {
	e, err := events.FromMsg(m.Data())
	if err != nil {
		return // not an event: events list shows it, history has nothing to say
	}
	d, err := events.DataAs[workloadData](e)
	if err != nil {
		return
	}
	short := events.Type(e.Type()).Short()
	cluster, appID := d.Cluster, d.AppID
	if cluster == "" && appID == "" {
		// An event about a workload whose data does not say which: its
		// subject does (cluster:appId).
		cluster, appID, _ = strings.Cut(e.Subject(), ":")
	}
	if b.q.cluster != "" && cluster != b.q.cluster {
		return
	}
	if !sameWorkload(appID, b.q.workload) {
		// A refused push names the workloads it was for.
		i := slices.IndexFunc(d.Workloads, func(w string) bool { return sameWorkload(w, b.q.workload) })
		if i < 0 {
			return
		}
		appID = d.Workloads[i]
	}
	env := orElse(d.Environment, events.EnvironmentOf(e))
	entry := historyEntry{
		Time: e.Time(), Cluster: cluster, Environment: env, AppID: appID, Kind: short,
		EventIDs: []string{e.ID()},
	}
	if cause := events.CausationOf(e); cause != "" {
		entry.Cause = &historyCause{EventID: cause}
	}
	switch events.Type(e.Type()) {
	case events.TypeDeploymentStarted, events.TypeDeploymentSucceeded, events.TypeDeploymentFailed:
		b.deployment(e, d, entry)
		return
	case events.TypeDriftDetected:
		entry.Outcome, entry.FromImage, entry.ToImage = outcomeDrift, d.ExpectedImage, d.ActualImage
		entry.Reason = "changed outside Slipway"
		if left := (events.DriftDetected{Unmanaged: d.Unmanaged, ActualImage: d.ActualImage}).LeftManagement(); left != "" {
			entry.Reason = left
		}
	default:
		switch short {
		case shortRefused:
			entry.Outcome, entry.ToImage, entry.Digest, entry.Reason = outcomeRefused, d.Image, d.Digest, d.Reason
		case shortViolation:
			entry.Outcome, entry.ToImage, entry.Digest = outcomeViolation, d.Image, d.Digest
			entry.Reason = strings.TrimSuffix(d.Rule+": "+d.Detail, ": ")
		default:
			return // a deployment event history does not know
		}
	}
	b.entries = append(b.entries, entry)
}

// deployment adds a deployment event: started opens an entry, succeeded
// or failed ends it (or stands alone when started preceded the span).
// Both carry the same cause, cluster, workload and image, as the deployer
// derives their ids from those.
func (b *historyBuilder) deployment(e events.Event, d workloadData, entry historyEntry) {
	key := strings.Join([]string{entry.Cluster, entry.AppID, events.CausationOf(e), d.ToImage}, "\x00")
	if events.Type(e.Type()) == events.TypeDeploymentStarted {
		entry.Kind, entry.Outcome = "deployment", outcomeInProgress
		entry.FromImage, entry.ToImage, entry.Digest = d.FromImage, d.ToImage, d.Digest
		entry.start = e.Time()
		b.open[key] = len(b.entries)
		b.entries = append(b.entries, entry)
		return
	}
	i, ok := b.open[key]
	if ok {
		delete(b.open, key)
		b.entries[i].EventIDs = append(b.entries[i].EventIDs, e.ID())
	} else {
		entry.Kind = "deployment"
		b.entries = append(b.entries, entry)
		i = len(b.entries) - 1
	}
	r := &b.entries[i]
	r.FromImage, r.ToImage, r.Digest = orElse(r.FromImage, d.FromImage), orElse(r.ToImage, d.ToImage), orElse(r.Digest, d.Digest)
	r.Reason, r.DurationMs = d.Reason, d.DurationMs
	if r.DurationMs == 0 && !r.start.IsZero() {
		r.DurationMs = e.Time().Sub(r.start).Milliseconds()
	}
	switch {
	case events.Type(e.Type()) == events.TypeDeploymentSucceeded:
		r.Outcome = outcomeSucceeded
	case d.Superseded:
		r.Outcome = outcomeSuperseded
		if d.SupersededBy != "" && r.Reason == "" {
			r.Reason = "superseded by " + d.SupersededBy
		}
	case d.RolledBack:
		r.Outcome = outcomeRolledBack
	default:
		r.Outcome = outcomeFailed
	}
}

// chainEvent is what history keeps of an event a cause may lead to.
type chainEvent struct {
	typ      events.Type
	cause    string
	time     time.Time
	promoted *events.ImagePromoted
	decision *events.ApprovalDecision
	push     *causePush
}

// chainIndex holds the pushes, approvals and promotions of the stream by
// id, and the promotions by the environment and digest they brought, to
// follow a deployment's cause back to the first push.
type chainIndex struct {
	byID map[string]chainEvent
	// promotedInto maps environment and digest to the ids of the
	// promotions that brought the digest there, oldest first.
	promotedInto map[string][]string
}

func (x *chainIndex) add(m jetstream.Msg) {
	e, err := events.FromMsg(m.Data())
	if err != nil {
		return
	}
	c := chainEvent{typ: events.Type(e.Type()), cause: events.CausationOf(e), time: e.Time()}
	switch c.typ {
	case events.TypeImagePushed:
		d, err := events.DataAs[events.ImagePushed](e)
		if err != nil {
			return
		}
		c.push = &causePush{EventID: e.ID(), Environment: d.Environment, Image: d.Ref().String(), Actor: d.Actor,
			Source: d.Source, Time: e.Time(), digest: d.Digest}
	case events.TypeImagePromoted:
		d, err := events.DataAs[events.ImagePromoted](e)
		if err != nil {
			return
		}
		c.promoted = &d
		key := d.To.Environment + "\x00" + d.To.Digest
		x.promotedInto[key] = append(x.promotedInto[key], e.ID())
	case events.TypeApprovalGranted:
		d, err := events.DataAs[events.ApprovalDecision](e)
		if err != nil {
			return
		}
		c.decision = &d
	}
	x.byID[e.ID()] = c
}

// resolve follows cause back along the causation ids: the promotion, its
// approval and the first push. A push into an environment of a digest a
// promotion brought there (the target registry's webhook for the copy)
// leads to that promotion.
func (x *chainIndex) resolve(cause *historyCause, at time.Time) {
	id := cause.EventID
	seen := map[string]bool{}
	for id != "" && !seen[id] {
		seen[id] = true
		c, ok := x.byID[id]
		if !ok {
			return
		}
		if cause.Type == "" {
			cause.Type = c.typ.Short()
		}
		next := c.cause
		switch c.typ {
		case events.TypeImagePromoted:
			if cause.Promotion == nil {
				cause.Promotion = &causePromotion{EventID: id, Name: c.promoted.Promotion, From: c.promoted.From.String(), To: c.promoted.To.String()}
			}
		case events.TypeApprovalGranted:
			if cause.Approval == nil {
				cause.Approval = &causeApproval{EventID: id, ApprovalID: c.decision.ApprovalID, By: c.decision.By, Reason: c.decision.Reason}
			}
		case events.TypeImagePushed:
			cause.Push = c.push // the furthest push back is the first
			if next == "" && cause.Promotion == nil {
				next = x.promotionOf(c.push, at)
			}
		}
		id = next
	}
}

// promotionOf is the promotion that brought the pushed digest into the
// push's environment: the last one before at, else the first after it.
func (x *chainIndex) promotionOf(p *causePush, at time.Time) string {
	ids := x.promotedInto[p.Environment+"\x00"+p.digest]
	if len(ids) == 0 || p.digest == "" {
		return ""
	}
	best := ids[0]
	for _, id := range ids {
		if x.byID[id].time.After(at) {
			break
		}
		best = id
	}
	return best
}

func printHistory(out io.Writer, entries []historyEntry) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tCLUSTER\tOUTCOME\tIMAGE\tDURATION\tREASON\tCAUSE")
	for _, e := range entries {
		// A removed workload runs nothing: the image it ran stands alone.
		image := orElse(e.ToImage, e.FromImage)
		if e.FromImage != "" && e.ToImage != "" && e.FromImage != e.ToImage {
			image = e.FromImage + " → " + e.ToImage
		}
		duration := "-"
		if e.DurationMs > 0 {
			duration = (time.Duration(e.DurationMs) * time.Millisecond).Round(time.Second / 10).String()
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format(time.DateTime), e.Cluster,
			strings.ReplaceAll(e.Outcome, "_", " "), orDash(shortenDigests(image)), duration,
			orDash(oneLine(e.Reason)), causeText(e.Cause))
	}
	return w.Flush()
}

// causeText says in words what caused an entry.
func causeText(c *historyCause) string {
	if c == nil {
		return "-"
	}
	var parts []string
	if c.Promotion != nil {
		parts = append(parts, "promotion "+c.Promotion.Name)
	}
	if c.Approval != nil {
		parts = append(parts, fmt.Sprintf("approved by %s (%s)", c.Approval.By, c.Approval.ApprovalID))
	}
	if c.Push != nil {
		parts = append(parts, fmt.Sprintf("pushed by %s to %s", orDash(c.Push.Actor), c.Push.Environment))
	}
	if len(parts) == 0 {
		return "event " + c.EventID
	}
	return strings.Join(parts, ", ")
}

// oneLine keeps a table row on one line whatever a reason holds.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func orElse(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}
