// Command ordersctl is the operator CLI of orders. It reads the same configuration as the services
// (DATABASE_URL, KAFKA_BROKERS, OPENSEARCH_URL, EVENTS_TOPIC).
//
// Exit codes: 0 done, 1 failed, 2 wrong usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

const usage = `ordersctl: operate an orders deployment.

Usage:
  ordersctl events republish [--from-position N] [--to-position M] [--batch K]
      Republish events from the event store (the source of truth) to the events topic, in order,
      keyed by order id, e.g. for a topic that lost history or a new cluster. Consumers stay correct:
      their writes are idempotent by (order id, version).
  ordersctl projector status
      Each projector's consumer group and its lag per partition, and whether the topic still starts
      at offset 0 (a rebuild from a topic that lost records would be partial).
  ordersctl projector rebuild orders|search [--in-place] [--backfill]
      Rebuild a read model from offset 0 into a fresh generation (new tables or a new index) while the
      live one serves, then switch reads to it atomically; --in-place clears the live model instead
      (stop the projector first). Refuses when the topic lost early records, unless --backfill (fold
      the event store first).
  ordersctl projector replay orders|search ORDER_ID
      Replay an order's parked events in the running projector after a fix (for example once a
      missing event was republished); the order flows again when they all apply.
  ordersctl verify orders|search
      Fold every order from the event store and compare it with a read model (the orders tables or
      the search index); print the orders that are missing, extra, at another version or with other
      fields; exit 1 if any differs.

Configuration (environment): DATABASE_URL, KAFKA_BROKERS, OPENSEARCH_URL, EVENTS_TOPIC (default
orders.events), SEARCH_INDEX_ALIAS (default orders), PROJECTOR_ORDERS_URL (default
http://127.0.0.1:8083), PROJECTOR_SEARCH_URL (default http://127.0.0.1:8084), PROJECTOR_ORDERS_GROUP
(default projector-orders), PROJECTOR_SEARCH_GROUP (default projector-search).
Run "ordersctl COMMAND --help" for a command's flags.
`

// errUsage marks a usage error (exit code 2); its text has already been printed.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "ordersctl:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	cmd := strings.Join(args[:min(2, len(args))], " ")
	rest := args[min(2, len(args)):]
	switch cmd {
	case "events republish":
		return republish(ctx, rest, getenv, stdout, stderr)
	case "projector status":
		return projectorStatus(ctx, rest, getenv, stdout, stderr)
	case "projector replay":
		return replay(ctx, rest, getenv, stdout, stderr)
	case "projector rebuild":
		return rebuildCmd(ctx, rest, getenv, stdout, stderr)
	}
	if len(args) > 0 && args[0] == "verify" {
		return verify(ctx, args[1:], getenv, stdout, stderr)
	}
	fmt.Fprintf(stderr, "ordersctl: unknown command %q\n\n%s", cmd, usage)
	return errUsage
}

// parse parses a command's flags; --help prints them and succeeds.
func parse(fs *flag.FlagSet, args []string, stderr io.Writer) (help bool, err error) {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %v\n", fs.Args())
		fs.Usage()
		return false, errUsage
	}
	return false, nil
}
