package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/orders-oss/orders/internal/envconfig"
	"github.com/orders-oss/orders/internal/pii"
	"github.com/orders-oss/orders/internal/rebuild"
)

// errDifferences: verify found differences (exit code 1, after printing them).
var errDifferences = errors.New("the read model differs from the event store")

func (c *cli) verifyCmd() *cobra.Command {
	var maxReport int
	var out *format
	cmd := &cobra.Command{
		Use:   "verify orders|search [flags]",
		Short: "Compare a read model with the event store, or check the event store's hash chains (verify events)",
		Long: `Folds every order from the event store with the domain's own evolve and compares it with a read
model: orders, the live generation of the Postgres tables (orders_read.orders); search, the index
behind SEARCH_INDEX_ALIAS (default orders). Prints each order that is missing, extra, at another
version or with other fields (both JSON shapes side by side), and exits 1 if any differs, 0 if none.

Personal data is compared opened with the customers' data keys (PII_MASTER_KEY_FILE).

Reads DATABASE_URL, PII_MASTER_KEY_FILE, and OPENSEARCH_URL and SEARCH_INDEX_ALIAS for search.`,
		Args:              targetArgs(1),
		ValidArgsFunction: completeTarget,
		Annotations:       map[string]string{runsItself: "true"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if maxReport < 0 {
				return usageErrorf("--max-report must not be negative, got %d", maxReport)
			}
			target := rebuild.Target(args[0])
			r := envconfig.New(c.getenv)
			dbURL := r.Required("DATABASE_URL")
			var osURL string
			if target == rebuild.Search {
				osURL = r.Required("OPENSEARCH_URL")
			}
			alias := r.String("SEARCH_INDEX_ALIAS", "orders")
			keys := pii.ReadConfig(r)
			if err := r.Err(); err != nil {
				return err
			}
			clients, closeClients, err := connect(cmd.Context(), nil, dbURL, osURL, &keys)
			if err != nil {
				return err
			}
			defer closeClients()
			p := newProgress(c.stderr)
			report, err := rebuild.VerifyTarget(cmd.Context(), clients, target, alias, p)
			p.done()
			if err != nil {
				return err
			}
			if *out == jsonFormat {
				err = writeReportJSON(c.stdout, report, maxReport)
			} else {
				err = writeReport(c.stdout, report, maxReport)
			}
			if err != nil {
				return err
			}
			if !report.OK() {
				return errDifferences
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&maxReport, "max-report", 50, "show at most this many differences")
	out = addOutputFlag(cmd)
	cmd.AddCommand(c.verifyEventsCmd())
	return cmd
}

// writeReport renders a verify report for people: one line per difference (two more for other
// fields), at most maxReport of them, then the summary.
func writeReport(w io.Writer, r rebuild.Report, maxReport int) error {
	for i, d := range r.Differences {
		if i == maxReport {
			fmt.Fprintf(w, "... and %d more\n", len(r.Differences)-i)
			break
		}
		switch d.Kind {
		case rebuild.Missing:
			fmt.Fprintf(w, "missing  %s (version %d in the event store)\n", d.OrderID, d.StoreVersion)
		case rebuild.Version:
			fmt.Fprintf(w, "version  %s: read model %d, event store %d\n", d.OrderID, d.ModelVersion, d.StoreVersion)
		case rebuild.Fields:
			got, _ := json.Marshal(d.Model)
			want, _ := json.Marshal(d.Store)
			fmt.Fprintf(w, "fields   %s at version %d differ:\n         read model:  %s\n         event store: %s\n", d.OrderID, d.StoreVersion, got, want)
		case rebuild.Extra:
			fmt.Fprintf(w, "extra    %s (in the read model, not in the event store)\n", d.OrderID)
		}
	}
	_, err := fmt.Fprintf(w, "verified %d orders against the %s read model: %d differences\n", r.Orders, r.Target, len(r.Differences))
	return err
}

// writeReportJSON writes the report with at most maxReport differences; omitted_differences says how
// many were left out (the counts per kind cover them all).
func writeReportJSON(w io.Writer, r rebuild.Report, maxReport int) error {
	omitted := 0
	if len(r.Differences) > maxReport {
		omitted = len(r.Differences) - maxReport
		r.Differences = r.Differences[:maxReport]
	}
	return writeJSON(w, struct {
		rebuild.Report
		Omitted int `json:"omitted_differences"`
	}{r, omitted})
}
