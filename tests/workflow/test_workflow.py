"""The Snakemake workflow: lint, the jobs planned for each profile, and the whole config/test.yaml run."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import copy_workflow

from bmrsparse.methods import METHODS as REGISTRY

ROOT = Path(__file__).resolve().parents[2]
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


def copy_project(dest: Path) -> Path:
    """Copy what the workflow needs (not results), so runs neither see nor touch the project's own results."""
    return copy_workflow(dest)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return copy_project(tmp_path_factory.mktemp("project"))


def snakemake(project: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=project, capture_output=True,
                            text=True, timeout=timeout)
    return result


def failure_report(project: Path, run: subprocess.CompletedProcess) -> str:
    """Snakemake's output and the logs of jobs that raised, for the assertion message."""
    logs = [f"--- {log.relative_to(project)}\n{log.read_text(errors='replace')[-3000:]}"
            for log in sorted((project / "logs").rglob("*.log")) if "Traceback" in log.read_text(errors="replace")]
    return "\n".join([(run.stdout + run.stderr)[-3000:], *logs])


def planned_jobs(project: Path, *args: str) -> dict[str, int]:
    """Jobs per rule of a dry run (the "Job stats" table)."""
    result = snakemake(project, "--dry-run", "--quiet", "rules", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout + result.stderr
    table = text[text.index("Job stats:"):]
    counts = {}
    for line in table.splitlines()[3:]:
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if not match or match.group(1) == "total":
            break
        counts[match.group(1)] = int(match.group(2))
    return counts


def expected_jobs(config: dict) -> dict[str, int]:
    """Jobs per rule that a config's grid needs (the workflow's design, written out independently)."""
    d, a, m, s = (len(config[k]) for k in ("datasets", "archs", "methods", "seeds"))
    methods, epochs = config["methods"], config["schedule"]["num_epochs"]
    runs = d * a * s
    # seeds trained together (vmap_seeds) share one job per stage; the other rules still run per seed
    stages = d * a * (1 if config.get("vmap_seeds") else s)
    # what each trained method declares (a listed method's reference method is trained too)
    trained = list(methods) + [REGISTRY[x].reference for x in methods
                               if REGISTRY[x].reference and REGISTRY[x].reference not in methods]
    info = [REGISTRY[x] for x in trained]
    # one warm-up per distinct learning rate of the methods that start from one (e.g. BMR-S&S's 1e-2 beside
    # Flat-FF's 5e-3), as the authors' code fits BMR-S&S's warm-up at its own rate
    rates = config["training"].get("learning_rate", {})
    # (and a method that warms up its own model, e.g. BMR over units with its scales, has a warm-up of its own)
    warmup_rates = {(i.warmup_method if i.warmup_method not in (None, "flat_ff") else "flat_ff",
                     rates.get(i.name, i.learning_rate)) for i in info if i.start == "warmup"}
    jobs = {
        "prepare_dataset": d,
        "train_warmup": stages * len(warmup_rates),
        "train_continue": stages * sum(i.start == "warmup" and not i.per_epoch for i in info),
        "train_scratch": stages * sum(i.start == "scratch" for i in info),
        "train_epoch": stages * epochs * sum(i.per_epoch for i in info),
        "collect_metrics": 1,
        "tables": 1,
        "time_steps": 1 if {"tiered_ff", "bmr_ss"} <= set(methods) else 0,  # claim 4's timing, taken alone
        "provenance": 1,
        # beyond the paper: the final Flat-FF posteriors pruned without retraining (sparsity.smk)
        "sparsity_curve": runs if "flat_ff" in methods else 0,
        "plot_sparsity_accuracy": 1 if "flat_ff" in methods else 0,
        "plot_performance": d,
        "plot_pruned_fraction": 1 if "bmr_ss" in methods else 0,
        "plot_posterior_cdf": 1 if "fashion_mnist" in config["datasets"] and {"mlp", "lenet"} & set(config["archs"]) else 0,
        "all": 1,
    }
    # beyond the paper: every structured method's compact MLPs and LeNet-5s exported, every network timed
    # (inference.smk)
    structured = [x for x in methods if REGISTRY[x].structured]
    timed = "flat_ff" in methods and structured and {"mlp", "lenet"} & set(config["archs"])
    jobs["compact_network"] = d * len({"mlp", "lenet"} & set(config["archs"])) * s * len(structured) if timed else 0
    jobs["inference"] = jobs["plot_speedup_accuracy"] = 1 if timed else 0
    jobs["plot_first_layer"] = jobs["plot_posterior_cdf"]
    return {rule: n for rule, n in jobs.items() if n}


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text())


