"""Simulated chat traffic: contract-valid event streams with a hidden ground truth.

The simulator stands in for a chat frontend and its users, for tests, benchmarks and the demo.
Later stages (preference pairs, anonymiser, code checks) are scored against what it knows and the
events do not say: the hidden quality of every response and every PII or secret value it planted.

The model of traffic:

- A pool of *slots* runs conversations side by side; each slot starts a new conversation when its
  previous one ends. The slots' events are merged by time, so conversations interleave as real
  traffic does. Users are drawn with a heavy-tailed activity weight (a few users chat a lot).
- Every response gets a hidden quality ``q`` in [0, 1], drawn from its model's Beta distribution
  (newer and larger models are better on average). Quality shapes the text: good answers have
  more useful sentences, poor ones carry filler, and poor code sometimes lacks a closing bracket.
- A user *perceives* ``q`` with personal noise (``q + gauss(0, noise)``) and acts on that:
  good answers get copied, near misses get edited (the edit improves them), bad answers get
  regenerated (up to three times, each a sibling with the same ``parent_id``) or rated down.
  Some users also rate, with an optional reason. Some turns show an A/B pair, and the user picks
  the better one, says ``tie`` when they look alike, or ``both_bad``.
- After acting the user usually continues the conversation from the response they kept; the next
  prompt carries that response (with its ``response_id``) in the history, capped at six messages.
- Clients misbehave: a few events are sent twice (same ``event_id``, a little later) and a few
  feedback events arrive before the generation they refer to (the generation was buffered).
- A few percent of events carry PII or secrets, planted in user messages (pasted details) and in
  code (hard-coded keys); truth records every field in which each planted value appears.

Everything derives from ``random.Random(seed)`` and a fixed start time, so a configuration always
produces byte-identical output.
"""

from __future__ import annotations

import copy
import heapq
import json
import random
import string
import time
import uuid
from bisect import bisect
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any, TextIO

import httpx

from flywheel.errors import FlywheelError

__all__ = [
    "PostSummary",
    "Simulation",
    "SimulationConfig",
    "SimulatorPostError",
    "SimulatorWriteError",
    "check_writable",
    "iter_batches",
    "post_events",
    "simulate",
    "write_jsonl",
    "write_truth",
]

HISTORY_LIMIT = 6  # at most this many messages of history per prompt, plus the system message
MAX_REGENERATIONS = 3
MAX_TURNS = 8
GOOD, NEAR_MISS = 0.62, 0.42  # perceived-quality thresholds: keep as is / fix by hand / replace
RETRY_AFTER_CAP_S = 10.0


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate: how many events, from which seed, with how much misbehaviour."""

    events: int = 1000  # exactly this many events are emitted, duplicates included
    seed: int = 0
    users: int | None = None  # None: scale with the event count
    start: datetime = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # occurred_at of the first activity
    pii_rate: float = 0.04  # about this share of events carries a planted PII or secret value
    duplicate_rate: float = 0.01  # share of events sent a second time
    out_of_order_rate: float = 0.02  # share of events sent before the generation they refer to
    ab_rate: float = 0.08  # share of user messages answered with an A/B pair

    @property
    def user_count(self) -> int:
        """Number of simulated users; scales with the event count unless set."""
        return self.users if self.users is not None else max(5, self.events // 60)


# --- The world: apps, models, corpus -------------------------------------------------------------


@dataclass(frozen=True)
class _Model:
    id: str
    version: str
    alpha: float  # Beta(alpha, beta) is the model's quality distribution
    beta: float
    weight: float  # share of traffic


MODELS = (
    _Model("chat-small", "2026-06", 3.0, 3.0, 0.35),
    _Model("chat-small", "2026-09", 3.6, 2.6, 0.40),
    _Model("chat-large", "2026-09", 4.6, 2.0, 0.25),
)
_MODEL_CUM = list(accumulate(m.weight for m in MODELS))

APPS = (
    (("web", "3.2.0"), 0.55),
    (("web", "3.1.7"), 0.10),
    (("vscode-extension", "1.4.1"), 0.30),
    (("vscode-extension", "1.3.9"), 0.05),
)
SYSTEM_PROMPTS = {
    "web": "You are a helpful assistant. Be concise.",
    "vscode-extension": "You are a coding assistant inside VS Code. Prefer answers with code.",
}


@dataclass(frozen=True)
class _Topic:
    lang: str | None  # None: a prose topic
    prompts: tuple[str, ...]
    intros: tuple[str, ...]
    sentences: tuple[str, ...]  # correct, useful sentences; better answers use more of them
    code: str = ""  # template; @name@ slots are filled from the slot pools
    slots: tuple[tuple[str, tuple[str, ...]], ...] = ()


_FILLER = (
    "It depends on your specific situation.",
    "There are many ways to approach this.",
    "You may want to check the documentation for more details.",
    "This is a complex topic with many considerations.",
    "In general, it is best to follow best practices.",
    "Let me know if you have any other questions!",
)
_IMPROVEMENTS = (
    "Note that this assumes the input fits in memory.",
    "I checked this against the latest stable release.",
    "For large inputs, stream the data instead of loading it all at once.",
    "Add a test for the empty case before relying on this.",
    "The same idea works in any language with a hash set.",
)
_FOLLOW_UPS_CODE = (
    "Can you add error handling to that?",
    "How would I write a test for this?",
    "Can you make it shorter?",
    "Does this work with large inputs?",
    "Thanks! Can you explain how it works line by line?",
    "That fails on empty input, any idea?",
)
_FOLLOW_UPS_PROSE = (
    "Can you give me an example?",
    "Can you make that shorter?",
    "Thanks, what are the downsides?",
    "How would you explain that to a beginner?",
    "Is there anything I should avoid?",
)
_FOLLOW_UP_INTROS = (
    "Sure, here is an updated version.",
    "Good question.",
    "Of course.",
    "Here is a revised answer.",
)
_REASONS_UP = ("Exactly what I needed", "Clear and correct", "Worked first time", "Concise")
_REASONS_DOWN = (
    "Too vague",
    "Wrong answer",
    "Missed the point of the question",
    "Too long",
    "The code does not run",
)
# Comment a user adds when polishing code, per language (JSON has no comments: a key instead).
_CODE_NOTES = {
    "python": "# Tested with Python 3.12",
    "javascript": "// Works in Node 20 and up",
    "go": "// Returns an error instead of panicking",
    "sql": "-- Uses the created_at index",
    "shell": "# Needs GNU coreutils",
    "json": '  "license": "MIT",',
}

# The corpus, as text so it stays readable. "== lang" (or "== prose") starts a topic;
# "@slot = a | b" lists values for @slot@ placeholders; "?" lines are first user messages;
# ">" lines open an answer; "-" lines are correct, useful sentences (better answers use more of
# them); the code template sits between "~~~" lines (Go indents with tabs, written as 4 spaces).
_CORPUS = """
== python
@fn = dedupe | unique | remove_duplicates | ordered_unique
? How do I remove duplicates from a list in Python but keep the order?
? Write a Python function that dedupes a list without changing the order.
? python: unique items of a list, preserving order?
> Here is a function that keeps the first occurrence of each item.
> You can track the items you have already seen in a set:
- Membership checks on a set are O(1), so the whole function runs in linear time.
- The items must be hashable; for a list of dicts, dedupe on a key instead.
- Since Python 3.7, list(dict.fromkeys(items)) does the same in one line.
- The original list is not modified; a new list is returned.
~~~
def @fn@(items):
    seen = set()
    result = []
    for item in items:
        if item not in seen:
            seen.add(item)
            result.append(item)
    return result


