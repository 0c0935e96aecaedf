# METADATA
# title: Secret detection
# description: |
#   The secret patterns shared by the agent policy (prompts, tool output) and
#   the validation rules (written files). Each pattern in
#   data.gavel.agent.config.secret_patterns has a kind, a description, an
#   RE2 pattern and hints (see candidates). When the pattern has a capture
#   group, the group is the secret and the rest is context (a variable
#   name, say). Strings listed in secret_allowlist (documentation examples)
#   are never reported.
package gavel.agent.secrets

patterns := data.gavel.agent.config.secret_patterns

allowlist := {s | some s in data.gavel.agent.config.secret_allowlist}

# A pattern's hints are lower-case strings, one of which every match
# contains (ignoring case): a pattern only runs on text that holds a hint,
# so long text without any costs a few substring searches. A pattern
# without hints always runs.
candidates(s) := [p |
	low := lower(s)
	some p in patterns
	hinted(p, low)
]

hinted(p, _) if not p.hints

hinted(p, low) if {
	some h in p.hints
	contains(low, h)
}

# may_hold(s): the string s may hold a secret (a cheap test before found).
may_hold(s) if count(candidates(s)) > 0

# found(s) is the set of [kind, secret] pairs in the string s.
found(s) := {[p.kind, secret] |
	some p in candidates(s)
	some secret in found_by(p, s)
}

# found_by(p, s) is the set of secrets the pattern p finds in s.
found_by(p, s) := {secret |
	some m in regex.find_all_string_submatch_n(p.pattern, s, -1)
	secret := secret_of(m)
	not secret in allowlist
}

# The secret of a match is its first group when it has one, else the match.
secret_of(m) := m[1] if {
	count(m) > 1
	m[1] != ""
} else := m[0]

# kinds(s) is the set of kinds of secret in the string s.
kinds(s) := {kind | some [kind, _] in found(s)}

# kinds_in(v) is the set of kinds of secret in any string inside the JSON
# value v.
kinds_in(v) := {kind |
	walk(v, [_, s])
	is_string(s)
	may_hold(s)
	some kind in kinds(s)
}

# description(kind) is how a kind is named for people.
description(kind) := d if {
	some p in patterns
	p.kind == kind
	d := p.description
} else := kind

# redact(s) is s with every secret replaced by [REDACTED:<kind>]. A string
# matched by two kinds is named by the first in sort order.
redact(s) := strings.replace_n(replacements, s) if {
	f := found(s)
	replacements := {secret: sprintf("[REDACTED:%s]", [min({k | some [k, x] in f; x == secret})]) |
		some [_, secret] in f
	}
}

# redact_value(v) is the JSON value v, same shape, with every secret in its
# strings redacted.
redact_value(v) := redact(v) if {
	is_string(v)
} else := json.patch(v, [{"op": "replace", "path": path, "value": redact(s)} |
	walk(v, [path, s])
	count(path) > 0
	is_string(s)
	may_hold(s)
	count(found(s)) > 0
])