def test_lint_finds_nothing(project):
    result = snakemake(project, "--lint")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Congratulations, your workflow is in a good condition!" in output
    assert "Lints for" not in output


def test_dry_run_paper_plans_the_full_grid(project):
    jobs = planned_jobs(project, "--configfile", "config/paper.yaml")
    assert jobs == expected_jobs(load("paper"))
    # 3 datasets x 4 architectures, five seeds trained together: per pair the shared Flat-FF warm-up and BMR over
    # units' own, Flat-FF continued, Flat-MAP and Tiered-FF from scratch; the per-epoch methods as 5 epoch jobs each
    assert jobs["prepare_dataset"] == 3
    assert jobs["train_warmup"] == 24 and jobs["train_continue"] == 12 and jobs["train_scratch"] == 24
    per_epoch = [x for x in load("paper")["methods"] if REGISTRY[x].per_epoch]  # BMR-S&S (and the baselines)
    assert "bmr_ss" in per_epoch and jobs["train_epoch"] == 60 * len(per_epoch)
    assert jobs["plot_performance"] == 3  # Fig. 1, S1, S2


@pytest.mark.parametrize("name", ["config", "test"])
def test_dry_run_profiles(project, name):
    jobs = planned_jobs(project, "--configfile", f"config/{name}.yaml")
    assert jobs == expected_jobs(load(name))


def test_subset_from_the_command_line(project):
    jobs = planned_jobs(project, "--configfile", "config/paper.yaml", "--config", "datasets=[cifar10]", "archs=[vit]")
    assert jobs == expected_jobs({**load("paper"), "datasets": ["cifar10"], "archs": ["vit"]})
    assert jobs["train_warmup"] == 2 and jobs["train_continue"] == 1 and jobs["train_scratch"] == 2


def test_figures_follow_the_grid(project):
    jobs = planned_jobs(project, "--config", "methods=[flat_map,tiered_ff]", "archs=[vit]")
    assert "plot_pruned_fraction" not in jobs and "plot_posterior_cdf" not in jobs and "train_warmup" not in jobs
    assert jobs["train_scratch"] == 2 and jobs["plot_performance"] == 1
    result = snakemake(project, "--dry-run", "--config", "methods=[flat_map,tiered_ff]", "archs=[vit]")
    # a subset of config/config.yaml's grid: its figures and tables go to a folder of its own, not over the grid's
    subset = "results/subsets/archs-vit_methods-flat_map+tiered_ff"
    assert f"{subset}/figures/fig1.pdf" in result.stdout and "fig2.pdf" not in result.stdout
    assert f"{subset}/tables/final_metrics.csv" in result.stdout and f"{subset}/metrics/metrics.csv" in result.stdout
    assert not re.search(r"results/(figures|tables|metrics|bench)/", result.stdout), result.stdout[-3000:]


