"""Selecting a dataset's rows from the warehouse and shaping them the way TRL reads them.

One query per config (dpo, kto, reward) over the model tables: consented rows only, confidence
at or above the policy's minimum, at least one of the policy's signals, at most
``max_rows_per_prompt`` rows per normalised prompt and ``max_rows_per_user`` per user (the
highest-confidence ones, ties broken by id, so the choice is deterministic), and a split per
conversation from a hash of the seed and the conversation id. Rows are ordered by that hash
(which decides the split), then id, so the same warehouse and policy always give the same rows in
the same order.

TRL's formats (https://huggingface.co/docs/trl/dataset_formats):

- ``standard``: texts. A one-message prompt is its text; a longer conversation is flattened into
  ``User: ...`` / ``Assistant: ...`` paragraphs (use ``conversational`` to keep the turns).
- ``conversational``: lists of ``{role, content}`` messages; a completion is one assistant message.
- dpo ``{prompt, chosen, rejected}``; kto ``{prompt, completion, label}``; reward ``{chosen,
  rejected, margin}`` with the prompt implicit (both texts or message lists start with it; as
  text, the whole exchange is in labelled turns) and the margin the pair's confidence.

Prompts with content parts or tool calls (docs/export.md, "Content parts and tool calls"): a
message's text parts are its content, joined by a line break; a row whose prompt shows an image
is left out (the datasets are text, and an image is known only by a URL nobody checked);
tool calls are written in the standard format as ``Tool call: name(arguments)`` lines of the
assistant's turn, and in the conversational format as OpenAI's ``tool_calls`` and
``tool_call_id`` fields of the messages, which every message of the version then has (so a
version without tool calls has the columns it had before they existed).

The policy's filters (``metadata_filter``, ``models``, ``apps``, ``since`` and ``until``) keep
the rows whose every response was generated with that metadata, by one of those models, in one
of those apps, in that window: a row is judged by its responses' generation events
(``responses.event_id``), both sides of a pair, never by the events of its signals. The app is
read from the lake files of those events (the warehouse does not keep it), the rest from
``events``; every value is bound.

Lineage columns trainers ignore: ``id`` (the pair or response id), ``confidence``, ``signals``,
``event_ids``, ``models``, ``user`` and ``conversation``. Every id among them is re-keyed for the
dataset (an HMAC under a key derived from the pseudonym key and the dataset's name; row and
event ids under a second such key): two datasets cannot be joined on users, conversations, rows
or events, and an event id in a dataset is not the one the client sent (which the client's own
logs could tie to a person). Within a dataset the mapping is one to one, and the warehouse's
owner can map rows back (``export.trace``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from export.policy import DatasetPolicy, ExtraColumns, Kind
from flywheel.errors import ConfigError
from warehouse.lineage import LABEL_LINEAGE, RESPONSE_SIGNALS
from warehouse.load import READABLE_TIME

if TYPE_CHECKING:
    import polars as pl

_SOURCES: dict[str, str] = {
    "pairs": """
        SELECT pair_id AS id, conversation_id, user_pseudonym, prompt_event_id, chosen_event_id,
               rejected_event_id, NULL::VARCHAR AS completion_event_id, NULL::BOOLEAN AS label,
               confidence, signals, event_ids, models,
               list_filter([chosen_response_id, rejected_response_id], lambda x: x IS NOT NULL)
                   AS response_ids,
               -- For the gate's position-bias warning: was the A/B winner the side shown first?
               CASE WHEN list_contains(signals, 'ab_choice') THEN (
                   SELECT bool_or(e.response_a_id = p.chosen_response_id)
                   FROM events AS e
                   WHERE e.type = 'ab_choice' AND e.choice IN ('a', 'b')
                       AND list_sort([e.response_a_id, e.response_b_id])
                           = list_sort([p.chosen_response_id, p.rejected_response_id]))
               END AS chosen_shown_first
        FROM preference_pairs AS p
        WHERE consent_training""",
    "labels": f"""
        SELECT l.response_id AS id, r.conversation_id, r.user_pseudonym,
               r.event_id AS prompt_event_id, NULL::VARCHAR AS chosen_event_id,
               NULL::VARCHAR AS rejected_event_id, r.event_id AS completion_event_id, l.label,
               l.confidence, {RESPONSE_SIGNALS} AS signals, lineage.event_ids,
               [r.model_id || coalesce('@' || r.model_version, '')] AS models,
               [l.response_id] AS response_ids, NULL::BOOLEAN AS chosen_shown_first
        FROM labels AS l
        JOIN responses AS r USING (response_id)
        JOIN ({LABEL_LINEAGE}) AS lineage USING (response_id)
        WHERE r.consent_training""",
}
SOURCE_OF_KIND: dict[str, str] = {"dpo": "pairs", "reward": "pairs", "kto": "labels"}

_CANDIDATES = """
CREATE OR REPLACE TEMP TABLE export_candidates AS
SELECT * FROM ({source}) AS c
WHERE confidence >= $min_confidence AND list_has_any(signals, $signals)
    AND NOT list_has_any(response_ids, $unreadable::VARCHAR[]){matching}
