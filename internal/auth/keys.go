package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// KeySet is the JWKS tokens are verified against, loaded from a URL (AUTH_JWKS_URL) or a file
// (AUTH_JWKS_FILE) and kept fresh: loaded again every Refresh, and at once (at most every MinRefresh)
// when a token names a key id the set does not hold, which is how a key rotation at the issuer shows
// up. A failed load keeps the last good set.
type KeySet struct {
	source     string
	load       func(ctx context.Context) ([]byte, error)
	refresh    time.Duration
	minRefresh time.Duration
	now        func() time.Time

	mu          sync.Mutex // one load at a time; guards attemptedAt and lastErr
	set         atomic.Pointer[jose.JSONWebKeySet]
	gen         atomic.Uint64
	loadedAt    atomic.Int64 // unix nanoseconds of the last good load
	attemptedAt time.Time
	lastErr     error
}

// Refresh intervals unless configured.
const (
	DefaultRefresh    = 15 * time.Minute
	DefaultMinRefresh = 30 * time.Second
)

// maxJWKS bounds a JWKS document.
const maxJWKS = 1 << 20

// NewFileKeySet reads the JWKS from a file.
func NewFileKeySet(path string, refresh, minRefresh time.Duration) *KeySet {
	return newKeySet("file "+path, func(context.Context) ([]byte, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return io.ReadAll(io.LimitReader(f, maxJWKS))
	}, refresh, minRefresh)
}

// NewURLKeySet fetches the JWKS from url with client (a client with a 10 s timeout when nil).
func NewURLKeySet(url string, client *http.Client, refresh, minRefresh time.Duration) *KeySet {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	return newKeySet(url, func(ctx context.Context) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json")
		res, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s", url, res.Status)
		}
		return io.ReadAll(io.LimitReader(res.Body, maxJWKS))
	}, refresh, minRefresh)
}

// NewStaticKeySet holds a fixed set (tests, benchmarks).
func NewStaticKeySet(set jose.JSONWebKeySet) *KeySet {
	raw, _ := json.Marshal(set)
	return newKeySet("static", func(context.Context) ([]byte, error) { return raw, nil }, time.Hour, time.Hour)
}

func newKeySet(source string, load func(context.Context) ([]byte, error), refresh, minRefresh time.Duration) *KeySet {
	if refresh <= 0 {
		refresh = DefaultRefresh
	}
	if minRefresh <= 0 {
		minRefresh = DefaultMinRefresh
	}
	return &KeySet{source: source, load: load, refresh: refresh, minRefresh: minRefresh, now: time.Now}
}

// Generation changes whenever a load brings a different key set.
func (ks *KeySet) Generation() uint64 { return ks.gen.Load() }

// Ready loads the set when it has none yet and reports whether one is held.
func (ks *KeySet) Ready(ctx context.Context) error {
	if ks.set.Load() != nil {
		return nil
	}
	ks.reload(ctx, force)
	if ks.set.Load() == nil {
		ks.mu.Lock()
		defer ks.mu.Unlock()
		return fmt.Errorf("%w: %s: %v", ErrKeysUnavailable, ks.source, ks.lastErr)
	}
	return nil
}

// Lookup returns the public key that verifies a token signed with alg under key id kid. A token
// without a kid is accepted only when the set holds exactly one key.
func (ks *KeySet) Lookup(ctx context.Context, kid string, alg jose.SignatureAlgorithm) (any, error) {
	set := ks.set.Load()
	switch {
	case set == nil:
		// Nothing to go on with: wait for a load in progress (the first requests after a start all
		// arrive here at once) rather than refuse while it runs.
		ks.reload(ctx, wait)
		set = ks.set.Load()
	case ks.now().Sub(time.Unix(0, ks.loadedAt.Load())) > ks.refresh:
		ks.reload(ctx, try)
		set = ks.set.Load()
	}
	if set == nil {
		return nil, ErrKeysUnavailable
	}
	k, ok := find(set, kid)
	if !ok && kid != "" {
		// Perhaps the issuer rotated its keys: look again, at most every minRefresh.
		ks.reload(ctx, try)
		if set = ks.set.Load(); set != nil {
			k, ok = find(set, kid)
		}
	}
	if !ok {
		if kid == "" {
			return nil, invalid("the token has no kid and the key set holds more than one key")
		}
		return nil, invalid("no key with kid %q", kid)
	}
	return usableKey(k, alg)
}

func find(set *jose.JSONWebKeySet, kid string) (jose.JSONWebKey, bool) {
	if kid == "" {
		if len(set.Keys) == 1 {
			return set.Keys[0], true
		}
		return jose.JSONWebKey{}, false
	}
	for _, k := range set.Keys {
		if k.KeyID == kid {
			return k, true
		}
	}
	return jose.JSONWebKey{}, false
}

// How reload goes about a load.
type reloadMode int

const (
	// try: unless another request is loading or the last attempt was less than minRefresh ago; a
	// request with a set goes on with it.
	try reloadMode = iota
	// wait: as try, but wait for a load in progress (a request without any set).
	wait
	// force: wait for a load in progress, and load whatever minRefresh says (a readiness probe).
	force
)

// reload loads the set again as mode says.
func (ks *KeySet) reload(ctx context.Context, mode reloadMode) {
	if mode == try {
		if !ks.mu.TryLock() {
			return // another request is loading; this one goes on with the set it has
		}
	} else {
		ks.mu.Lock()
	}
	defer ks.mu.Unlock()
	now := ks.now()
	if mode != force && !ks.attemptedAt.IsZero() && now.Sub(ks.attemptedAt) < ks.minRefresh {
		return
	}
	ks.attemptedAt = now
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	raw, err := ks.load(ctx)
	if err == nil {
		var set *jose.JSONWebKeySet
		if set, err = parseJWKS(raw); err == nil {
			old := ks.set.Load()
			if old == nil || !sameKeys(old, set) {
				ks.gen.Add(1)
			}
			ks.set.Store(set)
			ks.loadedAt.Store(now.UnixNano())
			ks.lastErr = nil
			return
		}
	}
	ks.lastErr = err
}

// parseJWKS keeps the public signing keys of a JWKS document and refuses one without any.
func parseJWKS(raw []byte) (*jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	out := &jose.JSONWebKeySet{}
	for _, k := range set.Keys {
		if !k.Valid() || !k.IsPublic() {
			continue // a private key has no business in a published set; it is never used
		}
		out.Keys = append(out.Keys, k)
	}
	if len(out.Keys) == 0 {
		return nil, errors.New("JWKS: no public key")
	}
	return out, nil
}

func sameKeys(a, b *jose.JSONWebKeySet) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
