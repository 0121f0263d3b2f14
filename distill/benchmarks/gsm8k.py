"""GSM8K: grade-school math word problems; 8-shot chain of thought, exact match on the final number.

The 8 exemplars are the chain-of-thought prompts of Wei et al. (2022), the standard GSM8K 8-shot CoT set; each
ends with "The answer is N." so the model learns where to put its final number.
"""

from __future__ import annotations

from typing import Any

from distill.benchmarks.base import Benchmark, Item, Score, graded, stable_id
from distill.errors import InputError

COT_EXEMPLARS: list[tuple[str, str]] = [
    ("There are 15 trees in the grove. Grove workers will plant trees in the grove today. After they are done, "
     "there will be 21 trees. How many trees did the grove workers plant today?",
     "There are 15 trees originally. Then there were 21 trees after some more were planted. So there must have "
     "been 21 - 15 = 6. The answer is 6."),
    ("If there are 3 cars in the parking lot and 2 more cars arrive, how many cars are in the parking lot?",
     "There are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. The answer is 5."),
    ("Leah had 32 chocolates and her sister had 42. If they ate 35, how many pieces do they have left in total?",
     "Originally, Leah had 32 chocolates. Her sister had 42. So in total they had 32 + 42 = 74. After eating 35, "
     "they had 74 - 35 = 39. The answer is 39."),
    ("Jason had 20 lollipops. He gave Denny some lollipops. Now Jason has 12 lollipops. How many lollipops did "
     "Jason give to Denny?",
     "Jason started with 20 lollipops. Then he had 12 after giving some to Denny. So he gave Denny 20 - 12 = 8. "
     "The answer is 8."),
    ("Shawn has five toys. For Christmas, he got two toys each from his mom and dad. How many toys does he have "
     "now?",
     "Shawn started with 5 toys. If he got 2 toys each from his mom and dad, then that is 4 more toys. 5 + 4 = 9. "
     "The answer is 9."),
    ("There were nine computers in the server room. Five more computers were installed each day, from monday to "
     "thursday. How many computers are now in the server room?",
     "There were originally 9 computers. For each of 4 days, 5 more computers were added. So 5 * 4 = 20 computers "
     "were added. 9 + 20 is 29. The answer is 29."),
    ("Michael had 58 golf balls. On tuesday, he lost 23 golf balls. On wednesday, he lost 2 more. How many golf "
     "balls did he have at the end of wednesday?",
     "Michael started with 58 golf balls. After losing 23 on tuesday, he had 58 - 23 = 35. After losing 2 more, "
     "he had 35 - 2 = 33 golf balls. The answer is 33."),
    ("Olivia has $23. She bought five bagels for $3 each. How much money does she have left?",
     "Olivia had 23 dollars. 5 bagels for 3 dollars each will be 5 x 3 = 15 dollars. So she has 23 - 15 dollars "
     "left. 23 - 15 is 8. The answer is 8."),
]


def gsm8k_reference(answer: str) -> str:
    """The gold number of a GSM8K `answer` field ("...#### 1,234" -> "1234")."""
    from distill.answers import extract_number

    if "####" not in answer:
        raise InputError(f"GSM8K answer field has no '#### N' final answer: {answer[-80:]!r}")
    num = extract_number(answer[answer.rindex("####"):])
    if num is None:
        raise InputError(f"GSM8K answer field has no number after '####': {answer[-80:]!r}")
    return num


def question_turn(question: str) -> str:
    return f"Question: {question}\nAnswer: Let's think step by step."


class GSM8K(Benchmark):
    name = "gsm8k"
    kind = "gsm8k"
    k_shot = 8
    max_tokens = 512
    metric = "accuracy"
    scoring = "generative: the final number read from the reply, compared by value"
    hub = ("openai/gsm8k", "main")

    def _default_items(self, source: str | None, split: str) -> list[Item]:
        repo, subset = (source, self.hub[1]) if source else self.hub
        return self._hub_items(repo, subset, split)

    def _item(self, row: dict[str, Any]) -> Item:
        question, answer = str(row["question"]), str(row["answer"])
        return Item(id=stable_id("gsm8k", question), question=question, reference=gsm8k_reference(answer),
                    metadata={"solution": answer})

    def messages(self, item: Item, k_shot: int | None = None) -> list[dict[str, str]]:
        k = self.k_shot if k_shot is None else k_shot
        if k > len(COT_EXEMPLARS):
            raise InputError(f"gsm8k: k_shot={k} but only {len(COT_EXEMPLARS)} chain-of-thought exemplars exist")
        msgs: list[dict[str, str]] = []
        for q, a in COT_EXEMPLARS[:k]:
            msgs += [{"role": "user", "content": question_turn(q)}, {"role": "assistant", "content": a}]
        msgs.append({"role": "user", "content": question_turn(item.question)})
        return msgs

    def score(self, item: Item, output: str, finish_reason: str | None = None) -> Score:
        return graded(output, item.reference, "number", finish_reason)