"""

_MATCHING = """
CREATE OR REPLACE TEMP TABLE export_matching AS
-- The responses whose generation passes the dataset's filters.
SELECT r.response_id FROM responses AS r JOIN events AS e ON e.event_id = r.event_id
WHERE {conditions}
"""
_APP_EVENTS = """
CREATE OR REPLACE TEMP TABLE export_app_events AS
-- The responses' generation events sent by one of the dataset's apps, read from the lake row
-- the warehouse loaded (the event id, the file and the offset: a resend is another row).
SELECT landed.event_id
FROM read_parquet($files, filename = true) AS landed
SEMI JOIN (
    SELECT e.event_id, e.lake_file, e.source_offset
    FROM responses AS r JOIN events AS e ON e.event_id = r.event_id) AS wanted
    ON wanted.event_id = landed.event_id
    AND wanted.lake_file = $names[list_position($files, landed.filename)]
    AND wanted.source_offset = landed.source_offset
WHERE list_contains($apps, landed.app_name)
"""
_ONLY_MATCHING = """
    AND NOT EXISTS (
        SELECT 1 FROM (SELECT unnest(c.response_ids) AS response_id) AS held
        WHERE held.response_id NOT IN (SELECT response_id FROM export_matching))"""
"""Every response of the row is one of ``export_matching``'s."""


def metadata_conditions(selection: dict[str, list[Any]]) -> tuple[str, dict[str, Any]]:
    """A condition on ``e.metadata`` (JSON text) that holds when every key of ``selection`` has
    one of its values, and its parameters. Values compare by JSON type: a string only equals a
    string, a boolean a boolean, a number a number (7 equals 7.0)."""
    conditions, parameters = [], {}
    for n, (key, values) in enumerate(selection.items()):
        path = f"metadata_path_{n}"
        parameters[path] = f"$.{key}"  # an identifier: no quoting needed in a JSON path
        found, kind = f"json_extract(e.metadata, ${path})", f"json_type(e.metadata, ${path})"
        options = []
        for m, value in enumerate(values):
            name = f"metadata_value_{n}_{m}"
            parameters[name] = value
            if isinstance(value, bool):
                options.append(f"({kind} = 'BOOLEAN' AND {found}::BOOLEAN = ${name})")
            elif isinstance(value, int | float):
                options.append(
                    f"({kind} IN ('BIGINT', 'UBIGINT', 'DOUBLE') "
                    f"AND {found}::DOUBLE = ${name}::DOUBLE)"
                )
            else:
                options.append(
                    f"({kind} = 'VARCHAR' AND json_extract_string(e.metadata, ${path}) = ${name})"
                )
        conditions.append("(" + " OR ".join(options) + ")")
    return " AND ".join(conditions), parameters


