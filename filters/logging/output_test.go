package logging_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	grpclogging "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/logging"
	"github.com/manifold-grpc/manifold/pipeline"
)

// endCall runs the filter's two hooks for one call ending with code.
func endCall(f *logging.Filter, method string, code codes.Code) {
	c := &pipeline.Call{Method: method, Inbound: metadata.MD{}, Header: metadata.MD{}}
	_ = f.OnRequestHeaders(context.Background(), c)
	f.OnResponseEnd(context.Background(), c, &pipeline.End{Status: status.New(code, ""), Trailer: metadata.MD{}})
}

// readRecords parses every line of path as a JSON record.
func readRecords(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var recs []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %d is not one JSON record: %v: %q", len(recs)+1, err, sc.Text())
		}
		recs = append(recs, r)
	}
	return recs
}

// TestOutputFile: with output, records go to the file as JSON lines, not
// to the logger; levels still drop records below info; Close writes what
// is buffered; the file is appended to, never truncated.
func TestOutputFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	if err := os.WriteFile(path, []byte(`{"msg":"earlier"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var process bytes.Buffer
	f, err := logging.New(logging.Config{Output: path, FlushInterval: time.Hour, Levels: map[string]string{"NOT_FOUND": "debug"}},
		logging.WithLogger(slog.New(slog.NewJSONHandler(&process, nil))))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		endCall(f, "/pkg.S/M", codes.OK)
		if i%10 == 0 {
			endCall(f, "/pkg.S/Missing", codes.NotFound)
		}
	}
	endCall(f, "/pkg.S/M", codes.Unavailable)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	endCall(f, "/pkg.S/After", codes.OK) // after Close: dropped, no panic

	recs := readRecords(t, path)
	if len(recs) != 1+100+1 {
		t.Fatalf("%d records in the file, want the earlier one, 100 OK and 1 UNAVAILABLE (NOT_FOUND is at debug)", len(recs))
	}
	if recs[0]["msg"] != "earlier" {
		t.Errorf("the file was not appended to: first record %v", recs[0])
	}
	last := recs[len(recs)-1]
	if last["grpc.code"] != "Unavailable" || last["level"] != "ERROR" || last["msg"] != logging.DefaultMessage {
		t.Errorf("last record = %v", last)
	}
	if process.Len() != 0 {
		t.Errorf("the process logger got %q, want nothing", process.String())
	}
}

// TestOutputFlushes: buffered records reach the file without Close, once
// the flush interval passes.
func TestOutputFlushes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	f, err := logging.New(logging.Config{Output: path, FlushInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	endCall(f, "/pkg.S/M", codes.OK)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if b, _ := os.ReadFile(path); bytes.Count(b, []byte("\n")) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the record never reached the file")
		}
	}
}

// TestOutputWholeLines: two filters appending to one file at once (the old
// and the new filter during a config reload), with more records than the
// buffer holds, never split a record: every line is one JSON record, and
// none is lost.
func TestOutputWholeLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	// A long message makes records big, so buffers fill and are written
	// many times, as well as a record larger than the buffer.
	const workers, calls = 4, 400
	var wg sync.WaitGroup
	for i := range 2 {
		f, err := logging.New(logging.Config{Output: path, Message: strings.Repeat("m", 1000*(i+1))})
		if err != nil {
			t.Fatal(err)
		}
		for range workers {
			wg.Go(func() {
				for range calls {
					endCall(f, "/pkg.S/M", codes.OK)
				}
			})
		}
		defer func() {
			wg.Wait()
			if err := f.Close(); err != nil {
				t.Error(err)
			}
		}()
	}
	huge, err := logging.New(logging.Config{Output: path, Message: strings.Repeat("h", 100<<10)})
	if err != nil {
		t.Fatal(err)
	}
	endCall(huge, "/pkg.S/Huge", codes.OK)
	if err := huge.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	t.Cleanup(func() {
		if n := len(readRecords(t, path)); n != 2*workers*calls+1 {
			t.Errorf("%d records, want %d", n, 2*workers*calls+1)
		}
	})
}

// TestOutputErrors: an output that cannot be opened fails New, naming it;
// a go-grpc-middleware logger and an output are exclusive.
func TestOutputErrors(t *testing.T) {
	_, err := logging.New(logging.Config{Output: filepath.Join(t.TempDir(), "missing", "access.log")})
	if err == nil || !strings.Contains(err.Error(), "logging: output:") {
		t.Errorf("New with an output in a missing directory: %v", err)
	}
	_, err = logging.NewWithLogger(logging.Config{Output: "stderr"}, grpclogging.LoggerFunc(func(context.Context, grpclogging.Level, string, ...any) {}))
	if err == nil || !strings.Contains(err.Error(), "exclusive") {
		t.Errorf("NewWithLogger with an output: %v", err)
	}
}
