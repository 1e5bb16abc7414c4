package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/slipway-cd/slipway/pkg/events"
)

// console prints the demo's output: one line per event with the time since
// the demo started, the demo's own narration, and a progress line while it
// waits. On a terminal the progress line is rewritten in place; otherwise a
// plain line is printed every progressEvery.
type console struct {
	out   io.Writer
	start time.Time
	tty   bool

	mu       sync.Mutex
	progress string // shown on a terminal, "" when none
}

const progressEvery = 10 * time.Second

func newConsole(out io.Writer, start time.Time) *console {
	c := &console{out: out, start: start}
	if f, ok := out.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			c.tty = true
		}
	}
	return c
}

// elapsed renders t relative to the start of the demo.
func (c *console) elapsed(t time.Time) string {
	d := max(t.Sub(c.start), 0)
	return fmt.Sprintf("+%5.1fs", d.Seconds())
}

// clearLocked erases the progress line so that a line can be printed.
func (c *console) clearLocked() {
	if c.tty && c.progress != "" {
		fmt.Fprint(c.out, "\r\033[K")
	}
}

func (c *console) redrawLocked() {
	if c.tty && c.progress != "" {
		fmt.Fprint(c.out, c.progress)
	}
}

// event prints one event as a line.
func (c *console) event(e events.Event) {
	c.line(demoEventLine(e, c.elapsed(e.Time())))
}

// demoEventLine is formatLine (as `events tail` prints) with the elapsed
// time in place of the clock time.
func demoEventLine(e events.Event, elapsed string) string {
	line := formatLine(e)
	if _, rest, ok := strings.Cut(line, "  "); ok {
		line = rest
	}
	return elapsed + "  " + shortenDigests(line)
}

// say prints a line of narration.
func (c *console) say(format string, a ...any) {
	c.line(c.elapsed(time.Now()) + "  -- " + fmt.Sprintf(format, a...))
}

// plain prints text as is.
func (c *console) plain(format string, a ...any) {
	c.line(fmt.Sprintf(format, a...))
}

func (c *console) line(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearLocked()
	fmt.Fprintln(c.out, s)
	c.redrawLocked()
}

// notified prints a message the notifier posted to a Slack channel: its
// first line, as a notification preview shows it, with Slack's escapes
// undone and nothing a terminal would act on.
func (c *console) notified(channel, text string) {
	first, _, _ := strings.Cut(text, "\n")
	first = slackUnescape.Replace(first)
	first = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.In(r, unicode.Bidi_Control) {
			return -1
		}
		return r
	}, first)
	c.line(fmt.Sprintf("%s  → %s: %s", c.elapsed(time.Now()), channel, longDigest.ReplaceAllString(first, "$1")))
}

var slackUnescape = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&")

// waiting shows a progress line for what, with the time spent waiting,
// until the returned stop is called.
func (c *console) waiting(what string) (stop func()) {
	return c.progressLine(func(waited time.Duration) string {
		return fmt.Sprintf("%s %.0fs", what, waited.Seconds())
	})
}

// countdown shows "what 3s", counting down, until d has passed or ctx
// ends (then it returns ctx's error).
func (c *console) countdown(ctx context.Context, what string, d time.Duration) error {
	stop := c.progressLine(func(waited time.Duration) string {
		left := (d - waited + time.Second - 1) / time.Second
		return fmt.Sprintf("%s %ds", what, max(left, 1))
	})
	defer stop()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// progressLine shows text(time waited) until the returned stop is called:
// on a terminal rewritten in place, otherwise printed every progressEvery.
func (c *console) progressLine(text func(waited time.Duration) string) (stop func()) {
	since := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	interval := progressEvery
	if c.tty {
		interval = 100 * time.Millisecond
	}
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			line := "   … " + text(time.Since(since))
			c.mu.Lock()
			if c.tty {
				c.clearLocked()
				c.progress = line
				c.redrawLocked()
			} else {
				fmt.Fprintln(c.out, line)
			}
			c.mu.Unlock()
		}
	})
	return func() {
		close(done)
		wg.Wait()
		c.mu.Lock()
		c.clearLocked()
		c.progress = ""
		c.mu.Unlock()
	}
}

// eventLog keeps every event of the stream in order and wakes waiters.
type eventLog struct {
	mu      sync.Mutex
	evs     []events.Event
	changed chan struct{}
}

func newEventLog() *eventLog { return &eventLog{changed: make(chan struct{})} }

func (l *eventLog) add(e events.Event) {
	l.mu.Lock()
	l.evs = append(l.evs, e)
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

func (l *eventLog) all() []events.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]events.Event(nil), l.evs...)
}

// wait returns the first event from index from on that matches, waiting
// for it until ctx ends.
func (l *eventLog) wait(ctx context.Context, from int, match func(events.Event) bool) (events.Event, int, error) {
	for {
		l.mu.Lock()
		for i := from; i < len(l.evs); i++ {
			if match(l.evs[i]) {
				e := l.evs[i]
				l.mu.Unlock()
				return e, i, nil
			}
		}
		from = len(l.evs)
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return events.Event{}, 0, ctx.Err()
		}
	}
}

// find returns the first event from index from on that matches, if one
// has arrived.
func (l *eventLog) find(from int, match func(events.Event) bool) (events.Event, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := from; i < len(l.evs); i++ {
		if match(l.evs[i]) {
			return l.evs[i], true
		}
	}
	return events.Event{}, false
}
