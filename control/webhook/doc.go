// Package webhook delivers control-plane events (session started and ended,
// review requested and decided, statement denied) to configured HTTPS
// endpoints, signed with HMAC-SHA256, at least once, with retries and
// exponential backoff, and with a dead-letter list for what could not be
// delivered. Its central type is the Dispatcher; its contract is written on it.
//
// Nothing here may slow the data path: Dispatcher.Notify never blocks and
// never fails. Each endpoint has its own bounded queue and its own worker, so
// a slow or dead endpoint only fills its own queue; an event that finds the
// queue full goes to the dead-letter list (counted and logged), never dropped
// silently.
//
// # Wire format
//
// Every delivery is an HTTP POST with these headers:
//
//	Content-Type:       application/json
//	X-Sluice-Event:     session.started        (the event type)
//	X-Sluice-Delivery:  4F2YQ…                 (the event id, the same on every retry)
//	X-Sluice-Timestamp: 1767225600             (unix seconds when this attempt was sent)
//	X-Sluice-Signature: sha256=<hex>           (see below)
//
// The signature is hex(HMAC-SHA256(secret, timestamp + "." + body)) over the
// exact body bytes, prefixed "sha256=". A receiver recomputes it over the raw
// body it read (before any JSON decoding), compares in constant time, rejects
// a timestamp too far from its own clock (replay), and de-duplicates on
// X-Sluice-Delivery, because delivery is at least once: an attempt that timed
// out on our side may still have been processed on theirs. Verify does all of
// this but the de-duplication.
//
// The body is the Event as JSON (format "json") or a Slack incoming-webhook
// message {"text": …, "blocks": […]} (format "slack").
//
// A 2xx answer is a delivery. 408, 429, 5xx, network errors and timeouts are
// retried (Retry-After honoured, up to the backoff cap); any other answer,
// redirects included, is a permanent failure and goes to the dead-letter list
// at once.
//
// webhook imports no package of ours: the store, the API and the gateway
// adapt to the small types defined here (Endpoints, DeadLetters), and the
// data plane reaches it only through whatever cmd/sluice wires in.
package webhook
