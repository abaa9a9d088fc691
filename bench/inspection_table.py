"""The inspection benchmark's rows as a Markdown table: printed by bench/inspection.py after a run,
and written into docs/results.md from bench/results/inspection.json by docs/tables.py."""


def table(rows: dict[str, dict]) -> list[str]:
    """One line per row ("set tail"): image ROC AUC per defect kind and their mean, pixel ROC AUC,
    AUPRO, false alarms on test/good with their 95 % interval, whether the target lies in it, the
    blank and saturated frames' ROC AUC, training seconds; rows of protocol 1 lack what it did not
    measure."""
    kinds = sorted({kind for row in rows.values() for kind in row["kinds"]})
    columns = [
        *kinds,
        "mean",
        "pixel AUC",
        "AUPRO",
        "false alarms (95 %)",
        "holds",
        "blank",
        "saturated",
        "train s",
    ]
    lines = [
        "| set, side×channels, recipe | " + " | ".join(columns) + " |",
        "| --- " * (len(columns) + 1) + "|",
    ]
    for name, row in rows.items():
        cells = [f"{row['kinds'][kind]:.3f}" if kind in row["kinds"] else "" for kind in kinds]
        cells += [
            f"{row['mean_kinds']:.3f}",
            f"{row['pixel_roc_auc']:.3f}",
            f"{row['aupro']:.3f}",
            _false_alarms(row),
            {True: "yes", False: "**no**"}.get(row.get("calibration_holds"), ""),
            *(
                f"{row[key]:.3f}" if row.get(key) is not None else ""
                for key in ("auc_blank", "auc_saturate")
            ),
            f"{row['train_seconds']:.0f}"
            + (f" ({row['epochs']} epochs)" if "epochs" in row else "")
            + (f" ({row['steps']} steps of {row['batch_size']})" if "steps" in row else ""),
        ]
        lines.append(
            f"| {name}{' (defaults)' if row.get('default') else ''} | " + " | ".join(cells) + " |"
        )
    return lines


def _false_alarms(row: dict) -> str:
    # a peer's row: its threshold is not calibrated to a false-alarm target
    if "fp_rate" not in row:
        return ""
    if row.get("fp_rate_low") is None:
        return f"{row['fp_rate']:.1%}"
    return f"{row['fp_rate']:.1%} ({row['fp_rate_low']:.1%}–{row['fp_rate_high']:.1%})"


DEFECT_COLUMNS = {
    "defaults, σ 2": "segmenter-sigma2",
    "σ 1": "segmenter-sigma1",
    "σ chosen (defaults)": "segmenter",
    "masks": "defects-masks",
    "procedural": "defects-procedural",
    "procedural σ 1": "defects-procedural-sigma1",
    "textures": "defects-textures",
    "textures σ 1": "defects-textures-sigma1",
}


def defects_table(rows: dict[str, dict], sets: list[str]) -> list[str]:
    """Per set, the segmenter's synthetic defects and the map's blur side by side: mean image ROC
    AUC (scratch's), pixel ROC AUC, AUPRO; "—" where a row was not measured."""
    lines = [
        "| set | " + " | ".join(DEFECT_COLUMNS) + " |",
        "| --- " * (len(DEFECT_COLUMNS) + 1) + "|",
    ]
    for name in sets:
        shape = "64x3" if name.endswith("-hue") else "64x1"
        cells = []
        for tail in DEFECT_COLUMNS.values():
            row = rows.get(f"{name} {shape}-{tail}")
            cells.append(
                "—"
                if row is None
                else f"{row['mean_kinds']:.3f} ({row['kinds']['scratch']:.3f}), "
                f"{row['pixel_roc_auc']:.3f}, {row['aupro']:.3f}"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines
