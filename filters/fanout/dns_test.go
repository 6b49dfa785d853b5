package fanout_test

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/manifold-grpc/manifold/filters/fanout"
	"github.com/manifold-grpc/manifold/internal/clusterpb"
)

// dnsServer is an authoritative DNS server on loopback UDP for one name,
// answering A queries with the addresses it is told.
type dnsServer struct {
	pc   net.PacketConn
	name string // fully qualified, "nodes.test."

	mu  sync.Mutex
	ips []netip.Addr
}

func startDNS(t *testing.T, name string) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dnsServer{pc: pc, name: name}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.serve()
	}()
	t.Cleanup(func() {
		_ = pc.Close()
		<-done
	})
	return s
}

func (s *dnsServer) set(ips ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ips = nil
	for _, ip := range ips {
		s.ips = append(s.ips, netip.MustParseAddr(ip))
	}
}

func (s *dnsServer) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp := s.answer(buf[:n]); resp != nil {
			_, _ = s.pc.WriteTo(resp, from)
		}
	}
}

// answer builds the response to one query: the A records of s.name, no
// AAAA record, and NXDOMAIN for any other name.
func (s *dnsServer) answer(query []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	s.mu.Lock()
	ips := slices.Clone(s.ips)
	s.mu.Unlock()

	ours := strings.EqualFold(q.Name.String(), s.name)
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	if !ours {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
		return nil
	}
	if ours && q.Type == dnsmessage.TypeA {
		for _, ip := range ips {
			if err := b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 0}, dnsmessage.AResource{A: ip.As4()}); err != nil {
				return nil
			}
		}
	}
	msg, err := b.Finish()
	if err != nil {
		return nil
	}
	return msg
}

// listenSamePort listens on one port on each of ips, as the pods behind a
// headless Service do.
func listenSamePort(t *testing.T, ips ...string) (int, []net.Listener) {
	t.Helper()
	for attempt := 0; attempt < 20; attempt++ {
		first, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			t.Skipf("cannot listen on %s: %v", ips[0], err)
		}
		port := first.Addr().(*net.TCPAddr).Port
		lis := []net.Listener{first}
		for _, ip := range ips[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				break
			}
			lis = append(lis, l)
		}
		if len(lis) == len(ips) {
			return port, lis
		}
		for _, l := range lis {
			_ = l.Close()
		}
	}
	t.Skip("found no port free on every loopback address")
	return 0, nil
}

// TestDNSMembers takes the members from grpc-go's own dns resolver, asking
// a DNS server run by the test (named in the target's authority), and
// follows the answers as they change: a member joins, then another leaves.
// TestMain lowers the dns resolver's minimum re-resolution interval.
func TestDNSMembers(t *testing.T) {
	ips := []string{"127.0.0.2", "127.0.0.3"}
	port, lis := listenSamePort(t, ips...)
	for i, l := range lis {
		serveOn(t, l, &machine{name: ips[i]})
	}
	member := func(ip string) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }

	dns := startDNS(t, "nodes.test.")
	dns.set(ips[0])
	target := fmt.Sprintf("dns://%s/nodes.test:%d", dns.pc.LocalAddr(), port)
	g := startDynamic(t, target, nil, fanout.Config{Name: "nodes"})

	// members asks through the proxy who answers, re-resolving first.
	members := func() []string {
		g.members.ResolveNow()
		v, err := g.client.Version(callCtx(t), &clusterpb.VersionRequest{})
		if err != nil {
			return []string{err.Error()}
		}
		for i, item := range v.GetMessages() {
			if item.GetNode()+":"+strconv.Itoa(port) != item.GetMetadata().GetHostname() {
				return []string{fmt.Sprintf("item %d: node %s tagged %s", i, item.GetNode(), item.GetMetadata().GetHostname())}
			}
		}
		return hostnames(v)
	}
	if got := members(); !slices.Equal(got, []string{member(ips[0])}) {
		t.Fatalf("first members %v", got)
	}

	dns.set(ips...)
	waitUntil(t, "the second address to join", func() bool {
		return slices.Equal(members(), []string{member(ips[0]), member(ips[1])})
	})

	first := g.dialer.conn(t, member(ips[0]))
	dns.set(ips[1])
	waitUntil(t, "the first address to leave", func() bool {
		return slices.Equal(members(), []string{member(ips[1])})
	})
	waitUntil(t, "the first member's connection to close", first.shutdown)
}
