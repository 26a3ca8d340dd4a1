package recording

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sluice-gw/sluice/control/blob"
)

// AuditVerify is what `sluice admin audit verify SESSION` runs, kept free of
// any CLI: it verifies the session's recording, writes a report for people
// to out, and returns the Report with nil (intact and complete), an error
// wrapping ErrCorrupt or ErrIncomplete, or the error that stopped it
// (ErrNoRecording, an unreachable store). A CLI exits non-zero on any error.
func AuditVerify(ctx context.Context, st blob.Store, m Manifest, sessionID string, out io.Writer) (Report, error) {
	rep, err := Verify(ctx, st, m, sessionID)
	if err != nil {
		fmt.Fprintf(out, "recording %s: cannot verify: %v\n", sessionID, err)
		return rep, err
	}
	fmt.Fprintf(out, "recording %s: %d chunks, %d bytes; client→server %d bytes, server→client %d bytes\n",
		rep.SessionID, rep.Chunks, rep.Bytes, rep.ClientBytes, rep.ServerBytes)
	if !rep.First.IsZero() {
		fmt.Fprintf(out, "span: %s to %s\n", rep.First.UTC().Format(time.RFC3339Nano), rep.Last.UTC().Format(time.RFC3339Nano))
	}
	if rep.Head != "" {
		fmt.Fprintf(out, "chain head: sha256 %s\n", rep.Head)
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(out, "PROBLEM %s\n", p)
	}
	err = rep.Err()
	switch {
	case errors.Is(err, ErrCorrupt):
		fmt.Fprintf(out, "result: CORRUPT: %d problem(s)\n", len(rep.Problems))
	case errors.Is(err, ErrIncomplete):
		fmt.Fprintln(out, "result: INCOMPLETE: no end marker (the session is still open, or the recording's tail is missing)")
	case rep.EndReason != "":
		fmt.Fprintf(out, "result: OK: intact and complete; the recording ended because: %s\n", rep.EndReason)
	default:
		fmt.Fprintln(out, "result: OK: intact and complete; the session ended normally")
	}
	return rep, err
}
