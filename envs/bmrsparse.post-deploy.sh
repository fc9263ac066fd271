#!/usr/bin/env bash
# Run by Snakemake inside the new conda environment, from the workflow's working directory (the project root).
set -euo pipefail
python -m pip install --no-deps -e .
