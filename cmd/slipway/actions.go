package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/slipway-cd/slipway/pkg/events"
	"github.com/slipway-cd/slipway/pkg/events/bus"
	"github.com/slipway-cd/slipway/pkg/platform/actions"
	"github.com/slipway-cd/slipway/pkg/platform/config"
)

// defaultActionTimeout bounds --wait: a promotion copies the image, a
// deployment waits for the workload's health checks.
const defaultActionTimeout = 10 * time.Minute

// actionFlags are the flags of the commands that announce a manual action.
type actionFlags struct {
	nats    natsFlags
	reason  string
	wait    bool
	timeout time.Duration
}

func (f *actionFlags) add(cmd *cobra.Command) {
	f.nats.add(cmd.Flags())
	cmd.Flags().StringVar(&f.reason, "reason", "", "why, in your words (recorded with the action)")
	cmd.Flags().BoolVar(&f.wait, "wait", true, "wait for the outcome and exit 1 when it failed (--wait=false returns once the action is announced)")
	cmd.Flags().DurationVar(&f.timeout, "timeout", defaultActionTimeout, "how long --wait waits for the outcome")
}

// actor is who runs the command line: the operating-system user.
func actor() (string, error) {
	if u := strings.TrimSpace(os.Getenv("USER")); u != "" {
		return u, nil
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username, nil
	}
	return "", errors.New("cannot tell who you are (the action names its actor): set USER")
}

// announceAction checks the action's target against the configuration
// (target; its errors are usage errors), announces it as the OS user via
// cli, says what happens next and, with --wait, follows the stream until
// the deployer or the promoter answers it.
func announceAction(cmd *cobra.Command, f *actionFlags, action, next string, target func(*config.Config) (events.ActionTarget, error)) error {
	if f.nats.config == "" {
		return usageErrorf(cmd, "--config is required: the action is checked against the configured clusters and rules")
	}
	if f.timeout <= 0 {
		return usageErrorf(cmd, "--timeout must be positive")
	}
	cfg, err := config.Load(f.nats.config)
	if err != nil {
		return err
	}
	t, err := target(cfg)
	if err != nil {
		return usageErrorf(cmd, "%w", err)
	}
	who, err := actor()
	if err != nil {
		return err
	}
	return streamRun(cmd, &f.nats, func(ctx context.Context, js jetstream.JetStream, stream string) error {
		// Watching from before the announcement: an outcome that comes
		// at once is not missed.
		watch, err := actions.NewWatch(ctx, js, stream)
		if err != nil {
			return err
		}
		req := actions.Request{ID: actions.NewID(), Action: action, Actor: who, Via: events.ViaCLI, Target: t, Reason: f.reason}
		ev, err := actions.Publish(ctx, bus.NewPublisher(js, stream), req, time.Now())
		if err != nil {
			return err
		}
		return announced(cmd, f, ev, describeAction(action, t), who, next, watch)
	})
}

// announced says what was announced and what happens next and, with
// --wait, waits for the outcome and fails when the action did.
func announced(cmd *cobra.Command, f *actionFlags, ev events.Event, what, who, next string, watch *actions.Watch) error {
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "%s announced by %s: event %s\n", what, who, ev.ID())
	if !f.wait {
		fmt.Fprintf(out, "%s; follow it with slipway events tail\n", next)
		return nil
	}
	fmt.Fprintf(out, "%s; waiting up to %s for the outcome\n", next, f.timeout)
	wctx, wcancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer wcancel()
	outcome, err := watch.Outcome(wctx, ev.ID())
	if err != nil {
		if cmd.Context().Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("no outcome within %s; the action stands (event %s): follow it with slipway events tail", f.timeout, ev.ID())
		}
		return err
	}
	typ, env, about := eventColumns(outcome)
	fmt.Fprintf(out, "%s %s %s\n", typ, env, about)
	if events.Type(outcome.Type()) == events.TypeApprovalRequested {
		if d, err := events.DataAs[events.ApprovalRequested](outcome); err == nil {
			fmt.Fprintf(out, "the promotion waits for approval %s: slipway approvals approve %s\n", d.ApprovalID, d.ApprovalID)
		}
	}
	if !actions.Succeeded(outcome) {
		return fmt.Errorf("%s failed (%s)", what, events.Type(outcome.Type()).Short())
	}
	return nil
}

