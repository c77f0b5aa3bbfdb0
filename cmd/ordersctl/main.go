// Command ordersctl is the operator CLI of orders. It reads the same configuration as the services
// (DATABASE_URL, KAFKA_BROKERS, OPENSEARCH_URL, EVENTS_TOPIC, ...). It holds flags, progress rendering
// and output only: the work is done by internal/rebuild (which the web console calls too),
// internal/eventstore and internal/readmodel.
//
// Exit codes: 0 done, 1 failed or found a problem, 2 wrong usage.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

const rootLong = `ordersctl operates an orders deployment: it republishes events from the event store, shows the
projectors and their read models, rebuilds and verifies a read model, verifies and drops the command
service's snapshots, rotates the master key of the personal data's keys, and migrates the database.

  ordersctl events republish [--from-position N] [--to-position M] [--batch K]
  ordersctl projector status [--output text|json]
  ordersctl projector rebuild orders|search [--in-place] [--backfill] [--catch-up-lag N]
  ordersctl projector replay orders|search ORDER_ID
  ordersctl verify orders|search [--max-report N] [--output text|json]
  ordersctl verify events [--order ID] [--output text|json]
  ordersctl snapshots verify [--max-report N] [--output text|json]
  ordersctl snapshots drop [--order ID]
  ordersctl pii status|rotate-master-key [--output text|json]
  ordersctl pii new-master-key FILE
  ordersctl migrate
  ordersctl token --sub SUBJECT --role customer|staff|admin [--customer-id ID] [--ttl DURATION]
  ordersctl version [--output text|json]
  ordersctl completion bash|zsh|fish

Configuration (environment): DATABASE_URL, KAFKA_BROKERS, OPENSEARCH_URL, EVENTS_TOPIC (default
orders.events), SEARCH_INDEX_ALIAS (default orders), PROJECTOR_ORDERS_URL (default
http://127.0.0.1:8083), PROJECTOR_SEARCH_URL (default http://127.0.0.1:8084), PROJECTOR_ORDERS_GROUP
(default projector-orders), PROJECTOR_SEARCH_GROUP (default projector-search), ORDERS_TOKEN (an admin's
bearer token for projector replay), AUTH_MODE and AUTH_DEV_DIR (token, in development mode),
PII_MASTER_KEY_FILE and PII_PREVIOUS_MASTER_KEY_FILES (rebuild, verify, snapshots verify, pii).

Progress goes to stderr, results to stdout. Exit codes: 0 done, 1 failed or found a problem, 2 wrong
usage.`

// errUsage marks a usage error (exit code 2); its text has already been printed.
var errUsage = errors.New("usage")

// usageError is wrong usage: run prints it with the command's usage (or, with help, the command's
// whole help) on stderr.
type usageError struct {
	msg  string
	help bool
}

func (e *usageError) Error() string        { return e.msg }
func (e *usageError) Is(target error) bool { return target == errUsage }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "ordersctl:", err)
		os.Exit(1)
	}
}

// cli is what every command reads and writes: the environment, and stdout for results, stderr for
// progress and messages.
type cli struct {
	getenv         func(string) string
	stdout, stderr io.Writer
}

// run executes one command line. A usage error is printed here and comes back as errUsage; any other
// error is the caller's to print.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := &cli{getenv: getenv, stdout: stdout, stderr: stderr}
	root := c.rootCmd()
	if args == nil {
		args = []string{} // nil makes cobra read os.Args
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	var ue *usageError
	if !errors.As(err, &ue) {
		return err
	}
	if ue.help {
		cmd.SetOut(stderr)
		_ = cmd.Help()
		return err
	}
	fmt.Fprintf(stderr, "ordersctl: %s\n\n%s", ue.msg, cmd.UsageString())
	return err
}

