// Package filesystem is the local-disk storage provider. Objects are plain
// files under a root folder. User metadata is an extended attribute of the
// file (set on the temporary file, so it appears atomically with the data),
// or, where the filesystem has no user xattrs, a hidden sidecar file next to
// it. Writes go to a temporary file that is synced and then renamed, so a
// reader never sees half a file.
//
// Unlike S3, a key cannot be both an object and a folder ("a/b" and "a/b/c"),
// and key segments may not start with a dot (those names are the provider's
// own files). Medallion's layouts never need either.
package filesystem

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/medallionlake/medallion/storage"
)

// Config configures a filesystem bucket.
type Config struct {
	// Root is the folder that holds the objects. It is created if missing.
	Root string
	// Sidecar keeps metadata in sidecar files even where extended
	// attributes work (tests use it to cover the fallback).
	Sidecar bool
}

func (c Config) validate() error {
	if c.Root == "" {
		return errors.New("filesystem storage: root folder is empty")
	}
	return nil
}

// Bucket is a storage.Bucket on the local filesystem.
type Bucket struct {
	root string
	// xattr is false once the filesystem refused a user xattr (or when
	// Config.Sidecar is set); metadata then goes to sidecars.
	xattr atomic.Bool
}

var _ storage.Bucket = (*Bucket)(nil)

// New opens (creating if needed) a bucket rooted at cfg.Root.
func New(cfg Config) (*Bucket, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("filesystem storage: create %s: %w", root, err)
	}
	b := &Bucket{root: root}
	b.xattr.Store(!cfg.Sidecar)
	return b, nil
}

// xattrName holds an object's metadata as JSON.
const xattrName = "user.medallion.metadata"

// Hidden files are ours (temporaries and metadata sidecars), never objects.
const (
	tmpMarker  = ".tmp-"
	metaSuffix = ".meta.json"
)

func hidden(name string) bool { return strings.HasPrefix(name, ".") }

func (b *Bucket) String() string { return "file://" + b.root }

// URI is file://<root>/<key>.
func (b *Bucket) URI(key string) string { return "file://" + b.root + "/" + key }

// LocalPath is the file that holds key.
func (b *Bucket) LocalPath(key string) (string, error) { return b.path(key) }

// Root is the bucket's folder.
func (b *Bucket) Root() string { return b.root }

func (b *Bucket) path(key string) (string, error) {
	if err := storage.ValidateKey(key); err != nil {
		return "", err
	}
	for _, seg := range strings.Split(key, "/") {
		if hidden(seg) {
			return "", fmt.Errorf("invalid object key %q: segments may not start with '.' on the filesystem provider", key)
		}
	}
	return filepath.Join(b.root, filepath.FromSlash(key)), nil
}

func sidecar(p string) string {
	return filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+metaSuffix)
}

// Put writes to a temporary file in the target folder, syncs it, then
// renames it over the key; the metadata sidecar is written the same way
// first, so the data rename is the commit point.
func (b *Bucket) Put(ctx context.Context, key string, r io.Reader, metadata map[string]string) error {
	return b.put(ctx, key, r, metadata, true)
}

// Create writes like Put but commits with a hard link, which fails if the
// name exists: no-replace, on every POSIX filesystem. A sidecar, where one
// is needed, follows the data (the data's commit must come first, or a
// losing writer would replace the winner's metadata); a crash between the
// two leaves an object without metadata, never wrong metadata.
func (b *Bucket) Create(ctx context.Context, key string, r io.Reader, metadata map[string]string) error {
	return b.put(ctx, key, r, metadata, false)
}

