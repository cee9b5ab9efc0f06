"""A planted-heads-model scan (real induction and previous-token members) with patterns, a store holding it
and the catalogue, and hostile strings planted in a paper title, a model name and two token strings (they must
come out escaped everywhere)."""

from __future__ import annotations

import copy
import dataclasses
from datetime import date

import pytest

from headatlas.capture import capture_patterns
from headatlas.census import ScanSettings, run_census
from headatlas.headmap import HeadMap
from headatlas.probes import ProbeSettings
from headatlas.publish import write_patterns
from headatlas.store import connect, save_scan
from headatlas.testing.planted import build_planted_model

SMALL = ProbeSettings(n_repeat=2, repeat_len=8, n_text=2, text_len=16, needle_contexts=(256,), needle_per_context=1)
# the census's first seven types (a fixed list, so other work on new types cannot move these tests)
TYPES = ("previous_token", "duplicate_token", "induction", "current_token", "local", "sink", "retrieval")
SCRIPT = '<script>window.__xss = "script";</script>'
IMG = '"><img src=x onerror="window.__xss = \'img\'">'
HOSTILE = SCRIPT + IMG


@pytest.fixture(scope="session")
def tiny_loaded():
    return build_planted_model()


@pytest.fixture(scope="session")
def tiny_headmap(tiny_loaded) -> HeadMap:
    return run_census(tiny_loaded, ScanSettings(probes=SMALL, head_types=TYPES))


@pytest.fixture(scope="session")
def snapshot_headmap(tiny_loaded) -> HeadMap:
    """A fixed set of head types, so the structure snapshot does not move when a new type is registered."""
    return run_census(tiny_loaded, ScanSettings(probes=SMALL, head_types=("previous_token", "induction", "sink")))


@pytest.fixture(scope="session")
def tiny_patterns(tiny_loaded, tiny_headmap):
    """The two shared examples and, for retrieval, its evidence on a 256-token needle sample."""
    return capture_patterns(tiny_loaded, seed=0, n_tokens=16, headmap=tiny_headmap, probes=SMALL)


@pytest.fixture(scope="session")
def hostile_headmap(tiny_headmap) -> HeadMap:
    hm = copy.deepcopy(tiny_headmap)
    hm.facts = dataclasses.replace(hm.facts, name="tiny " + HOSTILE)
    return hm


@pytest.fixture(scope="session")
def hostile_patterns(tiny_patterns):
    p = copy.deepcopy(tiny_patterns)
    p["examples"][0]["tokens"][1] = SCRIPT
    p["examples"][0]["tokens"][2] = IMG
    return p


def hostile_paper():
    from headatlas.literature.schema import Paper

    return Paper.from_dict(
        {
            "id": "hostile-title-paper-2024",
            "title": "Induction heads " + HOSTILE,
            "date": "2024-05-01",
            "venue": "arXiv " + SCRIPT,
            "links": {"paper": "https://example.org/paper", "code": "https://example.org/code"},
            "tags": ["Induction_Head"],
            "head_types": ["induction"],
            "stages": ["LR"],
            "summary": {"innovation": "Plants " + IMG, "tasks": "Escaping tests.", "result": "Nothing runs."},
            "provenance": {"source": "contribution", "added": "2024-05-02"},
        },
        today=date(2026, 1, 1),
    )


@pytest.fixture(scope="session")
def web_store(tmp_path_factory, tiny_headmap, tiny_patterns, hostile_headmap, hostile_patterns):
    """Scan 1: the tiny model (patterns in its out dir). Scan 2: the same with a hostile model name and tokens."""
    from headatlas.literature.store import ensure_seeded, import_papers

    root = tmp_path_factory.mktemp("web")
    good, bad = root / "scan-good", root / "scan-bad"
    tiny_headmap.write(good)
    write_patterns(tiny_patterns, good)
    hostile_headmap.write(bad)
    write_patterns(hostile_patterns, bad)
    db = root / "store.sqlite3"
    conn = connect(db)
    ensure_seeded(conn)
    import_papers(conn, [hostile_paper()])
    ids = (save_scan(conn, tiny_headmap, out_dir=str(good)), save_scan(conn, hostile_headmap, out_dir=str(bad)))
    conn.close()
    return {"db": db, "good": good, "bad": bad, "scan_ids": ids}


@pytest.fixture(scope="session")
def hostile():
    return {"script": SCRIPT, "img": IMG, "both": HOSTILE}
