// Package storagetest is the acceptance suite every storage provider runs,
// in the manner of thanos-io/objstore's AcceptanceTest.
package storagetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/medallionlake/medallion/storage"
)

// Acceptance runs the suite. newBucket must return an empty bucket; it is
// called once per subtest. The large-object case writes 12 MiB, which crosses
// a 5 MiB multipart threshold.
func Acceptance(t *testing.T, newBucket func(t *testing.T) storage.Bucket) {
	ctx := context.Background()

	t.Run("PutGetStat", func(t *testing.T) {
		b := newBucket(t)
		data := []byte("hello medallion")
		md := map[string]string{"Start-Offset": "100", "end-offset": "199", "record-count": "100"}
		must(t, b.Put(ctx, "bronze/orders/order_date=2024-01-15/raw-orders+0+00000000000000000100.parquet", bytes.NewReader(data), md))
		got := get(t, b, "bronze/orders/order_date=2024-01-15/raw-orders+0+00000000000000000100.parquet")
		if !bytes.Equal(got, data) {
			t.Fatalf("get = %q, want %q", got, data)
		}
		st, err := b.Stat(ctx, "bronze/orders/order_date=2024-01-15/raw-orders+0+00000000000000000100.parquet")
		must(t, err)
		if st.Size != int64(len(data)) {
			t.Errorf("stat size = %d, want %d", st.Size, len(data))
		}
		want := map[string]string{"start-offset": "100", "end-offset": "199", "record-count": "100"}
		for k, v := range want {
			if st.Metadata[k] != v {
				t.Errorf("metadata[%s] = %q, want %q (all: %v)", k, st.Metadata[k], v, st.Metadata)
			}
		}
		if st.Version() == "" || st.ModTime.IsZero() {
			t.Errorf("stat has no version: %+v", st)
		}
	})

	t.Run("OverwriteIsIdempotentAndVisible", func(t *testing.T) {
		b := newBucket(t)
		must(t, b.Put(ctx, "k", strings.NewReader("v1"), nil))
		v1, err := b.Stat(ctx, "k")
		must(t, err)
		must(t, b.Put(ctx, "k", strings.NewReader("version two"), nil))
		if got := string(get(t, b, "k")); got != "version two" {
			t.Fatalf("after overwrite get = %q", got)
		}
		v2, err := b.Stat(ctx, "k")
		must(t, err)
		if v1.Version() == v2.Version() {
			t.Errorf("rewrite under the same key kept version %q; late-data detection would miss it", v1.Version())
		}
		must(t, b.Put(ctx, "k", strings.NewReader("version two"), nil))
		objs := list(t, b, "")
		if len(objs) != 1 || objs[0].Key != "k" || objs[0].Size != int64(len("version two")) {
			t.Fatalf("after replay list = %+v, want the single object k", objs)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		b := newBucket(t)
		_, err := b.Get(ctx, "missing/key")
		isNotFound(t, "get", err)
		_, err = b.GetRange(ctx, "missing/key", 0, 10)
		isNotFound(t, "getrange", err)
		_, err = b.Stat(ctx, "missing/key")
		isNotFound(t, "stat", err)
		must(t, b.Delete(ctx, "missing/key"))
	})

	t.Run("Delete", func(t *testing.T) {
		b := newBucket(t)
		must(t, b.Put(ctx, "a/b", strings.NewReader("x"), map[string]string{"m": "1"}))
		must(t, b.Delete(ctx, "a/b"))
		_, err := b.Stat(ctx, "a/b")
		isNotFound(t, "stat after delete", err)
		if objs := list(t, b, ""); len(objs) != 0 {
			t.Fatalf("list after delete = %+v", objs)
		}
	})

	t.Run("GetRange", func(t *testing.T) {
		b := newBucket(t)
		must(t, b.Put(ctx, "r", strings.NewReader("0123456789"), nil))
		for _, tc := range []struct {
			off, n int64
			want   string
		}{{0, 3, "012"}, {4, 2, "45"}, {7, -1, "789"}, {8, 100, "89"}, {0, -1, "0123456789"}, {10, 5, ""}} {
			rc, err := b.GetRange(ctx, "r", tc.off, tc.n)
			must(t, err)
			got, err := io.ReadAll(rc)
			rc.Close()
			must(t, err)
			if string(got) != tc.want {
				t.Errorf("GetRange(%d, %d) = %q, want %q", tc.off, tc.n, got, tc.want)
			}
		}
	})

	t.Run("ListSortedByPrefix", func(t *testing.T) {
		b := newBucket(t)
		keys := []string{
			"bronze/orders/order_date=2024-01-15/raw-orders+1+00000000000000000000.parquet",
			"bronze/orders/order_date=2024-01-15/raw-orders+0+00000000000000000042.parquet",
			"bronze/orders/order_date=2024-01-16/raw-orders+0+00000000000000000000.parquet",
			"bronze/orders/order_date=2024-01-2/x",
			"bronze/events/event_date=2024-01-15/raw-events+0+00000000000000000000.parquet",
			"a.b", "a/b", "a-b", "a0",
		}
		for _, k := range keys {
			must(t, b.Put(ctx, k, strings.NewReader(k), nil))
		}
		all := slices.Clone(keys)
		sort.Strings(all)
		if got := keysOf(list(t, b, "")); !slices.Equal(got, all) {
			t.Errorf("list all = %v\nwant %v", got, all)
		}
		wantPrefix := []string{
			"bronze/orders/order_date=2024-01-15/raw-orders+0+00000000000000000042.parquet",
			"bronze/orders/order_date=2024-01-15/raw-orders+1+00000000000000000000.parquet",
			"bronze/orders/order_date=2024-01-16/raw-orders+0+00000000000000000000.parquet",
		}
		if got := keysOf(list(t, b, "bronze/orders/order_date=2024-01-1")); !slices.Equal(got, wantPrefix) {
			t.Errorf("list partial prefix = %v\nwant %v", got, wantPrefix)
		}
		if got := keysOf(list(t, b, "bronze/orders/order_date=2024-01-15/")); !slices.Equal(got, wantPrefix[:2]) {
			t.Errorf("list folder prefix = %v", got)
		}
		if got := list(t, b, "nothing/here/"); len(got) != 0 {
			t.Errorf("list of empty prefix = %v", got)
		}
		for _, o := range list(t, b, "a") {
			if o.Size != int64(len(o.Key)) {
				t.Errorf("list size of %s = %d, want %d", o.Key, o.Size, len(o.Key))
			}
		}
		n := 0
		for _, err := range b.List(ctx, "") {
			must(t, err)
			n++
			if n == 2 {
				break
			}
		}
		if n != 2 {
			t.Errorf("breaking out of List after 2 gave %d", n)
		}
	})

	t.Run("ListAfterAndFolders", func(t *testing.T) {
		b := newBucket(t)
		var all []string
		for _, day := range []string{"2024-01-09", "2024-01-10", "2024-01-11", "2024-02-01"} {
			for _, f := range []string{"a", "b"} {
				k := "bronze/orders/order_date=" + day + "/" + f
				all = append(all, k)
				must(t, b.Put(ctx, k, strings.NewReader(k), nil))
			}
		}
		must(t, b.Put(ctx, "bronze/other/x", strings.NewReader("x"), nil))
		if got, err := b.Folders(ctx, "bronze/orders/"); err != nil || !slices.Equal(got, []string{"order_date=2024-01-09", "order_date=2024-01-10", "order_date=2024-01-11", "order_date=2024-02-01"}) {
			t.Errorf("folders = %v, %v", got, err)
		}
		if got, err := b.Folders(ctx, "bronze/"); err != nil || !slices.Equal(got, []string{"orders", "other"}) {
			t.Errorf("folders of bronze/ = %v, %v", got, err)
		}
		if got, err := b.Folders(ctx, "nothing/"); err != nil || len(got) != 0 {
			t.Errorf("folders of a missing prefix = %v, %v", got, err)
		}
		for after, want := range map[string][]string{
			"":                                      all,
			"bronze/orders/order_date=2024-01-10/":  all[2:],
			"bronze/orders/order_date=2024-01-10/a": all[3:],
			"bronze/orders/order_date=2024-01-1":    all[2:],
			"bronze/orders/order_date=2024-01-12/":  all[6:],
			"bronze/orders/order_date=2024-03-01/":  nil,
			"a":                                     all,
		} {
			var got []string
			for o, err := range b.ListAfter(ctx, "bronze/orders/", after) {
				must(t, err)
				got = append(got, o.Key)
			}
			if !slices.Equal(got, want) {
				t.Errorf("list after %q = %v\nwant %v", after, got, want)
			}
		}
	})

	t.Run("ListPaginates", func(t *testing.T) {
		b := newBucket(t)
		var want []string
		for i := 0; i < 37; i++ {
			k := fmt.Sprintf("p/%03d", i)
			want = append(want, k)
			must(t, b.Put(ctx, k, strings.NewReader("x"), nil))
		}
		if got := keysOf(list(t, b, "p/")); !slices.Equal(got, want) {
			t.Fatalf("paginated list = %v", got)
		}
	})

	t.Run("LargeObject", func(t *testing.T) {
		b := newBucket(t)
		data := make([]byte, 12<<20+12345)
		_, _ = rand.Read(data)
		must(t, b.Put(ctx, "big/object.bin", bytes.NewReader(data), map[string]string{"record-count": "7"}))
		if got := get(t, b, "big/object.bin"); !bytes.Equal(got, data) {
			t.Fatalf("large object differs: got %d bytes, want %d", len(got), len(data))
		}
		st, err := b.Stat(ctx, "big/object.bin")
		must(t, err)
		if st.Size != int64(len(data)) || st.Metadata["record-count"] != "7" {
			t.Fatalf("large stat = size %d metadata %v", st.Size, st.Metadata)
		}
		rc, err := b.GetRange(ctx, "big/object.bin", 6<<20, 10)
		must(t, err)
		part, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(part, data[6<<20:6<<20+10]) {
			t.Fatalf("range in second part differs")
		}
	})

	t.Run("FailedPutLeavesOldObject", func(t *testing.T) {
		b := newBucket(t)
		must(t, b.Put(ctx, "atomic", strings.NewReader("old"), nil))
		broken := io.MultiReader(strings.NewReader("partial new data"), errReader{})
		if err := b.Put(ctx, "atomic", broken, nil); err == nil {
			t.Fatal("put from a failing reader succeeded")
		}
		if got := string(get(t, b, "atomic")); got != "old" {
			t.Fatalf("after a failed put get = %q, want the old object", got)
		}
		if err := b.Put(ctx, "fresh", io.MultiReader(strings.NewReader("x"), errReader{}), nil); err == nil {
			t.Fatal("put from a failing reader succeeded")
		}
		_, err := b.Stat(ctx, "fresh")
		isNotFound(t, "stat after failed put", err)
		if got := keysOf(list(t, b, "")); !slices.Equal(got, []string{"atomic"}) {
			t.Fatalf("failed puts left objects behind: %v", got)
		}
	})

	t.Run("CreateNeverReplaces", func(t *testing.T) {
		b := newBucket(t)
		md := map[string]string{"start-offset": "0", "end-offset": "9"}
		must(t, b.Create(ctx, "once/k", strings.NewReader("first"), md))
		err := b.Create(ctx, "once/k", strings.NewReader("second, larger"), map[string]string{"start-offset": "0", "end-offset": "99"})
		if !errors.Is(err, storage.ErrExists) {
			t.Fatalf("second create: err = %v, want storage.ErrExists", err)
		}
		if got := string(get(t, b, "once/k")); got != "first" {
			t.Fatalf("after a refused create get = %q, want the first object", got)
		}
		st, err := b.Stat(ctx, "once/k")
		must(t, err)
		if st.Metadata["end-offset"] != "9" || st.Size != int64(len("first")) {
			t.Fatalf("a refused create changed the object: size %d metadata %v", st.Size, st.Metadata)
		}
		if got := keysOf(list(t, b, "once/")); !slices.Equal(got, []string{"once/k"}) {
			t.Fatalf("a refused create left objects behind: %v", got)
		}
		// A Put still replaces (other writers of the lake rely on it).
		must(t, b.Put(ctx, "once/k", strings.NewReader("put"), nil))
		if got := string(get(t, b, "once/k")); got != "put" {
			t.Fatalf("put after create: get = %q", got)
		}
	})

	t.Run("ConcurrentCreatesOneWins", func(t *testing.T) {
		b := newBucket(t)
		const n = 8
		errs := make(chan error, n)
		for i := range n {
			go func() {
				errs <- b.Create(ctx, "race/k", strings.NewReader(fmt.Sprintf("writer %d", i)), map[string]string{"writer": fmt.Sprint(i)})
			}()
		}
		won := 0
		for range n {
			switch err := <-errs; {
			case err == nil:
				won++
			case !errors.Is(err, storage.ErrExists):
				t.Errorf("concurrent create: %v", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d of %d concurrent creates succeeded, want exactly one", won, n)
		}
		st, err := b.Stat(ctx, "race/k")
		must(t, err)
		if got := string(get(t, b, "race/k")); got != "writer "+st.Metadata["writer"] {
			t.Fatalf("the object's data (%q) and metadata (%v) come from different writers", got, st.Metadata)
		}
	})

	t.Run("URIAndFetch", func(t *testing.T) {
		b := newBucket(t)
		must(t, b.Put(ctx, "warehouse/silver/events/data/x.parquet", strings.NewReader("parquet bytes"), nil))
		uri := b.URI("warehouse/silver/events/data/x.parquet")
		if !strings.HasPrefix(uri, b.URI("")) || !strings.HasSuffix(uri, "/warehouse/silver/events/data/x.parquet") {
			t.Fatalf("URI = %q, root %q", uri, b.URI(""))
		}
		key, err := storage.KeyOf(b, uri)
		if err != nil || key != "warehouse/silver/events/data/x.parquet" {
			t.Fatalf("KeyOf(%q) = %q, %v", uri, key, err)
		}
		if _, err := storage.KeyOf(b, "s3://elsewhere/x"); err == nil {
			t.Fatal("KeyOf accepted a foreign URI")
		}
		paths, err := storage.Fetch(ctx, b, []string{"warehouse/silver/events/data/x.parquet"}, t.TempDir())
		must(t, err)
		data, err := os.ReadFile(paths[0])
		must(t, err)
		if string(data) != "parquet bytes" {
			t.Fatalf("fetched %q", data)
		}
		if _, err := storage.Fetch(ctx, b, []string{"missing"}, t.TempDir()); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("fetch of a missing key: %v", err)
		}
	})

	// Stage places every object inside the folder; a staged object stays
	// readable, unchanged, after the object is replaced and deleted, and
	// staging it again keeps it. Into a folder on another file system
	// (tmpfs) a local bucket's files are copied.
	t.Run("Stage", func(t *testing.T) {
		b := newBucket(t)
		keys := []string{"warehouse/gold/t/data/d=2024-01-01/a.parquet", "warehouse/gold/t/data/d=2024-01-02/b.parquet"}
		for _, k := range keys {
			must(t, b.Put(ctx, k, strings.NewReader("bytes of "+k), nil))
		}
		dirs := []string{t.TempDir()}
		if shm, err := os.MkdirTemp("/dev/shm", "stage-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(shm) })
			dirs = append(dirs, shm)
		}
		for _, dir := range dirs {
			paths, err := storage.Stage(ctx, b, keys, dir)
			must(t, err)
			for i, p := range paths {
				if !strings.HasPrefix(p, dir+string(filepath.Separator)) {
					t.Fatalf("staged %s outside %s", p, dir)
				}
				if data, err := os.ReadFile(p); err != nil || string(data) != "bytes of "+keys[i] {
					t.Fatalf("staged %s: %q %v", p, data, err)
				}
			}
		}
		dir := dirs[0]
		must(t, b.Put(ctx, keys[0], strings.NewReader("replaced"), nil))
		again, err := storage.Stage(ctx, b, keys, dir)
		must(t, err)
		must(t, b.Delete(ctx, keys[0]))
		if data, err := os.ReadFile(again[0]); err != nil || string(data) != "bytes of "+keys[0] {
			t.Fatalf("a staged file after its object was replaced and deleted: %q %v", data, err)
		}
		if _, err := storage.Stage(ctx, b, []string{keys[0]}, t.TempDir()); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("staging a deleted object: %v", err)
		}
	})

	t.Run("InvalidKeys", func(t *testing.T) {
		b := newBucket(t)
		for _, k := range []string{"", "/abs", "a/../b", "a//b", "a/./b", `a\b`} {
			if err := b.Put(ctx, k, strings.NewReader("x"), nil); err == nil {
				t.Errorf("put %q succeeded", k)
			}
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		b := newBucket(t)
		must(t, b.Put(ctx, "c/k", strings.NewReader("x"), nil))
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		checks := map[string]error{}
		checks["put"] = b.Put(cctx, "c/new", strings.NewReader("x"), nil)
		checks["create"] = b.Create(cctx, "c/new", strings.NewReader("x"), nil)
		_, checks["get"] = b.Get(cctx, "c/k")
		_, checks["getrange"] = b.GetRange(cctx, "c/k", 0, 1)
		_, checks["stat"] = b.Stat(cctx, "c/k")
		checks["delete"] = b.Delete(cctx, "c/k")
		for _, err := range b.List(cctx, "c/") {
			checks["list"] = err
			break
		}
		for op, err := range checks {
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s with a cancelled context: err = %v, want context.Canceled", op, err)
			}
		}
		if got := keysOf(list(t, b, "c/")); !slices.Equal(got, []string{"c/k"}) {
			t.Errorf("cancelled calls changed the bucket: %v", got)
		}
	})
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("injected read failure") }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func isNotFound(t *testing.T, op string, err error) {
	t.Helper()
	if !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("%s of a missing key: err = %v, want storage.ErrNotFound", op, err)
	}
}

func get(t *testing.T, b storage.Bucket, key string) []byte {
	t.Helper()
	data, err := storage.ReadAll(context.Background(), b, key)
	must(t, err)
	return data
}

func list(t *testing.T, b storage.Bucket, prefix string) []storage.Object {
	t.Helper()
	objs, err := storage.ListAll(context.Background(), b, prefix)
	must(t, err)
	return objs
}

func keysOf(objs []storage.Object) []string {
	out := []string{}
	for _, o := range objs {
		out = append(out, o.Key)
	}
	return out
}
