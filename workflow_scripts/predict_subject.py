"""Rule predict_subject: a test subject's label map by its fold's trained model(s)."""

import json
import time
from pathlib import Path

import _bootstrap  # noqa: F401

from mskseg.logs import setup_logging


def main(*, subject: str, image: Path, models: list, infos: list, settings: dict, prediction: Path, record: Path,
         fusion: Path | None = None, log: Path | None = None) -> None:
    logger = setup_logging(log, "predict_subject")
    from mskseg.io.atomic import write_text
    from mskseg.io.volumes import write_volume
    from mskseg.nn import device as dev
    from mskseg.nn.data import load_case
    from mskseg.nn.fusion import read_fusion_weights
    from mskseg.nn.recipe import load_trained, predict_case
    from mskseg.nn.runs import prediction_volume

    dev.set_threads(settings.get("threads"))
    device = dev.resolve_device(settings["device"])
    precision = dev.resolve_precision(device, settings["precision"])
    logger.info("device %s, precision %s", dev.describe(device), precision)
    values = list(dict(settings["labels"]).values())
    case, volume = load_case(subject, image, label_values=values)
    trained = [load_trained(m, i, device) for m, i in zip(models, infos)]
    weights = read_fusion_weights(fusion) if fusion else None
    start = time.perf_counter()
    probs = predict_case(trained, case, weights=weights, device=device, precision=precision,
                         batch_size=int(settings["batch_size"]))
    seconds = time.perf_counter() - start
    write_volume(prediction_volume(probs, volume, values), prediction)
    write_text(record, json.dumps({"subject": subject, "image": str(image), "models": [str(m) for m in models],
                                   "fusion_weights": weights, "device": dev.describe(device), "precision": precision,
                                   "seconds": round(seconds, 3)}, indent=2))
    logger.info("%s: predicted with %d model(s) in %.2f s -> %s", subject, len(trained), seconds, prediction)


if __name__ == "__main__":
    sm = snakemake  # noqa: F821
    main(subject=sm.wildcards.subject, image=Path(sm.input.image), models=list(sm.input.models),
         infos=list(sm.input.infos), settings=dict(sm.params.settings), prediction=Path(sm.output.prediction),
         record=Path(sm.output.record), fusion=Path(sm.input.fusion) if "fusion" in sm.input.keys() else None,
         log=sm.log[0])
