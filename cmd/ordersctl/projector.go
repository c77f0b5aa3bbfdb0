package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/orders-oss/orders/internal/envconfig"
	"github.com/orders-oss/orders/internal/pii"
	"github.com/orders-oss/orders/internal/rebuild"
)

// targetArgs accepts orders|search, then n-1 more arguments (an order id).
func targetArgs(n int) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) == 0 {
			return usageErrorf("missing the read model: orders or search")
		}
		if _, err := rebuild.ParseTarget(args[0]); err != nil {
			return usageErrorf("%v", err)
		}
		if len(args) < n {
			return usageErrorf("missing ORDER_ID")
		}
		if len(args) > n {
			return usageErrorf("unexpected arguments: %v", args[n:])
		}
		return nil
	}
}

// completeTarget completes the first argument with the read models.
func completeTarget(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return []cobra.Completion{"orders", "search"}, cobra.ShellCompDirectiveNoFileComp
}

// liveGroupVar is the variable that names a read model's live projector group.
var liveGroupVar = map[rebuild.Target]string{rebuild.Orders: "PROJECTOR_ORDERS_GROUP", rebuild.Search: "PROJECTOR_SEARCH_GROUP"}

const rebuildLong = `Rebuilds a read model by replaying the events topic from offset 0.

Default (no downtime): builds a fresh generation beside the live one (orders: a new table schema
orders_gN; search: a new index orders-vN) in a consumer group of its own, while the live model keeps
serving reads and keeping up. Once the new generation has caught up (within --catch-up-lag records of
the topic's end), reads switch to it atomically (orders: the orders_read views are repointed in one
transaction, when the new tables have read at least as far as the live ones; search: the alias is
moved in one request, and the rebuild keeps going until it is past the live projector), and the old
generation is dropped. Interrupted (Ctrl-C) or failed, it drops what it built.

--in-place: clears the live model and resets the projector's own group (projector-orders or
projector-search) to the earliest offset, then replays into it here. Reads return nothing or partial
results until it finishes. Kafka resets the offsets of a group only while it has no members: stop the
projector first, start it again afterwards.

Before anything, the topic must still start at offset 0 on every partition, or a replay would
silently miss the deleted records. When it does not, the rebuild refuses, unless --backfill: then the
new generation is first folded from the event store (the source of truth, DATABASE_URL), and the topic
replay from its earliest records only adds what came after (writes are idempotent by version).

Reads KAFKA_BROKERS, EVENTS_TOPIC, DATABASE_URL (orders, or --backfill), OPENSEARCH_URL and
SEARCH_INDEX_ALIAS (search), PROJECTOR_ORDERS_GROUP or PROJECTOR_SEARCH_GROUP.

Progress goes to stderr (a bar on a terminal, plain lines otherwise). Exit codes: 0 done (reads are on
the new generation), 1 failed or refused (the live model is unchanged, unless --in-place), 2 usage.`

