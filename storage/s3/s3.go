// Package s3 is the S3 storage provider (aws-sdk-go-v2). It works with AWS
// and with S3-compatible servers (versitygw, Ceph, R2, MinIO) through a
// custom endpoint and path-style addressing.
package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/medallionlake/medallion/storage"
)

// MinPartSize is the smallest multipart part S3 accepts.
const MinPartSize = 5 << 20

// Config configures an S3 bucket.
type Config struct {
	Bucket string
	// Prefix is prepended (with a slash) to every key.
	Prefix   string
	Endpoint string // "" for AWS
	Region   string
	// PathStyle addresses the bucket as endpoint/bucket.
	PathStyle bool
	// AccessKeyID and SecretAccessKey are static credentials; empty uses
	// the default AWS chain.
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// MultipartThreshold: objects larger than this are uploaded in parts
	// of this size. At least MinPartSize.
	MultipartThreshold int64
	// ListPageSize is the page size of listings (S3 maximum 1000); tests
	// make it small to exercise pagination.
	ListPageSize int32
}

func (c *Config) validate() error {
	if c.Bucket == "" {
		return errors.New("s3 storage: bucket is empty")
	}
	if c.MultipartThreshold == 0 {
		c.MultipartThreshold = 16 << 20
	}
	if c.MultipartThreshold < MinPartSize {
		return fmt.Errorf("s3 storage: multipart threshold %d is below the S3 minimum part size %d", c.MultipartThreshold, MinPartSize)
	}
	if c.ListPageSize <= 0 || c.ListPageSize > 1000 {
		c.ListPageSize = 1000
	}
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	c.Prefix = strings.Trim(c.Prefix, "/")
	return nil
}

// Bucket is a storage.Bucket on S3.
type Bucket struct {
	cfg      Config
	client   *awss3.Client
	uploader *transfermanager.Client
}

var _ storage.Bucket = (*Bucket)(nil)

// New builds a client; it does not contact the server.
func New(ctx context.Context, cfg Config) (*Bucket, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(cfg.Region)}
	if cfg.AccessKeyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken)))
	}
	if cfg.Endpoint != "" {
		// S3-compatible servers vary in their support of the newer default
		// integrity checksums; ask for them only where the API requires.
		opts = append(opts,
			awsconfig.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
			awsconfig.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3 storage: load AWS config: %w", err)
	}
	client := awss3.NewFromConfig(awsCfg, func(o *awss3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
	})
	uploader := transfermanager.New(client, func(o *transfermanager.Options) {
		o.MultipartUploadThreshold = cfg.MultipartThreshold
		o.PartSizeBytes = cfg.MultipartThreshold
	})
	return &Bucket{cfg: cfg, client: client, uploader: uploader}, nil
}

// Client exposes the underlying S3 client, for test setup such as creating
// the bucket.
func (b *Bucket) Client() *awss3.Client { return b.client }

func (b *Bucket) String() string {
	if b.cfg.Prefix == "" {
		return "s3://" + b.cfg.Bucket
	}
	return "s3://" + b.cfg.Bucket + "/" + b.cfg.Prefix
}

// URI is s3://bucket/prefix/key.
func (b *Bucket) URI(key string) string { return b.String() + "/" + key }

func (b *Bucket) fullKey(key string) string {
	if b.cfg.Prefix == "" {
		return key
	}
	return b.cfg.Prefix + "/" + key
}

func (b *Bucket) stripKey(full string) string {
	if b.cfg.Prefix == "" {
		return full
	}
	return strings.TrimPrefix(full, b.cfg.Prefix+"/")
}

// Put uploads r; bodies above the multipart threshold go in parts. S3 makes
// an object visible only once the upload completes, so Put is atomic.
func (b *Bucket) Put(ctx context.Context, key string, r io.Reader, metadata map[string]string) error {
	return b.put(ctx, key, r, metadata, nil)
}

// Create uploads with If-None-Match: *, which S3 (and versitygw) checks when
// the upload completes: 412 Precondition Failed means the key exists. A 409
// (a concurrent conditional write in progress) is an ordinary error, for the
// caller to retry.
func (b *Bucket) Create(ctx context.Context, key string, r io.Reader, metadata map[string]string) error {
	err := b.put(ctx, key, r, metadata, aws.String("*"))
	if httpStatus(err) == http.StatusPreconditionFailed {
		return fmt.Errorf("create %s/%s: %w", b, key, storage.ErrExists)
	}
	return err
}

func (b *Bucket) put(ctx context.Context, key string, r io.Reader, metadata map[string]string, ifNoneMatch *string) error {
	if err := storage.ValidateKey(key); err != nil {
		return err
	}
	md := make(map[string]string, len(metadata))
	for k, v := range metadata {
		md[strings.ToLower(k)] = v
	}
	_, err := b.uploader.UploadObject(ctx, &transfermanager.UploadObjectInput{
		Bucket:      aws.String(b.cfg.Bucket),
		Key:         aws.String(b.fullKey(key)),
		Body:        r,
		Metadata:    md,
		IfNoneMatch: ifNoneMatch,
	})
	if err != nil {
		return fmt.Errorf("put %s/%s: %w", b, key, err)
	}
	return nil
}

