package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opensearch-project/opensearch-go/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/internal/readmodel"
	"github.com/orders-oss/orders/internal/rebuild"
	"github.com/orders-oss/orders/internal/searchindex"
	"github.com/orders-oss/orders/pkg/events"
)

// ReadStore returns every event of the store, in position order.
func ReadStore(ctx context.Context, pool *pgxpool.Pool) ([]events.Envelope, error) {
	store := eventstore.New(pool)
	var out []events.Envelope
	var after int64
	for {
		page, err := store.ReadAll(ctx, after, 5000)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < 5000 {
			return out, nil
		}
		after = page[len(page)-1].Position
	}
}

// TopicRecord is what the checker keeps of a record of the events topic.
type TopicRecord struct {
	Partition int32
	Offset    int64
	Key       string
	// Of a record that decodes as an envelope:
	EventID string
	OrderID string
	Version int64
	Type    string
	// Poison: a record the suite produced on purpose (PoisonValue). DecodeErr: any other record that
	// is not an envelope.
	Poison    bool
	DecodeErr string
}

// DecodeRecord reads what the checker needs of a record's value.
func DecodeRecord(partition int32, offset int64, key, value []byte) TopicRecord {
	r := TopicRecord{Partition: partition, Offset: offset, Key: string(key)}
	var env struct {
		EventID string `json:"event_id"`
		OrderID string `json:"order_id"`
		Version int64  `json:"version"`
		Type    string `json:"type"`
	}
	switch err := json.Unmarshal(value, &env); {
	case strings.HasPrefix(string(value), PoisonPrefix):
		r.Poison = true
	case err != nil:
		r.DecodeErr = err.Error()
	case env.EventID == "" || env.OrderID == "" || env.Version < 1 || env.Type == "":
		r.DecodeErr = "not an event envelope (no event_id, order_id, version or type)"
	default:
		r.EventID, r.OrderID, r.Version, r.Type = env.EventID, env.OrderID, env.Version, env.Type
	}
	return r
}

// ReadTopic reads every partition of topic from its start to the end offsets it has when called.
func ReadTopic(ctx context.Context, brokers []string, topic string) ([]TopicRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("start offsets of %s: %w", topic, err)
	}
	want := map[int32]int64{}
	from := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if s, ok := starts.Lookup(topic, o.Partition); ok && o.Offset > s.Offset {
			want[o.Partition] = o.Offset
			from[o.Partition] = kgo.NewOffset().At(s.Offset)
		}
	})
	if len(want) == 0 {
		return nil, nil
	}
	consumer, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
		kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(16<<20))
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	var out []TopicRecord
	for len(want) > 0 {
		fs := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read %s: %w (%d partitions not read to their end)", topic, err, len(want))
		}
		var ferr error
		fs.EachError(func(_ string, p int32, err error) { ferr = fmt.Errorf("fetch %s/%d: %w", topic, p, err) })
		if ferr != nil {
			return nil, ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, reading := want[r.Partition]
			if !reading || r.Offset >= end {
				return
			}
			out = append(out, DecodeRecord(r.Partition, r.Offset, r.Key, r.Value))
			if r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return out, nil
}

// ModelEvidence is a read model as the checker sees it: its difference from the fold of the store,
// and its parked orders.
type ModelEvidence struct {
	Name   string
	Report rebuild.Report
	Err    error
	// Parked are the store's orders the model's parking holds; ParkedCount is how many orders the
	// parking holds in all.
	Parked      map[string]ParkedOrder
	ParkedCount int
}

// ParkedOrder is one parked order: whether its first parked record is a poison record, and why it
// was parked.
type ParkedOrder struct {
	Poison  bool
	Error   string
	Records int
}

// ReadModels verifies both read models against the store (rebuild.VerifyTarget, opening the sealed
// personal data with keys) and reads their parkings; orders are the store's order ids.
func ReadModels(ctx context.Context, pool *pgxpool.Pool, osc *opensearch.Client, alias string, orders []string, keys projection.Keys) []ModelEvidence {
	clients := rebuild.Clients{Pool: pool, OpenSearch: osc, Keys: keys}
	var out []ModelEvidence
	for _, target := range rebuild.Targets {
		m := ModelEvidence{Name: string(target), Parked: map[string]ParkedOrder{}}
		m.Report, m.Err = rebuild.VerifyTarget(ctx, clients, target, alias, nil)
		if m.Err == nil {
			m.Err = readParking(ctx, target, pool, osc, alias, orders, &m)
		}
		out = append(out, m)
	}
	return out
}

func readParking(ctx context.Context, target rebuild.Target, pool *pgxpool.Pool, osc *opensearch.Client, alias string, orders []string, m *ModelEvidence) error {
	var p *projection.ParkedSet
	switch target {
	case rebuild.Orders:
		gen, err := readmodel.Live(ctx, pool)
		if err != nil {
			return err
		}
		set, err := readmodel.NewParking(ctx, pool, gen)
		if err != nil {
			return err
		}
		p = set.ParkedSet
	case rebuild.Search:
		set, err := searchindex.NewParking(ctx, osc, searchindex.ParkingIndex(alias))
		if err != nil {
			return err
		}
		p = set
	}
	m.ParkedCount = p.Count()
	for _, id := range orders {
		if !p.IsParked(id) {
			continue
		}
		evs, _, err := p.Parked(ctx, id)
		if err != nil {
			return err
		}
		po := ParkedOrder{Records: len(evs)}
		if len(evs) > 0 {
			po.Poison, po.Error = strings.HasPrefix(evs[0].Value, PoisonPrefix), evs[0].Error
		}
		m.Parked[id] = po
	}
	return nil
}
