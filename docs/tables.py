"""The tables of the committed default run in README.md, docs/reference.md and docs/results.md,
written from the files the publish stage gives git (metrics/, dvclive/metrics.json, results/) and
the inspection benchmark's (bench/results/inspection.json), so that they cannot drift from what
was measured.

    python docs/tables.py           # rewrite them (after committing a new default run)
    python docs/tables.py --check   # exit 1 naming each table that differs (a test runs this)

A table lives between `<!-- table: NAME -->` and `<!-- /table -->`; the text around it is the docs'.
"""

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "docs/reference.md", "docs/results.md")
KIND_NAMES = {
    "gaussian_noise": "Gaussian noise",
    "rotation": "rotated",
    "patch": "white patch",
    "invert": "inverted",
    "blank": "blank (all black)",
    "saturate": "saturated (all white)",
}


def load(root: Path, path: str) -> dict:
    return json.loads((root / path).read_text())


def number(value) -> str:
    """Four significant digits, as `dvc metrics show` would round them; integers as they are."""
    if value is None or isinstance(value, (int, str)):
        return "null" if value is None else str(value)
    return f"{value:.4g}"


def metrics_files(root: Path) -> list[str]:
    """The metrics files, as dvc.yaml's publish stage lists them (the one list of them)."""
    import yaml

    return [
        next(iter(entry))
        for entry in yaml.safe_load((root / "dvc.yaml").read_text())["stages"]["publish"]["metrics"]
    ]


def headline_metrics(root: Path) -> list[str]:
    """Every number `dvc metrics show` shows, by file."""
    rows = ["| file | metric | default run |", "| --- | --- | --- |"]
    for path in metrics_files(root):
        rows += [
            f"| `{path}` | `{name}` | {number(value)} |" for name, value in load(root, path).items()
        ]
    return rows


def default_run(root: Path) -> list[str]:
    train, threshold, tsne = (
        load(root, "results/train.json"),
        load(root, "results/threshold.json"),
        load(root, "results/tsne.json"),
    )
    denoise, judge = load(root, "results/denoise.json"), load(root, "results/judge.json")
    noisy = {
        key.removeprefix("noise_std_").replace("_", "."): value
        for key, value in denoise.items()
        if key.startswith("noise_std_")
    }
    rows = [
        (
            "final validation MSE, training MSE",
            f"{number(train['final_val_loss'])}, {number(train['final_train_loss'])}",
        ),
        (
            "epochs, training time",
            f"{train['epochs']}, {train['train_seconds']:.0f} s "
            f"({train['images_per_second']:,.0f} images/s, {train['device']})",
        ),
        (
            f"threshold per batch (val mean + {number(threshold['per_batch']['k'])}·std)",
            number(threshold["per_batch"]["threshold"]),
        ),
        (
            f"threshold per image ({threshold['per_image']['rule']} of the "
            f"`{threshold['per_image']['score']}` score)",
            number(threshold["per_image"]["threshold"]),
        ),
        (
            "t-SNE: 10-NN accuracy in 2-D (latent space), KL",
            f"{tsne['knn_accuracy_2d']:.2%} ({tsne['knn_accuracy_latent']:.2%}), "
            f"{tsne['kl_divergence']:.2f}",
        ),
        (
            "denoising, mean PSNR noisy → reconstructed",
            "; ".join(
                f"σ {sigma}: {value['psnr_noisy_db']:.1f} → {value['psnr_reconstructed_db']:.1f} dB"
                for sigma, value in noisy.items()
            ),
        ),
        ("the judge's test accuracy", f"{judge['accuracy_per_epoch'][-1]:.2%}"),
    ]
    return [
        "| | committed default run |",
        "| --- | --- |",
        *(f"| {name} | {value} |" for name, value in rows),
    ]


