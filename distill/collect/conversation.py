"""Multi-turn generation: each teacher answer is followed by a simulated user's reply, for `conversation.turns`.

Turn 1 is the ordinary collect. For each further turn, every live conversation gets its next user message -- from
a model that plays the user (`conversation.user`, shown the transcript so far in one message, which every chat
API accepts) or from the user's function `(row, messages) -> str | None` (None ends that conversation) -- and the
teacher answers the longer conversation. Every request (user model and teacher alike) goes through `distill/llm`:
cached (a re-run rebuilds each conversation from the cache and asks nothing again), priced, held to
`collect.budget_usd`. Turns run in lockstep across conversations, so one turn's requests run concurrently.

Each later turn is one record like turn 1's (`messages`: the conversation before this answer), with `turn` and
the provenance of the user message that opened it: `user_source` (the model or function), `user_response_id`.
"""

from __future__ import annotations

from typing import Any

from distill.collect.config import CollectConfig
from distill.errors import InputError
from distill.llm import ChatRequest, ChatRunner, ResponseCache, Runner, RunStats, request_model
from distill.llm.budget import Budget

Conversation = dict[str, Any]  # index, row, messages (prompt turns, no endpoint system prompt), ended


def transcript_request(conv: list[dict[str, str]], user_prompt: str) -> list[dict[str, str]]:
    """What the user model is asked: the conversation as a transcript, in one user message."""
    lines = [f"{m['role'].upper()}: {m['content']}" for m in conv if m["role"] != "system"]
    return [{"role": "system", "content": user_prompt},
            {"role": "user", "content": "Conversation so far:\n\n" + "\n\n".join(lines)
             + "\n\nWrite the user's next message."}]


class UserSimulator:
    """The next user message of each conversation: a model (cached, budgeted) or the user's function."""

    def __init__(self, cfg: CollectConfig, cache: ResponseCache, budget: Budget):
        conv = cfg.conversation
        self.prompt = conv.user_prompt
        self.fn = None
        self.runner: ChatRunner | None = None
        if conv.user_function:
            from distill.userfn import load

            self.fn = load(conv.user_function, "collect.conversation.user_function")
            self.source = f"function {conv.user_function}"
        else:
            assert conv.user is not None
            self.runner = ChatRunner(request_model(conv.user), cache, budget=budget)
            self.source = f"{conv.user.name} ({conv.user.model})"

    async def next_messages(self, convs: list[Conversation], failures: list[dict[str, Any]],
                            prompt_id: Any) -> dict[int, tuple[str, str | None]]:
        """index -> (user message, response id); conversations missing from it end here."""
        out: dict[int, tuple[str, str | None]] = {}
        if self.fn is not None:
            from distill.userfn import call_error

            for c in convs:
                try:
                    text = self.fn.obj(c["row"], [dict(m) for m in c["messages"]])
                except Exception as err:  # noqa: BLE001 - the user's function failed on one conversation
                    failures.append({"prompt_id": prompt_id(c["index"]), "teacher": self.source,
                                     "error": call_error("collect.conversation.user_function", self.fn.ref, err,
                                                         f"prompt {prompt_id(c['index'])!r}")})
                    continue
                if text is not None and not isinstance(text, str):
                    raise InputError(f"collect.conversation.user_function ({self.fn.ref}) returned "
                                     f"{type(text).__name__}; expected the next user message (a string) or None")
                if text:
                    out[c["index"]] = (text, None)
            return out
        assert self.runner is not None

        def on_result(req: ChatRequest, records: Any, error: str | None, from_cache: bool) -> None:
            if records:
                out[req.tag] = (records[0]["completion"].strip(), records[0].get("response_id"))
            elif error:
                failures.append({"prompt_id": prompt_id(req.tag), "teacher": self.source, "error": error})

        await self.runner.run([ChatRequest(transcript_request(c["messages"], self.prompt), [0], c["index"])
                               for c in convs], on_result)
        return out


