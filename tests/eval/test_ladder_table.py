"""The distillation ladder's table (intervals over seeds, rows, markdown) and its orchestration,
with stand-in child commands instead of training."""
import json
import math
import os
import sys

import pytest
from absl import app, flags
from absl.testing import flagsaver

from experiments import ladder
from onesearch_jax.eval import ladder_table as lt


# --- intervals ----------------------------------------------------------------------------------
def test_interval_matches_hand_computation():
    mean, hw, n = lt.interval([0.1, 0.2, 0.3])
    assert n == 3 and mean == pytest.approx(0.2)
    assert hw == pytest.approx(4.302653 * 0.1 / math.sqrt(3))


def test_interval_single_and_missing_values():
    assert lt.interval([0.5]) == (0.5, None, 1)
    assert lt.interval([]) == (None, None, 0)
    mean, hw, n = lt.interval([None, 0.1, float("nan"), 0.3, "x"])  # only the numbers count
    assert n == 2 and mean == pytest.approx(0.2)
    assert hw == pytest.approx(12.706205 * math.sqrt(0.02) / math.sqrt(2))


def test_t_table():
    assert lt.t_975(1) == 12.706205 and lt.t_975(30) == 2.042272 and lt.t_975(31) == 1.96
    with pytest.raises(ValueError):
        lt.t_975(0)
    stats = pytest.importorskip("scipy.stats")
    for df in range(1, 31):
        assert lt.t_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=2e-6)


# --- rows and the table -----------------------------------------------------------------------
def _m(v, **extra):
    return {"rel_hr@10": v, "order_hr@10": v / 2, "teacher/rel_hr@10": v + 0.1, **extra}


def test_aggregate_rows_order_and_teacher_keys():
    runs = {"v1": [_m(0.1), _m(0.2), _m(0.3)], "cot": [_m(0.4)], "sd": []}
    rows = lt.aggregate(runs, teacher_rungs=["cot", "sd", "other"], rungs=["v1", "cot", "sd"])
    assert [r["name"] for r in rows] == ["v1", "cot", "cot (T)", "sd", "sd (T)"]
    v1, cot, cot_t, sd, _ = rows
    assert v1["stats"]["rel_hr@10"]["mean"] == pytest.approx(0.2)
    assert v1["stats"]["rel_hr@10"]["hw"] == pytest.approx(4.302653 * 0.1 / math.sqrt(3))
    assert v1["values"]["order_hr@10"] == pytest.approx([0.05, 0.1, 0.15])
    assert cot["stats"]["rel_hr@10"] == {"mean": 0.4, "hw": None, "n": 1}
    assert cot_t["teacher"] and cot_t["stats"]["rel_hr@10"]["mean"] == pytest.approx(0.5)
    assert cot_t["stats"]["order_hr@10"]["n"] == 0  # no teacher/order_hr@10 key
    assert sd["seeds"] == 0 and sd["stats"]["rel_hr@10"]["mean"] is None
    assert set(v1["stats"]) == set(lt.METRICS)


def test_format_cells_and_table():
    assert lt.format_cell(0.2, 0.0248, 3) == "0.2000 ± 0.0248 (3)"
    assert lt.format_cell(0.4, None, 1) == "0.4000 (1)"
    assert lt.format_cell(None, None, 0) == ""
    rows = lt.aggregate({"v1": [_m(0.1), _m(0.2), _m(0.3)], "cot": [_m(0.4)]},
                        teacher_rungs=["cot"])
    table = lt.format_table(rows, metrics=["rel_hr@10", "rel_hr@10/tail"]).splitlines()
    assert table[0] == "| rung | rel_hr@10 | rel_hr@10/tail |"
    assert table[1] == "|---|---|---|"
    hw = 4.302653 * 0.1 / math.sqrt(3)
    assert table[2] == f"| v1 | 0.2000 ± {hw:.4f} (3) |  |"
    assert table[3] == "| cot | 0.4000 (1) |  |"
    assert table[4] == "| cot (T) | 0.5000 (1) |  |"
    md = lt.format_markdown(rows, "small", 3, 4000, ["train.steps=3000"])
    assert md.startswith("V2 ladder: preset=small, seeds=3, max_events=4000, "
                         "overrides: train.steps=3000.")
    assert "overrides: none" in lt.format_header("small", 1, 10, [])


