package logging

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// DefaultFlushInterval is how long a record written to [Config.Output] may
// wait in the buffer by default; Envoy's file access logs use the same.
const DefaultFlushInterval = time.Second

// outputBufferSize is how many bytes of records wait before they are
// written at once.
const outputBufferSize = 64 << 10

// output is a buffered access-log destination. Writing every record as the
// call ends costs a system call per call, more than building the record;
// batching them costs at most flushInterval of delay and, if the process
// dies, the records of that interval.
//
// Every write to the file holds whole records, so that two outputs on one
// file (the old and new filter during a config reload) never interleave
// within a line: files are opened with O_APPEND.
type output struct {
	name string
	log  *slog.Logger // reports write failures, never records

	mu     sync.Mutex
	w      io.Writer
	closer io.Closer // nil for stdout and stderr
	buf    []byte
	failed bool // the last write failed; reported once until one succeeds
	closed bool

	stop chan struct{}
	done chan struct{}
}

// openOutput opens name ("stdout", "stderr" or a file path) and starts the
// flusher.
func openOutput(name string, interval time.Duration, log *slog.Logger) (*output, error) {
	o := &output{name: name, log: log, buf: make([]byte, 0, outputBufferSize), stop: make(chan struct{}), done: make(chan struct{})}
	switch name {
	case "stdout":
		o.w = os.Stdout
	case "stderr":
		o.w = os.Stderr
	default:
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, fmt.Errorf("logging: output: %w", err)
		}
		o.w, o.closer = f, f
	}
	go o.flushEvery(interval)
	return o, nil
}

// Write buffers one record: writeRecord hands each record over with one
// call, which keeps records whole in the file.
func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return 0, errors.New("logging: output closed")
	}
	if len(o.buf)+len(p) > cap(o.buf) {
		o.flushLocked()
	}
	if len(p) > cap(o.buf) {
		o.writeLocked(p)
		return len(p), nil
	}
	o.buf = append(o.buf, p...)
	return len(p), nil
}

func (o *output) flushEvery(interval time.Duration) {
	defer close(o.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			o.mu.Lock()
			o.flushLocked()
			o.mu.Unlock()
		case <-o.stop:
			return
		}
	}
}

func (o *output) flushLocked() {
	if len(o.buf) > 0 {
		o.writeLocked(o.buf)
		o.buf = o.buf[:0]
	}
}

// writeLocked writes p. A failure drops p (the records cannot wait
// forever) and is reported once until a write succeeds again.
func (o *output) writeLocked(p []byte) {
	_, err := o.w.Write(p)
	switch {
	case err != nil && !o.failed:
		o.failed = true
		o.log.Error("access log write failed; records are lost until it succeeds",
			slog.String("output", o.name), slog.String("error", err.Error()))
	case err == nil && o.failed:
		o.failed = false
		o.log.Info("access log writes succeed again", slog.String("output", o.name))
	}
}

// Close writes what is buffered, stops the flusher and closes the file.
func (o *output) Close() error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	o.flushLocked()
	o.mu.Unlock()
	close(o.stop)
	<-o.done
	if o.closer != nil {
		return o.closer.Close()
	}
	return nil
}
