package state

import (
	"errors"
	"fmt"
)

// Error codes. They are strings rather than an enum so that they read well in
// logs and JSON, and they are few on purpose: each maps to one HTTP status.
const (
	// ENOTFOUND: the object, run or event asked for does not exist (any
	// more, for events removed by retention).
	ENOTFOUND = "not_found"
	// EINVALID: the request is malformed; retrying it unchanged fails again.
	EINVALID = "invalid"
	// ECONFLICT: the request lost a race (a stale resourceVersion, an object
	// that already exists) or the resource is held by someone else (a state
	// directory locked by another process). Re-read and retry.
	ECONFLICT = "conflict"
	// EUNAUTHORIZED: the caller may not do this.
	EUNAUTHORIZED = "unauthorized"
	// EUNAVAILABLE: something the server depends on does not answer now
	// (the Git remote, a BMC), or the server cannot do this in its
	// configuration. Retry later; the message names what failed.
	EUNAVAILABLE = "unavailable"
	// EINTERNAL: the server failed (I/O, a damaged directory, a bug). The
	// message is for operators and logs.
	EINTERNAL = "internal"
)

// Error is the one error type of the project. Code says what kind of failure it
// is, for programs; Message says which object was at fault and why, for people.
type Error struct {
	Code    string
	Message string
}

// Error implements the error interface.
func (e *Error) Error() string {
	return e.Code + ": " + e.Message
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, "" for a nil
// error and EINTERNAL for any other error: an error nobody classified is a
// failure of ours, not of the caller.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of the first *Error in err's chain, "" for
// a nil error and a generic text for any other error, so that unclassified
// internal details never reach an API client.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}
