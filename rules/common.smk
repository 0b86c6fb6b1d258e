# The workflow's one call into the package: resolve the config, plan it, and give the rules their input
# functions (wf.<stage>.<function>, all in src/mskseg/workflow/, unit-tested there). No logic here.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))  # the workflow parses without `pip install`

from snakemake.dag import DAG
from snakemake.scheduling.job_scheduler import JobScheduler

from mskseg.workflow.load import load_workflow
from mskseg.workflow.paths import entity_path, log_path, model_path, out
from mskseg.workflow.shape_fitting import fitting_path
from mskseg.workflow.resources import (
    mem_from_input,
    one_volume_mem_mb,
    registration_mem_mb,
    selection_mem_mb,
    training_mem_mb,
)

# overrides: the user's --configfile/--config (datasets declared there replace the shipped ones);
# dag_class, scheduler_class: the work-arounds for Snakemake checking each batch group once per member and
# for its rate limiter's timers delaying the exit (snakemake_compat.py)
wf = load_workflow(
    config,
    checkpoints,
    overrides=workflow.config_settings.overwrite_config,
    shipped=["config.yaml", Path(workflow.basedir) / "config.yaml"],
    dag_class=DAG,
    scheduler_class=JobScheduler,
)


wildcard_constraints:
    **wf.plan.wildcard_constraints(),
