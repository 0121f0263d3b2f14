"""Turn one chat-completion choice into the record fields, whichever way the provider returned the reasoning.

Trace locations handled: `message.reasoning_content` (DeepSeek, older vLLM), `message.reasoning` (vLLM >= 0.11,
OpenRouter), OpenRouter's `reasoning_details` list, and `<think>...</think>` at the start of `content`.
`reasoning_status`: full | summarized | redacted | absent | unknown (a trace in a shape we do not read: the
whole message is kept in `raw` so nothing is lost, and counted).
"""

from __future__ import annotations

import json
import re
from typing import Any

_THINK = re.compile(r"^\s*<think>(.*?)(?:</think>|$)(.*)$", re.S)


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(name)
    value = getattr(obj, name, None)
    if value is None:
        extra = getattr(obj, "model_extra", None) or {}
        value = extra.get(name)
    return value


def split_think(content: str) -> tuple[str | None, str]:
    """`<think>trace</think>answer` -> (trace, answer); content without a leading think block is all answer."""
    m = _THINK.match(content)
    if not m:
        return None, content
    return m.group(1).strip(), m.group(2).lstrip()


KNOWN_KEYS = {"role", "content", "reasoning", "reasoning_content", "reasoning_details", "refusal", "tool_calls",
              "function_call", "annotations", "audio", "name", "images"}


def _unknown_reasoning(message: Any) -> bool:
    """A trace in a shape we do not know: a reasoning/thinking key we don't read, or non-text content parts."""
    keys = message.keys() if isinstance(message, dict) else (getattr(message, "model_extra", None) or {}).keys()
    if any(k not in KNOWN_KEYS and ("reason" in k or "think" in k) and message_get(message, k) for k in keys):
        return True
    content = _get(message, "content")
    return isinstance(content, list) and any(isinstance(p, dict) and p.get("type") not in ("text", None) for p in content)


def message_get(message: Any, key: str) -> Any:
    return _get(message, key)


def parse_message(message: Any) -> dict[str, Any]:
    """-> completion (answer only), reasoning, reasoning_status, raw (the whole message, only for unknown shapes)."""
    unknown = _unknown_reasoning(message)
    content = _get(message, "content") or ""
    if not isinstance(content, str):  # content parts (list of {type: text, text})
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") in ("text", None))
    reasoning = _get(message, "reasoning_content") or _get(message, "reasoning")
    status = "full" if reasoning else "absent"
    details = _get(message, "reasoning_details")
    if not reasoning and details:
        texts, kinds = [], set()
        for d in details:
            d = d if isinstance(d, dict) else getattr(d, "model_dump", lambda: {})()
            kinds.add(d.get("type", ""))
            texts.append(d.get("text") or d.get("summary") or "")
        reasoning = "\n".join(t for t in texts if t) or None
        if "reasoning.summary" in kinds:
            status = "summarized"
        elif "reasoning.encrypted" in kinds and not reasoning:
            status = "redacted"
        elif reasoning:
            status = "full"
    if not reasoning:
        think, answer = split_think(content)
        if think is not None:
            reasoning, content, status = think, answer, "full"
    if not isinstance(reasoning, str | None):
        reasoning = str(reasoning)
    raw = None
    if unknown and not reasoning:
        status = "unknown"
        raw = json.dumps(message if isinstance(message, dict) else message.model_dump(), ensure_ascii=False, default=str)
    return {"completion": content, "reasoning": reasoning, "reasoning_status": status, "raw": raw}


def usage_fields(usage: Any) -> dict[str, int]:
    if usage is None:
        return {"prompt_tokens": 0, "completion_tokens": 0, "reasoning_tokens": 0}
    details = _get(usage, "completion_tokens_details")
    reasoning = _get(details, "reasoning_tokens") if details is not None else None
    return {
        "prompt_tokens": int(_get(usage, "prompt_tokens") or 0),
        "completion_tokens": int(_get(usage, "completion_tokens") or 0),
        "reasoning_tokens": int(reasoning or 0),
    }
