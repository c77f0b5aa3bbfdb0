package searchindex

// The readers' side: GET /orders/search of the query API, through the alias: full text over the
// customer, item names, skus and tracking numbers, filters, sort, cursor pagination and status facets.
// Input is bounded and validated here; OpenSearch failures become ErrUnavailable, never raw errors.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/opensearch-project/opensearch-go/v2/opensearchapi"

	"github.com/orders-oss/orders/pkg/api"
)

// Limits of a search request.
const (
	MaxQueryLen  = 200
	MaxPageSize  = 100
	DefaultLimit = 20
)

// ErrUnavailable: the search index could not answer (down, missing, or refused the query).
var ErrUnavailable = errors.New("search is unavailable")

// SearchRequest is a validated search.
type SearchRequest struct {
	Q          string
	Statuses   []string
	Currency   string
	PlacedFrom *time.Time
	PlacedTo   *time.Time
	TotalMin   *int64
	TotalMax   *int64
	Sort       string // one of the keys of sortFields, optionally prefixed with "-" for descending
	Limit      int
	Cursor     string
	// CustomerID confines the search (matches, totals and facets) to one customer's orders: a customer
	// principal searches its own orders only.
	CustomerID string
}

// SearchResult is the answer's body.
type SearchResult struct {
	Total      int64                       `json:"total"`
	Hits       []api.Order                 `json:"hits"`
	NextCursor *string                     `json:"next_cursor"`
	Facets     map[string]map[string]int64 `json:"facets"`
}

// sortFields maps the sort names clients use to index fields.
var sortFields = map[string]string{"placed_at": "placed_at", "updated_at": "updated_at", "total": "total"}

// ValidSort reports whether s names a sort.
func ValidSort(s string) bool { _, ok := sortFields[strings.TrimPrefix(s, "-")]; return ok }

// Search runs the request on the alias.
func (ix *Index) Search(ctx context.Context, req SearchRequest) (SearchResult, error) {
	body, err := buildQuery(req)
	if err != nil {
		return SearchResult{}, err
	}
	res, err := opensearchapi.SearchRequest{Index: []string{ix.alias}, Body: bytes.NewReader(body),
		TrackTotalHits: true}.Do(ctx, ix.client)
	if err != nil {
		return SearchResult{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return SearchResult{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if res.IsError() {
		return SearchResult{}, fmt.Errorf("%w: %s: %s", ErrUnavailable, res.Status(), errorType(raw)) // never the query: it may hold a searched name or email
	}
	var sr struct {
		Hits struct {
			Total struct {
				Value int64 `json:"value"`
			} `json:"total"`
			Hits []struct {
				Source api.Order `json:"_source"`
				Sort   []any     `json:"sort"`
			} `json:"hits"`
		} `json:"hits"`
		Aggregations struct {
			Status struct {
				Buckets []struct {
					Key   string `json:"key"`
					Count int64  `json:"doc_count"`
				} `json:"buckets"`
			} `json:"status"`
		} `json:"aggregations"`
	}
	if err := json.Unmarshal(raw, &sr); err != nil {
		return SearchResult{}, fmt.Errorf("%w: answer: %v", ErrUnavailable, err)
	}
	out := SearchResult{Total: sr.Hits.Total.Value, Hits: []api.Order{}, Facets: map[string]map[string]int64{"status": {}}}
	for _, h := range sr.Hits.Hits {
		out.Hits = append(out.Hits, h.Source)
	}
	for _, b := range sr.Aggregations.Status.Buckets {
		out.Facets["status"][b.Key] = b.Count
	}
	if n := len(sr.Hits.Hits); n == req.Limit && n > 0 {
		c, err := json.Marshal(sr.Hits.Hits[n-1].Sort)
		if err == nil {
			cur := base64.RawURLEncoding.EncodeToString(c)
			out.NextCursor = &cur
		}
	}
	return out, nil
}

// buildQuery turns a request into an OpenSearch query body. The free text goes through
// simple_query_string, which never fails on user syntax.
func buildQuery(req SearchRequest) ([]byte, error) {
	var must, filter []any
	if q := strings.TrimSpace(req.Q); q != "" {
		must = append(must, map[string]any{"simple_query_string": map[string]any{
			"query": q, "default_operator": "and", "lenient": true,
			"fields": []string{"customer.name", "customer.email", "items.name", "items.sku", "shipment.tracking_number", "id"},
		}})
	}
	if len(req.Statuses) > 0 {
		filter = append(filter, map[string]any{"terms": map[string]any{"status": req.Statuses}})
	}
	if req.Currency != "" {
		filter = append(filter, map[string]any{"term": map[string]any{"currency": req.Currency}})
	}
	if req.CustomerID != "" {
		filter = append(filter, map[string]any{"term": map[string]any{"customer.id": req.CustomerID}})
	}
	if req.PlacedFrom != nil || req.PlacedTo != nil {
		r := map[string]any{}
		if req.PlacedFrom != nil {
			r["gte"] = req.PlacedFrom.UTC().Format(time.RFC3339Nano)
		}
		if req.PlacedTo != nil {
			r["lt"] = req.PlacedTo.UTC().Format(time.RFC3339Nano)
		}
		filter = append(filter, map[string]any{"range": map[string]any{"placed_at": r}})
	}
	if req.TotalMin != nil || req.TotalMax != nil {
		r := map[string]any{}
		if req.TotalMin != nil {
			r["gte"] = *req.TotalMin
		}
		if req.TotalMax != nil {
			r["lte"] = *req.TotalMax
		}
		filter = append(filter, map[string]any{"range": map[string]any{"total": r}})
	}
	sortName, order := strings.TrimPrefix(req.Sort, "-"), "asc"
	if strings.HasPrefix(req.Sort, "-") {
		order = "desc"
	}
	if sortName == "" {
		sortName, order = "placed_at", "desc"
	}
	query := map[string]any{
		"size":  req.Limit,
		"query": map[string]any{"bool": map[string]any{"must": orAll(must), "filter": filter}},
		"sort":  []any{map[string]any{sortFields[sortName]: order}, map[string]any{"id": "asc"}},
		"aggs":  map[string]any{"status": map[string]any{"terms": map[string]any{"field": "status", "size": 10}}},
	}
	if req.Cursor != "" {
		raw, err := base64.RawURLEncoding.DecodeString(req.Cursor)
		var after []any
		if err == nil {
			err = json.Unmarshal(raw, &after)
		}
		if err != nil || len(after) != 2 {
			return nil, ErrBadCursor
		}
		query["search_after"] = after
	}
	return json.Marshal(query)
}

// ErrBadCursor: the cursor is not one this API gave out.
var ErrBadCursor = errors.New("cursor is not a next_cursor value from a previous page")

func orAll(must []any) []any {
	if len(must) == 0 {
		return []any{map[string]any{"match_all": map[string]any{}}}
	}
	return must
}
