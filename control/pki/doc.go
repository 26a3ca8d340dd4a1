// Package pki owns the gateway's own certificate authority: on first start it
// creates a CA (ECDSA P-256, ten years) and a server certificate signed by it
// in the data directory, and reloads both later. Clients and agents pin the
// CA by its sha256 fingerprint instead of trusting a public CA.
//
// pki imports none of Sluice's packages.
package pki
