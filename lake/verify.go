package lake

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/parquet-go/parquet-go"

	"github.com/medallionlake/medallion/storage"
)

// Damage is a live data file that is not what its manifest records.
type Damage struct {
	Table TableID
	Key   string // the file's object key
	// Problem says what is wrong: missing, another size, another row
	// count, or not a Parquet file.
	Problem string
}

func (d Damage) String() string { return fmt.Sprintf("%s: %s: %s", d.Table, d.Key, d.Problem) }

// Verify checks every live data file of a table against its manifest:
// that it exists, has the recorded size and, by its Parquet footer, the
// recorded row count. It reads footers only. It returns the damaged files
// and how many files it checked.
func (l *Lake) Verify(ctx context.Context, id TableID) (damaged []Damage, checked int, err error) {
	files, err := l.Files(ctx, id, nil, Snapshot{})
	if err != nil {
		return nil, 0, err
	}
	if _, damaged, err = l.Intact(ctx, id, files); err != nil {
		return nil, 0, fmt.Errorf("verify %s: %w", id, err)
	}
	return damaged, len(files), nil
}

// Intact splits data files into those that are what their manifest
// records and those that are damaged or missing.
func (l *Lake) Intact(ctx context.Context, id TableID, files []DataFile) (intact []DataFile, damaged []Damage, err error) {
	for _, f := range files {
		key, problem, err := l.problemOf(ctx, f)
		if err != nil {
			return nil, nil, err
		}
		if problem != "" {
			damaged = append(damaged, Damage{Table: id, Key: key, Problem: problem})
			continue
		}
		intact = append(intact, f)
	}
	return intact, damaged, nil
}

// problemOf returns a data file's key and what is wrong with it, or "".
func (l *Lake) problemOf(ctx context.Context, f DataFile) (key, problem string, err error) {
	if key, err = storage.KeyOf(l.bucket, f.URI); err != nil {
		return "", "", err
	}
	problem, err = l.checkFile(ctx, key, f)
	return key, problem, err
}

// checkFile returns what is wrong with one file, or "".
func (l *Lake) checkFile(ctx context.Context, key string, f DataFile) (string, error) {
	o, err := l.bucket.Stat(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return "missing", nil
	}
	if err != nil {
		return "", err
	}
	if o.Size != f.Size {
		return fmt.Sprintf("%d bytes, the manifest records %d", o.Size, f.Size), nil
	}
	pf, err := parquet.OpenFile(&objectReader{ctx: ctx, b: l.bucket, key: key}, o.Size,
		parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return fmt.Sprintf("not a readable Parquet file (%v)", err), nil
	}
	if pf.NumRows() != f.Rows {
		return fmt.Sprintf("%d rows, the manifest records %d", pf.NumRows(), f.Rows), nil
	}
	return "", nil
}

// objectReader reads an object at offsets, for a Parquet footer.
type objectReader struct {
	ctx context.Context
	b   storage.Bucket
	key string
}

func (r *objectReader) ReadAt(p []byte, off int64) (int, error) {
	rc, err := r.b.GetRange(r.ctx, r.key, off, int64(len(p)))
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := io.ReadFull(rc, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	return n, err
}
