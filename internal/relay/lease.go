package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// One publisher at a time, with fencing (docs/relay.md). Leadership is a lease in the table
// relay_lease, held for Lease and renewed by the leader while it publishes. A standby takes it over
// once it has expired (a paused, partitioned or dead leader), raising its epoch. The leader deletes the
// rows it published only in a statement that also checks, atomically, that it still holds the lease at
// its epoch: a former leader that wakes up after a takeover can never commit a batch. Its records can
// no longer reach Kafka either: each batch's produce deadline (ProduceTimeout) ends before its lease
// would have expired.
//
// A relay process is an incarnation of an instance (RELAY_INSTANCE_ID, the host or pod name): a
// restarted process of the same instance takes the lease back at once instead of waiting for it to
// expire. Two live processes must never share an instance: the first holds a session lock on its
// instance name, and a second one refuses to run (ErrInstanceInUse).

// leaseName is the row of the events relay's lease.
const leaseName = "outbox"

// instanceLockKey is the first half of the session advisory lock on an instance name ("orders" in the
// lock space of the event store's other locks; the second half is hashtext(instance)).
const instanceLockKey int32 = 0x6f726404

var (
	// ErrNotLeader: another relay holds the lease; this one is a standby for now.
	ErrNotLeader = errors.New("another relay is publishing")
	// ErrFenced: this relay lost the lease while it published a batch (it was paused or cut off for
	// longer than the lease); the batch was not committed and goes out again.
	ErrFenced = errors.New("the lease was lost during the batch (fenced); the batch is not committed")
	// ErrInstanceInUse: another live relay process runs as the same instance.
	ErrInstanceInUse = errors.New("another relay process runs with the same instance name")
)

const acquireSQL = `
INSERT INTO relay_lease AS l (name, instance, process, epoch, expires_at, acquired_at)
VALUES ($1, $2, $3, 1, clock_timestamp() + $4::interval, clock_timestamp())
ON CONFLICT (name) DO UPDATE SET
    epoch = CASE WHEN l.process = EXCLUDED.process AND l.expires_at > clock_timestamp() THEN l.epoch ELSE l.epoch + 1 END,
    acquired_at = CASE WHEN l.process = EXCLUDED.process AND l.expires_at > clock_timestamp() THEN l.acquired_at ELSE EXCLUDED.acquired_at END,
    instance = EXCLUDED.instance, process = EXCLUDED.process, expires_at = EXCLUDED.expires_at
WHERE l.process = EXCLUDED.process OR l.instance = EXCLUDED.instance OR l.expires_at <= clock_timestamp()
RETURNING epoch`

// commitSQL deletes published rows only while the lease is still this relay's at its epoch, and
// extends the lease: one statement, so one transaction and one round trip.
const commitSQL = `
WITH fence AS (
    UPDATE relay_lease SET expires_at = clock_timestamp() + $4::interval
    WHERE name = $1 AND process = $2 AND epoch = $3 AND expires_at > clock_timestamp()
    RETURNING 1
), del AS (
    DELETE FROM outbox WHERE id = ANY($5) AND EXISTS (SELECT FROM fence) RETURNING 1
)
SELECT (SELECT count(*) FROM fence), (SELECT count(*) FROM del)`

// lease is one relay's view of its leadership.
type lease struct {
	instance, process string
	duration          time.Duration

	epoch     int64     // 0: not holding
	renewedAt time.Time // this process's clock when the lease was last taken or renewed
	// instConn holds the session lock on the instance name: a connection of its own, outside the
	// pool, for the life of the process (or until Postgres drops it).
	instConn *pgx.Conn
}

// interval is the lease duration as a Postgres interval literal.
func (l *lease) interval() string { return fmt.Sprintf("%d milliseconds", l.duration.Milliseconds()) }

// claimInstance takes (once per session) the session lock on the instance name.
func (l *lease) claimInstance(ctx context.Context, pool *pgxpool.Pool) error {
	if l.instConn != nil {
		if l.instConn.Ping(ctx) == nil {
			return nil
		}
		l.release() // its session (and lock) ended with Postgres or the connection
	}
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, hashtext($2))", instanceLockKey, l.instance).Scan(&ok); err != nil {
		conn.Close(context.Background())
		return err
	}
	if !ok {
		conn.Close(context.Background())
		return fmt.Errorf("%w (%q): give each replica its own RELAY_INSTANCE_ID", ErrInstanceInUse, l.instance)
	}
	l.instConn = conn
	return nil
}

// release gives the instance lock back (at shutdown).
func (l *lease) release() {
	if l.instConn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = l.instConn.Close(ctx)
		l.instConn = nil
	}
}

// ensure takes or renews the lease when a third of it has passed since the last renewal (a leader
// renews at most a few times per lease, not at every poll), and returns the epoch to publish under or
// ErrNotLeader. The process's own clock decides when to renew; a process paused past its lease finds
// it taken when it wakes.
func (l *lease) ensure(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	if l.epoch != 0 && time.Since(l.renewedAt) < l.duration/3 {
		return l.epoch, nil
	}
	if err := l.claimInstance(ctx, pool); err != nil {
		l.epoch = 0
		return 0, err
	}
	began := time.Now()
	err := pool.QueryRow(ctx, acquireSQL, leaseName, l.instance, l.process, l.interval()).Scan(&l.epoch)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		l.epoch = 0
		return 0, ErrNotLeader
	case err != nil:
		l.epoch = 0
		return 0, fmt.Errorf("leader lease: %w", err)
	}
	l.renewedAt = began // conservative: the lease runs from before the statement
	return l.epoch, nil
}

// commit deletes the published rows under the lease's fence; see commitSQL.
func (l *lease) commit(ctx context.Context, pool *pgxpool.Pool, epoch int64, ids []int64) error {
	began := time.Now()
	var fenced, deleted int64
	if err := pool.QueryRow(ctx, commitSQL, leaseName, l.process, epoch, l.interval(), ids).Scan(&fenced, &deleted); err != nil {
		return fmt.Errorf("delete published rows: %w", err)
	}
	if fenced == 0 {
		l.epoch = 0
		return ErrFenced
	}
	l.renewedAt = began
	if int(deleted) != len(ids) {
		return fmt.Errorf("delete published rows: %d of %d were still there", deleted, len(ids))
	}
	return nil
}
