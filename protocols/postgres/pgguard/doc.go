// Package pgguard is the SQL guardrail library of Sluice: it decides whether a SQL
// statement (or a multi-statement string) that a user sends to PostgreSQL may be
// forwarded, under a per-connection set of rules such as "drop", "delete-without-where"
// or "deny_tables: [audit_log]".
//
// Decisions are made in three tiers:
//
//  1. A keyword prefilter scans the text once. When no word that any configured rule
//     could depend on occurs anywhere in it (literals and comments included), the
//     statement is allowed without parsing. This answers the bulk of OLTP traffic in
//     well under a microsecond and without allocating.
//  2. Otherwise the text is parsed with the real PostgreSQL grammar (libpg_query, via
//     github.com/pganalyze/pg_query_go/v6, cgo) and the protobuf parse tree is walked,
//     including statements hidden in data-modifying CTEs, EXPLAIN ANALYZE, PREPARE,
//     CREATE RULE actions, SQL and PL/pgSQL function bodies and DO blocks. A statement
//     that cannot be parsed is denied (rule "unparseable": fail closed).
//  3. Parsed decisions are cached by statement text in an LRU bounded in bytes.
//
// A denial carries the rule name; the caller (the Postgres protocol layer / guardrail
// plugin) renders it as an ErrorResponse with SQLSTATE 42501.
//
// The package is a pure library of the data plane: it imports nothing from control/
// (nor from any other Sluice package). See README.md for the rule reference, the forms
// of nested statements that are recognised and the known limitations.
package pgguard
