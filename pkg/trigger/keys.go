package trigger

import (
	"crypto/sha256"
	"time"
)

// Roles of a webhook key.
const (
	// RolePrimary is the trigger's main key, the one regenerate replaces.
	RolePrimary = "primary"
	// RoleExtra is a key made through the API, with a label of its own.
	RoleExtra = "extra"
	// RoleReplaced is a former primary key still working during the grace
	// period of a regenerate.
	RoleReplaced = "replaced"
)

// MaxLiveKeys is how many live keys (primary, extra and replaced ones still
// in their grace period) a trigger may hold.
const MaxLiveKeys = 10

// PrimaryLabel is the label of every primary key.
const PrimaryLabel = "primary"

// WebhookKey is one of a trigger's keys, each its own URL.
type WebhookKey struct {
	ID        int64
	TriggerID int64
	Label     string
	// Key is the key itself, shown to operators only.
	Key       Key
	Role      string
	CreatedAt time.Time
	// ExpiresAt is when a replaced or expiring key stops working.
	ExpiresAt *time.Time
	// LastUsedAt is the last request that named the key, if any.
	LastUsedAt *time.Time
}

// Primary reports whether k is its trigger's primary key.
func (k WebhookKey) Primary() bool { return k.Role == RolePrimary }

// HashKey returns what keys are looked up by: the SHA-256 of the key. A key
// carries 190 random bits, so its hash cannot be reversed by guessing.
func HashKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}
