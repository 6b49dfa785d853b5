package metadata_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/manifold-grpc/manifold/filters/metadata"
	"github.com/manifold-grpc/manifold/internal/clusterpb"
	"github.com/manifold-grpc/manifold/pipeline"
)

// The seed corpus is committed under testdata/fuzz/<FuzzName>/ and was made
// from clusterpb messages; f.Add only adds a few hand-made edge cases.

var fuzzLayout = metadata.Layout{ItemsField: 5, MetadataField: 15, HostnameField: 2, ErrorField: 3, StatusField: 4}

var errWireType = errors.New("items field with another wire type")

// referenceEntries lists the entries of field num in resp, checking the wire
// format independently of the package.
func referenceEntries(resp []byte, num protowire.Number) ([][]byte, error) {
	fs, err := parseWire(resp)
	if err != nil {
		return nil, err
	}
	var items [][]byte
	for _, f := range fs {
		if f.num != num {
			continue
		}
		if f.typ != protowire.BytesType {
			return nil, errWireType
		}
		items = append(items, f.val)
	}
	return items, nil
}

func validUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

func FuzzAppendEntries(f *testing.F) {
	f.Add([]byte{}, "", "", int32(0), false)
	f.Add([]byte{0x0a, 0x00, 0x0a, 0x02, 0x0a, 0x00}, "node-a", "", int32(0), false)
	f.Add([]byte{0x2a, 0x02, 0x7a, 0x00, 0x08, 0x01}, "node-\xff", "err\xfe", int32(-1), true)
	f.Fuzz(func(t *testing.T, resp []byte, hostname, errText string, code int32, custom bool) {
		var l metadata.Layout
		if custom {
			l = fuzzLayout
		}
		l = l.WithDefaults()
		md := metadata.Metadata{Hostname: hostname, Error: errText}
		if code != 0 {
			md.Status = &spb.Status{Code: code, Message: errText}
		}
		wantItems, wantErr := referenceEntries(resp, l.ItemsField)

		// The protobuf decoder itself must agree on what is valid wire
		// format.
		if protoErr := proto.Unmarshal(resp, &emptypb.Empty{}); (protoErr == nil) != (wantErr == nil || wantErr == errWireType) {
			t.Fatalf("reference error %v, proto.Unmarshal error %v", wantErr, protoErr)
		}

		prefix := []byte{0xde, 0xad}
		dst := append(make([]byte, 0, 8), prefix...) // small: AppendEntries grows it
		out, err := metadata.AppendEntries(dst, resp, md, l)
		size, sizeErr := metadata.EntriesSize(resp, md, l)
		if (err == nil) != (wantErr == nil) || (sizeErr == nil) != (err == nil) {
			t.Fatalf("AppendEntries error %v, EntriesSize error %v, want error %v", err, sizeErr, wantErr)
		}
		if !bytes.HasPrefix(out, prefix) {
			t.Fatalf("dst prefix lost: %x", out)
		}
		if err != nil {
			if len(out) != len(prefix) {
				t.Fatalf("on error AppendEntries returned %x, want dst unchanged", out)
			}
			if !strings.HasPrefix(err.Error(), "metadata: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
			return
		}
		spliced := out[len(prefix):]
		if size != len(spliced) {
			t.Fatalf("EntriesSize = %d, appended %d", size, len(spliced))
		}

		// Valid wire format holding exactly the entries, each with the
		// metadata field appended.
		fs, err := parseWire(spliced)
		if err != nil {
			t.Fatalf("output is not valid wire format: %v\n%x", err, spliced)
		}
		if err := proto.Unmarshal(spliced, &emptypb.Empty{}); err != nil {
			t.Fatalf("proto.Unmarshal rejects the output: %v", err)
		}
		mdBytes := metadata.AppendMetadataField(nil, md, l)
		if len(fs) != len(wantItems) {
			t.Fatalf("got %d entries, want %d", len(fs), len(wantItems))
		}
		for i, f := range fs {
			want := append(bytes.Clone(wantItems[i]), mdBytes...)
			if f.num != l.ItemsField || f.typ != protowire.BytesType || !bytes.Equal(f.val, want) {
				t.Fatalf("entry %d = field %d type %d %x, want %x", i, f.num, f.typ, f.val, want)
			}
		}

		// Items reads back every entry with the spliced metadata, merged
		// into what the item already had.
		items, itemsErr := metadata.Items(spliced, l)
		readable := true
		origMDs := make([]metadata.Metadata, len(wantItems))
		for i, item := range wantItems {
			var rerr error
			origMDs[i], _, rerr = metadata.ReadMetadata(item, l)
			readable = readable && rerr == nil
		}
		if !readable {
			return // the appended bytes may even complete a truncated item
		}
		if itemsErr != nil {
			t.Fatalf("Items: %v", itemsErr)
		}
		if len(items) != len(wantItems) {
			t.Fatalf("Items returned %d items, want %d", len(items), len(wantItems))
		}
		for i, item := range items {
			want := origMDs[i]
			if hostname != "" {
				want.Hostname = validUTF8(hostname)
			}
			if errText != "" {
				want.Error = validUTF8(errText)
			}
			if md.Status != nil {
				ours := &spb.Status{Code: code, Message: validUTF8(errText)}
				if want.Status == nil {
					want.Status = ours
				} else {
					proto.Merge(want.Status, ours)
				}
			}
			if !item.HasMetadata || !bytes.Equal(item.Raw, fs[i].val) || item.Metadata.Hostname != want.Hostname ||
				item.Metadata.Error != want.Error || !proto.Equal(item.Metadata.Status, want.Status) {
				t.Fatalf("item %d = %+v, want metadata %+v", i, item, want)
			}
		}
	})
}

func FuzzItems(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00})
	f.Add([]byte{0x0a, 0x04, 0x0a, 0x02, 0x1a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = metadata.ReadMetadata(b, metadata.Layout{})
		_, _, _ = metadata.ReadMetadata(b, fuzzLayout)
		_, _ = metadata.Items(b, fuzzLayout)
		items, err := metadata.Items(b, metadata.Layout{})
		for i, item := range items {
			md, ok, rerr := metadata.ReadMetadata(item.Raw, metadata.Layout{})
			if rerr != nil || ok != item.HasMetadata || md.Hostname != item.Metadata.Hostname ||
				md.Error != item.Metadata.Error || !proto.Equal(md.Status, item.Metadata.Status) {
				t.Fatalf("item %d: Items %+v, ReadMetadata %+v %v %v", i, item, md, ok, rerr)
			}
		}

		// Where the generated code decodes b too, both must agree.
		var resp clusterpb.VersionResponse
		if proto.Unmarshal(b, &resp) != nil {
			return
		}
		if err != nil {
			if !strings.Contains(err.Error(), "wire type") {
				t.Fatalf("proto.Unmarshal accepts %x, Items: %v", b, err)
			}
			return // a decoder keeps such a field as unknown
		}
		if len(items) != len(resp.Messages) {
			t.Fatalf("Items returned %d items, proto.Unmarshal %d", len(items), len(resp.Messages))
		}
		for i, v := range resp.Messages {
			got, want := items[i], v.GetMetadata()
			if got.HasMetadata != (want != nil) || got.Metadata.Hostname != want.GetHostname() ||
				got.Metadata.Error != want.GetError() || !proto.Equal(got.Metadata.Status, want.GetStatus()) {
				t.Fatalf("item %d: Items %+v, proto.Unmarshal %v", i, got, want)
			}
		}
	})
}

