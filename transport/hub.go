package transport

import (
	"context"
	"fmt"
	"sync"
)

// Hub is the gateway's registry of connected agents. Tunnel servers Register
// tunnels as agents connect; sessions Open streams by agent name.
type Hub struct {
	mu      sync.Mutex
	tunnels map[string]Tunnel
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{tunnels: make(map[string]Tunnel)} }

// Register makes t the tunnel for agent name, closing any previous one, and
// forgets it again when it is done.
func (h *Hub) Register(name string, t Tunnel) {
	h.mu.Lock()
	old := h.tunnels[name]
	h.tunnels[name] = t
	h.mu.Unlock()
	if old != nil && old != t {
		old.Close()
	}
	go func() {
		<-t.Done()
		h.mu.Lock()
		if h.tunnels[name] == t {
			delete(h.tunnels, name)
		}
		h.mu.Unlock()
	}()
}

// Disconnect closes agent name's tunnel now, if it has one (key revoked).
func (h *Hub) Disconnect(name string) {
	h.mu.Lock()
	t := h.tunnels[name]
	delete(h.tunnels, name)
	h.mu.Unlock()
	if t != nil {
		t.Close()
	}
}

// Online reports whether agent name has a live tunnel.
func (h *Hub) Online(name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.tunnels[name]
	return ok
}

// Agents lists the names of connected agents.
func (h *Hub) Agents() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	names := make([]string, 0, len(h.tunnels))
	for n := range h.tunnels {
		names = append(names, n)
	}
	return names
}

// Open opens a stream to agent name, failing at once with ErrAgentOffline
// when it has no tunnel.
func (h *Hub) Open(ctx context.Context, agent string, hd Header) (Stream, error) {
	h.mu.Lock()
	t := h.tunnels[agent]
	h.mu.Unlock()
	if t == nil {
		return nil, fmt.Errorf("agent %s: %w", agent, ErrAgentOffline)
	}
	s, err := t.OpenStream(ctx, hd)
	if err != nil {
		return nil, fmt.Errorf("agent %s: open stream: %w", agent, err)
	}
	return s, nil
}

// Tunnel returns agent name's live tunnel, or nil.
func (h *Hub) Tunnel(name string) Tunnel {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.tunnels[name]
}