print(@fn@([3, 1, 3, 2, 1]))  # [3, 1, 2]
~~~
== python
@fn = sum_column | column_total | total_of
@col = amount | price | total | duration_ms
? Write Python code that sums the @col@ column of a CSV file.
? How can I add up one column of a CSV in Python without pandas?
> The standard library's csv module is enough for this:
> Here is a small function that streams the file:
- csv.DictReader maps each row to the header names, so you can use the column name.
- Opening the file with newline='' lets the csv module handle line endings.
- If some cells are empty, wrap the float() call in a try block and skip them.
- It reads row by row, so memory use stays constant for large files.
~~~
import csv


def @fn@(path, column="@col@"):
    total = 0.0
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            total += float(row[column])
    return total
~~~
== python
@fn = get_with_retry | fetch | robust_get
@n = 3 | 4 | 5
? How do I retry a failed HTTP request in Python with exponential backoff?
? requests keeps failing randomly, how can I retry it a few times?
> Wrap the call in a loop and sleep longer after each failure:
> A simple retry loop with exponential backoff looks like this:
- The delay doubles after every attempt, which gives a struggling server time to recover.
- raise_for_status() turns HTTP error codes into exceptions, so they are retried too.
- Only retry idempotent requests; a retried POST may run twice.
- The tenacity library offers the same with decorators if you need more control.
~~~
import time

import requests


def @fn@(url, attempts=@n@):
    for attempt in range(attempts):
        try:
            response = requests.get(url, timeout=10)
            response.raise_for_status()
            return response.json()
        except requests.RequestException:
            time.sleep(2 ** attempt)
    raise RuntimeError(f"giving up on {url}")
~~~
== javascript
@fn = debounce | debounced | coalesceCalls
@n = 100 | 250 | 300
? How do I debounce a function in JavaScript?
? Write a debounce helper for a resize handler in plain JS.
> A debounce wrapper resets a timer on every call:
> Here is a small debounce helper:
- The callback only runs once the events stop for the given number of milliseconds.
- Each call clears the pending timer, so bursts of events collapse into one call.
- The rest parameter keeps the arguments, so the callback receives the last event.
- Lodash has a debounce with leading and trailing options if you need them.
~~~
function @fn@(callback, waitMs = @n@) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => callback(...args), waitMs);
  };
}

const onResize = @fn@(() => console.log(window.innerWidth));
window.addEventListener("resize", onResize);
~~~
== javascript
@fn = fetchJson | getJson | loadData
? How do I fetch JSON with error handling in JavaScript?
? My fetch call ignores 404s, how do I handle errors properly?
> fetch only rejects on network errors, so check response.ok yourself:
> Here is a helper that throws on HTTP errors:
- fetch resolves even for 404 and 500 responses, which is why the ok check is needed.
- The error message includes the status, which makes failures easy to diagnose.
- Callers can use try/catch around await to handle both network and HTTP errors.
- Set an AbortController timeout if the server may hang.
~~~
async function @fn@(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) {
    throw new Error(`Request failed with status ${response.status}`);
  }
  return response.json();
}
~~~
== go
@fn = Reverse | reverseString | ReverseRunes
? How do I reverse a string in Go, including unicode?
? Write a Go function that reverses a UTF-8 string.
> Convert the string to runes first so multi-byte characters stay intact:
> Here is a rune-based version:
- Indexing a string in Go gives bytes, so reversing bytes would break UTF-8.
- The two indices walk towards each other and swap, which needs no extra slice.
- Combining characters are still separate runes; use a grapheme library for those.
- The function allocates one rune slice and one string.
~~~
func @fn@(s string) string {
    runes := []rune(s)
    for i, j := 0, len(runes)-1; i < j; i, j = i+1, j-1 {
        runes[i], runes[j] = runes[j], runes[i]
    }
    return string(runes)
}
~~~
== go
@fn = ReadLines | readLines | LinesOf
? How do I read a file line by line in Go?
? What's the idiomatic way to get all lines of a file in Go?
> bufio.Scanner is the idiomatic tool:
> Use a scanner over the opened file:
- defer file.Close() makes sure the file is closed on every return path.
- scanner.Err() reports read errors that ended the loop early.
- Lines longer than 64 KiB need scanner.Buffer with a larger limit.
- The newline characters are stripped from each line.
~~~
func @fn@(path string) ([]string, error) {
    file, err := os.Open(path)
    if err != nil {
        return nil, err
    }
    defer file.Close()

    var lines []string
    scanner := bufio.NewScanner(file)
    for scanner.Scan() {
        lines = append(lines, scanner.Text())
    }
    return lines, scanner.Err()
}
~~~
== sql
@col = amount | total | price
@table = orders | payments | invoices
@days = 7 | 30 | 90
@n = 5 | 10 | 20
? Write a SQL query for the top @n@ customers by revenue in the last @days@ days.
? SQL: who are our biggest customers recently?
> Join customers to their orders and aggregate:
> Here is a query that does it:
- GROUP BY both id and name so customers with the same name stay separate.
- The date filter runs before the aggregation, which keeps the join small.
- An index on created_at makes the filter fast on large tables.
- Use DENSE_RANK() instead of LIMIT if ties should share a place.
~~~
SELECT c.id, c.name, SUM(o.@col@) AS revenue
FROM customers AS c
JOIN @table@ AS o ON (o.customer_id = c.id)
WHERE o.created_at >= CURRENT_DATE - INTERVAL '@days@ days'
GROUP BY c.id, c.name
ORDER BY revenue DESC
LIMIT @n@;
~~~
== sql
@table = events | sessions | page_views
@days = 7 | 14 | 30
? How do I count daily active users in SQL?
? Query for distinct users per day over the last @days@ days?
> Truncate the timestamp to the day and count distinct users:
> COUNT(DISTINCT ...) per day does it:
- date_trunc keeps the result a timestamp, which sorts and charts well.
- COUNT(DISTINCT user_id) counts each user once per day however active they were.
- GROUP BY 1 refers to the first selected column, the day.
- Days without any activity are missing; join a calendar table to show zeros.
~~~
SELECT date_trunc('day', occurred_at) AS day,
       COUNT(DISTINCT user_id) AS active_users
