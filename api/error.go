package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tinkops/tinkops/api/client"
	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// Error codes the API adds to those of package state. Every code maps to one
// HTTP status in httpStatus.
const (
	// EFORBIDDEN: the caller is known but its role does not allow this.
	EFORBIDDEN = "forbidden"
	// ETOOLARGE: the request body exceeds the server's limit.
	ETOOLARGE = "too_large"
	// EUNAVAILABLE: the server cannot do this now or at all in this
	// configuration (not ready yet, no workflow engine, a Git remote or
	// BMC that does not answer); retry later.
	EUNAVAILABLE = state.EUNAVAILABLE
	// EMETHOD: the path exists but not with this method.
	EMETHOD = "method_not_allowed"
)

// httpStatus maps an error code to its HTTP status: the one place where
// codes become statuses.
func httpStatus(code string) int {
	switch code {
	case state.EINVALID:
		return http.StatusBadRequest
	case state.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case EFORBIDDEN:
		return http.StatusForbidden
	case state.ENOTFOUND:
		return http.StatusNotFound
	case EMETHOD:
		return http.StatusMethodNotAllowed
	case state.ECONFLICT:
		return http.StatusConflict
	case ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// grpcCode maps an error code to its gRPC status code, beside httpStatus
// so that both front doors classify an error alike.
func grpcCode(code string) codes.Code {
	switch code {
	case state.EINVALID:
		return codes.InvalidArgument
	case state.EUNAUTHORIZED:
		return codes.Unauthenticated
	case EFORBIDDEN:
		return codes.PermissionDenied
	case state.ENOTFOUND:
		return codes.NotFound
	case EMETHOD:
		return codes.Unimplemented
	case state.ECONFLICT:
		return codes.FailedPrecondition
	case ETOOLARGE:
		return codes.ResourceExhausted
	case EUNAVAILABLE:
		return codes.Unavailable
	}
	return codes.Internal
}

// GRPCError turns err into a gRPC status error with the code's status and
// the message a caller may see (internal errors keep their text out, as
// in HTTP responses). nil stays nil.
func GRPCError(err error) error {
	if err == nil {
		return nil
	}
	e := errorBody(err)
	return status.Error(grpcCode(e.Code), e.Message)
}

// Errorf returns an API error with a code and a message for the caller.
func Errorf(code, format string, args ...any) error {
	return &client.Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// invalid returns an EINVALID error listing every problem.
func invalid(details []client.Detail, format string, args ...any) error {
	return &client.Error{Code: state.EINVALID, Message: fmt.Sprintf(format, args...), Details: details}
}

// schemaDetails converts schema errors (positions refer to the request body).
func schemaDetails(list schema.ErrorList) []client.Detail {
	out := make([]client.Detail, 0, len(list))
	for _, e := range list {
		out = append(out, client.Detail{Path: e.Path, Line: e.Line, Column: e.Column, Object: e.Object, Message: e.Message})
	}
	return out
}

// errorBody classifies err for a response. Internal errors keep their text
// out of the response: it may name files and paths of the server.
func errorBody(err error) *client.Error {
	var ae *client.Error
	if errors.As(err, &ae) {
		if ae.Code == state.EINTERNAL {
			return &client.Error{Code: state.EINTERNAL, Message: internalMessage}
		}
		return ae
	}
	code := state.ErrorCode(err)
	if code == state.EINTERNAL || code == "" {
		return &client.Error{Code: state.EINTERNAL, Message: internalMessage}
	}
	return &client.Error{Code: code, Message: state.ErrorMessage(err)}
}

const internalMessage = "internal error; the server's log has the details"

// writeError answers with the error shape; the caller logs internal errors.
func writeError(w http.ResponseWriter, e *client.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if e.Code == state.EUNAUTHORIZED {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tink-server"`)
	}
	w.WriteHeader(httpStatus(e.Code))
	_ = json.NewEncoder(w).Encode(client.ErrorBody{Error: e})
}
