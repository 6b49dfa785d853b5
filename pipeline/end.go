package pipeline

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// End is how a call ends, as [ResponseEndHook] sees it: the status the client
// will receive and the trailers sent with it. Hooks may replace either.
type End struct {
	// Status is the final status; never nil (codes.OK on success).
	Status *status.Status
	// Trailer is the trailing metadata; hooks may add, change or remove
	// keys. It is never nil.
	Trailer metadata.MD
}

// Err returns the status as an error, nil for OK.
func (e *End) Err() error { return e.Status.Err() }

var okStatus = status.New(codes.OK, "")

// statusOf converts a call's error into a status: nil is OK, context errors
// become Canceled or DeadlineExceeded, other non-status errors Unknown.
func statusOf(err error) *status.Status {
	if err == nil {
		return okStatus
	}
	if s, ok := status.FromError(err); ok {
		return s
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err)
	}
	return status.New(codes.Unknown, err.Error())
}

// LocalReply returns an error that ends a call with st and sends trailer
// with it: the local reply of a filter that has trailers to add, such as a
// retry-after hint. Response end hooks of earlier filters see the trailers
// in [End.Trailer] and may change them, as they do an upstream's. A plain
// status error is a local reply without trailers.
func LocalReply(st *status.Status, trailer metadata.MD) error {
	return &localReply{st: st, trailer: trailer}
}

type localReply struct {
	st      *status.Status
	trailer metadata.MD
}

func (e *localReply) Error() string {
	return "rpc error: code = " + e.st.Code().String() + " desc = " + e.st.Message()
}

// GRPCStatus makes the reply a status error for grpc-go and [status.FromError].
func (e *localReply) GRPCStatus() *status.Status { return e.st }

// ReplyTrailer returns the trailers err still carries (see [LocalReply]):
// whoever ends the call with err sends them.
func ReplyTrailer(err error) metadata.MD {
	if err == nil {
		return nil // most calls: without errors.As, whose target escapes
	}
	var lr *localReply
	if errors.As(err, &lr) {
		return lr.trailer
	}
	return nil
}