// describeAction names an action and its target in words.
func describeAction(action string, t events.ActionTarget) string {
	switch action {
	case events.ActionPromote:
		return fmt.Sprintf("promote of %s by rule %s (into %s)", t.Image, t.Promotion, t.Environment)
	}
	return fmt.Sprintf("%s of %s on %s", action, t.AppID, t.Cluster)
}

func workloadActionCmd(action, short, long, next string) *cobra.Command {
	var f actionFlags
	cmd := &cobra.Command{
		Use:   action + " CLUSTER WORKLOAD --config FILE [--reason R] [--wait=false] [--timeout D]",
		Short: short,
		Long:  long,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return usageErrorf(cmd, "%s takes CLUSTER and WORKLOAD (as slipway status names them), got %d arguments", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return announceAction(cmd, &f, action, next, func(cfg *config.Config) (events.ActionTarget, error) {
				return actions.WorkloadTarget(cfg, args[0], args[1])
			})
		},
	}
	f.add(cmd)
	return cmd
}

func rollbackCmd() *cobra.Command {
	return workloadActionCmd(events.ActionRollback,
		"Put a workload back on the image it ran before its last deployment",
		`Announce a rollback (an action.requested event naming you, the OS user, and
--reason): the deployer puts the workload back on the image it ran before its last
deployment, as a deployment caused by the action.

CLUSTER must be configured in --config; WORKLOAD is the workload's id on its
platform (a Marathon app id such as /payments/api, a Docker container or Swarm
service name), as slipway status shows it.

With --wait (the default) the command follows the stream until the deployment
caused by the action succeeded (exit 0) or failed (exit 1), at most --timeout.`,
		"the deployer rolls it back")
}

func redeployCmd() *cobra.Command {
	return workloadActionCmd(events.ActionRedeploy,
		"Deploy a workload's current image again (restarts every instance)",
		`Announce a redeploy (an action.requested event naming you, the OS user, and
--reason): the deployer deploys the workload's current image again, which restarts
every instance, as a deployment caused by the action.

CLUSTER must be configured in --config; WORKLOAD is the workload's id on its
platform, as slipway status shows it.

With --wait (the default) the command follows the stream until the deployment
caused by the action succeeded (exit 0) or failed (exit 1), at most --timeout.`,
		"the deployer redeploys it")
}

func promoteCmd() *cobra.Command {
	var (
		f    actionFlags
		rule string
	)
	cmd := &cobra.Command{
		Use:   "promote IMAGE [--rule NAME] --config FILE [--reason R] [--wait=false] [--timeout D]",
		Short: "Promote an image to the next environment now, by its rule (approval still applies)",
		Long: `Announce a promotion (an action.requested event naming you, the OS user, and
--reason): the promoter runs the rule on IMAGE now, without waiting for the rule's
minAge; a rule that requires approval asks for it.

IMAGE is registry/repository:tag[@digest] in the rule's from environment, named
by its registry's host or one of its aliases; without a digest the promoter
promotes what the tag names when it reads the action. Without --rule the one rule
that promotes the image from that environment is taken; when several do, name
one.

With --wait (the default) the command follows the stream until the promoter
answers: image.promoted (exit 0), approval.requested (exit 0: the copy waits for
a decision, see slipway approvals) or promotion.failed (exit 1), at most --timeout.`,
		Args: oneArg("IMAGE (registry/repository:tag[@digest])"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return announceAction(cmd, &f, events.ActionPromote, "the promoter promotes it", func(cfg *config.Config) (events.ActionTarget, error) {
				return actions.PromoteTarget(cfg, args[0], rule)
			})
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&rule, "rule", "", "the promotion rule (promotions[].name); needed when several rules promote the image")
	return cmd
}
