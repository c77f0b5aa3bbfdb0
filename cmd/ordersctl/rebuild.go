package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opensearch-project/opensearch-go/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/envconfig"
	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/internal/readmodel"
	"github.com/orders-oss/orders/internal/searchindex"
	"github.com/orders-oss/orders/pkg/events"
)

const rebuildUsage = `usage: ordersctl projector rebuild orders|search [--in-place] [--backfill]

Rebuilds a read model by replaying the events topic from offset 0.

Default (no downtime): builds a fresh generation beside the live one (orders: a new table schema
orders_gN; search: a new index orders-vN) in a consumer group of its own, while the live model keeps
serving reads and keeping up. Once the new generation has caught up, reads switch to it atomically
(orders: the orders_read views are repointed in one transaction, when the new tables have read at
least as far as the live ones; search: the alias is moved in one request, and the rebuild keeps going
until it is past the live projector), and the old generation is dropped.

--in-place: clears the live model and resets the projector's own group (projector-orders or
projector-search) to the earliest offset, then replays into it here. Reads return nothing or partial
results until it finishes. Kafka resets the offsets of a group only while it has no members: stop the
projector first, start it again afterwards.

Before anything, the topic must still start at offset 0 on every partition, or a replay would
silently miss the deleted records. When it does not, the rebuild refuses, unless --backfill: then the
new generation is first folded from the event store (the source of truth, DATABASE_URL), and the topic
replay from its earliest records only adds what came after (writes are idempotent by version).

Progress goes to stdout (a bar on a terminal, plain lines otherwise). Exit codes: 0 done (reads are on
the new generation), 1 failed or refused (the live model is unchanged, unless --in-place), 2 usage.`

type rebuildConfig struct {
	target, topic, alias string
	inPlace, backfill    bool
	brokers              []string
	dbURL, osURL         string
	catchUp              int64
	liveGroup            string
}

func rebuildCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ordersctl projector rebuild", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(stderr, rebuildUsage); fs.PrintDefaults() }
	var cfg rebuildConfig
	fs.BoolVar(&cfg.inPlace, "in-place", false, "clear the live model and replay into it (a gap in service)")
	fs.BoolVar(&cfg.backfill, "backfill", false, "when the topic lost early records, fold the event store first")
	fs.Int64Var(&cfg.catchUp, "catch-up-lag", 1000, "switch reads once the rebuild is at most this many records behind the topic's end")
	if len(args) == 0 || (args[0] != "orders" && args[0] != "search") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fs.Usage()
			return nil
		}
		fs.Usage()
		return errUsage
	}
	cfg.target = args[0]
	if help, err := parse(fs, args[1:], stderr); help || err != nil {
		return err
	}
	r := envconfig.New(getenv)
	cfg.brokers = r.List("KAFKA_BROKERS", true)
	cfg.topic = r.String("EVENTS_TOPIC", "orders.events")
	cfg.alias = r.String("SEARCH_INDEX_ALIAS", "orders")
	cfg.liveGroup = r.String(map[string]string{"orders": "PROJECTOR_ORDERS_GROUP", "search": "PROJECTOR_SEARCH_GROUP"}[cfg.target], "projector-"+cfg.target)
	if cfg.target == "orders" || cfg.backfill {
		cfg.dbURL = r.Required("DATABASE_URL")
	}
	if cfg.target == "search" {
		cfg.osURL = r.Required("OPENSEARCH_URL")
	}
	if err := r.Err(); err != nil {
		return err
	}
	return rebuild(ctx, cfg, stdout)
}

// generation is what a rebuild writes and switches to; orders and search each implement it.
type generation interface {
	name() string
	handler() projection.Handler
	parking() projection.Parking
	// swap switches reads to the new generation if it is far enough; it reports whether it did.
	swap(ctx context.Context) (bool, error)
	// afterSwap reports whether the rebuild may stop now that reads are switched.
	afterSwap(ctx context.Context, adm *kadm.Client, rebuildGroup string) (bool, error)
	// retire drops the old generation after a successful switch.
	retire(ctx context.Context) error
	// abandon drops the new generation after a failed rebuild.
	abandon(ctx context.Context) error
}

