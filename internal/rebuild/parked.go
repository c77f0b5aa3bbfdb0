package rebuild

import (
	"context"
	"errors"

	"github.com/orders-oss/orders/internal/projection"
	"github.com/orders-oss/orders/internal/readmodel"
	"github.com/orders-oss/orders/internal/searchindex"
)

// ListParked returns up to limit parked records of a read model's live parking, oldest first: the
// orders table's (c.Pool) or the search index's (c.OpenSearch, the alias's parked-events index).
func ListParked(ctx context.Context, c Clients, target Target, alias string, limit int) ([]projection.ParkedEvent, error) {
	switch target {
	case Orders:
		if c.Pool == nil {
			return nil, errors.New("no Postgres pool (the orders read model needs it)")
		}
		return readmodel.ListParked(ctx, c.Pool, limit)
	case Search:
		if c.OpenSearch == nil {
			return nil, errors.New("no OpenSearch client (the search read model needs it)")
		}
		return searchindex.ListParked(ctx, c.OpenSearch, searchindex.ParkingIndex(alias), limit)
	}
	return nil, errors.New("unknown read model " + string(target))
}
