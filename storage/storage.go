// Package storage is Medallion's object storage: one small interface with a
// local filesystem provider (storage/filesystem) and an S3 provider
// (storage/s3). Callers open a bucket from configuration with
// storage/client.Open. Wrappers (prefixing, fault injection) implement the
// same interface around a provider rather than living inside one.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ErrNotFound is returned (wrapped) by Get, GetRange and Stat when the key
// does not exist. Callers check it with errors.Is and treat the object as
// absent; it is not a transient failure and retrying will not help.
var ErrNotFound = errors.New("object not found")

// ErrExists is returned (wrapped) by Create when the key already holds an
// object. The object there is someone else's write and stays as it is: the
// caller reads it instead of replacing it. Retrying will not help.
var ErrExists = errors.New("object already exists")

// Object describes a stored object.
type Object struct {
	Key     string
	Size    int64
	ETag    string    // content hash from the provider; "" on the local filesystem
	ModTime time.Time // last write
	// Metadata is the user metadata given to Put, with lower-case keys. It is
	// filled by Stat, not by List (S3 listings do not carry it).
	Metadata map[string]string
}

// Version identifies this write of the object: the ETag where the provider
// has one, else the modification time. Together with key and size it is what
// late-data detection hashes, so an object rewritten under the same key is
// noticed.
func (o Object) Version() string {
	if o.ETag != "" {
		return o.ETag
	}
	return strconv.FormatInt(o.ModTime.UnixNano(), 10)
}

// Bucket is an object store. Keys are slash-separated relative paths.
//
// Every method takes ctx first and returns promptly with ctx.Err() (wrapped)
// once it is cancelled.
type Bucket interface {
	// Put stores the whole of r under key with the given user metadata
	// (keys lower-case). It is atomic: a reader sees the old object or the
	// new one, never part of one. It is idempotent: putting the same bytes
	// again leaves the same object.
	Put(ctx context.Context, key string, r io.Reader, metadata map[string]string) error
	// Create is Put that never replaces: it stores r under key only if no
	// object has that key, and otherwise returns ErrExists and leaves the
	// object there unchanged. Of two concurrent Creates of one key exactly
	// one succeeds. Write-once objects (bronze files) use it, so that a
	// writer that woke up late can never replace what another one wrote.
	Create(ctx context.Context, key string, r io.Reader, metadata map[string]string) error
	// Get opens the object for reading. The caller closes it.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// GetRange opens length bytes from offset; length < 0 reads to the end.
	GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	// List yields the objects whose keys start with prefix, sorted by key
	// (byte order), fetching them page by page. Stop early by breaking out
	// of the loop. An error is yielded once, as the last element.
	List(ctx context.Context, prefix string) iter.Seq2[Object, error]
	// ListAfter is List of the keys that sort after after (S3's
	// StartAfter): a listing of date-named folders can start at a date
	// without reading the ones before it.
	ListAfter(ctx context.Context, prefix, after string) iter.Seq2[Object, error]
	// Folders lists, sorted, the names that keys under prefix (ending in
	// "/") continue with up to their next "/" (S3's common prefixes): the
	// date folders of a bronze domain without listing their files.
	Folders(ctx context.Context, prefix string) ([]string, error)
	// Stat returns the object's size, ETag or modification time, and
	// metadata.
	Stat(ctx context.Context, key string) (Object, error)
	// Delete removes the object. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// URI is the absolute location of key, e.g. s3://bucket/prefix/key or
	// file:///root/key; URI("") is the bucket's root with a trailing slash.
	// Iceberg metadata records data files by these URIs.
	URI(key string) string
	// String names the bucket for logs, e.g. s3://bucket/prefix.
	String() string
}

// Local is implemented by buckets whose objects are files on this machine;
// DuckDB reads those in place instead of through a download.
type Local interface {
	LocalPath(key string) (string, error)
}

// KeyOf turns a URI of b back into a key.
func KeyOf(b Bucket, uri string) (string, error) {
	key, ok := strings.CutPrefix(uri, b.URI(""))
	if !ok {
		return "", fmt.Errorf("%s is not inside %s", uri, b)
	}
	return key, nil
}

