"""Prices from the provider itself: OpenRouter's public model list (`GET {base_url}/models`).

Why: OpenRouter routes one model id to whichever host serves it and publishes, per model, the price it bills
(`data[].pricing.prompt` / `.completion`, strings of $ per token). The built-in table guesses at list prices and
knows few open models; a price typed into the config is right only on the day it was typed. So for an OpenRouter
endpoint without `price:`, the price comes from the provider's list, read once per base URL per process, and
the record of what was used (source, $ per 1M, date, URL) goes into the run dir (`prices.json`) and the eval
summaries / manifest. A configured `price:` always wins. A model the list does not know is an error: it is
almost always a typo in the model id; eval and its dry run price every chosen model (`evaluate.price_models`)
before their first request, so the error comes before anything is paid.

`price_source` (an endpoint key): `auto` (OpenRouter's list when `base_url` is on openrouter.ai, else the
built-in table), `openrouter` (an OpenRouter-compatible list at any URL: a proxy, or the test server), `table`.
Light: urllib only, no SDK.
"""

from __future__ import annotations

import difflib
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from distill.errors import DistillError, redact
from distill.llm.endpoint import EndpointConfig, PriceConfig
from distill.llm.pricing import lookup

E = TypeVar("E", bound=EndpointConfig)
# OpenRouter's routing shortcuts: `id:nitro` (fastest provider), `id:floor` (cheapest), `id:online` (web search)
# are the same model as `id` and are not listed themselves; `:free`, `:beta`, `:extended`, `:thinking` are
# separate listed models with their own price, so they are never stripped.
ROUTING_SUFFIXES = ("nitro", "floor", "online")
_SUFFIX_NOTES = {
    "nitro": "priced as the listed model; ':nitro' routes to the fastest provider, which may bill more",
    "floor": "priced as the listed model; ':floor' routes to the cheapest provider (at most this price)",
    "online": "priced as the listed model; ':online' adds web-search fees per request, not included",
}
_LISTS: dict[str, tuple[dict[str, dict[str, Any]], str]] = {}  # base_url -> (models by id, fetched_at)


def is_openrouter(base_url: str) -> bool:
    host = (urlparse(base_url).hostname or "").lower()
    return host == "openrouter.ai" or host.endswith(".openrouter.ai")


def uses_provider_list(ep: EndpointConfig) -> bool:
    """Whether this endpoint's price is read from the provider's model list (no `price:` configured)."""
    if ep.price is not None:
        return False
    return ep.price_source == "openrouter" or (ep.price_source == "auto" and is_openrouter(ep.base_url))