func (c *cli) rebuildCmd() *cobra.Command {
	var o rebuild.Options
	cmd := &cobra.Command{
		Use:               "rebuild orders|search [flags]",
		Short:             "Rebuild a read model from the events topic, switching reads when it has caught up",
		Long:              rebuildLong,
		Args:              targetArgs(1),
		ValidArgsFunction: completeTarget,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.CatchUpLag < 0 {
				return usageErrorf("--catch-up-lag must not be negative, got %d", o.CatchUpLag)
			}
			o.Target = rebuild.Target(args[0])
			r := envconfig.New(c.getenv)
			brokers := r.List("KAFKA_BROKERS", true)
			o.Topic = r.String("EVENTS_TOPIC", "orders.events")
			o.Alias = r.String("SEARCH_INDEX_ALIAS", "orders")
			o.LiveGroup = r.String(liveGroupVar[o.Target], "projector-"+args[0])
			var osURL string
			// The event store (orders, backfill) and the data keys (both: personal data is opened to be
			// written to a read model).
			dbURL := r.Required("DATABASE_URL")
			keys := pii.ReadConfig(r)
			if o.Target == rebuild.Search {
				osURL = r.Required("OPENSEARCH_URL")
			}
			if err := r.Err(); err != nil {
				return err
			}
			clients, closeClients, err := connect(cmd.Context(), brokers, dbURL, osURL, &keys)
			if err != nil {
				return err
			}
			defer closeClients()
			p := newProgress(c.stderr)
			res, err := rebuild.Rebuild(cmd.Context(), clients, o, p)
			p.done()
			if lost := (*rebuild.HistoryLostError)(nil); errors.As(err, &lost) {
				return fmt.Errorf("%w. Rerun with --backfill to fold the event store first, or republish the history (ordersctl events republish) to a new topic", err)
			}
			if err != nil {
				return err
			}
			took := res.Finished.Sub(res.Started).Round(time.Second)
			if res.InPlace {
				fmt.Fprintf(c.stdout, "rebuilt %s in place in %s; start %s again (it continues from where the rebuild stopped)\n", res.Target, took, o.LiveGroup)
				return nil
			}
			fmt.Fprintf(c.stdout, "rebuilt %s in %s; reads are on %s\n", res.Target, took, res.Generation)
			return nil
		},
	}
	cmd.Flags().BoolVar(&o.InPlace, "in-place", false, "clear the live model and replay into it (a gap in service; stop the projector first)")
	cmd.Flags().BoolVar(&o.Backfill, "backfill", false, "when the topic lost early records, fold the event store first")
	cmd.Flags().Int64Var(&o.CatchUpLag, "catch-up-lag", 1000, "switch reads once the rebuild is at most this many records behind the topic's end")
	return cmd
}

func (c *cli) replayCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "replay orders|search ORDER_ID",
		Short: "Replay an order's parked events in the running projector",
		Long: `Replays the order's parked events in the running projector after a fix (a release that decodes the
event, or the missing event republished with ordersctl events republish); the order flows again when
they all apply, otherwise it says why and the order stays parked. It calls the projector's
POST /parked/{order}/replay: orders at PROJECTOR_ORDERS_URL (default http://127.0.0.1:8083), search at
PROJECTOR_SEARCH_URL (default http://127.0.0.1:8084). The endpoint needs an admin's bearer token:
ORDERS_TOKEN, or with AUTH_MODE=dev one that ordersctl signs with the local dev key.`,
		Args:              targetArgs(2),
		ValidArgsFunction: completeTarget,
		RunE: func(cmd *cobra.Command, args []string) error {
			r := envconfig.New(c.getenv)
			base := r.String("PROJECTOR_SEARCH_URL", "http://127.0.0.1:8084")
			if args[0] == string(rebuild.Orders) {
				base = r.String("PROJECTOR_ORDERS_URL", "http://127.0.0.1:8083")
			}
			if err := r.Err(); err != nil {
				return err
			}
			token, err := c.operatorToken()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			answer, err := rebuild.ReplayParked(ctx, nil, base, token, args[1])
			if err != nil {
				return fmt.Errorf("%s projector: %w", args[0], err)
			}
			fmt.Fprintln(c.stdout, answer)
			return nil
		},
	}
}