func rebuild(ctx context.Context, cfg rebuildConfig, stdout io.Writer) error {
	client, err := kgo.NewClient(kgo.SeedBrokers(cfg.brokers...))
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer client.Close()
	adm := kadm.NewClient(client)
	liveGroup := cfg.liveGroup

	// 1. The topic must still hold its whole history, unless the store fills it in.
	starts, err := adm.ListStartOffsets(ctx, cfg.topic)
	if err != nil {
		return fmt.Errorf("list start offsets of %s: %w", cfg.topic, err)
	}
	if err := starts.Error(); err != nil {
		return fmt.Errorf("list start offsets of %s: %w", cfg.topic, err)
	}
	var lost []string
	starts.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			lost = append(lost, fmt.Sprintf("partition %d starts at offset %d", o.Partition, o.Offset))
		}
	})
	sort.Strings(lost)
	if len(lost) > 0 && !cfg.backfill {
		return fmt.Errorf("refusing to rebuild: topic %s no longer starts at offset 0 (%s); a replay would silently miss the deleted events. "+
			"Rerun with --backfill to fold the event store first, or republish the history (ordersctl events republish) to a new topic", cfg.topic, strings.Join(lost, ", "))
	}
	if len(lost) > 0 {
		fmt.Fprintf(stdout, "topic %s lost early records (%s): the event store fills them in (--backfill)\n", cfg.topic, strings.Join(lost, ", "))
	} else {
		fmt.Fprintf(stdout, "topic %s starts at offset 0 on every partition\n", cfg.topic)
	}

	var pool *pgxpool.Pool
	if cfg.dbURL != "" {
		if pool, err = pgxpool.New(ctx, cfg.dbURL); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		defer pool.Close()
	}
	var osc *opensearch.Client
	if cfg.osURL != "" {
		if osc, err = opensearch.NewClient(opensearch.Config{Addresses: []string{cfg.osURL}}); err != nil {
			return fmt.Errorf("OPENSEARCH_URL: %w", err)
		}
	}

	group := liveGroup
	var gen generation
	if cfg.inPlace {
		gen, err = prepareInPlace(ctx, cfg, adm, liveGroup, pool, osc, starts)
	} else {
		gen, err = prepareGeneration(ctx, cfg, pool, osc)
		group = fmt.Sprintf("%s-rebuild-%s", liveGroup, gen.name())
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rebuilding %s into %s (consumer group %s)\n", cfg.target, gen.name(), group)
	began := time.Now()
	err = runRebuild(ctx, cfg, gen, adm, group, pool, stdout)
	if err != nil && !cfg.inPlace {
		if aerr := gen.abandon(context.WithoutCancel(ctx)); aerr != nil {
			err = errors.Join(err, fmt.Errorf("drop the unfinished %s: %w", gen.name(), aerr))
		}
		_, _ = adm.DeleteGroups(context.WithoutCancel(ctx), group)
		return fmt.Errorf("%w; the live model is unchanged", err)
	}
	if err != nil {
		return err
	}
	if cfg.inPlace {
		fmt.Fprintf(stdout, "rebuilt %s in place in %s; start %s again (it continues from where the rebuild stopped)\n",
			cfg.target, time.Since(began).Round(time.Second), liveGroup)
		return nil
	}
	if _, err := adm.DeleteGroups(ctx, group); err != nil {
		fmt.Fprintf(stdout, "warning: delete the rebuild's consumer group %s: %v\n", group, err)
	}
	if err := gen.retire(ctx); err != nil {
		return fmt.Errorf("reads are on %s, but dropping the old generation failed: %w", gen.name(), err)
	}
	fmt.Fprintf(stdout, "rebuilt %s in %s; reads are on %s\n", cfg.target, time.Since(began).Round(time.Second), gen.name())
	return nil
}

