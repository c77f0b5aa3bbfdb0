package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/orders-oss/orders/internal/envconfig"
	"github.com/orders-oss/orders/internal/rebuild"
)

func (c *cli) republishCmd() *cobra.Command {
	var o rebuild.RepublishOptions
	cmd := &cobra.Command{
		Use:   "republish [flags]",
		Short: "Republish events from the event store to the events topic",
		Long: `Republishes events from the event store (the source of truth) to the events topic, in position order
(which is version order per order), keyed by order id, with the same record format as the relay: for a
topic that lost history, a new Kafka cluster, or to re-feed a consumer. Consumers stay correct: their
writes are idempotent by (order id, version). After a failure it names the --from-position to resume
from.

Reads DATABASE_URL, KAFKA_BROKERS and EVENTS_TOPIC (default orders.events).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Batch < 1 {
				return usageErrorf("--batch must be at least 1, got %d", o.Batch)
			}
			r := envconfig.New(c.getenv)
			dbURL := r.Required("DATABASE_URL")
			brokers := r.List("KAFKA_BROKERS", true)
			o.Topic = r.String("EVENTS_TOPIC", "orders.events")
			if err := r.Err(); err != nil {
				return err
			}
			clients, closeClients, err := connect(cmd.Context(), brokers, dbURL, "", nil)
			if err != nil {
				return err
			}
			defer closeClients()
			p := newProgress(c.stderr)
			res, err := rebuild.Republish(cmd.Context(), clients, o, p)
			p.done()
			if re := (*rebuild.ResumeError)(nil); errors.As(err, &re) {
				return fmt.Errorf("%w (rerun with --from-position %d)", err, re.Resume)
			}
			if err != nil {
				return err
			}
			if res.End <= o.From {
				fmt.Fprintf(c.stdout, "nothing to republish: events end at position %d\n", res.End)
				return nil
			}
			fmt.Fprintf(c.stdout, "republished events up to position %d to %s\n", res.Last, res.Topic)
			return nil
		},
	}
	cmd.Flags().Int64Var(&o.From, "from-position", 0, "republish events with a position above this one")
	cmd.Flags().Int64Var(&o.To, "to-position", 0, "stop after this position (0: the last event stored when the command starts)")
	cmd.Flags().IntVar(&o.Batch, "batch", 2000, "events per produce batch")
	return cmd
}
