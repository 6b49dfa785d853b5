package main

import (
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
)

// stats counts the calls' outcomes; safe for concurrent use.
type stats struct {
	calls  atomic.Int64
	failed atomic.Int64 // calls that did not end OK
	lost   atomic.Int64

	mu        sync.Mutex
	kinds     [numKinds]kindStats
	anomalies int
	examples  []string // the first anomalies and losses
}

// kindStats are the outcomes of one kind of call.
type kindStats struct {
	Calls int `json:"calls"`
	// Codes counts the calls by status code.
	Codes map[string]int `json:"codes"`
	// Variants counts them by variant, then code.
	Variants map[string]map[string]int `json:"variants"`
	// Items received, lost, and anomalies found.
	Received int64 `json:"items_received"`
	// ErrorItems are fan-out members' error items received.
	ErrorItems int64 `json:"error_items"`
	Lost       int64 `json:"items_lost"`
	Anomalies  int   `json:"anomalies"`
}

const maxExamples = 20

func newStats() *stats {
	st := &stats{}
	for i := range st.kinds {
		st.kinds[i] = kindStats{Codes: map[string]int{}, Variants: map[string]map[string]int{}}
	}
	return st
}

func (st *stats) record(o outcome) {
	st.calls.Add(1)
	if o.code != codes.OK {
		st.failed.Add(1)
	}
	st.lost.Add(int64(o.lost))
	st.mu.Lock()
	defer st.mu.Unlock()
	k := &st.kinds[o.kind]
	k.Calls++
	code := codeName(o.code)
	k.Codes[code]++
	v := o.variant.String()
	if k.Variants[v] == nil {
		k.Variants[v] = map[string]int{}
	}
	k.Variants[v][code]++
	k.Received += int64(o.received)
	k.ErrorItems += int64(o.errorItems)
	k.Lost += int64(o.lost)
	k.Anomalies += len(o.anomalies)
	st.anomalies += len(o.anomalies)
	for _, a := range o.lostNotes {
		st.example(o, "lost: "+a)
	}
	for _, a := range o.anomalies {
		st.example(o, "anomaly: "+a)
	}
}

func (st *stats) example(o outcome, what string) {
	if len(st.examples) < maxExamples {
		st.examples = append(st.examples, o.kind.String()+" ("+o.variant.String()+", "+codeName(o.code)+"): "+what)
	}
}

// totals returns the calls finished, those that failed, and the items
// lost so far.
func (st *stats) totals() (calls, failed, lost int64) {
	return st.calls.Load(), st.failed.Load(), st.lost.Load()
}

func (st *stats) anomalyCount() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.anomalies
}

// codeName is a code as gRPC's documents spell it: DEADLINE_EXCEEDED.
func codeName(c codes.Code) string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return c.String()
}

var codeNames = [...]string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}