// Get opens the object.
func (b *Bucket) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	return b.get(ctx, key, nil)
}

// GetRange opens length bytes from offset (to the end if length < 0).
func (b *Bucket) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", key, offset)
	}
	if length == 0 {
		if _, err := b.Stat(ctx, key); err != nil {
			return nil, err
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	rng := fmt.Sprintf("bytes=%d-", offset)
	if length > 0 {
		rng = fmt.Sprintf("bytes=%d-%d", offset, offset+length-1)
	}
	return b.get(ctx, key, aws.String(rng))
}

func (b *Bucket) get(ctx context.Context, key string, rng *string) (io.ReadCloser, error) {
	if err := storage.ValidateKey(key); err != nil {
		return nil, err
	}
	out, err := b.client.GetObject(ctx, &awss3.GetObjectInput{
		Bucket: aws.String(b.cfg.Bucket),
		Key:    aws.String(b.fullKey(key)),
		Range:  rng,
	})
	if err != nil {
		if rng != nil && httpStatus(err) == http.StatusRequestedRangeNotSatisfiable {
			return io.NopCloser(strings.NewReader("")), nil // range past the end: nothing to read
		}
		return nil, b.wrap("get", key, err)
	}
	return out.Body, nil
}

// List pages through ListObjectsV2; S3 returns keys in byte order.
func (b *Bucket) List(ctx context.Context, prefix string) iter.Seq2[storage.Object, error] {
	return b.ListAfter(ctx, prefix, "")
}

// ListAfter is List from ListObjectsV2's StartAfter.
func (b *Bucket) ListAfter(ctx context.Context, prefix, after string) iter.Seq2[storage.Object, error] {
	return func(yield func(storage.Object, error) bool) {
		in := &awss3.ListObjectsV2Input{
			Bucket:  aws.String(b.cfg.Bucket),
			Prefix:  aws.String(b.fullKey(prefix)),
			MaxKeys: aws.Int32(b.cfg.ListPageSize),
		}
		if after != "" {
			in.StartAfter = aws.String(b.fullKey(after))
		}
		p := awss3.NewListObjectsV2Paginator(b.client, in)
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				yield(storage.Object{}, fmt.Errorf("list %s/%s: %w", b, prefix, err))
				return
			}
			for _, o := range page.Contents {
				obj := storage.Object{
					Key:  b.stripKey(aws.ToString(o.Key)),
					Size: aws.ToInt64(o.Size),
					ETag: strings.Trim(aws.ToString(o.ETag), `"`),
				}
				if o.LastModified != nil {
					obj.ModTime = *o.LastModified
				}
				if !yield(obj, nil) {
					return
				}
			}
		}
	}
}

// Folders pages through ListObjectsV2 with the delimiter "/".
func (b *Bucket) Folders(ctx context.Context, prefix string) ([]string, error) {
	full := b.fullKey(prefix)
	p := awss3.NewListObjectsV2Paginator(b.client, &awss3.ListObjectsV2Input{
		Bucket:    aws.String(b.cfg.Bucket),
		Prefix:    aws.String(full),
		Delimiter: aws.String("/"),
		MaxKeys:   aws.Int32(b.cfg.ListPageSize),
	})
	var out []string
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list folders %s/%s: %w", b, prefix, err)
		}
		for _, cp := range page.CommonPrefixes {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), full), "/"))
		}
	}
	return out, nil
}

// Stat issues a HEAD request.
func (b *Bucket) Stat(ctx context.Context, key string) (storage.Object, error) {
	if err := storage.ValidateKey(key); err != nil {
		return storage.Object{}, err
	}
	out, err := b.client.HeadObject(ctx, &awss3.HeadObjectInput{
		Bucket: aws.String(b.cfg.Bucket),
		Key:    aws.String(b.fullKey(key)),
	})
	if err != nil {
		return storage.Object{}, b.wrap("stat", key, err)
	}
	o := storage.Object{
		Key:      key,
		Size:     aws.ToInt64(out.ContentLength),
		ETag:     strings.Trim(aws.ToString(out.ETag), `"`),
		Metadata: out.Metadata,
	}
	if out.LastModified != nil {
		o.ModTime = *out.LastModified
	}
	return o, nil
}

// Delete removes the object; S3 deletes are idempotent.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	if err := storage.ValidateKey(key); err != nil {
		return err
	}
	_, err := b.client.DeleteObject(ctx, &awss3.DeleteObjectInput{
		Bucket: aws.String(b.cfg.Bucket),
		Key:    aws.String(b.fullKey(key)),
	})
	if err != nil && httpStatus(err) != http.StatusNotFound {
		return b.wrap("delete", key, err)
	}
	return nil
}

func (b *Bucket) wrap(op, key string, err error) error {
	if httpStatus(err) == http.StatusNotFound {
		return fmt.Errorf("%s %s/%s: %w", op, b, key, storage.ErrNotFound)
	}
	return fmt.Errorf("%s %s/%s: %w", op, b, key, err)
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}
