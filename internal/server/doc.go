// Package server assembles whole processes from the packages: a gateway
// (store, control API, tunnel server, protocol listeners) and an agent
// (tunnel dialer and protocol upstreams). cmd/sluice, the demo and the
// end-to-end tests share it, so what is tested is what runs.
//
// It is wiring only: no protocol or policy logic lives here.
package server
