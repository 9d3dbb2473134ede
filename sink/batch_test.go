package sink

import (
	"fmt"
	"strings"
	"testing"

	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/medtype"
)

// TestBatchByDate: a batch becomes one file per partition date, in order
// of first appearance and offset order within a date, with every record in
// exactly one file.
func TestBatchByDate(t *testing.T) {
	d1, d2 := medtype.MustDate("2024-01-15"), medtype.MustDate("2024-01-14")
	b := &batch{}
	add := func(off int64, d medtype.Date) {
		b.recs = append(b.recs, bronze.Record{Offset: off})
		b.dates = append(b.dates, d)
	}
	files := func() string {
		var got []string
		for _, g := range b.byDate() {
			var offs []string
			for _, r := range g.recs {
				offs = append(offs, fmt.Sprint(r.Offset))
			}
			got = append(got, g.date.String()+":"+strings.Join(offs, ","))
		}
		return strings.Join(got, " ")
	}
	if got := files(); got != "" {
		t.Fatalf("empty batch: %q", got)
	}
	for off := int64(0); off < 10; off++ {
		d := d1
		if off%4 == 3 {
			d = d2 // late messages, interleaved
		}
		add(off, d)
	}
	if got, want := files(), "2024-01-15:0,1,2,4,5,6,8,9 2024-01-14:3,7"; got != want {
		t.Fatalf("files:\n got %s\nwant %s", got, want)
	}

	// One date, the usual case: the batch's own records, not a copy.
	b = &batch{}
	for off := int64(0); off < 7; off++ {
		add(off, d1)
	}
	g := b.byDate()
	if len(g) != 1 || len(g[0].recs) != 7 || &g[0].recs[0] != &b.recs[0] {
		t.Fatalf("one date: %v", g)
	}
}
