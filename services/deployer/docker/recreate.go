package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"

	"github.com/slipway-cd/slipway/services/deployer/target"
)

// Steps of a recreate and of a rollback, as afterStep names them.
const (
	stepPull        = "pull"
	stepCreate      = "create"
	stepStopOld     = "stop-old"
	stepRenameOld   = "rename-old"
	stepRenameNew   = "rename-new"
	stepStartNew    = "start-new"
	stepRemoveOld   = "remove-old"
	stepRemoveStale = "remove-stale"
	stepStopNew     = "stop-new"
	stepRenameFail  = "rename-failed"
	stepRestoreOld  = "restore-old"
	stepStartOld    = "start-old"
	stepRemoveFail  = "remove-failed"
)

func (t *Target) step(name, step string) error {
	t.log.Debug("docker step done", "workload", name, "step", step)
	if t.afterStep != nil {
		if err := t.afterStep(name, step); err != nil {
			return abort{fmt.Errorf("after %s: %w", step, err)}
		}
	}
	return nil
}

// abort is an operation ended on purpose between two steps (tests stand
// in for a crash): Await must not retry past it.
type abort struct{ error }

func (a abort) Unwrap() error { return a.error }

// Update recreates the container w.ID on image (see the package doc).
// Called again, it continues from what the host holds: a replacement
// already created for image is used, not created twice. A replacement for
// another image is dropped if it never took the name; if it did and is not
// yet confirmed, it is the container replaced now and the one before it
// (<name>.slipway-prev) goes. With no recreate in progress it recreates
// even on the image the container runs (a redeploy).
func (t *Target) Update(ctx context.Context, w target.Workload, img string, o target.UpdateOptions) (target.Rollout, error) {
	if o.Deadline.After(time.Now()) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, o.Deadline)
		defer cancel()
	}
	name := w.ID
	s, err := t.read(ctx, name)
	if err != nil {
		return target.Rollout{}, err
	}
	if !s.managed() {
		return target.Rollout{}, fmt.Errorf("update %s: %w", name, target.ErrNotFound)
	}
	if s.failed != nil {
		// A rollback was interrupted: finish it, so that one container is
		// the current one again.
		if _, err := t.rollBack(ctx, s); err != nil {
			return target.Rollout{}, err
		}
		if s, err = t.read(ctx, name); err != nil {
			return target.Rollout{}, err
		}
	}
	old, nu := s.old(), s.newest()
	if old == nil {
		return target.Rollout{}, fmt.Errorf("update %s: only %s exists: %w", name, nu.Name, target.ErrNotFound)
	}
	if w.Revision != "" && w.Revision != old.ID && (nu == nil || w.Revision != nu.ID) {
		return target.Rollout{}, fmt.Errorf("update %s: read as container %.12s, now %.12s: %w", name, w.Revision, old.ID, target.ErrConflict)
	}
	if nu != nil && nu.Config.Image != img {
		if nu == s.next {
			// A replacement for another image, never placed: drop it.
			if err := t.remove(ctx, nu.ID); err != nil {
				return target.Rollout{}, err
			}
			if err := t.step(name, stepRemoveStale); err != nil {
				return target.Rollout{}, err
			}
		} else {
			// The placed replacement is itself superseded before it was
			// confirmed: it becomes the container to replace, and the one
			// before it goes.
			if err := t.remove(ctx, s.prev.ID); err != nil {
				return target.Rollout{}, err
			}
			if err := t.step(name, stepRemoveStale); err != nil {
				return target.Rollout{}, err
			}
			s.prev, old = nil, nu
		}
		s.next, nu = nil, nil
	}
	if old.HostConfig != nil && old.HostConfig.AutoRemove {
		return target.Rollout{}, fmt.Errorf("update %s: the container was started with --rm: stopping it would delete it, and with it the way back", name)
	}
	if nu == nil {
		if err := t.pull(ctx, img); err != nil {
			return target.Rollout{}, err
		}
		if err := t.step(name, stepPull); err != nil {
			return target.Rollout{}, err
		}
		if nu, err = t.createNext(ctx, old, img); err != nil {
			return target.Rollout{}, err
		}
		s.next = nu
		if err := t.step(name, stepCreate); err != nil {
			return target.Rollout{}, err
		}
	}
	if err := t.place(ctx, s, old, nu); err != nil {
		return target.Rollout{}, err
	}
	return target.Rollout{ID: nu.ID, Revision: nu.ID}, nil
}

