package webhook

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// DeadLetter is an event that was not delivered to one endpoint. Payload is
// the exact body that failed (or would have been sent), so Redeliver resends
// it byte for byte, with EventType and EventID as its headers.
type DeadLetter struct {
	ID        int64     // assigned by the DeadLetters implementation
	Webhook   string    // Endpoint.Name
	EventType string    // X-Sluice-Event, e.g. "session.started"
	EventID   string    // X-Sluice-Delivery: the receivers' de-duplication key
	Payload   []byte    // the body; nil only if the event could not be encoded
	Attempts  int       // HTTP attempts made (0: never sent)
	LastError string    // why the last attempt failed, or why none was made
	CreatedAt time.Time // when it was dead-lettered (the Dispatcher's clock)
}

// DeadLetters records events that could not be delivered.
//
// AddDeadLetter is called from the Dispatcher's own goroutines, never from
// Notify's caller, with a context bounded by Config.StoreTimeout. It must be
// safe for concurrent use. It may keep dl.Payload (the Dispatcher does not
// reuse it). An error means the dead letter is lost: the Dispatcher logs the
// event and counts it in sluice_webhook_events_lost_total{reason="store"}.
type DeadLetters interface {
	AddDeadLetter(ctx context.Context, dl DeadLetter) error
}

// MemoryDeadLetters is a DeadLetters in memory, for tests and single-process
// development. It holds at most Max letters (all of them when Max is 0); an
// add beyond Max fails, as a full disk would.
type MemoryDeadLetters struct {
	Max int

	mu      sync.Mutex
	next    int64
	letters []DeadLetter
}

// ErrDeadLettersFull is returned by MemoryDeadLetters beyond its Max.
var ErrDeadLettersFull = errors.New("dead-letter list is full")

var _ DeadLetters = (*MemoryDeadLetters)(nil)

// AddDeadLetter implements DeadLetters.
func (m *MemoryDeadLetters) AddDeadLetter(_ context.Context, dl DeadLetter) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Max > 0 && len(m.letters) >= m.Max {
		return ErrDeadLettersFull
	}
	m.next++
	dl.ID = m.next
	dl.Payload = slices.Clone(dl.Payload)
	m.letters = append(m.letters, dl)
	return nil
}

// List returns the letters of webhook (all when it is ""), oldest first.
func (m *MemoryDeadLetters) List(webhook string) []DeadLetter {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []DeadLetter
	for _, dl := range m.letters {
		if webhook == "" || dl.Webhook == webhook {
			out = append(out, dl)
		}
	}
	return out
}

// Delete removes the letter with id and reports whether it was there.
func (m *MemoryDeadLetters) Delete(id int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := slices.IndexFunc(m.letters, func(dl DeadLetter) bool { return dl.ID == id })
	if i < 0 {
		return false
	}
	m.letters = slices.Delete(m.letters, i, i+1)
	return true
}
