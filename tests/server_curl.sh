#!/usr/bin/env bash
# Talks to `dspark serve` with curl, as people try a server from a shell: starts it on a free
# port with an API key, then checks a completion (JSON read back by python3), a streamed one
# (server-sent events: every line "data: ...", the last "data: [DONE]", the same text), a 400
# for a body that is not JSON, 401 without the key, /health without the key, and /metrics
# through promtool when it is installed.
#   tests/server_curl.sh DSPARK_BINARY MODEL
# Stops at the first failure with a line saying what was expected; exits 0 when all pass.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 DSPARK_BINARY MODEL" >&2
  exit 2
fi
dspark=$1
model=$2
key=test-key

work=$(mktemp -d "${TMPDIR:-/tmp}/dspark-server-curl.XXXXXX")
log=$work/server.log
server=""
cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  if [ -s "$log" ]; then
    echo "--- server log ---" >&2
    tail -n 30 "$log" >&2
  fi
  exit 1
}
ok() { echo "ok   $*"; }

"$dspark" serve -m "$model" --spec ngram --port 0 --parallel 4 --api-key "$key" -t 2 2>"$log" &
server=$!
port=""
for _ in $(seq 600); do  # up to 60 s
  port=$(sed -n 's|^listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$log" | head -n 1)
  [ -n "$port" ] && break
  kill -0 "$server" 2>/dev/null || fail "dspark serve exited before listening"
  sleep 0.1
done
[ -n "$port" ] || fail "dspark serve did not report a port within 60 s"
base=http://127.0.0.1:$port
echo "dspark serve listening on port $port" >&2

# curl -s: no progress; -S: but say why it failed; -o FILE -w '%{http_code}': status on stdout.
status_of() { curl -sS --max-time 60 -o "$work/body" -w '%{http_code}' "$@" || echo "curl-failed"; }
auth=(-H "Authorization: Bearer $key")
json=(-H "Content-Type: application/json")
request='{"model":"dspark","prompt":"Once upon a time","max_tokens":16,"temperature":0}'

# A completion: 200, a text_completion of 16 tokens ending for length, non-empty text.
s=$(status_of "${auth[@]}" "${json[@]}" -d "$request" "$base/v1/completions")
[ "$s" = 200 ] || fail "POST /v1/completions: expected 200, got $s: $(head -c 300 "$work/body")"
python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
c = j["choices"][0]
assert j["object"] == "text_completion", j["object"]
assert c["text"], "empty text"
assert c["finish_reason"] == "length", c["finish_reason"]
assert j["usage"]["completion_tokens"] == 16, j["usage"]
open(sys.argv[2], "w").write(c["text"])
' "$work/body" "$work/whole.txt" || fail "POST /v1/completions: unexpected body: $(head -c 300 "$work/body")"
ok "POST /v1/completions: 200, 16 tokens, finish_reason length"

# The same request streamed: every non-empty line is an event "data: ...", the last one
# "data: [DONE]", and the texts of the chunks add up to the whole completion's.
stream_request=${request%\}}',"stream":true}'
curl -sS -N --max-time 60 "${auth[@]}" "${json[@]}" -d "$stream_request" "$base/v1/completions" \
  >"$work/stream" || fail "streamed POST /v1/completions: curl failed"
python3 -c '
import json, sys
lines = [l for l in open(sys.argv[1]).read().split("\n") if l]
assert lines, "no events"
bad = [l for l in lines if not l.startswith("data: ")]
assert not bad, "a line that is not an event: %r" % bad[0]
assert lines[-1] == "data: [DONE]", "last line %r" % lines[-1]
assert lines.count("data: [DONE]") == 1, "[DONE] more than once"
chunks = [json.loads(l[6:]) for l in lines[:-1]]
text = "".join(c["text"] for j in chunks for c in j["choices"])
reasons = [c["finish_reason"] for j in chunks for c in j["choices"] if c["finish_reason"]]
assert reasons == ["length"], reasons
whole = open(sys.argv[2]).read()
assert text == whole, "streamed %r, whole %r" % (text, whole)
' "$work/stream" "$work/whole.txt" || fail "streamed POST /v1/completions: unexpected events: $(head -c 400 "$work/stream")"
ok "POST /v1/completions stream: data: events ending with data: [DONE], same text"

# A body that is not JSON: 400 with an OpenAI-style error.
s=$(status_of "${auth[@]}" "${json[@]}" -d '{"prompt": "Once' "$base/v1/completions")
[ "$s" = 400 ] || fail "invalid JSON: expected 400, got $s: $(head -c 300 "$work/body")"
python3 -c '
import json, sys
e = json.load(open(sys.argv[1]))["error"]
assert e["type"] == "invalid_request_error", e
assert e["message"], e
' "$work/body" || fail "invalid JSON: not an OpenAI error body: $(head -c 300 "$work/body")"
ok "invalid JSON: 400 invalid_request_error"

# No key, or a wrong one: 401 everywhere but /health.
for path in /v1/models /metrics; do
  s=$(status_of "$base$path")
  [ "$s" = 401 ] || fail "GET $path without the key: expected 401, got $s"
done
s=$(status_of "${json[@]}" -d "$request" "$base/v1/completions")
[ "$s" = 401 ] || fail "POST /v1/completions without the key: expected 401, got $s"
s=$(status_of -H "Authorization: Bearer wrong-key" "${json[@]}" -d "$request" "$base/v1/completions")
[ "$s" = 401 ] || fail "POST /v1/completions with a wrong key: expected 401, got $s"
grep -q '"invalid_api_key"' "$work/body" || fail "401 body lacks code invalid_api_key: $(head -c 300 "$work/body")"
ok "without the key or with a wrong one: 401 invalid_api_key"

s=$(status_of "$base/health")
[ "$s" = 200 ] || fail "GET /health without the key: expected 200, got $s"
ok "GET /health without the key: 200"

s=$(status_of "${auth[@]}" "$base/v1/models")
[ "$s" = 200 ] || fail "GET /v1/models: expected 200, got $s"
grep -q '"dspark"' "$work/body" || fail "GET /v1/models does not list dspark: $(head -c 300 "$work/body")"
ok "GET /v1/models lists dspark"

s=$(status_of "${auth[@]}" "$base/metrics")
[ "$s" = 200 ] || fail "GET /metrics: expected 200, got $s"
grep -q '^dspark_requests_finished_total{reason="length"} [1-9]' "$work/body" ||
  fail "GET /metrics does not count the finished requests: $(grep finished_total "$work/body" || true)"
if [ -x /usr/bin/promtool ]; then
  out=$(/usr/bin/promtool check metrics <"$work/body" 2>&1) || fail "promtool check metrics: $out"
  [ -z "$out" ] || fail "promtool check metrics has remarks: $out"
  ok "GET /metrics: 200, passes promtool check metrics"
else
  ok "GET /metrics: 200 (promtool not installed: format not checked)"
fi
echo "all curl checks passed"