async def continue_conversations(cfg: CollectConfig, ds: Any, cache: ResponseCache, budget: Budget,
                                 runners: list[Runner], failures: list[dict[str, Any]]
                                 ) -> tuple[dict[str, list[dict[str, Any]]], list[RunStats], dict[str, Any]]:
    """Turns 2..N for every teacher: (records of later turns per teacher, the stats of every runner used,
    counts per turn)."""
    user = UserSimulator(cfg, cache, budget)
    later: dict[str, list[dict[str, Any]]] = {}
    stats: list[RunStats] = [user.runner.stats] if user.runner else []
    per_turn: dict[str, dict[str, int]] = {}

    def prompt_id(i: int) -> Any:
        return ds[i]["prompt_id"]

    for r in runners:
        convs = _first_turns(ds, cache, r)
        counts = per_turn.setdefault(r.ep.name, {"1": len(convs)})
        teacher = ChatRunner(request_model(r.ep), cache, budget=budget)
        stats.append(teacher.stats)
        out = later.setdefault(r.ep.name, [])
        for turn in range(2, cfg.conversation.turns + 1):
            replies = await user.next_messages(convs, failures, prompt_id)
            convs = [c for c in convs if c["index"] in replies]
            for c in convs:
                c["messages"].append({"role": "user", "content": replies[c["index"]][0]})
            answers: dict[int, dict[str, Any]] = {}

            def on_result(req: ChatRequest, records: Any, error: str | None, from_cache: bool) -> None:
                if records:
                    answers[req.tag] = records[0]
                elif error:
                    failures.append({"prompt_id": prompt_id(req.tag), "teacher": r.ep.name, "turn": turn,
                                     "error": error})

            await teacher.run([ChatRequest([dict(m) for m in c["messages"]], [0], c["index"]) for c in convs],
                              on_result)
            convs = [c for c in convs if c["index"] in answers]
            for c in convs:
                rec = answers[c["index"]]
                out.append({**rec, "_index": c["index"], "_context": [dict(m) for m in c["messages"]], "turn": turn,
                            "user_source": user.source, "user_response_id": replies[c["index"]][1]})
                c["messages"].append({"role": "assistant", "content": rec["completion"]})
            counts[str(turn)] = len(convs)
    return later, stats, per_turn


def _first_turns(ds: Any, cache: ResponseCache, runner: Runner) -> list[Conversation]:
    """Conversations after turn 1: each prompt with its cached first answer (unanswered prompts have none)."""
    from distill.collect.parser import RecordParser

    convs: list[Conversation] = []
    for start in range(0, len(ds), 1000):
        batch = ds[start : start + 1000]
        keys = [runner.model.sample_keys(m, [0])[0] for m in batch["messages"]]
        found = cache.get_many(keys)
        for j, (msgs, k) in enumerate(zip(batch["messages"], keys, strict=True)):
            rec = found.get(k)
            if rec is None or rec.get("finish_reason") == "length":
                continue  # no answer, or a cut one: nothing to continue from
            row = RecordParser.prompt_row({"prompt_id": batch["prompt_id"][j], "messages": msgs,
                                           "reference": batch["reference"][j], "metadata": batch["metadata"][j]})
            convs.append({"index": start + j, "row": row,
                          "messages": [*msgs, {"role": "assistant", "content": rec["completion"]}]})
    return convs


def turn_rows(later: list[dict[str, Any]], ds: Any, runner: Runner, columns: list[str]) -> Any:
    """Export rows of turns 2..N (one teacher): record columns + the conversation before the answer + provenance."""
    for rec in later:
        i = rec["_index"]
        row = {c: rec.get(c) for c in columns}
        row.update(length_retry=False, prompt_id=ds[i]["prompt_id"], teacher=runner.ep.name,
                   messages=runner.model.full_messages(rec["_context"]), reference=None,
                   metadata=ds[i]["metadata"], turn=rec["turn"], user_source=rec["user_source"],
                   user_response_id=rec["user_response_id"])
        yield row
