// Package audit writes the gateway's audit trail into the control store and
// adapts the recording package to the data plane:
//
//   - Sink implements engine.AuditSink (session records) and StatementSink
//     implements engine.StatementSink (statement records). Both queue on a
//     bounded channel written by one goroutine in batches, one transaction
//     per batch (group commit), so the data path never waits on the store.
//   - Both fail closed: their Admit (engine.AuditGate) refuses new sessions
//     while the queue is above its high-water mark. A full queue makes the
//     caller wait briefly (backpressure, Options.MaxStall); a record that
//     still finds no room is lost, counted and logged at error level, never
//     silently. Metrics: sluice_audit_spool_full_total,
//     sluice_audit_queue_depth, sluice_audit_records_lost_total,
//     sluice_audit_records_written_total, all labelled by sink.
//   - Both emit webhook events through an optional Notifier:
//     session.started, session.ended and statement.denied.
//   - Manifest adapts store.Store to recording.Manifest, and Recorder adapts
//     *recording.Recorder to engine.Recorder.
//
// audit imports engine, store, recording and webhook (for its Event type).
package audit
