"""curate past one machine: the dataset written in pieces equals the one-piece result, and the Ray executor (a real
local Ray cluster of 2 nodes started here) keeps exactly the records the local executor keeps."""

from __future__ import annotations

import copy
import random

import pytest

from distill.curate import load_curated, run_curate
from distill.rundir import RunLayout
from tests.curate.test_curate import _cfg, fixture_records, write_collect_dir

WORDS = ("river stone garden window paper orange silver engine market winter candle forest button ladder pocket "
         "mirror bridge cotton harbor pepper violin canyon saddle marble tunnel meadow lantern copper blanket").split()


def _records() -> list[dict]:
    """The fixture records (every filter has work) plus 60 generated answers with planted exact and near copies,
    so dedup spans several batches and shuffle partitions."""
    rng = random.Random(7)
    out = fixture_records()
    base = fixture_records()[0]
    for i in range(60):
        r = copy.deepcopy(base)
        words = [rng.choice(WORDS) for _ in range(60)]
        if i % 5 == 1:  # a near copy of the previous one: 1 word changed
            words = list(prev)
            words[30] = "zebra"
        elif i % 5 == 2:  # an exact copy of the one before, re-cased
            words = [w.upper() for w in prev]
        prev = words
        r.update(id=f"gen-{i}", prompt_id=f"p-gen-{i}", completion=" ".join(words), reference=None,
                 reasoning="think it through", messages=[{"role": "user", "content": f"Write word list {i // 5}."}])
        out.append(r)
    return out


def _kept(run) -> dict[str, list[str]]:
    dd = load_curated(RunLayout(run).curate)
    return {k: sorted(v["id"]) for k, v in dd.items()}


def _counts(summary) -> dict[str, int]:
    return {name: f["removed"] for name, f in summary["filters"].items()}


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("local")
    write_collect_dir(run, _records())
    return run, run_curate(_cfg(), RunLayout(run))


def test_dataset_written_in_pieces_equals_one_piece(local_run, tmp_path, monkeypatch):
    from distill.curate import build

    run, summary = local_run
    monkeypatch.setattr(build, "SHARD_ROWS", 4)  # many pieces from a few dozen kept records
    other = tmp_path / "pieces"
    write_collect_dir(other, _records())
    s2 = run_curate(_cfg(), RunLayout(other))
    assert _kept(other) == _kept(run) and s2["splits"] == summary["splits"]
    a, b = load_curated(RunLayout(run).curate), load_curated(RunLayout(other).curate)
    for split in a:
        assert sorted(a[split].to_list(), key=lambda r: r["id"]) == sorted(b[split].to_list(), key=lambda r: r["id"])


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster: a head and one worker node, 1 CPU and a 80 MiB object store each (small on purpose)."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 1, "object_store_memory": 80 * 2**20, "include_dashboard": False})
    cluster.add_node(num_cpus=1, object_store_memory=80 * 2**20)
    cluster.wait_for_nodes()
    yield cluster.address
    ray.shutdown()
    cluster.shutdown()


def test_ray_executor_keeps_what_local_keeps(local_run, ray_cluster, tmp_path, monkeypatch):
    from distill.curate import step

    run, summary = local_run
    monkeypatch.setattr(step, "TEXT_BATCH", 16)  # several text batches -> several tasks and shuffle inputs
    other = tmp_path / "ray"
    write_collect_dir(other, _records())
    s2 = run_curate(_cfg(executor="ray", ray_address=ray_cluster), RunLayout(other))
    assert s2["executor"] == "ray" and summary["executor"] == "local"
    assert _kept(other) == _kept(run)
    assert _counts(s2) == _counts(summary)
    assert summary["filters"]["near_dedup"]["removed"] >= 12 and summary["filters"]["exact_dedup"]["removed"] >= 12
    assert s2["filters"]["near_dedup"]["candidate_pairs"] == summary["filters"]["near_dedup"]["candidate_pairs"]
    assert s2["records_out"] == summary["records_out"] and s2["splits"] == summary["splits"]


def test_near_dup_reads_non_latin_words():
    """Words in any script count (RE2's ASCII-only \\w once left Cyrillic or Greek texts with no words, so every
    such text looked like every other); a one-word edit is still a near copy, exactly verified."""
    import numpy as np
    import pyarrow as pa

    from distill.curate.dedup import near_duplicates

    rng = np.random.default_rng(3)
    cyr = [chr(c) for c in range(0x430, 0x450)]
    greek = [chr(c) for c in range(0x3B1, 0x3CA)]

    def text(letters):
        return " ".join("".join(rng.choice(letters, size=6)) for _ in range(60))

    a, b, c = text(cyr), text(cyr), text(greek)
    words = a.split()
    words[20] = "слово"
    arr = pa.array([a, b, c, " ".join(words), text(greek)], type=pa.string())
    res = near_duplicates(lambda: [arr], len(arr))
    assert res.keep.tolist() == [True, True, True, False, True] and res.rep[3] == 0


def test_pair_jaccard_is_the_exact_shingle_jaccard():
    """The verification's vectorized Jaccard equals Python sets of 5-word tuples, for 64- and 32-bit hashes, on
    near copies across the threshold (1-8 words replaced) and unrelated pairs."""
    import numpy as np
    import pyarrow as pa

    from distill.curate.dedup import pair_jaccard, shingle_sets

    rng = np.random.default_rng(5)
    base = [[f"w{x}" for x in rng.integers(0, 400, 90)] for _ in range(12)]
    texts = [" ".join(b) for b in base]
    for k, b in enumerate(base):
        c = list(b)
        for at in rng.choice(len(c), size=1 + k % 8, replace=False):
            c[at] = f"new{at}"
        texts.append(" ".join(c))
    pairs = np.array([(i, i + 12) for i in range(12)] + [(0, 1), (3, 7)])

    def grams(t):
        w = t.split()
        return {tuple(w[i : i + 5]) for i in range(len(w) - 4)}

    truth = [len(grams(texts[a]) & grams(texts[b])) / len(grams(texts[a]) | grams(texts[b])) for a, b in pairs]
    flat, off = shingle_sets(pa.array(texts), 5)
    assert np.allclose(pair_jaccard(flat, off, pairs), truth)
    assert np.allclose(pair_jaccard((flat ^ (flat >> np.uint64(32))).astype(np.uint32), off, pairs), truth)
    assert min(truth[:12]) < 0.8 < max(truth[:12])  # the copies straddle the threshold
