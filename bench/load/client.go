package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/manifold-grpc/manifold/bench/internal/procfs"
)

// Full method names of the BenchmarkService.
const (
	methodUnary      = "/grpc.testing.BenchmarkService/UnaryCall"
	methodStreaming  = "/grpc.testing.BenchmarkService/StreamingCall"
	methodFromServer = "/grpc.testing.BenchmarkService/StreamingFromServer"
)

// bytesCodec is the client's codec: it sends pre-encoded request bytes
// (*[]byte) and only counts the bytes of a response (*int), so that the
// client's cost is the same whatever the target, and fan-out answers, whose
// layout differs from a SimpleResponse, need no decoding. The request bytes
// are shared and never written, so one slice serves every call.
type bytesCodec struct{}

func (bytesCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("bytesCodec: cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
}

func (bytesCodec) Unmarshal(data mem.BufferSlice, v any) error {
	n, ok := v.(*int)
	if !ok {
		return fmt.Errorf("bytesCodec: cannot unmarshal into %T", v)
	}
	*n = data.Len()
	return nil
}

// Name is empty: the calls go out as plain "application/grpc", which every
// server reads as protobuf.
func (bytesCodec) Name() string { return "" }

var _ encoding.CodecV2 = bytesCodec{}

var codecOpt = grpc.ForceCodecV2(bytesCodec{})

var (
	pingPongDesc   = &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}
	fromServerDesc = &grpc.StreamDesc{ServerStreams: true}
)

// encodedRequest returns the wire bytes of a SimpleRequest carrying reqSize
// bytes and asking for respSize, and the size of one SimpleResponse the
// backend answers with.
func encodedRequest(reqSize, respSize int) ([]byte, int) {
	req, err := proto.Marshal(&testpb.SimpleRequest{
		ResponseType: testpb.PayloadType_COMPRESSABLE,
		ResponseSize: int32(respSize),
		Payload:      &testpb.Payload{Body: make([]byte, reqSize)},
	})
	if err != nil {
		panic(err)
	}
	return req, proto.Size(&testpb.SimpleResponse{Payload: &testpb.Payload{Body: make([]byte, respSize)}})
}