func (b *Bucket) put(ctx context.Context, key string, r io.Reader, metadata map[string]string, replace bool) error {
	p, err := b.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	var js []byte
	if len(metadata) > 0 {
		js, _ = json.Marshal(lowerKeys(metadata))
	}
	commit, inSidecar := rename, len(js) > 0 && !b.xattr.Load()
	if !replace {
		commit = linkNoReplace
	}
	if inSidecar && replace {
		if err := writeAtomic(ctx, sidecar(p), strings.NewReader(string(js)), nil, rename); err != nil {
			return fmt.Errorf("put %s metadata: %w", key, err)
		}
	}
	inXattr := false
	err = writeAtomic(ctx, p, r, func(f *os.File) error {
		if len(js) == 0 || !b.xattr.Load() {
			return nil
		}
		err := unix.Fsetxattr(int(f.Fd()), xattrName, js, 0)
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
			b.xattr.Store(false) // this filesystem has no user xattrs: use sidecars
			return errRetrySidecar
		}
		inXattr = err == nil
		return err
	}, commit)
	if errors.Is(err, errRetrySidecar) {
		return b.put(ctx, key, r, metadata, replace)
	}
	if errors.Is(err, fs.ErrExist) && !replace {
		return fmt.Errorf("create %s: %w", key, storage.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if inSidecar && !replace {
		if err := writeAtomic(ctx, sidecar(p), strings.NewReader(string(js)), nil, rename); err != nil {
			return fmt.Errorf("put %s metadata: %w", key, err)
		}
	}
	if len(js) == 0 || inXattr {
		// A sidecar left by an earlier write must not outlive it.
		if err := os.Remove(sidecar(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("put %s: %w", key, err)
		}
	}
	return syncDir(dir)
}

var errRetrySidecar = errors.New("no xattr support")

// rename commits a temporary file by renaming it over dst.
func rename(tmp, dst string) error { return os.Rename(tmp, dst) }

// linkNoReplace commits a temporary file under dst only if dst does not
// exist (an fs.ErrExist otherwise), and removes the temporary name.
func linkNoReplace(tmp, dst string) error {
	err := os.Link(tmp, dst)
	if rerr := os.Remove(tmp); err == nil && rerr != nil {
		return rerr
	}
	return err
}

// writeAtomic writes r to a temporary file beside dst, lets prepare set
// attributes on it, syncs it and commits it under dst.
func writeAtomic(ctx context.Context, dst string, r io.Reader, prepare func(*os.File) error, commit func(tmp, dst string) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+tmpMarker+"*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if prepare != nil {
		if err = prepare(f); err != nil {
			return err
		}
	}
	var src io.Reader = ctxReader{ctx, r}
	switch r.(type) {
	case *bytes.Buffer, *bytes.Reader, *strings.Reader:
		src = r // in memory: one write, nothing to wait for midway
	}
	if _, err = io.Copy(f, src); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return commit(f.Name(), dst)
}

// syncDir makes the entries of dir durable (a rename into it). It uses the
// bare system calls: os.Open also probes the descriptor for the poller,
// four wasted calls per bronze file.
func syncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Fsync(fd); err != nil {
		return &fs.PathError{Op: "fsync", Path: dir, Err: err}
	}
	return nil
}

// ctxReader stops a copy promptly when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (b *Bucket) open(ctx context.Context, key string) (*os.File, error) {
	p, err := b.path(key)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("get %s: %w", key, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if st, err := f.Stat(); err == nil && st.IsDir() {
		f.Close()
		return nil, fmt.Errorf("get %s: %w", key, storage.ErrNotFound)
	}
	return f, nil
}

// Get opens the object.
func (b *Bucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return b.open(ctx, key)
}

// GetRange opens length bytes from offset (to the end if length < 0).
func (b *Bucket) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", key, offset)
	}
	f, err := b.open(ctx, key)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if length < 0 {
		return f, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(f, length), f}, nil
}

// List walks the folder that contains prefix and yields matching objects in
// key order. The walk's own order differs from key order ("a/b" sorts after
// "a.b" as a key but is walked first), so keys are sorted before yielding.
func (b *Bucket) List(ctx context.Context, prefix string) iter.Seq2[storage.Object, error] {
	return b.ListAfter(ctx, prefix, "")
}