FROM @table@
WHERE occurred_at >= now() - INTERVAL '@days@ days'
GROUP BY 1
ORDER BY 1;
~~~
== json
@name = billing-core | ui-kit | event-utils | parser
? Give me a minimal package.json for a TypeScript library with tests.
? What should package.json look like for a small TS project using vitest?
> Here is a minimal package.json:
> This is enough to build, test and lint:
- "private": true stops you from publishing the package by accident.
- The scripts section lets you run npm run build, npm test and npm run lint.
- Caret ranges accept compatible minor and patch updates.
- Add a types field if other projects will import the library.
~~~
{
  "name": "@name@",
  "version": "1.0.0",
  "private": true,
  "scripts": {
    "build": "tsc -p .",
    "test": "vitest run",
    "lint": "eslint src"
  },
  "devDependencies": {
    "typescript": "^5.4.0",
    "vitest": "^1.6.0"
  }
}
~~~
== json
@name = email | amount | currency | start_date
@n = 7f3a9c | 0b12de | 88c1aa
? What is a good JSON shape for API error responses?
? Show an example JSON error body for a REST API.
> A common shape nests the details under an error key:
> Here is an error body clients can rely on:
- A stable machine-readable code lets clients branch without parsing the message.
- The details list can point at every invalid field at once.
- A request id lets support find the request in the server logs.
- RFC 9457 standardises a similar shape as application/problem+json.
~~~
{
  "error": {
    "code": "invalid_request",
    "message": "The field '@name@' is required.",
    "details": [{"field": "@name@", "issue": "missing"}]
  },
  "request_id": "req_@n@"
}
~~~
== shell
@dir = /var/log/app | ./logs | /srv/worker/logs
@days = 7 | 14 | 30
? Shell command to delete log files older than @days@ days?
? How do I clean up old .log files in a directory from a cron job?
> find can select and delete in one pass:
> Here is a small cleanup script:
- -mtime +N matches files modified more than N days ago.
- Run it once without -delete to see what would be removed.
- set -euo pipefail stops the script on the first error.
- Quote the directory so paths with spaces work.
~~~
#!/usr/bin/env bash
set -euo pipefail

find "@dir@" -type f -name '*.log' -mtime +@days@ -print -delete
echo "cleaned $(date +%F)"
~~~
== shell
@n = 30 | 60 | 120
? Bash loop to wait until a service is healthy?
? How do I wait for localhost:8080/health to come up in a script?
> Poll the health endpoint with curl until it answers:
> A loop with a bounded number of attempts works well:
- curl -f makes HTTP errors fail the command, so only a 2xx counts as healthy.
- The loop gives up after a fixed number of seconds instead of hanging forever.
- Errors go to stderr so CI logs show why the script failed.
- In docker compose, a healthcheck with depends_on does the same declaratively.
~~~
for i in $(seq 1 @n@); do
  if curl -fsS "http://localhost:8080/health" > /dev/null; then
    echo "up after ${i}s"
    exit 0
  fi
  sleep 1
done
echo "service did not come up" >&2
exit 1
~~~
== prose
? What's the difference between git rebase and git merge?
? Should I rebase or merge my feature branch?
> Both integrate changes from one branch into another, but they record history differently.
- A merge keeps both histories and adds a merge commit that ties them together.
- A rebase replays your commits on top of the target branch, giving a linear history.
- Never rebase commits that others have already pulled, because it rewrites them.
- Rebasing a private feature branch before opening a pull request keeps review simple.
- Merging is safer for shared branches since it never rewrites existing commits.
== prose
? What is a database index and when should I add one?
? Why are my queries slow and would an index help?
> An index is a separate structure that lets the database find rows without a full scan.
- Most indexes are B-trees, which keep values sorted for fast lookups and range scans.
- Add an index on columns you filter, join or sort on frequently.
- Every index slows down writes a little, because it must be updated too.
- EXPLAIN shows whether a query actually uses the index.
- Columns with very few distinct values rarely benefit from an index.
== prose
? How does HTTP caching work?
? What do Cache-Control and ETag actually do?
> HTTP caching lets browsers and proxies reuse responses instead of fetching them again.
- Cache-Control: max-age tells caches how many seconds a response stays fresh.
- An ETag identifies a version, so a client can ask whether its copy is still current.
- A 304 Not Modified answer saves sending the body again.
- no-store forbids caching entirely, which suits responses with personal data.
- Static assets with hashed file names can be cached for a year.
== prose
? Explain TCP vs UDP simply.
? When should I use UDP instead of TCP?
> TCP and UDP are both transport protocols, but they make different promises.
- TCP guarantees ordered, reliable delivery by acknowledging and resending packets.
- UDP sends datagrams without guarantees, which avoids the overhead and delay.
- Video calls and games prefer UDP, because a late packet is useless anyway.
- HTTP/3 runs over QUIC, which builds reliability on top of UDP.
- File transfers and web pages need every byte, so they use TCP.
== prose
? Help me write a short email to reschedule a meeting with a client.
? Can you draft a polite message moving our Thursday call?
> Here is a short, polite draft:
- Hi Sam, I'm sorry, but I need to move our call on Thursday.
- Would Friday at 10:00 or Monday afternoon work for you instead?
- I'll bring the updated figures we discussed, so we can decide on next steps.
- Thanks for your flexibility, and apologies for the short notice.
- Best regards, Alex
== prose
? Why should I write unit tests?
? Is unit testing worth the time on a small project?
> Unit tests pay for themselves surprisingly quickly, even on small projects.
- They catch regressions the moment a change breaks existing behaviour.
- They document how a function is meant to be used, with runnable examples.
- Code that is easy to test tends to have fewer hidden dependencies.
- Fast tests let you refactor with confidence instead of fear.
- Start with the functions that hold your business rules.
== prose
? What is a Python virtual environment?
? Why do people use venv in Python?
> A virtual environment is an isolated Python installation for one project.
- Each project gets its own packages, so version conflicts between projects disappear.
- Create one with python -m venv .venv and activate it before installing packages.
- Pin your dependencies in a lock file so others can recreate the environment.
- Never commit the .venv directory; it is rebuilt from the dependency list.
- Tools like uv and poetry create and manage the environment for you.
"""


def _parse_corpus(text: str) -> tuple[_Topic, ...]:
    topics = []
    for block in text.split("\n== ")[1:]:
        header, *lines = block.split("\n")
        parts: dict[str, list[str]] = {"?": [], ">": [], "-": []}
        slots: list[tuple[str, tuple[str, ...]]] = []
        code: list[str] = []
        in_code = False
        for line in lines:
            if line == "~~~":
                in_code = not in_code
            elif in_code:
                code.append(line)
            elif line.startswith("@"):
                name, values = line[1:].split(" = ")
                slots.append((name, tuple(v.strip() for v in values.split("|"))))
            elif line:
                parts[line[0]].append(line[2:])
        template = "\n".join(code)
        if header == "go":
            template = template.replace("    ", "\t")
        lang = None if header == "prose" else header
        prompts, intros, sentences = (tuple(parts[k]) for k in "?>-")
        topic = _Topic(lang, prompts, intros, sentences, template, tuple(slots))
        topics.append(topic)
    return tuple(topics)


TOPICS = _parse_corpus(_CORPUS)
_CODE_TOPICS = tuple(t for t in TOPICS if t.lang is not None)
_PROSE_TOPICS = tuple(t for t in TOPICS if t.lang is None)


# --- PII and secrets ---------------------------------------------------------------------------

_ALNUM = string.ascii_letters + string.digits
_UPPER_ALNUM = string.ascii_uppercase + string.digits
_NAMES = ("alice", "bob", "carol", "dmitri", "eva", "farid", "grace", "hiro", "ines", "jonas")
_DOMAINS = ("gmail.com", "outlook.com", "acme-corp.io", "example.org", "proton.me")


def _chars(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choices(alphabet, k=n))


def _digits(rng: random.Random, n: int) -> str:
    return _chars(rng, string.digits, n)


def _luhn_check_digit(payload: str) -> str:
    """The digit that makes ``payload`` + digit pass the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str(-total % 10)