UNREADABLE_RESPONSES = f"""
SELECT response_id FROM responses WHERE NOT {READABLE_TIME} ORDER BY response_id
"""
"""Responses whose time no reader can take (``READABLE_TIME``): their rows are left out. Only a
warehouse whose events were loaded before the loader refused such times holds any, until its next
transform run removes them."""

_UNREADABLE_ROWS = """
SELECT count(*) FROM ({source}) AS c
WHERE confidence >= $min_confidence AND list_has_any(signals, $signals)
    AND list_has_any(response_ids, $unreadable::VARCHAR[])
"""

_CANDIDATE_TEXTS = """
SELECT event_id, lake_file, source_offset
FROM events
WHERE event_id IN (
    SELECT unnest([prompt_event_id, chosen_event_id, rejected_event_id, completion_event_id])
    FROM export_candidates)
"""
"""The events whose prompts and texts the candidates need (``warehouse.texts``)."""

_PROMPT_TYPE = '[{"role": "VARCHAR", "content": "VARCHAR"}]'
_STRUCTURE_TYPE = (
    '[{"parts": [{"type": "VARCHAR"}], "tool_calls": [{"id": "VARCHAR", "type": "VARCHAR", '
    '"name": "VARCHAR", "arguments": "VARCHAR"}], "tool_call_id": "VARCHAR"}]'
)
"""What the export reads of a prompt's ``prompt_structure``: part types and tool calls."""
_SHOWS_IMAGE = """coalesce(list_contains(flatten(list_transform(
    from_json({structure}, $structure_type), lambda m: list_transform(m.parts, lambda p: p.type))),
    'image_url'), false)"""

_KEEP = """
CREATE OR REPLACE TEMP TABLE export_kept AS
WITH source AS (
    -- The candidates whose texts are all in the lake (a row whose lake file expired is left
    -- out) and differ. The texts are compared here and dropped: the caps and the order are
    -- decided on narrow rows, and the texts of the rows kept are attached afterwards.
    SELECT c.*, p.prompt AS prompt_json
    FROM export_candidates AS c
    JOIN lake_texts AS p ON p.event_id = c.prompt_event_id
    LEFT JOIN lake_texts AS chosen ON chosen.event_id = c.chosen_event_id
    LEFT JOIN lake_texts AS rejected ON rejected.event_id = c.rejected_event_id
    LEFT JOIN lake_texts AS completion ON completion.event_id = c.completion_event_id
    WHERE (c.chosen_event_id IS NULL) = (chosen.text IS NULL)
        AND (c.rejected_event_id IS NULL) = (rejected.text IS NULL)
        AND (c.completion_event_id IS NULL) = (completion.text IS NULL)
        -- Two siblings can carry the same text; such a pair teaches nothing.
        AND (c.chosen_event_id IS NULL OR chosen.text <> rejected.text)
        -- A prompt that showed the model an image: the text alone would mislead.
        AND NOT {shows_image}
),
prompt_keys AS (
    -- The per-prompt cap's key, once per distinct prompt (siblings share theirs): the whole
    -- conversation's text, whitespace runs collapsed, lower-cased, punctuation trimmed.
    SELECT
        prompt_json,
        regexp_replace(
            lower(regexp_replace(array_to_string(
                list_transform(from_json(prompt_json, $prompt_type), lambda m: m.content),
                chr(10)), '\\s+', ' ', 'g')),
            '^[[:punct:] ]+|[[:punct:] ]+$', '', 'g') AS prompt_key
    FROM (SELECT DISTINCT prompt_json FROM source)
),
eligible AS (
    SELECT
        source.* EXCLUDE (prompt_json),
        k.prompt_key,
        ('0x' || left(sha256($seed || ':' || conversation_id), 8))::UBIGINT / 4294967296.0
            AS split_draw
    FROM source
    JOIN prompt_keys AS k ON k.prompt_json IS NOT DISTINCT FROM source.prompt_json
),
per_prompt AS (
    SELECT * FROM eligible
    QUALIFY $max_per_prompt = 0 OR row_number() OVER (
        PARTITION BY prompt_key ORDER BY confidence DESC, id) <= $max_per_prompt
)
SELECT * EXCLUDE (prompt_key) FROM per_prompt
QUALIFY row_number() OVER (
    PARTITION BY user_pseudonym ORDER BY confidence DESC, id) <= $max_per_user
"""
"""The rows a config keeps (the per-prompt and per-user caps), without their texts. Carrying
the texts through the caps' windows and the sort held about 1 GB more at 0.5M events."""