def test_training_jobs_ask_for_gpu_runtime_and_memory(project):
    result = snakemake(project, "results/warmup/cifar10/vit/lr0.001/seed0/posterior.npz", "--dry-run", "--cores", "8",
                       "--configfile", "config/paper.yaml", "--config", "datasets=[cifar10]", "archs=[vit]")
    assert result.returncode == 0, result.stderr[-3000:]
    res = load("paper")["resources"]
    runtime = math.ceil(res["overhead_minutes"] + res["safety_factor"] * 100000 * res["ms_per_step"]["gpu"]["vit"] / 60000)
    block = result.stdout[result.stdout.index("rule train_warmup:"):]
    resources = re.search(r"resources: (.*)", block).group(1)
    assert f"gpu={res['gpu']}" in resources
    assert f"runtime={runtime}" in resources
    assert f"mem_mb={res['mem_mb']['vit']}" in resources
    assert re.search(rf"threads: {res['threads']}\b", block)


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_MNIST.exists(), reason="needs Debian's FashionMNIST (apt-get install dataset-fashion-mnist)")
def test_test_profile_runs_end_to_end(tmp_path, monkeypatch):
    project = copy_project(tmp_path / "project")
    # the library source as in a checkout, and imported from there: the workflow's digest of it is a param of
    # every library-dependent rule
    shutil.copytree(ROOT / "src" / "bmrsparse", project / "src" / "bmrsparse",
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("PYTHONPATH", str(project / "src"))
    config = load("test")
    run = snakemake(project, "--cores", "2", "--configfile", "config/test.yaml", timeout=1800)
    assert run.returncode == 0, failure_report(project, run)

    for figure in ("fig1", "fig2", "fig3", "fig4", "sparsity_accuracy"):
        assert (project / "results" / "figures" / f"{figure}.pdf").read_bytes()[:5] == b"%PDF-"
        assert (project / "results" / "figures" / f"{figure}.png").read_bytes()[:4] == b"\x89PNG"
    assert not (project / "results" / "figures" / "figS1.pdf").exists()

    metrics = pd.read_csv(project / "results" / "metrics" / "metrics.csv")
    epochs = config["schedule"]["num_epochs"]
    assert len(metrics) == len(config["archs"]) * len(config["methods"]) * (epochs + 1)
    assert set(metrics["epoch"]) == set(range(epochs + 1))
    assert metrics[["acc", "ece", "nll"]].notna().all().all()
    warmup = metrics[metrics.epoch == 0].set_index(["arch", "method"])["acc"]
    rates = {m: config["training"].get("learning_rate", {}).get(m, REGISTRY[m].learning_rate) for m in REGISTRY}
    for arch in config["archs"]:  # Flat-FF's and BMR-S&S's epoch 0: the warm-up at each one's learning rate
        for method in ("flat_ff", "bmr_ss"):
            own = pd.read_csv(project / f"results/warmup/fashion_mnist/{arch}/lr{rates[method]:g}/seed0/metrics.csv")
            assert own["acc"].tolist() == [warmup[(arch, method)]]
    # progress while it trains: at least one line per 10 % of a job's steps, and the ELBO of each epoch
    log = (project / f"logs/train_warmup/fashion_mnist/mlp/lr{rates['bmr_ss']:g}/seed0.log").read_text()
    progress = re.findall(r"step (\d+)/(\d+), [\d.]+ steps/s, ETA \S+, loss \S+", log)
    assert len(progress) >= 10 and progress[-1][0] == progress[-1][1], log[-3000:]
    assert metrics["elbo"].notna().all()
    steps = metrics.groupby(["arch", "method"])["step"].max()
    total = config["schedule"]["warmup_steps"] + epochs * config["schedule"]["epoch_steps"]
    assert (steps == total).all()  # every method gets the same step budget

    final = pd.read_csv(project / "results" / "tables" / "final_metrics.csv")
    assert len(final) == len(config["archs"]) * len(config["methods"])
    claims = pd.read_csv(project / "results" / "tables" / "paper_claims.csv")
    # 5 and 6 beyond the paper: pruning baselines; structured BMR's speed (the grid's Tiered-FF is cut into a compact
    # network and timed, so the inference table exists; with no structured BMR method claim 6 is not applicable)
    assert set(claims["claim_id"]) == {1, 2, 3, 4, 5, 6}
    assert set(claims.loc[claims["claim_id"] == 4, "seeds"]) == {"timed alone"}  # rule time_steps
    assert claims["settings"].str.contains("config/test.yaml").all()
    assert set(claims["verdict"]) <= {"holds", "does not hold", "not applicable"}
    assert (project / "results" / "tables" / "paper_claims.md").read_text().startswith("# ")

    report = snakemake(project, "--configfile", "config/test.yaml", "--report", "results/report.html")
    assert report.returncode == 0, (report.stdout + report.stderr)[-5000:]
    html = (project / "results" / "report.html").read_text(errors="replace")
    for name in ("fig1.png", "fig2.png", "fig3.png", "fig4.png", "sparsity_accuracy.png", "paper_claims.csv", "final_metrics.csv"):
        assert name in html

    again = snakemake(project, "--dry-run", "--configfile", "config/test.yaml")
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr

    # One provenance: every job's metrics name the library digest that the workflow planned it with ...
    provenance = pd.read_csv(project / "results" / "tables" / "provenance.csv")
    digest = re.search(r"Library digest of this workflow: (\w+)\.",
                       (project / "results" / "tables" / "provenance.md").read_text()).group(1)
    assert len(provenance) == len(set(provenance.job)) > 0 and (provenance.library == digest).all()
    # ... and a change to one library file plans the data preparation and every training job again, each for its
    # own params (the digest), not only because the data it reads is planned again.
    library_file = project / "src" / "bmrsparse" / "bmr.py"
    library_file.write_text(library_file.read_text() + "\n# changed\n")
    changed = snakemake(project, "--configfile", "config/test.yaml", "--list-changes", "params")
    assert changed.returncode == 0, changed.stderr[-3000:]
    trained = [p.relative_to(project).as_posix() for folder in ("warmup", "train")
               for p in sorted((project / "results" / folder).rglob("*")) if p.name in ("metrics.csv", "posterior.npz")]
    assert len(trained) == 2 * sum(n for rule, n in expected_jobs(config).items() if rule.startswith("train_"))
    missing = set(trained + ["results/data/fashion_mnist.npz"]) - set(changed.stdout.split())
    assert not missing, f"outputs whose params did not change with the library: {sorted(missing)}"
    replanned, expected = planned_jobs(project, "--configfile", "config/test.yaml"), expected_jobs(config)
    library_rules = ["prepare_dataset"] + [rule for rule in expected if rule.startswith("train_")]
    assert len(library_rules) >= 4
    assert {r: replanned.get(r) for r in library_rules} == {r: expected[r] for r in library_rules}


def test_vmap_seeds_groups_seed_jobs(project):
    """vmap_seeds: one training job per stage for all seeds (as many jobs as with one seed)."""
    one = planned_jobs(project, "--configfile", "config/paper.yaml", "--config", "seeds=[0]")
    together = planned_jobs(project, "--configfile", "config/paper.yaml", "--config", "seeds=[0,1,2]",
                            "vmap_seeds=true")
    apart = planned_jobs(project, "--configfile", "config/paper.yaml", "--config", "seeds=[0,1,2]",
                         "vmap_seeds=false")
    for rule in ("train_warmup", "train_continue", "train_scratch", "train_epoch"):
        assert together[rule] == one[rule]
        assert apart[rule] == 3 * one[rule]


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_MNIST.exists(), reason="needs Debian's FashionMNIST (apt-get install dataset-fashion-mnist)")
def test_vmap_seeds_runs_and_writes_every_seed(tmp_path):
    project = copy_project(tmp_path / "project")
    run = snakemake(project, "--cores", "2", "--configfile", "config/test.yaml", "--config", "vmap_seeds=true",
                    "seeds=[0,1]", "archs=[mlp]", "methods=[flat_ff,bmr_ss,magnitude_ss]", timeout=1800)
    assert run.returncode == 0, failure_report(project, run)
    # a subset of config/test.yaml's grid (one network, other methods): its metrics in its own summary folder
    metrics = pd.read_csv(project / "results/subsets/archs-mlp_methods-flat_ff+bmr_ss+magnitude_ss_seeds-0+1"
                          / "metrics" / "metrics.csv")
    assert sorted(set(metrics.seed)) == [0, 1]
    per_seed = metrics.groupby("seed").size()
    assert per_seed[0] == per_seed[1] == 3 * (load("test")["schedule"]["num_epochs"] + 1)
    for seed in (0, 1):
        assert (project / f"results/train/fashion_mnist/mlp/bmr_ss/seed{seed}/epoch2/posterior.npz").exists()
        # the baseline's epoch jobs read BMR-S&S's state of the same epoch (one reference file per seed)
        assert (project / f"results/train/fashion_mnist/mlp/magnitude_ss/seed{seed}/epoch2/posterior.npz").exists()
    assert list((project / "logs" / "train_warmup" / "fashion_mnist" / "mlp").rglob("seeds0-1.log"))