def _per_million(value: Any) -> float | None:
    """OpenRouter's '0.0000025' ($ per token) -> 2.5 ($ per 1M); None for absent or negative ('-1': variable)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if v < 0 else round(v * 1e6, 9)


def fetch_model_list(base_url: str, api_key: str | None = None, timeout_s: float = 30.0
                     ) -> tuple[dict[str, dict[str, Any]], str]:
    """The provider's models by id (each with its raw `pricing`), and when the list was read (UTC, ISO 8601).

    Read once per base URL per process. The list is public on OpenRouter; the key is sent when there is one
    (a proxy may want it) and never appears in an error."""
    base_url = base_url.rstrip("/")
    if base_url in _LISTS:
        return _LISTS[base_url]
    url = f"{base_url}/models"
    req = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "distill"})
    if api_key and api_key != "EMPTY":
        req.add_header("Authorization", f"Bearer {api_key}")
    secrets = (api_key,) if api_key else ()
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - the configured provider URL
            payload = json.loads(resp.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        raise DistillError(f"prices: GET {url} answered HTTP {e.code}; set `price: {{prompt: X, completion: Y}}` "
                           "($ per 1M tokens) under the model, or `price_source: table`") from None
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        reason = redact(str(getattr(e, "reason", e)), secrets)
        raise DistillError(f"prices: cannot read the model list at {url} ({reason}); set `price:` under the model, "
                           "or `price_source: table`") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise DistillError(f"prices: {url} did not return JSON (is base_url an OpenRouter-compatible API?)") from None
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise DistillError(f"prices: {url} has no `data` list of models (expected OpenRouter's model list)")
    models = {str(m["id"]): m for m in data if isinstance(m, dict) and m.get("id")}
    _LISTS[base_url] = (models, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return _LISTS[base_url]


def resolve_price(ep: E, *, field: str = "model") -> tuple[E, dict[str, Any]]:
    """The endpoint with the price it will be billed at filled in, and the record of where that price came from.

    Order: the config's `price:`; else the provider's list (OpenRouter); else the built-in table; else unknown."""
    rec: dict[str, Any] = {"model": ep.model, "base_url": ep.base_url}
    if ep.price is not None:
        return ep, {**rec, "source": "config", "usd_per_1m_prompt": ep.price.prompt,
                    "usd_per_1m_completion": ep.price.completion}
    if uses_provider_list(ep):
        key = ep.api_key.get_secret_value()
        models, fetched_at = fetch_model_list(ep.base_url, key, min(ep.timeout_s, 60.0))
        entry, note = models.get(ep.model), None
        base, _, suffix = ep.model.rpartition(":")
        if entry is None and base and suffix in ROUTING_SUFFIXES and base in models:
            entry, note = models[base], _SUFFIX_NOTES[suffix]
        if entry is None:
            close = difflib.get_close_matches(ep.model, list(models), n=3, cutoff=0.6)
            raise DistillError(f"{field} '{ep.name}': {ep.model!r} is not in the model list at {ep.base_url}/models "
                               f"({len(models)} models)" + (f"; did you mean {', '.join(close)}?" if close else
                                                            "; check the model id"))
        pricing = entry.get("pricing") or {}
        prompt, completion = _per_million(pricing.get("prompt")), _per_million(pricing.get("completion"))
        rec.update(source="openrouter", url=f"{ep.base_url}/models", fetched_at=fetched_at,
                   provider_pricing={k: v for k, v in pricing.items() if isinstance(v, (str, int, float))})
        if prompt is None or completion is None:
            raise DistillError(f"{field} '{ep.name}': the provider lists no fixed price for {ep.model!r} "
                               f"(pricing {pricing}); set `price: {{prompt: X, completion: Y}}` ($ per 1M tokens)")
        if note:
            rec.update(listed_as=base, note=note)
        if _per_million(pricing.get("request")):
            rec["note"] = "; ".join(x for x in (rec.get("note"), "the provider also bills a fixed fee per request, "
                                                "not included in $ per 1M tokens") if x)
        rec.update(usd_per_1m_prompt=prompt, usd_per_1m_completion=completion)
        return ep.model_copy(update={"price": PriceConfig(prompt=prompt, completion=completion)}), rec
    found = lookup(ep.model)
    if found is None:
        return ep, {**rec, "source": "unknown", "usd_per_1m_prompt": None, "usd_per_1m_completion": None}
    return ep, {**rec, "source": "table", "usd_per_1m_prompt": found.prompt, "usd_per_1m_completion": found.completion}


def record_prices(path: Path, stage: str, records: dict[str, dict[str, Any]],
                  unchanged: set[str] | frozenset[str] = frozenset()) -> None:
    """Merge `{endpoint name: price record}` into the run dir's prices.json (by stage, then name), dated.

    `unchanged`: names not re-run this time (up to date): an entry already there keeps its `recorded_at`, so the
    file says when each price was last used, not when the file was last written."""
    from distill.rundir import write_json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        current = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except json.JSONDecodeError:
        current = {}
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    section = current.setdefault(stage, {})
    for name, rec in records.items():
        if name in unchanged and name in section:
            continue
        section[name] = {**rec, "recorded_at": now}
    write_json(path, current)


def price_endpoints(eps: list[E], field: str) -> tuple[list[E], dict[str, dict[str, Any]]]:
    """`resolve_price` for each endpoint of a stage: the priced endpoints and the records by name."""
    out, records = [], {}
    for ep in eps:
        priced, rec = resolve_price(ep, field=field)
        out.append(priced)
        records[ep.name] = rec
    return out, records