def test_baseline_metrics_drops_what_a_run_writes():
    base = {"bm25/rel_hr@10": 0.3, "click_irrelevant_rate": 0.1, "num_items": 5.0,
            "rel_hr@10": 0.5, "rel_hr@10/tail": 0.4, "rel_count/tail": 9.0,
            "negation_violation@10": 0.2, "train/steps": 3.0, "teacher/rel_hr@10": 0.6,
            "valid_sid_rate": 1.0, "stage": "evaluate", "config": {"world": {"a": 1}, "train": {}}}
    assert lt.baseline_metrics(base) == {
        "bm25/rel_hr@10": 0.3, "click_irrelevant_rate": 0.1, "num_items": 5.0,
        "stage": "evaluate", "config": {"world": {"a": 1}}}


def test_progress_line_and_durations():
    assert lt.format_duration(65) == "1:05" and lt.format_duration(3725) == "1:02:05"
    assert lt.format_duration(None) == "?"
    line = lt.progress_line(done=4, total=10, elapsed_s=125, finished_here=2, spent_here_s=100)
    assert line == "ladder: 4/10 runs done | elapsed 2:05 | ETA 5:00"
    assert lt.progress_line(1, 3, 1, 0, 0).endswith("ETA ?")


def test_resolved_and_compute_summary():
    assert lt.resolved([0.01, 0.002, 0.02]) and lt.resolved([-0.01, -0.02, -0.001])
    assert not lt.resolved([0.01, -0.001, 0.02]) and not lt.resolved(None)
    assert not lt.resolved([float("nan"), 0.1, 0.2])
    done = {"v1": {"seed0": {"train": 3000.0, "evaluate": 90.0, "total": 3090.0},
                   "seed1": {"train": 2000.0, "evaluate": 110.0, "total": 2110.0}},
            "dpo": {"seed0": {"train_parent": 60.0, "train": 240.0, "online_ab": 300.0,
                              "total": 600.0}, "seed1": None},
            "grpo": {"seed0": {"online_ab_old": 0.2, "total": 0.2}}}  # under a second: not shown
    c = lt.compute_summary(done)
    assert c["runs"] == 4 and c["total_s"] == pytest.approx(5800.2)
    assert c["phases_s"] == {"train": 5240.0, "evaluate": 200.0, "train_parent": 60.0,
                             "online_ab": 300.0, "online_ab_old": 0.2}
    assert c["mean_run_s_by_rung"] == {"v1": 2600.0, "dpo": 600.0, "grpo": 0.2}
    assert lt.format_compute(c) == (
        "Compute: 4 runs, 1:36:40 in all (train 1:27:20, online_ab 5:00, evaluate 3:20, "
        "train_parent 1:00); per run: v1 43:20, dpo 10:00, grpo 0:00.")
    assert lt.format_compute(lt.compute_summary({})) == ""


