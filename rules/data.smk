# Data: verify a dataset (a local copy named in config, data/, or a download) and write
# it under its content key.  A wrong checksum stops here: nothing downstream runs.

import sys
import time

DATASET_LOGS = {"mnist": "logs/data/mnist.log", "cifar10": "logs/data/cifar10.log"}
DATASET_NAMES = {"mnist": "MNIST", "cifar10": "CIFAR-10"}
STARTED = time.time()


def explain_missing_datasets():
    """After a failed run: one message per dataset whose data job failed in this run (what
    is missing, the remedy from the job's log, the figures it stops); removes the empty
    folders Snakemake made for the job's output and benchmark."""
    for name, log in DATASET_LOGS.items():
        key, job = dataset_job(config, name)
        if (
            os.path.exists(job.path)
            or not os.path.exists(log)
            or os.path.getmtime(log) < STARTED
        ):
            continue
        with open(log, encoding="utf-8", errors="replace") as f:
            errors = [
                line.strip() for line in f if line.startswith("equivdyn data: error:")
            ]
        figures = sorted({fig.target for fig in PLAN.figures_needing(key)})
        print(
            f"\n*** {DATASET_NAMES[name]} is missing; needed by {', '.join(figures) or 'no figure'} "
            f"(log: {log})\n"
            + "\n".join(errors or [f"the data job failed; see {log}"]),
            file=sys.stderr,
        )
        for made in (os.path.dirname(job.path), "benchmarks/data"):
            remove_empty_folders(made)


def remove_empty_folders(folder):
    """Remove ``folder`` and its parents up to the working folder while they are empty."""
    while folder and folder != "." and os.path.isdir(folder) and not os.listdir(folder):
        os.rmdir(folder)
        folder = os.path.dirname(folder)


rule data_mnist:
    input:
        source=lambda wildcards: config["data"]["mnist"] or [],
    output:
        npz=MNIST,
    log:
        "logs/data/mnist.log",
    benchmark:
        "benchmarks/data/mnist.tsv"
    conda:
        "../envs/equivdyn.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=DOWNLOAD_RUNTIME,
    params:
        source=lambda wildcards, input: source_option(input.source or None),
    shell:
        "equivdyn data mnist {params.source} --out {output.npz:q} > {log:q} 2>&1"


rule data_cifar10:
    input:
        source=cifar10_source,
    output:
        npz=CIFAR10,
    log:
        "logs/data/cifar10.log",
    benchmark:
        "benchmarks/data/cifar10.tsv"
    conda:
        "../envs/equivdyn.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=DOWNLOAD_RUNTIME,
    params:
        source=cifar10_source_option,
    shell:
        "equivdyn data cifar10 {params.source} --out {output.npz:q} > {log:q} 2>&1"
