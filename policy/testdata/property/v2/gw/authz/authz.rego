package gw.authz

# METADATA
# title: Gateway authorization (property test, revision 2)
# description: |
#   Reads the method, the path segments, three headers, a body field, a
#   nested body object and two query parameters: exactly the cache key.
# scope: document
# entrypoint: true
# custom:
#   gavel:
#     cache_key:
#       - input.attributes.request.http.method
#       - input.parsed_path
#       - input.attributes.request.http.headers["x-api-key"]
#       - input.attributes.request.http.headers["x-tenant"]
#       - input.attributes.request.http.headers["x-debug"]
#       - input.parsed_body.amount
#       - input.parsed_body.meta
#       - input.parsed_query.page
#       - input.parsed_query.dry
allow := {
	"allowed": true,
	"reason": sprintf("v2: public route %s", [route.id]),
	"rule_ids": ["gw.public"],
	"dynamic_metadata": metadata,
} if {
	route.public
} else := deny(401, "gw.key.missing", "v2: missing API key") if {
	not api_key
} else := deny(401, "gw.key.unknown", sprintf("v2: unknown API key %v", [api_key])) if {
	not principal
} else := deny(404, "gw.route", sprintf("v2: no route for %v", [input.parsed_path])) if {
	not route
} else := deny(405, "gw.method", sprintf("v2: %s is not allowed on %s", [method, route.id])) if {
	not route.methods[method]
} else := deny(403, "gw.role", sprintf("v2: %s lacks a role for %s %s", [principal.name, method, route.id])) if {
	not has_role
} else := deny(422, "gw.amount", sprintf("v2: amount %v is over %d", [amount, data.gw.limit])) if {
	over_limit
} else := {
	"allowed": true,
	"reason": sprintf("v2: %s may %s %s (page %v, risk %s)", [principal.name, method, route.id, page, risk]),
	"headers": {"x-tenant": tenant, "x-principal": principal.name, "x-debug": debug},
	"dynamic_metadata": metadata,
	"rule_ids": rule_ids,
	"ttl": ttl,
} if {
	not dry_delete
}

default method := "NONE"

method := m if {
	m := input.attributes.request.http.method
	is_string(m)
}

api_key := input.attributes.request.http.headers["x-api-key"]

principal := data.gw.keys[api_key]

default tenant := "none"

tenant := t if {
	t := input.attributes.request.http.headers["x-tenant"]
	is_string(t)
}

default debug := "off"

debug := "on" if input.attributes.request.http.headers["x-debug"] == "1"

route := data.gw.routes[concat("/", input.parsed_path)]

has_role if {
	some role in principal.roles
	role in route.methods[method]
}

amount := input.parsed_body.amount

over_limit if {
	is_number(amount)
	amount > data.gw.limit
}

default amount_out := "absent"

amount_out := amount

default amount_kind := "absent"

amount_kind := type_name(amount)

default meta := "none"

meta := input.parsed_body.meta

default page := 0

page := to_number(input.parsed_query.page[0])

dry_delete if {
	input.parsed_query.dry[0] == "true"
	method == "DELETE"
}

# Two definitions that disagree for the evil tenant's POSTs: an
# eval_conflict_error, which must never be cached.
default risk := "medium"

risk := "high" if tenant == "evil"

risk := "low" if method == "POST"

rule_ids contains "gw.role"

rule_ids contains "gw.debug" if debug == "on"

rule_ids contains sprintf("gw.segments.%d", [count(input.parsed_path)])

metadata := {
	"amount": amount_out,
	"amount_kind": amount_kind,
	"meta": meta,
	"tenant": tenant,
}

default ttl := 0

ttl := "10s" if page > 1

deny(status, id, msg) := {
	"allowed": false,
	"http_status": status,
	"body": concat("", ["{\"rule\": \"", id, "\"}"]),
	"reason": msg,
	"rule_ids": [id],
	"dynamic_metadata": metadata,
}