_KEPT_ROWS = "SELECT * FROM export_kept ORDER BY split_draw, id"
_KEPT_PROMPTS = """
WITH kept AS (
    SELECT event_id, from_json(prompt, $prompt_type) AS messages,
           from_json(structure, $structure_type) AS structure
    FROM lake_texts
    WHERE event_id IN (SELECT prompt_event_id FROM export_kept)
)
SELECT
    event_id AS prompt_event_id,
    -- Role and text; an assistant's tool calls as lines of its text (the standard format).
    CASE WHEN structure IS NULL THEN messages ELSE list_transform(messages, lambda m, i: {
        'role': m.role,
        'content': array_to_string(list_filter(list_concat([nullif(m.content, '')], coalesce(
            list_transform(structure[i].tool_calls,
                           lambda c: 'Tool call: ' || c.name || '(' || c.arguments || ')'),
            [])), lambda line: line IS NOT NULL), chr(10))})
    END AS prompt,
    -- OpenAI's message fields (the conversational format, when the version has tool calls).
    list_transform(messages, lambda m, i: {
        'role': m.role,
        'content': m.content,
        'tool_calls': list_transform(structure[i].tool_calls, lambda c: {
            'id': c.id, 'type': c.type, 'function': {'name': c.name, 'arguments': c.arguments}}),
        'tool_call_id': structure[i].tool_call_id}) AS prompt_tools
FROM kept
"""
_KEPT_TEXTS = """
SELECT event_id, text
FROM lake_texts
WHERE event_id IN (
    SELECT unnest([chosen_event_id, rejected_event_id, completion_event_id]) FROM export_kept)
"""
_ROW_COLUMNS = (
    "id", "conversation_id", "user_pseudonym", "prompt", "prompt_tools", "chosen", "rejected",
    "completion", "label", "confidence", "signals", "event_ids", "models", "response_ids",
    "chosen_shown_first", "split_draw",
)  # fmt: skip


def unreadable_rows(
    db: Any, policy: DatasetPolicy, kind: Kind, unreadable: list[str], lake_root: Path
) -> int:
    """How many rows a config would take but for a response in ``unreadable``."""
    if not unreadable:
        return 0
    [(count,)] = db.execute(
        _UNREADABLE_ROWS.format(source=_SOURCES[SOURCE_OF_KIND[kind]])
        + _matching(db, policy, lake_root),
        {"min_confidence": policy.min_confidence, "signals": list(policy.signals),
         "unreadable": unreadable},
    ).fetchall()  # fmt: skip
    return int(count)


def filter_conditions(policy: DatasetPolicy) -> tuple[list[str], dict[str, Any]]:
    """The conditions on a generation event ``e`` for the policy's filters but ``apps`` (which
    needs the lake: ``_app_events``), and their parameters."""
    conditions: list[str] = []
    parameters: dict[str, Any] = {}
    selection = policy.metadata_values()
    if selection:
        condition, parameters = metadata_conditions(selection)
        conditions.append(condition)
    if policy.models is not None:
        # An id matches every version of it; ``id@version`` (the ``models`` column) one.
        conditions.append(
            "list_has_any([e.model_id, e.model_id || '@' || e.model_version], $filter_models)"
        )
        parameters["filter_models"] = list(policy.models)
    if policy.since is not None:
        conditions.append("e.occurred_at >= $filter_since")
        parameters["filter_since"] = policy.since
    if policy.until is not None:
        conditions.append("e.occurred_at < $filter_until")
        parameters["filter_until"] = policy.until
    return conditions, parameters


