#!/usr/bin/env bash
# Run by Snakemake (--sdm conda) inside the new conda environment, as `bash <this file>`: installs this project
# from the workflow's own folder (the parent of envs/), not from whatever folder Snakemake runs in (--directory).
# The same script serves envs/bmrsparse.yaml and envs/bmrsparse-gpu.yaml (tests/tooling/test_envs.py checks they agree).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ ! -f "$root/pyproject.toml" || ! -d "$root/src/bmrsparse" ]]; then
    echo "post-deploy: $root is not the bmrsparse project (no pyproject.toml / src/bmrsparse);" \
        "run the workflow from a checkout of the project" >&2
    exit 1
fi
# --no-deps: the environment file already pins every dependency (generated from the lock, as the build back-end
# it also pins: --no-build-isolation builds with it instead of fetching setuptools and wheel).
python -m pip install --no-deps --no-build-isolation -e "$root"
