"""What only the Snakemake layer needs, unit-tested without Snakemake.

* :mod:`~mskseg.workflow.config` -- the scale overlay, schema validation and cross-field checks;
* :mod:`~mskseg.workflow.settings` -- each stage's settings of a dataset;
* :mod:`~mskseg.workflow.plan` -- the parse-time plan (datasets, manifests, shape models, methods);
* :mod:`~mskseg.workflow.checkpoints` -- what the checkpoint tables say (passed subjects, folds, test folds);
* :mod:`~mskseg.workflow.paths`, :mod:`~mskseg.workflow.batches`, :mod:`~mskseg.workflow.resources`,
  :mod:`~mskseg.workflow.logs` -- file names, batches of subjects, memory, the rules' logs;
* one module of input functions per rules file (data, qc, preprocess, shape, segmentation,
  predictions, evaluation) and :mod:`~mskseg.workflow.targets`;
* :mod:`~mskseg.workflow.load` -- :func:`~mskseg.workflow.load.load_workflow`, what ``rules/common.smk`` calls;
* :mod:`~mskseg.workflow.snakemake_compat` -- a work-around for a Snakemake performance bug.

Nothing is imported here, so a rule script that needs only the logs imports only them.
"""
