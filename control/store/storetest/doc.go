// Package storetest is the conformance suite every store.Store backend must
// pass: call Run from the backend's tests with a constructor of fresh,
// empty stores. It imports only store and the standard library.
package storetest
