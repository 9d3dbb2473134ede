package sink_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/medallionlake/medallion/bronze"
	"github.com/medallionlake/medallion/internal/testenv"
	"github.com/medallionlake/medallion/sink"
	"github.com/medallionlake/medallion/storage"
)

// TestSinkToS3: the sink against a real S3 server (versitygw) under a key
// prefix: every message lands once, each object's metadata gives its
// offsets and count, and the committed offsets are the end offsets.
func TestSinkToS3(t *testing.T) {
	brokers, msgs := eventBacklog(t, 20_000)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := testenv.StartS3(t).Bucket(t, "lake", nil)

	o := options(brokers, b, domainsFor(t, "events"))
	o.UntilEnd = true
	s, err := sink.New(o)
	must(t, err)
	must(t, s.Run(ctx))

	if got := bronzeRows(t, b); len(got) != len(msgs) {
		t.Fatalf("bronze has %d messages, want %d", len(got), len(msgs))
	}
	objs, err := storage.ListAll(ctx, b, "bronze/")
	must(t, err)
	if len(objs) == 0 || int64(len(objs)) != s.Stats().Files.Load() {
		t.Fatalf("%d objects, the sink wrote %d files", len(objs), s.Stats().Files.Load())
	}
	for _, o := range objs {
		st, err := b.Stat(ctx, o.Key)
		must(t, err)
		data, err := storage.ReadAll(ctx, b, o.Key)
		must(t, err)
		recs, err := bronze.Decode(bytesReader(data), int64(len(data)))
		must(t, err)
		want := map[string]string{
			bronze.MetaStartOffset: strconv.FormatInt(recs[0].Offset, 10),
			bronze.MetaEndOffset:   strconv.FormatInt(recs[len(recs)-1].Offset, 10),
			bronze.MetaRecordCount: strconv.Itoa(len(recs)),
		}
		for k, v := range want {
			if st.Metadata[k] != v {
				t.Fatalf("%s: metadata %s = %q, want %q (all: %v)", o.Key, k, st.Metadata[k], v, st.Metadata)
			}
		}
	}
	if got, want := committed(t, brokers, "raw-events"), endsOf(msgs, "raw-events"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("committed %v, want %v", got, want)
	}
}
