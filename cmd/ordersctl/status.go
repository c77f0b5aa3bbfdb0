package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/envconfig"
)

// Projectors are the consumer groups of the system's projectors.
var Projectors = []string{"projector-orders", "projector-search"}

func projectorStatus(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ordersctl projector status", flag.ContinueOnError)
	if help, err := parse(fs, args, stderr); help || err != nil {
		return err
	}
	r := envconfig.New(getenv)
	brokers := r.List("KAFKA_BROKERS", true)
	topic := r.String("EVENTS_TOPIC", "orders.events")
	dbURL, osURL := r.String("DATABASE_URL", ""), r.String("OPENSEARCH_URL", "")
	alias := r.String("SEARCH_INDEX_ALIAS", "orders")
	groups := []string{r.String("PROJECTOR_ORDERS_GROUP", Projectors[0]), r.String("PROJECTOR_SEARCH_GROUP", Projectors[1])}
	if err := r.Err(); err != nil {
		return err
	}
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer client.Close()
	adm := kadm.NewClient(client)

	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	var lost []string
	starts.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > 0 {
			lost = append(lost, fmt.Sprintf("partition %d starts at %d", o.Partition, o.Offset))
		}
	})
	sort.Strings(lost)
	if len(lost) == 0 {
		fmt.Fprintf(stdout, "topic %s: every partition starts at offset 0 (full history)\n\n", topic)
	} else {
		fmt.Fprintf(stdout, "topic %s: HISTORY WAS DELETED (%s): a rebuild from Kafka would be partial; republish from the event store\n\n",
			topic, strings.Join(lost, ", "))
	}

	lags, err := adm.Lag(ctx, slices.Clone(groups)...) // a copy: kadm may reorder what it is given
	if err != nil {
		return fmt.Errorf("group lag: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tSTATE\tPARTITION\tCOMMITTED\tEND\tLAG")
	for _, g := range groups {
		l, ok := lags[g]
		if !ok || l.State == "Dead" || (len(l.Lag) == 0 && l.State == "") {
			fmt.Fprintf(tw, "%s\t(no group yet)\t\t\t\t\n", g)
			continue
		}
		if l.Error() != nil {
			fmt.Fprintf(tw, "%s\terror: %v\t\t\t\t\n", g, l.Error())
			continue
		}
		rows := l.Lag.Sorted()
		if len(rows) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t(no commits)\t\t\t\n", g, l.State)
		}
		for _, m := range rows {
			if m.Topic != topic {
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\n", g, l.State, m.Partition, m.Commit.At, m.End.Offset, m.Lag)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	readModelStatus(ctx, dbURL, osURL, alias, stdout)
	return nil
}
