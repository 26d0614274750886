// Package outcome holds the stable codes of the receiver's answers: each is
// the code of the answer's problem detail, the outcome of its audit record
// and a label of the request metrics. Both storage and HTTP code import it,
// so it imports nothing.
package outcome

// Receiver outcomes, in the contract's order.
const (
	Accepted       = "accepted"
	Duplicate      = "duplicate"
	NotFound       = "not_found"
	Disabled       = "disabled"
	TooLarge       = "too_large"
	IPDenied       = "ip_denied"
	RateLimited    = "rate_limited"
	BadSignature   = "bad_signature"
	InvalidPayload = "invalid_payload"
	SchemaMismatch = "schema_mismatch"
	Internal       = "error"
)

// All lists every receiver outcome, in the contract's order.
var All = []string{Accepted, Duplicate, NotFound, Disabled, TooLarge, IPDenied, RateLimited, BadSignature, InvalidPayload, SchemaMismatch, Internal}

// Rejected reports whether a request with outcome o was refused, as
// opposed to answered 200 (accepted, or a duplicate of an accepted one).
func Rejected(o string) bool { return o != Accepted && o != Duplicate }
