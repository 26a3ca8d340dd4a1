// Package tunnelpb holds the generated Go code for proto/tunnel.proto, the
// agent tunnel's wire protocol. Regenerate with proto/gen.sh; do not edit.
package tunnelpb
