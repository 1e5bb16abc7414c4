package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// usageError is a command used wrongly: an unknown command or flag, a
// missing, extra or malformed argument. The command line exits with 2 for
// it (1 is for a command that ran and failed), after a hint to the
// command's --help.
type usageError struct {
	cmd *cobra.Command
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// hint is the line printed after the error.
func (e *usageError) hint() string {
	return fmt.Sprintf("see '%s --help'", e.cmd.CommandPath())
}

func usageErrorf(cmd *cobra.Command, format string, a ...any) error {
	return &usageError{cmd: cmd, err: fmt.Errorf(format, a...)}
}

// noArgs is cobra.NoArgs saying what is wrong.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf(cmd, "unexpected argument %q: %s takes none", args[0], cmd.CommandPath())
	}
	return nil
}

// oneArg is cobra.ExactArgs(1) naming the argument ("approval ID").
func oneArg(name string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) == 0:
			return usageErrorf(cmd, "missing %s", name)
		case len(args) > 1:
			return usageErrorf(cmd, "unexpected argument %q: %s takes one %s", args[1], cmd.CommandPath(), name)
		}
		return nil
	}
}

// conventions makes every command of the tree follow the command line's
// conventions: flag and argument errors are usage errors, and a command
// that only groups others (slipway events, slipway dlq) prints its help
// when called alone and refuses an unknown subcommand (cobra would print
// the help and succeed).
func conventions(root *cobra.Command) {
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{cmd: cmd, err: err}
	})
	var walk func(*cobra.Command)
	walk = func(cmd *cobra.Command) {
		switch {
		case cmd.HasSubCommands() && !cmd.Runnable():
			cmd.Args = cobra.ArbitraryArgs
			cmd.RunE = runGroup
		case cmd.Args != nil:
			valid := cmd.Args
			cmd.Args = func(cmd *cobra.Command, args []string) error {
				err := valid(cmd, args)
				if _, ok := err.(*usageError); err != nil && !ok {
					return &usageError{cmd: cmd, err: err}
				}
				return err
			}
		}
		for _, c := range cmd.Commands() {
			walk(c)
		}
	}
	walk(root)
}

// runGroup is the Run of a command that only groups subcommands.
func runGroup(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's default
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, ", "))
	}
	return &usageError{cmd: cmd, err: fmt.Errorf("%s", msg)}
}