// runRebuild backfills when asked, then consumes the topic into gen until it is caught up and reads
// are switched (or, in place, until the group is at the topic's end).
func runRebuild(ctx context.Context, cfg rebuildConfig, gen generation, adm *kadm.Client, group string, pool *pgxpool.Pool, stdout io.Writer) error {
	if cfg.backfill {
		if err := backfill(ctx, pool, gen, stdout); err != nil {
			return err
		}
	}
	ends, err := adm.ListEndOffsets(ctx, cfg.topic)
	if err != nil {
		return fmt.Errorf("list end offsets: %w", err)
	}
	starts, err := adm.ListStartOffsets(ctx, cfg.topic)
	if err != nil {
		return fmt.Errorf("list start offsets: %w", err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) {
		if s, ok := starts.Lookup(cfg.topic, o.Partition); ok {
			total += o.Offset - s.Offset
		}
	})
	consumer, err := kgo.NewClient(projection.ConsumerOptions(cfg.brokers, cfg.topic, group)...)
	if err != nil {
		return fmt.Errorf("kafka consumer: %w", err)
	}
	defer consumer.Close()
	m := projection.NewMetrics()
	loop := &projection.Loop{Client: consumer, Handler: gen.handler(), Parking: gen.parking(), Topic: cfg.topic, Group: group,
		Log: slog.New(slog.DiscardHandler), Metrics: m}
	p := newProgress(stdout, total, "events")
	var seen float64
	swapped := false
	lastCheck := time.Time{}
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("interrupted: %w", err)
		}
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		err := loop.RunOnce(pctx)
		cancel()
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		if n := m.Seen(); n > seen {
			p.add(int64(n - seen))
			seen = n
		}
		if time.Since(lastCheck) < 250*time.Millisecond {
			continue
		}
		lastCheck = time.Now()
		lag, err := groupLag(ctx, adm, cfg.topic, group)
		if err != nil {
			return err
		}
		if cfg.inPlace {
			if lag == 0 {
				p.done()
				return nil
			}
			continue
		}
		if !swapped {
			if lag > cfg.catchUp {
				continue
			}
			ok, err := gen.swap(ctx)
			if err != nil {
				return fmt.Errorf("switch reads: %w", err)
			}
			if !ok {
				continue
			}
			swapped = true
			p.done()
			fmt.Fprintf(stdout, "caught up: reads switched to %s\n", gen.name())
		}
		done, err := gen.afterSwap(ctx, adm, group)
		if err != nil {
			return err
		}
		if done {
			if parked := gen.parking().Count(); parked > 0 {
				fmt.Fprintf(stdout, "warning: %d orders were parked during the rebuild; see ordersctl projector status\n", parked)
			}
			return nil
		}
	}
}

// groupLag is the records of the topic the group has not committed yet (all of them before its
// first commit).
func groupLag(ctx context.Context, adm *kadm.Client, topic, group string) (int64, error) {
	lags, err := adm.Lag(ctx, group)
	if err != nil {
		return 0, fmt.Errorf("lag of %s: %w", group, err)
	}
	l, ok := lags[group]
	if !ok {
		return 0, fmt.Errorf("lag of %s: no answer", group)
	}
	if err := l.Error(); err != nil {
		return 0, fmt.Errorf("lag of %s: %w", group, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	var lag int64
	ends.Each(func(o kadm.ListedOffset) {
		var from int64
		if s, ok := starts.Lookup(topic, o.Partition); ok {
			from = s.Offset
		}
		if c, ok := l.Lag.Lookup(topic, o.Partition); ok && c.Commit.At >= 0 {
			from = max(from, c.Commit.At)
		}
		lag += max(0, o.Offset-from)
	})
	return lag, nil
}

// behindGroup reports whether group has committed less than other on some partition.
func behindGroup(ctx context.Context, adm *kadm.Client, topic, group, other string) (bool, error) {
	mine, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false, err
	}
	theirs, err := adm.FetchOffsets(ctx, other)
	if err != nil {
		return false, err
	}
	behind := false
	theirs.Each(func(o kadm.OffsetResponse) {
		if o.Topic != topic || o.Err != nil {
			return
		}
		if m, ok := mine.Lookup(topic, o.Partition); !ok || m.At < o.At {
			behind = true
		}
	})
	return behind, nil
}

// backfill folds the whole event store into the new generation through its handler, in position
// order (version order per order).
func backfill(ctx context.Context, pool *pgxpool.Pool, gen generation, stdout io.Writer) error {
	store := eventstore.New(pool)
	last, err := store.LastPosition(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "backfill from the event store:")
	p := newProgress(stdout, last, "events")
	h := gen.handler()
	var after int64
	failed := 0
	for after < last {
		evs, err := store.ReadAll(ctx, after, 5000)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			break
		}
		batch := make([]projection.Event, 0, len(evs))
		for _, e := range evs {
			payload, err := events.DecodeEnvelope(e)
			if err != nil {
				return fmt.Errorf("event %d of order %s: %w", e.Position, e.OrderID, err)
			}
			batch = append(batch, projection.Event{Envelope: e, Payload: payload, Topic: "event-store", Offset: e.Position})
			after = e.Position
		}
		res, err := h.Apply(ctx, batch, nil)
		if err != nil {
			return fmt.Errorf("backfill: %w", err)
		}
		failed += len(res.Failed)
		p.add(int64(len(evs)))
	}
	p.done()
	if failed > 0 {
		return fmt.Errorf("backfill: %d orders could not be applied from the event store", failed)
	}
	return nil
}

