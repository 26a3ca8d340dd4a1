// Package blobtest is the conformance suite for blob.Store implementations:
// every backend's tests call Run with a constructor for fresh, empty stores.
//
// blobtest imports control/blob only (and testing).
package blobtest