def anomaly_detection(root: Path) -> list[str]:
    anomaly = load(root, "results/anomaly.json")
    rows = [
        f"`anomaly.score: {anomaly['score']}`, threshold {number(anomaly['threshold'])}, "
        f"{anomaly['normal_test_images']:,} normal test images, false-positive rate "
        f"{anomaly['false_positive_rate']:.1%}:",
        "",
        "| anomalies | count | ROC AUC | average precision | precision | recall | F1 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for kind, name in KIND_NAMES.items():
        if kind in anomaly:
            result = anomaly[kind]
            rows.append(
                f"| {name} | {result['anomalies']:,} | "
                + " | ".join(
                    f"{result[key]:.3f}"
                    for key in ("roc_auc", "average_precision", "precision", "recall", "f1")
                )
                + " |"
            )
    return rows


def summary(root: Path) -> list[str]:
    """The README's few numbers of the default run."""
    train, anomaly = load(root, "results/train.json"), load(root, "results/anomaly.json")
    calibration = anomaly["calibration"]
    return [
        "| validation MSE | per-image threshold | false alarms (target, 95 % interval) | ROC "
        "AUC: rotated, white patch, blank |",
        "| --- | --- | --- | --- |",
        f"| {number(train['final_val_loss'])} | {number(anomaly['threshold'])} | "
        f"{calibration['rate']:.2%} ({calibration['target']:.0%}, "
        f"{calibration['interval'][0]:.2%}–{calibration['interval'][1]:.2%}) | "
        f"{anomaly['rotation']['roc_auc']:.3f}, {anomaly['patch']['roc_auc']:.3f}, "
        f"{anomaly['blank']['roc_auc']:.3f} |",
    ]


def inspection(root: Path, protocol: int | None = None) -> list[str]:
    """The inspection benchmark's rows of one protocol (bench/results/inspection.json), the latest
    by default."""
    sys.path.insert(0, str(root / "bench"))
    from inspection_table import table

    results = load(root, "bench/results/inspection.json")
    protocol = protocol or max(int(number) for number in results["protocols"])
    return table(
        {name: row for name, row in results["rows"].items() if row.get("protocol", 1) == protocol}
    )


def parameters(root: Path) -> list[str]:
    """Every key of params.yaml: its committed value and what it does, from the schema's
    descriptions (src/aepipe/params.py, the one place a param is explained)."""
    import yaml

    sys.path.insert(0, str(root / "src"))  # the schema of the tree the tables are checked in
    from aepipe.params import Params

    values = yaml.safe_load((root / "params.yaml").read_text())
    return [
        "| key | committed value | what it does |",
        "| --- | --- | --- |",
        *(
            f"| `{key}` | {value} | {description} |"
            for key, value, description in _documented(Params, values, "")
        ),
    ]


def _documented(model, values: dict, prefix: str):
    """(dotted key, its value shown, its description) of every leaf field of a params model, in
    order."""
    from pydantic import BaseModel

    for name, field in model.model_fields.items():
        key, kind = field.alias or name, field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from _documented(kind, values[key], f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", _shown(values[key]), field.description.replace("|", "\\|")


def _shown(value) -> str:
    """As YAML writes it: null, true, false; a list of URLs one per line."""
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "<br>".join(value)
    return str(value)


def inspection_defects(root: Path) -> list[str]:
    """The segmenter's synthetic defects and the map's blur, per set
    (bench/results/inspection.json)."""
    sys.path.insert(0, str(root / "bench"))
    from inspection_table import defects_table

    return defects_table(
        load(root, "bench/results/inspection.json")["rows"],
        ["brick", "grass", "brick-hue", "gravel"],
    )


TABLES = {
    "summary": summary,
    "parameters": parameters,
    "headline_metrics": headline_metrics,
    "default_run": default_run,
    "anomaly_detection": anomaly_detection,
    "inspection": inspection,
    "inspection_protocol_1": lambda root: inspection(root, 1),
    "inspection_defects": inspection_defects,
}
BLOCK = re.compile(r"(<!-- table: (\w+) -->\n)(.*?)(<!-- /table -->)", re.DOTALL)


def rewritten(text: str, root: Path) -> str:
    return BLOCK.sub(
        lambda match: match[1] + "\n".join(TABLES[match[2]](root)) + "\n" + match[4], text
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a table differs"
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="the project (default: this one)")
    args = parser.parse_args()
    root = args.root
    stale = [
        doc for doc in DOCS if rewritten((root / doc).read_text(), root) != (root / doc).read_text()
    ]
    if args.check and stale:
        sys.exit(
            f"tables out of date with the committed results in {', '.join(stale)}: run python "
            "docs/tables.py"
        )
    for doc in stale:
        (root / doc).write_text(rewritten((root / doc).read_text(), root))
    print(f"rewrote the tables in {', '.join(stale)}" if stale else "every table is up to date")


if __name__ == "__main__":
    main()
