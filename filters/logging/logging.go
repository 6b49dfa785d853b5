package logging

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	grpclogging "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"

	"github.com/manifold-grpc/manifold/pipeline"
)

// Filter writes one access-log record per call. It is a header-only filter:
// it notes the start of the call in its request header hook and logs in its
// response end hook, so a chain with it still reports that it needs no
// messages ([pipeline.Touch.NeedsMessages]). It is safe for concurrent use.
type Filter struct {
	msg     string
	headers []string
	levels  levels
	// Records go to out if it is set (New with [Config.Output]), else to
	// log or sink, exactly one of which is set.
	out  *output
	log  *slog.Logger
	sink grpclogging.Logger
}

// startKey holds the time a call reached the filter.
var startKey = pipeline.NewKey[time.Time]("logging.start")

// New returns an access-log filter for cfg that logs to a [slog.Logger]
// ([WithLogger]; default [slog.Default]), or, with [Config.Output], to
// that destination as JSON lines; the logger then only hears of failed
// writes. It fails if cfg is not valid or the output cannot be opened.
// Close it to write the records still buffered for an output.
func New(cfg Config, opts ...Option) (*Filter, error) {
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	f, err := newFilter(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Output == "" {
		f.log = logger(o.logger)
		return f, nil
	}
	interval := cfg.FlushInterval
	if interval == 0 {
		interval = DefaultFlushInterval
	}
	if f.out, err = openOutput(cfg.Output, interval, logger(o.logger)); err != nil {
		return nil, err
	}
	return f, nil
}

// Close writes the records buffered for [Config.Output] and closes it. It
// does nothing for a filter that logs to a logger. Calls that end after
// Close are not logged.
func (f *Filter) Close() error {
	if f.out == nil {
		return nil
	}
	return f.out.Close()
}

// NewWithLogger returns an access-log filter for cfg that hands its records
// to l, a go-grpc-middleware v2 logger, so that a team keeps the logger (and
// the adapter for zap, zerolog, logrus, …) it already uses. l gets the
// level as a [grpclogging.Level] (a [slog.Level]) and the attributes as
// flat key/value fields: groups become dotted keys (upstream.cluster,
// grpc.request.metadata.x-request-id), values are plain Go values, and the
// fan-out list is an [Upstreams].
func NewWithLogger(cfg Config, l grpclogging.Logger) (*Filter, error) {
	if l == nil {
		return nil, errors.New("logging: nil logger")
	}
	if cfg.Output != "" {
		return nil, errors.New("logging: output and a go-grpc-middleware logger are exclusive")
	}
	f, err := newFilter(cfg)
	if err != nil {
		return nil, err
	}
	f.sink = l
	return f, nil
}

func newFilter(cfg Config) (*Filter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("logging: %w", err)
	}
	lv, _ := parseLevels(cfg.Levels) // valid: checked above
	f := &Filter{msg: cfg.Message, headers: cfg.headerKeys(), levels: lv}
	if f.msg == "" {
		f.msg = DefaultMessage
	}
	return f, nil
}

// Name returns "logging".
func (*Filter) Name() string { return "logging" }

// OnRequestHeaders notes when the call started. It never fails the call.
func (f *Filter) OnRequestHeaders(_ context.Context, call *pipeline.Call) error {
	startKey.Set(call, time.Now())
	return nil
}

// OnResponseEnd logs the call. It sees the status as the filters after it
// left it, so put the access log first in the chain to log what the client
// receives. It never changes end.
func (f *Filter) OnResponseEnd(ctx context.Context, call *pipeline.Call, end *pipeline.End) {
	level := f.levels.of(end.Status.Code())
	if f.out != nil {
		if level >= outputLevel {
			f.writeRecord(ctx, call, end, time.Now(), level)
		}
		return
	}
	if f.log != nil && !f.log.Enabled(ctx, level) {
		return
	}
	now := time.Now()
	w := attrWriters.Get().(*attrWriter)
	f.writeFields(w, ctx, call, end, now)
	if f.log != nil {
		// The record goes to the handler directly, as slog's docs show
		// for wrappers: Logger.LogAttrs would also unwind the stack for
		// a source position, which the access log never reports and
		// which costs about as much as encoding half the record.
		r := slog.NewRecord(now, level, f.msg, 0)
		r.AddAttrs(w.attrs...)
		_ = f.log.Handler().Handle(ctx, r)
	} else {
		f.sink.Log(ctx, grpclogging.Level(level), f.msg, appendFields(make([]any, 0, 2*len(w.attrs)+8), "", w.attrs)...)
	}
	w.reset()
	attrWriters.Put(w)
}

// appendFields flattens attrs into go-grpc-middleware's alternating
// key/value fields: a group's attributes get its key and a dot as prefix.
func appendFields(dst []any, prefix string, attrs []slog.Attr) []any {
	for _, a := range attrs {
		v := a.Value.Resolve()
		if v.Kind() == slog.KindGroup {
			dst = appendFields(dst, prefix+a.Key+".", v.Group())
			continue
		}
		dst = append(dst, prefix+a.Key, v.Any())
	}
	return dst
}

// UsesCounters reports that the filter logs the server's message and byte
// counters, so that the server keeps them.
func (f *Filter) UsesCounters() bool { return true }

var (
	_ io.Closer                   = (*Filter)(nil)
	_ pipeline.RequestHeadersHook = (*Filter)(nil)
	_ pipeline.ResponseEndHook    = (*Filter)(nil)
	_ pipeline.CountersUser       = (*Filter)(nil)
)