func (c *cli) statusCmd() *cobra.Command {
	var out *format
	cmd := &cobra.Command{
		Use:   "status [flags]",
		Short: "Show the topic's history, the projectors' lag and the read models' live generations",
		Long: `Shows whether the events topic still starts at offset 0 on every partition (a rebuild from a topic that
lost records would be partial), each projector's consumer group with its lag per partition, and per
read model the live generation (the table schema behind the orders_read views; the index behind the
alias) and the parked orders. A read model whose server is not configured is not inspected.

Reads KAFKA_BROKERS, EVENTS_TOPIC, DATABASE_URL, OPENSEARCH_URL, SEARCH_INDEX_ALIAS,
PROJECTOR_ORDERS_GROUP and PROJECTOR_SEARCH_GROUP.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := envconfig.New(c.getenv)
			brokers := r.List("KAFKA_BROKERS", true)
			o := rebuild.StatusOptions{Topic: r.String("EVENTS_TOPIC", "orders.events"), Alias: r.String("SEARCH_INDEX_ALIAS", "orders"),
				Groups: []string{r.String("PROJECTOR_ORDERS_GROUP", "projector-orders"), r.String("PROJECTOR_SEARCH_GROUP", "projector-search")}}
			dbURL, osURL := r.String("DATABASE_URL", ""), r.String("OPENSEARCH_URL", "")
			if err := r.Err(); err != nil {
				return err
			}
			clients, closeClients, err := connect(cmd.Context(), brokers, dbURL, osURL, nil)
			if err != nil {
				return err
			}
			defer closeClients()
			st, err := rebuild.ReadStatus(cmd.Context(), clients, o)
			if err != nil {
				return err
			}
			if *out == jsonFormat {
				return writeJSON(c.stdout, st)
			}
			return writeStatus(c.stdout, st)
		},
	}
	out = addOutputFlag(cmd)
	return cmd
}

// writeStatus renders the status for people.
func writeStatus(w io.Writer, st rebuild.Status) error {
	h := st.History
	if lost := h.Lost(); len(lost) > 0 {
		fmt.Fprintf(w, "topic %s: HISTORY WAS DELETED (%s): a rebuild from Kafka would be partial; republish from the event store\n",
			h.Topic, rebuild.DescribeLost(lost))
	} else if h.Complete() {
		fmt.Fprintf(w, "topic %s: every partition starts at offset 0 (full history)\n", h.Topic)
	}
	for _, p := range h.Partitions {
		if p.Error != "" {
			fmt.Fprintf(w, "topic %s: partition %d: start offset unknown: %s\n", h.Topic, p.Partition, p.Error)
		}
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tSTATE\tPARTITION\tCOMMITTED\tEND\tLAG")
	for _, g := range st.Groups {
		switch {
		case !g.Exists:
			fmt.Fprintf(tw, "%s\t(no group yet)\t\t\t\t\n", g.Group)
		case g.Error != "":
			fmt.Fprintf(tw, "%s\terror: %s\t\t\t\t\n", g.Group, g.Error)
		case len(g.Partitions) == 0:
			fmt.Fprintf(tw, "%s\t%s\t(no commits)\t\t\t\n", g.Group, g.State)
		}
		for _, p := range g.Partitions {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\n", g.Group, g.State, p.Partition, p.Committed, p.End, p.Lag)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	switch o := st.Orders; {
	case o == nil:
		fmt.Fprintln(w, "projector-orders: DATABASE_URL not set; read model not inspected")
	case o.Error != "":
		fmt.Fprintf(w, "projector-orders: read model: %s\n", o.Error)
	default:
		line := fmt.Sprintf("projector-orders: live generation %s (orders_read views), parked orders: %d", o.Live, o.ParkedOrders)
		if len(o.Building) > 0 {
			line += "; also " + strings.Join(o.Building, " (building), ") + " (building)"
		}
		fmt.Fprintln(w, line)
	}
	switch s := st.Search; {
	case s == nil:
		fmt.Fprintln(w, "projector-search: OPENSEARCH_URL not set; index not inspected")
	case s.Error != "":
		fmt.Fprintf(w, "projector-search: index: %s\n", s.Error)
	case len(s.Targets) == 0:
		fmt.Fprintf(w, "projector-search: alias %s does not exist yet (projector-search creates it when it starts)\n", s.Alias)
	default:
		parked := "unknown"
		if s.ParkedOrders != nil {
			parked = fmt.Sprint(*s.ParkedOrders)
		}
		fmt.Fprintf(w, "projector-search: alias %s -> %s, parked orders: %s\n", s.Alias, strings.Join(s.Targets, ", "), parked)
	}
	return nil
}
