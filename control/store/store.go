package store

import (
	"context"
	"errors"
	"time"

	"github.com/sluice-gw/sluice/engine"
)

// ErrNotFound is returned (possibly wrapped) when a named record does not
// exist. Test for it with errors.Is.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned (possibly wrapped) when a write collides with the
// stored state: a duplicate key on an insert-only method, or a review that
// is no longer pending. Test for it with errors.Is.
var ErrConflict = errors.New("conflict")

// DefaultLimit is the number of records a query returns when its limit is
// zero (or negative).
const DefaultLimit = 100

// User is a Sluice user. PasswordHash is a bcrypt hash, empty when the user
// cannot log in with a password.
type User struct {
	Name         string
	PasswordHash string
	Groups       []string
	CreatedAt    time.Time
}

// Token is an access token. Only the sha256 (hex) of the secret is stored.
type Token struct {
	ID        string
	UserName  string
	Name      string // a label chosen by its owner, "" allowed
	Hash      string
	ExpiresAt time.Time
	CreatedAt time.Time
	Revoked   bool
}

// Agent is a registered agent. KeyHash is the sha256 (hex) of its key.
type Agent struct {
	Name      string
	KeyHash   string
	CreatedAt time.Time
}

// Connection is a target published through an agent.
type Connection struct {
	Name   string
	Agent  string
	Type   string // protocol name, e.g. "postgres"
	Target string // target reference, resolved by the agent only
	// Policy holds the connection's guardrails and masking; the zero value
	// means none. Backends store it as given (callers validate it) and
	// return a deep copy.
	Policy    engine.Policy
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Session is the stored audit record of one client session; it mirrors
// engine.SessionRecord (same fields in the same order, so one converts to
// the other).
type Session struct {
	ID           string
	User         string
	Connection   string
	Protocol     string
	ClientAddr   string
	Start        time.Time
	End          time.Time // zero while running
	BytesIn      int64
	BytesOut     int64
	Outcome      string
	Error        string
	Denials      int64
	LastDenial   string
	TokenID      string // the token that authenticated the session, "" if none
	Rule         string // the access rule that admitted it, "" if none
	RecordingKey string // where its recording lives (opaque), "" if none
}

// SessionFilter selects sessions for QuerySessions. Zero fields select
// everything: User, Connection and Outcome match exactly; Since is
// inclusive and Until exclusive, both on Start. Limit 0 means DefaultLimit.
type SessionFilter struct {
	User       string
	Connection string
	Outcome    string
	Since      time.Time
	Until      time.Time
	Limit      int
}

// AccessRule grants Groups the use of Connections ("*" = every connection)
// with a policy. The store keeps every field as given; evaluation (group
// matching, stacking policies, Hours, MaxSession) belongs to control/auth.
type AccessRule struct {
	Name        string
	Groups      []string
	Connections []string
	// Policy is stacked on the connection's own policy; the strictest wins.
	Policy engine.Policy
	// RequireReview requires a session review (just-in-time approval).
	RequireReview bool
	// ReviewStatements lists the statement kinds needing a statement
	// review, e.g. "write:payments", "ddl", "delete" (opaque to the store).
	ReviewStatements []string
	MaxSession       time.Duration // 0: no limit
	// Hours is the allowed hours spec, e.g. "Mon-Fri 08:00-18:00 UTC";
	// "" means any time (opaque to the store).
	Hours     string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Group is a named group. Membership stays on User.Groups; groups exist so
// they can be listed and described.
type Group struct {
	Name        string
	Description string
	CreatedAt   time.Time
}

// Review kinds.
const (
	ReviewSession   = "session"
	ReviewStatement = "statement"
)

// Review statuses. Only a pending review can be decided.
const (
	ReviewPending  = "pending"
	ReviewApproved = "approved"
	ReviewRejected = "rejected"
	ReviewExpired  = "expired"
)

// Review is a just-in-time approval request.
type Review struct {
	ID            int64  // assigned by the store on CreateReview (monotonic, from 1)
	Kind          string // ReviewSession or ReviewStatement
	User          string
	Connection    string
	SessionID     string
	Statement     string // statement text (statement reviews)
	StatementHash string // hex sha256 of text+params; approval is bound to it
	Reason        string // requester's reason / why review is needed (rule name)
	Status        string // ReviewPending, ReviewApproved, ReviewRejected, ReviewExpired
	Decider       string
	DecisionNote  string
	GrantUntil    time.Time // approved session reviews: end of the grant
	CreatedAt     time.Time
	DecidedAt     time.Time
}

// ReviewFilter selects reviews for ListReviews. Empty fields match any
// value; the others match exactly. Limit 0 means DefaultLimit.
type ReviewFilter struct {
	Status     string
	User       string
	Connection string
	Kind       string
	Limit      int
}

// Statement outcomes.
const (
	StatementOK            = "ok"
	StatementError         = "error"
	StatementDenied        = "denied"
	StatementPendingReview = "pending_review"
	StatementRejected      = "rejected"
)

// Statement is the audit record of one statement of a session.
type Statement struct {
	SessionID string
	Seq       int64 // order within the session
	At        time.Time
	Duration  time.Duration
	Text      string
	Params    string // already masked by the caller
	Rows      int64  // rows affected or returned, -1 unknown
	Outcome   string // StatementOK, StatementError, StatementDenied, ...
	Error     string
	Rule      string // the rule that denied it, if any
}

// Webhook formats.
const (
	WebhookJSON  = "json"
	WebhookSlack = "slack"
)

// Webhook is an outgoing event notification target.
type Webhook struct {
	Name      string
	URL       string
	Secret    string
	Format    string   // WebhookJSON or WebhookSlack
	Events    []string // event types to send; empty = all
	CreatedAt time.Time
}

// DeadLetter is an event a webhook failed to deliver.
type DeadLetter struct {
	ID        int64 // assigned by the store on AddDeadLetter (monotonic, from 1)
	Webhook   string
	Event     string // event type
	Payload   []byte
	Attempts  int
	LastError string
	CreatedAt time.Time
}

// RecordingChunk is one link of a session recording's manifest: the chunk
// itself lives in a blob store under Key; the store keeps the hash chain.
type RecordingChunk struct {
	SessionID  string
	Seq        int64
	Key        string
	Size       int64
	SHA256     string
	PrevSHA256 string
	At         time.Time
}

// Store is the control plane's state.
//
// Contract, common to every backend:
//   - All methods are safe for concurrent use by many goroutines (and, for
//     shared backends, by many gateway replicas).
//   - Get and Delete of a missing record return an error wrapping ErrNotFound.
//   - Put* are upserts keyed by Name. On update, CreatedAt keeps its stored
//     value whatever the argument holds; on insert a zero CreatedAt is stored
//     as given (callers set it from their clock). Every other field,
//     UpdatedAt included, is replaced by the argument's.
//   - List* return records ordered by name unless the method says
//     otherwise; with nothing to list they return an empty, non-nil slice. Query
//     methods with a limit treat 0 (or less) as DefaultLimit, except the
//     older ListSessions, which returns nothing for limit <= 0.
//   - Slice fields of returned records ([]string, []byte) are non-nil,
//     empty when nothing was stored; a nil slice is stored as empty.
//   - Returned times are in UTC with at least microsecond precision; zero
//     times round-trip as zero.
//   - Returned slices and records are owned by the caller.
//   - DeleteUser deletes the user's tokens in the same transaction.
//   - Deleting an agent leaves its connections in place (they go offline).
//   - Close releases the backend; no method may be called afterwards.
type Store interface {
	// Ping checks the backend is reachable (readiness).
	Ping(ctx context.Context) error
	Close() error

	PutUser(ctx context.Context, u User) error
	GetUser(ctx context.Context, name string) (User, error)
	ListUsers(ctx context.Context) ([]User, error)
	DeleteUser(ctx context.Context, name string) error

	// CreateToken inserts t; a duplicate ID or Hash is an error wrapping
	// ErrConflict.
	CreateToken(ctx context.Context, t Token) error
	// TokenByHash returns the token whose Hash is hash, revoked or not.
	TokenByHash(ctx context.Context, hash string) (Token, error)
	// ListTokens returns all of user's tokens, revoked and expired ones
	// included, oldest first.
	ListTokens(ctx context.Context, user string) ([]Token, error)
	RevokeToken(ctx context.Context, id string) error

	PutAgent(ctx context.Context, a Agent) error
	GetAgent(ctx context.Context, name string) (Agent, error)
	ListAgents(ctx context.Context) ([]Agent, error)
	DeleteAgent(ctx context.Context, name string) error

	PutConnection(ctx context.Context, c Connection) error
	GetConnection(ctx context.Context, name string) (Connection, error)
	ListConnections(ctx context.Context) ([]Connection, error)
	DeleteConnection(ctx context.Context, name string) error

	// PutRule upserts r by Name. Policy is stored as given and returned as
	// a deep copy, like Connection.Policy.
	PutRule(ctx context.Context, r AccessRule) error
	GetRule(ctx context.Context, name string) (AccessRule, error)
	// ListRules returns every rule, ordered by name.
	ListRules(ctx context.Context) ([]AccessRule, error)
	DeleteRule(ctx context.Context, name string) error

	// PutGroup upserts g by Name. Users may name groups that have no Group
	// record, and PutUser does not check them.
	PutGroup(ctx context.Context, g Group) error
	GetGroup(ctx context.Context, name string) (Group, error)
	// ListGroups returns every group, ordered by name.
	ListGroups(ctx context.Context) ([]Group, error)
	// DeleteGroup deletes the group and, in the same transaction, removes
	// its name from every user's Groups and every rule's Groups (the other
	// names keep their order). A missing group is ErrNotFound and changes
	// nothing.
	DeleteGroup(ctx context.Context, name string) error

	// CreateReview inserts r and sets r.ID to a new ID, greater than every
	// ID assigned before (the first is 1); the r.ID given is ignored. An
	// empty Status is stored as ReviewPending (and set on r).
	CreateReview(ctx context.Context, r *Review) error
	GetReview(ctx context.Context, id int64) (Review, error)
	// ListReviews returns the reviews f selects, newest (highest ID) first.
	ListReviews(ctx context.Context, f ReviewFilter) ([]Review, error)
	// DecideReview moves a pending review to status (ReviewApproved,
	// ReviewRejected or ReviewExpired; anything else is an error that
	// changes nothing), recording decider, note, grantUntil and at as
	// DecidedAt, and returns the updated review. The change is one
	// conditional update, atomic across gateway replicas: of concurrent
	// deciders exactly one wins, and a review that is no longer pending
	// returns an error wrapping ErrConflict. A missing review is ErrNotFound.
	DecideReview(ctx context.Context, id int64, status, decider, note string, grantUntil, at time.Time) (Review, error)
	// ActiveGrant returns user's approved session review for connection
	// whose GrantUntil is after now (the one ending last if several), else
	// an error wrapping ErrNotFound.
	ActiveGrant(ctx context.Context, user, connection string, now time.Time) (Review, error)

	// WriteSessions upserts a batch of sessions by ID in one transaction
	// (group commit): a later record for the same ID replaces the earlier.
	WriteSessions(ctx context.Context, batch []Session) error
	// ListSessions returns up to limit sessions, newest Start first.
	ListSessions(ctx context.Context, limit int) ([]Session, error)
	// QuerySessions returns the sessions f selects, newest Start first.
	QuerySessions(ctx context.Context, f SessionFilter) ([]Session, error)
	GetSession(ctx context.Context, id string) (Session, error)

	// WriteStatements upserts a batch of statements by (SessionID, Seq) in
	// one transaction (group commit): a later record for the same key
	// replaces the earlier. The session need not be written yet.
	WriteStatements(ctx context.Context, batch []Statement) error
	// ListStatements returns up to limit statements of the session, by Seq
	// ascending.
	ListStatements(ctx context.Context, sessionID string, limit int) ([]Statement, error)

	// PutWebhook upserts w by Name.
	PutWebhook(ctx context.Context, w Webhook) error
	GetWebhook(ctx context.Context, name string) (Webhook, error)
	// ListWebhooks returns every webhook, ordered by name.
	ListWebhooks(ctx context.Context) ([]Webhook, error)
	// DeleteWebhook deletes the webhook and its dead letters in one
	// transaction.
	DeleteWebhook(ctx context.Context, name string) error

	// AddDeadLetter inserts d and sets d.ID to a new ID, greater than every
	// ID assigned before (the first is 1); the d.ID given is ignored. A
	// d.Webhook that does not exist is an error wrapping ErrNotFound.
	AddDeadLetter(ctx context.Context, d *DeadLetter) error
	// ListDeadLetters returns up to limit dead letters of webhook ("" = of
	// every webhook), newest (highest ID) first.
	ListDeadLetters(ctx context.Context, webhook string, limit int) ([]DeadLetter, error)
	DeleteDeadLetter(ctx context.Context, id int64) error

	// AddRecordingChunks inserts a batch of manifest entries in one
	// transaction. A (SessionID, Seq) already stored, or twice in the
	// batch, is an error wrapping ErrConflict, and nothing of the batch is
	// stored. The store does not check the hash chain.
	AddRecordingChunks(ctx context.Context, batch []RecordingChunk) error
	// ListRecordingChunks returns the session's chunks by Seq ascending.
	ListRecordingChunks(ctx context.Context, sessionID string) ([]RecordingChunk, error)
}
