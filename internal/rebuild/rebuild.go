// Package rebuild holds the operator's work on the read models, for ordersctl and the web console
// alike: rebuilding a read model into a fresh generation (tables or index) and switching reads to it,
// or rebuilding in place; verifying a read model against the event store; reading the status of the
// events topic, the projectors' consumer groups and the read models; republishing events from the store
// to the topic; and asking a projector to replay a parked order.
//
// It sits above internal/readmodel and internal/searchindex (the generations), internal/projection (the
// consume loop) and internal/eventstore (the source of truth). Nothing here prints: long operations
// report their phases, counts and messages to a Progress, and results come back as structs with JSON
// tags, for the caller to render.
package rebuild

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opensearch-project/opensearch-go/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/pkg/events"
)

// Target is a read model.
type Target string

const (
	// Orders is the Postgres read model (internal/readmodel), kept by projector-orders.
	Orders Target = "orders"
	// Search is the OpenSearch read model (internal/searchindex), kept by projector-search.
	Search Target = "search"
)

// Targets lists the read models.
var Targets = []Target{Orders, Search}

// ParseTarget returns the read model named s.
func ParseTarget(s string) (Target, error) {
	for _, t := range Targets {
		if string(t) == s {
			return t, nil
		}
	}
	return "", fmt.Errorf("unknown read model %q: want orders or search", s)
}

// Clients are the servers an operation talks to. The caller builds and closes them; an operation
// says which it needs.
type Clients struct {
	// Brokers are Kafka's seed brokers: an operation makes its own clients (a consumer group member
	// cannot be shared).
	Brokers []string
	// Pool is Postgres: the event store and the orders read model.
	Pool *pgxpool.Pool
	// OpenSearch holds the search read model.
	OpenSearch *opensearch.Client
	// Keys open the personal data the events hold sealed, for the read models and verify (a
	// *pii.Keyring on the owner's pool).
	Keys projection.Keys
}

// Options of a rebuild.
type Options struct {
	Target Target
	// Topic is the events topic.
	Topic string
	// Alias is the search index alias (search only).
	Alias string
	// LiveGroup is the live projector's consumer group (projector-orders, projector-search): in
	// place, the group that is reset; otherwise the name the rebuild's own group derives from, and, for
	// search, the group the rebuild must pass before it stops.
	LiveGroup string
	// InPlace clears the live model and replays into it (a gap in service; the projector must be
	// stopped) instead of building a new generation beside it.
	InPlace bool
	// Backfill folds the event store into the generation first, for a topic that lost early records.
	Backfill bool
	// CatchUpLag: reads switch once the rebuild is at most this many records behind the topic's end.
	CatchUpLag int64
}

func (o Options) check(c Clients) error {
	var errs []error
	if _, err := ParseTarget(string(o.Target)); err != nil {
		errs = append(errs, err)
	}
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("no Kafka brokers"))
	}
	if o.Topic == "" || o.LiveGroup == "" {
		errs = append(errs, errors.New("the topic and the live group are required"))
	}
	if (o.Target == Orders || o.Backfill) && c.Pool == nil {
		errs = append(errs, errors.New("no Postgres pool (the orders read model and backfill need it)"))
	}
	if o.Target == Search && (c.OpenSearch == nil || o.Alias == "") {
		errs = append(errs, errors.New("no OpenSearch client or alias (search needs them)"))
	}
	if o.CatchUpLag < 0 {
		errs = append(errs, fmt.Errorf("catch-up lag %d is negative", o.CatchUpLag))
	}
	return errors.Join(errs...)
}

// Result of a rebuild.
type Result struct {
	Target  Target `json:"target"`
	InPlace bool   `json:"in_place"`
	// Generation is what was built: orders_g3, orders-v3, or "orders_g2 (in place)".
	Generation string `json:"generation"`
	// Previous is the generation reads were on before (dropped after the switch; "" in place).
	Previous string `json:"previous,omitempty"`
	// Group is the consumer group the rebuild read the topic in.
	Group string `json:"group"`
	// LostHistory lists the partitions that no longer started at offset 0 (filled from the store).
	LostHistory []PartitionStart `json:"lost_history,omitempty"`
	Backfilled  int64            `json:"backfilled_events"`
	Events      int64            `json:"replayed_events"`
	// ParkedOrders is how many orders the new generation parked (see the status).
	ParkedOrders int       `json:"parked_orders"`
	Started      time.Time `json:"started"`
	Finished     time.Time `json:"finished"`
}

