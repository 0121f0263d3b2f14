"""Per-record filters: each is `keep(batch, section) -> bool mask` over a batch (dict of column lists), so the one
`datasets.map` pass runs them all batched over Arrow with `num_proc`; `pipeline.STEPS` lists them in order. The
runner counts what each removed and keeps a few examples; `*_stats` add a filter's own summary keys.
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa

from distill.curate.config import (
    EmptyFilter,
    ErrorsFilter,
    FinishReasonFilter,
    LanguageFilter,
    LengthFilter,
    RefusalFilter,
    RepetitionFilter,
    StructuredFilter,
    TraceFilter,
    TraceRatioFilter,
)
from distill.curate.step import Batch, Rows


def errors_keep(batch: Batch, cfg: ErrorsFilter) -> np.ndarray:
    """Records with no completion at all or an `error` finish reason (a failed call that still got exported)."""
    comp = batch["completion"]
    fr = batch.get("finish_reason") or [None] * len(comp)
    return np.array([c is not None and f != "error" for c, f in zip(comp, fr)], dtype=bool)


_MISSING = object()


def field_at(obj: Any, path: str) -> Any:
    """`a.b.0.c` in a parsed JSON object; `_MISSING` when any step is absent."""
    for part in path.split("."):
        if isinstance(obj, dict) and part in obj:
            obj = obj[part]
        elif isinstance(obj, list) and part.lstrip("-").isdigit() and -len(obj) <= int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return _MISSING
    return obj


def _structured_ok(obj: Any, cfg: StructuredFilter) -> bool:
    for path in cfg.required_fields:
        if field_at(obj, path) in (_MISSING, None):
            return False
    for path, want in cfg.equals.items():
        v = field_at(obj, path)
        if v is _MISSING or (v not in want if isinstance(want, list) else v != want):
            return False
    for bound, ok in ((cfg.min, lambda v, b: v >= b), (cfg.max, lambda v, b: v <= b)):
        for path, b in bound.items():
            v = field_at(obj, path)
            if isinstance(v, bool) or not isinstance(v, int | float) or not ok(v, b):
                return False
    return True


def structured_keep(batch: Batch, cfg: StructuredFilter) -> np.ndarray:
    """Schema validity (collect validated it; null = no valid object) and conditions on the object's fields."""
    out = []
    for s in batch["structured"]:
        if s is None:
            out.append(not cfg.require_valid and not (cfg.required_fields or cfg.equals or cfg.min or cfg.max))
            continue
        try:
            obj = json.loads(s) if isinstance(s, str) else s
        except ValueError:
            out.append(False)
            continue
        out.append(_structured_ok(obj, cfg))
    return np.array(out, dtype=bool)


def empty_keep(batch: Batch, cfg: EmptyFilter) -> np.ndarray:
    """The answer (reasoning stripped) must have some non-space text."""
    return np.array([bool(a and a.strip()) for a in batch["_answer"]], dtype=bool)


def finish_reason_keep(batch: Batch, cfg: FinishReasonFilter) -> np.ndarray:
    dropped = set(cfg.drop)
    return np.array([f not in dropped for f in batch["finish_reason"]], dtype=bool)


def finish_reason_stats(rows: Rows, removed: np.ndarray, cfg: FinishReasonFilter) -> dict[str, Any]:
    """How many of the removed records had each finish reason."""
    vals = rows.ds.data.column("finish_reason").take(pa.array(np.flatnonzero(removed))).to_pylist()
    return {"by_reason": {str(k): vals.count(k) for k in sorted(set(vals), key=str)}}


def trace_keep(batch: Batch, cfg: TraceFilter) -> np.ndarray:
    """Trace checks: present and full when required, length bounds, and an answer after it."""
    traces = batch["reasoning"]
    status = batch.get("reasoning_status") or [None] * len(traces)
    out = []
    for trace, st, tok, ans in zip(traces, status, batch["_trace_tokens"], batch["_answer"]):
        has = bool(trace and trace.strip())
        keep = True
        if cfg.require_trace:
            keep = has and st in (None, "full")
        if has:
            if cfg.min_tokens is not None and tok < cfg.min_tokens:
                keep = False
            if cfg.max_tokens is not None and tok > cfg.max_tokens:
                keep = False
            if cfg.require_answer and not (ans and ans.strip()):
                keep = False
        out.append(keep)
    return np.array(out, dtype=bool)


def trace_ratio_keep(batch: Batch, cfg: TraceRatioFilter) -> np.ndarray:
    """Drop a trace more than `max_ratio` times as long as its answer (an empty answer counts as 1); no trace passes."""
    if cfg.unit == "chars":
        trace = np.array([len(r or "") for r in batch["reasoning"]])
        answer = np.array([len(a or "") for a in batch["_answer"]])
    else:
        trace, answer = np.asarray(batch["_trace_tokens"]), np.asarray(batch["_answer_tokens"])
    return trace <= cfg.max_ratio * np.maximum(answer, 1)


