package offsets

import (
	"math/rand/v2"
	"testing"
)

func TestTrackerCommitsOnlyContiguous(t *testing.T) {
	tr := New()
	for _, o := range []int64{10, 11, 12, 15, 16} { // 13 and 14 compacted away
		if err := tr.Add(o); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		done     int64
		next     int64
		advanced bool
	}{
		{11, -1, false}, // 10 still running
		{15, -1, false},
		{10, 12, true}, // 10 and 11 done
		{12, 16, true}, // 12 done, and 15 beyond the gap
		{16, 17, true},
	}
	for _, s := range steps {
		next, adv, err := tr.Done(s.done)
		if err != nil {
			t.Fatalf("Done(%d): %v", s.done, err)
		}
		if next != s.next || adv != s.advanced {
			t.Fatalf("Done(%d) = %d, %v; want %d, %v", s.done, next, adv, s.next, s.advanced)
		}
	}
	if n := tr.InFlight(); n != 0 {
		t.Fatalf("InFlight = %d, want 0", n)
	}
}

func TestTrackerRejectsMisuse(t *testing.T) {
	tr := New()
	if err := tr.Add(5); err != nil {
		t.Fatal(err)
	}
	if err := tr.Add(5); err == nil {
		t.Fatal("Add of a repeated offset: want an error")
	}
	if _, _, err := tr.Done(6); err == nil {
		t.Fatal("Done of an offset never added: want an error")
	}
	if _, _, err := tr.Done(5); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tr.Done(5); err == nil {
		t.Fatal("Done twice: want an error")
	}
}

// TestTrackerRandomOrder finishes offsets in random order and checks that the reported
// offset never passes an unfinished one and ends one past the last.
func TestTrackerRandomOrder(t *testing.T) {
	const n = 10000
	tr := New()
	for o := range int64(n) {
		if err := tr.Add(o); err != nil {
			t.Fatal(err)
		}
	}
	order := rand.Perm(n)
	finished := make([]bool, n)
	for _, o := range order {
		finished[o] = true
		next, _, err := tr.Done(int64(o))
		if err != nil {
			t.Fatal(err)
		}
		for i := range next {
			if !finished[i] {
				t.Fatalf("commit offset %d passes unfinished offset %d", next, i)
			}
		}
		if next >= 0 && next < n && finished[next] && next > 0 && finished[next-1] {
			// next must stop exactly at the first unfinished offset
			t.Fatalf("commit offset %d stops before finished offset %d", next, next)
		}
	}
	if got := tr.Next(); got != n {
		t.Fatalf("Next = %d, want %d", got, n)
	}
}

// TestTrackerStampAndOldest: Stamp follows the offset to commit, Oldest the first offset not
// finished.
func TestTrackerStampAndOldest(t *testing.T) {
	tr := New()
	if _, ok := tr.Oldest(); ok {
		t.Fatal("Oldest of an empty tracker: want none")
	}
	for _, o := range []int64{3, 4, 7} {
		if err := tr.AddStamped(o, 100+o); err != nil {
			t.Fatal(err)
		}
	}
	if o, ok := tr.Oldest(); !ok || o != 3 {
		t.Fatalf("Oldest = %d, %v; want 3", o, ok)
	}
	mustDone := func(o int64) {
		t.Helper()
		if _, _, err := tr.Done(o); err != nil {
			t.Fatal(err)
		}
	}
	mustDone(4)
	if s := tr.Stamp(); s != 0 {
		t.Fatalf("Stamp before anything committable = %d, want 0", s)
	}
	mustDone(3)
	if s, o := tr.Stamp(), tr.Next(); s != 104 || o != 5 {
		t.Fatalf("Stamp, Next = %d, %d; want 104, 5", s, o)
	}
	if o, ok := tr.Oldest(); !ok || o != 7 {
		t.Fatalf("Oldest = %d, %v; want 7", o, ok)
	}
	mustDone(7)
	if _, ok := tr.Oldest(); ok || tr.Stamp() != 107 {
		t.Fatalf("after all done: Oldest present %v, Stamp %d; want none, 107", ok, tr.Stamp())
	}
}

func TestLenCountsFinishedBehindTheOldest(t *testing.T) {
	tr := New()
	for o := range int64(5) {
		if err := tr.Add(o); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range []int64{1, 2, 4} {
		if _, advanced, err := tr.Done(o); err != nil || advanced {
			t.Fatalf("Done(%d) = advanced %v, err %v; offset 0 is still running", o, advanced, err)
		}
	}
	if tr.Len() != 5 || tr.InFlight() != 2 {
		t.Fatalf("Len %d, InFlight %d; want 5 tracked (0 and 3 running, 1, 2 and 4 behind 0), 2 in flight", tr.Len(), tr.InFlight())
	}
	if next, advanced, err := tr.Done(0); err != nil || !advanced || next != 3 {
		t.Fatalf("Done(0) = %d, %v, %v; want 3, true", next, advanced, err)
	}
	if tr.Len() != 2 {
		t.Fatalf("Len %d after the oldest finished; want 2 (3 running, 4 behind it)", tr.Len())
	}
}
