// Package searchindex is the OpenSearch read model of orders, the counterpart of package readmodel:
// the orders index behind an alias with an explicit mapping, its generations (a rebuild fills a new
// index and moves the alias), version-guarded bulk writes of order documents, projector-search's
// handler and parking, and the reads and searches of the query API. A document is an
// order in its API shape (pkg/api.Order), indexed with version_type=external and the order's version,
// so a duplicate or stale write is refused by OpenSearch itself (409 = already applied).
package searchindex

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/opensearch-project/opensearch-go/v2"
	"github.com/opensearch-project/opensearch-go/v2/opensearchapi"

	"github.com/orders-oss/orders/pkg/api"
)

// Mapping is the explicit mapping of an orders index: keyword ids, skus and statuses; text with
// keyword sub-fields for names; dates; amounts as integers. Dynamic fields are refused so a document
// can never silently grow an unmapped field. A field added since an index was made is added to it by
// Ensure (addedFields). One primary shard; a replica on every cluster of two nodes or more
// (auto_expand_replicas 0-1: a single node, as locally, keeps the index green with none), so that losing
// a node does not lose the index (docs/scaling.md).
const Mapping = `{
  "settings": {"number_of_shards": 1, "auto_expand_replicas": "0-1", "index.merge.policy.expunge_deletes_allowed": 0},
  "mappings": {
    "dynamic": "strict",
    "properties": {
      "id": {"type": "keyword"},
      "version": {"type": "long"},
      "status": {"type": "keyword"},
      "currency": {"type": "keyword"},
      "total": {"type": "long"},
      "items": {"properties": {
        "sku": {"type": "keyword"},
        "name": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}},
        "quantity": {"type": "long"},
        "unit_price": {"type": "long"}}},
      "customer": {"properties": {
        "id": {"type": "keyword"},
        "name": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}},
        "email": {"type": "text", "analyzer": "simple", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}}},
      "shipping_address": {"properties": {
        "name": {"type": "text"}, "line1": {"type": "text"}, "line2": {"type": "text"},
        "city": {"type": "keyword"}, "postal_code": {"type": "keyword"}, "country": {"type": "keyword"}}},
      "payment": {"properties": {"amount": {"type": "long"}, "reference": {"type": "keyword"}}},
      "shipment": {"properties": {"carrier": {"type": "keyword"}, "tracking_number": {"type": "keyword"}}},
      "cancellation": {"properties": {"reason": {"type": "text"}, "refund_due": {"type": "long"}}},
      "personal_data": {"type": "keyword"},
      "placed_at": {"type": "date"},
      "updated_at": {"type": "date"}
    }
  }
}`

// addedFields are the fields Mapping has that an index made by an older release may lack.
const addedFields = `{"properties": {"personal_data": {"type": "keyword"}}}`

// expungeSettings make ExpungeDeleted merge every segment holding a deleted document (by default
// OpenSearch leaves segments with fewer than 10% of them), so no replaced version of an erased
// document stays on disk.
const expungeSettings = `{"index.merge.policy.expunge_deletes_allowed": 0}`

// Index writes order documents.
type Index struct {
	client *opensearch.Client
	alias  string
}

// New returns an index that reads and writes through alias.
func New(client *opensearch.Client, alias string) *Index { return &Index{client: client, alias: alias} }

// Ensure creates index (with Mapping) when missing and points alias at it when the alias does not
// exist yet. An alias that already points elsewhere is left alone (a rebuild switches it).
func (ix *Index) Ensure(ctx context.Context, index string) error {
	res, err := opensearchapi.IndicesExistsRequest{Index: []string{index}}.Do(ctx, ix.client)
	if _, err := check("index exists", res, err, http.StatusNotFound); err != nil {
		return err
	}
	if res.StatusCode == http.StatusNotFound {
		res, err = opensearchapi.IndicesCreateRequest{Index: index, Body: strings.NewReader(Mapping)}.Do(ctx, ix.client)
		if body, err := check("create index "+index, res, err, http.StatusBadRequest); err != nil {
			return err
		} else if res.StatusCode == http.StatusBadRequest && !bytes.Contains(body, []byte("resource_already_exists_exception")) {
			return fmt.Errorf("create index %s: %s", index, body)
		}
	}
	// An index made by an older release lacks the fields added since: adding a field to a mapping is
	// allowed, and strict mapping would refuse documents that have it.
	res, err = opensearchapi.IndicesPutMappingRequest{Index: []string{index}, Body: strings.NewReader(addedFields)}.Do(ctx, ix.client)
	if _, err := check("add new fields to "+index, res, err); err != nil {
		return err
	}
	res, err = opensearchapi.IndicesPutSettingsRequest{Index: []string{index}, Body: strings.NewReader(expungeSettings)}.Do(ctx, ix.client)
	if _, err := check("set "+index+" to expunge every deleted document", res, err); err != nil {
		return err
	}
	res, err = opensearchapi.IndicesExistsAliasRequest{Name: []string{ix.alias}}.Do(ctx, ix.client)
	if _, err := check("alias exists", res, err, http.StatusNotFound); err != nil {
		return err
	}
	if res.StatusCode == http.StatusNotFound {
		res, err = opensearchapi.IndicesPutAliasRequest{Index: []string{index}, Name: ix.alias}.Do(ctx, ix.client)
		if _, err := check("put alias "+ix.alias, res, err); err != nil {
			return err
		}
	}
	return nil
}

