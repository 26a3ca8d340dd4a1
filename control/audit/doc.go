// Package audit implements engine.AuditSink over a store.Store. Records are
// queued on a bounded channel and written by one goroutine in batches, one
// transaction per batch (group commit), so the data path never waits on the
// store. A full queue drops the record, logs it and counts it: never silent,
// never blocking.
//
// audit imports engine and store only.
package audit
