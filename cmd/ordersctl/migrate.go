package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/orders-oss/orders/internal/envconfig"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/readmodel"
)

func (c *cli) migrateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply the event store's migrations and create the read model's control schema",
		Long: `Applies the event store's migrations that are not applied yet, then creates the orders read model's
control schema (orders_read: the generations table and the views, on generation 1 when none is live).
Idempotent, and safe beside running services (both steps take their own advisory lock): run it as a
Kubernetes migration Job before a rollout, or by hand. The services do the same at start.

Reads DATABASE_URL.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := envconfig.New(c.getenv)
			dbURL := r.Required("DATABASE_URL")
			if err := r.Err(); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Minute)
			defer cancel()
			clients, closeClients, err := connect(ctx, nil, dbURL, "", nil)
			if err != nil {
				return err
			}
			defer closeClients()
			if err := eventstore.Migrate(ctx, clients.Pool); err != nil {
				return fmt.Errorf("migrate the event store: %w", err)
			}
			fmt.Fprintln(c.stdout, "event store: migrated")
			live, err := readmodel.Ensure(ctx, clients.Pool)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "orders read model: %s ready, live generation %s\n", readmodel.ControlSchema, readmodel.Schema(live))
			return nil
		},
	}
}
