"""BENCHMARKS.md and the machine-readable summary, generated from the results files `list_core.bench` writes.

Tables never pool runs across machines; a run with overridden settings is its own row (`list (x=y)`); of two runs
of the same seed, the later file's counts (`latest_runs`).
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any

from .methods import REGISTRY


def method_order() -> tuple[str, ...]:
    """Table order: the baselines, then the fine-tuning methods, then LiST, then the external peers."""
    order = ("zero-shot", "linear-probe", "self-train-probe", "prompt-prior-probe", "setfit", "setfit-templated",
             "classic", "prompt", "list")  # fmt: skip
    return order + tuple(m for m in REGISTRY if m not in order)


def summarise(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and std of accuracy (in %) and the costs, per (set, method)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["set"], r["method"]), []).append(r)
    rows = []
    for (s, m), rs in groups.items():
        acc = [100 * r["accuracy"] for r in rs]
        rows.append(
            {
                "set": s,
                "method": m,
                "machine": ", ".join(sorted({machine_name(r.get("machine")) for r in rs})),
                "n": len(rs),
                "acc_mean": statistics.mean(acc),
                "acc_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
                "seconds": statistics.mean(r["seconds"] for r in rs),
                "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
                "trainable_params": rs[0].get("trainable_params"),
                "adapter_bytes": rs[0].get("adapter_bytes"),
            }
        )
    return rows


def _order(method: str) -> tuple[int, str]:
    base = method.split(" (")[0].split(" [")[0]
    order = method_order()
    return (order.index(base) if base in order else 99, method)


def table(rows: list[dict[str, Any]]) -> str:
    """A markdown table of `summarise` rows, plus the per-method average over sets."""
    lines = [
        "| set | method | seeds | accuracy % (mean ± std) | wall s | peak RSS MB | trainable params | adapter KB | machine |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["set"], _order(r["method"]))):
        tp = f"{r['trainable_params']:,}" if r["trainable_params"] else "-"
        kb = f"{r['adapter_bytes'] / 1024:,.0f}" if r["adapter_bytes"] else "-"
        lines.append(
            f"| {r['set']} | {r['method']} | {r['n']} | {r['acc_mean']:.1f} ± {r['acc_std']:.1f} | "
            f"{r['seconds']:.0f} | {r['peak_rss_mb']:.0f} | {tp} | {kb} | {r.get('machine', '?')} |"
        )
    sets = sorted({r["set"] for r in rows})
    methods = sorted({r["method"] for r in rows}, key=_order)
    three = [s for s in ("bbc", "mr", "subj") if s in sets]  # the sets the prompt can help (rte: no entailment)
    extra = f" | mean of {', '.join(three)}" if len(three) > 1 else ""
    lines += [
        "",
        "| method | " + " | ".join(sets) + f" | average{extra} |",
        "|---|" + "---|" * (len(sets) + 1 + bool(extra)),
    ]
    for m in methods:
        accs = {r["set"]: r["acc_mean"] for r in rows if r["method"] == m}
        avg = f"{statistics.mean(accs.values()):.1f}" if len(accs) == len(sets) else "-"
        cells = " | ".join(f"{accs[s]:.1f}" if s in accs else "-" for s in sets)
        part = (
            (f" | {statistics.mean(accs[s] for s in three):.1f}" if all(s in accs for s in three) else " | -")
            if extra
            else ""
        )
        lines.append(f"| {m} | {cells} | {avg}{part} |")
    return "\n".join(lines)


def summary(files: list[dict[str, Any]]) -> dict[str, Any]:
    """`{"K": {"set": {"method": {"mean": %, "std": %, "n": seeds}}}}` from results files. A method run with
    overridden settings is its own entry (`list (x=y)`), so `list` is the unmodified preset; runs from several
    machines are refused (a table compares methods on one machine)."""
    results = []
    for f in files:
        results += f["results"] if "merged" in f["args"] else tagged_runs(f)
    results = latest_runs(results)
    machines = {machine_name(r.get("machine")) for r in results}
    if len(machines) > 1:
        raise ValueError(f"results from several machines ({sorted(machines)}): summarise each machine's files apart")
    groups: dict[tuple[str, str, str], list[float]] = {}
    for r in results:
        groups.setdefault((str(r["k"]), r["set"], r["method"]), []).append(100 * r["accuracy"])
    out: dict[str, Any] = {}
    for (k, s, m), accs in sorted(groups.items()):
        out.setdefault(k, {}).setdefault(s, {})[m] = {
            "mean": round(statistics.mean(accs), 2),
            "std": round(statistics.stdev(accs), 2) if len(accs) > 1 else 0.0,
            "n": len(accs),
        }
    return out


def merge(paths: list[str], commands: list[str], tags: list[str], as_preset: str | None = None) -> dict[str, Any]:
    """One results file from many (e.g. one process per set and seed): each result keeps its own method tag
    (its file's `--set` overrides, plus TEXT from every `--tag REGEX=TEXT` whose REGEX matches the file's path)
    and machine; `commands` records what produced the files. With `as_preset`, a run whose recorded config is that
    preset's (same seed) to the last field is that preset's run: its `--set` tag is dropped (runs measured with
    overrides before a preset took them on count as the preset's, and only those)."""
    rules = [t.split("=", 1) for t in tags]
    results = []
    for p in paths:
        f = json.loads(Path(p).read_text())
        results += tagged_runs(f, [text for rx, text in rules if re.search(rx, p)], as_preset)
    return {"args": {"merged": paths, "commands": commands}, "machine": None, "results": results}


def _is_preset_run(r: dict[str, Any], name: str) -> bool:
    """Whether a result's recorded config is exactly preset `name`'s at the result's seed. A field the run did not
    record (a knob added after it) reads as that knob's default, which is what the run did."""
    from .config import TrainConfig, preset

    if "config" not in r:
        return False
    return {**TrainConfig().to_dict(), **r["config"]} == preset(name, seed=r["seed"]).to_dict()


def tagged_runs(f: dict[str, Any], extra: list[str] = (), as_preset: str | None = None) -> list[dict[str, Any]]:
    """A results file's runs, each with its machine and its method tagged by the file's `--set` overrides (none for
    a run whose config is exactly preset `as_preset`'s), the view a peer read (`_view_tags`) and `extra`. A merged
    file's runs carry their tags and machines already: a run of preset `as_preset` among them loses its tag."""
    out = []
    merged = "merged" in f["args"]
    for r in f["results"]:
        preset_run = bool(as_preset) and _is_preset_run(r, as_preset)
        method = r["method"].split(" (")[0] if preset_run else r["method"]  # a merged file's run carries its tag
        overrides = [] if merged or preset_run else f["args"].get("set") or []
        view = _view_tags(r, method, overrides)
        if view and " (" in method:  # a merged run's tag: the view joins it
            method = f"{method[:-1]}, {', '.join(view)})"
        else:
            overrides = [*overrides, *view]
        tag = ", ".join([*overrides, *extra])
        out.append({**r, "method": f"{method} ({tag})" if tag else method, "machine": r.get("machine", f["machine"])})
    return out


# the view a peer reads: named in its row unless it is the default (the last layer, classes as they come), so the
# runs of a preset that reads another view are never pooled with the peer's older rows under one name
VIEW_KNOBS = ("feature_layers", "class_balance")


def _view_tags(r: dict[str, Any], method: str, overrides: list[str]) -> list[str]:
    """`KEY=VALUE` for each of `VIEW_KNOBS` that a peer's run read at a value other than the default, unless its
    name or `overrides` already say it (`list` is named by its preset instead)."""
    from .config import TrainConfig

    base = method.split(" (")[0]
    if base == "list" or base not in REGISTRY or "config" not in r:
        return []
    said = {t.split("=", 1)[0] for t in overrides}
    if (named := re.search(r" \((.*)\)$", method)) is not None:
        said |= {t.split("=", 1)[0] for t in named.group(1).split(", ")}
    reads = {k.name for k in REGISTRY[base].knobs()}
    default = TrainConfig()
    tags = []
    for k in VIEW_KNOBS:
        value = r["config"].get(k, getattr(default, k))
        if k in reads and k not in said and value != getattr(default, k):
            tags.append(f"{k}={json.dumps(value) if isinstance(value, bool) else value}")
    return tags


def latest_runs(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One run per (K, set, method, seed, machine): a later file's run of the same seed replaces an earlier one
    (a re-measure after an engine change that moved only some runs), in the earlier one's place."""
    keep: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in results:
        keep[(r["k"], r["set"], r["method"], r["seed"], machine_name(r.get("machine")))] = r
    return list(keep.values())


def machine_name(m: dict[str, Any] | None) -> str:
    """Short name of a results file's machine for the tables: the GPU, else the CPU core count."""
    if not m:
        return "?"
    return m["gpu"].replace("NVIDIA ", "") if m.get("gpu") else f"{m.get('cores')} CPU cores"


def report(files: list[dict[str, Any]], paths: list[str] | None = None, note: str = "") -> str:
    """BENCHMARKS.md, generated from results files (never typed by hand)."""
    from .config import preset

    results = []
    for f in files:  # runs with overridden settings are their own rows
        results += f["results"] if "merged" in f["args"] else tagged_runs(f)
    results = latest_runs(results)
    lines = ["# Benchmarks", "", "Generated by `python -m list_core.bench --report " + " ".join(
        paths or [f["args"].get("out", "merged.json") for f in files]) + " ...` from the JSON the runs wrote.", ""]  # fmt: skip
    if note:
        lines += [note.strip(), ""]
    where: dict[str, set[str]] = {}
    for r in results:
        where.setdefault(r["method"], set()).add(machine_name(r.get("machine")))
    # a method run on several machines gets a row per machine (runs are never pooled across machines)
    results = [
        {**r, "method": f"{r['method']} [{machine_name(r.get('machine'))}]"} if len(where[r["method"]]) > 1 else r
        for r in results
    ]
    machines = {json.dumps(r["machine"], sort_keys=True) for r in results if r.get("machine")}
    lines += ["Machines (the `machine` column of the tables):", ""]
    for m in map(json.loads, sorted(machines)):
        lines.append(f"- {machine_name(m)}: {m.get('cores')} CPU cores ({m.get('cpu')}), {m.get('memory_gb')} GB, "
                     f"GPU: {m.get('gpu') or 'none'}, torch {m.get('torch')}, Python {m.get('python')}")  # fmt: skip
    lines += ["", "Commands:", ""]
    for f in files:
        a = f["args"]
        if "merged" in a:
            lines += [f"    {c}" for c in a["commands"]]
            continue
        sets = " ".join(a["data"])
        extra = " ".join(f"--set {s}" for s in a.get("set", []))
        lines.append(f"    python -m list_core.bench --data {sets} --k {a['k']} --seeds {' '.join(map(str, a['seeds']))} "
                     f"--methods {a['methods']} --preset {a['preset']} {extra} --out {a['out']}".rstrip())  # fmt: skip
    presets = sorted({f["args"]["preset"] for f in files if "preset" in f["args"]})
    for p in presets:
        cfg = preset(p)
        passes = cfg.student_max_passes
        cap = f"; at most {passes:g} passes over a round's pseudo-labels" if passes else ""
        lines += ["", f"Preset `{p}`: teacher {cfg.teacher_epochs} epochs at lr {cfg.teacher_lr}, {cfg.rounds} rounds of "
                  f"{cfg.student_steps} student steps (KD warm-up {cfg.warmup_steps}, tau {cfg.tau}, selection {cfg.kd_selection}{cap}) "
                  f"at lr {cfg.student_lr}, batch {cfg.student_batch_size}, gold fine-tuning {cfg.finetune_epochs} epochs at lr "
                  f"{cfg.finetune_lr}, adapter bottleneck {cfg.adapter.bottleneck}, unlabeled pool capped at {cfg.unlabeled_limit} "
                  "per round."]  # fmt: skip
    for k in sorted({r["k"] for r in results}):
        for m in sorted({machine_name(r.get("machine")) for r in results}):
            sub = [r for r in results if r["k"] == k and machine_name(r.get("machine")) == m]
            if sub:
                lines += ["", f"## Accuracy (K={k}, test split, {m})", "", table(summarise(sub))]
    lst = [r for r in results if r.get("rounds")]
    if lst:
        lines += ["", "## LiST rounds: pseudo-label accuracy (pool labels read after the run, for analysis only)", "",
                  "| K | set | method | round | pseudo-label acc % | weight-correctness corr | flip rate | mean confidence |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        groups: dict[tuple[int, str, str, int], list[dict[str, Any]]] = {}
        for r in lst:
            for rd in r["rounds"]:
                groups.setdefault((r["k"], r["set"], r["method"], rd["round"]), []).append(rd)
        for (k, s, m, rd), xs in sorted(
            groups.items(), key=lambda kv: (kv[0][0], kv[0][1], _order(kv[0][2]), kv[0][3])
        ):
            corr = [x["weight_correctness_corr"] for x in xs if x["weight_correctness_corr"] is not None]
            lines.append(f"| {k} | {s} | {m} | {rd} | {100 * statistics.mean(x['pseudo_label_accuracy'] for x in xs):.1f} | "
                         f"{statistics.mean(corr) if corr else float('nan'):.3f} | {statistics.mean(x['flip_rate'] for x in xs):.3f} | "
                         f"{statistics.mean(x['mean_confidence'] for x in xs):.3f} |")  # fmt: skip
        lines += ["", "Time per stage (seconds, mean over seeds):", "",
                  "| K | set | method | probe | teacher | pseudo-label | student | gold fine-tune |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        by_run: dict[tuple[int, str, str], list[dict[str, float]]] = {}
        for r in lst:
            by_run.setdefault((r["k"], r["set"], r["method"]), []).append(r["stage_seconds"])
        for (k, s, m), xs in sorted(by_run.items(), key=lambda kv: (kv[0][0], kv[0][1], _order(kv[0][2]))):
            cells = " | ".join(
                f"{statistics.mean(x.get(stage, 0) for x in xs):.0f}"
                for stage in ("probe", "teacher", "pseudo_label", "student", "finetune")
            )
            lines.append(f"| {k} | {s} | {m} | {cells} |")
    return "\n".join(lines) + "\n"