def _card(rng: random.Random) -> str:
    payload = rng.choice(("4", "51", "53", "55"))
    payload += _digits(rng, 15 - len(payload))
    number = payload + _luhn_check_digit(payload)
    if rng.random() < 0.5:
        return " ".join(number[i : i + 4] for i in range(0, 16, 4))
    return number


def _phone(rng: random.Random) -> str:
    style = rng.randrange(4)
    if style == 0:
        return f"+44 20 7946 {_digits(rng, 4)}"
    if style == 1:
        return f"(555) {_digits(rng, 3)}-{_digits(rng, 4)}"
    if style == 2:
        return f"+1 415 555 {_digits(rng, 4)}"
    return f"+49 30 {_digits(rng, 8)}"


def _pii_value(rng: random.Random, kind: str) -> str:
    """A fresh value of one kind; for a URL password, only the password (the secret part)."""
    if kind == "email":
        return (
            f"{rng.choice(_NAMES)}.{rng.choice(_NAMES)}{rng.randrange(100)}@{rng.choice(_DOMAINS)}"
        )
    if kind == "phone":
        return _phone(rng)
    if kind == "ipv4":
        first = rng.choice((23, 45, 81, 92, 104, 151, 185, 203, 212))
        return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    if kind == "credit_card":
        return _card(rng)
    if kind == "aws_access_key":
        return "AKIA" + _chars(rng, _UPPER_ALNUM, 16)
    if kind == "github_token":
        return "ghp_" + _chars(rng, _ALNUM, 36)
    if kind == "slack_token":
        return f"xoxb-{_digits(rng, 11)}-{_digits(rng, 13)}-{_chars(rng, _ALNUM, 24)}"
    if kind == "password_in_url":
        return _chars(rng, _ALNUM, 10) + rng.choice("!#%*") + _digits(rng, 2)
    return _chars(rng, _ALNUM, 32)  # api_key


def _db_url(rng: random.Random, password: str) -> str:
    host = rng.choice(("db.internal", "localhost", "pg-prod.acme-corp.io"))  # no stray IPs
    return f"postgres://{rng.choice(_NAMES)}:{password}@{host}:5432/{rng.choice(('app', 'sales'))}"


# Sentences a user pastes details into; {v} is the planted value.
_PROSE_PLANTS = (
    ("email", "You can reach me at {v} if anything is unclear."),
    ("email", "Please cc {v} on the answer."),
    ("phone", "My number is {v}, text me if you need more details."),
    ("phone", "The on-call phone is {v} by the way."),
    ("ipv4", "The server at {v} keeps timing out."),
    ("ipv4", "Requests from {v} are being blocked."),
    ("credit_card", "My card {v} was charged twice, does that matter here?"),
    ("aws_access_key", "I set AWS_ACCESS_KEY_ID={v} but boto3 still says access denied."),
    ("github_token", "I'm using the token {v} and the API returns 401."),
    ("slack_token", "Our bot token is {v}; why does chat.postMessage fail?"),
    ("password_in_url", "My connection string is {url} and psql refuses it."),
    ("api_key", 'Here is my config line: api_key = "{v}" in settings.py.'),
)
# Lines a model hard-codes into code (echoing what users pasted); {v} is the planted value.
_CODE_PLANTS = {
    "python": (
        ("api_key", 'api_key = "{v}"'),
        ("aws_access_key", 'AWS_ACCESS_KEY_ID = "{v}"'),
        ("password_in_url", 'DATABASE_URL = "{url}"'),
        ("email", 'ADMIN_EMAIL = "{v}"'),
    ),
    "javascript": (
        ("api_key", 'const api_key = "{v}";'),
        ("github_token", 'const GITHUB_TOKEN = "{v}";'),
        ("slack_token", 'const slackToken = "{v}";'),
    ),
    "go": (("api_key", 'var api_key = "{v}"'), ("ipv4", 'const serverAddr = "{v}:8080"')),
    "sql": (
        ("email", "-- reported by {v}"),
        ("password_in_url", "-- connect with {url}"),
        ("ipv4", "-- slow on replica {v}"),
    ),
    "json": (("api_key", '  "api_key": "{v}",'), ("email", '  "author": "{v}",')),
    "shell": (
        ("aws_access_key", "export AWS_ACCESS_KEY_ID={v}"),
        ("github_token", 'export GITHUB_TOKEN="{v}"'),
        ("password_in_url", "export DATABASE_URL={url}"),
        ("ipv4", "ssh deploy@{v} 'systemctl restart app'"),
    ),
}
_SIGNATURE_PLANTS = (("email", "Feel free to write to {v}."), ("phone", "Call me on {v}."))


