package blob

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/sluice-gw/sluice/control/blob/fs"
	"github.com/sluice-gw/sluice/control/blob/s3"
)

// Interface guards: the backends cannot import this package (Open imports
// them), so their conformance to Store is checked here.
var (
	_ Store = (*fs.Store)(nil)
	_ Store = (*s3.Store)(nil)
)

// Credentials sign requests to an S3-compatible store. The caller reads them
// (cmd/sluice: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN);
// this package reads no environment.
type Credentials struct {
	AccessKey    string
	SecretKey    string
	SessionToken string
}

// Open returns the Store spec names. Both kinds implement io.Closer.
//
//   - A path, or file:///absolute/path: a filesystem store rooted there
//     (created 0700 if missing).
//   - s3://BUCKET[/PREFIX][?endpoint=HOST[:PORT]&region=R&tls=BOOL&path_style=BOOL]:
//     an S3-compatible bucket, signed with creds. Defaults: endpoint
//     s3.amazonaws.com, region us-east-1, tls true, path_style false.
//     An unknown parameter is an error, so a typo is not silently ignored.
func Open(spec string, creds Credentials) (Store, error) {
	if spec == "" {
		return nil, fmt.Errorf("blob: empty store spec")
	}
	scheme, _, hasScheme := strings.Cut(spec, "://")
	if !hasScheme {
		return fs.New(spec)
	}
	u, err := url.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("blob: store spec: %w", err)
	}
	switch scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("blob: %q: a file URL needs an absolute path (file:///dir)", spec)
		}
		if u.Path == "" || u.RawQuery != "" {
			return nil, fmt.Errorf("blob: %q: want file:///absolute/dir", spec)
		}
		return fs.New(u.Path)
	case "s3":
		cfg, err := parseS3(u)
		if err != nil {
			return nil, fmt.Errorf("blob: %q: %w", redact(u), err)
		}
		cfg.AccessKey, cfg.SecretKey, cfg.SessionToken = creds.AccessKey, creds.SecretKey, creds.SessionToken
		return s3.New(cfg)
	default:
		return nil, fmt.Errorf("blob: %q: unknown scheme %q (want a path, file:// or s3://)", redact(u), scheme)
	}
}

// parseS3 turns an s3:// URL into a Config without credentials.
func parseS3(u *url.URL) (s3.Config, error) {
	cfg := s3.DefaultConfig()
	if u.User != nil {
		return cfg, fmt.Errorf("credentials do not belong in the spec; pass them as Credentials")
	}
	cfg.Bucket = u.Host
	cfg.Prefix = strings.Trim(u.Path, "/")
	cfg.Endpoint = "s3.amazonaws.com"
	cfg.Region = "us-east-1"
	for k, vs := range u.Query() {
		if len(vs) != 1 {
			return cfg, fmt.Errorf("parameter %s given %d times", k, len(vs))
		}
		v := vs[0]
		var err error
		switch k {
		case "endpoint":
			cfg.Endpoint = v
		case "region":
			cfg.Region = v
		case "tls":
			cfg.TLS, err = strconv.ParseBool(v)
		case "path_style":
			cfg.PathStyle, err = strconv.ParseBool(v)
		default:
			return cfg, fmt.Errorf("unknown parameter %q (want endpoint, region, tls, path_style)", k)
		}
		if err != nil {
			return cfg, fmt.Errorf("parameter %s: %w", k, err)
		}
	}
	return cfg, cfg.Validate()
}

// redact drops any user info from u for error messages.
func redact(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}
