package envoy.authz_test

import data.envoy.authz

keys := {
	crypto.sha256("k-viewer"): {"name": "vera", "roles": ["viewer"]},
	crypto.sha256("k-editor"): {"name": "ed", "roles": ["editor"]},
	crypto.sha256("k-admin"): {"name": "ada", "roles": ["admin"]},
}

req(method, path, key) := {
	"attributes": {"request": {"http": {"method": method, "path": concat("/", ["", path]), "headers": {"x-api-key": key}}}},
	"parsed_path": split(path, "/"),
}

decide(method, path, key) := d if {
	d := authz.allow with input as req(method, path, key)
		with data.gavel.http.api_keys as keys
}

test_public_route_needs_no_key if {
	d := authz.allow with input as {"attributes": {"request": {"http": {"method": "GET", "headers": {}}}}, "parsed_path": ["healthz"]}
	d.allowed
	d.rule_ids == ["http.public"]
}

test_missing_key_is_401 if {
	d := authz.allow with input as {"attributes": {"request": {"http": {"method": "GET", "headers": {}}}}, "parsed_path": ["api", "v1", "orders"]}
	not d.allowed
	d.http_status == 401
	d.rule_ids == ["http.key.missing"]
}

test_unknown_key_is_401 if {
	d := decide("GET", "api/v1/orders", "nope")
	d.http_status == 401
	d.rule_ids == ["http.key.unknown"]
}

test_viewer_reads_orders if {
	d := decide("GET", "api/v1/orders/42", "k-viewer")
	d.allowed
	d.headers["x-gavel-principal"] == "vera"
}

test_viewer_cannot_post_orders if {
	d := decide("POST", "api/v1/orders", "k-viewer")
	not d.allowed
	d.http_status == 403
	d.rule_ids == ["http.role"]
}

test_editor_cannot_delete if {
	d := decide("DELETE", "api/v1/orders/1", "k-editor")
	d.http_status == 403
}

test_admin_deletes if {
	decide("DELETE", "api/v1/orders/1", "k-admin").allowed
}

test_unknown_route_is_404 if {
	d := decide("GET", "api/v2/things", "k-admin")
	d.http_status == 404
	d.rule_ids == ["http.route.unknown"]
}

test_prefix_matches_whole_segments if {
	d := decide("GET", "api/v1/ordersX", "k-admin")
	d.http_status == 404
}

test_method_not_allowed_is_405 if {
	d := decide("PATCH", "api/v1/orders", "k-admin")
	d.http_status == 405
}

test_body_with_card_number_is_422 if {
	d := authz.allow with input as object.union(req("POST", "api/v1/orders", "k-editor"), {"parsed_body": {"item": "book", "note": "pay with 4111 1111 1111 1111"}})
		with data.gavel.http.api_keys as keys
	d.http_status == 422
	d.rule_ids == ["http.body.card_number"]
}

test_clean_body_is_allowed if {
	d := authz.allow with input as object.union(req("POST", "api/v1/orders", "k-editor"), {"parsed_body": {"item": "book", "qty": 2}})
		with data.gavel.http.api_keys as keys
	d.allowed
}

test_body_not_inspected_on_other_routes if {
	d := authz.allow with input as object.union(req("POST", "api/v1/users", "k-admin"), {"parsed_body": {"note": "4111 1111 1111 1111"}})
		with data.gavel.http.api_keys as keys
	d.allowed
}

test_deny_body_is_json if {
	d := decide("GET", "api/v1/orders", "nope")
	json.unmarshal(d.body).rule == "http.key.unknown"
}
