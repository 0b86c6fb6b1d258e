"""mskseg: musculoskeletal image segmentation workflow library.

All logic of the Snakemake workflow lives here; ``workflow_scripts/`` only adapt a
rule's inputs and outputs to these functions.
"""

__version__ = "0.1.0"
