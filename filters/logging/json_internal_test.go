package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin's daylight saving changes, on any machine

	"github.com/go-json-experiment/json/jsontext"
)

// TestAppendRecordTime: the cached second gives the text AppendFormat
// does, within a second, across seconds, across a daylight saving change
// (the same wall clock second twice, with two offsets), between
// locations, and for years the cache does not hold.
func TestAppendRecordTime(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	// 2026-10-25 03:00 CEST becomes 02:00 CET.
	change := time.Date(2026, 10, 25, 1, 0, 0, 0, time.UTC)
	base := time.Date(2026, 11, 26, 10, 21, 9, 0, time.UTC)
	var times []time.Time
	for _, step := range []time.Duration{0, 1, 10, 999_999, time.Millisecond, 123_456_789, 120_000_000, 999_999_999, time.Second, time.Second + 5*time.Millisecond, time.Hour} {
		times = append(times, base.Add(step), base.Add(step).In(berlin), base.Add(step).Local(), base.Add(step).In(time.FixedZone("", -(3*3600+30*60))))
	}
	for _, step := range []time.Duration{-time.Second, -time.Millisecond, 0, time.Millisecond, time.Second} {
		times = append(times, change.Add(step).In(berlin), change.Add(step-time.Hour).In(berlin))
	}
	times = append(times,
		time.Date(10000, 1, 1, 0, 0, 0, 5e6, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 7e6, time.UTC),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 5e8, time.UTC), time.Date(1969, 12, 31, 23, 59, 59, 7e8, time.UTC),
		time.Date(2026, 3, 1, 0, 0, 0, 1, time.FixedZone("", 5*3600+45*60+30)),
		time.Now(), time.Now())
	for _, order := range [][]time.Time{times, reversed(times)} {
		lastStamp.Store(nil)
		for _, ts := range order {
			for range 2 { // the second time from the cache
				got := string(appendRecordTime([]byte("x"), ts))
				if want := "x" + ts.Format(recordTimeLayout); got != want {
					t.Errorf("appendRecordTime(%v) = %q, want %q", ts, got, want)
				}
			}
		}
	}
}

// TestRecordTimeMatchesJSONHandler: a record's time is the text slog's
// JSONHandler writes for the same instant, whole seconds and fractions of
// every length, in UTC and in a zone.
func TestRecordTimeMatchesJSONHandler(t *testing.T) {
	zone := time.FixedZone("", -(3*3600 + 30*60))
	for _, ts := range []time.Time{
		time.Date(2026, 11, 26, 10, 21, 9, 0, time.UTC),
		time.Date(2026, 11, 26, 10, 21, 9, 120_000_000, time.UTC),
		time.Date(2026, 11, 26, 10, 21, 9, 123_456_789, time.UTC),
		time.Date(2026, 11, 26, 10, 21, 9, 1, zone),
	} {
		var buf bytes.Buffer
		if err := slog.NewJSONHandler(&buf, nil).Handle(context.Background(), slog.NewRecord(ts, slog.LevelInfo, "m", 0)); err != nil {
			t.Fatal(err)
		}
		var rec struct{ Time string }
		if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		lastStamp.Store(nil)
		for range 2 { // formatted, then from the cache
			if got := string(appendRecordTime(nil, ts)); got != rec.Time {
				t.Errorf("record time %q, JSONHandler's %q", got, rec.Time)
			}
		}
	}
}

func reversed(ts []time.Time) []time.Time {
	out := make([]time.Time, len(ts))
	for i, t := range ts {
		out[len(ts)-1-i] = t
	}
	return out
}

// TestAppendStringPlainASCII: the plain-ASCII shortcut writes what
// jsontext does, at every boundary of what it takes.
func TestAppendStringPlainASCII(t *testing.T) {
	for c := 0; c < 256; c++ {
		for _, s := range []string{string(rune(c)), "a" + string([]byte{byte(c)}) + "b", string([]byte{byte(c)})} {
			got := string(appendString(nil, s))
			want, _ := jsontext.AppendQuote(nil, s) // invalid UTF-8 is written as U+FFFD, and reported
			if got != string(want) {
				t.Errorf("appendString(%q) = %s, want %s", s, got, want)
			}
		}
	}
}

// TestAppendMillisText: the integer text is the shortest float text of
// the rounded milliseconds, as strconv writes it, wherever a float64 of
// nanoseconds is exact.
func TestAppendMillisText(t *testing.T) {
	ds := []time.Duration{0, 1, 499, 500, 501, 999, 1000, 1499, 1500, 9999, 10_000, 840_000, 999_500, 1_000_000,
		1_234_567, 1_500_000_499, 1<<53 - 1, -1, -499, -500, -501, -1_234_567, -(1<<53 - 1)}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		ds = append(ds, time.Duration(r.Int64N(1<<53)), time.Duration(r.Int64N(10_000_000)), -time.Duration(r.Int64N(1<<40)))
	}
	for _, d := range ds {
		want := strconv.FormatFloat(math.Round(float64(d)/1e3)/1e3, 'f', -1, 64)
		if want == "-0" {
			want = "0"
		}
		if got := string(appendMillisText(nil, d)); got != want {
			t.Fatalf("appendMillisText(%d) = %q, want %q", int64(d), got, want)
		}
	}
}
