// Package s3 is the blob.Store for S3-compatible object stores (Amazon S3,
// MinIO, Ceph RGW, Garage, Cloudflare R2, …), built on the MinIO Go client
// (github.com/minio/minio-go/v7), which signs requests (SigV4), retries
// transient failures and speaks both path-style and virtual-host-style
// addressing. Every object is one PutObject of known length, which S3 makes
// visible atomically; Content-MD5 is sent so the server rejects a body
// damaged in transit.
//
// Credentials are passed in Config by the caller (cmd/sluice reads them from
// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY); this package reads no
// environment variables.
//
// The package's tests run against gofakes3 (github.com/johannesboyne/gofakes3)
// started in-process: a fake S3 server, good enough to exercise signing,
// addressing, TLS, listing and error mapping, but not a substitute for a test
// against a real deployment.
//
// s3 imports only control/blob/internal/keys; it satisfies blob.Store.
package s3
