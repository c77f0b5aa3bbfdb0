package pii

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/orders-oss/orders/internal/eventstore"
	"github.com/orders-oss/orders/pkg/events"
)

// DB is what a Keyring needs of Postgres: a pool, or a pool acting as a service role.
type DB interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// DefaultCacheTTL is how long a Keyring trusts a data key it read without reading it again
// (PII_KEY_CACHE_TTL): an erasure deletes the key at once, and a replica that read it before stops
// using it, to open and to seal, within this time. Short, because an erasure is not complete before
// it has passed; long enough that a customer's orders in a burst read the key once.
const DefaultCacheTTL = time.Second

// Keyring seals and opens personal data with the customers' data keys. Keys are read from Postgres
// and kept in memory, unwrapped, for CacheTTL; a key deleted meanwhile is no longer used once its entry
// is older than that. Safe for concurrent use.
type Keyring struct {
	db       DB
	master   MasterKey
	previous []MasterKey
	ttl      time.Duration
	max      int
	now      func() time.Time

	mu         sync.Mutex
	byCustomer map[string]cached
	byID       map[string]cached
}

type cached struct {
	key *Key // nil: the key does not exist (erased)
	at  time.Time
}

// Options of a Keyring.
type Options struct {
	// Previous master keys: keys they wrapped still unwrap (during a rotation: docs/privacy.md).
	Previous []MasterKey
	// CacheTTL is how long a key read is used without reading it again (DefaultCacheTTL when 0;
	// negative: never cached).
	CacheTTL time.Duration
	// CacheSize bounds the keys kept (10,000 when 0); beyond it the cache starts over.
	CacheSize int
}

// New returns a keyring on db that wraps new keys with master.
func New(db DB, master MasterKey, o Options) *Keyring {
	ttl := o.CacheTTL
	if ttl == 0 {
		ttl = DefaultCacheTTL
	}
	size := o.CacheSize
	if size <= 0 {
		size = 10_000
	}
	return &Keyring{db: db, master: master, previous: o.Previous, ttl: ttl, max: size, now: time.Now,
		byCustomer: map[string]cached{}, byID: map[string]cached{}}
}

// CacheTTL is how long a key read is used without reading it again (0: never cached).
func (k *Keyring) CacheTTL() time.Duration { return max(k.ttl, 0) }

// Key is one customer's data key: it seals personal data as that key.
type Key struct {
	id   string
	aead cipher.AEAD
}

// KeyID is the key's id, which every value it seals names.
func (k *Key) KeyID() string { return k.id }

// Seal encrypts plaintext with AES-256-GCM under a random nonce (96 bits from crypto/rand, as GCM
// wants: with a key used for at most a customer's orders, far below the 2^32 messages a random nonce
// allows), bound to associatedData.
func (k *Key) Seal(plaintext, associatedData []byte) (events.Sealed, error) {
	n := k.aead.NonceSize()
	buf := make([]byte, n, n+len(plaintext)+k.aead.Overhead())
	if _, err := rand.Read(buf); err != nil {
		return events.Sealed{}, err
	}
	return events.Sealed{KeyID: k.id, Ciphertext: base64.StdEncoding.EncodeToString(k.aead.Seal(buf, buf, plaintext, associatedData))}, nil
}

func (k *Key) open(s events.Sealed, associatedData []byte) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(s.Ciphertext)
	n := k.aead.NonceSize()
	if err != nil || len(raw) < n+k.aead.Overhead() {
		return nil, fmt.Errorf("sealed data of key %s is malformed", k.id)
	}
	plaintext, err := k.aead.Open(nil, raw[:n], raw[n:], associatedData)
	if err != nil {
		// Never the data itself in an error: only that it did not authenticate.
		return nil, fmt.Errorf("sealed data of key %s does not authenticate (tampered, or moved from another order or field)", k.id)
	}
	return plaintext, nil
}

// getOrCreateSQL inserts a new key for the customer unless it has one, and returns the customer's key
// either way. When a concurrent insert wins, neither part sees a row (the statement's snapshot is older
// than the winner's commit): the caller asks again.
const getOrCreateSQL = `
WITH ins AS (
    INSERT INTO pii_data_keys (key_id, customer_id, wrapped_key, master_key_id) VALUES ($1, $2, $3, $4)
    ON CONFLICT (customer_id) DO NOTHING
    RETURNING key_id, wrapped_key, master_key_id)
SELECT key_id::text, wrapped_key, master_key_id FROM ins
UNION ALL
SELECT key_id::text, wrapped_key, master_key_id FROM pii_data_keys WHERE customer_id = $2 AND NOT EXISTS (SELECT FROM ins)`

