// Package control is the root of Sluice's control plane: the state store,
// the gateway PKI, authentication and authorisation, the audit sink and the
// REST API live in its sub-packages, each small and each implementing one
// side of an interface the data plane defines in engine or transport.
//
// The data plane (engine, protocols, transport, masking, agent) never imports
// control; cmd/sluice wires the two together.
package control
