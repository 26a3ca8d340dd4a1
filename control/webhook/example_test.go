package webhook_test

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/sluice-gw/sluice/control/webhook"
)

// A receiver checks every delivery before it trusts it, and de-duplicates on
// the delivery id because delivery is at least once.
func ExampleVerify() {
	const secret = "whsec-from-the-webhook-config"
	seen := map[string]bool{} // a real receiver keeps this in its database, with a TTL
	handler := func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		err = webhook.Verify(secret, r.Header.Get(webhook.HeaderTimestamp), r.Header.Get(webhook.HeaderSignature),
			body, time.Now(), 5*time.Minute)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized) // 4xx: Sluice will not retry
			return
		}
		if id := r.Header.Get(webhook.HeaderDelivery); !seen[id] {
			seen[id] = true
			// … handle the event in body …
		}
		w.WriteHeader(http.StatusNoContent)
	}
	_ = handler

	body := []byte(`{"id":"1","type":"session.started"}`)
	now := time.Unix(1767225600, 0)
	sig := webhook.Sign(secret, now.Unix(), body)
	fmt.Println(webhook.Verify(secret, "1767225600", sig, body, now.Add(time.Minute), 0))
	fmt.Println(webhook.Verify(secret, "1767225600", sig, []byte(`{"id":"2"}`), now, 0))
	fmt.Println(webhook.Verify(secret, "1767225600", sig, body, now.Add(time.Hour), 0))
	// Output:
	// <nil>
	// webhook signature is missing, malformed or wrong
	// webhook timestamp is missing, malformed or outside the tolerance
}
