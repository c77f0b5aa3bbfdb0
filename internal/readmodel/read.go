package readmodel

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/orders-oss/orders/pkg/api"
)

// The readers' side: GET /orders/{id} and GET /orders of the query API. Reads go through the views of
// orders_read, so they follow a rebuild's swap without knowing the generation.

// ErrUnavailable wraps every failure of Postgres itself (down, timed out, refused the query): the API
// answers 503 and keeps the details in its log.
var ErrUnavailable = errors.New("the orders read model cannot answer")

// ErrBadCursor: a cursor that is not a next_cursor this sort gave out (malformed, or from another sort).
var ErrBadCursor = errors.New("cursor is not a next_cursor value of a previous page with the same sort")

// List limits.
const (
	DefaultListLimit = 20
	MaxListLimit     = 100
	DefaultSort      = "-placed_at"
)

// sortColumns maps the sort names clients use (without the "-" of descending) to columns. Each has an
// index on (column, id), which the keyset pagination below walks.
var sortColumns = map[string]string{"placed_at": "placed_at", "updated_at": "updated_at", "total": "total"}

// ValidSort reports whether s names a sort: placed_at, updated_at or total, with "-" for descending.
func ValidSort(s string) bool { _, ok := sortColumns[strings.TrimPrefix(s, "-")]; return ok }

// Get reads one order from the live generation. An id that is not a UUID is not found.
func Get(ctx context.Context, q Querier, id string) (api.Order, error) {
	if _, err := uuid.Parse(id); err != nil {
		return api.Order{}, ErrNotFound
	}
	var raw []byte
	err := q.QueryRow(ctx, "SELECT doc FROM orders_read.orders WHERE id = $1::uuid", id).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return api.Order{}, ErrNotFound
	}
	if err != nil {
		return api.Order{}, readErr("read order "+id, err)
	}
	var o api.Order
	if err := json.Unmarshal(raw, &o); err != nil {
		return api.Order{}, fmt.Errorf("read order %s: the stored doc does not decode: %w", id, err)
	}
	return o, nil
}

// ListRequest is a validated list query. Zero values mean: no filter, DefaultSort, DefaultListLimit.
type ListRequest struct {
	Statuses   []string
	CustomerID string
	PlacedFrom *time.Time // inclusive
	PlacedTo   *time.Time // exclusive
	Sort       string     // a ValidSort name, or "" for DefaultSort
	Limit      int        // 1..MaxListLimit
	Cursor     string     // NextCursor of the previous page, or ""
}

// ListResult is a page: the orders (each the doc of its row) and, when more follow, the cursor of the
// next page.
type ListResult struct {
	Items      []api.Order `json:"items"`
	NextCursor string      `json:"next_cursor,omitempty"`
}

// cursor is what a next_cursor holds (base64url JSON): the sort it belongs to and the last item's sort
// key and id. Timestamps are the column's value (microseconds), not the doc's, so the keyset compares
// exactly what the index holds.
type cursor struct {
	Sort string          `json:"s"`
	Key  json.RawMessage `json:"k"`
	ID   string          `json:"id"`
}

// List reads a page of orders from the live generation: filtered, sorted on (sort column, id) and
// continued after the cursor's item (keyset pagination, stable under concurrent writes: an order whose
// sort key changes may move past or back over the cursor, but nothing else is skipped or repeated).
func List(ctx context.Context, q Querier, req ListRequest) (ListResult, error) {
	sortName := req.Sort
	if sortName == "" {
		sortName = DefaultSort
	}
	col, ok := sortColumns[strings.TrimPrefix(sortName, "-")]
	if !ok {
		return ListResult{}, fmt.Errorf("list orders: unknown sort %q", req.Sort)
	}
	desc := strings.HasPrefix(sortName, "-")
	limit := req.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)

	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	if len(req.Statuses) > 0 {
		where = append(where, "status = ANY("+arg(req.Statuses)+"::text[])")
	}
	if req.CustomerID != "" {
		where = append(where, "customer_id = "+arg(req.CustomerID))
	}
	if req.PlacedFrom != nil {
		where = append(where, "placed_at >= "+arg(*req.PlacedFrom))
	}
	if req.PlacedTo != nil {
		where = append(where, "placed_at < "+arg(*req.PlacedTo))
	}
	if req.Cursor != "" {
		key, id, err := decodeCursor(req.Cursor, sortName, col)
		if err != nil {
			return ListResult{}, err
		}
		op := ">"
		if desc {
			op = "<"
		}
		where = append(where, fmt.Sprintf("(%s, id) %s (%s, %s::uuid)", col, op, arg(key), arg(id)))
	}
	dir := "ASC"
	if desc {
		dir = "DESC"
	}
	sql := "SELECT id::text, " + col + ", doc FROM orders_read.orders"
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += fmt.Sprintf(" ORDER BY %[1]s %[2]s, id %[2]s LIMIT %[3]d", col, dir, limit+1)

	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return ListResult{}, readErr("list orders", err)
	}
	defer rows.Close()
	type row struct {
		id  string
		key any
		doc []byte
	}
	var got []row
	for rows.Next() {
		var r row
		if col == "total" {
			var n int64
			err = rows.Scan(&r.id, &n, &r.doc)
			r.key = n
		} else {
			var t time.Time
			err = rows.Scan(&r.id, &t, &r.doc)
			r.key = t.UTC().Format(time.RFC3339Nano)
		}
		if err != nil {
			return ListResult{}, readErr("list orders", err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		return ListResult{}, readErr("list orders", err)
	}

	out := ListResult{Items: make([]api.Order, 0, min(len(got), limit))}
	for i, r := range got {
		if i == limit {
			last := got[limit-1]
			k, _ := json.Marshal(last.key)
			c, _ := json.Marshal(cursor{Sort: sortName, Key: k, ID: last.id})
			out.NextCursor = base64.RawURLEncoding.EncodeToString(c)
			break
		}
		var o api.Order
		if err := json.Unmarshal(r.doc, &o); err != nil {
			return ListResult{}, fmt.Errorf("list orders: the stored doc of %s does not decode: %w", r.id, err)
		}
		out.Items = append(out.Items, o)
	}
	return out, nil
}

// decodeCursor checks a cursor against the sort of the request and returns its key (typed for col)
// and id.
func decodeCursor(s, sortName, col string) (any, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, "", ErrBadCursor
	}
	var c cursor
	if err := json.Unmarshal(raw, &c); err != nil || c.Sort != sortName {
		return nil, "", ErrBadCursor
	}
	if _, err := uuid.Parse(c.ID); err != nil || len(c.Key) == 0 || string(c.Key) == "null" {
		return nil, "", ErrBadCursor
	}
	if col == "total" {
		var n int64
		if err := json.Unmarshal(c.Key, &n); err != nil {
			return nil, "", ErrBadCursor
		}
		return n, c.ID, nil
	}
	var ts string
	if err := json.Unmarshal(c.Key, &ts); err != nil {
		return nil, "", ErrBadCursor
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return nil, "", ErrBadCursor
	}
	return t, c.ID, nil
}

// readErr classifies a failed read: a missing schema or view means the read model was never created
// (ErrNoLiveGeneration); anything else from Postgres is ErrUnavailable.
func readErr(what string, err error) error {
	if isUndefinedTable(err) {
		return fmt.Errorf("%s: %w", what, ErrNoLiveGeneration)
	}
	return fmt.Errorf("%s: %w: %w", what, ErrUnavailable, err)
}
