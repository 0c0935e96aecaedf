package envoy.authz

# METADATA
# title: HTTP authorization
# description: |
#   An API key and a role per route. Routes are matched by path segments,
#   in data order (the first match wins); each method lists the roles that
#   may call it.
#   Bodies of routes marked inspect_body are checked against forbidden
#   patterns. The decision is the OPA-Envoy object; the checks run in
#   order and the first that fails decides.
# scope: document
# entrypoint: true
# custom:
#   gavel:
#     cache_key:
#       - input.attributes.request.http.method
#       - input.parsed_path
#       - input.attributes.request.http.headers["x-api-key"]
#       - input.parsed_body
#     cache_ttl: 60s
#     reads_body: true
#     sensitive:
#       - input.attributes.request.http.headers["x-api-key"]
#       - input.attributes.request.http.headers.authorization
#       - input.attributes.request.http.headers.cookie
allow := {"allowed": true, "reason": "public route", "rule_ids": ["http.public"]} if {
	route.public
} else := deny(401, "http.key.missing", "missing API key: send it in the x-api-key header") if {
	not api_key
} else := deny(401, "http.key.unknown", "unknown API key") if {
	not principal
} else := deny(404, "http.route.unknown", sprintf("no route for /%s", [concat("/", input.parsed_path)])) if {
	not route
} else := deny(405, "http.method", sprintf("method %s is not allowed on route %s", [method, route.id])) if {
	not route.methods[method]
} else := deny(403, "http.role", sprintf("%s needs one of the roles %v on route %s", [principal.name, route.methods[method], route.id])) if {
	not has_role
} else := deny(422, body_violation.id, body_violation.reason) if {
	body_violation
} else := {
	"allowed": true,
	"headers": {"x-gavel-principal": principal.name},
	"reason": sprintf("%s may %s on route %s", [principal.name, method, route.id]),
	"rule_ids": ["http.role"],
}

method := input.attributes.request.http.method

api_key := input.attributes.request.http.headers["x-api-key"]

principal := data.gavel.http.api_keys[crypto.sha256(api_key)]

# Routes are matched in data order, as Envoy matches its routes: the first
# whose path segments start the request's path wins.
route := data.gavel.http.routes[first] if {
	first := min({i |
		some i, r in data.gavel.http.routes
		array.slice(input.parsed_path, 0, count(r.path)) == r.path
	})
}

has_role if {
	some role in principal.roles
	role in route.methods[method]
}

# The first forbidden pattern (in data order) that a string in the body matches.
body_violation := hits[0] if {
	route.inspect_body
	texts := [s | walk(input.parsed_body, [_, s]); is_string(s)]
	hits := [p |
		some p in data.gavel.http.body_rules.forbidden_patterns
		some s in texts
		regex.match(p.pattern, s)
	]
}

deny(status, id, msg) := {
	"allowed": false,
	"http_status": status,
	"headers": {"content-type": "application/json"},
	"body": json.marshal({"error": msg, "rule": id}),
	"reason": msg,
	"rule_ids": [id],
}