# --- Responses -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Response:
    response_id: str
    model: _Model
    quality: float
    perceived: float  # the user's noisy reading of quality; every decision uses this
    topic: _Topic
    before: list[str]
    code: str | None  # as shown, possibly broken
    intended_code: str | None  # what the model meant; differs when a bracket went missing
    after: list[str]
    text: str = ""


def _render(before: list[str], code: str | None, lang: str | None, after: list[str]) -> str:
    parts = [" ".join(before)] if before else []
    if code is not None:
        parts.append(f"```{lang}\n{code}\n```")
    if after:
        parts.append(" ".join(after))
    return "\n\n".join(parts)


def _fill(rng: random.Random, template: str, slots: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    for name, values in slots:
        template = template.replace(f"@{name}@", rng.choice(values))
    return template


def _break_code(rng: random.Random, code: str) -> str:
    """Drop one closing bracket: the kind of mistake a weak model makes and a parser finds."""
    positions = [i for i, ch in enumerate(code) if ch in ")]}"]
    i = rng.choice(positions)
    return code[:i] + code[i + 1 :]


def _sentences(rng: random.Random, topic: _Topic, quality: float, useful: int) -> list[str]:
    """Useful sentences (more when better), diluted with filler when poor."""
    chosen = rng.sample(topic.sentences, min(useful, len(topic.sentences)))
    for _ in range(round((1.0 - quality) * 2.2)):
        chosen.insert(rng.randrange(len(chosen) + 1), rng.choice(_FILLER))
    return chosen


# --- Users ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _User:
    user_id: str
    app: tuple[str, str]
    consent: dict[str, Any] | None
    noise: float  # how far their perceived quality strays from the hidden quality
    code_share: float  # share of their conversations about code
    copy_prob: float
    edit_prob: float
    rate_prob: float
    patience: float  # chance to regenerate a bad answer instead of giving up on it


def _make_users(rng: random.Random, n: int) -> tuple[list[_User], list[float]]:
    users: list[_User] = []
    weights: list[float] = []
    app_cum = list(accumulate(w for _, w in APPS))
    for _ in range(n):
        app = APPS[bisect(app_cum, rng.random() * app_cum[-1])][0]
        roll = rng.random()
        consent: dict[str, Any] | None = {"training": True, "policy_version": "2026-01"}
        if roll < 0.06:
            consent = {"training": False, "policy_version": "2026-01"}
        elif roll < 0.12:
            consent = None  # older frontends do not know the consent state
        users.append(
            _User(
                user_id=f"u_{rng.getrandbits(48):012x}",
                app=app,
                consent=consent,
                noise=rng.uniform(0.05, 0.15),
                code_share=0.8 if app[0] == "vscode-extension" else rng.uniform(0.3, 0.6),
                copy_prob=rng.uniform(0.5, 0.9),
                edit_prob=rng.uniform(0.25, 0.6),
                rate_prob=rng.choice((0.03, 0.1, 0.25, 0.5)),  # most users rarely rate
                patience=rng.uniform(0.6, 0.95),
            )
        )
        weights.append(rng.paretovariate(1.5))
    return users, list(accumulate(weights))


# --- One slot of traffic: conversations one after another ----------------------------------------


@dataclass(slots=True)
class _Pending:
    """An event waiting to be emitted, with what only the truth may know about it."""

    emit_at: float  # seconds after start when the client sends it (>= occurred time)
    event: dict[str, Any]
    quality: float | None = None  # generation events: hidden quality
    model: _Model | None = None
    plants: list[tuple[str, str, str]] = field(default_factory=list)  # (field, kind, value)


class _Slot:
    """Runs conversations back to back; ``run`` yields their events in emission order."""

    def __init__(
        self,
        config: SimulationConfig,
        rng: random.Random,
        users: list[_User],
        user_cum: list[float],
        t: float,
    ) -> None:
        self.cfg = config
        self.rng = rng
        self.users = users
        self.user_cum = user_cum
        self.t = t
        self.last_emit = 0.0
        # Misbehaviour and PII draw from streams of their own, so their rates change nothing else.
        self.client_rng = random.Random(rng.getrandbits(64))
        self.pii_rng = random.Random(rng.getrandbits(64))
        self.ooo_debt = 0.0  # out-of-order events owed, so the rate holds whatever the turn mix
        self.pii_p = min(1.0, config.pii_rate * _PII_SCALE)
        self.iso_base = config.start if config.start.tzinfo else config.start.replace(tzinfo=UTC)
        # Per-conversation state, reset by _conversation.
        self.user = users[0]
        self.conv_id = ""
        self.plants: list[tuple[str, str]] = []

    # Identifiers and envelopes.

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{self.rng.getrandbits(64):016x}"

    def _event(self, kind: str, t: float) -> dict[str, Any]:
        iso = (self.iso_base + timedelta(seconds=t)).isoformat(timespec="milliseconds")
        event: dict[str, Any] = {
            "event_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "type": kind,
            "occurred_at": iso[:-6] + "Z" if iso.endswith("+00:00") else iso,
            "user_id": self.user.user_id,
            "conversation_id": self.conv_id,
            "app": {"name": self.user.app[0], "version": self.user.app[1]},
        }
        if self.user.consent is not None:
            event["consent"] = dict(self.user.consent)
        event["schema_version"] = 1
        return event

    def _pending(
        self,
        event: dict[str, Any],
        t: float,
        fields: list[tuple[str, str]],
        response: _Response | None = None,
    ) -> _Pending:
        plants = [
            (path, kind, value)
            for kind, value in self.plants
            for path, text in fields
            if value in text
        ]
        if response is None:
            return _Pending(t, event, plants=plants)
        return _Pending(t, event, response.quality, response.model, plants)

    # Texts.

    def _user_message(self, topic: _Topic, previous: str | None) -> str:
        rng = self.rng
        if previous is None:
            text = _fill(rng, rng.choice(topic.prompts), topic.slots)
        else:
            follow_ups = _FOLLOW_UPS_CODE if topic.lang else _FOLLOW_UPS_PROSE
            text = rng.choice([f for f in follow_ups if not previous.startswith(f)])
        pasted = self._maybe_plant(_PROSE_PLANTS)
        return text if pasted is None else f"{text} {pasted}"

    def _maybe_plant(self, templates: tuple[tuple[str, str], ...]) -> str | None:
        """With the PII rate's chance, a line carrying a fresh value from ``(kind, template)``."""
        rng = self.pii_rng  # a stream of its own: the PII rate leaves everything else alone
        if rng.random() >= self.pii_p:
            return None
        kind, template = rng.choice(templates)
        value = _pii_value(rng, kind)
        self.plants.append((kind, value))
        url = _db_url(rng, value) if kind == "password_in_url" else ""
        return template.format(v=value, url=url)

    def _respond(self, topic: _Topic, model: _Model, first: bool) -> _Response:
        rng = self.rng
        q = rng.betavariate(model.alpha, model.beta)
        perceived = q + rng.gauss(0.0, self.user.noise)
        intro = rng.choice(topic.intros) if first else rng.choice(_FOLLOW_UP_INTROS)
        code = intended = None
        if topic.lang is None:
            before = [intro, *_sentences(rng, topic, q, 1 + round(q * 3.5))]
            after: list[str] = []
            signature = self._maybe_plant(_SIGNATURE_PLANTS)
            if signature is not None:
                before.append(signature)
        else:
            before = [intro]
            after = _sentences(rng, topic, q, round(q * 2.6))
            intended = _fill(rng, topic.code, topic.slots)
            line = self._maybe_plant(_CODE_PLANTS[topic.lang])
            if line is not None:
                lines = intended.split("\n")
                lines.insert(1 if topic.lang == "json" else 0, line)
                intended = "\n".join(lines)
            code = intended
            if q < 0.4 and rng.random() < 0.5:
                code = _break_code(rng, intended)
        response = _Response(
            self._id("resp"), model, q, perceived, topic, before, code, intended, after
        )
        response.text = _render(before, code, topic.lang, after)
        return response

    def _edited(self, r: _Response) -> str:
        """The text a user wants instead: mostly a small fix, sometimes a rewrite or just spaces."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.04:
            return r.text + "\n"  # whitespace-only edits happen; derivation must ignore them
        before, after, code = list(r.before), list(r.after), r.code
        if roll < 0.12:  # a large rewrite: keep little of the original
            before = [rng.choice(_IMPROVEMENTS)]
            after = rng.sample(r.topic.sentences, min(3, len(r.topic.sentences)))
        elif code is not None and code != r.intended_code:
            code = r.intended_code  # restore the missing bracket
        elif code is not None and r.topic.lang is not None and rng.random() < 0.5:
            lines = code.split("\n")
            lines.insert(1 if r.topic.lang == "json" else 0, _CODE_NOTES[r.topic.lang])
            code = "\n".join(lines)
        else:
            prose = after if code is not None else before
            better = rng.choice(
                [s for s in r.topic.sentences if s not in prose] or list(_IMPROVEMENTS)
            )
            fillers = [i for i, s in enumerate(prose) if s in _FILLER]
            if fillers:
                prose[rng.choice(fillers)] = better
            else:
                prose.append(better)
        text = _render(before, code, r.topic.lang, after)
        return text if text != r.text else r.text + " " + rng.choice(_IMPROVEMENTS)

    def _copied(self, r: _Response) -> tuple[str, bool]:
        rng = self.rng
        if r.code is not None and rng.random() < 0.8:
            return r.code, True
        if rng.random() < 0.25:
            return r.text, False
        return rng.choice(r.before + r.after), False

    # The conversation.

    def run(self) -> Iterator[_Pending]:
        """Yield pending events forever, one conversation after another."""
        while True:
            yield from self._conversation()
            self.t += self.rng.expovariate(1 / 240.0)  # idle gap before the next conversation

    def _conversation(self) -> Iterator[_Pending]:
        rng = self.rng
        self.user = self.users[bisect(self.user_cum, rng.random() * self.user_cum[-1])]
        self.conv_id = self._id("conv")
        self.plants = []
        code = rng.random() < self.user.code_share
        topic = rng.choice(_CODE_TOPICS if code else _PROSE_TOPICS)
        model = MODELS[bisect(_MODEL_CUM, rng.random() * _MODEL_CUM[-1])]
        system = []
        if self.user.app[0] == "vscode-extension" or rng.random() < 0.5:
            system = [{"role": "system", "content": SYSTEM_PROMPTS[self.user.app[0]]}]
        history: list[dict[str, Any]] = []
        for turn in range(MAX_TURNS):
            if turn:
                self.t += rng.uniform(8.0, 90.0)  # reading, thinking, typing
            previous = history[-2]["content"] if history else None
            history.append({"role": "user", "content": self._user_message(topic, previous)})
            window = history[-HISTORY_LIMIT:]
            if window[0]["role"] == "assistant":  # trimmed history starts with a user message
                window = window[1:]
            prompt = system + window
            out: list[_Pending] = []
            kept = self._turn(topic, model, prompt, self._id("msg"), turn == 0, out)
            yield from self._emission_order(out)
            history.append(
                {"role": "assistant", "content": kept.text, "response_id": kept.response_id}
            )
            if rng.random() > 0.35 + 0.45 * min(max(kept.perceived, 0.0), 1.0):
                return

    def _generation(
        self,
        r: _Response,
        parent_id: str,
        prompt: list[dict[str, Any]],
        out: list[_Pending],
        delay: float | None = None,
    ) -> None:
        self.t += _latency(self.rng, r.text) if delay is None else delay
        event = self._event("generation", self.t)
        event.update(
            response_id=r.response_id,
            parent_id=parent_id,
            prompt=[dict(m) for m in prompt],
            response=r.text,
            model={"id": r.model.id, "version": r.model.version},
        )
        fields = []
        if self.plants:  # only then can a field carry a planted value
            fields = [(f"prompt[{i}].content", m["content"]) for i, m in enumerate(prompt)]
            fields.append(("response", r.text))
        out.append(self._pending(event, self.t, fields, r))

    def _feedback(self, kind: str, r: _Response, out: list[_Pending], **payload: Any) -> None:
        self.t += self.rng.uniform(1.0, 6.0)
        event = self._event(kind, self.t)
        event["response_id"] = r.response_id
        event.update(payload)
        fields: list[tuple[str, str]] = [
            (name, payload[name]) for name in ("text", "edited_text") if name in payload
        ]
        out.append(self._pending(event, self.t, fields if self.plants else []))

    def _turn(
        self,
        topic: _Topic,
        model: _Model,
        prompt: list[dict[str, Any]],
        parent_id: str,
        first: bool,
        out: list[_Pending],
    ) -> _Response:
        """One user message: generation(s), then what the user does; returns the kept response."""
        rng, user = self.rng, self.user
        if rng.random() < self.cfg.ab_rate:
            model_a, model_b = rng.sample(MODELS, 2)
            a, b = self._respond(topic, model_a, first), self._respond(topic, model_b, first)
            self._generation(a, parent_id, prompt, out)
            self._generation(b, parent_id, prompt, out, delay=0.05)  # shown side by side
            self.t += _read_time(rng, a.text) + _read_time(rng, b.text) * 0.5
            pa, pb = a.perceived, b.perceived
            if max(pa, pb) < 0.35:
                choice = "both_bad"
            elif abs(pa - pb) < 0.04:
                choice = "tie"
            else:
                choice = "a" if pa > pb else "b"
            event = self._event("ab_choice", self.t)
            event.update(response_a_id=a.response_id, response_b_id=b.response_id, choice=choice)
            out.append(self._pending(event, self.t, []))
            current = a if pa >= pb else b
        else:
            current = self._respond(topic, model, first)
            self._generation(current, parent_id, prompt, out)
            self.t += _read_time(rng, current.text)

        regenerations = 0
        while current.perceived < NEAR_MISS and regenerations < MAX_REGENERATIONS:
            if rng.random() > user.patience:
                break
            if rng.random() < user.rate_prob * 0.5:
                self._rating(current, out)
            replacement = self._respond(topic, current.model, first)
            known = rng.random() < 0.85  # most frontends know the new id when they ask
            extra = {"new_response_id": replacement.response_id} if known else {}
            self._feedback("regenerate", current, out, **extra)
            self._generation(replacement, parent_id, prompt, out)
            self.t += _read_time(rng, replacement.text)
            current, regenerations = replacement, regenerations + 1

        p = current.perceived
        if p >= GOOD:
            if rng.random() < user.copy_prob:
                self._copy(current, out)
        elif p >= NEAR_MISS:
            if rng.random() < user.edit_prob:
                self._feedback("edit", current, out, edited_text=self._edited(current))
            elif rng.random() < 0.3:
                self._copy(current, out)
        if rng.random() < user.rate_prob * (2.0 if p < NEAR_MISS else 1.0):
            self._rating(current, out)
        return current

    def _copy(self, r: _Response, out: list[_Pending]) -> None:
        text, code_block = self._copied(r)
        payload: dict[str, Any] = {"text": text, "code_block": code_block}
        if self.user.app[0] == "vscode-extension":  # the IDE also reports the selection
            start = r.text.index(text)
            payload["span"] = {"start": start, "end": start + len(text)}
        self._feedback("copy", r, out, **payload)

    def _rating(self, r: _Response, out: list[_Pending]) -> None:
        up = r.perceived >= 0.55
        payload: dict[str, Any] = {"value": "up" if up else "down"}
        if self.rng.random() < 0.3:
            reasons = _REASONS_UP if up else _REASONS_DOWN
            if not up and r.code is not None and r.code != r.intended_code:
                reasons = ("Syntax error in the code", *reasons)
            payload["reason"] = self.rng.choice(reasons)
        self._feedback("rating", r, out, **payload)

    def _emission_order(self, out: list[_Pending]) -> list[_Pending]:
        """Send order of one turn: mostly as it happened, sometimes a generation sent late."""
        self.ooo_debt += self.cfg.out_of_order_rate * len(out)
        if self.ooo_debt > 0 and self.client_rng.random() < self.ooo_debt:
            self._delay_a_generation(out)
        for p in out:  # a client sends in order, so emission times never go backwards
            p.emit_at = self.last_emit = max(p.emit_at, self.last_emit)
        return out

    def _delay_a_generation(self, out: list[_Pending]) -> None:
        # Move a generation to just after a copy/rating/edit of it, if nothing else refers to it
        # in between: exactly one event then arrives before the generation it refers to.
        where = {
            p.event["response_id"]: i for i, p in enumerate(out) if p.event["type"] == "generation"
        }
        for i, p in enumerate(out):
            rid = p.event.get("response_id")
            if p.event["type"] not in ("copy", "rating", "edit") or rid not in where:
                continue
            g = where[rid]
            between = out[g + 1 : i]
            if any(
                rid
                in (
                    q.event.get("response_id"),
                    q.event.get("response_a_id"),
                    q.event.get("response_b_id"),
                )
                for q in between
            ):
                continue
            generation = out.pop(g)
            generation.emit_at = p.emit_at + 0.5
            out.insert(i, generation)
            self.ooo_debt -= 1.0
            return


def _latency(rng: random.Random, text: str) -> float:
    """Seconds from the user's message to the response being shown."""
    return 1.0 + len(text) / 400.0 + rng.uniform(0.0, 1.5)


def _read_time(rng: random.Random, text: str) -> float:
    """Seconds a user spends reading a response before acting."""
    return 3.0 + len(text) / 40.0 * rng.uniform(0.4, 1.4)


# --- The simulation ------------------------------------------------------------------------------

# Planted values recur in later prompts, copies and edits; scaling the per-text chance down makes
# the share of events that carry one come out near ``pii_rate``.
_PII_SCALE = 0.45


@dataclass
class Simulation:
    """Iterates events (JSON-ready dicts, as a client posts them); collects truth as it goes."""

    config: SimulationConfig
    truth: list[dict[str, Any]] = field(default_factory=list, init=False)
    finished: bool = field(default=False, init=False)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        cfg = self.config
        self.truth.clear()
        self.finished = False
        master = random.Random(cfg.seed)
        users, user_cum = _make_users(master, max(1, cfg.user_count))
        # Duplicates draw from a stream of their own, so their rate changes nothing else.
        client_rng = random.Random(master.getrandbits(64))
        n_slots = max(2, min(64, len(users) // 3))
        heap: list[tuple[float, int, _Pending, Iterator[_Pending] | None]] = []
        seq = 0
        for _ in range(n_slots):
            rng = random.Random(master.getrandbits(64))
            slot = _Slot(cfg, rng, users, user_cum, rng.uniform(0.0, 900.0)).run()
            first = next(slot)
            heap.append((first.emit_at, seq, first, slot))
            seq += 1
        heapq.heapify(heap)

        sibling_sets: dict[str, dict[str, Any]] = {}
        emitted = 0
        while emitted < cfg.events:
            emit_at, _, pending, source = heapq.heappop(heap)
            if source is not None:  # an original, not a re-sent duplicate
                self._record(pending, sibling_sets)
                if client_rng.random() < cfg.duplicate_rate:
                    again = _Pending(
                        emit_at + client_rng.uniform(0.5, 20.0), copy.deepcopy(pending.event)
                    )
                    heapq.heappush(heap, (again.emit_at, seq, again, None))
                    seq += 1
                following = next(source)
                heapq.heappush(heap, (following.emit_at, seq, following, source))
                seq += 1
            emitted += 1
            yield pending.event
        self.finished = True

    def _record(self, pending: _Pending, sibling_sets: dict[str, dict[str, Any]]) -> None:
        event = pending.event
        for path, kind, value in pending.plants:
            self.truth.append(
                {
                    "record": "planted",
                    "event_id": event["event_id"],
                    "conversation_id": event["conversation_id"],
                    "field": path,
                    "kind": kind,
                    "value": value,
                }
            )
        if event["type"] != "generation" or pending.model is None or pending.quality is None:
            return
        # Sets are appended on their first emitted generation and grow in place, so the truth
        # always describes exactly the generations emitted so far.
        siblings = sibling_sets.get(event["parent_id"])
        if siblings is None:
            siblings = {
                "record": "sibling_set",
                "conversation_id": event["conversation_id"],
                "parent_id": event["parent_id"],
                "responses": [],
                "best_response_id": event["response_id"],
            }
            sibling_sets[event["parent_id"]] = siblings
            self.truth.append(siblings)
        quality = round(pending.quality, 4)
        siblings["responses"].append(
            {
                "response_id": event["response_id"],
                "model": {"id": pending.model.id, "version": pending.model.version},
                "quality": quality,
            }
        )
        best = max(siblings["responses"], key=lambda r: r["quality"])
        siblings["best_response_id"] = best["response_id"]


def simulate(config: SimulationConfig) -> Simulation:
    """A simulation of ``config``; iterate it for the events, then read its ``truth``."""
    return Simulation(config)


def _dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class SimulatorWriteError(FlywheelError):
    """An output file could not be written; names the file and the reason."""


def _write_error(path: Path, exc: OSError) -> SimulatorWriteError:
    return SimulatorWriteError(f"cannot write {path}: {exc.strerror or type(exc).__name__}")


def _in_place(path: Path) -> bool:
    """True for an existing path that is no regular file (/dev/stdout, a pipe): it is written
    as it is, since a renamed file would replace the device instead of writing to it."""
    return path.exists() and not path.is_file()


def _temporary(path: Path) -> Path:
    # Beside the file (resolved, so a symlink stays one) for an atomic rename.
    target = path.resolve()
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")


def check_writable(path: Path) -> None:
    """Fail now if ``path`` cannot be written, before minutes of generating are lost."""
    if path.is_dir():
        raise SimulatorWriteError(f"cannot write {path}: Is a directory")  # as strerror says it
    if _in_place(path):
        return
    probe = _temporary(path)
    try:
        probe.open("x").close()
        probe.unlink()
    except OSError as exc:
        raise _write_error(path, exc) from None


@contextmanager
def _replacing(path: Path) -> Iterator[TextIO]:
    """A text handle whose content replaces ``path`` once complete: it goes to a temporary file
    beside ``path``, renamed over it at the end, so a failed or interrupted write leaves no
    partial file (and an older file whole)."""
    if _in_place(path):
        with path.open("w", encoding="utf-8", newline="\n") as handle:
            yield handle
        return
    temporary = _temporary(path)
    try:
        with temporary.open("x", encoding="utf-8", newline="\n") as handle:
            yield handle
        temporary.replace(path.resolve())
    except BaseException:  # KeyboardInterrupt too: the point is to leave nothing half-written
        temporary.unlink(missing_ok=True)
        raise


def write_jsonl(events: Iterable[dict[str, Any]], path: Path) -> int:
    """Write events as compact JSON, one per line, replacing ``path`` only once all are written;
    returns how many were written. A failed write is a ``SimulatorWriteError``."""
    check_writable(path)  # a directory, say, would fail only at the rename, after all the work
    count = 0
    try:
        with _replacing(path) as handle:
            for event in events:
                handle.write(_dumps(event) + "\n")
                count += 1
    except OSError as exc:
        raise _write_error(path, exc) from None
    return count


def write_truth(simulation: Simulation, path: Path) -> int:
    """Write the ground truth as JSONL (running the simulation first if it has not finished)."""
    if not simulation.finished:
        for _ in simulation:
            pass
    return write_jsonl(simulation.truth, path)


def iter_batches(events: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    """Group events into lists of ``size`` (the last may be shorter)."""
    if size < 1:
        raise ValueError("batch size must be at least 1")
    batch: list[dict[str, Any]] = []
    for event in events:
        batch.append(event)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# --- Posting to the API --------------------------------------------------------------------------


class SimulatorPostError(FlywheelError):
    """The API refused a batch of simulated events; names the status and batch, never the text."""

    def __init__(self, message: str, *, status_code: int | None, batch_index: int) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.batch_index = batch_index


@dataclass
class PostSummary:
    """What ``post_events`` did."""

    batches: int = 0
    events: int = 0
    accepted: int = 0
    retries: int = 0
    seconds: float = 0.0


def _retry_after(response: httpx.Response) -> float:
    try:
        seconds = float(response.headers.get("Retry-After", "1"))
    except ValueError:  # an HTTP-date: not worth parsing for a local simulator
        seconds = 1.0
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)


def post_events(
    events: Iterable[dict[str, Any]],
    *,
    url: str,
    key: str,
    batch_size: int = 100,
    client: httpx.Client | None = None,
    on_batch: Callable[[int], None] | None = None,
    max_retries: int = 5,
) -> PostSummary:
    """POST events in batches to ``url``; resend a batch after a 503, raise on other errors."""
    summary = PostSummary()
    started = time.monotonic()
    http = client if client is not None else httpx.Client(timeout=30.0)
    headers = {"Authorization": f"Bearer {key}"}
    try:
        for index, batch in enumerate(iter_batches(events, batch_size)):
            summary.batches += 1
            summary.events += len(batch)
            summary.retries += _send(http, url, headers, batch, index, max_retries)
            summary.accepted += len(batch)
            if on_batch is not None:
                on_batch(len(batch))
    finally:
        if client is None:
            http.close()
        summary.seconds = time.monotonic() - started
    return summary


def _send(
    http: httpx.Client,
    url: str,
    headers: dict[str, str],
    batch: list[dict[str, Any]],
    index: int,
    max_retries: int,
) -> int:
    """Send one batch until the API answers 202; returns how many retries that took."""
    # Resending is always safe: the API drops events whose event_id it already has.
    attempt = 0
    while True:
        try:
            response = http.post(url, json={"events": batch}, headers=headers)
        except httpx.TransportError as exc:
            if attempt >= max_retries:
                raise SimulatorPostError(
                    f"batch {index} could not be sent to {url} ({type(exc).__name__})",
                    status_code=None,
                    batch_index=index,
                ) from None
            delay = min(0.1 * 2**attempt, RETRY_AFTER_CAP_S)
        else:
            status = response.status_code
            if status == 202:
                return attempt
            # Anything but 202 and 503 is final; a 200 would mean the URL is not the events API.
            if status != 503 or attempt >= max_retries:
                tried = f" after {attempt} retries" if attempt else ""
                raise SimulatorPostError(
                    f"batch {index} was refused with HTTP {status}{tried}",
                    status_code=status,
                    batch_index=index,
                )
            delay = _retry_after(response)
        if delay > 0:
            time.sleep(delay)
        attempt += 1
