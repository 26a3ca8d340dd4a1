// Package review implements engine.Reviewer, just-in-time approval of
// sessions and statements, over a store.Store.
//
// A session whose plan requires review, and that holds no live grant
// (store.ActiveGrant), creates a pending session review and waits; a
// statement of a kind the plan lists waits on a statement review bound to
// StatementHash(text, params). An approver decides with Service.Decide (the
// API and `sluice admin review approve|reject N` call it). Approval of a
// session review is a time-bound grant for the user on the connection;
// approval of a statement review lets that exact statement (same text,
// same parameters) run for the user on the connection until its GrantUntil,
// as often as it is sent: a statement is not "used up", because the store
// cannot mark a decided review, and a retry of the same approved statement
// (after a lock timeout, say) is the common case. A different statement
// never rides on another's approval.
//
// Decisions are read from the store, so a review decided on one gateway
// replica releases a waiter on another: waiters poll the store (every
// Options.Poll, 300ms by default) and are also woken at once when Decide
// runs in the same process. A review not decided within Options.Timeout is
// marked expired (and the waiter gets CodeReviewTimeout); a waiter whose
// context ends marks its review expired too. Nobody may approve their own
// request (unless Options.AllowSelfApproval); anyone allowed to decide may
// reject, including the requester withdrawing it. Who may decide is the
// API's business.
//
// Events review.requested and review.decided go to an optional Notifier
// (the webhook dispatcher). review imports engine, store and webhook (for
// its Event type) only; its clock is injected.
package review
