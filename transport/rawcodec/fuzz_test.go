package rawcodec_test

import (
	"bytes"
	"strings"
	"testing"

	"google.golang.org/grpc/mem"

	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

// trackingPool is a mem.BufferPool that knows every buffer the fuzz target
// made and every one returned to it. A returned buffer is poisoned, so that
// a frame still reading it sees garbage instead of its bytes.
type trackingPool struct {
	t        testing.TB
	tracked  map[*[]byte]bool // made by newSlice
	returned map[*[]byte]bool
}

func (p *trackingPool) Get(n int) *[]byte {
	p.t.Fatalf("pool.Get(%d): the codec and frames must never allocate from the pool", n)
	return nil
}

func (p *trackingPool) Put(b *[]byte) {
	if !p.tracked[b] {
		p.t.Fatalf("pool.Put of a buffer the test did not make")
	}
	if p.returned[b] {
		p.t.Fatalf("buffer returned to the pool twice")
	}
	p.returned[b] = true
	for i := range *b {
		(*b)[i] = 0xdd
	}
}

// modelFrame is what a live frame must hold: its bytes, and the pooled
// buffers it holds one reference to.
type modelFrame struct {
	f    *rawcodec.Frame
	want []byte
	bufs []*[]byte
}

// FuzzFrame runs a program of codec and frame operations (Unmarshal,
// Marshal, Ref, Free, Replace, Bytes, and the error paths) over pooled,
// reference-counted buffers, and checks after every step that
//
//   - every live frame holds exactly its expected bytes (Len and Bytes, and
//     Bytes aliases the buffer when there is only one);
//   - a buffer goes back to the pool exactly when no live frame holds it
//     any more: never early (a use after free), never twice, and never
//     late (a leak);
//   - Marshal hands over the bytes unchanged and empties the frame;
//   - a failed Marshal or Unmarshal takes no reference and changes nothing.
//
// data supplies the message bytes; each byte of prog is one operation.
func FuzzFrame(f *testing.F) {
	f.Add([]byte("hello, world"), []byte{0, 5, 4})
	f.Add([]byte("abcdefghijklmnopqrstuvwxyz"), []byte{0, 1, 2, 5, 3, 5, 4})
	f.Add([]byte("0123456789"), []byte{0, 7, 0, 6, 13, 1, 8, 2, 9, 4, 11})
	f.Add([]byte{}, []byte{0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7})
	f.Fuzz(func(t *testing.T, data, prog []byte) {
		if len(prog) > 256 {
			prog = prog[:256]
		}
		pool := &trackingPool{t: t, tracked: map[*[]byte]bool{}, returned: map[*[]byte]bool{}}
		codec := rawcodec.Codec{}
		var live []*modelFrame

		// newSlice makes a BufferSlice of up to 3 pooled buffers holding
		// the next bytes of data; the caller owns one reference to each.
		newSlice := func(arg int) (mem.BufferSlice, []byte, []*[]byte) {
			n := min(arg*3, len(data))
			chunk := data[:n]
			data = data[n:]
			parts := arg%3 + 1
			var s mem.BufferSlice
			var ptrs []*[]byte
			for i := range parts {
				piece := chunk[i*len(chunk)/parts : (i+1)*len(chunk)/parts]
				// A capacity above the pooling threshold makes NewBuffer
				// return a reference-counted buffer, not a SliceBuffer.
				b := make([]byte, len(piece), len(piece)+2048)
				copy(b, piece)
				ptr := &b
				pool.tracked[ptr] = true
				ptrs = append(ptrs, ptr)
				s = append(s, mem.NewBuffer(ptr, pool))
			}
			return s, bytes.Clone(chunk), ptrs
		}
		pick := func(arg int) int { return arg % len(live) }
		drop := func(i int) { live = append(live[:i], live[i+1:]...) }

		check := func(step int) {
			t.Helper()
			held := map[*[]byte]bool{}
			for i, m := range live {
				if got := m.f.Len(); got != len(m.want) {
					t.Fatalf("step %d: frame %d Len = %d, want %d", step, i, got, len(m.want))
				}
				got := m.f.Bytes()
				if !bytes.Equal(got, m.want) {
					t.Fatalf("step %d: frame %d Bytes = %q, want %q", step, i, got, m.want)
				}
				if len(m.want) == 0 && got != nil && len(m.f.Data) == 0 {
					t.Fatalf("step %d: empty frame %d: Bytes = %q, want nil", step, i, got)
				}
				if len(m.f.Data) == 1 && len(got) > 0 && &got[0] != &m.f.Data[0].ReadOnlyData()[0] {
					t.Fatalf("step %d: frame %d: Bytes copied a single buffer", step, i)
				}
				for _, p := range m.bufs {
					held[p] = true
				}
			}
			for p := range pool.tracked {
				switch {
				case held[p] && pool.returned[p]:
					t.Fatalf("step %d: a buffer a live frame holds went back to the pool", step)
				case !held[p] && !pool.returned[p]:
					t.Fatalf("step %d: a buffer no frame holds was not freed", step)
				}
			}
		}

		for step, b := range prog {
			op, arg := b%8, int(b/8)
			switch {
			case op == 0 || len(live) == 0 && op != 7:
				// What grpc-go does on RecvMsg: Unmarshal into a new frame
				// (or one being reused), then free its own reference.
				in, want, bufs := newSlice(arg)
				m := &modelFrame{f: new(rawcodec.Frame), want: want, bufs: bufs}
				if len(live) > 0 && arg%2 == 1 {
					m.f = live[pick(arg)].f
					drop(pick(arg))
				}
				if err := codec.Unmarshal(in, m.f); err != nil {
					t.Fatalf("step %d: Unmarshal: %v", step, err)
				}
				in.Free()
				live = append(live, m)
			case op == 1:
				i := pick(arg)
				g := live[i].f.Ref()
				live = append(live, &modelFrame{f: g, want: live[i].want, bufs: live[i].bufs})
			case op == 2:
				i := pick(arg)
				fr := live[i].f
				fr.Free()
				if fr.Data != nil || fr.Len() != 0 || fr.Bytes() != nil {
					t.Fatalf("step %d: frame not empty after Free: %d bytes", step, fr.Len())
				}
				fr.Free() // a no-op on an empty frame
				drop(i)
			case op == 3:
				i := pick(arg)
				s, want, bufs := newSlice(arg / 2)
				live[i].f.Replace(s)
				live[i].want, live[i].bufs = want, bufs
			case op == 4:
				// What grpc-go does on SendMsg: Marshal, write, free.
				i := pick(arg)
				out, err := codec.Marshal(live[i].f)
				if err != nil {
					t.Fatalf("step %d: Marshal: %v", step, err)
				}
				if live[i].f.Data != nil {
					t.Fatalf("step %d: Marshal left the frame holding its buffers", step)
				}
				if got := out.Materialize(); !bytes.Equal(got, live[i].want) {
					t.Fatalf("step %d: Marshal = %q, want %q", step, got, live[i].want)
				}
				out.Free()
				drop(i)
			case op == 5:
				// Unmarshal another frame's bytes into a frame, as a
				// filter forwarding a message would; the source keeps its
				// own reference. Into itself, nothing changes.
				dst, src := live[pick(arg)], live[pick(arg/3)]
				if err := codec.Unmarshal(src.f.Data, dst.f); err != nil {
					t.Fatalf("step %d: Unmarshal: %v", step, err)
				}
				dst.want, dst.bufs = src.want, src.bufs
			case op == 6:
				// A frame that wraps a caller's reference, then a plain
				// []byte frame.
				s, want, bufs := newSlice(arg)
				live = append(live, &modelFrame{f: rawcodec.NewFrame(s), want: want, bufs: bufs})
				n := min(arg, len(data))
				raw := bytes.Clone(data[:n])
				data = data[n:]
				live = append(live, &modelFrame{f: rawcodec.FromBytes(raw), want: bytes.Clone(raw)})
			case op == 7:
				// Wrong types: errors, no reference taken, nothing changed.
				if _, err := codec.Marshal(string(rune(arg))); err == nil || !strings.HasPrefix(err.Error(), "rawcodec: ") {
					t.Fatalf("step %d: Marshal(string) error = %v", step, err)
				}
				s, _, bufs := newSlice(arg)
				var notFrame struct{ Data mem.BufferSlice }
				if err := codec.Unmarshal(s, &notFrame); err == nil || !strings.HasPrefix(err.Error(), "rawcodec: ") {
					t.Fatalf("step %d: Unmarshal(*struct) error = %v", step, err)
				}
				if notFrame.Data != nil {
					t.Fatalf("step %d: failed Unmarshal stored data", step)
				}
				s.Free() // grpc-go's reference; the failed Unmarshal took none
				for _, p := range bufs {
					if !pool.returned[p] {
						t.Fatalf("step %d: a failed Unmarshal kept a reference", step)
					}
				}
			}
			check(step)
		}
		for _, m := range live {
			m.f.Free()
		}
		live = nil
		check(len(prog))
	})
}