// Get returns the current documents of the given orders (missing ones are absent from the map). It
// reads in real time, without waiting for a refresh.
func (ix *Index) Get(ctx context.Context, ids []string) (map[string]api.Order, error) {
	out := map[string]api.Order{}
	if len(ids) == 0 {
		return out, nil
	}
	body, _ := json.Marshal(map[string][]string{"ids": ids})
	res, err := opensearchapi.MgetRequest{Index: ix.alias, Body: bytes.NewReader(body)}.Do(ctx, ix.client)
	raw, err := check("mget", res, err)
	if err != nil {
		return nil, err
	}
	var mget struct {
		Docs []struct {
			ID     string          `json:"_id"`
			Found  bool            `json:"found"`
			Source json.RawMessage `json:"_source"`
			Error  json.RawMessage `json:"error"`
		} `json:"docs"`
	}
	if err := json.Unmarshal(raw, &mget); err != nil {
		return nil, fmt.Errorf("mget: %w", err)
	}
	for _, d := range mget.Docs {
		if len(d.Error) > 0 {
			return nil, fmt.Errorf("mget %s: %s", d.ID, errorType(d.Error))
		}
		if !d.Found {
			continue
		}
		var o api.Order
		if err := json.Unmarshal(d.Source, &o); err != nil {
			return nil, fmt.Errorf("document %s: %w", d.ID, err)
		}
		out[d.ID] = o
	}
	return out, nil
}

// WriteResult says what happened to each document of a bulk write.
type WriteResult struct {
	Written  int               // indexed at a newer version
	Stale    map[string]bool   // order ids refused with 409: the index already had this version or a newer one
	Failures map[string]string // order id -> error, for items that failed for any other reason
}

// Write indexes the documents, each at its order's version (external versioning). Every item's
// status is checked: 201/200 written, 409 stale (already applied), anything else a failure of that
// order. A failure of the request as a whole is returned as an error.
func (ix *Index) Write(ctx context.Context, docs []api.Order, refresh bool) (WriteResult, error) {
	r := WriteResult{Stale: map[string]bool{}, Failures: map[string]string{}}
	if len(docs) == 0 {
		return r, nil
	}
	var body bytes.Buffer
	for _, d := range docs {
		meta := map[string]map[string]any{"index": {"_index": ix.alias, "_id": d.ID, "version": d.Version, "version_type": "external"}}
		if err := json.NewEncoder(&body).Encode(meta); err != nil {
			return r, err
		}
		if err := json.NewEncoder(&body).Encode(d); err != nil {
			return r, err
		}
	}
	req := opensearchapi.BulkRequest{Body: &body}
	if refresh {
		req.Refresh = "true"
	}
	res, err := req.Do(ctx, ix.client)
	raw, err := check("bulk", res, err)
	if err != nil {
		return r, err
	}
	var bulk struct {
		Items []map[string]struct {
			ID     string          `json:"_id"`
			Status int             `json:"status"`
			Error  json.RawMessage `json:"error"`
		} `json:"items"`
	}
	if err := json.Unmarshal(raw, &bulk); err != nil {
		return r, fmt.Errorf("bulk answer: %w", err)
	}
	if len(bulk.Items) != len(docs) {
		return r, fmt.Errorf("bulk answered %d items for %d documents", len(bulk.Items), len(docs))
	}
	for i, item := range bulk.Items {
		it := item["index"]
		switch {
		case it.Status == http.StatusOK || it.Status == http.StatusCreated:
			r.Written++
		case it.Status == http.StatusConflict:
			r.Stale[docs[i].ID] = true
		default:
			r.Failures[docs[i].ID] = strconv.Itoa(it.Status) + " " + errorType(it.Error)
		}
	}
	return r, nil
}

