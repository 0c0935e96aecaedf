package gavel.agent.secrets_test

import data.gavel.agent.secrets

# Fake credentials assembled from parts so that no complete secret appears
# in the policy source.
aws_key := concat("", ["AKIA", "Q3EGRJ7TMXW5L2PZ"])

gh_token := concat("", ["ghp_", "aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5"])

pem := concat("\n", [
	"-----BEGIN RSA PRIVATE KEY-----",
	"MIIEpAIBAAKCAQEAx7M0z",
	"-----END RSA PRIVATE KEY-----",
])

test_aws_access_key_found if {
	secrets.kinds(sprintf("key=%s", [aws_key])) == {"aws-access-key"}
}

test_aws_documentation_example_ignored if {
	secrets.kinds("AKIAIOSFODNN7EXAMPLE") == set()
}

test_aws_secret_key_assignment_found if {
	s := concat("", ["aws_secret_access_key = ", "Zq8vB2xN4mK6jH8gF0dS2aP4oI6uY8tR0eW2qQ1z"])
	secrets.kinds(s) == {"aws-secret-key"}
	f := secrets.found(s)
	some [_, secret] in f
	not contains(secret, "aws_secret")
}

test_private_key_found if {
	secrets.kinds(pem) == {"private-key"}
}

test_private_key_header_line_found if {
	secrets.kinds("-----BEGIN OPENSSH PRIVATE KEY-----") == {"private-key"}
}

test_public_key_not_a_secret if {
	secrets.kinds("-----BEGIN PUBLIC KEY-----") == set()
}

test_github_tokens_found if {
	secrets.kinds(gh_token) == {"github-token"}
	secrets.kinds(concat("", ["github_pat_", "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"])) == {"github-token"}
}

test_slack_token_found if {
	secrets.kinds(concat("", ["xoxb-", "1234567890-abcdefghij"])) == {"slack-token"}
}

test_anthropic_key_is_not_also_openai if {
	secrets.kinds(concat("", ["sk-ant-", "api03-abcdefghijklmnopqrstuvwxyz012345"])) == {"anthropic-key"}
}

test_openai_keys_found if {
	secrets.kinds(concat("", ["sk-proj-", "abcdefghijklmnopqrstuvwxyz_0123-45"])) == {"openai-key"}
	secrets.kinds(concat("", ["sk-", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEF"])) == {"openai-key"}
}

test_google_and_stripe_found if {
	secrets.kinds(concat("", ["AIza", "SyA1234567890abcdefghijklmnopqrstuv"])) == {"google-api-key"}
	secrets.kinds(concat("", ["sk_live_", "abcdefghijklmnopqrstuvwx"])) == {"stripe-key"}
}

test_ordinary_text_has_no_secret if {
	secrets.kinds("risk-assessment task-manager AKIA123 ghp_short sk-short") == set()
}

test_redact_replaces_every_secret if {
	s := sprintf("a %s b %s c %s", [aws_key, gh_token, aws_key])
	secrets.redact(s) == "a [REDACTED:aws-access-key] b [REDACTED:github-token] c [REDACTED:aws-access-key]"
}

test_redact_private_key_block if {
	secrets.redact(sprintf("before\n%s\nafter", [pem])) == "before\n[REDACTED:private-key]\nafter"
}

test_redact_keeps_the_label_of_an_assignment if {
	s := concat("", ["AWS_SECRET_ACCESS_KEY=", "Zq8vB2xN4mK6jH8gF0dS2aP4oI6uY8tR0eW2qQ1z"])
	secrets.redact(s) == "AWS_SECRET_ACCESS_KEY=[REDACTED:aws-secret-key]"
}

test_redact_value_keeps_shape if {
	v := {"stdout": sprintf("token %s\n", [gh_token]), "stderr": "", "interrupted": false, "isImage": false, "nested": [1, {"k": aws_key}]}
	secrets.redact_value(v) == {"stdout": "token [REDACTED:github-token]\n", "stderr": "", "interrupted": false, "isImage": false, "nested": [1, {"k": "[REDACTED:aws-access-key]"}]}
}

test_redact_value_of_a_string if {
	secrets.redact_value(gh_token) == "[REDACTED:github-token]"
}

test_kinds_in_walks_values if {
	secrets.kinds_in({"a": [{"b": gh_token}], "c": aws_key}) == {"github-token", "aws-access-key"}
	secrets.kinds_in({"a": 1, "b": true}) == set()
}