def test_pure_module_does_not_import_jax():
    import ast
    import pathlib
    tree = ast.parse(pathlib.Path(lt.__file__).read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not {m for m in names if m and m.split(".")[0] in ("jax", "flax", "numpy")}


# --- orchestration, without training --------------------------------------------------------
def _fake_run(root, rung, seed, metrics, done=True):
    run = ladder.run_dir(str(root), rung, seed)
    os.makedirs(run)
    with open(os.path.join(run, "metrics.json"), "w") as f:
        json.dump({**metrics, "stage": "evaluate", "config": {}}, f)
    if done:
        with open(os.path.join(run, ladder.DONE_FILE), "w") as f:
            json.dump({"train": 10.0, "evaluate": 2.0, "total": 12.0}, f)


def _fake_tree(root):
    for s, v in enumerate([0.1, 0.2, 0.3]):
        _fake_run(root, "v1", s, _m(v, **{"rel_hr@10/tail": v / 3}))
    _fake_run(root, "cot", 0, _m(0.4))
    _fake_run(root, "cot", 1, _m(0.9), done=False)  # unfinished: not in the table


def test_write_table_on_a_fake_root(tmp_path):
    _fake_tree(tmp_path)
    paths = ladder.write_table(str(tmp_path), ["v1", "cot"], 3, preset="small",
                               teacher_rungs=["cot", "sd"], max_events=4000,
                               overrides=["train.steps=3000"])
    md = (tmp_path / "ladder.md").read_text()
    assert "preset=small, seeds=3, max_events=4000, overrides: train.steps=3000" in md
    lines = [l for l in md.splitlines() if l.startswith("| ")]
    assert [l.split(" | ")[0] for l in lines[1:]] == ["| v1", "| cot", "| cot (T)"]
    assert "0.4000 (1)" in lines[2] and "0.5000 (1)" in lines[3]
    summary = json.loads((tmp_path / "ladder.json").read_text())
    assert summary["teacher_eval_rungs"] == ["cot"]
    assert set(summary["per_seed"]["cot"]) == {"seed0"}
    assert summary["per_seed"]["v1"]["seed2"]["rel_hr@10"] == 0.3
    assert summary["phase_seconds"]["v1"]["seed0"]["total"] == 12.0
    assert summary["compute"]["runs"] == 4
    assert ("Compute: 4 runs, 0:48 in all (train 0:40, evaluate 0:08); per run: v1 0:12, "
            "cot 0:12.") in md
    v1 = summary["rows"][0]["stats"]["rel_hr@10"]
    assert v1["n"] == 3 and v1["hw"] == pytest.approx(4.302653 * 0.1 / math.sqrt(3))
    png = tmp_path / "ladder.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths["png"] == str(png)


def test_main_only_table(tmp_path, monkeypatch, capsys):
    _fake_tree(tmp_path)
    monkeypatch.setattr(ladder, "known_rungs", lambda: ("v1", "cot", "sd"))
    flags.FLAGS.unparse_flags()
    with flagsaver.flagsaver():
        flags.FLAGS(["ladder", "--base_workdir=/nonexistent", f"--root={tmp_path}",
                     "--rungs=v1,cot", "--only_table"])
        ladder.main(["ladder"])
        flags.FLAGS(["ladder", "--base_workdir=/nonexistent", f"--root={tmp_path}",
                     "--rungs=v1,nope", "--only_table"])
        with pytest.raises(app.UsageError, match="nope.*v1, cot, sd"):
            ladder.main(["ladder"])
    flags.FLAGS.unparse_flags()
    assert "| cot (T) |" in capsys.readouterr().out
    assert (tmp_path / "ladder.md").exists() and (tmp_path / "ladder.png").exists()


def test_only_table_keeps_the_recorded_rungs_and_settings(tmp_path, monkeypatch):
    """A retabulation with --root alone rewrites the same table (no --base_workdir): the last
    table's rungs, seeds and header; without a last table, every finished rung found."""
    _fake_tree(tmp_path)
    monkeypatch.setattr(ladder, "known_rungs", lambda: ("v1", "cot", "sd"))
    ladder.write_table(str(tmp_path), ["v1", "cot"], 3, preset="base", teacher_rungs=[],
                       max_events=2000, overrides=["train.steps=3000"])
    flags.FLAGS.unparse_flags()
    with flagsaver.flagsaver():
        flags.FLAGS(["ladder", f"--root={tmp_path}", "--only_table"])
        ladder.main(["ladder"])
        md = (tmp_path / "ladder.md").read_text()
        assert "preset=base, seeds=3, max_events=2000, overrides: train.steps=3000" in md
        rows = [l.split(" | ")[0] for l in md.splitlines() if l.startswith("| ")]
        assert rows[:3] == ["| rung", "| v1", "| cot"]  # no (T) row: none was recorded
        os.remove(tmp_path / "ladder.json")
        settings = ladder.table_settings(str(tmp_path), "ladder", {"preset": "tiny"})
    flags.FLAGS.unparse_flags()
    assert settings["rungs"] == ["v1", "cot"] and settings["seeds"] == 3
    assert settings["preset"] == "tiny"  # a flag given on the command line wins


def test_validate_rungs_and_schedule():
    ladder.validate_rungs(["anything"], None)  # configs/distill.py absent: no check
    with pytest.raises(app.UsageError, match="duplicates"):
        ladder.validate_rungs(["v1", "v1"], None)
    assert ladder.schedule(["a", "b"], 2, "rung") == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert ladder.schedule(["a", "b"], 2, "seed") == [("a", 0), ("b", 0), ("a", 1), ("b", 1)]


def test_commands():
    cmd = ladder.train_command("small", "sd", 2, "/r/sd/seed2", ["train.steps=30",
                                                                "--config.train.lr=1e-3"])
    assert cmd[0] == sys.executable and cmd[1:3] == ["-m", "experiments.train"]
    assert cmd[3:] == ["--config=configs/distill.py:small:sd", "--workdir=/r/sd/seed2",
                       "--config.train.steps=30", "--config.train.lr=1e-3",
                       "--config.train.seed=2"]
    assert ladder.evaluate_command("/w", 100, teacher=True)[2:] == [
        "experiments.evaluate", "--workdir=/w", "--max_events=100", "--keywords=teacher"]


def test_rl_rungs_start_from_their_parent_and_refuse_to_run_before_it(tmp_path):
    cmd = ladder.train_command("small", "tpma_no_gate", 1, "/r/tpma_no_gate/seed1", ["x=1"],
                               root="/r")
    assert cmd[3:] == ["--config=configs/tpma.py:small:no_gate",
                       "--workdir=/r/tpma_no_gate/seed1", "--config.init_workdir=/r/dpo/seed1",
                       "--config.train.seed=1"]
    assert ladder.train_command("tiny", "dpo", 0, "/r/dpo/seed0", [], root="/r")[3] == \
        "--config=configs/dpo.py:tiny"
    assert {"sd", "dpo", "grpo", "tpma"} <= set(ladder.known_rungs())
    assert ladder.ab_command("/w", 500, 1)[2:] == ["experiments.online_ab", "--workdir=/w",
                                                   "--num_events=500", "--perturb=1"]
    with pytest.raises(app.UsageError, match="dpo/seed0 starts from sd/seed0, which is not done"):
        ladder.run_one(str(tmp_path), str(tmp_path / "root"), "dpo", 0, preset="tiny",
                       overrides=[], max_events=10, teacher=False)


def test_branched_rungs_start_from_their_ancestors_state(tmp_path):
    branch = ladder.parse_branch_flag("sd@3000")
    assert branch == ("sd", 3000) and ladder.parse_branch_flag(None) is None
    for bad in ("sd", "sd@", "@3000", "sd@x", "sd@0"):
        with pytest.raises(app.UsageError, match="expected RUNG@STEP"):
            ladder.parse_branch_flag(bad)
    root = tmp_path / "root"
    # sd's record lacks data.mem_width (an older run: it fed 'fixed' batches); the branch too.
    _fake_run(root, "sd", 0, _m(0.5))
    (root / "sd" / "seed0" / "train_config.json").write_text(json.dumps({"data": {}}))
    cmd = ladder.train_command("small", "fgm", 0, "/r/fgm/seed0", ["train.steps=30"],
                               root=str(root), branch=branch)
    assert cmd[5:] == ["--config.data.state_cache=" + str(root / "minilm_states"),
                       "--config.train.steps=30",
                       f"--config.train.branch_from={root}/sd/seed0@3000",
                       "--config.data.mem_width=fixed", "--config.train.seed=0"]
    # Only rungs below the ancestor branch: sd itself, cot and the RL rungs do not.
    assert [r for r in ("sd_akl1", "rdrop", "focal", "sd", "cot", "v1", "dpo")
            if ladder.branch_source(r, branch)] == ["sd_akl1", "rdrop", "focal"]
    assert ladder.starts_from("sd_tau2", branch) == "sd" and ladder.starts_from("sd_tau2") is None
    assert ladder.starts_from("dpo", branch) == "sd"
    with pytest.raises(app.UsageError, match="sd_kl2/seed1 starts from sd/seed1, which is not"):
        ladder.run_one(str(tmp_path), str(root), "sd_kl2", 1, preset="tiny", overrides=[],
                       max_events=10, teacher=False, branch=branch)
    # The table names the branched runs.
    _fake_run(root, "sd_akl1", 0, _m(0.6))
    (root / "sd_akl1" / "seed0" / "train_config.json").write_text(json.dumps(
        {"train": {"branch_from": f"{root}/sd/seed0@3000"}}))
    paths = ladder.write_table(str(root), ["sd", "sd_akl1"], 1, preset="small",
                               teacher_rungs=[], max_events=10, overrides=[], name="sweep")
    assert paths["md"] == str(root / "sweep.md")
    assert "Branched runs (train.branch_from" in (root / "sweep.md").read_text()
    assert json.loads((root / "sweep.json").read_text())["branched"] == {
        "sd_akl1/seed0": "sd/seed0@3000"}


def _base(tmp_path):
    base = tmp_path / "base"
    for d in ("world", "sids", "data"):
        (base / d).mkdir(parents=True)
    (base / "world_config.json").write_text("{}")
    (base / "metrics.json").write_text(json.dumps({"bm25/rel_hr@10": 0.3, "rel_hr@10": 0.9}))
    return base


def test_prepare_run_dir_is_idempotent(tmp_path):
    base = _base(tmp_path)
    run = str(tmp_path / "root" / "sd" / "seed0")
    ladder.prepare_run_dir(str(base), run)
    with open(os.path.join(run, "metrics.json")) as f:
        assert json.load(f) == {"bm25/rel_hr@10": 0.3}
    with open(os.path.join(run, "metrics.json"), "w") as f:
        json.dump({"bm25/rel_hr@10": 0.3, "rel_hr@10": 0.5}, f)  # the run's own numbers
    ladder.prepare_run_dir(str(base), run)
    for d in ("world", "sids", "data"):
        assert os.readlink(os.path.join(run, d)) == str(base / d)
    assert os.path.exists(os.path.join(run, "world_config.json"))
    assert not os.path.exists(os.path.join(run, "sids_config.json"))
    with open(os.path.join(run, "metrics.json")) as f:
        assert json.load(f)["rel_hr@10"] == 0.5
    child = str(tmp_path / "root" / "dpo" / "seed0")  # a variant of the variant (RL from SD)
    ladder.prepare_run_dir(run, child)
    assert os.readlink(os.path.join(child, "world")) == os.path.realpath(base / "world")


# Stand-ins for train/evaluate: plain Python children that write what the real ones would.
# Like experiments.train: its train_config.json names where the run lives (an RL run's
# init_workdir does), and a different one already there is refused.
_TRAIN = ("import json,os,sys; c=sys.argv[1]+'/train_config.json'; "
          "old=json.load(open(c)) if os.path.exists(c) else None; "
          "new={'run': sys.argv[1], 'train': {'steps': 3}}; "
          "old not in (None, new) and sys.exit(5); json.dump(new, open(c,'w')); "
          "p=sys.argv[1]+'/metrics.json'; m=json.load(open(p)); "
          "m['train/steps']=3; json.dump(m,open(p,'w')); print('step 3/3'); "
          "os.makedirs(sys.argv[1]+'/checkpoints/3', exist_ok=True); "
          "sys.exit(int(sys.argv[2]))")
_EVAL = ("import json,sys; p=sys.argv[1]+'/metrics.json'; m=json.load(open(p)); "
         "pre=sys.argv[2]; m[pre+'rel_hr@10']=0.25+0.1*int(sys.argv[1][-1]); "
         "json.dump(m,open(p,'w')); print('evaluated')")


def test_run_ladder_resumes_and_reports_failures(tmp_path, monkeypatch, capsys):
    base, root = _base(tmp_path), str(tmp_path / "root")
    fail = {"run": None}
    monkeypatch.setattr(ladder, "train_command", lambda preset, rung, seed, run, ov, root=None,
                        branch=None: [
        sys.executable, "-c", _TRAIN, run, "3" if (rung, seed) == fail["run"] else "0"])
    monkeypatch.setattr(ladder, "evaluate_command", lambda run, n, teacher=False: [
        sys.executable, "-c", _EVAL, run, "teacher/" if teacher else ""])
    kw = dict(order="seed", preset="small", teacher_rungs=["cot"], max_events=10, overrides=[])

    fail["run"] = ("cot", 1)
    with pytest.raises(ladder.ChildFailed) as e:
        ladder.run_ladder(str(base), root, ["v1", "cot"], 2, **kw)
    assert (e.value.tag, e.value.phase, e.value.returncode) == ("cot/seed1", "train", 3)
    out = capsys.readouterr().out
    assert "[v1/seed0] step 3/3" in out and "[cot/seed0] evaluated" in out
    assert "ladder: 3/4 runs done" in out and "[cot/seed1] | step 3/3" in out
    for rung, seed in [("v1", 0), ("cot", 0), ("v1", 1)]:
        assert ladder.is_done(ladder.run_dir(root, rung, seed))
    assert not ladder.is_done(ladder.run_dir(root, "cot", 1))
    with open(os.path.join(ladder.run_dir(root, "cot", 0), ladder.DONE_FILE)) as f:
        assert set(json.load(f)) == {"train", "evaluate", "evaluate_teacher", "total"}

    fail["run"] = None  # rerun: only the unfinished run trains
    ladder.run_ladder(str(base), root, ["v1", "cot"], 2, **kw)
    out = capsys.readouterr().out
    assert "3/4 runs already done" in out and "[v1/seed0]" not in out
    assert "ladder: 4/4 runs done" in out and "ETA 0:00" in out
    ladder.write_table(root, ["v1", "cot"], 2, **{k: kw[k] for k in kw if k != "order"})
    summary = json.loads((tmp_path / "root" / "ladder.json").read_text())
    cot_t = summary["rows"][2]
    assert cot_t["name"] == "cot (T)" and cot_t["stats"]["rel_hr@10"]["n"] == 2
    assert summary["per_seed"]["v1"]["seed1"]["rel_hr@10"] == pytest.approx(0.35)


def test_archive_outlives_the_root_and_retrains_a_restored_parent(tmp_path, monkeypatch, capsys):
    base, archive = _base(tmp_path), str(tmp_path / "archive")
    monkeypatch.setattr(ladder, "train_command", lambda preset, rung, seed, run, ov, root=None,
                        branch=None: [
        sys.executable, "-c", _TRAIN, run, "0"])
    monkeypatch.setattr(ladder, "evaluate_command", lambda run, n, teacher=False: [
        sys.executable, "-c", _EVAL, run, ""])
    kw = dict(order="rung", preset="small", teacher_rungs=[], max_events=10, overrides=[],
              archive=archive)
    ladder.run_ladder(str(base), str(tmp_path / "machine1"), ["v1"], 2, **kw)
    for s in (0, 1):
        archived = ladder.run_dir(archive, "v1", s)
        assert sorted(os.listdir(archived)) == ["LADDER_DONE", "metrics.json",
                                                "train_config.json"]
        assert json.loads(open(os.path.join(archived, "metrics.json")).read())["train/steps"] == 3
        assert not os.path.exists(os.path.join(archived, "checkpoints"))
    capsys.readouterr()

    # A fresh machine: the archived runs are done (numbers restored, nothing trained) ...
    root = str(tmp_path / "machine2")
    trained = []
    monkeypatch.setattr(ladder, "train_command", lambda preset, rung, seed, run, ov, root=None,
                        branch=None: trained.append((rung, list(ov))) or [
                            sys.executable, "-c", _TRAIN, run, "0"])
    monkeypatch.setattr(ladder, "rl_rungs", lambda: {"dpo": ("configs/dpo.py:{preset}", "v1")})
    ladder.run_ladder(str(base), root, ["v1", "dpo"], 1, **kw)
    out = capsys.readouterr().out
    assert "restored 1 run(s)" in out and "v1/seed0" in out
    # ... but the RL child needs its parent's checkpoint: the parent trains again, first.
    assert out.index("[v1/seed0] step 3/3") < out.index("[dpo/seed0] step 3/3")
    assert "[v1/seed0] evaluated" not in out
    # The parent retrains as it was trained: its record has no data.mem_width, so 'fixed'.
    assert trained == [("v1", ["data.mem_width=fixed"]), ("dpo", [])]
    assert ladder.is_done(ladder.run_dir(archive, "dpo", 0))
    with open(os.path.join(ladder.run_dir(root, "dpo", 0), ladder.DONE_FILE)) as f:
        assert json.load(f)["train_parent"] > 0
    # The table can be written from the archive alone.
    ladder.write_table(archive, ["v1", "dpo"], 2, preset="small", teacher_rungs=[],
                       max_events=10, overrides=[])
    summary = json.loads(open(os.path.join(archive, "ladder.json")).read())
    assert summary["rows"][0]["stats"]["rel_hr@10"]["n"] == 2


# A train stand-in that checkpoints at train.stop_at when given one (else at train.steps = 3).
_TRAIN_TO = ("import json,os,sys; run,stop=sys.argv[1],int(sys.argv[2]); "
             "json.dump({'train': {'steps': 3}, 'data': {'mem_width': 'stage'}}, "
             "open(run+'/train_config.json','w')); "
             "os.makedirs(run+f'/checkpoints/{stop or 3}', exist_ok=True); print(f'step {stop or 3}/3')")


def test_a_branch_retrains_its_restored_source_only_to_the_branch_step(tmp_path, monkeypatch,
                                                                        capsys):
    base, archive, root = _base(tmp_path), tmp_path / "archive", str(tmp_path / "root")
    _fake_run(archive, "sd", 0, _m(0.5))  # done on another machine: numbers, no checkpoint
    (archive / "sd" / "seed0" / "train_config.json").write_text(
        json.dumps({"train": {"steps": 3}, "data": {}}))
    trained = []

    def train_command(preset, rung, seed, run, ov, root=None, branch=None):
        trained.append((rung, list(ov)))
        stop = [o.split("=")[1] for o in ov if o.startswith("train.stop_at=")]
        return [sys.executable, "-c", _TRAIN_TO, run, stop[0] if stop else "0"]

    monkeypatch.setattr(ladder, "train_command", train_command)
    monkeypatch.setattr(ladder, "evaluate_command", lambda run, n, teacher=False: [
        sys.executable, "-c", _EVAL, run, ""])
    ladder.run_ladder(str(base), root, ["sd", "rdrop"], 1, order="seed", preset="small",
                      teacher_rungs=[], max_events=10, overrides=[], archive=str(archive),
                      branch=("sd", 2))
    # sd trains to the branch step only, fed as its record says (no key: 'fixed' batches).
    assert trained == [("sd", ["data.mem_width=fixed", "train.stop_at=2"]), ("rdrop", [])]
    assert "[sd/seed0] step 2/3" in capsys.readouterr().out
    sd = ladder.run_dir(root, "sd", 0)
    assert ladder.checkpoint_step(sd) == 2
    # A child that needs sd's last step (an RL rung, an A/B) resumes it, keeping its own record.
    trained.clear()
    assert ladder.ensure_checkpoint(str(base), root, "sd", 0, preset="small", overrides=[]) > 0
    assert trained == [("sd", ["data.mem_width=stage"])] and ladder.checkpoint_step(sd) == 3
    assert "its last checkpoint at step 2: training it again" in capsys.readouterr().out
    assert ladder.ensure_checkpoint(str(base), root, "sd", 0, preset="small", overrides=[],
                                    until=2) == 0.0
    assert len(trained) == 1


_AB = ("import os,sys; d=sys.argv[1]+'/eval_events'; os.makedirs(d, exist_ok=True); "
       "open(d+'/ab.npz','wb').write(b'x'); print('ab done')")


def test_a_done_run_without_the_ab_gets_it_when_the_ladder_asks_for_one(tmp_path, monkeypatch,
                                                                       capsys):
    base, archive, root = _base(tmp_path), str(tmp_path / "archive"), str(tmp_path / "root")
    monkeypatch.setattr(ladder, "train_command", lambda preset, rung, seed, run, ov, root=None,
                        branch=None: [
        sys.executable, "-c", _TRAIN, run, "0"])
    monkeypatch.setattr(ladder, "evaluate_command", lambda run, n, teacher=False: [
        sys.executable, "-c", _EVAL, run, ""])
    monkeypatch.setattr(ladder, "ab_command", lambda run, n, perturb: [
        sys.executable, "-c", _AB, run])
    kw = dict(order="rung", preset="small", teacher_rungs=[], max_events=10, overrides=[],
              archive=archive)
    ladder.run_ladder(str(base), root, ["v1"], 1, **kw)
    run = ladder.run_dir(root, "v1", 0)
    assert not ladder.has_ab(run)
    capsys.readouterr()
    ladder.run_ladder(str(base), root, ["v1"], 1, ab_events=50, **kw)
    out = capsys.readouterr().out
    assert "v1/seed0 is done without the A/B: running it" in out and "[v1/seed0] ab done" in out
    assert "step 3/3" not in out  # its checkpoint is there: nothing trains again
    assert ladder.has_ab(run) and ladder.has_ab(ladder.run_dir(archive, "v1", 0))
    with open(os.path.join(ladder.run_dir(archive, "v1", 0), ladder.DONE_FILE)) as f:
        phases = json.load(f)
    assert set(phases) == {"train", "evaluate", "train_for_ab", "online_ab", "total"}
    assert phases["total"] == pytest.approx(sum(v for k, v in phases.items() if k != "total"))
    ladder.run_ladder(str(base), root, ["v1"], 1, ab_events=50, **kw)
    assert "without the A/B" not in capsys.readouterr().out  # once


def test_an_archive_of_another_model_is_refused(tmp_path):
    run = tmp_path / "v1" / "seed0"
    run.mkdir(parents=True)
    scratch = {"encoder": "scratch", "d_model": 96, "enc_layers": 2, "dec_layers": 2}
    (run / "train_config.json").write_text(json.dumps({"preset": "small", "model": scratch}))
    ladder.check_archived_model(str(run), "small_scratch")
    with pytest.raises(app.UsageError, match="another model than --preset=small.*small_scratch"):
        ladder.check_archived_model(str(run), "small")


def test_paired_deltas_on_a_fake_root_and_the_archive_keeps_them(tmp_path):
    import numpy as np

    from onesearch_jax import workdir as wd

    ids, tail = np.arange(4), np.array([True, False, False, False])
    _fake_run(tmp_path, "v1", 0, _m(0.5))
    _fake_run(tmp_path, "cot", 0, _m(1.0))
    _fake_run(tmp_path, "sd", 0, _m(1.0), done=False)  # unfinished: no paired row
    for rung, rel in (("v1", [0.0, 0.0, 1.0, 1.0]), ("cot", [1.0, 1.0, 1.0, 1.0]),
                      ("sd", [1.0, 1.0, 1.0, 1.0])):
        wd.save_eval_events(ladder.run_dir(str(tmp_path), rung, 0), "test", ids,
                            {"rel_hr@10": np.array(rel)}, {"tail": tail})
    ladder.write_table(str(tmp_path), ["v1", "cot", "sd"], 1, preset="small",
                       teacher_rungs=[], max_events=4, overrides=[])
    by_rung = json.loads((tmp_path / "ladder.json").read_text())["by_rung"]
    cot = by_rung["cot"]
    assert cot["seeds"] == 1 and cot["metrics"]["rel_hr@10"] == 1.0
    assert cot["paired_vs_parent"]["rel_hr@10"][0] == 0.5  # cot adds to v1: (1+1+0+0) / 4
    assert cot["paired_vs_parent"]["rel_hr@10/tail"] == [1.0, 1.0, 1.0]
    assert cot["paired_vs_v1"] == cot["paired_vs_parent"]
    assert by_rung["v1"]["paired_vs_parent"] == {}
    assert by_rung["sd"]["seeds"] == 0 and by_rung["sd"]["paired_vs_parent"] == {}
    md = (tmp_path / "ladder.md").read_text()
    assert "Paired differences, each rung minus the rung it adds to" in md
    assert "| cot | v1 | 1 | +0.5000 [" in md and "+1.0000 [+1.0000, +1.0000]*" in md
    assert ladder.rung_parent("sd") == "cot" and ladder.rung_parent("dpo") == "sd"
    # TPMA is compared with GRPO, a TPMA variant with TPMA, when those are in the table; else
    # with the run they start from.
    assert ladder.rung_parent("tpma") == "grpo" and ladder.rung_parent("tpma_flat") == "tpma"
    assert ladder.rung_parent("tpma", ["sd", "dpo", "tpma"]) == "dpo"
    assert ladder.rung_parent("tpma_no_gate", ["dpo", "tpma_no_gate"]) == "dpo"
    archived = tmp_path / "archive" / "cot" / "seed0"
    ladder.archive_run(ladder.run_dir(str(tmp_path), "cot", 0), str(archived))
    assert (archived / "eval_events" / "test.npz").exists()


def test_online_ab_pairs_over_the_same_searches_and_headroom_shares(tmp_path):
    import numpy as np

    from onesearch_jax import workdir as wd

    ids, tail = np.arange(4), np.array([True, True, False, False])
    oracle = {"ab_oracle/ctr_lift": 0.4, "ab_oracle/orders_lift": 0.0}
    _fake_run(tmp_path, "v1", 0, {**_m(0.5), **oracle, "ab/ctr_lift": 0.1,
                                  "ab/orders_lift": 0.2})
    _fake_run(tmp_path, "cot", 0, {**_m(0.5), **oracle, "ab/ctr_lift": 0.2})
    for rung, lift in (("v1", [0.0, 0.2, 0.1, 0.1]), ("cot", [0.4, 0.4, 0.0, 0.0])):
        wd.save_eval_events(ladder.run_dir(str(tmp_path), rung, 0), wd.AB_EVENTS_TAG, ids,
                            {"ab/ctr_lift": np.array(lift)}, {"tail": tail})
    ladder.write_table(str(tmp_path), ["v1", "cot"], 1, preset="small", teacher_rungs=[],
                       max_events=4, overrides=[])
    summary = json.loads((tmp_path / "ladder.json").read_text())
    cot = summary["by_rung"]["cot"]
    assert cot["ab_paired_vs_v1"]["ab/ctr_lift"][0] == pytest.approx(0.1)  # (.4+.2-.1-.1) / 4
    assert cot["ab_paired_vs_v1"]["ab/ctr_lift/tail"][0] == pytest.approx(0.3)
    # The lift as a share of the oracle's: 0.2 / 0.4; no share where the oracle's lift is 0.
    assert summary["per_seed"]["cot"]["seed0"]["ab/ctr_headroom"] == pytest.approx(0.5)
    assert summary["per_seed"]["v1"]["seed0"]["ab/ctr_headroom"] == pytest.approx(0.25)
    assert "ab/orders_headroom" not in summary["per_seed"]["v1"]["seed0"]
    md = (tmp_path / "ladder.md").read_text()
    assert "Online A/B, paired: lift over the legacy engine, each rung minus V1" in md
    assert "| cot | v1 | 1 | +0.1000 [" in md
    archived = tmp_path / "archive" / "cot" / "seed0"
    ladder.archive_run(ladder.run_dir(str(tmp_path), "cot", 0), str(archived))
    assert (archived / "eval_events" / "ab.npz").exists()
