package sink

import (
	"fmt"
	"strings"
	"testing"

	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/medtype"
)

// TestBatchFiles: a batch becomes files per partition date, in offset
// order, cut at the message and byte limits, with every record in exactly
// one file.
func TestBatchFiles(t *testing.T) {
	d1, d2 := medtype.MustDate("2024-01-15"), medtype.MustDate("2024-01-14")
	b := &batch{}
	add := func(off int64, d medtype.Date, size int) {
		b.recs = append(b.recs, bronze.Record{Offset: off, Payload: strings.Repeat("x", size)})
		b.dates = append(b.dates, d)
	}
	for off := int64(0); off < 10; off++ {
		d := d1
		if off%4 == 3 {
			d = d2 // late messages, interleaved
		}
		add(off, d, 36) // 100 bytes with the 64 of overhead
	}
	add(10, d1, 936) // 1,000 bytes: a file of its own
	add(11, d1, 36)

	var got []string
	b.files(10, 250, func(d medtype.Date, recs []bronze.Record) {
		var offs []string
		for _, r := range recs {
			offs = append(offs, fmt.Sprint(r.Offset))
		}
		got = append(got, d.String()+":"+strings.Join(offs, ","))
	})
	want := []string{
		"2024-01-15:0,1,2",  // 300 bytes: the file that reaches 250 ends
		"2024-01-15:4,5,6",  // (offsets 3 and 7 are of another date)
		"2024-01-15:8,9,10", // 200 bytes are under 250: one more, however large
		"2024-01-15:11",
		"2024-01-14:3,7",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("files:\n got %v\nwant %v", got, want)
	}

	// One date, the usual case: the batch's own slice, cut at the count.
	b = &batch{}
	for off := int64(0); off < 7; off++ {
		add(off, d1, 0)
	}
	got = nil
	b.files(3, 1<<20, func(d medtype.Date, recs []bronze.Record) {
		got = append(got, fmt.Sprint(d, len(recs), recs[0].Offset))
	})
	if fmt.Sprint(got) != "[2024-01-15 3 0 2024-01-15 3 3 2024-01-15 1 6]" {
		t.Fatalf("one date: %v", got)
	}
}