// place carries a recreate from "replacement created" to "replacement
// started under the name" (steps 3 to 6), skipping what is done.
func (t *Target) place(ctx context.Context, s hostState, old, nu *container.InspectResponse) error {
	name := s.name
	if old == s.cur {
		if running(old) {
			if err := t.c.ContainerStop(ctx, old.ID, container.StopOptions{}); err != nil {
				return fmt.Errorf("stop %s: %w", name, err)
			}
			if err := t.step(name, stepStopOld); err != nil {
				return err
			}
		}
		if err := t.c.ContainerRename(ctx, old.ID, name+SuffixPrev); err != nil {
			return fmt.Errorf("rename %s to %s: %w", name, name+SuffixPrev, err)
		}
		if err := t.step(name, stepRenameOld); err != nil {
			return err
		}
	}
	if nu == s.next {
		if err := t.c.ContainerRename(ctx, nu.ID, name); err != nil {
			return fmt.Errorf("rename %s to %s: %w", name+SuffixNext, name, err)
		}
		if err := t.step(name, stepRenameNew); err != nil {
			return err
		}
	}
	if neverStarted(nu) {
		if err := t.c.ContainerStart(ctx, nu.ID, container.StartOptions{}); err != nil {
			return fmt.Errorf("start %s (%s): %w", name, nu.Config.Image, err)
		}
		if err := t.step(name, stepStartNew); err != nil {
			return err
		}
	}
	return nil
}

func running(c *container.InspectResponse) bool {
	return c.State != nil && (c.State.Running || c.State.Restarting)
}

// neverStarted tells a container created and not yet started.
func neverStarted(c *container.InspectResponse) bool {
	return c.State == nil || startedAt(c).IsZero()
}

func startedAt(c *container.InspectResponse) time.Time {
	if c.State == nil {
		return time.Time{}
	}
	ts, err := time.Parse(time.RFC3339Nano, c.State.StartedAt)
	if err != nil || ts.Year() <= 1 {
		return time.Time{}
	}
	return ts
}

func created(c *container.InspectResponse) time.Time {
	ts, _ := time.Parse(time.RFC3339Nano, c.Created)
	return ts
}

func (t *Target) remove(ctx context.Context, id string) error {
	// Volumes stay: the anonymous ones were carried over to the other
	// container.
	err := t.c.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove container %.12s: %w", id, err)
	}
	return nil
}

// pull has the engine pull ref (by digest when ref has one: the client
// sends the digest as the tag) and reads the progress stream to its end,
// where the engine reports a failed pull.
func (t *Target) pull(ctx context.Context, ref string) error {
	rc, err := t.c.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		// The engine's JSONMessage: errorDetail.message, and error on
		// older engines (VIC) that set only that.
		var m struct {
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("pull %s: reading the engine's progress: %w", ref, err)
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return fmt.Errorf("pull %s: %s", ref, m.ErrorDetail.Message)
		}
		if m.Error != "" {
			return fmt.Errorf("pull %s: %s", ref, m.Error)
		}
	}
}

// createNext creates <name>.slipway-next: old's configuration on img.
func (t *Target) createNext(ctx context.Context, old *container.InspectResponse, img string) (*container.InspectResponse, error) {
	name := workloadName(old.Name)
	var base *image.InspectResponse
	if ii, err := t.c.ImageInspect(ctx, old.Image); err == nil {
		base = &ii
	} else if cerrdefs.IsNotFound(err) {
		t.log.Warn("the old container's image is gone; its whole configuration is copied, values the old image brought included",
			"workload", name, "image", old.Config.Image)
	} else {
		return nil, fmt.Errorf("inspect the image of %s: %w", name, err)
	}
	node, err := t.nodeName(ctx)
	if err != nil {
		return nil, err
	}
	cfg, hc, nc, extra := cloneConfig(old, base, node)
	cfg.Image = img
	cfg.Labels[LabelReplaces] = old.ID
	cfg.Labels[LabelReplacesImage] = old.Config.Image
	resp, err := t.c.ContainerCreate(ctx, cfg, hc, nc, nil, name+SuffixNext)
	if err != nil {
		return nil, fmt.Errorf("create %s from %s on %s: %w", name+SuffixNext, name, img, err)
	}
	for netName, es := range extra {
		if err := t.c.NetworkConnect(ctx, netName, resp.ID, es); err != nil {
			return nil, fmt.Errorf("connect %s to network %s: %w", name+SuffixNext, netName, err)
		}
	}
	c, err := t.c.ContainerInspect(ctx, resp.ID)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", name+SuffixNext, err)
	}
	return &c, nil
}