def compile_refusals(cfg: RefusalFilter) -> re.Pattern[str]:
    return _compiled(tuple(cfg.patterns))


@lru_cache(maxsize=8)
def _compiled(patterns: tuple[str, ...]) -> re.Pattern[str]:  # once per process, not once per batch
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


def refusal_keep(batch: Batch, cfg: RefusalFilter) -> np.ndarray:
    pattern = compile_refusals(cfg)
    return np.array([pattern.search(a or "") is None for a in batch["_answer"]], dtype=bool)


def length_keep(batch: Batch, cfg: LengthFilter) -> np.ndarray:
    chars = np.array([len(a or "") for a in batch["_answer"]])
    toks = np.asarray(batch["assistant_tokens"])
    total = toks + np.asarray(batch["_prompt_tokens"])
    keep = chars >= cfg.min_chars
    if cfg.max_chars is not None:
        keep &= chars <= cfg.max_chars
    if cfg.min_tokens is not None:
        keep &= toks >= cfg.min_tokens
    if cfg.max_tokens is not None:
        keep &= toks <= cfg.max_tokens
    if cfg.max_total_tokens is not None:
        keep &= total <= cfg.max_total_tokens
    return keep


def length_stats(rows: Rows, removed: np.ndarray, cfg: LengthFilter) -> dict[str, Any]:
    """Which token counts the bounds were checked against (the student's tokenizer, or the chars/4 estimate)."""
    return {"token_count_method": rows.token_count_method}


def repeated_ngram_ratio(text: str, n: int) -> tuple[float, int]:
    """(share of word n-grams that repeat an earlier one, number of n-grams): 'a b a b a b' with n=2 -> 0.6."""
    words = text.split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0, 0
    return 1.0 - len(set(grams)) / len(grams), len(grams)


def repetition_keep(batch: Batch, cfg: RepetitionFilter) -> np.ndarray:
    out = []
    for a in batch["_answer"]:
        ratio, count = repeated_ngram_ratio(a or "", cfg.ngram)
        out.append(count < cfg.min_ngrams or ratio <= cfg.max_ratio)
    return np.array(out, dtype=bool)


# Tiny stopword profiles: enough to tell apart the common Latin-script languages of chat data without a model.
_STOPWORDS = {
    "en": "the and is are of to in that it for with as was on be this you not have what which can",
    "de": "der die das und ist nicht ein eine zu den mit sich auch auf für ich sie es dem wie",
    "fr": "le la les et est des une un pas que qui dans pour sur vous avec ce il sont du",
    "es": "el la los las y es que de un una por para con no se lo del como más pero",
    "pt": "o a os as e é que de um uma não para com do da em se por mais como",
    "it": "il lo la gli le e è che di un una non per con del della sono come ma",
    "nl": "de het een en is van dat niet op te zijn met voor ik je die wat",
}
_STOP = {lang: set(words.split()) for lang, words in _STOPWORDS.items()}
_SCRIPTS = {"ru": "CYRILLIC", "uk": "CYRILLIC", "zh": "CJK", "ja": "HIRAGANA|KATAKANA", "ko": "HANGUL",
            "ar": "ARABIC", "he": "HEBREW", "el": "GREEK", "hi": "DEVANAGARI", "th": "THAI"}
_WORD = re.compile(r"[^\W\d_]+")
_FENCE = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)


def detect_language(text: str) -> str | None:
    """Best-guess ISO 639-1 code, or None when unclear (code, math, very short)."""
    prose = _FENCE.sub(" ", text)[:4000]  # code blocks say nothing about the natural language
    letters = [c for c in prose if c.isalpha()]
    if len(letters) < 20:
        return None
    names = [unicodedata.name(c, "") for c in letters[:2000]]
    latin = sum(n.startswith("LATIN") for n in names)
    if latin / len(names) < 0.5:
        if any("HIRAGANA" in n or "KATAKANA" in n for n in names):
            return "ja"
        counts: dict[str, int] = {}
        for lang, script in _SCRIPTS.items():
            if lang in ("uk", "ja"):
                continue
            counts[lang] = sum(any(s in n for s in script.split("|")) for n in names)
        best = max(counts, key=counts.__getitem__)
        return best if counts[best] / len(names) > 0.3 else None
    # single letters ("a", "e", "o") are words in several languages and variable names in code: not evidence
    words = [w.lower() for w in _WORD.findall(prose) if len(w) > 1]
    if len(words) < 8:
        return None
    scores = {lang: sum(w in stop for w in words) for lang, stop in _STOP.items()}
    best = max(scores, key=scores.__getitem__)
    return best if scores[best] >= 3 and scores[best] / len(words) >= 0.1 else None


def language_keep(batch: Batch, cfg: LanguageFilter) -> np.ndarray:
    allowed = set(cfg.allowed)
    out = []
    for a in batch["_answer"]:
        lang = detect_language(a or "")
        out.append(lang in allowed or (lang is None and cfg.keep_unknown))
    return np.array(out, dtype=bool)
