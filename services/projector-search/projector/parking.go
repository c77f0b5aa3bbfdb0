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
type ParkedEvent struct {
	OrderID   string    `json:"order_id"`
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Error     string    `json:"error"`
	Value     string    `json:"value"`
	ParkedAt  time.Time `json:"parked_at"`
}

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
	msg := "waits behind an earlier parked event of the same order"
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