// --- orders: table generations

type ordersGeneration struct {
	pool     *pgxpool.Pool
	from, to int
	park     *readmodel.Parking
}

func (g *ordersGeneration) name() string { return readmodel.Schema(g.to) }
func (g *ordersGeneration) handler() projection.Handler {
	return readmodel.Handler{Pool: g.pool, Generation: g.to}
}
func (g *ordersGeneration) parking() projection.Parking { return g.park }
func (g *ordersGeneration) swap(ctx context.Context) (bool, error) {
	behind, err := readmodel.Swap(ctx, g.pool, g.from, g.to)
	return err == nil && len(behind) == 0, err
}
func (g *ordersGeneration) afterSwap(context.Context, *kadm.Client, string) (bool, error) {
	// The swap happened between two live batches, with the new tables at least as far as the old
	// ones: the live projector's next batch writes to them and finds no gap.
	return true, nil
}
func (g *ordersGeneration) retire(ctx context.Context) error {
	return readmodel.Drop(ctx, g.pool, g.from)
}
func (g *ordersGeneration) abandon(ctx context.Context) error {
	return readmodel.Drop(ctx, g.pool, g.to)
}

// --- search: index generations

type searchGeneration struct {
	live     *searchindex.Index // through the alias
	from, to string
	ix       *searchindex.Index // the new index, by name
	park     *projection.ParkedSet
	liveGrp  string
	topic    string
	parkName string
}

func (g *searchGeneration) name() string { return g.to }
func (g *searchGeneration) handler() projection.Handler {
	return searchindex.Handler{Index: g.ix}
}
func (g *searchGeneration) parking() projection.Parking { return g.park }
func (g *searchGeneration) swap(ctx context.Context) (bool, error) {
	return true, g.live.SwapAlias(ctx, g.from, g.to)
}

// afterSwap: the live projector now writes to the new index through the alias; the rebuild keeps
// going until it has committed at least as far as the live projector, so that every event the live
// projector wrote only to the old index reaches the new one too (the live projector waits on the
// gaps this leaves for a moment: PROJECTOR_GAP_GRACE).
func (g *searchGeneration) afterSwap(ctx context.Context, adm *kadm.Client, group string) (bool, error) {
	behind, err := behindGroup(ctx, adm, g.topic, group, g.liveGrp)
	return !behind, err
}
func (g *searchGeneration) retire(ctx context.Context) error {
	if err := g.live.DeleteIndex(ctx, g.from); err != nil {
		return err
	}
	if g.park.Count() > 0 {
		return nil // kept for the operator (see the warning)
	}
	return g.live.DeleteIndex(ctx, g.parkName)
}
func (g *searchGeneration) abandon(ctx context.Context) error {
	if err := g.live.DeleteIndex(ctx, g.to); err != nil {
		return err
	}
	return g.live.DeleteIndex(ctx, g.parkName)
}

