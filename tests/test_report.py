"""Evaluation report files: written, parseable, and consistent with the scored items."""

import json

import pytest

from hilight_train.report import build_report, compare_reports, plot_confusion, write_report


def items(scores, qtype="potted", parsed=True):
    return [
        {
            "id": f"{qtype}-{i}",
            "clip": f"clip{i // 2}",
            "type": qtype,
            "question": "Which balls were potted?",
            "truth": "3",
            "answer": "3" if s else "5",
            "score": float(s),
            "parsed": {"balls": [3]} if parsed else None,
        }
        for i, s in enumerate(scores)
    ]


def test_report_files_are_written_and_parse(tmp_path):
    model = items([1, 1, 0, 1]) + items([1, 0], qtype="foul")
    blind = items([0, 1, 0, 0]) + items([0, 0], qtype="foul", parsed=False)
    report = build_report(model, baselines={"blind": blind}, meta={"model": "m", "split": "test"}, n_boot=200)
    write_report(report, tmp_path)
    loaded = json.loads((tmp_path / "report.json").read_text())
    assert loaded["overall"]["n"] == 6
    assert loaded["overall"]["accuracy"] == pytest.approx(4 / 6)
    assert loaded["types"]["potted"]["accuracy"] == pytest.approx(0.75)
    low, high = loaded["types"]["potted"]["ci"]
    assert 0 <= low <= 0.75 <= high <= 1
    assert loaded["types"]["foul"]["baselines"]["blind"]["unparseable"] == 2
    md = (tmp_path / "report.md").read_text()
    assert "| potted | 4 | 0.750" in md and "blind" in md
    failures = [json.loads(ln) for ln in (tmp_path / "failures.jsonl").read_text().splitlines()]
    assert {f["id"] for f in failures} == {"potted-2", "foul-1"}
    assert (tmp_path / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_gives_paired_differences(tmp_path):
    a = build_report(items([1, 0, 0, 1]), n_boot=200)
    b = build_report(items([1, 1, 1, 1]), n_boot=200)
    diff = compare_reports(a, b, n_boot=200)
    assert diff["potted"]["diff"] == pytest.approx(0.5)
    assert diff["overall"]["n"] == 4
    with pytest.raises(ValueError, match="share no item ids"):
        compare_reports(a, build_report(items([1], qtype="other"), n_boot=10))


def test_confusion_png(tmp_path):
    plot_confusion(["1", "2", "2"], ["1", "2", "3"], tmp_path / "c.png", "first contact")
    assert (tmp_path / "c.png").stat().st_size > 1000
