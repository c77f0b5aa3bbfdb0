package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/orders-oss/orders/internal/envconfig"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/pii"
	"github.com/orders-oss/orders/internal/rebuild"
)

// errBadSnapshots: snapshots verify found snapshots that are not the fold of their events (exit code
// 1, after printing them).
var errBadSnapshots = errors.New("some snapshots are not the fold of their events")

func (c *cli) snapshotsCmd() *cobra.Command {
	cmd := groupCmd("snapshots", "Verify or drop the command service's snapshots of folded orders")
	cmd.AddCommand(c.snapshotsVerifyCmd(), c.snapshotsDropCmd())
	return cmd
}

func (c *cli) snapshotsVerifyCmd() *cobra.Command {
	var maxReport int
	var out *format
	cmd := &cobra.Command{
		Use:   "verify [flags]",
		Short: "Check that every snapshot is the fold of its order's events",
		Long: `Folds each order's events with the domain's own evolve and compares the fold with every snapshot of
the order at its version. Prints each snapshot that differs, does not decode, is beyond the order's
history or cannot be checked (an event this release cannot read), and exits 1 if there is any; 0
otherwise. Snapshots taken by another fold schema version are listed but are not failures: this
release never uses them (loads replace them; or drop them). Personal data is compared opened
(PII_MASTER_KEY_FILE); the states printed leave it out.

Reads DATABASE_URL and PII_MASTER_KEY_FILE.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if maxReport < 0 {
				return usageErrorf("--max-report must not be negative, got %d", maxReport)
			}
			r := envconfig.New(c.getenv)
			dbURL := r.Required("DATABASE_URL")
			keys := pii.ReadConfig(r)
			if err := r.Err(); err != nil {
				return err
			}
			clients, closeClients, err := connect(cmd.Context(), nil, dbURL, "", &keys)
			if err != nil {
				return err
			}
			defer closeClients()
			p := newProgress(c.stderr)
			report, err := rebuild.VerifySnapshots(cmd.Context(), eventstore.New(clients.Pool), clients.Keys, p)
			p.done()
			if err != nil {
				return err
			}
			if *out == jsonFormat {
				err = writeSnapshotReportJSON(c.stdout, report, maxReport)
			} else {
				err = writeSnapshotReport(c.stdout, report, maxReport)
			}
			if err != nil {
				return err
			}
			if !report.OK() {
				return errBadSnapshots
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&maxReport, "max-report", 50, "show at most this many snapshots")
	out = addOutputFlag(cmd)
	return cmd
}

func (c *cli) snapshotsDropCmd() *cobra.Command {
	var orderID string
	cmd := &cobra.Command{
		Use:   "drop [--order ID]",
		Short: "Delete the snapshots of one order, or of every order",
		Long: `Deletes the snapshots of the order given with --order, or every snapshot without it. Snapshots are a
cache of the fold: the events stay, loads fold from them until the command service takes new
snapshots (every SNAPSHOT_EVERY events, or at once for an order far past its last one). Safe beside
running services.

Reads DATABASE_URL.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOrderFlag(cmd, orderID); err != nil {
				return err
			}
			clients, closeClients, err := c.connectDB(cmd.Context())
			if err != nil {
				return err
			}
			defer closeClients()
			n, err := rebuild.DropSnapshots(cmd.Context(), clients, orderID)
			if err != nil {
				return err
			}
			of := "every order"
			if orderID != "" {
				of = "order " + orderID
			}
			_, err = fmt.Fprintf(c.stdout, "dropped %d snapshots of %s\n", n, of)
			return err
		},
	}
	cmd.Flags().StringVar(&orderID, "order", "", "the order whose snapshots to drop (default: every order)")
	return cmd
}

// writeSnapshotReport renders a snapshot report for people: one line per problem (two more for a
// snapshot that differs), at most maxReport of them, then the summary.
func writeSnapshotReport(w io.Writer, r rebuild.SnapshotReport, maxReport int) error {
	for i, p := range r.Problems {
		if i == maxReport {
			fmt.Fprintf(w, "... and %d more\n", len(r.Problems)-i)
			break
		}
		fmt.Fprintf(w, "%-17s %s at version %d (fold schema version %d): %s\n", p.Kind, p.OrderID, p.Version, p.FoldSchemaVersion, p.Detail)
		if p.Kind == rebuild.SnapshotDiffers {
			fmt.Fprintf(w, "                  snapshot: %s\n                  fold:     %s\n", p.Snapshot, p.Fold)
		}
	}
	_, err := fmt.Fprintf(w, "verified %d of %d snapshots of %d orders (fold schema version %d): %d failures, %d of another fold schema version\n",
		r.Verified, r.Snapshots, r.Orders, r.FoldSchemaVersion, r.Failures, r.OtherFold)
	return err
}

// writeSnapshotReportJSON writes the report with at most maxReport problems; omitted_problems says how
// many were left out (the counts cover them all).
func writeSnapshotReportJSON(w io.Writer, r rebuild.SnapshotReport, maxReport int) error {
	omitted := 0
	if len(r.Problems) > maxReport {
		omitted = len(r.Problems) - maxReport
		r.Problems = r.Problems[:maxReport]
	}
	return writeJSON(w, struct {
		rebuild.SnapshotReport
		Omitted int `json:"omitted_problems"`
	}{r, omitted})
}
