package pii

import (
	"time"

	"github.com/orders-oss/orders/internal/envconfig"
)

// Config is how a process finds its keys (docs/configuration.md, "Personal data").
type Config struct {
	// MasterKey wraps new data keys and unwraps them (PII_MASTER_KEY_FILE).
	MasterKey MasterKey
	// Previous unwrap the data keys not yet re-wrapped during a rotation (PII_PREVIOUS_MASTER_KEY_FILES).
	Previous []MasterKey
	// CacheTTL is how long a data key read is used without reading it again (PII_KEY_CACHE_TTL).
	CacheTTL time.Duration
}

// ReadConfig reads the keys' configuration, reporting problems on r: the master key file is required,
// and read at once (a wrong or unreadable file is a configuration error at start).
func ReadConfig(r *envconfig.Reader) Config {
	var c Config
	if path := r.Required("PII_MASTER_KEY_FILE"); path != "" {
		k, err := LoadMasterKey(path)
		r.Check(err == nil, "PII_MASTER_KEY_FILE", "%v", err)
		c.MasterKey = k
	}
	for _, path := range r.List("PII_PREVIOUS_MASTER_KEY_FILES", false) {
		k, err := LoadMasterKey(path)
		r.Check(err == nil, "PII_PREVIOUS_MASTER_KEY_FILES", "%v", err)
		c.Previous = append(c.Previous, k)
	}
	// Zero turns the cache off; at most a minute, so an erasure completes in reasonable time.
	c.CacheTTL = r.Duration("PII_KEY_CACHE_TTL", DefaultCacheTTL, 0, time.Minute)
	return c
}

// Keyring returns a keyring on db with this configuration.
func (c Config) Keyring(db DB) *Keyring {
	ttl := c.CacheTTL
	if ttl == 0 {
		ttl = -1 // off
	}
	return New(db, c.MasterKey, Options{Previous: c.Previous, CacheTTL: ttl})
}