// Sealer returns the customer's data key (a *Key), made (and stored, wrapped) when the customer has
// none.
func (k *Keyring) Sealer(ctx context.Context, customerID string) (events.Sealer, error) {
	return k.Key(ctx, customerID)
}

// Key returns the customer's data key, made (and stored, wrapped) when the customer has none.
func (k *Keyring) Key(ctx context.Context, customerID string) (*Key, error) {
	if c, ok := k.cachedCustomer(customerID); ok {
		return c, nil
	}
	for attempt := 0; ; attempt++ {
		id, raw, err := newDataKey()
		if err != nil {
			return nil, err
		}
		var gotID, masterID string
		var wrapped []byte
		err = k.db.QueryRow(ctx, getOrCreateSQL, id, customerID, k.master.wrap(id, raw), k.master.ID()).Scan(&gotID, &wrapped, &masterID)
		if errors.Is(err, pgx.ErrNoRows) && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("data key of a customer: %w", err)
		}
		key, err := k.unwrap(gotID, wrapped, masterID)
		if err != nil {
			return nil, err
		}
		k.remember(customerID, key)
		return key, nil
	}
}

// newDataKey returns a new data key: its id and its 32 random bytes (AES-256).
func newDataKey() (id string, raw []byte, err error) {
	raw = make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", nil, err
	}
	return uuid.Must(uuid.NewV7()).String(), raw, nil
}

// readSQL reads a customer's data key.
const readSQL = `SELECT key_id::text, wrapped_key, master_key_id FROM pii_data_keys WHERE customer_id = $1`

// SealerFor returns the customer's data key (a *Key) to seal with. For a customer who has none it
// makes one and returns it with its row, not stored: the append of the events it seals stores it
// (eventstore.AppendRequest.DataKey), in their transaction, so a new customer's order commits once
// and a failed append leaves no key behind. Call Stored once that append committed; when it fails
// with eventstore.ErrDataKeyExists (another append stored a key first), ask again.
func (k *Keyring) SealerFor(ctx context.Context, customerID string) (events.Sealer, *eventstore.DataKey, error) {
	if c, ok := k.cachedCustomer(customerID); ok {
		return c, nil, nil
	}
	var id, masterID string
	var wrapped []byte
	err := k.db.QueryRow(ctx, readSQL, customerID).Scan(&id, &wrapped, &masterID)
	switch {
	case err == nil:
		key, err := k.unwrap(id, wrapped, masterID)
		if err != nil {
			return nil, nil, err
		}
		k.remember(customerID, key)
		return key, nil, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, nil, fmt.Errorf("data key of a customer: %w", err)
	}
	id, raw, err := newDataKey()
	if err != nil {
		return nil, nil, err
	}
	aead, err := newAEAD(raw)
	if err != nil {
		return nil, nil, err
	}
	return &Key{id: id, aead: aead},
		&eventstore.DataKey{KeyID: id, CustomerID: customerID, Wrapped: k.master.wrap(id, raw), MasterKeyID: k.master.ID()}, nil
}

// Stored tells the keyring that the append that stored the customer's new key (SealerFor)
// committed: the key is cached as any key read.
func (k *Keyring) Stored(customerID string, key events.Sealer) {
	if key, ok := key.(*Key); ok {
		k.remember(customerID, key)
	}
}

// forget drops the customer's key from the cache (its key was found deleted: the next Sealer reads or
// makes it again).
func (k *Keyring) forget(customerID string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if c, ok := k.byCustomer[customerID]; ok {
		delete(k.byCustomer, customerID)
		if c.key != nil {
			delete(k.byID, c.key.id)
		}
	}
}