// Rebuild rebuilds a read model from the events topic.
//
// Before anything, the topic must still start at offset 0 on every partition, or a replay would
// silently miss the deleted records: when it does not, Rebuild refuses with a *HistoryLostError, unless
// o.Backfill (then the new generation is first folded from the event store, and the topic's remaining
// records only add what came after: writes are idempotent by version).
//
// By default it builds a fresh generation beside the live one (orders: a new table schema orders_gN;
// search: a new index orders-vN) in a consumer group of its own, while the live model keeps serving
// reads and keeping up. Once the new generation is within o.CatchUpLag records of the topic's end,
// reads switch to it atomically (orders: the orders_read views are repointed in one transaction, when
// the new tables have read at least as far as the live ones; search: the alias is moved in one
// request, and the rebuild keeps going until it is past the live projector), and the old generation is
// dropped. Failed or interrupted (ctx), it drops what it built and leaves the live model as it was.
//
// In place, it clears the live model and resets the live group to the earliest offsets, then replays
// into it until the group is at the topic's end. Kafka resets the offsets of a group only while it has
// no members: the projector must be stopped, and started again afterwards.
func Rebuild(ctx context.Context, c Clients, o Options, p Progress) (Result, error) {
	p = orDiscard(p)
	res := Result{Target: o.Target, InPlace: o.InPlace, Started: time.Now()}
	if err := o.check(c); err != nil {
		return res, fmt.Errorf("rebuild: %w", err)
	}
	client, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers...))
	if err != nil {
		return res, fmt.Errorf("kafka: %w", err)
	}
	defer client.Close()
	adm := kadm.NewClient(client)

	// 1. The topic must still hold its whole history, unless the store fills it in.
	p.Phase(PhaseCheck, 0)
	starts, err := adm.ListStartOffsets(ctx, o.Topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return res, fmt.Errorf("list start offsets of %s: %w", o.Topic, err)
	}
	lost := historyOf(o.Topic, starts).Lost()
	if len(lost) > 0 && !o.Backfill {
		return res, &HistoryLostError{Topic: o.Topic, Lost: lost}
	}
	res.LostHistory = lost
	if len(lost) > 0 {
		p.Message(Info, fmt.Sprintf("topic %s lost early records (%s): the event store fills them in (backfill)", o.Topic, DescribeLost(lost)))
	} else {
		p.Message(Info, fmt.Sprintf("topic %s starts at offset 0 on every partition", o.Topic))
	}

	// 2. One rebuild of a read model at a time (ordersctl and the console may both start one): a
	// second would drop the first one's building generation.
	if running, err := runningRebuild(ctx, adm, o.LiveGroup); err != nil {
		return res, err
	} else if running != "" {
		return res, fmt.Errorf("%w: its consumer group %s has members; wait for it to finish (ordersctl projector status)", ErrRebuildRunning, running)
	}

	// 3. A new generation beside the live one, or the live one emptied.
	p.Phase(PhasePrepare, 0)
	group := o.LiveGroup
	var gen generation
	if o.InPlace {
		gen, err = prepareInPlace(ctx, c, o, adm, starts)
	} else if o.Target == Orders {
		gen, err = prepareOrders(ctx, c.Pool, c.Keys)
	} else {
		gen, err = prepareSearch(ctx, c.OpenSearch, c.Keys, o.Alias, o.LiveGroup, o.Topic)
	}
	if err != nil {
		return res, err
	}
	if !o.InPlace {
		group = fmt.Sprintf("%s-rebuild-%s", o.LiveGroup, gen.name())
	}
	res.Generation, res.Previous, res.Group = gen.name(), gen.previous(), group
	p.Message(Info, fmt.Sprintf("rebuilding %s into %s (consumer group %s)", o.Target, gen.name(), group))

	// 4. Fill it, and switch reads once it has caught up.
	r := &runner{adm: adm, brokers: c.Brokers, topic: o.Topic, group: group, inPlace: o.InPlace, catchUp: o.CatchUpLag, gen: gen, p: p}
	if o.Backfill {
		r.source = eventstore.New(c.Pool)
	}
	err = r.run(ctx, &res)
	if err != nil && !o.InPlace {
		p.Phase(PhaseAbandon, 0)
		if aerr := gen.abandon(context.WithoutCancel(ctx)); aerr != nil {
			err = errors.Join(err, fmt.Errorf("drop the unfinished %s: %w", gen.name(), aerr))
		}
		_, _ = adm.DeleteGroups(context.WithoutCancel(ctx), group)
		return res, fmt.Errorf("%w; the live model is unchanged", err)
	}
	if err != nil {
		return res, err
	}
	res.ParkedOrders = gen.parking().Count()
	if res.ParkedOrders > 0 {
		p.Message(Warning, fmt.Sprintf("%d orders were parked during the rebuild; see the projector status", res.ParkedOrders))
	}
	if o.InPlace {
		res.Finished = time.Now()
		return res, nil
	}

	// 5. Drop the rebuild's group and the old generation.
	p.Phase(PhaseRetire, 0)
	if _, err := adm.DeleteGroups(ctx, group); err != nil {
		p.Message(Warning, fmt.Sprintf("delete the rebuild's consumer group %s: %v", group, err))
	}
	if err := gen.retire(ctx); err != nil {
		return res, fmt.Errorf("reads are on %s, but dropping the old generation failed: %w", gen.name(), err)
	}
	res.Finished = time.Now()
	return res, nil
}

var errInterrupted = errors.New("interrupted")

// ErrRebuildRunning: another rebuild of the same read model is running.
var ErrRebuildRunning = errors.New("another rebuild of this read model is running")