// dial opens one client connection to addr.
func dial(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// runResult is one measured run of one scenario against one target.
type runResult struct {
	Scenario string `json:"scenario"`
	Target   string `json:"target"`
	Repeat   int    `json:"repeat"`
	// Order is the target's position in this repeat's interleaved order.
	Order   int     `json:"order"`
	Ops     int64   `json:"ops"`
	Errors  int64   `json:"errors"`
	Seconds float64 `json:"seconds"`
	// OpsPerSec is operations per second: calls, message round trips, or
	// fan-out operations (see the scenario's unit).
	OpsPerSec float64 `json:"ops_per_sec"`
	P50us     float64 `json:"p50_us"`
	P99us     float64 `json:"p99_us"`
	// ProxyCPUSeconds is the proxy process's user+system CPU time during
	// the measured window; CPUPer10k the same per 10,000 operations.
	ProxyCPUSeconds float64 `json:"proxy_cpu_seconds,omitempty"`
	CPUPer10k       float64 `json:"proxy_cpu_seconds_per_10k,omitempty"`
	// PeakRSSKiB is the proxy's VmHWM at the end of the window (reset at
	// its start when the kernel allows).
	PeakRSSKiB int64  `json:"proxy_peak_rss_kib,omitempty"`
	FirstError string `json:"first_error,omitempty"`
}

// measurement is the window in which operations count: those that start
// at or after start and end by end (unix nanoseconds).
type measurement struct {
	start, end atomic.Int64
	stopped    atomic.Bool // workers finish their operation and exit
	errors     atomic.Int64
	firstErr   atomic.Pointer[string]
}

func (m *measurement) fail(err error) {
	m.errors.Add(1)
	s := err.Error()
	m.firstErr.CompareAndSwap(nil, &s)
}

// maxErrors ends a run whose target fails every call, instead of
// spinning.
const maxErrors = 1000

// runLoad runs one scenario against one target: a closed loop of n
// operations in flight over one connection per address, an unmeasured
// warm-up, then the measured window.
func runLoad(ctx context.Context, sc scenario, tgt *target, s *settings) (runResult, error) {
	res := runResult{Scenario: sc.Name, Target: tgt.Name}
	inflight := sc.InFlight
	if inflight == 0 {
		inflight = s.InFlight
	}
	req, respSize := encodedRequest(sc.ReqSize, sc.RespSize)

	conns := make([]*grpc.ClientConn, len(tgt.addrs))
	for i, a := range tgt.addrs {
		c, err := dial(a)
		if err != nil {
			return res, err
		}
		defer c.Close()
		conns[i] = c
	}

	// Every call of the run ends by this deadline, whatever happens.
	if tgt.md != nil {
		ctx = metadata.NewOutgoingContext(ctx, tgt.md)
	}
	ctx, cancel := context.WithTimeout(ctx, s.Warmup+s.Duration+30*time.Second)
	defer cancel()

	m := &measurement{}
	lats := make([][]int64, inflight)
	var wg sync.WaitGroup
	for w := range inflight {
		op, closeOp, err := newOp(ctx, sc, tgt, conns, w, req, respSize, s.StreamMsgs)
		if err != nil {
			m.stopped.Store(true)
			wg.Wait()
			return res, fmt.Errorf("%s/%s: %w", sc.Name, tgt.Name, err)
		}
		wg.Go(func() {
			defer closeOp()
			var l []int64
			for !m.stopped.Load() && ctx.Err() == nil {
				t0 := time.Now().UnixNano()
				err := op()
				t1 := time.Now().UnixNano()
				if err != nil {
					m.fail(err)
					if m.errors.Load() > maxErrors {
						return
					}
					continue
				}
				if st := m.start.Load(); st != 0 && t0 >= st && t1 <= m.end.Load() {
					l = append(l, t1-t0)
				}
			}
			lats[w] = l
		})
	}

	sleep(ctx, s.Warmup)
	var cpu0 float64
	if tgt.p != nil {
		cpu0, _ = procfs.CPUSeconds(tgt.p.Pid)
		resetPeak(tgt.p.Pid)
	}
	t0 := time.Now()
	m.end.Store(t0.Add(s.Duration).UnixNano())
	m.start.Store(t0.UnixNano())
	sleep(ctx, s.Duration)
	elapsed := time.Since(t0)
	if tgt.p != nil {
		cpu1, err := procfs.CPUSeconds(tgt.p.Pid)
		if err != nil {
			return res, fmt.Errorf("%s: %w", tgt.p.Name, err)
		}
		res.ProxyCPUSeconds = cpu1 - cpu0
		mem, _ := procfs.Mem(tgt.p.Pid)
		res.PeakRSSKiB = mem.PeakKiB
	}
	m.stopped.Store(true)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if tgt.p != nil {
		if err := tgt.p.Alive(); err != nil {
			return res, err
		}
	}

	var all []int64
	for _, l := range lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	res.Ops = int64(len(all))
	res.Errors = m.errors.Load()
	if p := m.firstErr.Load(); p != nil {
		res.FirstError = *p
	}
	res.Seconds = elapsed.Seconds()
	if res.Ops == 0 {
		return res, fmt.Errorf("%s/%s: no operation completed (%d errors, first: %s)", sc.Name, tgt.Name, res.Errors, res.FirstError)
	}
	res.OpsPerSec = float64(res.Ops) / res.Seconds
	res.P50us = float64(all[len(all)/2]) / 1e3
	res.P99us = float64(all[min(len(all)-1, len(all)*99/100)]) / 1e3
	if tgt.p != nil {
		res.CPUPer10k = res.ProxyCPUSeconds / float64(res.Ops) * 1e4
	}
	return res, nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// newOp returns worker w's operation and what closes it. An operation is
// one call, one ping-pong round trip, or, with tgt.calls > 1, that many
// calls made at once by helper goroutines (one per extra call, kept for the
// whole run so that no goroutine starts per operation).
func newOp(ctx context.Context, sc scenario, tgt *target, conns []*grpc.ClientConn, w int, req []byte, respSize, streamMsgs int) (func() error, func(), error) {
	one := func(i int) (func() error, func(), error) {
		conn := conns[i%len(conns)]
		return newCall(ctx, sc.kind, conn, req, respSize*tgt.answers, streamMsgs*tgt.answers)
	}
	if tgt.calls <= 1 {
		return one(w)
	}
	ops := make([]func() error, tgt.calls)
	closers := make([]func(), tgt.calls)
	for i := range tgt.calls {
		op, c, err := one(i)
		if err != nil {
			for _, c := range closers[:i] {
				c()
			}
			return nil, nil, err
		}
		ops[i], closers[i] = op, c
	}
	start := make([]chan struct{}, tgt.calls)
	done := make(chan error, tgt.calls)
	for i := 1; i < tgt.calls; i++ {
		start[i] = make(chan struct{})
		go func() {
			for range start[i] {
				done <- ops[i]()
			}
		}()
	}
	op := func() error {
		for i := 1; i < tgt.calls; i++ {
			start[i] <- struct{}{}
		}
		errs := []error{ops[0]()}
		for i := 1; i < tgt.calls; i++ {
			errs = append(errs, <-done)
		}
		return errors.Join(errs...)
	}
	closeAll := func() {
		for i := 1; i < tgt.calls; i++ {
			close(start[i])
		}
		for _, c := range closers {
			c()
		}
	}
	return op, closeAll, nil
}

// newCall returns one call of kind on conn. minBytes is the smallest answer
// a unary call accepts; msgs is the number of messages a server stream
// must deliver.
func newCall(ctx context.Context, kind callKind, conn *grpc.ClientConn, req []byte, minBytes, msgs int) (func() error, func(), error) {
	var n int
	switch kind {
	case kindUnary:
		return func() error {
			if err := conn.Invoke(ctx, methodUnary, &req, &n, codecOpt); err != nil {
				return err
			}
			if n < minBytes {
				return fmt.Errorf("answer of %d bytes, want at least %d", n, minBytes)
			}
			return nil
		}, func() {}, nil
	case kindServer:
		return func() error {
			cs, err := conn.NewStream(ctx, fromServerDesc, methodFromServer, codecOpt)
			if err != nil {
				return err
			}
			if err := cs.SendMsg(&req); err != nil && err != io.EOF {
				return err
			}
			if err := cs.CloseSend(); err != nil {
				return err
			}
			got := 0
			for {
				err := cs.RecvMsg(&n)
				if err == io.EOF {
					break
				}
				if err != nil {
					return err
				}
				got++
			}
			if got != msgs {
				return fmt.Errorf("stream of %d messages, want %d", got, msgs)
			}
			return nil
		}, func() {}, nil
	case kindPingPong:
		// One long-lived stream per worker, reopened after a failure.
		sctx, cancel := context.WithCancel(ctx)
		var cs grpc.ClientStream
		open := func() error {
			var err error
			cs, err = conn.NewStream(sctx, pingPongDesc, methodStreaming, codecOpt)
			return err
		}
		if err := open(); err != nil {
			cancel()
			return nil, nil, err
		}
		op := func() error {
			if cs == nil {
				if err := open(); err != nil {
					return err
				}
			}
			err := cs.SendMsg(&req)
			if err == nil {
				err = cs.RecvMsg(&n)
			}
			if err != nil {
				cs = nil
				return err
			}
			if n < minBytes {
				return fmt.Errorf("answer of %d bytes, want at least %d", n, minBytes)
			}
			return nil
		}
		closeFn := func() {
			if cs != nil && cs.CloseSend() == nil {
				_ = cs.RecvMsg(&n) // io.EOF: the call ended cleanly
			}
			cancel()
		}
		return op, closeFn, nil
	}
	return nil, nil, fmt.Errorf("unknown call kind %d", kind)
}