// Opener returns an Opener for data sealed with the given keys: those not cached (or cached too long)
// are read in one query; a key that does not exist any more opens nothing (events.ErrErased).
func (k *Keyring) Opener(ctx context.Context, keyIDs []string) (events.Opener, error) {
	o := opener{keys: map[string]*Key{}}
	var missing []string
	for _, id := range keyIDs {
		if _, seen := o.keys[id]; seen || slices.Contains(missing, id) {
			continue
		}
		if key, ok := k.cachedID(id); ok {
			o.keys[id] = key
			continue
		}
		if _, err := uuid.Parse(id); err != nil {
			return nil, fmt.Errorf("sealed data names a key id that is not a UUID: %.40q", id)
		}
		missing = append(missing, id)
	}
	if len(missing) == 0 {
		return o, nil
	}
	rows, err := k.db.Query(ctx, `SELECT key_id::text, wrapped_key, master_key_id FROM pii_data_keys WHERE key_id = ANY($1::uuid[])`, missing)
	if err != nil {
		return nil, fmt.Errorf("read data keys: %w", err)
	}
	found, err := pgx.CollectRows(rows, scanWrapped)
	if err != nil {
		return nil, fmt.Errorf("read data keys: %w", err)
	}
	for _, r := range found {
		key, err := k.unwrap(r.id, r.wrapped, r.master)
		if err != nil {
			return nil, err
		}
		o.keys[r.id] = key
		k.rememberID(r.id, key)
	}
	for _, id := range missing {
		if o.keys[id] == nil {
			o.keys[id] = nil
			k.rememberID(id, nil) // erased: remembered as such for the TTL too
		}
	}
	return o, nil
}

// opener opens with the keys it was given; a nil key is one that is gone.
type opener struct{ keys map[string]*Key }

func (o opener) Open(s events.Sealed, associatedData []byte) ([]byte, error) {
	key, ok := o.keys[s.KeyID]
	if !ok {
		return nil, fmt.Errorf("open personal data: key %.40q was not fetched", s.KeyID)
	}
	if key == nil {
		return nil, events.ErrErased
	}
	return key.open(s, associatedData)
}

// Erase deletes every data key of the customer, in q (a transaction of the caller's, or a pool), and
// returns their ids. From the caller's commit on, what they sealed opens nowhere (replicas that read
// them stop using them within CacheTTL).
func (k *Keyring) Erase(ctx context.Context, q DB, customerID string) ([]string, error) {
	rows, err := q.Query(ctx, `DELETE FROM pii_data_keys WHERE customer_id = $1 RETURNING key_id::text`, customerID)
	if err != nil {
		return nil, fmt.Errorf("delete the data keys of a customer: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("delete the data keys of a customer: %w", err)
	}
	k.forget(customerID)
	for _, id := range ids {
		k.rememberID(id, nil)
	}
	return ids, nil
}

// wrappedKey is a row of pii_data_keys as read to unwrap it: key_id::text, wrapped_key, master_key_id.
type wrappedKey struct {
	id, master string
	wrapped    []byte
}

func scanWrapped(r pgx.CollectableRow) (wrappedKey, error) {
	var x wrappedKey
	return x, r.Scan(&x.id, &x.wrapped, &x.master)
}

func (k *Keyring) unwrap(id string, wrapped []byte, masterID string) (*Key, error) {
	m, ok := k.masterByID(masterID)
	if !ok {
		return nil, fmt.Errorf("data key %s was wrapped by master key %s, which this process does not have (PII_MASTER_KEY_FILE, PII_PREVIOUS_MASTER_KEY_FILES)", id, masterID)
	}
	raw, err := m.unwrap(id, wrapped)
	if err != nil {
		return nil, err
	}
	aead, err := newAEAD(raw)
	if err != nil {
		return nil, err
	}
	return &Key{id: id, aead: aead}, nil
}

func (k *Keyring) masterByID(id string) (MasterKey, bool) {
	if k.master.id == id {
		return k.master, true
	}
	for _, m := range k.previous {
		if m.id == id {
			return m, true
		}
	}
	return MasterKey{}, false
}

// --- the cache

func (k *Keyring) fresh(c cached) bool { return k.ttl > 0 && k.now().Sub(c.at) < k.ttl }

func (k *Keyring) cachedCustomer(customerID string) (*Key, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	c, ok := k.byCustomer[customerID]
	if !ok || !k.fresh(c) || c.key == nil {
		return nil, false
	}
	return c.key, true
}

func (k *Keyring) cachedID(id string) (*Key, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	c, ok := k.byID[id]
	if !ok || !k.fresh(c) {
		return nil, false
	}
	return c.key, true
}

func (k *Keyring) remember(customerID string, key *Key) {
	if k.ttl <= 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.trim()
	k.byCustomer[customerID] = cached{key: key, at: k.now()}
	k.byID[key.id] = cached{key: key, at: k.now()}
}

func (k *Keyring) rememberID(id string, key *Key) {
	if k.ttl <= 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.trim()
	k.byID[id] = cached{key: key, at: k.now()}
}

// trim starts the cache over when it is full (it refills from Postgres as keys are used).
func (k *Keyring) trim() {
	if len(k.byID) >= k.max || len(k.byCustomer) >= k.max {
		clear(k.byID)
		clear(k.byCustomer)
	}
}
