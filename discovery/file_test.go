package discovery_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/manifold-grpc/manifold/discovery"
)

func TestParseFile(t *testing.T) {
	cases := []struct {
		name    string
		content string
		want    []string // name=addr
		wantErr string
	}{
		{"empty", "", nil, ""},
		{"comments and blanks", "# nodes\n\n  a = 10.0.0.1:50000  # first\nb=[::1]:50000\r\n", []string{"a=10.0.0.1:50000", "b=[::1]:50000"}, ""},
		{"file order kept", "z=h1:1\na=h2:1\n", []string{"z=h1:1", "a=h2:1"}, ""},
		{"no equals", "a=h:1\nh:2\n", nil, `line 2: "h:2" is not name=host:port`},
		{"empty name", "=h:1", nil, "line 1: the name is empty"},
		{"comma in name", "a,b=h:1", nil, `line 1: name "a,b" contains a comma`},
		{"space in name", "a b=h:1", nil, `line 1: name "a b" contains a comma or white space`},
		{"no port", "a=h", nil, `line 1: a: address "h" is not host:port`},
		{"no host", "a=:1", nil, `address ":1" has no host`},
		{"bad port", "a=h:http", nil, `port "http" is not a number`},
		{"port 0", "a=h:0", nil, `port "0" is not a number`},
		{"duplicate name", "a=h:1\n\na=h:2", nil, `line 3: name "a" is used twice (first on line 1)`},
		{"duplicate address", "a=h:1\nb=h:1", nil, "line 2: address h:1 is used twice (first on line 1)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := discovery.ParseFile([]byte(tc.content))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range st.Addresses {
				got = append(got, discovery.Name(a)+"="+a.Addr)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			if len(st.Endpoints) != len(st.Addresses) {
				t.Errorf("%d endpoints for %d addresses", len(st.Endpoints), len(st.Addresses))
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	// Write then rename, as config management does, so the watcher never
	// reads half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds, or fails after a hang guard.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFileWatch rewrites a watched member file: the members follow good
// rewrites; a bad rewrite or a removed file is reported and the last good
// set stays.
func TestFileWatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nodes")
	writeFile(t, path, "a=127.0.0.1:1\nb=127.0.0.1:2\n")
	d := &dialer{}
	m, err := discovery.Watch("file://"+path+"?interval=10ms", d.dial, discovery.WithRefresh(0))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	select {
	case <-m.Ready():
	default:
		t.Fatal("the file resolver did not report its members while being built")
	}
	if got := current(m); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("members %v", got)
	}

	writeFile(t, path, "# b left, c came\na=127.0.0.1:1\nc=127.0.0.1:3\n")
	waitFor(t, "c to join", func() bool { return slices.Equal(current(m), []string{"a", "c"}) })

	errNow := func() error {
		s, release := m.Acquire()
		defer release()
		return s.Err()
	}
	writeFile(t, path, "a=127.0.0.1:1\na=127.0.0.1:4\n")
	waitFor(t, "the bad rewrite to be reported", func() bool { return errNow() != nil })
	if err := errNow(); !strings.Contains(err.Error(), `line 2: name "a" is used twice`) || !strings.Contains(err.Error(), path) {
		t.Errorf("error %v does not name the file and line", err)
	}
	if got := current(m); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("a bad rewrite changed the members to %v", got)
	}

	// Back to the last good content: the error clears.
	writeFile(t, path, "# b left, c came\na=127.0.0.1:1\nc=127.0.0.1:3\n")
	waitFor(t, "the error to clear", func() bool { return errNow() == nil })

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the removal to be reported", func() bool { return errNow() != nil })
	if got := current(m); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("a removed file changed the members to %v", got)
	}
	writeFile(t, path, "d=127.0.0.1:5\n")
	waitFor(t, "d to replace every member", func() bool { return slices.Equal(current(m), []string{"d"}) })
	if errNow() != nil {
		t.Errorf("error after a good file: %v", errNow())
	}

	// The connections of a, b and c were closed; d's is open.
	for _, c := range d.dialed() {
		if want := int32(1); c.addr == "127.0.0.1:5" {
			want = 0
			if c.closes.Load() != want {
				t.Errorf("%s closed %d times, want %d", c.addr, c.closes.Load(), want)
			}
		} else if c.closes.Load() != want {
			t.Errorf("%s closed %d times, want %d", c.addr, c.closes.Load(), want)
		}
	}
}

// TestFileResolveNow checks that ResolveNow re-reads the file at once,
// whatever the interval.
func TestFileResolveNow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nodes")
	writeFile(t, path, "a=127.0.0.1:1\n")
	m, err := discovery.Watch("file://"+path+"?interval=1h", (&dialer{}).dial, discovery.WithRefresh(0))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	writeFile(t, path, "b=127.0.0.1:1\n")
	waitFor(t, "b", func() bool {
		m.ResolveNow()
		return slices.Equal(current(m), []string{"b"})
	})
}

func TestFileTargets(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	writeFile(t, good, "a=h:1\n")
	bad := filepath.Join(dir, "bad")
	writeFile(t, bad, "a=h\n")
	cases := []struct {
		target  string
		wantErr string
	}{
		{"file://" + good, ""},
		{"file://localhost" + good, ""},
		{"file://" + good + "?interval=250ms", ""},
		{"file://" + bad, `line 1: a: address "h" is not host:port`},
		{"file://" + filepath.Join(dir, "missing"), "no such file"},
		{"file://otherhost" + good, "a file target has no host"},
		{"file://" + good + "?interval=soon", `interval "soon" is not a positive duration`},
		{"file://" + good + "?interval=-1s", `interval "-1s" is not a positive duration`},
		{"file://" + good + "?every=1s", `unknown parameter "every"`},
		{"file:", "no path"},
	}
	for _, tc := range cases {
		m, err := discovery.Watch(tc.target, (&dialer{}).dial, discovery.WithRefresh(0))
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("Watch(%q): %v", tc.target, err)
				continue
			}
			if got := current(m); !slices.Equal(got, []string{"a"}) {
				t.Errorf("Watch(%q): members %v", tc.target, got)
			}
			_ = m.Close()
			continue
		}
		if err == nil {
			_ = m.Close()
			t.Errorf("Watch(%q): no error", tc.target)
		} else if !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("Watch(%q) = %v, want %q", tc.target, err, tc.wantErr)
		}
	}
}

// TestRelativeFileTarget reads "file:relative/path" from the working
// directory.
func TestRelativeFileTarget(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "nodes"), "a=h:1\n")
	t.Chdir(dir)
	m, err := discovery.Watch("file:nodes", (&dialer{}).dial, discovery.WithRefresh(0))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got := current(m); !slices.Equal(got, []string{"a"}) {
		t.Errorf("members %v", got)
	}
}
