package bronze

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/storage"
)

// Partition is one bronze partition: its date and its files, sorted by key.
type Partition struct {
	Domain string
	Date   medtype.Date
	Files  []storage.Object
}

// Keys lists the partition's object keys, sorted.
func (p Partition) Keys() []string {
	out := make([]string, len(p.Files))
	for i, f := range p.Files {
		out[i] = f.Key
	}
	return out
}

// Hash is the file-list hash of the partition (see FileListHash).
func (p Partition) Hash() string { return FileListHash(p.Files) }

// FileListHash hashes the sorted (key, size, version) list of files. The
// version (ETag, else modification time) is part of it because hashing keys
// alone misses an object rewritten under the same key.
func FileListHash(files []storage.Object) string {
	sorted := slices.Clone(files)
	slices.SortFunc(sorted, func(a, b storage.Object) int { return strings.Compare(a.Key, b.Key) })
	h := sha256.New()
	for _, f := range sorted {
		fmt.Fprintf(h, "%s\t%d\t%s\n", f.Key, f.Size, f.Version())
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Discovery is the result of listing a domain's bronze files.
type Discovery struct {
	Partitions []Partition // oldest date first
	// Skipped are keys under the domain's prefix that are not bronze files
	// of its partition key; they are reported, never processed.
	Skipped []string
}

// Discover lists a domain's bronze files and groups them by partition date,
// from the partition dated since on (all of them when since is zero). Keys
// that do not follow the scheme, or that use another partition key, are
// returned in Skipped (those sorting before since's partition are not
// listed).
func Discover(ctx context.Context, b storage.Bucket, domain, partitionKey string, since medtype.Date) (Discovery, error) {
	var d Discovery
	byDate := map[medtype.Date]*Partition{}
	after := ""
	if !since.IsZero() {
		after = PartitionPrefix(domain, partitionKey, since)
	}
	for obj, err := range b.ListAfter(ctx, DomainPrefix(domain), after) {
		if err != nil {
			return Discovery{}, fmt.Errorf("discover bronze %s: %w", domain, err)
		}
		f, err := ParseKey(obj.Key)
		if err != nil || f.PartitionKey != partitionKey || f.Domain != domain {
			d.Skipped = append(d.Skipped, obj.Key)
			continue
		}
		if f.Date.Before(since) {
			continue // a key sorting after the prefix with an odd date
		}
		p := byDate[f.Date]
		if p == nil {
			p = &Partition{Domain: domain, Date: f.Date}
			byDate[f.Date] = p
		}
		p.Files = append(p.Files, obj)
	}
	for _, p := range byDate {
		d.Partitions = append(d.Partitions, *p)
	}
	slices.SortFunc(d.Partitions, func(a, b Partition) int { return a.Date.Time().Compare(b.Date.Time()) })
	return d, nil
}

// Dates lists the partition dates a domain's bronze has folders for, from
// the folder names alone (one request per thousand dates on S3), sorted.
func Dates(ctx context.Context, b storage.Bucket, domain, partitionKey string) ([]medtype.Date, error) {
	folders, err := b.Folders(ctx, DomainPrefix(domain))
	if err != nil {
		return nil, fmt.Errorf("discover bronze %s: %w", domain, err)
	}
	var out []medtype.Date
	for _, f := range folders {
		name, value, ok := strings.Cut(f, "=")
		if !ok || name != partitionKey {
			continue
		}
		if d, err := medtype.ParseDate(value); err == nil {
			out = append(out, d)
		}
	}
	return out, nil
}

// ListPartition lists one partition's files.
func ListPartition(ctx context.Context, b storage.Bucket, domain, partitionKey string, date medtype.Date) (Partition, error) {
	p := Partition{Domain: domain, Date: date}
	for obj, err := range b.List(ctx, PartitionPrefix(domain, partitionKey, date)) {
		if err != nil {
			return Partition{}, fmt.Errorf("list bronze %s/%s: %w", domain, date, err)
		}
		if _, err := ParseKey(obj.Key); err == nil {
			p.Files = append(p.Files, obj)
		}
	}
	return p, nil
}
