package searchindex

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/opensearch-project/opensearch-go/v2"
	"github.com/opensearch-project/opensearch-go/v2/opensearchapi"

	"github.com/orders-oss/orders/internal/projection"
)

// ParkingIndex is the name of the index projector-search parks events in, next to the alias's.
func ParkingIndex(alias string) string { return alias + "-parked" }

// NewParking opens (creating when missing) a parked-events index and returns projector-search's
// parking over it: the parked orders in memory (projection.ParkedSet), the records in the index, where
// an operator can see them (the order, the record's topic, partition and offset, the error and the raw
// value). A record's document id is topic-partition-offset, so parking a redelivered record again
// changes nothing.
func NewParking(ctx context.Context, client *opensearch.Client, index string) (*projection.ParkedSet, error) {
	mapping := `{"settings":{"number_of_shards":1,"auto_expand_replicas":"0-1"},"mappings":{"properties":{
		"order_id":{"type":"keyword"},"topic":{"type":"keyword"},"partition":{"type":"integer"},"offset":{"type":"long"},
		"error":{"type":"text"},"value":{"type":"text","index":false},"parked_at":{"type":"date"}}}}`
	res, err := opensearchapi.IndicesCreateRequest{Index: index, Body: strings.NewReader(mapping)}.Do(ctx, client)
	if body, err := check("create "+index, res, err, http.StatusBadRequest); err != nil {
		return nil, err
	} else if res.StatusCode == http.StatusBadRequest && !bytes.Contains(body, []byte("resource_already_exists_exception")) {
		return nil, fmt.Errorf("create %s: %s", index, errorType(body))
	}
	return projection.NewParkedSet(ctx, &parkingIndex{client: client, index: index})
}

// parkingIndex is the projection.ParkingStore of a parked-events index.
type parkingIndex struct {
	client *opensearch.Client
	index  string
}

func (p *parkingIndex) Orders(ctx context.Context) ([]string, error) {
	res, err := opensearchapi.SearchRequest{Index: []string{p.index}, Body: strings.NewReader(
		`{"size":0,"aggs":{"orders":{"terms":{"field":"order_id","size":10000}}}}`)}.Do(ctx, p.client)
	raw, err := check("read "+p.index, res, err)
	if err != nil {
		return nil, err
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
	if err := json.Unmarshal(raw, &sr); err != nil {
		return nil, fmt.Errorf("read %s: %w", p.index, err)
	}
	var out []string
	for _, b := range sr.Aggregations.Orders.Buckets {
		out = append(out, b.Key)
	}
	return out, nil
}

func (p *parkingIndex) Put(ctx context.Context, e projection.ParkedEvent) error {
	doc, err := json.Marshal(e)
	if err != nil {
		return err
	}
	id := fmt.Sprintf("%s-%d-%d", e.Topic, e.Partition, e.Offset)
	res, err := opensearchapi.IndexRequest{Index: p.index, DocumentID: id, Body: bytes.NewReader(doc), Refresh: "true"}.Do(ctx, p.client)
	_, err = check("index "+p.index, res, err, http.StatusConflict)
	return err
}

func (p *parkingIndex) Parked(ctx context.Context, order string) ([]projection.ParkedEvent, []string, error) {
	q, _ := json.Marshal(map[string]any{
		"size":  10000,
		"query": map[string]any{"term": map[string]any{"order_id": order}},
		"sort":  []any{map[string]any{"partition": "asc"}, map[string]any{"offset": "asc"}},
	})
	res, err := opensearchapi.SearchRequest{Index: []string{p.index}, Body: bytes.NewReader(q)}.Do(ctx, p.client)
	raw, err := check("search "+p.index, res, err)
	if err != nil {
		return nil, nil, err
	}
	var sr struct {
		Hits struct {
			Hits []struct {
				ID     string                 `json:"_id"`
				Source projection.ParkedEvent `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(raw, &sr); err != nil {
		return nil, nil, err
	}
	var evs []projection.ParkedEvent
	var ids []string
	for _, h := range sr.Hits.Hits {
		evs = append(evs, h.Source)
		ids = append(ids, h.ID)
	}
	return evs, ids, nil
}

func (p *parkingIndex) Delete(ctx context.Context, _ string, ids []string) error {
	var body bytes.Buffer
	for _, id := range ids {
		fmt.Fprintf(&body, `{"delete":{"_index":%q,"_id":%q}}`+"\n", p.index, id)
	}
	if body.Len() == 0 {
		return nil
	}
	res, err := opensearchapi.BulkRequest{Body: &body, Refresh: "true"}.Do(ctx, p.client)
	raw, err := check("bulk delete", res, err)
	if err != nil {
		return err
	}
	if bytes.Contains(raw, []byte(`"errors":true`)) {
		return fmt.Errorf("bulk delete: %s", errorType(raw))
	}
	return nil
}

// ListParked returns up to limit parked records of the parked-events index, oldest first, for an
// operator's overview (none when the index does not exist yet).
func ListParked(ctx context.Context, client *opensearch.Client, index string, limit int) ([]projection.ParkedEvent, error) {
	q, _ := json.Marshal(map[string]any{
		"size": limit,
		"sort": []any{map[string]any{"parked_at": "asc"}, map[string]any{"partition": "asc"}, map[string]any{"offset": "asc"}},
	})
	res, err := opensearchapi.SearchRequest{Index: []string{index}, Body: bytes.NewReader(q)}.Do(ctx, client)
	raw, err := check("search "+index, res, err, http.StatusNotFound)
	if err != nil {
		return nil, err
	}
	if res.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	var sr struct {
		Hits struct {
			Hits []struct {
				Source projection.ParkedEvent `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(raw, &sr); err != nil {
		return nil, err
	}
	out := make([]projection.ParkedEvent, 0, len(sr.Hits.Hits))
	for _, h := range sr.Hits.Hits {
		out = append(out, h.Source)
	}
	return out, nil
}
