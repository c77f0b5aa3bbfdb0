package rebuild

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opensearch-project/opensearch-go/v2"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/internal/readmodel"
	"github.com/orders-oss/orders/internal/searchindex"
)

// generation is what a rebuild writes and switches to; orders and search each implement it, and the
// in-place variant writes to the live model itself.
type generation interface {
	name() string
	// previous is the generation reads are on before the switch ("" in place).
	previous() string
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

// --- orders: table generations

type ordersGeneration struct {
	pool     *pgxpool.Pool
	keys     projection.Keys
	from, to int
	park     *readmodel.Parking
}

func (g *ordersGeneration) name() string     { return readmodel.Schema(g.to) }
func (g *ordersGeneration) previous() string { return readmodel.Schema(g.from) }
func (g *ordersGeneration) handler() projection.Handler {
	return readmodel.Handler{Pool: g.pool, Generation: g.to, Keys: g.keys}
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

func prepareOrders(ctx context.Context, pool *pgxpool.Pool, keys projection.Keys) (*ordersGeneration, error) {
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
	return &ordersGeneration{pool: pool, keys: keys, from: live, to: to, park: park}, nil
}

// --- search: index generations

type searchGeneration struct {
	keys     projection.Keys
	live     *searchindex.Index // through the alias
	from, to string
	ix       *searchindex.Index // the new index, by name
	park     *projection.ParkedSet
	liveGrp  string
	topic    string
	parkName string
}

func (g *searchGeneration) name() string     { return g.to }
func (g *searchGeneration) previous() string { return g.from }
func (g *searchGeneration) handler() projection.Handler {
	return searchindex.Handler{Index: g.ix, Keys: g.keys}
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

func prepareSearch(ctx context.Context, osc *opensearch.Client, keys projection.Keys, alias, liveGroup, topic string) (*searchGeneration, error) {
	live := searchindex.New(osc, alias)
	targets, err := live.Targets(ctx)
	if err != nil {
		return nil, err
	}
	if len(targets) != 1 {
		return nil, fmt.Errorf("alias %s points at %d indices (%v); want exactly one (is projector-search started?)", alias, len(targets), targets)
	}
	to := searchindex.NextIndexName(targets[0])
	// A leftover of an earlier rebuild that stopped is not live (the alias is elsewhere): start over.
	if err := live.DeleteIndex(ctx, to); err != nil {
		return nil, err
	}
	if err := live.Create(ctx, to); err != nil {
		return nil, err
	}
	parkName := searchindex.ParkingIndex(to)
	if err := live.DeleteIndex(ctx, parkName); err != nil {
		return nil, err
	}
	park, err := searchindex.NewParking(ctx, osc, parkName)
	if err != nil {
		return nil, err
	}
	return &searchGeneration{keys: keys, live: live, from: targets[0], to: to, ix: searchindex.New(osc, to), park: park,
		liveGrp: liveGroup, topic: topic, parkName: parkName}, nil
}

// --- in place: the live model itself

// inPlaceGeneration replays into the live model itself.
type inPlaceGeneration struct {
	label string
	h     projection.Handler
	park  projection.Parking
}

func (g *inPlaceGeneration) name() string                       { return g.label }
func (g *inPlaceGeneration) previous() string                   { return "" }
func (g *inPlaceGeneration) handler() projection.Handler        { return g.h }
func (g *inPlaceGeneration) parking() projection.Parking        { return g.park }
func (g *inPlaceGeneration) swap(context.Context) (bool, error) { return true, nil }
func (g *inPlaceGeneration) retire(context.Context) error       { return nil }
func (g *inPlaceGeneration) abandon(context.Context) error      { return nil }
func (g *inPlaceGeneration) afterSwap(context.Context, *kadm.Client, string) (bool, error) {
	return true, nil
}

// prepareInPlace clears the live model and resets the projector's own group to the earliest offsets.
func prepareInPlace(ctx context.Context, c Clients, o Options, adm *kadm.Client, starts kadm.ListedOffsets) (generation, error) {
	group := o.LiveGroup
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return nil, fmt.Errorf("describe group %s: %w", group, err)
	}
	if d, ok := described[group]; ok && len(d.Members) > 0 {
		return nil, fmt.Errorf("refusing to rebuild in place: group %s has %d running members; stop %s first (Kafka resets the offsets of a group only while it has no members)",
			group, len(d.Members), group)
	}
	var g *inPlaceGeneration
	if o.Target == Orders {
		live, err := readmodel.Live(ctx, c.Pool)
		if err != nil {
			return nil, err
		}
		if err := readmodel.Clear(ctx, c.Pool, live); err != nil {
			return nil, fmt.Errorf("clear %s: %w", readmodel.Schema(live), err)
		}
		park, err := readmodel.NewParking(ctx, c.Pool, live)
		if err != nil {
			return nil, err
		}
		g = &inPlaceGeneration{label: readmodel.Schema(live) + " (in place)", h: readmodel.Handler{Pool: c.Pool, Generation: live, Keys: c.Keys}, park: park}
	} else {
		live := searchindex.New(c.OpenSearch, o.Alias)
		index, err := live.Recreate(ctx)
		if err != nil {
			return nil, err
		}
		parkName := searchindex.ParkingIndex(o.Alias)
		if err := live.DeleteIndex(ctx, parkName); err != nil {
			return nil, err
		}
		park, err := searchindex.NewParking(ctx, c.OpenSearch, parkName)
		if err != nil {
			return nil, err
		}
		g = &inPlaceGeneration{label: index + " (in place)", h: searchindex.Handler{Index: live, Keys: c.Keys}, park: park}
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