// errorType is what an OpenSearch error says of itself without the data: its type and those of its
// causes. The reason is left out: OpenSearch quotes the offending document or query in it ("Preview of
// field's value", a query's text), which may be personal data, and errors end up in logs and parkings.
func errorType(raw []byte) string {
	type typed struct {
		Type     string `json:"type"`
		CausedBy *struct {
			Type string `json:"type"`
		} `json:"caused_by"`
	}
	var e struct {
		typed
		Error *typed `json:"error"`
	}
	if json.Unmarshal(raw, &e) != nil {
		return "(an error that is not JSON)"
	}
	t, cause := e.Type, ""
	if e.CausedBy != nil {
		cause = e.CausedBy.Type
	}
	if e.Error != nil {
		t = e.Error.Type
		if e.Error.CausedBy != nil {
			cause = e.Error.CausedBy.Type
		}
	}
	if cause != "" {
		return t + " (caused by " + cause + ")"
	}
	return t
}

// check turns an opensearch-go answer into an error unless it is 2xx or one of the allowed statuses
// (opensearch-go returns err == nil for 4xx and 5xx), and returns the body. The error names the
// error's type, never its reason (errorType).
func check(what string, res *opensearchapi.Response, err error, allowed ...int) ([]byte, error) {
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: read answer: %w", what, err)
	}
	if res.IsError() {
		for _, s := range allowed {
			if res.StatusCode == s {
				return raw, nil
			}
		}
		return raw, fmt.Errorf("%s: %s: %s", what, res.Status(), errorType(raw))
	}
	return raw, nil
}

// ExpungeDeleted removes the replaced and deleted versions of documents from the indices behind the
// alias: an update leaves the old version on disk (marked deleted) until its segment is merged, and an
// erasure must not leave personal data there. Refresh (the updates become deletions in segments),
// merge away the deleted documents, and flush (the translog holds the operations too). OpenSearch keeps
// a deleted document while its shard's retention lease still covers it, and renews the lease every 30
// s: versions replaced less than that ago may survive this call (Expunger calls it again later).
func (ix *Index) ExpungeDeleted(ctx context.Context) error {
	res, err := opensearchapi.IndicesRefreshRequest{Index: []string{ix.alias}}.Do(ctx, ix.client)
	if _, err := check("refresh", res, err); err != nil {
		return err
	}
	yes := true
	res, err = opensearchapi.IndicesForcemergeRequest{Index: []string{ix.alias}, OnlyExpungeDeletes: &yes}.Do(ctx, ix.client)
	if _, err := check("expunge deleted documents", res, err); err != nil {
		return err
	}
	res, err = opensearchapi.IndicesFlushRequest{Index: []string{ix.alias}, Force: &yes}.Do(ctx, ix.client)
	_, err = check("flush", res, err)
	return err
}

// EachID calls fn with the id of every document behind the alias, in id order (after a refresh, so it
// sees every acknowledged write). It pages with search_after, so any index size works.
func (ix *Index) EachID(ctx context.Context, fn func(id string)) error {
	res, err := opensearchapi.IndicesRefreshRequest{Index: []string{ix.alias}}.Do(ctx, ix.client)
	if _, err := check("refresh", res, err); err != nil {
		return err
	}
	var after []any
	for {
		q := map[string]any{"size": 5000, "_source": false, "sort": []any{map[string]any{"id": "asc"}}, "query": map[string]any{"match_all": map[string]any{}}}
		if after != nil {
			q["search_after"] = after
		}
		body, _ := json.Marshal(q)
		res, err := opensearchapi.SearchRequest{Index: []string{ix.alias}, Body: bytes.NewReader(body)}.Do(ctx, ix.client)
		raw, err := check("list ids", res, err)
		if err != nil {
			return err
		}
		var sr struct {
			Hits struct {
				Hits []struct {
					ID   string `json:"_id"`
					Sort []any  `json:"sort"`
				} `json:"hits"`
			} `json:"hits"`
		}
		if err := json.Unmarshal(raw, &sr); err != nil {
			return fmt.Errorf("list ids: %w", err)
		}
		for _, h := range sr.Hits.Hits {
			fn(h.ID)
		}
		if len(sr.Hits.Hits) < 5000 {
			return nil
		}
		after = sr.Hits.Hits[len(sr.Hits.Hits)-1].Sort
	}
}

// Ping checks that the cluster answers (its health request).
func (ix *Index) Ping(ctx context.Context) error {
	res, err := opensearchapi.ClusterHealthRequest{}.Do(ctx, ix.client)
	_, err = check("cluster health", res, err)
	return err
}