def _rule_block(output: str, rule: str) -> str:
    block = output[output.index(f"rule {rule}:"):]
    return block[: block.index("\n\n")] if "\n\n" in block else block


def test_time_steps_is_a_job_with_a_training_jobs_resources(project):
    """Claim 4's timing is no local rule (under profiles/slurm it is an sbatch job, not a login-node process) and
    asks for what a training job of the same config asks for: its threads, its GPU, memory for the largest net."""
    text = (ROOT / "workflow" / "rules" / "tables.smk").read_text() + (ROOT / "Snakefile").read_text()
    assert "_cores" not in text, "Snakemake's private workflow._cores is back"
    assert not re.search(r"localrules:[^:]*\btime_steps\b", text, flags=re.S)
    # a subset of paper.yaml's grid: its timing in its summary folder
    result = snakemake(project, "results/subsets/datasets-fashion_mnist_archs-mlp+lenet/bench/speed.csv", "--dry-run",
                       "--cores", "16", "--configfile", "config/paper.yaml", "--config", "datasets=[fashion_mnist]",
                       "archs=[mlp,lenet]")
    assert result.returncode == 0, result.stderr[-3000:]
    timing, training = _rule_block(result.stdout, "time_steps"), _rule_block(result.stdout, "train_warmup")
    res = load("paper")["resources"]
    for block in (timing, training):
        assert re.search(rf"threads: {res['threads']}\b", block), block
        assert f"gpu={res['gpu']}" in block, block
    assert f"mem_mb={max(res['mem_mb']['mlp'], res['mem_mb']['lenet'])}," in timing
    # two methods x two runs per architecture, each a training job of min(200, epoch_steps) steps
    steps = min(200, load("paper")["schedule"]["epoch_steps"])
    minutes = sum(math.ceil(res["overhead_minutes"] + res["safety_factor"] * steps * res["ms_per_step"]["gpu"][a]
                            / 60000) for a in ("mlp", "lenet"))
    assert re.search(rf"runtime={4 * minutes}\b", timing), timing


