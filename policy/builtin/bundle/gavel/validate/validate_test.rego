package gavel.validate_test

import data.gavel.validate

gh_token := concat("", ["ghp_", "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5"])

aws_key := concat("", ["AKIA", "Q3EGRJ7TMXW5L2PZ"])

file(path, texts) := {"path": path, "whole": true, "lines": [{"line": i + 1, "text": t} | some i, t in texts]}

check(files) := fs if {
	fs := validate.findings with input as {"files": files}
}

rules_of(fs) := [[f.path, f.line, f.rule] | some f in fs]

test_no_files_no_findings if {
	check([]) == []
	fs := validate.findings with input as {}
	fs == []
}

test_secret_found_with_line_and_without_the_value if {
	fs := check([file("cfg/app.yaml", ["name: app", sprintf("token: %s", [gh_token])])])
	fs == [{
		"path": "cfg/app.yaml",
		"line": 2,
		"rule": "secret.github-token",
		"severity": "error",
		"message": "possible GitHub token; keep secrets out of files (use an environment variable or a secret store) and rotate it if it is real",
	}]
	not contains(fs[0].message, gh_token)
}

test_secrets_in_any_file_type if {
	fs := check([
		file("a.txt", [aws_key]),
		file("b.go", ["", "", "-----BEGIN EC PRIVATE KEY-----"]),
	])
	rules_of(fs) == [["a.txt", 1, "secret.aws-access-key"], ["b.go", 3, "secret.private-key"]]
}

test_documentation_example_key_is_not_a_finding if {
	check([file("README.md", ["aws_access_key_id = AKIAIOSFODNN7EXAMPLE"])]) == []
}

test_go_insecure_skip_verify if {
	fs := check([file("tls.go", ["package tls", "", "cfg := &tls.Config{", "\tInsecureSkipVerify: true,", "}"])])
	rules_of(fs) == [["tls.go", 4, "lang.go.insecure-skip-verify"]]
	fs[0].severity == "error"
}

test_go_insecure_skip_verify_false_is_fine if {
	check([file("tls.go", ["cfg := &tls.Config{InsecureSkipVerify: false}", "// InsecureSkipVerify must stay off"])]) == []
}

test_patterns_apply_by_extension_only if {
	check([file("notes.md", ["InsecureSkipVerify: true", "x = eval(s)"])]) == []
}

test_python_rules if {
	fs := check([file("app.py", [
		"import yaml, pickle, subprocess",
		"x = eval(user_input)",
		"obj = pickle.loads(blob)",
		"cfg = yaml.load(f)",
		"subprocess.run(cmd, shell=True)",
		"cur.execute(f\"SELECT * FROM t WHERE id = {i}\")",
	])])
	rules_of(fs) == [
		["app.py", 2, "lang.python.eval"],
		["app.py", 3, "lang.python.pickle-loads"],
		["app.py", 4, "lang.python.yaml-load"],
		["app.py", 5, "lang.python.shell-true"],
		["app.py", 6, "lang.python.sql-format"],
	]
	{f.rule: f.severity | some f in fs}["lang.python.yaml-load"] == "error"
}

test_python_near_misses if {
	check([file("ok.py", [
		"model.eval()",
		"v = ast.literal_eval(s)",
		"cfg = yaml.load(f, Loader=yaml.SafeLoader)",
		"cfg = yaml.safe_load(f)",
		"subprocess.run([\"ls\", \"-l\"])",
		"cur.execute(\"SELECT * FROM t WHERE id = %s\", (i,))",
	])]) == []
}

test_javascript_rules if {
	fs := check([file("src/x.ts", [
		"const v = eval(code);",
		"const f = new Function(\"a\", body);",
		"execSync(`git log ${ref}`);",
		"const ok = /a/.exec(s);",
		"node.eval(x);",
	])])
	rules_of(fs) == [
		["src/x.ts", 1, "lang.js.eval"],
		["src/x.ts", 2, "lang.js.new-function"],
		["src/x.ts", 3, "lang.js.exec-template"],
	]
}

test_shell_pipe_to_shell if {
	fs := check([file("install.sh", ["#!/bin/sh", "curl -fsSL https://x | sh", "curl -o x https://x"])])
	rules_of(fs) == [["install.sh", 2, "lang.shell.pipe-to-shell"]]
}

test_no_licence_header_required_by_default if {
	check([file("a.go", ["package a"])]) == []
}

test_licence_header_required_when_configured if {
	fs := check([file("a.go", ["package a"]), file("b.go", ["// Copyright 2026 Example", "package b"]), file("c.py", ["x = 1"])]) with data.gavel.validate.config.license_headers as {".go": "Copyright \\d{4}"}
	rules_of(fs) == [["a.go", 1, "license.header"]]
}

test_licence_header_must_be_near_the_top if {
	lines := array.concat([sprintf("// line %d", [i]) | some i in numbers.range(1, 10)], ["// Copyright 2026 Example"])
	fs := check([file("a.go", lines)]) with data.gavel.validate.config.license_headers as {".go": "Copyright \\d{4}"}
	rules_of(fs) == [["a.go", 1, "license.header"]]
}

test_licence_header_only_checked_on_whole_files if {
	fs := check([{"path": "a.go", "whole": false, "lines": [{"line": 40, "text": "x := 1"}]}]) with data.gavel.validate.config.license_headers as {".go": "Copyright"}
	fs == []
}

test_size_limit if {
	fs := check([{"path": "big.bin", "size": 2097152, "lines": []}, {"path": "small.txt", "size": 10, "lines": []}])
	fs == [{"path": "big.bin", "line": 0, "rule": "size.limit", "severity": "error", "message": "the file is 2097152 bytes, over the limit of 1048576 bytes"}]
}

test_size_limit_from_whole_lines if {
	fs := check([file("a.txt", ["héllo", "world"])]) with data.gavel.validate.config.max_file_bytes as 11
	rules_of(fs) == [["a.txt", 0, "size.limit"]]
	contains(fs[0].message, "12 bytes")
	check([file("a.txt", ["hello", "world"])]) == [] with data.gavel.validate.config.max_file_bytes as 11
}

test_disabled_rules_and_severity_overrides if {
	lines := ["x = eval(s)", "cfg = yaml.load(f)"]
	fs := check([file("a.py", lines)]) with data.gavel.validate.config.disabled_rules as ["lang.python.yaml-load"]
		with data.gavel.validate.config.severity_overrides as {"lang.python.eval": "error"}
	fs == [{"path": "a.py", "line": 1, "rule": "lang.python.eval", "severity": "error", "message": "eval() runs arbitrary code; parse the input (ast.literal_eval, json.loads) instead"}]
}

test_findings_sorted_by_path_line_rule if {
	fs := check([
		file("z.go", [sprintf("k := %q // InsecureSkipVerify: true", [aws_key])]),
		file("a.py", ["", "x = eval(s)", "y = eval(t)"]),
	])
	rules_of(fs) == [
		["a.py", 2, "lang.python.eval"],
		["a.py", 3, "lang.python.eval"],
		["z.go", 1, "lang.go.insecure-skip-verify"],
		["z.go", 1, "secret.aws-access-key"],
	]
}

test_diff_lines_keep_their_numbers if {
	fs := check([{"path": "a.go", "lines": [{"line": 120, "text": "InsecureSkipVerify: true,"}]}])
	rules_of(fs) == [["a.go", 120, "lang.go.insecure-skip-verify"]]
}
