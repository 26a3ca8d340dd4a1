// Package store defines the control plane's persistent state: users, access
// tokens, agents, connections and audit sessions, behind one Store interface
// that several backends implement (sqlite now, PostgreSQL later). Every
// backend must pass the conformance suite in store/storetest.
//
// store imports none of Sluice's packages; backends live in sub-packages.
package store
