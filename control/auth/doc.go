// Package auth is the control plane's side of authentication and
// authorisation for the data plane: it implements engine.Authenticator
// (access tokens), engine.Authorizer (access rules into a session plan) and
// transport.AgentVerifier (agent keys) over a store.Store, issues and
// revokes tokens (ending the sessions they opened), checks passwords with a
// per-user and per-address limit on failed logins, and bootstraps the first
// admin (user, group and rule).
//
// Access rules grant groups connections, optionally only inside weekly
// hours (ParseHours), and stack: the strictest policy wins
// (MergePolicies). docs/access.md describes rules, the hours syntax,
// stacking, tokens and rate limits for operators.
//
// Secrets are never stored: tokens and agent keys are kept as sha256 hex,
// passwords as bcrypt (cost PasswordCost). auth imports engine and store,
// never protocols or transport implementations. It holds no global state:
// the clock, the store and the live-session registry are injected.
package auth
