// Package secret keeps secrets out of logs and encrypts them at rest.
//
// A Value is a string that prints, logs and marshals as REDACTED.
package secret
