// Package store defines the control plane's persistent state behind one
// Store interface: users, access tokens, agents, connections, groups and
// access rules, just-in-time reviews, audit sessions and statements,
// webhooks with their dead letters, and recording manifests. Several
// backends implement it (store/sqlite, store/postgres; store/open picks one
// from a spec) and every backend must pass the conformance suite in
// store/storetest.
//
// store imports no Sluice package but engine (for engine.Policy); backends
// live in sub-packages.
package store