def test_workflow_snakefile_plans_what_the_root_snakefile_plans(project):
    """workflow/Snakefile (where the workflow catalog and snakedeploy look) imports the root Snakefile's rules."""
    for config in ("test", "paper"):
        root = planned_jobs(project, "--configfile", f"config/{config}.yaml")
        assert planned_jobs(project, "-s", "workflow/Snakefile", "--configfile", f"config/{config}.yaml") == root
    assert planned_jobs(project, "-s", "workflow/Snakefile") == expected_jobs(load("config"))


def test_plain_call_uses_profiles_default(project):
    """A call without --profile gets profiles/default (Snakemake >= 9 loads it by itself): the local profile's
    settings without `cores`, which would cap cluster jobs' threads under --profile profiles/slurm."""
    default = yaml.safe_load((ROOT / "profiles" / "default" / "config.yaml").read_text())
    local = yaml.safe_load((ROOT / "profiles" / "local" / "config.yaml").read_text())
    assert {"keep-going", "rerun-incomplete"} <= set(default)
    assert default == {k: v for k, v in local.items() if k != "cores"}
    assert not {"cores", "jobs", "executor", "resources", "default-resources"} & set(default)
    used = "Using workflow specific profile profiles/default for setting default command line arguments."
    plain = snakemake(project, "--dry-run", "--quiet", "rules")
    assert plain.returncode == 0 and used in plain.stderr, plain.stderr[-3000:]
    off = snakemake(project, "--dry-run", "--quiet", "rules", "--workflow-profile", "none")
    assert off.returncode == 0 and "profiles/default" not in off.stderr
