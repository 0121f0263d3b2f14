"""The demo student before training: a random tiny Llama with >= 4x fewer parameters than the teacher.

Its tokenizer is trained on the task's public text (templates, numbers, the step format) exactly as the teacher's
is, so student and teacher share a vocabulary; no teacher weight is ever copied. Shipped in data/demo/student/ so
`distill train -c pipelines/demo.yaml` works on its own.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

STUDENT_DIR = Path(__file__).resolve().parents[2] / "data" / "demo" / "student"
STUDENT_SHAPE = dict(hidden=64, layers=2, heads=2, intermediate=192, max_positions=256)


def build_student(out_dir: Path, seed: int = 0) -> dict[str, Any]:
    from distill.demo.teacher import param_count, tokenizer_texts, write_checksums
    from distill.devtools.tiny import build_model, build_tokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(tokenizer_texts(), vocab_size=384)
    build_model(tok, seed=seed, out_dir=out_dir, **STUDENT_SHAPE)
    write_checksums(out_dir)
    return {"params": param_count(out_dir), "shape": STUDENT_SHAPE}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="build the random (untrained) demo student")
    ap.add_argument("--out", type=Path, default=STUDENT_DIR)
    print(build_student(ap.parse_args(argv).out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
