package main

import (
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/orders-oss/orders/internal/envconfig"
	"github.com/orders-oss/orders/internal/eventstore"
)

// errBrokenChain: verify events found a broken link (exit code 1, after printing them).
var errBrokenChain = errors.New("the event store's hash chain is broken")

func (c *cli) verifyEventsCmd() *cobra.Command {
	var orderID string
	var out *format
	cmd := &cobra.Command{
		Use:   "events [--order ID] [flags]",
		Short: "Recompute the event store's hash chains and report tampering",
		Long: `Recomputes the SHA-256 hash chain of every order's events (or only --order's) from the stored events and
reports the first broken link of each order: a version missing (an event deleted), an event whose bytes do
not give its stored hash (edited, or an event inserted or removed before it), a hash removed. It catches
changes made behind the services' back, by the owner or a superuser with the append-only trigger
disabled. Events stored before the chain existed are counted, not checked. What it cannot see (a whole
order deleted, a chain rewritten from its start by someone with write access): docs/security.md.
Exits 1 when a link is broken, 0 when every chain holds.

Reads DATABASE_URL (the owner role: it reads every event).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if orderID != "" {
				if _, err := uuid.Parse(orderID); err != nil {
					return usageErrorf("--order must be an order id (a UUID), got %q", orderID)
				}
			}
			r := envconfig.New(c.getenv)
			dbURL := r.Required("DATABASE_URL")
			if err := r.Err(); err != nil {
				return err
			}
			clients, closeClients, err := connect(cmd.Context(), nil, dbURL, "", nil)
			if err != nil {
				return err
			}
			defer closeClients()
			rep, err := eventstore.New(clients.Pool).VerifyChains(cmd.Context(), orderID)
			if err != nil {
				return err
			}
			if *out == jsonFormat {
				err = writeJSON(c.stdout, rep)
			} else {
				for _, b := range rep.Breaks {
					fmt.Fprintf(c.stdout, "BROKEN order %s at version %d: %s\n", b.OrderID, b.Version, b.Reason)
				}
				fmt.Fprintf(c.stdout, "events: %d orders, %d events, %d stored before the chain (not covered), %d broken chains\n",
					rep.Streams, rep.Events, rep.Legacy, len(rep.Breaks))
			}
			if err != nil {
				return err
			}
			if len(rep.Breaks) > 0 {
				return errBrokenChain
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&orderID, "order", "", "check this order only")
	out = addOutputFlag(cmd)
	return cmd
}
