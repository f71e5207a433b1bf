package controller

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is a Neutron-style API error: it is sent as
// {"NeutronError": {"type": Type, "message": Message, "detail": ""}} with
// HTTP status Status.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Type is Neutron's exception name (e.g. "NetworkNotFound").
	Type string
	// Message says what is wrong and, where it helps, what to do.
	Message string
}

// Error implements error.
func (e *Error) Error() string { return e.Type + ": " + e.Message }

func newErr(status int, typ, format string, a ...any) *Error {
	return &Error{Status: status, Type: typ, Message: fmt.Sprintf(format, a...)}
}

func badRequest(format string, a ...any) *Error {
	return newErr(http.StatusBadRequest, "HTTPBadRequest", format, a...)
}

func invalidInput(attr, format string, a ...any) *Error {
	return newErr(http.StatusBadRequest, "InvalidInput", "Invalid input for %s. Reason: %s.", attr, fmt.Sprintf(format, a...))
}

func notFound(kind, id string) *Error {
	return newErr(http.StatusNotFound, kind+"NotFound", "%s %s could not be found.", kind, id)
}

// errConflict reports that an optimistic transaction lost too many races in
// a row; the client should retry.
var errConflict = newErr(http.StatusConflict, "Conflict",
	"the request lost too many concurrent-update races; retry it")

// asError turns any error into an *Error (internal errors become 500).
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return newErr(http.StatusInternalServerError, "HTTPInternalServerError", "%v", err)
}