// fuzzStatus is the status an error item carries: nil when the input sets
// nothing.
func fuzzStatus(code int32, msg, typeURL string, detail []byte) *spb.Status {
	if code == 0 && msg == "" && typeURL == "" && detail == nil {
		return nil
	}
	st := &spb.Status{Code: code, Message: msg}
	if typeURL != "" || detail != nil {
		st.Details = []*anypb.Any{{TypeUrl: typeURL, Value: detail}}
	}
	return st
}

// sanitized is md as the splice writes it: strings made valid UTF-8.
func sanitized(md metadata.Metadata) metadata.Metadata {
	md.Hostname, md.Error = validUTF8(md.Hostname), validUTF8(md.Error)
	if md.Status != nil {
		st := proto.Clone(md.Status).(*spb.Status)
		st.Message = validUTF8(st.Message)
		for _, d := range st.Details {
			d.TypeUrl = validUTF8(d.TypeUrl)
		}
		md.Status = st
	}
	return md
}

func sameMetadata(a, b metadata.Metadata) bool {
	return a.Hostname == b.Hostname && a.Error == b.Error && proto.Equal(a.Status, b.Status)
}

// FuzzAppendItem checks the splice of one item (a server-stream message)
// and of an error item, for any valid layout, item bytes, strings and
// status (with a detail), against the protobuf encoder and the readers:
//
//   - AppendMetadataField appends exactly MetadataFieldSize bytes: one
//     field l.MetadataField holding hostname, error and status in field
//     number order, the strings made valid UTF-8, the status byte for byte
//     what a deterministic proto.Marshal gives;
//   - AppendItem appends the item unchanged followed by that field;
//   - AppendErrorEntry appends exactly ErrorEntrySize bytes, which Items
//     reads back as one item holding only that metadata; with the default
//     layout MessageItems reads the same from the decoded message;
//   - ReadMetadata reads a spliced item's metadata as its own merged with
//     the spliced one, as a protobuf decoder merges them.
func FuzzAppendItem(f *testing.F) {
	f.Add([]byte{}, "node-a", "", int32(0), "", "", []byte(nil), uint64(0))
	f.Add([]byte{0x12, 0x02, 0x76, 0x31}, "node-b", "refused", int32(14), "connection refused",
		"type.googleapis.com/google.protobuf.Duration", []byte{0x08, 0x01}, uint64(0))
	f.Add([]byte{0x0a, 0x03, 0x0a, 0x01, 0x78, 0x1a, 0x00}, "\xff\xfe", "err\x80", int32(-1), "m\xc3", "t\xff", []byte{}, uint64(0x00E_004_003_002_001)<<1|1)
	f.Add([]byte{0x7a, 0x00}, "h", "e", int32(2), "", "", []byte(nil), uint64(0x003_003_002_00F_005)<<1|1)
	f.Fuzz(func(t *testing.T, item []byte, hostname, errText string, code int32, msg, typeURL string, detail []byte, layoutBits uint64) {
		var l metadata.Layout
		if layoutBits&1 == 1 { // else the default layout
			field := func(i int) protowire.Number { return protowire.Number(layoutBits >> (1 + 12*i) & 0xfff) }
			l = metadata.Layout{ItemsField: field(0), MetadataField: field(1), HostnameField: field(2), ErrorField: field(3), StatusField: field(4)}
		}
		if err := l.Validate(); err != nil {
			if !strings.HasPrefix(err.Error(), "metadata: ") || !strings.Contains(err.Error(), "_field: ") {
				t.Fatalf("Layout.Validate error %q names no field", err)
			}
			return
		}
		l = l.WithDefaults()
		md := metadata.Metadata{Hostname: hostname, Error: errText, Status: fuzzStatus(code, msg, typeURL, detail)}
		want := sanitized(md)

		field := metadata.AppendMetadataField(nil, md, l)
		if len(field) != metadata.MetadataFieldSize(md, l) {
			t.Fatalf("AppendMetadataField wrote %d bytes, MetadataFieldSize says %d", len(field), metadata.MetadataFieldSize(md, l))
		}
		fs, err := parseWire(field)
		if err != nil || len(fs) != 1 || fs[0].num != l.MetadataField || fs[0].typ != protowire.BytesType {
			t.Fatalf("metadata field %x: %v", field, err)
		}
		inner, err := parseWire(fs[0].val)
		if err != nil {
			t.Fatalf("metadata message %x: %v", fs[0].val, err)
		}
		var wantInner []wireField
		add := func(num protowire.Number, v []byte) {
			wantInner = append(wantInner, wireField{num: num, typ: protowire.BytesType, val: v})
		}
		if want.Hostname != "" {
			add(l.HostnameField, []byte(want.Hostname))
		}
		if want.Error != "" {
			add(l.ErrorField, []byte(want.Error))
		}
		if want.Status != nil {
			b, err := proto.MarshalOptions{Deterministic: true}.Marshal(want.Status)
			if err != nil {
				t.Fatalf("marshal %v: %v", want.Status, err)
			}
			add(l.StatusField, b)
		}
		slices.SortFunc(wantInner, func(a, b wireField) int { return int(a.num) - int(b.num) })
		if len(inner) != len(wantInner) {
			t.Fatalf("metadata message has %d fields, want %d: %x", len(inner), len(wantInner), fs[0].val)
		}
		for i := range inner {
			if inner[i].num != wantInner[i].num || inner[i].typ != protowire.BytesType || !bytes.Equal(inner[i].val, wantInner[i].val) {
				t.Fatalf("metadata field %d = %d:%x, want %d:%x", i, inner[i].num, inner[i].val, wantInner[i].num, wantInner[i].val)
			}
		}

		prefix := []byte{0xca, 0xfe}
		out := metadata.AppendItem(bytes.Clone(prefix), item, md, l)
		if !bytes.Equal(out, slices.Concat(prefix, item, field)) {
			t.Fatalf("AppendItem = %x, want prefix, item %x and field %x", out, item, field)
		}

		entry := metadata.AppendErrorEntry(bytes.Clone(prefix), md, l)
		if !bytes.HasPrefix(entry, prefix) || len(entry)-len(prefix) != metadata.ErrorEntrySize(md, l) {
			t.Fatalf("AppendErrorEntry wrote %d bytes, ErrorEntrySize says %d", len(entry)-len(prefix), metadata.ErrorEntrySize(md, l))
		}
		entry = entry[len(prefix):]
		items, err := metadata.Items(entry, l)
		if err != nil || len(items) != 1 || !items[0].HasMetadata || !bytes.Equal(items[0].Raw, field) || !sameMetadata(items[0].Metadata, want) {
			t.Fatalf("Items(error entry) = %+v, %v; want one item %x with %+v", items, err, field, want)
		}
		if l == metadata.DefaultLayout() {
			var resp clusterpb.VersionResponse
			if err := proto.Unmarshal(entry, &resp); err != nil {
				t.Fatalf("generated code cannot decode the error entry: %v", err)
			}
			mitems, err := metadata.MessageItems(&resp, l)
			if err != nil || len(mitems) != 1 || !mitems[0].HasMetadata || !sameMetadata(mitems[0].Metadata, want) {
				t.Fatalf("MessageItems = %+v, %v; want %+v", mitems, err, want)
			}
		}

		// The spliced item: its own metadata merged with the spliced one.
		orig, _, err := metadata.ReadMetadata(item, l)
		if err != nil {
			return // not an item: the appended bytes may even complete it
		}
		got, ok, err := metadata.ReadMetadata(out[len(prefix):], l)
		merged := orig
		if want.Hostname != "" {
			merged.Hostname = want.Hostname
		}
		if want.Error != "" {
			merged.Error = want.Error
		}
		if want.Status != nil {
			if merged.Status == nil {
				merged.Status = want.Status
			} else {
				proto.Merge(merged.Status, want.Status)
			}
		}
		if err != nil || !ok || !sameMetadata(got, merged) {
			t.Fatalf("ReadMetadata(spliced item) = %+v, %v, %v; want %+v", got, ok, err, merged)
		}
	})
}

