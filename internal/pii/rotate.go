package pii

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// RotateResult says what a rotation did.
type RotateResult struct {
	// MasterKeyID is the master key every data key is wrapped with now.
	MasterKeyID string `json:"master_key_id"`
	// Rewrapped counts the data keys re-wrapped by this run.
	Rewrapped int64 `json:"rewrapped"`
	// Total is how many data keys there are.
	Total int64 `json:"data_keys"`
}

// Rotate re-wraps every data key that another master key wrapped with master, batch by batch, each in
// a transaction of its own (rows locked, so concurrent rotations share the work). The previous master
// keys must include each one that wrapped a key; the data keys themselves do not change, so nothing
// sealed needs re-encrypting, and running services keep working as long as they hold both master keys
// (docs/privacy.md, "Rotating the master key"). Run it as the owner.
func Rotate(ctx context.Context, pool *pgxpool.Pool, master MasterKey, previous []MasterKey, batch int) (RotateResult, error) {
	if batch <= 0 {
		batch = 500
	}
	k := New(pool, master, Options{Previous: previous, CacheTTL: -1})
	res := RotateResult{MasterKeyID: master.ID()}
	for {
		n := 0
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT key_id::text, wrapped_key, master_key_id FROM pii_data_keys
				WHERE master_key_id <> $1 ORDER BY key_id LIMIT $2 FOR UPDATE SKIP LOCKED`, master.ID(), batch)
			if err != nil {
				return err
			}
			todo, err := pgx.CollectRows(rows, scanWrapped)
			if err != nil {
				return err
			}
			b := &pgx.Batch{}
			for _, r := range todo {
				m, ok := k.masterByID(r.master)
				if !ok {
					return fmt.Errorf("data key %s was wrapped by master key %s: give it as a previous master key", r.id, r.master)
				}
				raw, err := m.unwrap(r.id, r.wrapped)
				if err != nil {
					return err
				}
				b.Queue(`UPDATE pii_data_keys SET wrapped_key = $2, master_key_id = $3 WHERE key_id = $1`, r.id, master.wrap(r.id, raw), master.ID())
			}
			n = len(todo)
			if n == 0 {
				return nil
			}
			return tx.SendBatch(ctx, b).Close()
		})
		if err != nil {
			return res, fmt.Errorf("rotate the master key: %w", err)
		}
		res.Rewrapped += int64(n)
		if n < batch {
			break
		}
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pii_data_keys`).Scan(&res.Total); err != nil {
		return res, fmt.Errorf("count data keys: %w", err)
	}
	return res, nil
}

// Status says which master keys wrap the data keys.
type Status struct {
	DataKeys int64 `json:"data_keys"`
	// ByMasterKey counts the data keys per master key id.
	ByMasterKey map[string]int64 `json:"by_master_key"`
}

// ReadStatus counts the data keys per master key.
func ReadStatus(ctx context.Context, db DB) (Status, error) {
	s := Status{ByMasterKey: map[string]int64{}}
	rows, err := db.Query(ctx, `SELECT master_key_id, count(*) FROM pii_data_keys GROUP BY master_key_id ORDER BY 1`)
	if err != nil {
		return s, fmt.Errorf("read data keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			return s, err
		}
		s.ByMasterKey[id] = n
		s.DataKeys += n
	}
	return s, rows.Err()
}