func prepareGeneration(ctx context.Context, cfg rebuildConfig, pool *pgxpool.Pool, osc *opensearch.Client) (generation, error) {
	if cfg.target == "orders" {
		live, err := readmodel.Live(ctx, pool)
		if err != nil {
			return nil, err
		}
		to, err := readmodel.CreateGeneration(ctx, pool)
		if err != nil {
			return nil, err
		}
		park, err := readmodel.NewParking(ctx, pool, to)
		if err != nil {
			return nil, err
		}
		return &ordersGeneration{pool: pool, from: live, to: to, park: park}, nil
	}
	live := searchindex.New(osc, cfg.alias)
	targets, err := live.Targets(ctx)
	if err != nil {
		return nil, err
	}
	if len(targets) != 1 {
		return nil, fmt.Errorf("alias %s points at %d indices (%v); want exactly one (is projector-search started?)", cfg.alias, len(targets), targets)
	}
	to := searchindex.NextIndexName(targets[0])
	// A leftover of an earlier rebuild that stopped is not live (the alias is elsewhere): start over.
	if err := live.DeleteIndex(ctx, to); err != nil {
		return nil, err
	}
	if err := live.Create(ctx, to); err != nil {
		return nil, err
	}
	parkName := to + "-parked"
	if err := live.DeleteIndex(ctx, parkName); err != nil {
		return nil, err
	}
	park, err := searchindex.NewParking(ctx, osc, parkName)
	if err != nil {
		return nil, err
	}
	return &searchGeneration{live: live, from: targets[0], to: to, ix: searchindex.New(osc, to), park: park,
		liveGrp: cfg.liveGroup, topic: cfg.topic, parkName: parkName}, nil
}

// inPlaceGeneration replays into the live model itself.
type inPlaceGeneration struct {
	label string
	h     projection.Handler
	park  projection.Parking
}

func (g *inPlaceGeneration) name() string                       { return g.label }
func (g *inPlaceGeneration) handler() projection.Handler        { return g.h }
func (g *inPlaceGeneration) parking() projection.Parking        { return g.park }
func (g *inPlaceGeneration) swap(context.Context) (bool, error) { return true, nil }
func (g *inPlaceGeneration) retire(context.Context) error       { return nil }
func (g *inPlaceGeneration) abandon(context.Context) error      { return nil }
func (g *inPlaceGeneration) afterSwap(context.Context, *kadm.Client, string) (bool, error) {
	return true, nil
}

func prepareInPlace(ctx context.Context, cfg rebuildConfig, adm *kadm.Client, group string, pool *pgxpool.Pool, osc *opensearch.Client,
	starts kadm.ListedOffsets) (generation, error) {
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return nil, fmt.Errorf("describe group %s: %w", group, err)
	}
	if d, ok := described[group]; ok && len(d.Members) > 0 {
		return nil, fmt.Errorf("refusing to rebuild in place: group %s has %d running members; stop %s first (Kafka resets the offsets of a group only while it has no members)",
			group, len(d.Members), group)
	}
	var g *inPlaceGeneration
	if cfg.target == "orders" {
		live, err := readmodel.Live(ctx, pool)
		if err != nil {
			return nil, err
		}
		if err := readmodel.Clear(ctx, pool, live); err != nil {
			return nil, fmt.Errorf("clear %s: %w", readmodel.Schema(live), err)
		}
		park, err := readmodel.NewParking(ctx, pool, live)
		if err != nil {
			return nil, err
		}
		g = &inPlaceGeneration{label: readmodel.Schema(live) + " (in place)", h: readmodel.Handler{Pool: pool, Generation: live}, park: park}
	} else {
		live := searchindex.New(osc, cfg.alias)
		index, err := live.Recreate(ctx)
		if err != nil {
			return nil, err
		}
		if err := live.DeleteIndex(ctx, cfg.alias+"-parked"); err != nil {
			return nil, err
		}
		park, err := searchindex.NewParking(ctx, osc, cfg.alias+"-parked")
		if err != nil {
			return nil, err
		}
		g = &inPlaceGeneration{label: index + " (in place)", h: searchindex.Handler{Index: live}, park: park}
	}
	committed, err := adm.CommitOffsets(ctx, group, starts.Offsets())
	if err == nil {
		err = committed.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("reset the offsets of %s to the earliest: %w", group, err)
	}
	return g, nil
}
