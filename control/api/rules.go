package api

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sluice-gw/sluice/control/store"
	"github.com/sluice-gw/sluice/engine"
)

// Groups.

// MaxGroupDescription bounds a group's description.
const MaxGroupDescription = 1024

type groupJSON struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Members     []string  `json:"members"` // users naming the group, by name
	CreatedAt   time.Time `json:"created_at"`
}

// members maps each group to the users that name it.
func (s *Server) members(w http.ResponseWriter, r *http.Request) (map[string][]string, bool) {
	users, err := s.st.ListUsers(r.Context())
	if err != nil {
		s.internal(w, r, "list users", err)
		return nil, false
	}
	m := map[string][]string{}
	for _, u := range users {
		for _, g := range u.Groups {
			m[g] = append(m[g], u.Name)
		}
	}
	return m, true
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) {
	groups, err := s.st.ListGroups(r.Context())
	if err != nil {
		s.internal(w, r, "list groups", err)
		return
	}
	m, ok := s.members(w, r)
	if !ok {
		return
	}
	out := make([]groupJSON, 0, len(groups))
	for _, g := range groups {
		out = append(out, groupJSON{Name: g.Name, Description: g.Description, Members: nonNil(m[g.Name]), CreatedAt: g.CreatedAt})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getGroup(w http.ResponseWriter, r *http.Request) {
	g, err := s.st.GetGroup(r.Context(), r.PathValue("name"))
	if err != nil {
		s.storeErr(w, r, "group", err)
		return
	}
	m, ok := s.members(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, groupJSON{Name: g.Name, Description: g.Description, Members: nonNil(m[g.Name]), CreatedAt: g.CreatedAt})
}

type putGroupReq struct {
	Description string `json:"description"`
}

func (s *Server) putGroup(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !validName(w, objectName, "group", name) {
		return
	}
	var req putGroupReq
	if !decode(w, r, &req, true) {
		return
	}
	if err := checkText("description", req.Description, MaxGroupDescription, true); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := s.st.PutGroup(r.Context(), store.Group{Name: name, Description: req.Description, CreatedAt: s.now().UTC()}); err != nil {
		s.internal(w, r, "put group", err)
		return
	}
	s.log.Info("api: group saved", "group", name, "by", identity(r).User)
	s.getGroup(w, r)
}

func (s *Server) deleteGroup(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if name == AdminGroup {
		// Deleting it would strip every admin of their rights at once.
		writeError(w, http.StatusBadRequest, "group "+quote(AdminGroup)+" cannot be deleted")
		return
	}
	if err := s.st.DeleteGroup(r.Context(), name); err != nil {
		s.storeErr(w, r, "group", err)
		return
	}
	s.log.Info("api: group deleted", "group", name, "by", identity(r).User)
	w.WriteHeader(http.StatusNoContent)
}

// Access rules.

// MaxReviewKind bounds one review_statements entry.
const MaxReviewKind = 128

type ruleJSON struct {
	Name             string                  `json:"name"`
	Groups           []string                `json:"groups"`
	Connections      []string                `json:"connections"`
	Guardrails       *engine.GuardrailPolicy `json:"guardrails,omitempty"`
	Masking          *engine.MaskingPolicy   `json:"masking,omitempty"`
	RequireReview    bool                    `json:"require_review"`
	ReviewStatements []string                `json:"review_statements"`
	MaxSession       string                  `json:"max_session,omitempty"` // Go duration; absent: no limit
	Hours            string                  `json:"hours,omitempty"`       // absent: any time
	CreatedAt        time.Time               `json:"created_at"`
	UpdatedAt        time.Time               `json:"updated_at"`
}

func toRuleJSON(x store.AccessRule) ruleJSON {
	j := ruleJSON{Name: x.Name, Groups: nonNil(x.Groups), Connections: nonNil(x.Connections),
		Guardrails: x.Policy.Guardrails, Masking: x.Policy.Masking, RequireReview: x.RequireReview,
		ReviewStatements: nonNil(x.ReviewStatements), Hours: x.Hours, CreatedAt: x.CreatedAt, UpdatedAt: x.UpdatedAt}
	if x.MaxSession > 0 {
		j.MaxSession = x.MaxSession.String()
	}
	return j
}

func (s *Server) listRules(w http.ResponseWriter, r *http.Request) {
	rules, err := s.st.ListRules(r.Context())
	if err != nil {
		s.internal(w, r, "list rules", err)
		return
	}
	out := make([]ruleJSON, 0, len(rules))
	for _, x := range rules {
		out = append(out, toRuleJSON(x))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getRule(w http.ResponseWriter, r *http.Request) {
	x, err := s.st.GetRule(r.Context(), r.PathValue("name"))
	if err != nil {
		s.storeErr(w, r, "rule", err)
		return
	}
	writeJSON(w, http.StatusOK, toRuleJSON(x))
}

// putRuleReq is the body of PUT /rules/{name}; PUT replaces the whole rule.
type putRuleReq struct {
	Groups           []string                `json:"groups"`
	Connections      []string                `json:"connections"`
	Guardrails       *engine.GuardrailPolicy `json:"guardrails"`
	Masking          *engine.MaskingPolicy   `json:"masking"`
	RequireReview    bool                    `json:"require_review"`
	ReviewStatements []string                `json:"review_statements"`
	MaxSession       string                  `json:"max_session"`
	Hours            string                  `json:"hours"`
}

// checkRule validates req into a rule (without name and times).
func (s *Server) checkRule(req putRuleReq) (store.AccessRule, error) {
	var x store.AccessRule
	if len(req.Groups) == 0 {
		return x, errors.New("groups is required: the groups the rule grants access to")
	}
	for _, g := range req.Groups {
		if !objectName.MatchString(g) {
			return x, errors.New("groups: invalid group name " + quote(g))
		}
		if !slices.Contains(x.Groups, g) {
			x.Groups = append(x.Groups, g)
		}
	}
	if len(req.Connections) == 0 {
		return x, errors.New(`connections is required: connection names, or "*" for every connection`)
	}
	for _, c := range req.Connections {
		if c != "*" && !objectName.MatchString(c) {
			return x, errors.New(`connections: invalid connection name ` + quote(c) + ` (or "*" for every connection)`)
		}
		if !slices.Contains(x.Connections, c) {
			x.Connections = append(x.Connections, c)
		}
	}
	x.Policy = engine.Policy{Guardrails: req.Guardrails, Masking: req.Masking}
	if err := ValidatePolicy(&x.Policy); err != nil {
		return x, err
	}
	x.RequireReview = req.RequireReview
	x.ReviewStatements = []string{}
	for _, k := range req.ReviewStatements {
		k = strings.TrimSpace(k)
		if k == "" || len(k) > MaxReviewKind || strings.ContainsFunc(k, func(c rune) bool { return c <= ' ' || c == 0x7f }) {
			return x, errors.New("review_statements: bad statement kind " + quote(k) +
				` (want a word such as "ddl", "delete" or "write:payments", without blanks, at most 128 bytes)`)
		}
		if !slices.Contains(x.ReviewStatements, k) {
			x.ReviewStatements = append(x.ReviewStatements, k)
		}
	}
	if req.MaxSession != "" {
		d, err := time.ParseDuration(req.MaxSession)
		if err != nil || d <= 0 {
			return x, errors.New("max_session must be a positive Go duration such as \"2h\" or \"90m\", not " + quote(req.MaxSession))
		}
		x.MaxSession = d
	}
	x.Hours = strings.TrimSpace(req.Hours)
	if x.Hours != "" {
		if err := checkText("hours", x.Hours, 256, false); err != nil {
			return x, err
		}
		if s.cfg.HoursValidator != nil {
			if err := s.cfg.HoursValidator(x.Hours); err != nil {
				return x, errors.New("hours: " + err.Error())
			}
		}
	}
	return x, nil
}

func (s *Server) putRule(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !validName(w, objectName, "rule", name) {
		return
	}
	var req putRuleReq
	if !decode(w, r, &req, false) {
		return
	}
	x, err := s.checkRule(req)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	now := s.now().UTC()
	x.Name, x.CreatedAt, x.UpdatedAt = name, now, now
	if err := s.st.PutRule(r.Context(), x); err != nil {
		s.internal(w, r, "put rule", err)
		return
	}
	s.log.Info("api: rule saved", "rule", name, "by", identity(r).User)
	s.getRule(w, r)
}

func (s *Server) deleteRule(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.st.DeleteRule(r.Context(), name); err != nil {
		s.storeErr(w, r, "rule", err)
		return
	}
	s.log.Info("api: rule deleted", "rule", name, "by", identity(r).User)
	w.WriteHeader(http.StatusNoContent)
}
