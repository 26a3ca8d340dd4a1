// Package protocols defines what a wire protocol implements on each side of
// the tunnel, and the explicit registry cmd/sluice fills (no init() side
// effects). One subpackage per protocol holds its codec, its gateway side, its
// upstream side, its native errors and its fuzz targets.
//
// protocols must never import control/ (ARCHITECTURE §3).
package protocols
