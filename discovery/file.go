package discovery

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/resolver"
)

// FileScheme is the scheme of [FileBuilder]'s targets.
const FileScheme = "file"

// DefaultFileInterval is how often the file resolver re-reads its file.
const DefaultFileInterval = time.Second

// maxFileSize bounds a member file; a larger one is an error.
const maxFileSize = 1 << 20

// FileBuilder builds resolvers that read members from a file, one
// "name=host:port" per line, for hosts without DNS:
//
//	# the cluster's nodes
//	node-a=10.0.0.5:50000
//	node-b=10.0.0.6:50000
//
// Blank lines and text after "#" are ignored. Names must be unique and
// contain no commas or white space; addresses are host:port and unique.
//
// The target is "file:///absolute/path" or "file:relative/path",
// optionally with "?interval=500ms" to change how often the file is read
// (default [Interval], else [DefaultFileInterval]). The file is read when
// the resolver is built, and a missing or bad file fails the build. Later
// it is re-read at the interval and on ResolveNow; when its content changed,
// the new set is reported, or, if the file is now missing or bad, an error
// naming the line, and the last good set stays.
//
// [Watch] uses a FileBuilder for "file:" targets without registering it
// with grpc-go; register one with [resolver.Register] to dial "file:"
// targets with grpc.NewClient.
type FileBuilder struct {
	// Interval is how often the file is read, unless the target says.
	// Default 1s.
	Interval time.Duration
}

// Scheme returns "file".
func (FileBuilder) Scheme() string { return FileScheme }

// Build reads the file and starts watching it.
func (b FileBuilder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	u := target.URL
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("file: %q: a file target has no host: file:///absolute/path", u.String())
	}
	path := u.Path
	if path == "" {
		path = u.Opaque
	}
	if path == "" {
		return nil, fmt.Errorf("file: %q: no path", u.String())
	}
	interval := b.Interval
	if interval <= 0 {
		interval = DefaultFileInterval
	}
	q := u.Query()
	for k := range q {
		if k != "interval" {
			return nil, fmt.Errorf("file: %q: unknown parameter %q (only interval)", u.String(), k)
		}
	}
	if v := q.Get("interval"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("file: %q: interval %q is not a positive duration like 500ms", u.String(), v)
		}
		interval = d
	}

	content, err := readFile(path)
	if err != nil {
		return nil, err
	}
	st, err := ParseFile(content)
	if err != nil {
		return nil, fmt.Errorf("file %s: %w", path, err)
	}
	r := &fileResolver{path: path, cc: cc, last: content, rn: make(chan struct{}, 1), done: make(chan struct{})}
	_ = cc.UpdateState(st) // an empty set is not an error of the file
	r.wg.Add(1)
	go r.watch(interval)
	return r, nil
}

// ParseFile reads the content of a member file into the state its resolver
// reports: one address per line, named with [WithName], in file order. Its
// errors name the line.
func ParseFile(content []byte) (resolver.State, error) {
	var st resolver.State
	names := map[string]int{}
	addrs := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(content))
	sc.Buffer(nil, maxFileSize)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name, addr, ok := strings.Cut(line, "=")
		name, addr = strings.TrimSpace(name), strings.TrimSpace(addr)
		switch {
		case !ok:
			return resolver.State{}, fmt.Errorf("line %d: %q is not name=host:port", n, line)
		case name == "":
			return resolver.State{}, fmt.Errorf("line %d: the name is empty", n)
		case strings.ContainsAny(name, ", \t"):
			return resolver.State{}, fmt.Errorf("line %d: name %q contains a comma or white space", n, name)
		}
		if err := checkHostPort(addr); err != nil {
			return resolver.State{}, fmt.Errorf("line %d: %s: %w", n, name, err)
		}
		if first, dup := names[name]; dup {
			return resolver.State{}, fmt.Errorf("line %d: name %q is used twice (first on line %d)", n, name, first)
		}
		if first, dup := addrs[addr]; dup {
			return resolver.State{}, fmt.Errorf("line %d: address %s is used twice (first on line %d)", n, addr, first)
		}
		names[name], addrs[addr] = n, n
		a := WithName(resolver.Address{Addr: addr}, name)
		st.Addresses = append(st.Addresses, a)
		st.Endpoints = append(st.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{a}})
	}
	if err := sc.Err(); err != nil {
		return resolver.State{}, err
	}
	return st, nil
}

// checkHostPort accepts host:port with a host and a port number.
func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q is not host:port", addr)
	}
	if host == "" {
		return fmt.Errorf("address %q has no host", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("address %q: port %q is not a number from 1 to 65535", addr, port)
	}
	return nil
}

// readFile reads at most maxFileSize bytes of path.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("file: %w", err)
	}
	defer f.Close()
	content, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("file %s: %w", path, err)
	}
	if len(content) > maxFileSize {
		return nil, fmt.Errorf("file %s: larger than %d bytes", path, maxFileSize)
	}
	return content, nil
}

// fileResolver re-reads its file and reports changes.
type fileResolver struct {
	path string
	cc   resolver.ClientConn
	rn   chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	// Touched only by watch (and Build before it starts).
	last    []byte // the content last read; nil after a read error
	lastErr string // the error last reported, to report each error once
}

func (r *fileResolver) watch(interval time.Duration) {
	defer r.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-r.rn:
		case <-r.done:
			return
		}
		r.check()
	}
}

// check reads the file and reports what changed.
func (r *fileResolver) check() {
	content, err := readFile(r.path)
	if err != nil {
		r.last = nil
		r.report(err)
		return
	}
	if r.last != nil && bytes.Equal(content, r.last) {
		return
	}
	r.last = content
	st, err := ParseFile(content)
	if err != nil {
		r.report(fmt.Errorf("file %s: %w", r.path, err))
		return
	}
	r.lastErr = ""
	_ = r.cc.UpdateState(st)
}

func (r *fileResolver) report(err error) {
	if err.Error() == r.lastErr {
		return
	}
	r.lastErr = err.Error()
	r.cc.ReportError(err)
}

// ResolveNow reads the file now.
func (r *fileResolver) ResolveNow(resolver.ResolveNowOptions) {
	select {
	case r.rn <- struct{}{}:
	default:
	}
}

// Close stops watching; no report follows.
func (r *fileResolver) Close() {
	r.once.Do(func() { close(r.done) })
	r.wg.Wait()
}

var (
	_ resolver.Builder  = FileBuilder{}
	_ resolver.Resolver = (*fileResolver)(nil)
)