func (c *cli) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "ordersctl",
		Short:         "Operate an orders deployment",
		Long:          rootLong,
		Args:          subcommandArgs,
		RunE:          needSubcommand,
		SilenceErrors: true, // run prints usage errors, main the others
		SilenceUsage:  true,
		// Our own completion command: bash, zsh and fish, with install lines in its help.
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.SetFlagErrorFunc(flagError)
	root.SetUsageFunc(usage)

	events := groupCmd("events", "Work on the events topic")
	events.AddCommand(c.republishCmd())
	projector := groupCmd("projector", "Watch, rebuild and replay the projectors' read models")
	projector.AddCommand(c.statusCmd(), c.rebuildCmd(), c.replayCmd())
	root.AddCommand(events, projector, c.verifyCmd(), c.snapshotsCmd(), c.piiCmd(), c.migrateCmd(), c.tokenCmd(), c.versionCmd(), c.completionCmd(root))
	return root
}

// groupCmd is a command that only holds others: alone or with an unknown word it is a usage error.
func groupCmd(name, short string) *cobra.Command {
	return &cobra.Command{Use: name, Short: short, Args: subcommandArgs, RunE: needSubcommand}
}

// subcommandArgs refuses any word that is not a subcommand (cobra's own check covers the root only).
func subcommandArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's default, which it sets only on its own path
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return &usageError{msg: msg}
}

func needSubcommand(cmd *cobra.Command, _ []string) error {
	return &usageError{msg: cmd.CommandPath() + " needs a command", help: true}
}

// noArgs refuses positional arguments.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("unexpected arguments: %v", args)
	}
	return nil
}

// flagError makes a flag parse error a usage error, worded for an unknown flag as Go's flag package
// words it (as ordersctl did before cobra; scripts may match it).
func flagError(_ *cobra.Command, err error) error {
	msg := err.Error()
	for _, prefix := range []string{"unknown flag: ", "unknown shorthand flag: "} {
		if rest, ok := strings.CutPrefix(msg, prefix); ok {
			msg = "flag provided but not defined: " + rest
		}
	}
	return &usageError{msg: msg}
}

// runsItself annotates a command that both runs (with arguments) and holds commands.
const runsItself = "runs-itself"

// usage prints a command's usage: for a command that holds others, its subcommands; for one that
// runs, Go's own style of usage line ("usage: ordersctl verify orders|search [flags]"), then flags.
func usage(cmd *cobra.Command) error {
	var b strings.Builder
	if cmd.HasAvailableSubCommands() && cmd.Annotations[runsItself] != "" { // verify: runs, and has commands too
		fmt.Fprintf(&b, "usage: %s\n       %s [command]\n\nAvailable Commands:\n", cmd.UseLine(), cmd.CommandPath())
		for _, sub := range cmd.Commands() {
			if sub.IsAvailableCommand() {
				fmt.Fprintf(&b, "  %-*s %s\n", sub.NamePadding(), sub.Name(), sub.Short)
			}
		}
	} else if cmd.HasAvailableSubCommands() {
		fmt.Fprintf(&b, "Usage:\n  %s [command]\n\nAvailable Commands:\n", cmd.CommandPath())
		for _, sub := range cmd.Commands() {
			if sub.IsAvailableCommand() || sub.Name() == "help" {
				fmt.Fprintf(&b, "  %-*s %s\n", sub.NamePadding(), sub.Name(), sub.Short)
			}
		}
	} else {
		fmt.Fprintf(&b, "usage: %s\n", cmd.UseLine())
	}
	if cmd.HasAvailableLocalFlags() {
		fmt.Fprintf(&b, "\nFlags:\n%s", cmd.LocalFlags().FlagUsages())
	}
	if cmd.HasAvailableInheritedFlags() {
		fmt.Fprintf(&b, "\nGlobal Flags:\n%s", cmd.InheritedFlags().FlagUsages())
	}
	if cmd.HasAvailableSubCommands() {
		fmt.Fprintf(&b, "\nUse \"%s [command] --help\" for more information about a command.\n", cmd.CommandPath())
	}
	_, err := io.WriteString(cmd.OutOrStderr(), b.String())
	return err
}
