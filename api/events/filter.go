package events

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/gavel-dev/gavel/policy"
	"github.com/gavel-dev/gavel/store"
)

// Filter selects the events a connection receives. Within a parameter the
// values are alternatives (any may match); across parameters all must
// match. The decision filters (Source, Outcome, Principal, Rule, Entry)
// constrain decision events only.
type Filter struct {
	Types     []string
	Source    []string
	Outcome   []string
	Principal []string
	Rule      []string
	Entry     []string
}

var (
	eventTypes = []string{store.EventDecision, store.EventActivation, store.EventRegistration, store.EventBreaker}
	sources    = []string{policy.SourceEnvoy, policy.SourceHTTP, policy.SourceHook, policy.SourceMCP, policy.SourceValidate}
	outcomes   = []string{"allow", "deny", "ask", "no_opinion", "error"}
)

// ParseFilter reads a filter from a query string: type, source, outcome,
// principal, rule and entry, each repeatable or a comma-separated list.
// With decision filters and no type, only decisions are sent; decision
// filters with a type list that leaves decisions out are an error, as are
// unknown parameters and values outside type's, source's and outcome's
// sets. Errors name the parameter.
func ParseFilter(q url.Values) (Filter, error) {
	var f Filter
	fields := map[string]*[]string{
		"type": &f.Types, "source": &f.Source, "outcome": &f.Outcome,
		"principal": &f.Principal, "rule": &f.Rule, "entry": &f.Entry,
	}
	allowed := map[string][]string{"type": eventTypes, "source": sources, "outcome": outcomes}
	for name, vals := range q {
		dst, ok := fields[name]
		if !ok {
			return Filter{}, fmt.Errorf("unknown query parameter %q: want type, source, outcome, principal, rule or entry", name)
		}
		for _, v := range vals {
			for part := range strings.SplitSeq(v, ",") {
				part = strings.TrimSpace(part)
				if part == "" {
					return Filter{}, fmt.Errorf("query parameter %s: empty value", name)
				}
				if set := allowed[name]; set != nil && !slices.Contains(set, part) {
					return Filter{}, fmt.Errorf("query parameter %s: %q is not one of %s", name, part, strings.Join(set, ", "))
				}
				if !slices.Contains(*dst, part) {
					*dst = append(*dst, part)
				}
			}
		}
	}
	if f.decisionFilters() {
		switch {
		case len(f.Types) == 0:
			f.Types = []string{store.EventDecision}
		case !slices.Contains(f.Types, store.EventDecision):
			return Filter{}, fmt.Errorf("query parameter type: source, outcome, principal, rule and entry filter decisions, but type leaves out %s", store.EventDecision)
		}
	}
	return f, nil
}

func (f Filter) decisionFilters() bool {
	return len(f.Source)+len(f.Outcome)+len(f.Principal)+len(f.Rule)+len(f.Entry) > 0
}

// decisionFields are the parts of a decision record the filter reads.
type decisionFields struct {
	Source    string   `json:"source"`
	Outcome   string   `json:"outcome"`
	Principal string   `json:"principal"`
	RuleIDs   []string `json:"rule_ids"`
	Entry     string   `json:"entry"`
}

// Match reports whether e passes the filter. A decision whose data cannot
// be read passes only when no decision filter is set.
func (f Filter) Match(e store.Event) bool {
	if len(f.Types) > 0 && !slices.Contains(f.Types, e.Type) {
		return false
	}
	if e.Type != store.EventDecision || !f.decisionFilters() {
		return true
	}
	var d decisionFields
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return false
	}
	return anyOf(f.Source, d.Source) && anyOf(f.Outcome, d.Outcome) && anyOf(f.Principal, d.Principal) &&
		anyOf(f.Entry, d.Entry) && (len(f.Rule) == 0 || slices.ContainsFunc(d.RuleIDs, func(id string) bool { return slices.Contains(f.Rule, id) }))
}

// anyOf reports whether v is one of want, or want is empty.
func anyOf(want []string, v string) bool { return len(want) == 0 || slices.Contains(want, v) }
