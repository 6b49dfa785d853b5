package logging

import (
	"sync/atomic"
	"time"
)

// stamp is the text recordTimeLayout makes of one second in one location,
// split around the milliseconds: "2006-01-02T15:04:05." and "Z07:00".
type stamp struct {
	sec  int64
	loc  *time.Location
	head []byte
	zone []byte
}

// lastStamp is the second of a recent record. Records come by the
// thousand each second, and formatting the whole time was a tenth of a
// record's cost; within the second only the milliseconds change. An
// instant and a location fix the zone offset, so the text is exact.
var lastStamp atomic.Pointer[stamp]

// appendRecordTime appends t as recordTimeLayout formats it.
func appendRecordTime(b []byte, t time.Time) []byte {
	sec, loc := t.Unix(), t.Location()
	if s := lastStamp.Load(); s != nil && s.sec == sec && s.loc == loc {
		ms := t.Nanosecond() / int(time.Millisecond)
		b = append(b, s.head...)
		b = append(b, byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
		return append(b, s.zone...)
	}
	n := len(b)
	b = t.AppendFormat(b, recordTimeLayout)
	// Years past 9999 or before 1 are longer; they are not kept.
	if text := b[n:]; len(text) >= len("2006-01-02T15:04:05.000Z") && text[19] == '.' {
		lastStamp.Store(&stamp{
			sec:  sec,
			loc:  loc,
			head: append([]byte(nil), text[:20]...),
			zone: append([]byte(nil), text[23:]...),
		})
	}
	return b
}
