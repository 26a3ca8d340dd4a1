// Package storetest is the conformance suite every store.Store backend must
// pass: call Run from the backend's tests with a constructor of fresh,
// empty stores, and RunShared with a constructor of two handles on one
// fresh database (two gateway replicas, or two processes). It imports only
// store, engine (for policies) and the standard library.
package storetest
