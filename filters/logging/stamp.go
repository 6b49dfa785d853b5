package logging

import (
	"sync/atomic"
	"time"
)

// recordTimeLayout is JSONHandler's time format: RFC 3339 with as many
// digits of the second's fraction as it needs, none for a whole second.
const recordTimeLayout = time.RFC3339Nano

// stamp is the text recordTimeLayout makes of one second in one location,
// split around the fraction: "2006-01-02T15:04:05" and "Z07:00".
type stamp struct {
	sec  int64
	loc  *time.Location
	head []byte
	zone []byte
}

// lastStamp is the second of a recent record. Records come by the
// thousand each second, and formatting the whole time was a tenth of a
// record's cost; within the second only the fraction changes. An instant
// and a location fix the zone offset, so the text is exact.
var lastStamp atomic.Pointer[stamp]

// appendRecordTime appends t as recordTimeLayout formats it.
func appendRecordTime(b []byte, t time.Time) []byte {
	sec, loc := t.Unix(), t.Location()
	if s := lastStamp.Load(); s != nil && s.sec == sec && s.loc == loc {
		b = append(b, s.head...)
		b = appendFraction(b, t.Nanosecond())
		return append(b, s.zone...)
	}
	n := len(b)
	b = t.AppendFormat(b, recordTimeLayout)
	text := b[n:]
	// Years past 9999 or before 1 are longer; they are not kept.
	const head = len("2006-01-02T15:04:05")
	if len(text) <= head || text[4] != '-' || text[10] != 'T' {
		return b
	}
	zone := head
	if text[zone] == '.' {
		zone++
		for zone < len(text) && text[zone] >= '0' && text[zone] <= '9' {
			zone++
		}
	}
	lastStamp.Store(&stamp{
		sec:  sec,
		loc:  loc,
		head: append([]byte(nil), text[:head]...),
		zone: append([]byte(nil), text[zone:]...),
	})
	return b
}

// appendFraction appends ns as RFC3339Nano writes a second's fraction:
// nothing for 0, else a dot and nine digits without their trailing zeros.
func appendFraction(b []byte, ns int) []byte {
	if ns == 0 {
		return b
	}
	var digits [9]byte
	for i := 8; i >= 0; i-- {
		digits[i] = byte('0' + ns%10)
		ns /= 10
	}
	end := len(digits)
	for digits[end-1] == '0' {
		end--
	}
	b = append(b, '.')
	return append(b, digits[:end]...)
}
