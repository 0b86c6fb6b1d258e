"""Input functions of the prediction rules: trained models' predictions and perturbed stand-ins."""

from __future__ import annotations

from typing import Any

from mskseg.workflow.checkpoints import CheckpointTables
from mskseg.workflow.config import canonical
from mskseg.workflow.paths import entity_path, model_path
from mskseg.workflow.plan import Plan
from mskseg.workflow.settings import perturb_settings, postprocess_settings


class PredictionInputs:
    """``predict_subject`` and ``perturb_prediction``; the file every method's prediction is read from."""

    def __init__(self, plan: Plan, tables: CheckpointTables) -> None:
        self.plan = plan
        self.checkpoints = tables

    def path(self, wildcards: Any) -> str:
        """A method's prediction of a subject: made by the workflow (perturbed, trained) or a user's file (files)."""
        spec = self.plan[wildcards.dataset].methods[wildcards.method]
        if spec["kind"] == "files":
            return spec["path"].format(subject=wildcards.subject)
        return entity_path("predictions", wildcards.dataset, "pred.nii.gz", subject=wildcards.subject,
                           method=wildcards.method)

    def perturb_settings(self, wildcards: Any) -> dict[str, Any]:
        """:class:`mskseg.synthetic.perturb.PerturbSettings` keyword arguments of ``{method}`` (canonical)."""
        return canonical(perturb_settings(self.plan[wildcards.dataset].config, wildcards.method))

    def model_inputs(self, wildcards: Any) -> dict[str, Any]:
        """The subject's preprocessed image and the model(s) of the fold that tests it (and its fusion weights)."""
        spec = self.plan[wildcards.dataset].trained[wildcards.method]
        fold = self.checkpoints.test_fold(wildcards.dataset, wildcards.subject)
        inputs: dict[str, Any] = {
            "image": entity_path("preprocess", wildcards.dataset, "image.nii.gz", subject=wildcards.subject)}
        for key, suffix in (("models", "model.pt"), ("infos", "model.json")):
            inputs[key] = [self.plan[wildcards.dataset].view_model(suffix, method=wildcards.method, fold=fold, view=v)
                           for v in spec.views]
        if spec.view == "three_plane":
            inputs["fusion"] = model_path(wildcards.dataset, "fusion.json", method=wildcards.method, fold=fold)
        return inputs

    def inference_settings(self, wildcards: Any) -> dict[str, Any]:
        """What a prediction depends on besides the models: the method's inference block, threads, labels and
        the dataset's post-processing steps when the method opts in (None otherwise)."""
        spec = self.plan[wildcards.dataset].trained[wildcards.method]
        dataset = self.plan[wildcards.dataset]
        return canonical({"inference": spec.inference.to_dict(), "threads": spec.threads, "labels": dataset.labels,
                          "postprocess": postprocess_settings(dataset.config) if spec.postprocess else None})


__all__ = ["PredictionInputs"]
