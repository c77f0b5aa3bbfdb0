package eventstore

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/orders-oss/orders/pkg/events"
)

// AppendTx is Append inside the caller's transaction: the events and their outbox rows become visible
// when tx commits, and are gone if it rolls back. Their positions and outbox ids are taken now, so a
// transaction kept open while others commit is a late commit: the fault suite (internal/chaos) uses
// it to check that the relay still publishes such an event. Services append with Append, which never
// keeps a transaction open.
func AppendTx(ctx context.Context, tx pgx.Tx, req AppendRequest) ([]events.Envelope, error) {
	return appendOn(ctx, tx, req)
}
