package eventstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// The hash chain's verifier (migrations/0005_event_chain.sql computes the hashes). ChainHash is the
// Go twin of the SQL function events_chain_hash: both must produce the same bytes.

// ChainLink is what one event's hash covers.
type ChainLink struct {
	StreamID      uuid.UUID
	Version       int64
	EventID       uuid.UUID
	Type          string
	SchemaVersion int32
	OccurredAt    time.Time
	RecordedAt    time.Time
	Data          string // data::text, Postgres' rendering of the stored jsonb
	Metadata      string // metadata::text
}

// ChainHash returns SHA-256(prev || the link's canonical bytes).
func ChainHash(prev []byte, l ChainLink) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(l.StreamID[:])
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(l.Version))
	h.Write(b[:])
	h.Write(l.EventID[:])
	writeText(h, l.Type)
	binary.BigEndian.PutUint32(b[:4], uint32(l.SchemaVersion))
	h.Write(b[:4])
	binary.BigEndian.PutUint64(b[:], uint64(l.OccurredAt.UnixMicro()))
	h.Write(b[:])
	binary.BigEndian.PutUint64(b[:], uint64(l.RecordedAt.UnixMicro()))
	h.Write(b[:])
	writeText(h, l.Data)
	writeText(h, l.Metadata)
	return h.Sum(nil)
}

func writeText(h io.Writer, s string) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(s)))
	h.Write(n[:])
	h.Write([]byte(s))
}

// ChainStart is the previous hash of a stream's first hashed event.
var ChainStart = make([]byte, sha256.Size)

// ChainBreak is the first link of a stream that does not hold.
type ChainBreak struct {
	OrderID string `json:"order_id"`
	Version int64  `json:"version"`
	Reason  string `json:"reason"`
}

// ChainReport is what VerifyChains found.
type ChainReport struct {
	Streams int64        `json:"streams"`
	Events  int64        `json:"events"`
	Legacy  int64        `json:"unhashed_legacy_events"` // stored before the chain existed: not covered
	Breaks  []ChainBreak `json:"breaks"`
}

// VerifyChains recomputes the hash chain of every stream (or only orderID's when not empty) from the
// stored events and reports the first broken link of each: a version missing (an event deleted), an
// event whose bytes do not give its stored hash (edited, or inserted with the versions after it moved,
// or the hash itself changed), or a hash missing where the chain had begun. Events stored before the
// chain existed (position up to events_chain_start.legacy_until, without a hash) start the chain later
// and are counted, not checked. It reads with the caller's rights (the owner, in ordersctl).
func (s *Store) VerifyChains(ctx context.Context, orderID string) (ChainReport, error) {
	var rep ChainReport
	var legacyUntil int64
	if err := s.pool.QueryRow(ctx, "SELECT legacy_until FROM events_chain_start").Scan(&legacyUntil); err != nil {
		return rep, fmt.Errorf("verify chains: read events_chain_start: %w", err)
	}
	sql := `SELECT position, stream_id, version, event_id, type, schema_version, occurred_at, recorded_at,
	               data::text, metadata::text, hash
	        FROM events`
	var args []any
	if orderID != "" {
		id, err := uuid.Parse(orderID)
		if err != nil {
			return rep, fmt.Errorf("verify chains: order id %q is not a UUID", orderID)
		}
		sql += " WHERE stream_id = $1"
		args = append(args, pgtype.UUID{Bytes: id, Valid: true})
	}
	sql += " ORDER BY stream_id, version"
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return rep, fmt.Errorf("verify chains: %w", err)
	}
	defer rows.Close()

	var (
		cur             uuid.UUID
		started, broken bool
		expect          int64
		prev            []byte
		hashedSeen      bool
		position        int64
		l               ChainLink
		streamID, evID  pgtype.UUID
		stored          []byte
	)
	fail := func(version int64, reason string, args ...any) {
		rep.Breaks = append(rep.Breaks, ChainBreak{OrderID: cur.String(), Version: version, Reason: fmt.Sprintf(reason, args...)})
		broken = true
	}
	for rows.Next() {
		if err := rows.Scan(&position, &streamID, &l.Version, &evID, &l.Type, &l.SchemaVersion, &l.OccurredAt, &l.RecordedAt,
			&l.Data, &l.Metadata, &stored); err != nil {
			return rep, fmt.Errorf("verify chains: %w", err)
		}
		l.StreamID, l.EventID = streamID.Bytes, evID.Bytes
		rep.Events++
		if !started || l.StreamID != cur {
			started, cur, broken, expect, prev, hashedSeen = true, l.StreamID, false, 1, ChainStart, false
			rep.Streams++
		}
		if broken {
			continue
		}
		switch {
		case l.Version > expect:
			fail(expect, "version %d is missing (deleted?); the next stored is %d", expect, l.Version)
			continue
		case l.Version < expect:
			fail(l.Version, "version %d is stored twice", l.Version)
			continue
		}
		expect++
		if stored == nil {
			if position <= legacyUntil && !hashedSeen {
				rep.Legacy++
				continue
			}
			fail(l.Version, "version %d has no hash, though the chain covers it (removed?)", l.Version)
			continue
		}
		if got := ChainHash(prev, l); !bytes.Equal(got, stored) {
			fail(l.Version, "version %d does not match its hash: it was changed, or an event before it was inserted, removed or changed along with its hash", l.Version)
			continue
		}
		prev, hashedSeen = stored, true
	}
	if err := rows.Err(); err != nil {
		return rep, fmt.Errorf("verify chains: %w", err)
	}
	if rep.Breaks == nil {
		rep.Breaks = []ChainBreak{}
	}
	return rep, nil
}
