// Package secret keeps secrets out of logs and encrypts them at rest.
//
// A Value is a string that prints, logs and marshals as REDACTED. A Keyring
// seals a secret with AES-256-GCM before it is stored and opens it when it
// is read back. A sealed value is ASCII text, safe in JSON and SQL:
//
//	sealed:v1:<key id>:<base64url, no padding, of nonce || ciphertext || tag>
//
// The nonce is 12 random bytes drawn for every seal. The key id is the first
// 8 hex digits of a SHA-256 over a fixed label and the key, so it names the
// key without revealing it. The text before the payload ("sealed:v1:<key
// id>:") and the context given by the caller (for example
// "trigger/42/hmac.secret") are authenticated as additional data: a sealed
// value copied to another row or field, or relabelled with another key id,
// does not open.
//
// Keys come from INLET_SECRET_KEY, or a key file in the data directory: one
// or more 32-byte keys written in base64 or hex and separated by commas. The
// first key seals and every key opens. To rotate, put a new key first and
// keep the old one after it, restart, re-seal every stored value (Current
// tells which still need it), then drop the old key.
package secret
