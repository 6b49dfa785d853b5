package procfs_test

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/manifold-grpc/manifold/bench/internal/procfs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestOwnProcess reads this test process, whose numbers move in known
// directions: opening files adds descriptors, touching memory adds RSS,
// spinning adds CPU time.
func TestOwnProcess(t *testing.T) {
	pid := os.Getpid()

	fds, err := procfs.OpenFDs(pid)
	if err != nil {
		t.Fatal(err)
	}
	const extra = 5
	for range extra {
		f, err := os.Open(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
	}
	more, err := procfs.OpenFDs(pid)
	if err != nil {
		t.Fatal(err)
	}
	if more < fds+extra {
		t.Errorf("OpenFDs after opening %d files = %d, want at least %d", extra, more, fds+extra)
	}

	before, err := procfs.Mem(pid)
	if err != nil {
		t.Fatal(err)
	}
	if before.RSSKiB <= 0 || before.PeakKiB < before.RSSKiB {
		t.Fatalf("Mem = %+v, want 0 < RSS <= peak", before)
	}
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	after, err := procfs.Mem(pid)
	if err != nil {
		t.Fatal(err)
	}
	if after.RSSKiB < before.RSSKiB+32<<10 {
		t.Errorf("RSS after touching 64 MiB: %d KiB, before %d KiB; want at least 32 MiB more", after.RSSKiB, before.RSSKiB)
	}
	_ = buf[len(buf)-1]

	cpu0, err := procfs.CPUSeconds(pid)
	if err != nil {
		t.Fatal(err)
	}
	for x := 0; ; x++ {
		cpu, err := procfs.CPUSeconds(pid)
		if err != nil {
			t.Fatal(err)
		}
		if cpu > cpu0 {
			break
		}
		if x > 1<<30 {
			t.Fatalf("CPUSeconds stayed at %v while spinning", cpu0)
		}
	}
}

func TestMissingProcess(t *testing.T) {
	const pid = 1 << 30 // beyond pid_max
	if _, err := procfs.CPUSeconds(pid); err == nil {
		t.Error("CPUSeconds: no error for a missing process")
	}
	if _, err := procfs.Mem(pid); err == nil {
		t.Error("Mem: no error for a missing process")
	}
	if _, err := procfs.OpenFDs(pid); err == nil {
		t.Error("OpenFDs: no error for a missing process")
	}
}

func Example() {
	pid := os.Getpid()
	m, err := procfs.Mem(pid)
	if err != nil {
		fmt.Println(err)
		return
	}
	fds, err := procfs.OpenFDs(pid)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.RSSKiB > 0, fds > 0)
	// Output: true true
}
