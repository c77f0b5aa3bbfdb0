package rebuild

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/opensearch-project/opensearch-go/v2"
	"github.com/opensearch-project/opensearch-go/v2/opensearchapi"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/readmodel"
	"github.com/orders-oss/orders/internal/searchindex"
)

// Status is the state of the pipeline behind the read models: whether the events topic still holds
// its whole history, where each projector's consumer group stands, and which generation of each read
// model serves reads.
type Status struct {
	History History       `json:"history"`
	Groups  []GroupStatus `json:"groups"`
	// Orders is nil when no Postgres pool was given (not inspected).
	Orders *OrdersStatus `json:"orders,omitempty"`
	// Search is nil when no OpenSearch client was given (not inspected).
	Search *SearchStatus `json:"search,omitempty"`
}

// GroupStatus is a projector's consumer group.
type GroupStatus struct {
	Group string `json:"group"`
	// Exists is false for a group that has never committed (no projector ran yet).
	Exists  bool   `json:"exists"`
	State   string `json:"state,omitempty"` // Kafka's: Stable, Empty, PreparingRebalance, ...
	Members int    `json:"members"`
	Error   string `json:"error,omitempty"`
	// Lag is the sum of the partitions' lags.
	Lag        int64          `json:"lag"`
	Partitions []PartitionLag `json:"partitions"`
}

// PartitionLag is where a group stands on one partition of the events topic.
type PartitionLag struct {
	Partition int32 `json:"partition"`
	Committed int64 `json:"committed"` // -1: no commit
	End       int64 `json:"end"`
	Lag       int64 `json:"lag"` // -1: unknown (a commit or listing error)
}

// OrdersStatus is the Postgres read model.
type OrdersStatus struct {
	Error string `json:"error,omitempty"`
	// Live is the schema behind the orders_read views (orders_g2).
	Live string `json:"live,omitempty"`
	// Building lists generations a rebuild is filling (or that a stopped one left).
	Building     []string `json:"building,omitempty"`
	ParkedOrders int      `json:"parked_orders"`
}

// SearchStatus is the OpenSearch read model.
type SearchStatus struct {
	Error string `json:"error,omitempty"`
	Alias string `json:"alias"`
	// Targets are the indices behind the alias (none: projector-search has not created it yet).
	Targets []string `json:"targets"`
	// ParkedOrders is nil when the parking index could not be read.
	ParkedOrders *int `json:"parked_orders"`
}

// StatusOptions say what ReadStatus looks at.
type StatusOptions struct {
	Topic  string
	Groups []string // the projectors' consumer groups
	Alias  string   // the search alias
}

// ReadStatus reads the status. Kafka must answer; a read model whose server does not answer has its
// Error set, and one without a client is not inspected (nil).
func ReadStatus(ctx context.Context, c Clients, o StatusOptions) (Status, error) {
	client, err := kgo.NewClient(kgo.SeedBrokers(c.Brokers...))
	if err != nil {
		return Status{}, fmt.Errorf("kafka: %w", err)
	}
	defer client.Close()
	adm := kadm.NewClient(client)

	var st Status
	if st.History, err = ReadHistory(ctx, adm, o.Topic); err != nil {
		return st, err
	}
	lags, err := lag(ctx, adm, o.Groups...)
	if err != nil {
		return st, fmt.Errorf("group lag: %w", err)
	}
	st.Groups = make([]GroupStatus, 0, len(o.Groups))
	for _, g := range o.Groups {
		l, ok := lags[g]
		st.Groups = append(st.Groups, groupStatus(g, o.Topic, l, ok))
	}
	if c.Pool != nil {
		st.Orders = ordersStatus(ctx, c.Pool)
	}
	if c.OpenSearch != nil {
		st.Search = searchStatus(ctx, c.OpenSearch, o.Alias)
	}
	return st, nil
}

func groupStatus(group, topic string, l kadm.DescribedGroupLag, ok bool) GroupStatus {
	g := GroupStatus{Group: group, Partitions: []PartitionLag{}}
	if !ok || l.State == "Dead" || (len(l.Lag) == 0 && l.State == "") {
		return g
	}
	g.Exists, g.State, g.Members = true, l.State, len(l.Members)
	if err := l.Error(); err != nil {
		g.Error = err.Error()
		return g
	}
	for _, m := range l.Lag.Sorted() {
		if m.Topic != topic {
			continue
		}
		g.Partitions = append(g.Partitions, PartitionLag{Partition: m.Partition, Committed: m.Commit.At, End: m.End.Offset, Lag: m.Lag})
		if m.Lag > 0 {
			g.Lag += m.Lag
		}
	}
	return g
}

func ordersStatus(ctx context.Context, pool *pgxpool.Pool) *OrdersStatus {
	s := &OrdersStatus{}
	gens, err := readmodel.Generations(ctx, pool)
	if err != nil {
		s.Error = err.Error()
		return s
	}
	for _, g := range gens {
		switch g.State {
		case "live":
			s.Live = readmodel.Schema(g.Generation)
		case "building":
			s.Building = append(s.Building, readmodel.Schema(g.Generation))
		}
	}
	if s.Live == "" {
		s.Error = readmodel.ErrNoLiveGeneration.Error()
		return s
	}
	if err := pool.QueryRow(ctx, "SELECT count(DISTINCT order_id) FROM orders_read.parked_events").Scan(&s.ParkedOrders); err != nil {
		s.Error = err.Error()
	}
	return s
}

func searchStatus(ctx context.Context, osc *opensearch.Client, alias string) *SearchStatus {
	s := &SearchStatus{Alias: alias, Targets: []string{}}
	targets, err := searchindex.New(osc, alias).Targets(ctx)
	if err != nil {
		s.Error = err.Error()
		return s
	}
	if len(targets) == 0 {
		return s // projector-search creates it when it starts
	}
	s.Targets = targets
	pres, err := opensearchapi.SearchRequest{Index: []string{searchindex.ParkingIndex(alias)}, Body: strings.NewReader(
		`{"size":0,"aggs":{"orders":{"cardinality":{"field":"order_id"}}}}`)}.Do(ctx, osc)
	if err != nil {
		return s
	}
	defer pres.Body.Close()
	var sr struct {
		Aggregations struct {
			Orders struct {
				Value int `json:"value"`
			} `json:"orders"`
		} `json:"aggregations"`
	}
	switch {
	case pres.StatusCode == 404:
		s.ParkedOrders = new(int)
	case !pres.IsError() && json.NewDecoder(pres.Body).Decode(&sr) == nil:
		s.ParkedOrders = &sr.Aggregations.Orders.Value
	}
	return s
}