// ValidateKey rejects keys that could escape the bucket or alias another
// key: empty, absolute, with empty, "." or ".." segments, or with a
// backslash.
func ValidateKey(key string) error {
	if key == "" {
		return errors.New("empty object key")
	}
	if strings.HasPrefix(key, "/") || strings.Contains(key, "\\") {
		return fmt.Errorf("invalid object key %q", key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("invalid object key %q", key)
		}
	}
	return nil
}

// Fetch makes the objects readable as local files, in the order given: a
// Local bucket's own paths, or downloads into dir (keeping the key's path
// below it) for remote buckets. DuckDB reads only local files here, since its
// httpfs extension is not available.
func Fetch(ctx context.Context, b Bucket, keys []string, dir string) ([]string, error) {
	out := make([]string, len(keys))
	if l, ok := b.(Local); ok {
		for i, k := range keys {
			p, err := l.LocalPath(k)
			if err != nil {
				return nil, err
			}
			if _, err := os.Stat(p); err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return nil, fmt.Errorf("fetch %s: %w", k, ErrNotFound)
				}
				return nil, err
			}
			out[i] = p
		}
		return out, nil
	}
	for i, k := range keys {
		if err := ValidateKey(k); err != nil {
			return nil, err
		}
		dst := filepath.Join(dir, filepath.FromSlash(k))
		if err := download(ctx, b, k, dst); err != nil {
			return nil, err
		}
		out[i] = dst
	}
	return out, nil
}

// Stage is Fetch that always places the objects inside dir, keeping each
// key's path below it (so DuckDB still sees hive-style col=value folders
// and skips files by them): a Local bucket's files are hard-linked (copied
// when dir is on another file system), remote objects downloaded. A reader
// confined to dir (the query sandbox) can then read them, and a hard link
// keeps its file readable after maintain deletes the original.
func Stage(ctx context.Context, b Bucket, keys []string, dir string) ([]string, error) {
	l, local := b.(Local)
	out := make([]string, len(keys))
	made := map[string]bool{}
	for i, k := range keys {
		if err := ValidateKey(k); err != nil {
			return nil, err
		}
		dst := filepath.Join(dir, filepath.FromSlash(k))
		out[i] = dst
		if _, err := os.Lstat(dst); err == nil {
			continue // staged before: a data file's name is never reused
		}
		if parent := filepath.Dir(dst); !made[parent] {
			if err := os.MkdirAll(parent, 0o755); err != nil {
				return nil, err
			}
			made[parent] = true
		}
		if !local {
			if err := download(ctx, b, k, dst); err != nil {
				return nil, err
			}
			continue
		}
		src, err := l.LocalPath(k)
		if err != nil {
			return nil, err
		}
		if err := os.Link(src, dst); err == nil {
			continue
		} else if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("stage %s: %w", k, ErrNotFound)
		}
		if err := download(ctx, b, k, dst); err != nil { // another file system: copy
			return nil, err
		}
	}
	return out, nil
}

// download writes the object to a temporary file beside dst and renames it
// into place, so that a crash leaves no partial file under dst's name and
// a hard link already at dst is replaced, never written through.
func download(ctx context.Context, b Bucket, key, dst string) error {
	rc, err := b.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(dst), ".download-*")
	if err != nil {
		return err
	}
	_, err = io.Copy(f, rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), dst)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("download %s: %w", key, err)
	}
	return nil
}

// PutFile uploads a local file.
func PutFile(ctx context.Context, b Bucket, key, path string, metadata map[string]string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return b.Put(ctx, key, f, metadata)
}

// ReadAll reads a whole object into memory, for small objects only.
func ReadAll(ctx context.Context, b Bucket, key string) ([]byte, error) {
	rc, err := b.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return data, nil
}

// ListAll collects List into a slice.
func ListAll(ctx context.Context, b Bucket, prefix string) ([]Object, error) {
	var out []Object
	for o, err := range b.List(ctx, prefix) {
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}
