// Package tunneltest is the conformance test every transport.Tunnel
// implementation passes: Run it from the implementation's tests.
package tunneltest
