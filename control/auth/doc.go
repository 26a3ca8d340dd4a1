// Package auth is the control plane's side of authentication and
// authorisation for the data plane: it implements engine.Authenticator
// (access tokens), engine.Authorizer (connection lookup into a session plan)
// and transport.AgentVerifier (agent keys) over a store.Store, issues tokens,
// hashes passwords, and bootstraps the first admin.
//
// Secrets are never stored: tokens and agent keys are kept as sha256 hex,
// passwords as bcrypt. auth imports engine and store, never protocols or
// transport implementations.
package auth
