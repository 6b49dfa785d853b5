package rawcodec_test

import (
	"bytes"
	"fmt"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc/mem"

	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// countingPool is a mem.BufferPool that counts buffers handed out and
// returned, to check reference counting.
type countingPool struct {
	gets, puts int
}

func (p *countingPool) Get(n int) *[]byte {
	p.gets++
	b := make([]byte, n)
	return &b
}

func (p *countingPool) Put(*[]byte) { p.puts++ }

func pooled(p *countingPool, data string) mem.BufferSlice {
	return mem.BufferSlice{mem.Copy([]byte(data), p)}
}

func TestUnmarshalMarshalPassesSameBuffers(t *testing.T) {
	pool := &countingPool{}
	// Large enough that mem.Copy uses the pool rather than a SliceBuffer.
	payload := string(bytes.Repeat([]byte("x"), 4096))
	in := mem.BufferSlice{mem.Copy([]byte(payload), pool), mem.Copy([]byte(payload), pool)}
	var f rawcodec.Frame
	if err := (rawcodec.Codec{}).Unmarshal(in, &f); err != nil {
		t.Fatal(err)
	}
	in.Free() // grpc-go frees its reference after Unmarshal
	if pool.puts != 0 {
		t.Fatalf("buffers returned to the pool while the frame holds them")
	}
	if f.Len() != 2*len(payload) {
		t.Fatalf("Len = %d", f.Len())
	}
	out, err := (rawcodec.Codec{}).Marshal(&f)
	if err != nil {
		t.Fatal(err)
	}
	if f.Data != nil {
		t.Error("Marshal left the frame holding buffers it handed to grpc-go")
	}
	for i := range out {
		if &out[i].ReadOnlyData()[0] != &in[i].ReadOnlyData()[0] {
			t.Errorf("buffer %d was copied", i)
		}
	}
	out.Free() // grpc-go frees after writing
	if pool.puts != 2 {
		t.Errorf("pool got %d buffers back, want 2", pool.puts)
	}
}

func TestUnmarshalReplacesAndFreesOldData(t *testing.T) {
	pool := &countingPool{}
	big := string(bytes.Repeat([]byte("y"), 2048))
	var f rawcodec.Frame
	for i := 0; i < 3; i++ {
		in := pooled(pool, big)
		if err := (rawcodec.Codec{}).Unmarshal(in, &f); err != nil {
			t.Fatal(err)
		}
		in.Free()
	}
	f.Free()
	if pool.gets != 3 || pool.puts != 3 {
		t.Errorf("gets %d puts %d, want 3 and 3", pool.gets, pool.puts)
	}
}

func TestWrongTypes(t *testing.T) {
	c := rawcodec.Codec{}
	if _, err := c.Marshal("not a frame"); err == nil {
		t.Error("Marshal(string) succeeded")
	}
	if err := c.Unmarshal(mem.BufferSlice{}, new(int)); err == nil {
		t.Error("Unmarshal(*int) succeeded")
	}
	if c.Name() != "" {
		t.Errorf("Name = %q, want empty (keeps plain application/grpc plain)", c.Name())
	}
}

func TestFrameHelpers(t *testing.T) {
	f := rawcodec.FromBytes([]byte("hello"))
	if string(f.Bytes()) != "hello" || f.Len() != 5 {
		t.Fatalf("Bytes %q Len %d", f.Bytes(), f.Len())
	}
	g := f.Ref()
	f.Free()
	if string(g.Bytes()) != "hello" {
		t.Fatal("Ref'd frame lost its bytes")
	}
	g.Replace(mem.BufferSlice{mem.SliceBuffer("ab"), mem.SliceBuffer("cd")})
	if string(g.Bytes()) != "abcd" {
		t.Fatalf("multi-buffer Bytes = %q", g.Bytes())
	}
	if e := rawcodec.FromBytes(nil); e.Len() != 0 || e.Bytes() != nil {
		t.Fatal("empty frame not empty")
	}
}

// BenchmarkPassThrough measures one message through the codec as the proxy
// uses it: Unmarshal on the way in, Marshal on the way out. Allocations do
// not depend on the message size: the bytes are never copied.
func BenchmarkPassThrough(b *testing.B) {
	for _, size := range []int{16, 64 << 10, 4 << 20} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			src := bytes.Repeat([]byte{1}, size)
			var f rawcodec.Frame
			c := rawcodec.Codec{}
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				in := mem.BufferSlice{mem.NewBuffer(&src, nil)}
				if err := c.Unmarshal(in, &f); err != nil {
					b.Fatal(err)
				}
				in.Free()
				out, _ := c.Marshal(&f)
				out.Free()
			}
		})
	}
}
