// Package client opens the storage.Bucket named by the storage config.
package client

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/storage"
	"github.com/medallionlake/medallion/storage/filesystem"
	"github.com/medallionlake/medallion/storage/s3"
)

// Open returns the bucket for cfg.URL: a local folder, file:///path or
// s3://bucket/prefix.
func Open(ctx context.Context, cfg config.Storage) (storage.Bucket, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("storage.url %q: %w", cfg.URL, err)
	}
	switch u.Scheme {
	case "", "file":
		root := cfg.URL
		if u.Scheme == "file" {
			root = u.Path
		}
		return filesystem.New(filesystem.Config{Root: root})
	case "s3":
		return s3.New(ctx, s3.Config{
			Bucket:             u.Host,
			Prefix:             strings.Trim(u.Path, "/"),
			Endpoint:           cfg.S3.Endpoint,
			Region:             cfg.S3.Region,
			PathStyle:          cfg.S3.PathStyle,
			AccessKeyID:        cfg.S3.AccessKeyID,
			SecretAccessKey:    cfg.S3.SecretAccessKey,
			SessionToken:       cfg.S3.SessionToken,
			MultipartThreshold: int64(cfg.S3.MultipartThreshold),
		})
	default:
		return nil, fmt.Errorf("storage.url %q: unsupported scheme %q", cfg.URL, u.Scheme)
	}
}
