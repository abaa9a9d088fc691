"""The inspection benchmark's rows as a Markdown table: printed by bench/inspection.py after a run,
and written into docs/results.md from bench/results/inspection.json by docs/tables.py."""


def table(rows: dict[str, dict]) -> list[str]:
    """One line per row ("set tail"): image ROC AUC per defect kind and their mean, pixel ROC AUC, AUPRO,
    false alarms on test/good with their 95 % interval, whether the target lies in it, the blank and
    saturated frames' ROC AUC, training seconds; rows of protocol 1 lack what it did not measure."""
    kinds = sorted({kind for row in rows.values() for kind in row["kinds"]})
    columns = [*kinds, "mean", "pixel AUC", "AUPRO", "false alarms (95 %)", "holds", "blank", "saturated", "train s"]
    lines = ["| set, side×channels, recipe | " + " | ".join(columns) + " |", "| --- " * (len(columns) + 1) + "|"]
    for name, row in rows.items():
        cells = [f"{row['kinds'][kind]:.3f}" if kind in row["kinds"] else "" for kind in kinds]
        cells += [f"{row['mean_kinds']:.3f}", f"{row['pixel_roc_auc']:.3f}", f"{row['aupro']:.3f}", _false_alarms(row),
                  {True: "yes", False: "**no**"}.get(row.get("calibration_holds"), ""),
                  *(f"{row[key]:.3f}" if row.get(key) is not None else "" for key in ("auc_blank", "auc_saturate")),
                  f"{row['train_seconds']:.0f}"]
        lines.append(f"| {name}{' (defaults)' if row.get('default') else ''} | " + " | ".join(cells) + " |")
    return lines


def _false_alarms(row: dict) -> str:
    if row.get("fp_rate_low") is None:
        return f"{row['fp_rate']:.1%}"
    return f"{row['fp_rate']:.1%} ({row['fp_rate_low']:.1%}–{row['fp_rate_high']:.1%})"