// headersOp parses one line of a FuzzHeaders program,
// "SIDE|OP|KEY|ARG|DEFAULT": SIDE is r(equest), s (response) or t(railers);
// OP is a(dd), s(et), d (remove) or n (rename), and for add and set a
// source: v(alue), h(eader), c(laim) or f(rom); ARG is the value, header,
// claim, source or rename target.
func headersOp(line string) (side byte, op metadata.HeaderOp, ok bool) {
	parts := strings.SplitN(line, "|", 5)
	if len(parts) < 3 || len(parts[0]) != 1 || parts[1] == "" {
		return 0, op, false
	}
	parts = append(parts, "", "")
	key, arg, def := parts[2], parts[3], parts[4]
	v := &metadata.HeaderValue{Key: key, Default: def}
	if len(parts[1]) > 1 {
		switch parts[1][1] {
		case 'v':
			v.Value = arg
		case 'h':
			v.Header = arg
		case 'c':
			v.Claim = arg
		case 'f':
			v.From = metadata.ValueSource(arg)
		}
	}
	switch parts[1][0] {
	case 'a':
		op.Add = v
	case 's':
		op.Set = v
	case 'd':
		op.Remove = &metadata.HeaderRemove{Key: key}
	case 'n':
		op.Rename = &metadata.HeaderRename{Key: key, To: arg}
	default:
		return 0, op, false
	}
	return parts[0][0], op, true
}

