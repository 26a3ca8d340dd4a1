package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/sluice-gw/sluice/control/blob/internal/keys"
)

// Config says how to reach one bucket. Build it with DefaultConfig.
type Config struct {
	// Endpoint is host[:port] of the service, without a scheme, e.g.
	// "s3.eu-west-1.amazonaws.com" or "minio.internal:9000".
	Endpoint string
	Bucket   string
	// Region is the bucket's region; required, because without it the
	// client would have to ask the service first.
	Region string
	// AccessKey and SecretKey sign requests (SigV4). Both empty means
	// anonymous requests; SessionToken is for temporary credentials.
	AccessKey    string
	SecretKey    string
	SessionToken string
	// Prefix is prepended to every key ("sluice/" stores key "a/b" as
	// "sluice/a/b"); a missing trailing '/' is added.
	Prefix string
	// TLS selects https (the default); turn it off only for a service on
	// loopback or a trusted network, since credentials sign but do not
	// encrypt.
	TLS bool
	// PathStyle forces path-style URLs (https://host/bucket/key), which
	// MinIO and most self-hosted services need; false lets the client choose
	// (virtual-host style for Amazon S3, path style elsewhere).
	PathStyle bool
	// MaxRetries is how often the client retries a failed request; default 3.
	MaxRetries int
	// Transport overrides the HTTP transport (custom CAs, proxies, tests);
	// nil uses the client's default.
	Transport http.RoundTripper
}

// DefaultConfig returns a Config with TLS on and the default retries.
func DefaultConfig() Config {
	return Config{TLS: true, MaxRetries: 3}
}

// Validate reports whether c can be used.
func (c Config) Validate() error {
	switch {
	case c.Endpoint == "":
		return errors.New("blob/s3: no endpoint")
	case strings.Contains(c.Endpoint, "://") || strings.Contains(c.Endpoint, "/"):
		return fmt.Errorf("blob/s3: endpoint %q must be host[:port], without scheme or path", c.Endpoint)
	case c.Bucket == "":
		return errors.New("blob/s3: no bucket")
	case c.Region == "":
		return errors.New("blob/s3: no region")
	case (c.AccessKey == "") != (c.SecretKey == ""):
		return errors.New("blob/s3: access key and secret key must be given together")
	case c.MaxRetries < 0:
		return errors.New("blob/s3: negative MaxRetries")
	}
	if p := strings.TrimSuffix(c.Prefix, "/"); p != "" {
		if err := keys.Validate(p); err != nil {
			return fmt.Errorf("blob/s3: prefix: %w", err)
		}
	}
	return nil
}

// Store is a blob.Store over one bucket.
type Store struct {
	client *minio.Client
	bucket string
	prefix string // "" or ending in '/'
}

// New returns a Store for cfg. It does not contact the service.
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	retries := cfg.MaxRetries
	if retries == 0 {
		retries = 3
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken),
		Secure:       cfg.TLS,
		Transport:    cfg.Transport,
		Region:       cfg.Region,
		BucketLookup: lookup,
		MaxRetries:   retries,
	})
	if err != nil {
		return nil, fmt.Errorf("blob/s3: client for %s: %w", cfg.Endpoint, err)
	}
	prefix := strings.TrimSuffix(cfg.Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return &Store{client: client, bucket: cfg.Bucket, prefix: prefix}, nil
}

// Close implements io.Closer; the client holds nothing that needs closing.
func (s *Store) Close() error { return nil }

// Put implements blob.Store.
func (s *Store) Put(ctx context.Context, key string, data []byte) error {
	if err := keys.Validate(key); err != nil {
		return err
	}
	if len(data) > keys.MaxObjectSize {
		return fmt.Errorf("blob/s3: put %s: %d bytes: %w", key, len(data), keys.ErrTooLarge)
	}
	_, err := s.client.PutObject(ctx, s.bucket, s.prefix+key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{
		ContentType:    "application/octet-stream",
		SendContentMd5: true,
		// One request, never a multipart upload: that is what makes the
		// object appear whole or not at all.
		DisableMultipart: true,
		// Over plain HTTP the client signs the body in streaming chunks;
		// for an empty body it then sends no Content-Length, which servers
		// refuse. An empty body has nothing to sign.
		DisableContentSha256: len(data) == 0,
	})
	if err != nil {
		return fmt.Errorf("blob/s3: put %s: %w", key, err)
	}
	return nil
}

// Get implements blob.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := keys.Validate(key); err != nil {
		return nil, err
	}
	obj, err := s.client.GetObject(ctx, s.bucket, s.prefix+key, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.mapErr("get", key, err)
	}
	defer obj.Close()
	// GetObject is lazy: the request is made by the first Read, so a missing
	// key shows up here.
	data, err := io.ReadAll(io.LimitReader(obj, keys.MaxObjectSize+1))
	if err != nil {
		return nil, s.mapErr("get", key, err)
	}
	if len(data) > keys.MaxObjectSize {
		return nil, fmt.Errorf("blob/s3: get %s: %w", key, keys.ErrTooLarge)
	}
	return data, nil
}

// Delete implements blob.Store. S3 answers a delete of a missing key with
// success, which is the contract.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := keys.Validate(key); err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.bucket, s.prefix+key, minio.RemoveObjectOptions{}); err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("blob/s3: delete %s: %w", key, err)
	}
	return nil
}

// List implements blob.Store. The listing is paged by the client; keys
// outside the key rules (written by something else into the same prefix)
// are skipped.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := keys.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the lister goroutine if we return early
	out := []string{}
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, s.mapErr("list", prefix, obj.Err)
		}
		key, ok := strings.CutPrefix(obj.Key, s.prefix)
		if !ok || keys.Validate(key) != nil {
			continue
		}
		out = append(out, key)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("blob/s3: list %q: %w", prefix, err)
	}
	slices.Sort(out)
	return out, nil
}

func (s *Store) mapErr(op, key string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("blob/s3: %s %s: %w", op, key, keys.ErrNotFound)
	}
	return fmt.Errorf("blob/s3: %s %s: %w", op, key, err)
}

func isNotFound(err error) bool {
	return minio.ToErrorResponse(err).Code == minio.NoSuchKey
}
