//go:build integration

package readmodel

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orders-oss/orders/internal/testenv"
	"github.com/orders-oss/orders/pkg/api"
	"github.com/orders-oss/orders/pkg/events"
)

func upsert(t *testing.T, pool *pgxpool.Pool, gen int, orders ...api.Order) {
	t.Helper()
	err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		_, err := Upsert(context.Background(), tx, gen, orders, nil)
		return err
	})
	if err != nil {
		t.Fatalf("upsert: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func readOrder(n int, version int64, placed time.Time) api.Order {
	return api.Order{ID: fmt.Sprintf("01936f3e-0000-7000-8000-%012d", n), Version: version, Status: "placed", Currency: "EUR", Total: 500,
		Items:           []events.LineItem{{SKU: "A", Name: "a", Quantity: 1, UnitPrice: 500}},
		Customer:        api.Customer{ID: "cus_1", Name: ptr("Ada"), Email: ptr("ada@example.com")},
		ShippingAddress: &events.Address{Name: "Ada", Line1: "1", City: "London", PostalCode: "N1", Country: "GB"},
		PlacedAt:        placed, UpdatedAt: placed}
}

func TestGetAndListWithoutReadModel(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	ctx := context.Background()
	if _, err := Get(ctx, pool, readOrder(1, 1, time.Now()).ID); !errors.Is(err, ErrNoLiveGeneration) {
		t.Errorf("Get without the schema = %v, want ErrNoLiveGeneration", err)
	}
	if _, err := List(ctx, pool, ListRequest{}); !errors.Is(err, ErrNoLiveGeneration) {
		t.Errorf("List without the schema = %v, want ErrNoLiveGeneration", err)
	}
}

func TestGet(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	ctx := context.Background()
	gen, err := Ensure(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	o := readOrder(1, 2, time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC))
	upsert(t, pool, gen, o)
	if got, err := Get(ctx, pool, o.ID); err != nil || !reflect.DeepEqual(got, o) {
		t.Errorf("Get = %+v, %v; want %+v", got, err, o)
	}
	for _, id := range []string{readOrder(2, 1, time.Now()).ID, "nope", ""} {
		if _, err := Get(ctx, pool, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", id, err)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Get(cancelled, pool, o.ID); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Get with a cancelled context = %v, want ErrUnavailable", err)
	}

	// Reads follow the views: after a rebuild's swap they see the new generation.
	next, err := CreateGeneration(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	o.Version, o.Status = 3, "paid"
	upsert(t, pool, next, o)
	if behind, err := Swap(ctx, pool, gen, next); err != nil || len(behind) > 0 {
		t.Fatalf("Swap = %v, %v", behind, err)
	}
	if got, err := Get(ctx, pool, o.ID); err != nil || got.Version != 3 {
		t.Errorf("Get after the swap = version %d, %v; want 3", got.Version, err)
	}
}

// Postgres keeps microseconds; the docs keep what the events said. Orders whose placing times differ
// only below a microsecond are equal in the column, and pagination still visits each once.
func TestListPaginatesOnColumnValues(t *testing.T) {
	t.Parallel()
	pool := testenv.Postgres(t)
	ctx := context.Background()
	gen, err := Ensure(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	var orders []api.Order
	for n := range 12 {
		orders = append(orders, readOrder(n, 1, at.Add(time.Duration(n*37)*time.Nanosecond)))
	}
	upsert(t, pool, gen, orders...)
	for _, sortName := range []string{"placed_at", "-placed_at"} {
		var ids []string
		req := ListRequest{Sort: sortName, Limit: 5}
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatalf("sort %s: pagination does not end", sortName)
			}
			res, err := List(ctx, pool, req)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range res.Items {
				ids = append(ids, o.ID)
			}
			if res.NextCursor == "" {
				break
			}
			req.Cursor = res.NextCursor
		}
		want := make([]string, 12)
		for i := range want {
			n := i
			if sortName == "-placed_at" {
				n = 11 - i
			}
			want[i] = orders[n].ID
		}
		if !reflect.DeepEqual(ids, want) {
			t.Errorf("sort %s: %v\nwant %v", sortName, ids, want)
		}
	}

	// Limits outside 1..MaxListLimit are brought back into it.
	many := make([]api.Order, 0, 130)
	for n := 100; n < 230; n++ {
		many = append(many, readOrder(n, 1, at.Add(time.Duration(n)*time.Second)))
	}
	upsert(t, pool, gen, many...)
	for limit, want := range map[int]int{0: DefaultListLimit, -3: DefaultListLimit, 1000: MaxListLimit} {
		if res, err := List(ctx, pool, ListRequest{Limit: limit}); err != nil || len(res.Items) != want || res.NextCursor == "" {
			t.Errorf("List(limit %d) = %d items, next %q, %v; want %d and a cursor", limit, len(res.Items), res.NextCursor, err, want)
		}
	}

	// A cursor belongs to its sort.
	res, err := List(ctx, pool, ListRequest{Sort: "total", Limit: 3})
	if err != nil || res.NextCursor == "" {
		t.Fatalf("List(total) = %+v, %v", res, err)
	}
	for _, s := range []string{"-total", "placed_at", ""} {
		if _, err := List(ctx, pool, ListRequest{Sort: s, Cursor: res.NextCursor}); !errors.Is(err, ErrBadCursor) {
			t.Errorf("List(sort %q) with a total cursor = %v, want ErrBadCursor", s, err)
		}
	}
	if _, err := List(ctx, pool, ListRequest{Sort: "total", Cursor: res.NextCursor}); err != nil {
		t.Errorf("List(total) with its own cursor = %v", err)
	}
}