def _app_events(db: Any, apps: list[str], lake_root: Path) -> None:
    """``export_app_events``: the responses' generation events one of ``apps`` sent, from the
    lake files they were loaded from (an event whose file is gone has no app: it matches
    none, and its texts are gone too)."""
    names = [name for (name,) in db.execute(
        "SELECT DISTINCT e.lake_file FROM responses AS r JOIN events AS e USING (event_id) "
        "ORDER BY 1").fetchall()]  # fmt: skip
    present = [name for name in names if (lake_root / name).is_file()]
    if not present:
        db.execute("CREATE OR REPLACE TEMP TABLE export_app_events (event_id VARCHAR)")
        return
    db.execute(_APP_EVENTS, {
        "files": [str(lake_root / name) for name in present], "names": present, "apps": apps,
    })  # fmt: skip


def _matching(db: Any, policy: DatasetPolicy, lake_root: Path) -> str:
    """The condition keeping the rows the policy's filters select, on a source aliased ``c``
    ("" without a filter), once ``export_matching`` is built for it."""
    if not policy.filtered:
        return ""
    conditions, parameters = filter_conditions(policy)
    if policy.apps is not None:
        _app_events(db, list(policy.apps), lake_root)
        conditions.append("e.event_id IN (SELECT event_id FROM export_app_events)")
    db.execute(_MATCHING.format(conditions=" AND ".join(conditions)), parameters)
    db.execute("DROP TABLE IF EXISTS export_app_events")
    return _ONLY_MATCHING


def select_rows(
    db: Any,
    policy: DatasetPolicy,
    kind: Kind,
    lake_root: Path,
    *,
    unreadable: list[str] | None = None,
    with_texts: bool = True,
) -> pl.DataFrame:
    """The warehouse rows a config of this dataset takes, with their texts from the lake under
    ``lake_root`` (the prompt as a list of ``{role, content}``) and a ``split`` column. dpo and
    reward take the same rows (``SOURCE_OF_KIND``). Rows naming a response in ``unreadable``
    (``UNREADABLE_RESPONSES``) are left out. Without ``with_texts``, the same rows without their
    texts and prompts (which rows are kept still reads the candidates' prompts).

    The rows are chosen and ordered in DuckDB without their texts; the texts of the rows kept
    are fetched once each and attached in polars (joins that keep the rows' order)."""
    import polars as pl

    from warehouse.texts import fetch_texts

    db.execute(
        _CANDIDATES.format(
            source=_SOURCES[SOURCE_OF_KIND[kind]], matching=_matching(db, policy, lake_root)
        ),
        {"min_confidence": policy.min_confidence, "signals": list(policy.signals),
         "unreadable": unreadable or []},
    )  # fmt: skip
    fetch_texts(db, lake_root, _CANDIDATE_TEXTS)
    _release_memory(db, drop=("export_matching",))
    db.execute(_KEEP.format(shows_image=_SHOWS_IMAGE.format(structure="p.structure")), {
        "seed": str(policy.seed),
        "max_per_prompt": policy.max_rows_per_prompt,
        "max_per_user": policy.max_rows_per_user,
        "prompt_type": _PROMPT_TYPE,
        "structure_type": _STRUCTURE_TYPE,
    })  # fmt: skip

    def fetch(query: str, **params: Any) -> pl.DataFrame:
        frame = pl.from_arrow(db.sql(query, params=params or None).to_arrow_table())
        assert isinstance(frame, pl.DataFrame)
        return frame

    _release_memory(db, drop=("export_candidates",))
    rows = fetch(_KEPT_ROWS)
    if not with_texts:
        _release_memory(db, drop=("export_kept", "lake_texts"))
        return rows.with_columns(split=_split_column(policy.splits)).drop("split_draw")
    prompts = fetch(_KEPT_PROMPTS, prompt_type=_PROMPT_TYPE, structure_type=_STRUCTURE_TYPE)
    texts = fetch(_KEPT_TEXTS)
    _release_memory(db, drop=("export_kept", "lake_texts"))
    rows = rows.join(prompts, on="prompt_event_id", how="left", maintain_order="left")
    for role in ("chosen", "rejected", "completion"):
        rows = rows.join(texts.rename({"event_id": f"{role}_event_id", "text": role}),
                         on=f"{role}_event_id", how="left", maintain_order="left")  # fmt: skip
    return (
        rows.select(_ROW_COLUMNS)
        .with_columns(split=_split_column(policy.splits))
        .drop("split_draw")
    )