// headersModel applies ops to md as the documentation of HeadersConfig
// describes them, for call.
func headersModel(md grpcmd.MD, ops []metadata.HeaderOp, call *pipeline.Call) {
	source := func(v *metadata.HeaderValue) []string {
		switch {
		case v.Value != "":
			return []string{v.Value}
		case v.Header != "":
			return call.Inbound[v.Header]
		case v.Claim != "":
			claims, _ := pipeline.ClaimsKey.Get(call)
			if s, ok := claims.String(v.Claim); ok {
				return []string{s}
			}
		case v.From == metadata.FromPeer:
			return []string{call.Peer.(*net.TCPAddr).IP.String()}
		case v.From == metadata.FromAuthority && call.Authority != "":
			return []string{call.Authority}
		case v.From == metadata.FromMethod:
			return []string{call.Method}
		}
		return nil
	}
	values := func(v *metadata.HeaderValue) []string {
		var out []string
		for _, s := range source(v) {
			if pipeline.ValidPair(v.Key, s) {
				out = append(out, s)
			}
		}
		if len(out) == 0 && v.Default != "" {
			out = []string{v.Default}
		}
		return out
	}
	for _, op := range ops {
		switch {
		case op.Remove != nil:
			delete(md, op.Remove.Key)
		case op.Rename != nil:
			if v := md[op.Rename.Key]; len(v) > 0 {
				delete(md, op.Rename.Key)
				md[op.Rename.To] = v
			}
		case op.Set != nil:
			if v := values(op.Set); len(v) > 0 {
				md[op.Set.Key] = v
			}
		case op.Add != nil:
			if v := values(op.Add); len(v) > 0 {
				md[op.Add.Key] = append(slices.Clone(md[op.Add.Key]), v...)
			}
		}
	}
}