// ListAfter is List without the folders whose keys all sort before after.
func (b *Bucket) ListAfter(ctx context.Context, prefix, after string) iter.Seq2[storage.Object, error] {
	return func(yield func(storage.Object, error) bool) {
		objs, err := b.list(ctx, prefix, after)
		if err != nil {
			yield(storage.Object{}, err)
			return
		}
		for _, o := range objs {
			if !yield(o, nil) {
				return
			}
		}
	}
}

func (b *Bucket) list(ctx context.Context, prefix, after string) ([]storage.Object, error) {
	start := b.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = filepath.Join(b.root, filepath.FromSlash(prefix[:i]))
	}
	var out []storage.Object
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fs.SkipDir
			}
			return err
		}
		if hidden(d.Name()) && p != start {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(b.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			if p != start && before(key+"/", after) {
				return fs.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(key, prefix) || key <= after {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted while listing
		}
		if err != nil {
			return err
		}
		out = append(out, storage.Object{Key: key, Size: info.Size(), ModTime: info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", path.Join(b.String(), prefix), err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Folders reads the folder prefix names (prefix must end in "/"); a
// missing one has no folders.
func (b *Bucket) Folders(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !strings.HasSuffix(prefix, "/") {
		return nil, fmt.Errorf("list folders %s: the prefix must end in /", prefix)
	}
	entries, err := os.ReadDir(filepath.Join(b.root, filepath.FromSlash(prefix)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list folders %s: %w", path.Join(b.String(), prefix), err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && !hidden(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// before reports whether every key starting with folder sorts at or
// before after: they share folder as a prefix, so they do unless after
// starts with it too.
func before(folder, after string) bool {
	return folder < after && !strings.HasPrefix(after, folder)
}

// Stat returns size, modification time and metadata.
func (b *Bucket) Stat(ctx context.Context, key string) (storage.Object, error) {
	p, err := b.path(key)
	if err != nil {
		return storage.Object{}, err
	}
	if err := ctx.Err(); err != nil {
		return storage.Object{}, fmt.Errorf("stat %s: %w", key, err)
	}
	info, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && info.IsDir()) {
		return storage.Object{}, fmt.Errorf("stat %s: %w", key, storage.ErrNotFound)
	}
	if err != nil {
		return storage.Object{}, fmt.Errorf("stat %s: %w", key, err)
	}
	o := storage.Object{Key: key, Size: info.Size(), ModTime: info.ModTime()}
	if js, ok := getXattr(p); ok {
		if err := json.Unmarshal(js, &o.Metadata); err != nil {
			return storage.Object{}, fmt.Errorf("stat %s: corrupt metadata: %w", key, err)
		}
	} else if js, err := os.ReadFile(sidecar(p)); err == nil {
		if err := json.Unmarshal(js, &o.Metadata); err != nil {
			return storage.Object{}, fmt.Errorf("stat %s: corrupt metadata: %w", key, err)
		}
	}
	return o, nil
}

// Delete removes the object and its metadata; a missing key is not an error.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	p, err := b.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	for _, f := range []string{p, sidecar(p)} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete %s: %w", key, err)
		}
	}
	return nil
}

// getXattr reads the metadata attribute; false if there is none.
func getXattr(path string) ([]byte, bool) {
	buf := make([]byte, 4096)
	n, err := unix.Getxattr(path, xattrName, buf)
	if errors.Is(err, unix.ERANGE) {
		size, err := unix.Getxattr(path, xattrName, nil)
		if err != nil {
			return nil, false
		}
		buf = make([]byte, size)
		n, err = unix.Getxattr(path, xattrName, buf)
		if err != nil {
			return nil, false
		}
	} else if err != nil {
		return nil, false
	}
	return buf[:n], true
}

func lowerKeys(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}
