package s3_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/medallionlake/medallion/internal/testenv"
	"github.com/medallionlake/medallion/storage"
	"github.com/medallionlake/medallion/storage/s3"
	"github.com/medallionlake/medallion/storage/storagetest"
)

// newBucket creates a fresh bucket on srv and returns a provider for it,
// with a small multipart threshold and page size so the suite exercises
// multipart uploads and pagination.
func newBucket(t *testing.T, srv *testenv.S3Server, prefix string) *s3.Bucket {
	t.Helper()
	return srv.Bucket(t, prefix, func(c *s3.Config) { c.MultipartThreshold, c.ListPageSize = s3.MinPartSize, 7 })
}

func TestAcceptanceS3(t *testing.T) {
	srv := testenv.StartS3(t)
	storagetest.Acceptance(t, func(t *testing.T) storage.Bucket { return newBucket(t, srv, "") })
}

func TestAcceptanceS3WithPrefix(t *testing.T) {
	srv := testenv.StartS3(t)
	storagetest.Acceptance(t, func(t *testing.T) storage.Bucket { return newBucket(t, srv, "lake/prod") })
}

// The prefix keeps two deployments in one bucket apart.
func TestPrefixIsolates(t *testing.T) {
	srv := testenv.StartS3(t)
	ctx := context.Background()
	a := newBucket(t, srv, "")
	b, err := s3.New(ctx, s3.Config{Bucket: strings.TrimPrefix(a.String(), "s3://"), Prefix: "tenant", Endpoint: srv.Endpoint,
		PathStyle: true, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "x/y", strings.NewReader("1"), nil); err != nil {
		t.Fatal(err)
	}
	objs, err := storage.ListAll(ctx, a, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].Key != "tenant/x/y" {
		t.Fatalf("unprefixed view = %+v", objs)
	}
	objs, err = storage.ListAll(ctx, b, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].Key != "x/y" {
		t.Fatalf("prefixed view = %+v", objs)
	}
}

// Wrong credentials are an error that names the operation, not ErrNotFound.
func TestBadCredentials(t *testing.T) {
	srv := testenv.StartS3(t)
	good := newBucket(t, srv, "")
	bad, err := s3.New(context.Background(), s3.Config{Bucket: strings.TrimPrefix(good.String(), "s3://"), Endpoint: srv.Endpoint,
		PathStyle: true, AccessKeyID: srv.AccessKey, SecretAccessKey: "wrong"})
	if err != nil {
		t.Fatal(err)
	}
	err = bad.Put(context.Background(), "k", strings.NewReader("x"), nil)
	if err == nil || errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), "put") {
		t.Fatalf("put with wrong secret: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	if _, err := s3.New(context.Background(), s3.Config{}); err == nil {
		t.Error("empty bucket accepted")
	}
	if _, err := s3.New(context.Background(), s3.Config{Bucket: "b", MultipartThreshold: 1 << 20}); err == nil {
		t.Error("1MiB multipart threshold accepted")
	}
}
