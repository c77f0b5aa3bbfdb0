package projector

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/opensearch-project/opensearch-go/v2"
	"github.com/opensearch-project/opensearch-go/v2/opensearchapi"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orders-oss/orders/internal/projection"
)

// Parking keeps the events of orders the projector could not apply (an undecodable event, a gap, an
// index refusal) in an index of their own, where an operator can see them: the order, the record's
// topic, partition and offset, the error and the raw value. Once an order is parked its later events
// are parked behind it, in order; every other order keeps flowing.
type Parking struct {
	client *opensearch.Client
	index  string

	mu     sync.Mutex
	orders map[string]bool
}

// ParkedEvent is one parked record.
type ParkedEvent = projection.ParkedEvent

// NewParking opens (creating when missing) the parked-events index and loads the parked orders.
func NewParking(ctx context.Context, client *opensearch.Client, index string) (*Parking, error) {
	p := &Parking{client: client, index: index, orders: map[string]bool{}}
	mapping := `{"settings":{"number_of_shards":1,"number_of_replicas":0},"mappings":{"properties":{
		"order_id":{"type":"keyword"},"topic":{"type":"keyword"},"partition":{"type":"integer"},"offset":{"type":"long"},
		"error":{"type":"text"},"value":{"type":"text","index":false},"parked_at":{"type":"date"}}}}`
	res, err := opensearchapi.IndicesCreateRequest{Index: index, Body: strings.NewReader(mapping)}.Do(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", index, err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.IsError() && !bytes.Contains(body, []byte("resource_already_exists_exception")) {
		return nil, fmt.Errorf("create %s: %s: %s", index, res.Status(), body)
	}
	res, err = opensearchapi.SearchRequest{Index: []string{index}, Body: strings.NewReader(
		`{"size":0,"aggs":{"orders":{"terms":{"field":"order_id","size":10000}}}}`)}.Do(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", index, err)
	}
	defer res.Body.Close()
	if res.IsError() {
		b, _ := io.ReadAll(res.Body)
		return nil, fmt.Errorf("read %s: %s: %s", index, res.Status(), b)
	}
	var sr struct {
		Aggregations struct {
			Orders struct {
				Buckets []struct {
					Key string `json:"key"`
				} `json:"buckets"`
			} `json:"orders"`
		} `json:"aggregations"`
	}
	if err := json.NewDecoder(res.Body).Decode(&sr); err != nil {
		return nil, fmt.Errorf("read %s: %w", index, err)
	}
	for _, b := range sr.Aggregations.Orders.Buckets {
		p.orders[b.Key] = true
	}
	return p, nil
}

// IsParked reports whether the order's events wait in the parking.
func (p *Parking) IsParked(order string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.orders[order]
}

// Count is the number of parked orders.
func (p *Parking) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.orders)
}

// Park records r for order (why may be nil for an event that only waits behind an earlier one). The
// document id is topic/partition/offset, so parking a redelivered record again changes nothing.
func (p *Parking) Park(ctx context.Context, order string, r *kgo.Record, why error) error {
	msg := projection.WaitMessage
	if why != nil {
		msg = why.Error()
	}
	doc, err := json.Marshal(ParkedEvent{OrderID: order, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
		Error: msg, Value: string(r.Value), ParkedAt: time.Now().UTC()})
	if err != nil {
		return err
	}
	id := fmt.Sprintf("%s-%d-%d", r.Topic, r.Partition, r.Offset)
	res, err := opensearchapi.IndexRequest{Index: p.index, DocumentID: id, Body: bytes.NewReader(doc), Refresh: "true"}.Do(ctx, p.client)
	if err != nil {
		return fmt.Errorf("park %s: %w", order, err)
	}
	defer res.Body.Close()
	if res.IsError() && res.StatusCode != http.StatusConflict {
		b, _ := io.ReadAll(res.Body)
		return fmt.Errorf("park %s: %s: %s", order, res.Status(), b)
	}
	p.mu.Lock()
	p.orders[order] = true
	p.mu.Unlock()
	return nil
}

// Parked returns the parked records of an order, oldest first, with their document ids.
func (p *Parking) Parked(ctx context.Context, order string) ([]ParkedEvent, []string, error) {
	q, _ := json.Marshal(map[string]any{
		"size":  10000,
		"query": map[string]any{"term": map[string]any{"order_id": order}},
		"sort":  []any{map[string]any{"partition": "asc"}, map[string]any{"offset": "asc"}},
	})
	res, err := opensearchapi.SearchRequest{Index: []string{p.index}, Body: bytes.NewReader(q)}.Do(ctx, p.client)
	if err != nil {
		return nil, nil, fmt.Errorf("read parked events of %s: %w", order, err)
	}
	defer res.Body.Close()
	if res.IsError() {
		b, _ := io.ReadAll(res.Body)
		return nil, nil, fmt.Errorf("read parked events of %s: %s: %s", order, res.Status(), b)
	}
	var sr struct {
		Hits struct {
			Hits []struct {
				ID     string      `json:"_id"`
				Source ParkedEvent `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.NewDecoder(res.Body).Decode(&sr); err != nil {
		return nil, nil, fmt.Errorf("read parked events of %s: %w", order, err)
	}
	var evs []ParkedEvent
	var ids []string
	for _, h := range sr.Hits.Hits {
		evs = append(evs, h.Source)
		ids = append(ids, h.ID)
	}
	return evs, ids, nil
}

// Unpark deletes the order's parked records and lets its events flow again.
func (p *Parking) Unpark(ctx context.Context, order string, ids []string) error {
	var body bytes.Buffer
	for _, id := range ids {
		fmt.Fprintf(&body, `{"delete":{"_index":%q,"_id":%q}}`+"\n", p.index, id)
	}
	if body.Len() > 0 {
		res, err := opensearchapi.BulkRequest{Body: &body, Refresh: "true"}.Do(ctx, p.client)
		if err != nil {
			return fmt.Errorf("unpark %s: %w", order, err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.IsError() || bytes.Contains(raw, []byte(`"errors":true`)) {
			return fmt.Errorf("unpark %s: %s: %.300s", order, res.Status(), raw)
		}
	}
	p.mu.Lock()
	delete(p.orders, order)
	p.mu.Unlock()
	return nil
}
