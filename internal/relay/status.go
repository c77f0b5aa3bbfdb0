package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Status is what an operator wants to know of the relays, read from Postgres (so it holds whatever
// the number of replicas): who leads, and how far behind publishing is.
type Status struct {
	// Leader is the instance holding the lease ("" when none ever did); Leading is false when its
	// lease has expired (no replica is publishing).
	Leader         string    `json:"leader"`
	Leading        bool      `json:"leading"`
	Epoch          int64     `json:"epoch"`
	LeaseExpiresAt time.Time `json:"lease_expires_at"`
	// Backlog is how many committed events wait to be published; OldestAge how long the oldest has.
	Backlog   int64         `json:"backlog"`
	OldestAge time.Duration `json:"oldest_age_ns"`
}

// Querier is what ReadStatus needs: a pool, a connection or a transaction.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ReadStatus reads the relays' status.
func ReadStatus(ctx context.Context, q Querier) (Status, error) {
	var st Status
	err := q.QueryRow(ctx, `SELECT instance, epoch, expires_at, expires_at > clock_timestamp() FROM relay_lease WHERE name = $1`, leaseName).
		Scan(&st.Leader, &st.Epoch, &st.LeaseExpiresAt, &st.Leading)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return st, fmt.Errorf("read the relay lease: %w", err)
	}
	var age float64
	if err := q.QueryRow(ctx, `SELECT count(*), COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(created_at)), 0)::float8 FROM outbox`).
		Scan(&st.Backlog, &age); err != nil {
		return st, fmt.Errorf("read the outbox backlog: %w", err)
	}
	st.OldestAge = time.Duration(age * float64(time.Second))
	return st, nil
}
