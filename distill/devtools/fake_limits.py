"""Rate limits a fake server enforces and announces in the provider's own headers (OpenAI or Anthropic names).

Each limit is a bucket holding one second's worth of its per-minute rate (providers enforce per-minute limits
over shorter windows too): a request that finds a bucket empty gets a 429 with Retry-After. Every answer carries
`limit` / `remaining` / `reset` headers, so a client that reads them can pace itself and see (almost) no 429s;
`advertise=False` enforces the same limits silently, the control a test compares against.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

OPENAI_DIMS = ("requests", "tokens")
ANTHROPIC_DIMS = ("requests", "input_tokens", "output_tokens")


def parse_limits(spec: str) -> dict[str, float]:
    """`requests=300,output_tokens=3000` (per minute) -> {"requests": 300.0, "output_tokens": 3000.0}."""
    out = {}
    for part in filter(None, spec.split(",")):
        k, _, v = part.partition("=")
        out[k.strip()] = float(v)
    return out


class FakeLimits:
    def __init__(self, limits: dict[str, float], style: str, advertise: bool = True):
        dims = OPENAI_DIMS if style == "openai" else ANTHROPIC_DIMS
        unknown = set(limits) - set(dims)
        if unknown:
            raise SystemExit(f"unknown {style} rate limit(s) {sorted(unknown)}; choose from {', '.join(dims)}")
        self.style, self.advertise = style, advertise
        now = time.monotonic()
        # dim -> [level, last refill, per-second rate, capacity]
        self.b = {d: [max(v / 60, 1.0), now, v / 60, max(v / 60, 1.0)] for d, v in limits.items()}
        self.limits = limits

    def _refill(self) -> None:
        now = time.monotonic()
        for b in self.b.values():
            b[0] = min(b[3], b[0] + (now - b[1]) * b[2])
            b[1] = now

    def admit(self, input_tokens: int) -> float | None:
        """Charge a request arriving with `input_tokens`; None if admitted, else the seconds to wait."""
        self._refill()
        need = {"requests": 1.0, "tokens": float(input_tokens), "input_tokens": float(input_tokens),
                "output_tokens": 1.0}
        waits = [(min(need[d], b[3]) - b[0]) / b[2] for d, b in self.b.items() if b[0] < min(need[d], b[3])]
        if waits:
            return max(waits)
        for d in ("requests", "tokens", "input_tokens"):
            if d in self.b:
                self.b[d][0] -= need[d]
        return None

    def charge_output(self, output_tokens: int) -> None:
        for d in ("tokens", "output_tokens"):
            if d in self.b:
                self.b[d][0] -= output_tokens

    def headers(self) -> dict[str, str]:
        if not self.advertise or not self.b:
            return {}
        self._refill()
        out = {}
        for d, (level, _, rate, cap) in self.b.items():
            to_full = max(0.0, (cap - level) / rate)
            if self.style == "openai":
                out[f"x-ratelimit-limit-{d}"] = str(int(self.limits[d]))
                out[f"x-ratelimit-remaining-{d}"] = str(max(0, int(level)))
                out[f"x-ratelimit-reset-{d}"] = f"{int(to_full * 1000)}ms"
            else:
                h = d.replace("_", "-")
                out[f"anthropic-ratelimit-{h}-limit"] = str(int(self.limits[d]))
                out[f"anthropic-ratelimit-{h}-remaining"] = str(max(0, int(level)))
                out[f"anthropic-ratelimit-{h}-reset"] = datetime.fromtimestamp(time.time() + to_full, UTC).isoformat(
                    timespec="seconds").replace("+00:00", "Z")
        return out