// RollBack undoes the recreate in progress on workloadID: the replacement
// goes, the old container (same id, same configuration) runs under the
// name again. Called again, it continues from what the host holds.
// ErrOver when no recreate is in progress.
func (t *Target) RollBack(ctx context.Context, workloadID, rolloutID, fromImage string) (target.Rollout, error) {
	s, err := t.read(ctx, workloadID)
	if err != nil {
		return target.Rollout{}, err
	}
	if !s.managed() {
		return target.Rollout{}, fmt.Errorf("roll back %s: %w", workloadID, target.ErrNotFound)
	}
	if s.failed == nil {
		nu := s.newest()
		if s.prev == nil && nu == nil {
			return target.Rollout{}, fmt.Errorf("roll back %s: no %s to restore: %w", workloadID, workloadID+SuffixPrev, target.ErrOver)
		}
		if rolloutID != "" && nu != nil && nu.ID != rolloutID {
			return target.Rollout{}, fmt.Errorf("roll back %s: the recreate in progress is %.12s, not %.12s: %w", workloadID, nu.ID, rolloutID, target.ErrOver)
		}
	}
	return t.rollBack(ctx, s)
}

// rollBack carries a rollback from any state to "old container started
// under the name, replacement removed".
func (t *Target) rollBack(ctx context.Context, s hostState) (target.Rollout, error) {
	name := s.name
	old := s.prev
	if s.failed != nil && old == nil {
		old = s.cur // already renamed back
	}
	if old == nil {
		// The old container was never renamed away (steps 2–3): the
		// replacement only exists at its temporary name.
		old = s.cur
		if old == nil {
			return target.Rollout{}, fmt.Errorf("roll back %s: no old container: %w", name, target.ErrOver)
		}
		if s.next != nil {
			if err := t.remove(ctx, s.next.ID); err != nil {
				return target.Rollout{}, err
			}
			if err := t.step(name, stepRemoveFail); err != nil {
				return target.Rollout{}, err
			}
		}
		if !running(old) {
			if err := t.c.ContainerStart(ctx, old.ID, container.StartOptions{}); err != nil {
				return target.Rollout{}, fmt.Errorf("start %s: %w", name, err)
			}
			if err := t.step(name, stepStartOld); err != nil {
				return target.Rollout{}, err
			}
		}
		return target.Rollout{ID: old.ID, Revision: old.ID}, nil
	}
	failed := s.failed
	if failed == nil {
		failed = s.newest()
		if failed == s.cur && failed != nil {
			if running(failed) {
				if err := t.c.ContainerStop(ctx, failed.ID, container.StopOptions{}); err != nil {
					return target.Rollout{}, fmt.Errorf("stop %s: %w", name, err)
				}
				if err := t.step(name, stepStopNew); err != nil {
					return target.Rollout{}, err
				}
			}
		}
		if failed != nil {
			if err := t.c.ContainerRename(ctx, failed.ID, name+SuffixFailed); err != nil {
				return target.Rollout{}, fmt.Errorf("rename %s to %s: %w", failed.Name, name+SuffixFailed, err)
			}
			if err := t.step(name, stepRenameFail); err != nil {
				return target.Rollout{}, err
			}
		} else if s.cur != nil {
			// Something else stands under the name; never remove what
			// Slipway did not create.
			return target.Rollout{}, fmt.Errorf("roll back %s: container %.12s, not Slipway's replacement, holds the name", name, s.cur.ID)
		}
	}
	if old == s.prev {
		if err := t.c.ContainerRename(ctx, old.ID, name); err != nil {
			return target.Rollout{}, fmt.Errorf("rename %s to %s: %w", name+SuffixPrev, name, err)
		}
		if err := t.step(name, stepRestoreOld); err != nil {
			return target.Rollout{}, err
		}
	}
	// Started by this rollback once its last start is later than the
	// replacement's creation; before that it is still stopped from the
	// recreate.
	if !running(old) && (failed == nil || !startedAt(old).After(created(failed))) {
		if err := t.c.ContainerStart(ctx, old.ID, container.StartOptions{}); err != nil {
			return target.Rollout{}, fmt.Errorf("start %s: %w", name, err)
		}
		if err := t.step(name, stepStartOld); err != nil {
			return target.Rollout{}, err
		}
	}
	if failed != nil {
		if err := t.remove(ctx, failed.ID); err != nil {
			return target.Rollout{}, err
		}
		if err := t.step(name, stepRemoveFail); err != nil {
			return target.Rollout{}, err
		}
	}
	return target.Rollout{ID: old.ID, Revision: old.ID}, nil
}