_PAIR_SIDES = """
SELECT pair_id AS id, chosen_response_id AS chosen, rejected_response_id AS rejected
FROM preference_pairs
WHERE pair_id IN (SELECT unnest($ids::VARCHAR[]))
"""


def _model_columns(db: Any, model: str) -> list[str]:
    """The columns of a table of the warehouse (or of the tables an export reads), in order."""
    return [
        name
        for (name,) in db.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = $table AND table_schema = 'main' "
            "AND table_catalog = current_database() ORDER BY ordinal_position",
            {"table": model},
        ).fetchall()
    ]


def _extra_values(db: Any, extra: ExtraColumns, ids: list[str]) -> pl.DataFrame:
    """The model's rows for ``ids`` (its ``key`` column as ``key``, then its ``columns``);
    a model or column that is not there, or a key with two rows, is a ``ConfigError``."""
    import polars as pl

    found = _model_columns(db, extra.model)
    where = f"extra_columns of the dataset policy: model {extra.model}"
    if not found:
        raise ConfigError(
            f"{where} is not in the warehouse (is it in FLYWHEEL_TRANSFORMS__MODELS_DIR, and has "
            "`flywheel transform run` built it?)"
        )
    missing = [c for c in (extra.key, *extra.columns) if c not in found]
    if missing:
        raise ConfigError(
            f"{where} has no column {', '.join(missing)} (it has: {', '.join(found)})"
        )
    # Names the policy validated (``export.policy.IDENTIFIER``: no quote can be in them) and
    # the warehouse just listed.
    table, key = f'"{extra.model}"', f'"{extra.key}"'
    selected = ", ".join(f'"{c}"' for c in extra.columns)
    [(doubled,)] = db.execute(
        f"SELECT count(*) FROM (SELECT {key} FROM {table} "  # noqa: S608 - quoted identifiers
        f"WHERE {key} IN (SELECT unnest($ids::VARCHAR[])) GROUP BY {key} HAVING count(*) > 1)",
        {"ids": ids},
    ).fetchall()
    if doubled:
        raise ConfigError(
            f"{where} has more than one row for {doubled} {extra.key} value(s): a row takes "
            "the columns of one"
        )
    frame = pl.from_arrow(
        db.sql(
            f"SELECT {key}::VARCHAR AS key, {selected} FROM {table} "  # noqa: S608
            f"WHERE {key} IN (SELECT unnest($ids::VARCHAR[]))",
            params={"ids": ids},
        ).to_arrow_table()
    )
    assert isinstance(frame, pl.DataFrame)
    return frame


