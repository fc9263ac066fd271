"""The paper grid's GPU estimate from the plan, with H100 step times (docs/gpu/2026-11-26-h100)."""
import sys, shutil, tempfile
from pathlib import Path
from bmrsparse.workflow.plan import estimate, format_plan, job_work, KINDS
from bmrsparse.workflow.plan.dag import dry_run
from bmrsparse.steptime import Timing

root = Path(sys.argv[1])
tmp = Path(tempfile.mkdtemp())
for p in ("Snakefile", "workflow", "config", "profiles", "envs"):
    (shutil.copytree if (root / p).is_dir() else shutil.copy2)(root / p, tmp / p)
run = dry_run(["--profile", "profiles/local", "--configfile", "config/paper.yaml", "--cores", "16", "--resources", "gpu=1"], tmp)
cfg = run.grid.config.as_dict()
# H100 bench, one seed, batch 128 (ms/step): MLP, LeNet-5 per kind; Mixer, ViT: Flat-MAP/Flat-FF/Tiered-FF
bench = {("mlp", "map"): .167, ("mlp", "flat"): .206, ("mlp", "tiered"): .248,
         ("lenet", "map"): .296, ("lenet", "flat"): .320, ("lenet", "tiered"): .371,
         ("mixer", "map"): 3.79, ("mixer", "flat"): 3.94, ("mixer", "tiered"): 3.94 * 1.16,
         ("vit", "map"): 3.91, ("vit", "flat"): 4.02, ("vit", "tiered"): 4.23}
# the paper-schedule MLP run on that H100: 20 000 steps + an evaluation of 100 samples x 10 000 images per epoch took
# ~24 s (metrics.csv), 4.1 s of it steps: the evaluation ~20 s = 2.0e-5 s per image-sample for the MLP; other
# networks scaled by their step time
eval_mlp = 20.0 / (100 * 10000)
timings = {}
jobs = run.jobs
needed = {w for j in jobs for w in job_work(j, cfg)}
for d, a, k in needed:
    ms = bench[(a, k)]
    timings[(d, a, k)] = Timing(init_s=3.0, compile_s=5.0, step_s=ms / 1e3, eval_compile_s=5.0,
                                eval_s=eval_mlp * bench[(a, "flat")] / bench[("mlp", "flat")])
est = estimate(jobs, cfg, timings, 10.0, run.cores, run.gpu_limit)
print(format_plan(jobs, est, cfg, timings, device="NVIDIA H100 (step times of 2026-11-26, not measured now)",
                  cores=run.cores, gpu_limit=run.gpu_limit, startup_s=10.0, cached=True, configfiles=run.configfiles))
