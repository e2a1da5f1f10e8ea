"""The study's matrix cells as cluster jobs (SLURM through submitit), gathered into this workspace.

    python -m scripts.fanout submit --partition gpu --gpus 1 --timeout-min 240   # returns at once
    python -m scripts.fanout gather                                              # waits, then merges
    dvc repro                                                                    # bench and report only

Run both from the repository root, on storage the compute nodes see: the jobs copy this workspace
and write into its DVC cache (see pipeline_lib/cluster.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import click
import submitit

from pipeline_lib import cluster
from pipeline_lib.io import write_json
from stages.common import params_or_exit

JOBS_DIR = Path(".fanout")


@click.group()
def main() -> None:
    pass


@main.command()
@click.option("--cluster", "cluster_name", type=click.Choice(["slurm", "local"]), default=None,
              help="default: slurm where sbatch exists, else local processes")
@click.option("--partition", default=None, help="SLURM partition")
@click.option("--gpus", type=int, default=0, help="GPUs per job")
@click.option("--cpus", type=int, default=2, help="CPUs per job")
@click.option("--mem-gb", type=int, default=16)
@click.option("--timeout-min", type=int, default=120)
@click.option("--parallel", type=int, default=64, help="jobs running at once (SLURM array throttle)")
@click.option("--scratch", default=None, help="node-local folder for each job's copy (default: the temp dir)")
@click.option("--jobs-dir", type=click.Path(path_type=Path), default=JOBS_DIR)
@click.option("--wait", is_flag=True, help="wait for the jobs and gather them (local runs)")
def submit(cluster_name, partition, gpus, cpus, mem_gb, timeout_min, parallel, scratch, jobs_dir, wait) -> None:
    """Run shard and configure here, then submit one job per matrix cell."""
    params = params_or_exit()
    executor = submitit.AutoExecutor(folder=jobs_dir / "logs", cluster=cluster_name)
    executor.update_parameters(timeout_min=timeout_min, gpus_per_node=gpus, cpus_per_task=cpus, mem_gb=mem_gb,
                               slurm_partition=partition, slurm_array_parallelism=parallel, name="overfocus")
    jobs = cluster.submit(Path.cwd(), params, executor, scratch_root=scratch)
    write_json(jobs_dir / "jobs.json", {"cluster": executor.cluster, "job_ids": [j.job_id for j in jobs]})
    click.echo(f"{len(jobs)} jobs submitted ({executor.cluster}); logs in {jobs_dir / 'logs'}")
    if wait:
        click.echo(f"{len(cluster.gather(Path.cwd(), jobs))} stages gathered; now `dvc repro`")


@main.command()
@click.option("--jobs-dir", type=click.Path(exists=True, path_type=Path), default=JOBS_DIR)
def gather(jobs_dir) -> None:
    """Wait for the submitted jobs and merge their results into dvc.lock and the workspace."""
    record = json.loads((jobs_dir / "jobs.json").read_text())
    job_class = submitit.AutoExecutor(folder=jobs_dir / "logs", cluster=record["cluster"])._executor.job_class
    jobs = [job_class(folder=jobs_dir / "logs", job_id=i) for i in record["job_ids"]]
    stages = cluster.gather(Path.cwd(), jobs)
    click.echo(f"{len(stages)} stages gathered; `dvc repro` now runs only what spans the cells")


if __name__ == "__main__":
    main()
