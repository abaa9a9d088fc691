"""Stage tsne: a 2-D openTSNE map of the validation latents, its figure and its quality."""

import numpy as np
import pandas as pd

from aepipe.atomic import write_csv, write_json
from aepipe.data.dataset import load_classes
from aepipe.figures.plots import save, tsne_map
from aepipe.latent.tsne import knn_accuracy, tsne
from aepipe.params import fit_validation_set, load_params
from aepipe.run_guard import run_guarded

KNN_K = 10


def main() -> None:
    params = load_params("params.yaml")
    saved = np.load("data/latents.npz")
    latents, labels = saved["latents"], saved["labels"]
    params = fit_validation_set(params, len(labels))
    classes = load_classes("data/raw")
    result = tsne(latents, **params.tsne.model_dump(), seed=params.seed)
    # Without labels (a folder without class subfolders) there is no accuracy to measure: null, not
    # a guess.
    accuracy_2d = knn_accuracy(result.embedding, labels, KNN_K) if classes.labelled else None
    write_csv(
        "data/tsne.csv",
        pd.DataFrame({"x": result.embedding[:, 0], "y": result.embedding[:, 1], "label": labels}),
    )
    write_json("data/metrics/tsne.json", {"tsne_knn10": accuracy_2d})
    write_json(
        "reports/tsne.json",
        {
            "kl_divergence": result.kl_divergence,
            "seconds": round(result.seconds, 2),
            "knn_accuracy_2d": accuracy_2d,
            "knn_accuracy_latent": knn_accuracy(latents, labels, KNN_K)
            if classes.labelled
            else None,
            "knn_k": KNN_K,
            "points": len(labels),
            **(
                {}
                if classes.labelled
                else {"knn_accuracy": "not measured: the images have no classes"}
            ),
        },
    )
    save(
        tsne_map(result.embedding, labels, accuracy_2d, classes.names, classes.noun),
        "plots/tsne.png",
    )


if __name__ == "__main__":
    run_guarded(main)