def with_extra_columns(
    db: Any, policy: DatasetPolicy, source: str, rows: pl.DataFrame
) -> pl.DataFrame:
    """``rows`` (``select_rows``' of ``source``, pairs or labels) with the policy's
    ``extra_columns`` joined on, in the rows' order: by the row's response (a pair's chosen
    and rejected sides as ``chosen_<column>`` and ``rejected_<column>``) or by its pair."""
    import polars as pl

    kind: Kind = "kto" if source == "labels" else "dpo"
    for extra in policy.extra_columns:
        if not extra.names(kind):
            continue
        ids = rows["id"].to_list()
        if kind == "kto" or extra.key == "pair_id":
            values = _extra_values(db, extra, ids)
            rows = rows.join(
                values.rename({"key": "id"}), on="id", how="left", maintain_order="left"
            )
            continue
        sides = pl.from_arrow(db.sql(_PAIR_SIDES, params={"ids": ids}).to_arrow_table())
        assert isinstance(sides, pl.DataFrame)
        responses = [r for side in ("chosen", "rejected") for r in sides[side].drop_nulls()]
        values = _extra_values(db, extra, sorted(set(responses)))
        for side in ("chosen", "rejected"):
            named = values.rename({c: f"{side}_{c}" for c in extra.columns})
            rows = rows.join(
                sides.select("id", pl.col(side).alias(f"_{side}_response")),
                on="id", how="left", maintain_order="left",
            ).join(
                named.rename({"key": f"_{side}_response"}),
                on=f"_{side}_response", how="left", maintain_order="left",
            ).drop(f"_{side}_response")  # fmt: skip
    return rows


def _release_memory(db: Any, *, drop: tuple[str, ...]) -> None:
    """Give back what DuckDB holds of a config's queries: the temporary tables ``drop`` names,
    and what its worker threads keep of the queries' working memory (released when the thread
    count changes; at 0.5M events about 0.8 GB otherwise held until the connection closes)."""
    for table in drop:
        db.execute(f"DROP TABLE IF EXISTS {table}")
    [(threads,)] = db.execute("SELECT current_setting('threads')").fetchall()
    db.execute("SET threads = 1")
    db.execute(f"SET threads = {int(threads)}")


def _split_column(splits: dict[str, float]) -> pl.Expr:
    """``split_draw`` (in [0, 1)) to the split whose cumulative ratio range holds it; the last
    split takes the rest."""
    import polars as pl

    *firsts, last = splits
    expression: Any = pl
    upper = 0.0
    for name in firsts:
        upper += splits[name]
        expression = expression.when(pl.col("split_draw") < upper).then(pl.lit(name))
    return pl.lit(last) if expression is pl else expression.otherwise(pl.lit(last))


class Rekeyer:
    """Values re-keyed for one dataset (HMAC-SHA256, 32 hex chars), under a key derived from the
    pseudonym key and the dataset's name: pseudonyms and conversation ids (calling it), and,
    under a second key of their own, row and event ids (``lineage``)."""

    def __init__(self, key: bytes, dataset: str) -> None:
        label = f"flywheel-dataset:{dataset}"
        derived = hmac.new(key, label.encode(), hashlib.sha256).digest()
        lineage = hmac.new(key, f"{label}:lineage".encode(), hashlib.sha256).digest()
        # Keyed once; each value continues a copy (a third faster than a new HMAC per value).
        self._hmac = hmac.new(derived, digestmod=hashlib.sha256)
        self._lineage_hmac = hmac.new(lineage, digestmod=hashlib.sha256)
        self._cache: dict[str, str] = {}
        self._lineage_cache: dict[str, str] = {}

    @staticmethod
    def _keyed(keyed: hmac.HMAC, cache: dict[str, str], value: str) -> str:
        found = cache.get(value)
        if found is None:
            mac = keyed.copy()
            mac.update(value.encode())
            found = cache[value] = mac.hexdigest()[:32]
        return found

    def __call__(self, value: str) -> str:
        """A pseudonym or conversation id as this dataset shows it."""
        return self._keyed(self._hmac, self._cache, value)

    def lineage(self, value: str) -> str:
        """A row id (pair or response id) or event id as this dataset shows it."""
        return self._keyed(self._lineage_hmac, self._lineage_cache, value)


def rekeyed(values: pl.Series, rekey: Callable[[str], str]) -> pl.Series | pl.Expr:
    """``values`` (strings, or lists of strings) mapped through ``rekey`` (which caches): strings
    one by one, lists by an expression over their distinct values (building lists back from
    Python is several times slower)."""
    import polars as pl

    if not isinstance(values.dtype, pl.List):
        return pl.Series(
            values.name,
            [None if v is None else rekey(v) for v in values.to_list()],
            dtype=pl.String,
        )
    distinct = values.explode().drop_nulls().unique().to_list()
    mapped = [rekey(value) for value in distinct]
    return pl.col(values.name).list.eval(
        pl.element().replace_strict(distinct, mapped, return_dtype=pl.String)
    )