// runningRebuild returns the consumer group of a rebuild of liveGroup's read model that has members
// (a rebuild reads the topic in the group <liveGroup>-rebuild-<generation>), or "".
func runningRebuild(ctx context.Context, adm *kadm.Client, liveGroup string) (string, error) {
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return "", fmt.Errorf("list consumer groups: %w", err)
	}
	var candidates []string
	for _, g := range listed.Groups() {
		if strings.HasPrefix(g, liveGroup+"-rebuild-") {
			candidates = append(candidates, g)
		}
	}
	if len(candidates) == 0 {
		return "", nil
	}
	described, err := adm.DescribeGroups(ctx, candidates...)
	if err != nil {
		return "", fmt.Errorf("describe consumer groups: %w", err)
	}
	for _, g := range described.Sorted() {
		if len(g.Members) > 0 {
			return g.Group, nil
		}
	}
	return "", nil
}

// runner fills a generation from the topic.
type runner struct {
	adm     *kadm.Client
	brokers []string
	topic   string
	group   string
	inPlace bool
	catchUp int64
	gen     generation
	source  Source // backfill from it first when set
	p       Progress
	// poll bounds one batch's poll, check how often the lag is asked (defaults 500 ms and 250 ms).
	poll, check time.Duration
}

// run backfills when asked, then consumes the topic into the generation until it is caught up and
// reads are switched (or, in place, until the group is at the topic's end).
func (r *runner) run(ctx context.Context, res *Result) (err error) {
	defer func() {
		// Whatever failed while ctx was ending (a poll, a lag request) failed because of it.
		if err != nil && ctx.Err() != nil && !errors.Is(err, errInterrupted) {
			err = fmt.Errorf("%w: %w (%v)", errInterrupted, ctx.Err(), err)
		}
	}()
	if r.source != nil {
		n, err := backfill(ctx, r.source, r.gen.handler(), r.p)
		res.Backfilled = n
		if err != nil {
			return err
		}
	}
	total, err := topicSize(ctx, r.adm, r.topic)
	if err != nil {
		return err
	}
	consumer, err := kgo.NewClient(projection.ConsumerOptions(r.brokers, r.topic, r.group)...)
	if err != nil {
		return fmt.Errorf("kafka consumer: %w", err)
	}
	defer consumer.Close()
	m := projection.NewMetrics()
	loop := &projection.Loop{Client: consumer, Handler: r.gen.handler(), Parking: r.gen.parking(), Topic: r.topic, Group: r.group,
		Log: slog.New(slog.DiscardHandler), Metrics: m}
	poll, check := cmp.Or(r.poll, 500*time.Millisecond), cmp.Or(r.check, 250*time.Millisecond)
	r.p.Phase(PhaseReplay, total)
	swapped := false
	lastCheck := time.Time{}
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%w: %w", errInterrupted, err)
		}
		pctx, cancel := context.WithTimeout(ctx, poll)
		err := loop.RunOnce(pctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("replay: %w", err)
		}
		if seen := int64(m.Seen()); seen > res.Events {
			res.Events = seen
			if !swapped {
				r.p.Advance(seen)
			}
		}
		if time.Since(lastCheck) < check {
			continue
		}
		lastCheck = time.Now()
		lag, err := groupLag(ctx, r.adm, r.topic, r.group)
		if err != nil {
			return err
		}
		if r.inPlace {
			if lag == 0 {
				return nil
			}
			continue
		}
		if !swapped {
			if lag > r.catchUp {
				continue
			}
			ok, err := r.gen.swap(ctx)
			if err != nil {
				return fmt.Errorf("switch reads: %w", err)
			}
			if !ok {
				continue
			}
			swapped = true
			r.p.Phase(PhaseSwitched, 0)
			r.p.Message(Info, "caught up: reads switched to "+r.gen.name())
		}
		done, err := r.gen.afterSwap(ctx, r.adm, r.group)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// backfill folds the whole event store into the new generation through its handler, in position
// order (version order per order). It returns how many events it read.
func backfill(ctx context.Context, src Source, h projection.Handler, p Progress) (int64, error) {
	last, err := src.LastPosition(ctx)
	if err != nil {
		return 0, err
	}
	p.Phase(PhaseBackfill, last)
	var after, n int64
	failed := 0
	for after < last {
		evs, err := src.ReadAll(ctx, after, 5000)
		if err != nil {
			return n, err
		}
		if len(evs) == 0 {
			break
		}
		batch := make([]projection.Event, 0, len(evs))
		for _, e := range evs {
			payload, err := events.DecodeEnvelope(e)
			if err != nil {
				return n, fmt.Errorf("event %d of order %s: %w", e.Position, e.OrderID, err)
			}
			batch = append(batch, projection.Event{Envelope: e, Payload: payload, Topic: "event-store", Offset: e.Position})
			after = e.Position
		}
		res, err := h.Apply(ctx, batch, nil)
		if err != nil {
			return n, fmt.Errorf("backfill: %w", err)
		}
		failed += len(res.Failed)
		n += int64(len(evs))
		p.Advance(n)
	}
	if failed > 0 {
		return n, fmt.Errorf("backfill: %d orders could not be applied from the event store", failed)
	}
	return n, nil
}