// sendable fails unless grpc-go would send every pair of md.
func sendable(t *testing.T, what string, md grpcmd.MD) {
	t.Helper()
	for k, vs := range md {
		if len(vs) == 0 {
			t.Fatalf("%s: key %q without values", what, k)
		}
		for _, v := range vs {
			if !pipeline.ValidPair(k, v) {
				t.Fatalf("%s: grpc-go would refuse %q: %q", what, k, v)
			}
		}
	}
}

// plain shows md's values in failure messages, which MD's own String
// method hides.
func plain(md grpcmd.MD) map[string][]string { return md }

func sameMD(a, b grpcmd.MD) bool {
	return len(a) == len(b) && func() bool {
		for k, v := range a {
			if w, ok := b[k]; !ok || !slices.Equal(v, w) {
				return false
			}
		}
		return true
	}()
}

// FuzzHeaders runs header mutation programs with arbitrary keys, values
// and sources over arbitrary client headers. NewHeaders refuses exactly
// what Validate refuses, naming the operation; a filter it builds
//
//   - leaves, on each side, headers that grpc-go sends: every key valid,
//     every text value printable ASCII, no key without values; and never
//     puts a key the proxy or gRPC owns (pseudo-headers, hop-by-hop,
//     grpc-*, x-manifold-* outside the request side) that was not there;
//   - does what the documentation of each operation says, in order (a
//     model of add, set, remove and rename);
//   - never changes call.Inbound or the value slices it found.
func FuzzHeaders(f *testing.F) {
	f.Add("r|sv|x-a|b|\nr|ah|x-copy|x-src|none\nr|nv|x-old|x-new\nr|d|x-gone", "x-src: s\nx-old: o\nx-gone: g", "alice", "api.example.com")
	f.Add("r|sc|x-user|sub|\nr|sc|x-n|n|\nr|sc|x-l|list|fallback\ns|sh|x-request-id|x-request-id|\nt|af|x-peer|peer|", "x-request-id: 42", "bob", "")
	f.Add("r|af|x-authority|authority|\nr|af|x-method|method|\nr|sv|x-manifold-route|fanout|\ns|d|x-manifold-x", "x-manifold-x: forged", "", "")
	f.Add("r|sh|x-text|x-src-bin|\nr|ah|x-bin|x-src|\nr|nv|x-src-bin|x-b-bin|", "x-src-bin: \x00\xff\nx-src: caf\xc3\xa9", "\xff", "\x7f")
	f.Add("t|nv|x-a|x-b\nt|nv|x-b|x-c\nt|ah|x-c|x-c|d", "x-c: 1\nx-c: 2", "", "")
	f.Add("r|nv|x-a|x-b\ns|nv|x-a|x-b-bin\nt|nv|x-b|x-a", "x-a: 1\nx-b: 2\nx-b: 3", "", "")
	f.Add("r|nv|x-a-bin|x-b|\nr|sv|grpc-timeout|1s|\nr|sv|Upper|v|\ns|sv|x-manifold-x|y|\nt|sv|te|trailers|\nr|x|y", "", "", "")
	logger := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, program, inbound, claim, authority string) {
		var cfg metadata.HeadersConfig
		for line := range strings.Lines(program) {
			side, op, ok := headersOp(strings.TrimSuffix(line, "\n"))
			if !ok {
				continue
			}
			switch side {
			case 'r':
				cfg.Request = append(cfg.Request, op)
			case 's':
				cfg.Response = append(cfg.Response, op)
			default:
				cfg.Trailers = append(cfg.Trailers, op)
			}
		}
		filter, err := metadata.NewHeaders(cfg, metadata.WithLogger(logger))
		if verr := cfg.Validate(); (err == nil) != (verr == nil) {
			t.Fatalf("NewHeaders error %v, Validate error %v", err, verr)
		}
		if err != nil {
			for line := range strings.Lines(strings.TrimPrefix(err.Error(), "headers: ")) {
				if !strings.HasPrefix(line, "request[") && !strings.HasPrefix(line, "response[") && !strings.HasPrefix(line, "trailers[") {
					t.Fatalf("NewHeaders error line %q names no operation", line)
				}
			}
			if !strings.HasPrefix(err.Error(), "headers: ") {
				t.Fatalf("NewHeaders error %q lacks the filter's name", err)
			}
			return
		}
		hooks := filter.(*pipeline.Funcs)

		in := grpcmd.MD{}
		for line := range strings.Lines(inbound) {
			k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), ": ")
			in.Append(k, v) // lowercases the key, as grpc-go does
		}
		inCopy := in.Copy()
		call := &pipeline.Call{
			Method: "/pkg.Service/Method", Authority: authority,
			Peer:    &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 5000},
			Inbound: in, Header: pipeline.OutboundHeader(in),
		}
		pipeline.ClaimsKey.Set(call, pipeline.Claims{"sub": claim, "n": 42.0, "list": []any{"a"}})
		ctx := context.Background()

		// side runs one side's hook on md (a copy of what the proxy
		// would hand it) and checks it against the model.
		side := func(what string, md grpcmd.MD, ops []metadata.HeaderOp, internalOK bool, run func(grpcmd.MD) grpcmd.MD) {
			t.Helper()
			// Spare capacity too: an append there would write into an
			// array another map shares.
			snapshot := map[string][]string{}
			aliased := map[string][]string{}
			for k, v := range md {
				snapshot[k], aliased[k] = slices.Clone(v[:cap(v)]), v[:cap(v)]
			}
			want := md.Copy()
			headersModel(want, ops, call)
			got := md
			if len(ops) > 0 {
				got = run(md)
			}
			if !sameMD(got, want) {
				t.Fatalf("%s: got %v, want %v", what, plain(got), plain(want))
			}
			sendable(t, what, got)
			for k := range got {
				owned := k[0] == ':' || strings.HasPrefix(k, "grpc-") || pipeline.IsHopByHop(k) ||
					!internalOK && strings.HasPrefix(k, pipeline.InternalPrefix)
				if _, before := aliased[k]; owned && !before {
					t.Fatalf("%s: the filter wrote %q", what, k)
				}
			}
			for k, v := range aliased {
				if !slices.Equal(v, snapshot[k]) {
					t.Fatalf("%s: values of %q (with their spare capacity) changed in place: %q, were %q", what, k, v, snapshot[k])
				}
			}
		}
		side("request", call.Header, cfg.Request, true, func(md grpcmd.MD) grpcmd.MD {
			if err := hooks.RequestHeaders(ctx, call); err != nil {
				t.Fatalf("request hook: %v", err)
			}
			return call.Header
		})
		side("response", pipeline.ResponseHeader(in), cfg.Response, false, func(md grpcmd.MD) grpcmd.MD {
			if err := hooks.ResponseHeaders(ctx, call, md); err != nil {
				t.Fatalf("response hook: %v", err)
			}
			return md
		})
		side("trailers", pipeline.ResponseHeader(in), cfg.Trailers, false, func(md grpcmd.MD) grpcmd.MD {
			end := &pipeline.End{Trailer: md}
			hooks.ResponseEnd(ctx, call, end)
			return end.Trailer
		})
		if !sameMD(in, inCopy) {
			t.Fatalf("Inbound changed: %v, was %v", plain(in), plain(inCopy))
		}
	})
}