def has_tool_calls(frame: pl.DataFrame) -> bool:
    """Whether a prompt of the selected rows holds a tool call or a tool's answer."""
    import polars as pl

    message = pl.element().struct
    found = pl.col("prompt_tools").list.eval(
        message.field("tool_calls").is_not_null() | message.field("tool_call_id").is_not_null()
    )
    return bool(frame.select(found.list.any().any()).item())


def shape(
    frame: pl.DataFrame, kind: Kind, *, conversational: bool, rekey: Rekeyer, tools: bool = False
) -> pl.DataFrame:
    """The selected rows in TRL's columns for ``kind``, lineage columns after them: polars
    expressions over the whole frame, no Python per row. With ``tools`` (the version holds a
    tool call, ``has_tool_calls``), conversational messages carry OpenAI's ``tool_calls`` and
    ``tool_call_id`` fields too (NULL where a message has none)."""
    import polars as pl

    # A list of {role, content}, tool calls written in the assistant's text (``select_rows``).
    messages = pl.col("prompt")
    # Standard format: ``Role: text`` paragraphs; a one-message user prompt is its text alone.
    transcript = messages.list.eval(
        pl.element().struct.field("role").str.to_titlecase()
        + ": "
        + pl.element().struct.field("content")
    ).list.join("\n\n")
    first = messages.list.first().struct
    flat = (
        pl.when((messages.list.len() == 1) & (first.field("role") == "user"))
        .then(first.field("content"))
        .otherwise(transcript)
    )

    no_calls: list[pl.Expr] = []
    if conversational and tools:
        messages = pl.col("prompt_tools")
        function = pl.Struct({"name": pl.String, "arguments": pl.String})
        calls = pl.List(pl.Struct({"id": pl.String, "type": pl.String, "function": function}))
        no_calls = [
            pl.lit(None, calls).alias("tool_calls"),
            pl.lit(None, pl.String).alias("tool_call_id"),
        ]

    def answer(column: str) -> pl.Expr:
        """A text as one assistant message (conversational) or its labelled turn (standard)."""
        if conversational:
            role, content = pl.lit("assistant").alias("role"), pl.col(column).alias("content")
            return pl.concat_list(pl.struct(role, content, *no_calls))
        return pl.lit("Assistant: ") + pl.col(column)

    prompt = messages if conversational else flat
    if kind == "dpo":
        chosen = answer("chosen") if conversational else pl.col("chosen")
        rejected = answer("rejected") if conversational else pl.col("rejected")
        columns = [prompt.alias("prompt"), chosen.alias("chosen"), rejected.alias("rejected")]
    elif kind == "kto":
        completion = answer("completion") if conversational else pl.col("completion")
        columns = [prompt.alias("prompt"), completion.alias("completion"), pl.col("label")]
    else:
        # The prompt is implicit: both sides start with it.
        if conversational:
            sides = [
                messages.list.concat(answer(side)).alias(side) for side in ("chosen", "rejected")
            ]
        else:
            sides = [
                (transcript + "\n\n" + answer(side)).alias(side) for side in ("chosen", "rejected")
            ]
        columns = [*sides, pl.col("confidence").alias("margin")]
    shaped = frame.select(columns)
    lineage = frame.select(
        rekeyed(frame["id"], rekey.lineage).alias("id"),
        "confidence",
        "signals",
        rekeyed(frame["event_ids"], rekey.lineage).alias("event_ids"),
        "models",
        rekeyed(frame["user_pseudonym"], rekey).alias("user"),
        rekeyed(frame["conversation_id"], rekey).alias("conversation"),
    )
    return pl.concat([shaped, lineage], how="horizontal")
