package lake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	icebergio "github.com/apache/iceberg-go/io"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/storage"
	"github.com/medallionlake/medallion/storage/s3"
)

// Iceberg reads and writes metadata through its own file IO. For s3:// we
// register an IO built on storage/s3, so one S3 client implementation (and
// one set of settings: endpoint, path style, credentials) serves bronze, the
// warehouse and the catalog. The properties are Iceberg's standard s3.* keys,
// the same ones PyIceberg or Spark need to read the tables.
func init() {
	icebergio.Unregister("s3") // in case another package registered gocloud's
	icebergio.Register("s3", func(ctx context.Context, parsed *url.URL, props map[string]string) (icebergio.IO, error) {
		b, err := bucketFor(ctx, parsed.Host, props)
		if err != nil {
			return nil, err
		}
		return &s3IO{b: b, root: "s3://" + parsed.Host + "/"}, nil
	})
}

func ioProperties(c config.S3) map[string]string {
	p := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			p[k] = v
		}
	}
	set(icebergio.S3EndpointURL, c.Endpoint)
	set(icebergio.S3Region, c.Region)
	set(icebergio.S3AccessKeyID, c.AccessKeyID)
	set(icebergio.S3SecretAccessKey, c.SecretAccessKey)
	set(icebergio.S3SessionToken, c.SessionToken)
	p[icebergio.S3ForceVirtualAddressing] = strconv.FormatBool(!c.PathStyle)
	return p
}

var bucketCache sync.Map // props+bucket -> *s3.Bucket

func bucketFor(ctx context.Context, bucket string, props map[string]string) (*s3.Bucket, error) {
	key := strings.Join([]string{bucket, props[icebergio.S3EndpointURL], props[icebergio.S3Region], props[icebergio.S3AccessKeyID],
		props[icebergio.S3SecretAccessKey], props[icebergio.S3SessionToken], props[icebergio.S3ForceVirtualAddressing]}, "\x00")
	if b, ok := bucketCache.Load(key); ok {
		return b.(*s3.Bucket), nil
	}
	b, err := s3.New(ctx, s3.Config{
		Bucket:          bucket,
		Endpoint:        props[icebergio.S3EndpointURL],
		Region:          props[icebergio.S3Region],
		AccessKeyID:     props[icebergio.S3AccessKeyID],
		SecretAccessKey: props[icebergio.S3SecretAccessKey],
		SessionToken:    props[icebergio.S3SessionToken],
		PathStyle:       props[icebergio.S3ForceVirtualAddressing] == "false",
	})
	if err != nil {
		return nil, fmt.Errorf("iceberg s3 io: %w", err)
	}
	bucketCache.Store(key, b)
	return b, nil
}

// s3IO implements iceberg-go's IO, ReadFileIO and WriteFileIO over a
// storage bucket. Names are full s3://bucket/key URIs.
type s3IO struct {
	b    storage.Bucket
	root string
}

func (s *s3IO) key(name string) (string, error) {
	k, ok := strings.CutPrefix(name, s.root)
	if !ok {
		return "", fmt.Errorf("iceberg s3 io: %s is not in %s", name, s.root)
	}
	return k, nil
}

func (s *s3IO) Open(name string) (icebergio.File, error) {
	k, err := s.key(name)
	if err != nil {
		return nil, err
	}
	st, err := s.b.Stat(context.Background(), k)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	if err != nil {
		return nil, err
	}
	return &s3File{b: s.b, key: k, name: name, size: st.Size, mod: st.ModTime}, nil
}

func (s *s3IO) ReadFile(name string) ([]byte, error) {
	k, err := s.key(name)
	if err != nil {
		return nil, err
	}
	data, err := storage.ReadAll(context.Background(), s.b, k)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
	}
	return data, err
}

func (s *s3IO) Remove(name string) error {
	k, err := s.key(name)
	if err != nil {
		return err
	}
	return s.b.Delete(context.Background(), k)
}

func (s *s3IO) WriteFile(name string, p []byte) error {
	k, err := s.key(name)
	if err != nil {
		return err
	}
	return s.b.Put(context.Background(), k, bytes.NewReader(p), nil)
}

// Create buffers to a temporary file and uploads it on Close: an S3 object
// appears whole or not at all.
func (s *s3IO) Create(name string) (icebergio.FileWriter, error) {
	k, err := s.key(name)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp("", "medallion-iceberg-*")
	if err != nil {
		return nil, err
	}
	return &s3Writer{File: f, b: s.b, key: k}, nil
}

type s3Writer struct {
	*os.File
	b   storage.Bucket
	key string
}

func (w *s3Writer) ReadFrom(r io.Reader) (int64, error) { return io.Copy(w.File, r) }

func (w *s3Writer) Close() error {
	defer os.Remove(w.File.Name())
	if _, err := w.File.Seek(0, io.SeekStart); err != nil {
		w.File.Close()
		return err
	}
	err := w.b.Put(context.Background(), w.key, w.File, nil)
	if cerr := w.File.Close(); err == nil {
		err = cerr
	}
	return err
}

// s3File reads by ranges: ReadAt issues one ranged GET, sequential Read
// keeps one streaming GET open until the next Seek.
type s3File struct {
	b      storage.Bucket
	key    string
	name   string
	size   int64
	mod    time.Time
	off    int64
	stream io.ReadCloser
}

func (f *s3File) Stat() (fs.FileInfo, error) { return fileInfo{f}, nil }

func (f *s3File) Read(p []byte) (int, error) {
	if f.off >= f.size {
		return 0, io.EOF
	}
	if f.stream == nil {
		rc, err := f.b.GetRange(context.Background(), f.key, f.off, -1)
		if err != nil {
			return 0, err
		}
		f.stream = rc
	}
	n, err := f.stream.Read(p)
	f.off += int64(n)
	return n, err
}

func (f *s3File) ReadAt(p []byte, off int64) (int, error) {
	if off >= f.size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), f.size-off)
	rc, err := f.b.GetRange(context.Background(), f.key, off, want)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := io.ReadFull(rc, p[:want])
	if err == nil && want < int64(len(p)) {
		err = io.EOF
	}
	return n, err
}

func (f *s3File) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += f.off
	case io.SeekEnd:
		offset += f.size
	}
	if offset < 0 {
		return 0, fmt.Errorf("seek %s: negative offset", f.name)
	}
	if offset != f.off && f.stream != nil {
		f.stream.Close()
		f.stream = nil
	}
	f.off = offset
	return offset, nil
}

func (f *s3File) Close() error {
	if f.stream != nil {
		return f.stream.Close()
	}
	return nil
}

type fileInfo struct{ f *s3File }

func (i fileInfo) Name() string       { return i.f.name }
func (i fileInfo) Size() int64        { return i.f.size }
func (i fileInfo) Mode() fs.FileMode  { return 0o444 }
func (i fileInfo) ModTime() time.Time { return i.f.mod }
func (i fileInfo) IsDir() bool        { return false }
func (i fileInfo) Sys() any           { return nil }
